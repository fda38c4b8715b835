"""One source of truth for the orchestrator's numeric ranges: tmpnb.options.RANGES checks the config
file, and the role's preflight checks inventory values against roles/tmpnb/vars/main.yml's
``__tmpnb_ranges``. These tests keep the two equal and make sure every ranged option the role
writes into tmpnb.toml is checked before any change."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tmpnb.options import RANGES

ROOT = Path(__file__).resolve().parents[1]
ROLE = ROOT / "roles/tmpnb"
# Options the role sets but checks on their own, with the reason.
CHECKED_APART = {
    "cpu_shares": "tmpnb_cpu_shares 0 means derived from the host's cores (__tmpnb_cpu_shares_range)",
    "cpus": "0 means no cap; its own assert",
    "pool_size": "bounded by the capacity, not a fixed range",
}


def role_vars() -> dict:
    return yaml.safe_load((ROLE / "vars/main.yml").read_text())


def template_options() -> dict[str, str]:
    """option -> the role variable the template writes into it (numbers only)."""
    text = (ROLE / "templates/tmpnb.toml.j2").read_text()
    return dict(re.findall(r"^(\w+) = \{\{ (\w+) \| (?:int|float) \}\}$", text, re.M))


def expected_block() -> str:
    lines = ["__tmpnb_ranges:"]
    for option, var in template_options().items():
        if option in RANGES and option not in CHECKED_APART:
            lo, hi = RANGES[option]
            lines.append(f"  {var}: {{option: {option}, min: {lo:g}, max: {hi:g}}}")
    return "\n".join(lines)


def test_the_role_checks_the_same_ranges_as_the_orchestrator() -> None:
    ranges = role_vars()["__tmpnb_ranges"]
    got = {entry["option"]: (entry["min"], entry["max"]) for entry in ranges.values()}
    want = {o: RANGES[o] for o in template_options() if o in RANGES and o not in CHECKED_APART}
    assert got == want, (
        "roles/tmpnb/vars/main.yml differs from tmpnb.options.RANGES; use:\n" + expected_block()
    )


def test_each_range_is_keyed_by_the_variable_that_sets_its_option() -> None:
    options = template_options()
    for var, entry in role_vars()["__tmpnb_ranges"].items():
        assert options.get(entry["option"]) == var, (
            var,
            entry,
            "the template writes",
            options.get(entry["option"]),
        )


def test_cpu_shares_bounds_are_the_orchestrators() -> None:
    entry = role_vars()["__tmpnb_cpu_shares_range"]
    assert (entry["min"], entry["max"]) == RANGES["cpu_shares"]


def test_the_preflight_loops_over_the_ranges() -> None:
    tasks = yaml.safe_load((ROLE / "tasks/preflight.yml").read_text())
    loops = [t.get("loop", "") for t in tasks]
    assert any("__tmpnb_ranges" in str(loop) for loop in loops), loops
    # No numeric bound of a ranged variable is written out by hand in the preflight any more.
    text = (ROLE / "tasks/preflight.yml").read_text()
    for var in role_vars()["__tmpnb_ranges"]:
        assert not re.search(rf"{var} \| (?:int|float) >= \d", text), f"{var} has a hand-written bound"


def test_the_role_reloads_for_the_options_the_orchestrator_reloads() -> None:
    """roles/tmpnb reloads (SIGHUP) when only these changed, so they must be what a reload applies:
    one missing restarts for nothing (new visitors refused meanwhile), one too many is not applied."""
    from tmpnb.config import RELOADABLE

    assert sorted(role_vars()["__tmpnb_reloadable"]) == sorted(RELOADABLE)
