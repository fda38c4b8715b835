"""Package lists are refreshed one way in every role: one "Refresh the package lists" task
(update_cache, at most once an hour, also in check mode so a dry run on a fresh host resolves the
packages), and the install tasks themselves never refresh."""

from __future__ import annotations

from pathlib import Path

import pytest
from role_tasks import tasks_in

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
REFRESH = {"update_cache": True, "cache_valid_time": 3600}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_package_lists_are_refreshed_one_way(role: Path) -> None:
    apt = [
        (path.name, task)
        for path in sorted((role / "tasks").glob("*.yml"))
        for task in tasks_in(path)
        if "ansible.builtin.apt" in task
    ]
    installs = [(f, t) for f, t in apt if "name" in t["ansible.builtin.apt"]]
    refreshes = [(f, t) for f, t in apt if "name" not in t["ansible.builtin.apt"]]
    for where, task in installs:
        own = set(task["ansible.builtin.apt"]) & {"update_cache", "cache_valid_time"}
        assert not own, f"{role.name}/{where}: {task['name']!r} refreshes the lists itself ({sorted(own)})"
    if not installs:
        return
    assert len(refreshes) == 1, f"{role.name}: installs packages with {len(refreshes)} refresh tasks, not 1"
    where, task = refreshes[0]
    assert task["name"] == "Refresh the package lists", f"{role.name}/{where}: {task['name']!r}"
    assert task["ansible.builtin.apt"] == REFRESH, f"{role.name}/{where}: {task['ansible.builtin.apt']}"
    assert task.get("check_mode") is False and task.get("changed_when") is False, f"{role.name}/{where}"
