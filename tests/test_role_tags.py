"""Every task of every role carries its phase tag (install, configure, service), so an operator can
run one phase: `ansible-playbook site.yml -i inventories/<env> --tags configure`. Checks, a task
that reads or validates what a later phase needs, carry every phase that needs it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from playbook_run import ansible_playbook
from role_tasks import tasks_below

ROOT = Path(__file__).resolve().parents[1]
PHASES = {"install", "configure", "service"}
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
# `  role : Task name<TAB>TAGS: [a, b]` (ansible-playbook --list-tasks).
TASK_LINE = re.compile(r"^\s+(?:(?P<role>[a-z_]+) : )?(?P<name>.+?)\tTAGS: \[(?P<tags>[^\]]*)\]$")


def _list_tasks(*args: str, playbook: str = "site.yml") -> list[tuple[str, str, set[str]]]:
    """(role or "", task name, tags) for each task the playbook runs with these arguments."""
    done = ansible_playbook(playbook, ROOT / "inventories/local/hosts.yml", "--list-tasks", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    tasks = []
    for line in done.stdout.splitlines():
        match = TASK_LINE.match(line)
        if match and "\tTAGS:" in line and not line.lstrip().startswith("play #"):
            tags = {t.strip() for t in match["tags"].split(",") if t.strip()}
            tasks.append((match["role"] or "", match["name"], tags))
    return tasks


@pytest.fixture(scope="module")
def every_task() -> list[tuple[str, str, set[str]]]:
    return _list_tasks()


def test_every_task_carries_a_phase_tag(every_task: list[tuple[str, str, set[str]]]) -> None:
    untagged = [
        f"{role}: {name} {sorted(tags)}"
        for role, name, tags in every_task
        if not tags & (PHASES | {"always"})
    ]
    assert every_task, "ansible-playbook --list-tasks listed no task"
    assert not untagged, "tasks without an install/configure/service tag:\n" + "\n".join(untagged)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_in_the_configure_phase(role: str) -> None:
    """`--tags configure` keeps the role's checks and configuration, and drops its package installs."""
    # site.yml reaches roles/plan only through the preflight's include_role; playbooks/plan.yml applies it.
    playbook = "playbooks/plan.yml" if role == "plan" else "site.yml"
    listed = [
        (name, tags) for r, name, tags in _list_tasks("--tags", "configure", playbook=playbook) if r == role
    ]
    assert any("configure" in tags for _, tags in listed), f"{role}: --tags configure runs none of its tasks"
    installs = [name for name, tags in listed if "configure" not in tags and "always" not in tags]
    assert not installs, f"{role}: --tags configure still runs {installs}"
    packages = [
        n for n, t in listed if "always" not in t and ("from the distribution" in n or "package lists" in n)
    ]
    assert not packages, f"{role}: --tags configure installs packages: {packages}"


def _dynamic_includes(node: Any) -> list[dict[str, Any]]:
    """Every include_tasks / include_role task below node (blocks and plays' tasks included)."""
    keys = ("ansible.builtin.include_tasks", "ansible.builtin.include_role")
    return [task for task in tasks_below(node) if any(k in task for k in keys)]


def test_dynamic_includes_pass_their_tags_on() -> None:
    """--list-tasks cannot see into include_tasks/include_role: the included tasks get the include's
    phase tags through `apply:` (without it, `--tags configure` would run the include and skip every
    task in it)."""
    files = [*(ROOT / "roles").glob("*/tasks/*.yml"), *(ROOT / "playbooks").glob("*.yml")]
    problems = []
    for path in files:
        for task in _dynamic_includes(yaml.safe_load(path.read_text())):
            key = next(k for k in task if k.startswith("ansible.builtin.include_"))
            spec = task[key] if isinstance(task[key], dict) else {}
            tags = set(task.get("tags", []))
            applied = set((spec.get("apply") or {}).get("tags", []))
            if not tags & PHASES or applied != tags:
                problems.append(
                    f"{path.relative_to(ROOT)}: {task['name']} tags {sorted(tags)} apply {sorted(applied)}"
                )
    assert not problems, "\n".join(problems)
