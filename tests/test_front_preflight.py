"""playbooks/preflight.yml with a front and cells (docs/cells.md) refuses a wrong multi-cell
inventory before any change, naming the variable. Every host is this machine over a local
connection: the preflight only gathers facts and asserts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from playbook_run import ansible_playbook

ROOT = Path(__file__).resolve().parents[1]
LOCAL_VARS = yaml.safe_load((ROOT / "inventories/local/group_vars/tmpnb.yml").read_text())
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def cell(n: int, **extra: Any) -> dict[str, Any]:
    return {
        **LOCAL,
        "tmpnb_public_url": f"https://cell-{n}.example.org",
        "front_cell_url": f"http://10.0.0.1{n}:80",
        **extra,
    }


def preflight(
    tmp_path: Path, cells: dict[str, dict[str, Any]], front: dict[str, Any] | None = None, **cell_vars: Any
) -> subprocess.CompletedProcess[str]:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {"front": {"hosts": {"front-1": {**LOCAL, **(front or {})}}}, "cells": {"hosts": cells}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    values = {
        **LOCAL_VARS,
        "tmpnb_image_source": "pull",
        "nginx_static_spawn_from": ["10.0.0.10"],
        **cell_vars,
    }
    (inventory / "group_vars" / "cells.yml").write_text(yaml.safe_dump(values))
    return ansible_playbook("playbooks/preflight.yml", inventory / "hosts.yml")


def test_a_front_with_two_cells_passes(tmp_path: Path) -> None:
    res = preflight(tmp_path, {"cell-1": cell(1), "cell-2": cell(2, front_cell_drain=True)})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


@pytest.mark.parametrize(
    ("cells", "front", "cell_vars", "named"),
    [
        (
            {"cell-1": cell(1, front_cell_drain=True), "cell-2": cell(2, front_cell_drain=True)},
            {},
            {},
            "every cell is drained (front_cell_drain: true on",
        ),
        (
            {"cell-1": cell(1, front_cell_url="http://10.0.0.11/spawn")},
            {},
            {},
            "front_cell_url of each cell must",
        ),
        (
            {"cell-1": cell(1), "cell-2": cell(2, front_cell_url="https://10.0.0.12")},
            {},
            {},
            "must all be http:// or all https://",
        ),
        ({"cell-1": cell(1, tmpnb_public_url="")}, {}, {}, "set tmpnb_public_url"),
        ({"cell-1": cell(1)}, {}, {"nginx_static_spawn_from": []}, "and nginx_static_spawn_from (got [])"),
        ({"cell-1": cell(1)}, {"front_fail_timeout": 0}, {}, "front_fail_timeout >= 1"),
    ],
)
def test_a_wrong_multi_cell_inventory_fails_naming_the_variable(
    tmp_path: Path, cells: dict[str, Any], front: dict[str, Any], cell_vars: dict[str, Any], named: str
) -> None:
    res = preflight(tmp_path, cells, front, **cell_vars)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, f"the preflight passed: {out[-2000:]}"
    assert named in out, out[-3000:]


def test_a_host_both_front_and_cell_is_refused(tmp_path: Path) -> None:
    res = preflight(tmp_path, {"cell-1": cell(1), "front-1": cell(2)})
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and "is both a front and a cell" in out, out[-3000:]
