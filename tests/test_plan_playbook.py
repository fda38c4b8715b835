"""playbooks/plan.yml from the command line: a host that does not answer is planned from its
inventory values (here a Docker-connection host whose container does not exist: the engine on this
machine answers "no such container", nothing leaves the machine); with plan_source=facts it fails
instead; check mode plans too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml
from playbook_run import run_playbook

ROOT = Path(__file__).resolve().parents[1]
RACKSPACE = yaml.safe_load((ROOT / "inventories/rackspace/group_vars/tmpnb.yml").read_text())
HOST = "tmpnb-plan-not-bought-yet"


def plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    hosts = {HOST: {"ansible_connection": "community.docker.docker"}}
    return run_playbook(
        "playbooks/plan.yml", tmp_path, hosts, RACKSPACE, "-e", f"plan_json_dir={tmp_path}", *args
    )


def test_a_host_that_does_not_answer_is_planned_from_inventory_values(tmp_path: Path) -> None:
    res = plan(tmp_path, "--check")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    report = json.loads((tmp_path / f"{HOST}.json").read_text())
    assert report["host"]["source"] == "inventory"
    assert (report["memory"]["capacity"], report["cost"]["per_user_month"]) == (1000, 1.6)
    assert f"{HOST} from inventory: 512 GB, 24 cores" in res.stdout


def test_plan_source_facts_requires_an_answer(tmp_path: Path) -> None:
    res = plan(tmp_path, "-e", "plan_source=facts")
    assert res.returncode != 0
    assert "UNREACHABLE" in res.stdout
    assert not (tmp_path / f"{HOST}.json").exists()
