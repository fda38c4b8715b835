"""Helpers the role scenarios share (molecule/<role>/tests): run one of the scenario's playbooks
again against the same test host and read its recap, read a systemd unit property, read a
process's open-files limit. Used by the docker, firewall and proxy scenarios (import it after
`sys.path.insert(0, <repo>/molecule/shared)`, as the default scenario does for cell.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any


def run_playbook(
    playbook: str = "converge.yml", *args: str, extra: dict[str, Any] | None = None
) -> subprocess.CompletedProcess:
    """`ansible-playbook <scenario>/<playbook>` on Molecule's inventory (the converged test host),
    with the kit's roles and ansible.cfg, no colours; `extra` goes in as `-e <json>`."""
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    env["ANSIBLE_ROLES_PATH"] = os.path.join(env["MOLECULE_PROJECT_DIRECTORY"], "roles")
    env.setdefault("ANSIBLE_CONFIG", os.path.join(env["MOLECULE_PROJECT_DIRECTORY"], "ansible.cfg"))
    path = os.path.join(env["MOLECULE_SCENARIO_DIRECTORY"], playbook)
    argv = ["ansible-playbook", "-i", env["MOLECULE_INVENTORY_FILE"], path, *args]
    if extra:
        argv += ["-e", json.dumps(extra)]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)


def recap_changed(output: str, host_name: str | None = None) -> int:
    """`changed=` of the test host's PLAY RECAP line (the host is tmpnb-<scenario> by default)."""
    name = host_name or f"tmpnb-{os.environ['MOLECULE_SCENARIO_NAME']}"
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    match = re.search(rf"{re.escape(name)}\s*:\s*ok=\d+\s+changed=(\d+)\s", output)
    assert match, f"no play recap for {name} in:\n{output[-3000:]}"
    return int(match.group(1))


def unit_property(host: Any, unit: str, prop: str) -> str:
    """`systemctl show --property PROP --value UNIT` on the test host."""
    return host.check_output(f"systemctl show --property {prop} --value {unit}")


def open_files(host: Any, pid: int | str) -> tuple[int, int]:
    """(soft, hard) `Max open files` of a process, from /proc/PID/limits on the test host."""
    limits = host.file(f"/proc/{pid}/limits").content_string.splitlines()
    soft, hard = next(ln for ln in limits if ln.startswith("Max open files")).split()[3:5]
    return int(soft), int(hard)


def check_phase_alone(playbook: str, phase: str) -> None:
    """`--tags <phase>` on the converged host (conference morning: `--tags configure`) succeeds,
    runs the phase's tasks (each phase finds what it needs from the others: registered results,
    facts) and changes nothing."""
    run = run_playbook(playbook, "--tags", phase)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert recap_changed(run.stdout) == 0
    # Untagged tasks would all be skipped: only the argument-spec check (tagged always) would run.
    tasks = [ln for ln in run.stdout.splitlines() if ln.startswith("TASK [")]
    ran = [ln for ln in tasks if "Validating arguments" not in ln]
    assert len(ran) >= 3, f"--tags {phase} ran only {ran}"
