"""Each role has a README (roles/<name>/README.md: what it does, a variables table, an example
play), and its variables table agrees with meta/argument_specs.yml: the same names, the same
defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
HEADER = "| variable | default | meaning |"
ROW = re.compile(r"^\| `(?P<name>[a-z0-9_]+)` \| (?P<default>.*?) \| .*\|$")


def _table(readme: str) -> dict[str, str]:
    """variable -> the default cell as written, from the README's variables table."""
    lines = readme.splitlines()
    assert HEADER in lines, f"no variables table (a line '{HEADER}')"
    rows: dict[str, str] = {}
    for line in lines[lines.index(HEADER) + 2 :]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"unreadable row: {line}"
        rows[match["name"]] = match["default"]
    return rows


def _value(cell: str) -> Any:
    """The YAML value a default cell shows: `1000`, `"10m"`, `[docker.io]`, `{}` (| escaped as \\|)."""
    code = re.fullmatch(r"`(.*)`", cell.strip())
    assert code, f"default {cell!r} is not one `code` span"
    return yaml.safe_load(code[1].replace("\\|", "|"))


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_readme_matches_argument_specs(role: Path) -> None:
    readme = role / "README.md"
    assert readme.is_file(), f"roles/{role.name}/README.md is missing"
    text = readme.read_text()
    assert "## Example play" in text and "```yaml" in text, f"roles/{role.name}/README.md: no example play"
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    table = _table(text)
    assert set(table) == set(options), (
        f"roles/{role.name}/README.md lists {sorted(set(table) - set(options))} not in argument_specs and "
        f"misses {sorted(set(options) - set(table))}"
    )
    # A default derived from another role's fact ("{{ limits_nofile | default(1048576) }}") is shown
    # as defaults/main.yml writes it; argument_specs can only give its fallback value.
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    wrong = {
        name: (table[name], spec.get("default"), defaults.get(name))
        for name, spec in options.items()
        if _value(table[name]) != defaults.get(name)
        or (_value(table[name]) != spec.get("default") and "{{" not in str(defaults.get(name)))
    }
    assert not wrong, (
        f"roles/{role.name}/README.md: defaults differ (README, argument_specs, defaults): {wrong}"
    )


def test_top_readme_links_every_role_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [r.name for r in ROLES if f"(roles/{r.name}/README.md)" not in readme]
    assert not missing, f"README.md does not link the READMEs of {missing}"
