"""Every role documents its input: meta/argument_specs.yml and defaults/main.yml hold the same keys,
and every variable carries its role's prefix (the role READMEs: test_role_readmes.py)."""

from pathlib import Path

import pytest
import yaml
from role_tasks import tasks_in

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role")


def _site_roles() -> set[str]:
    """Roles the plays site.yml imports apply (`roles:` and include_role/import_role), and the roles
    those roles' own tasks include (roles/secret, roles/limits' ceiling)."""
    found: set[str] = set()
    for play in _load(ROOT / "site.yml"):
        for sub in yaml.safe_load((ROOT / play["ansible.builtin.import_playbook"]).read_text()):
            found.update(r["role"] if isinstance(r, dict) else r for r in sub.get("roles", []))
            found.update(task[k]["name"] for task in sub.get("tasks", []) for k in INCLUDES if k in task)
    todo = set(found)
    while todo:
        role = todo.pop()
        for path in (ROOT / "roles" / role / "tasks").glob("*.yml"):
            named = {task[k]["name"] for task in tasks_in(path) for k in INCLUDES if k in task}
            todo |= named - found
            found |= named
    return found


def test_site_yml_deploys_every_role() -> None:
    """A role that site.yml never applies is dead code or a forgotten import (roles/firewall was)."""
    assert {r.name for r in ROLES} == _site_roles()


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role: Path) -> None:
    specs = role / "meta" / "argument_specs.yml"
    assert specs.is_file(), f"{role.name}: meta/argument_specs.yml is missing"
    options = _load(specs)["argument_specs"]["main"].get("options", {})
    defaults_file = role / "defaults" / "main.yml"
    defaults = _load(defaults_file) if defaults_file.is_file() else {}
    # Required options have no default on purpose; every other option has one.
    optional = {k for k, v in options.items() if not v.get("required", False)}
    only_specs, only_defaults = sorted(optional - set(defaults)), sorted(set(defaults) - optional)
    assert not only_specs and not only_defaults, (
        f"{role.name}: argument_specs and defaults differ: "
        f"only in specs {only_specs}, only in defaults {only_defaults}"
    )


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_variables_carry_role_prefix(role: Path) -> None:
    options = _load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"].get("options", {})
    wrong = [k for k in options if not k.startswith(f"{role.name}_")]
    assert not wrong, f"{role.name}: variables without the '{role.name}_' prefix: {wrong}"
