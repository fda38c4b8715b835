"""The capacity plan and the preflight's host checks.

- The test host (converged with make demo's local inventory) was planned from its facts and passed
  the preflight: its plan says so.
- The OnMetal host of inventories/rackspace, planned and preflighted from its inventory values (no
  512 GB machine needed), against figures computed by hand.
- site.yml on the test host with a plan it cannot hold stops in its preflight, naming the variable
  and the number it needs, before anything on the host changed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
LOCAL_VARS = yaml.safe_load((ROOT / "inventories/local/group_vars/tmpnb.yml").read_text())


def ansible(*args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [PLAYBOOK, *args],
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != "ANSIBLE_FORCE_COLOR"},
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    print(res.stdout[-4000:])
    return res


def test_the_test_host_was_planned_from_its_facts_and_holds_its_plan() -> None:
    plan = json.loads((ROOT / ".cache/plan/tmpnb-plan.json").read_text())
    assert plan["host"]["source"] == "facts"
    assert plan["memory"]["capacity"] == LOCAL_VARS["tmpnb_capacity"] == 6
    assert plan["host"]["cores"] == os.cpu_count()
    # The machine's open-files ceiling (docs/testing.md "Test hosts"), read from PID 1 of the test host.
    assert plan["host"]["nofile_ceiling"] == 20000
    assert plan["host"]["memory_controller"] is True
    assert plan["cpu"]["shares"] == 1024 * os.cpu_count() // 6
    assert plan["problems"] == []


def test_the_onmetal_host_from_inventory_values(tmp_path: Path) -> None:
    res = ansible(
        "playbooks/plan.yml",
        "-i",
        "inventories/rackspace",
        "-e",
        "plan_source=inventory",
        "-e",
        f"plan_json_dir={tmp_path}",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    plan = json.loads((tmp_path / "onmetal-1.json").read_text())
    assert plan["host"]["source"] == "inventory"
    # By hand: (524288 - 12288) MB / 512 MB = 1000 slices filling 512 GB; 24 cores / 1000 = 0.024;
    # 1024 x 24 / 1000 = 24 shares; 1000 x 2 x 3 x 2 = 12000 fds; $1600 / 1000 = $1.60.
    assert plan["memory"] == {
        "total_mb": 524288,
        "slice_mb": 512,
        "reserve_mb": 12288,
        "carved": 1000,
        "capacity": 1000,
        "capacity_from": "memory",
        "needed_mb": 524288,
        "pool": 150,
        "users": 1000,
    }
    assert (plan["cpu"]["cores"], plan["cpu"]["cores_per_user"], plan["cpu"]["shares"]) == (24, 0.024, 24)
    assert plan["fds"]["budget"] == 12000
    assert plan["pids"]["needed"] == 256 * 1000 + 4096
    assert plan["ports"]["needed"] == 2 * 12000
    assert (plan["bridges"]["networks"], plan["neighbours"]["needed"]) == (1, 1001)
    assert plan["cost"]["per_user_month"] == 1.6
    assert plan["problems"] == []
    table = " ".join(res.stdout.split())
    assert "onmetal-1 from inventory: 512 GB, 24 cores" in table
    assert "$1,600/month = $1.60/user/month" in table


def test_the_onmetal_host_passes_the_preflight_from_inventory_values() -> None:
    # A host not yet bought: facts come from this machine (local connection), the host's size
    # from plan_* values, so nothing connects to the placeholder address.
    res = ansible(
        "playbooks/preflight.yml",
        "-i",
        "inventories/rackspace",
        "-e",
        "plan_source=inventory",
        "-e",
        "ansible_connection=local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def _inventory(tmp_path: Path, **overrides: object) -> Path:
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    hosts = {"tmpnb": {"hosts": {"tmpnb-plan": {"ansible_connection": "community.docker.docker"}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "group_vars" / "tmpnb.yml").write_text(yaml.safe_dump({**LOCAL_VARS, **overrides}))
    return inventory


def _untouched(host) -> None:
    assert not host.file("/etc/sysctl.d/60-tmpnb.conf").exists
    assert not host.file("/etc/tmpnb").exists
    assert not host.package("docker.io").is_installed


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # 1000 x 512 MB + 12288 MB do not fit the machine's memory the test host sees.
        ({"tmpnb_capacity": 1000, "limits_users": 1000}, r"set tmpnb_capacity to at most \d+"),
        # 2000 users x 12 descriptors = 24000 > the test host's 20000 ceiling: 1666 users fit.
        ({"limits_users": 2000}, r"covers 1666 users; set limits_users to at most 1666"),
    ],
)
def test_site_stops_a_host_that_cannot_hold_its_plan_before_any_change(
    host, tmp_path: Path, overrides: dict, named: str
) -> None:
    _untouched(host)
    res = ansible("site.yml", "-i", str(_inventory(tmp_path, **overrides)))
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out[-3000:]
    assert "The host cannot hold its plan" in out, out[-3000:]
    assert re.search(named, out), out[-3000:]
    assert re.search(r"tmpnb-plan\s*: ok=\d+\s+changed=0\s", out), out[-3000:]
    _untouched(host)
