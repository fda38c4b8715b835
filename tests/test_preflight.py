"""playbooks/preflight.yml (the first play of site.yml) refuses a wrong inventory before any change,
with a message naming the variable. Run against this machine with a local connection: the preflight
only gathers facts and asserts, it changes nothing anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[1]
LOCAL_VARS = yaml.safe_load((ROOT / "inventories/local/group_vars/tmpnb.yml").read_text())


def preflight(tmp_path: Path, **overrides: object) -> subprocess.CompletedProcess[str]:
    values = {**LOCAL_VARS, "tmpnb_image_source": "pull", "ansible_python_interpreter": sys.executable}
    values.update(overrides)
    return run_playbook(
        "playbooks/preflight.yml", tmp_path, {"localhost": {"ansible_connection": "local"}}, values
    )


def test_the_local_inventory_passes(tmp_path: Path) -> None:
    res = preflight(tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        # tmpfs mounts held in the memory slice: 128 + 32 + 32 = 192 MB do not fit 160 MB
        ({"tmpnb_slice_mb": 160}, "must be less than tmpnb_slice_mb (160)"),
        ({"tmpnb_home_path": "/tmp"}, "tmpnb_home_path ('/tmp')"),
        # Ranges come from the orchestrator's own table (tmpnb.options.RANGES).
        (
            {"tmpnb_slice_mb": 100, "tmpnb_home_size_mb": 8, "tmpnb_tmp_size_mb": 8, "tmpnb_shm_size_mb": 8},
            "tmpnb_slice_mb=100 is outside 128 to 1048576, the orchestrator's range for its option "
            "mem_limit_mb",
        ),
        ({"tmpnb_retry_after": 0}, "tmpnb_retry_after=0 is outside 1 to 3600"),
        (
            {"tmpnb_cull_timeout": 900, "tmpnb_cull_max_age": 600},
            "tmpnb_cull_max_age=600 (>= tmpnb_cull_timeout=900)",
        ),
        ({"firewall_egress_allow": ["pypi.org:443"]}, "firewall_egress_allow entries must be IPv4"),
        ({"firewall_egress": "list"}, "the list is empty"),
        # The host's plan (roles/plan): 1000 x 512 MB + 12 GB do not fit this machine's memory.
        ({"tmpnb_capacity": 1000, "limits_users": 1000}, "set tmpnb_capacity to at most"),
        # 4096 open files per unit cover 4096 // 12 = 341 of the 1000 users' fd budget (12000).
        ({"limits_users": 1000, "limits_nofile": 4096}, "covers 341 users; set limits_users to at most 341"),
        ({"plan_supported": {"Ubuntu": ["24"]}}, "plan_supported lists Ubuntu 24"),
    ],
)
def test_a_wrong_variable_fails_before_any_change_naming_it(
    tmp_path: Path, overrides: dict[str, object], named: str
) -> None:
    res = preflight(tmp_path, **overrides)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"preflight accepted {overrides}"
    assert named in " ".join(out.split()), out[-3000:]
