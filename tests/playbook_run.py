"""Run one of the kit's playbooks against a throwaway inventory (one `tmpnb` group), the way an
operator runs it: `ansible-playbook <playbook> -i <inventory>` with the kit's ansible.cfg."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def ansible_playbook(playbook: str, inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ansible-playbook ROOT/<playbook> -i <inventory> <args>` with the kit's ansible.cfg."""
    binary = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent)) or "ansible-playbook"
    return subprocess.run(
        [binary, str(ROOT / playbook), "-i", str(inventory), *args],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_playbook(
    playbook: str, where: Path, hosts: dict[str, dict[str, Any]], group_vars: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    """Writes <where>/inventory/{hosts.yml,group_vars/tmpnb.yml} and runs ROOT/<playbook> on it."""
    inventory = where / "inventory"
    (inventory / "group_vars").mkdir(parents=True, exist_ok=True)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"tmpnb": {"hosts": hosts}}))
    (inventory / "group_vars" / "tmpnb.yml").write_text(yaml.safe_dump(group_vars))
    return ansible_playbook(playbook, inventory / "hosts.yml", *args)
