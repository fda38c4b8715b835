"""Reading the roles' task files as data (for the tests that check the roles' conventions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def tasks_below(node: Any) -> list[dict[str, Any]]:
    """Every task in a parsed task file, the tasks inside blocks (block/rescue/always) and, in a
    playbook, each play's tasks included (the plays themselves are listed too)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, list):
        for item in node:
            found += tasks_below(item)
    elif isinstance(node, dict):
        found.append(node)
        for key in ("block", "rescue", "always", "tasks"):
            found += tasks_below(node.get(key))
    return found


def tasks_in(path: Path) -> list[dict[str, Any]]:
    """Every task of one task or handler file."""
    return tasks_below(yaml.safe_load(path.read_text()))
