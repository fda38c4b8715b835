"""What the firewall scenario's tests share: the probe targets inside the test host
(prepare.yml, files/targets.sh), probes from the host and from a container on a network made like
the orchestrator's, and running roles/firewall again (molecule/firewall/apply.yml)."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from role_run import recap_changed, run_playbook

NETWORK = "tmpnb-fw-test"
IMAGE = "tmpnb-firewall-probe:1"
# A peer container that idles (stdin kept open with -i) for at most 2 minutes.
IDLE = "/usr/bin/timeout 120 /bin/bash -c read"
SCAFFOLD = "/usr/local/lib/tmpnb-test"
TARGETS = (
    "--host 2222 --host 80 169.254.169.254:80 10.99.0.2:80 10.99.0.2:53 198.51.100.7:80 198.51.100.7:8080"
)
METADATA, LAN, INTERNET = "169.254.169.254:80", "10.99.0.2:80", "198.51.100.7:80"
# Watched by the bad-input test: the role's files and the kernel's rules.
FILES = (
    "/etc/tmpnb-firewall/rules.v4",
    "/etc/tmpnb-firewall/rules.v6",
    "/usr/local/sbin/tmpnb-firewall",
    "/etc/systemd/system/tmpnb-firewall.service",
)


def _routed_inside(host) -> None:
    """Never probe a target that is not routed into the test host's namespace."""
    for addr in ("169.254.169.254", "10.99.0.2", "198.51.100.7"):
        route = host.check_output(f"ip route get {addr}")
        assert "dev tgt-host " in route, f"{addr} is not routed into the targets namespace: {route}"


def probe_results(output: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in output.splitlines() if line.strip())


def probe_from_host(host, *targets: str) -> dict[str, str]:
    _routed_inside(host)
    return probe_results(host.check_output(f"{SCAFFOLD}/probe.sh {' '.join(targets)}"))


def probe_from_container(host, *targets: str) -> dict[str, str]:
    _routed_inside(host)
    out = host.check_output(
        f"docker run --rm --network {NETWORK} {IMAGE} /bin/bash /probe.sh {' '.join(targets)}"
    )
    return probe_results(out)


def apply_role(extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run molecule/firewall/apply.yml (roles/firewall alone) with extra variables."""
    return run_playbook("apply.yml", extra=extra)


def changed(run: subprocess.CompletedProcess) -> int:
    return recap_changed(run.stdout)
