"""playbooks/plan.yml from the command line: a host that does not answer is planned from its
inventory values (here a Docker-connection host whose container does not exist: the engine on this
machine answers "no such container", nothing leaves the machine); with plan_source=facts it fails
instead; check mode plans too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RACKSPACE = yaml.safe_load((ROOT / "inventories/rackspace/group_vars/tmpnb.yml").read_text())
HOST = "tmpnb-plan-not-bought-yet"


def plan(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
    hosts = {"tmpnb": {"hosts": {HOST: {"ansible_connection": "community.docker.docker"}}}}
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (inventory / "group_vars" / "tmpnb.yml").write_text(yaml.safe_dump(RACKSPACE))
    return subprocess.run(
        [
            playbook,
            str(ROOT / "playbooks/plan.yml"),
            "-i",
            str(inventory),
            "-e",
            f"plan_json_dir={tmp_path}",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
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
