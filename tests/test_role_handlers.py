"""Handlers in one style: each listens on a topic (`listen:`), and tasks notify topics, never a
handler's name, so a handler can be renamed, split or chained (verify, then restart) without
touching the tasks that notify it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from role_tasks import tasks_in

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "handlers" / "main.yml").is_file())


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_handlers_listen_and_tasks_notify_topics(role: Path) -> None:
    handlers = tasks_in(role / "handlers" / "main.yml")
    deaf = [h["name"] for h in handlers if not h.get("listen")]
    assert not deaf, f"{role.name}: handlers without listen: {deaf}"
    topics = {t for h in handlers for t in _as_list(h["listen"])}
    names = {h["name"] for h in handlers}
    for path in sorted((role / "tasks").glob("*.yml")):
        for task in tasks_in(path):
            for notified in _as_list(task.get("notify")):
                assert notified not in names - topics, (
                    f"{path.relative_to(ROOT)}: notifies handler name {notified!r}"
                )
                assert notified in topics, (
                    f"{path.relative_to(ROOT)}: notifies {notified!r}, which no handler hears"
                )
