"""Each Molecule scenario dry-runs its converge on the fresh host first (`check` before the first
`converge`), so every role's "check mode on a new host" guard is exercised, and runs `check` again
after `idempotence` on the converged host."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = yaml.safe_load((ROOT / ".config" / "molecule" / "config.yml").read_text())
# roles/tmpnb is not guarded for a dry run on a fresh host yet (no Docker engine, virtualenv or
# CHP token file there): the end-to-end scenario keeps its check after converge only, for now.
NOT_YET = {
    "default": "roles/tmpnb lacks check-mode guards for a fresh host",
    "rollout": "roles/tmpnb lacks check-mode guards for a fresh host (the same site.yml as default)",
}
SCENARIOS = [
    pytest.param(
        d,
        id=d.name,
        marks=[pytest.mark.xfail(reason=NOT_YET[d.name], strict=True)] if d.name in NOT_YET else [],
    )
    for d in sorted(p.parent for p in (ROOT / "molecule").glob("*/molecule.yml"))
]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_check_runs_on_the_fresh_host_and_after_converge(scenario: Path) -> None:
    own = (yaml.safe_load((scenario / "molecule.yml").read_text()) or {}).get("scenario", {})
    sequence = own.get("test_sequence") or SHARED["scenario"]["test_sequence"]
    assert "converge" in sequence, f"{scenario.name}: no converge in {sequence}"
    first = sequence.index("converge")
    assert "check" in sequence[:first], f"{scenario.name}: no check before the first converge: {sequence}"
    assert "check" in sequence[first + 1 :], f"{scenario.name}: no check after converge: {sequence}"
