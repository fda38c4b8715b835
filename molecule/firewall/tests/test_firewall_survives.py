"""roles/firewall's rules survive: a docker restart, a restart of their unit, rules gone from the
kernel (a re-run repairs them) and a reboot of the test host; bad input fails before any change;
each phase runs alone. Runs after test_firewall.py (the same converged host)."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from firewall_probes import (
    FILES,
    INTERNET,
    LAN,
    METADATA,
    SCAFFOLD,
    TARGETS,
    apply_role,
    changed,
    probe_from_container,
)
from role_run import check_phase_alone


def test_a_docker_restart_applies_the_rules_again(host):
    """Docker keeps DOCKER-USER across a restart anyway; to prove the unit re-applies (PartOf), the
    jump is removed first (a stand-in for rules lost), then docker restarts."""
    host.run_expect([0], "iptables -D DOCKER-USER -i tmpnb-+ -j TMPNB-EGRESS")
    assert host.run("/usr/local/sbin/tmpnb-firewall check").rc == 1
    host.run_expect([0], "systemctl restart docker.service")
    # `systemctl restart docker` returns once docker is up; the restart PartOf= propagates to
    # tmpnb-firewall.service is a job of its own that may still be running: wait for it (bounded).
    checked = host.run(
        "for i in $(seq 60); do /usr/local/sbin/tmpnb-firewall check && exit 0; sleep 0.5; done; exit 1"
    )
    assert checked.rc == 0, checked.stdout + checked.stderr
    assert (
        host.check_output("iptables -S DOCKER-USER").splitlines()[1]
        == "-A DOCKER-USER -i tmpnb-+ -j TMPNB-EGRESS"
    )
    assert probe_from_container(host, METADATA, LAN) == {METADATA: "refused", LAN: "refused"}


def test_a_restart_of_the_unit_restores_flushed_chains(host):
    host.run_expect([0], "iptables -F TMPNB-EGRESS")
    host.run_expect([0], "iptables -D INPUT -i tmpnb-+ -j TMPNB-INPUT")
    assert host.run("/usr/local/sbin/tmpnb-firewall check").rc == 1
    host.run_expect([0], "systemctl restart tmpnb-firewall.service")
    assert host.run("/usr/local/sbin/tmpnb-firewall check").rc == 0
    assert probe_from_container(host, METADATA, "10.99.255.1:2222") == {
        METADATA: "refused",
        "10.99.255.1:2222": "refused",
    }


def test_a_rerun_repairs_rules_gone_from_the_kernel(host):
    host.run_expect([0], "iptables -F TMPNB-EGRESS")
    run = apply_role()
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed(run) == 1
    assert host.run("/usr/local/sbin/tmpnb-firewall check").rc == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("firewall_egress", "maybe"),
        ("firewall_egress_allow", ["203.0.113.300/32"]),
        ("firewall_egress_allow", ["203.0.113.0/24:99999"]),
        ("firewall_reject_networks_extra", ["10.0.0.0/33"]),
        ("firewall_dns_servers", ["resolver.example"]),
        ("firewall_public_ports", [70000]),
    ],
)
def test_bad_variable_fails_before_any_change(host, variable, value):
    rules = "iptables-save -t filter | grep -E 'TMPNB|tmpnb'"
    before = [host.file(f).sha256sum for f in FILES] + [host.check_output(rules)]
    extra = {variable: value}
    if variable == "firewall_egress_allow":
        extra["firewall_egress"] = "list"
    run = apply_role(extra)
    assert run.returncode != 0
    assert variable in run.stdout + run.stderr
    assert changed(run) == 0
    assert [host.file(f).sha256sum for f in FILES] + [host.check_output(rules)] == before


def test_list_without_entries_is_refused(host):
    run = apply_role({"firewall_egress": "list"})
    assert run.returncode != 0
    assert "firewall_egress_allow" in run.stdout + run.stderr and "deny" in run.stdout + run.stderr
    assert changed(run) == 0


def test_rules_in_force_after_a_reboot(host):
    """Restart the whole test host (a new network namespace: the kernel's rules start empty), then
    systemd brings up docker and tmpnb-firewall; the targets come back (they live in /run)."""
    name = host.check_output("hostname")
    subprocess.run(["docker", "restart", name], check=True, capture_output=True, timeout=120)
    host.run("systemctl is-system-running --wait")
    # The unit may still be starting when systemd answers: wait for it (bounded), assert nothing on time.
    for _ in range(60):
        if host.run("systemctl is-active --quiet tmpnb-firewall.service").rc == 0:
            break
        time.sleep(1)
    check = host.run("/usr/local/sbin/tmpnb-firewall check")
    assert check.rc == 0, check.stderr + host.check_output(
        "journalctl -b --no-pager -u tmpnb-firewall -u docker | tail -20"
    )
    assert (
        host.check_output("iptables -S DOCKER-USER").splitlines()[1]
        == "-A DOCKER-USER -i tmpnb-+ -j TMPNB-EGRESS"
    )
    host.run_expect([0], f"{SCAFFOLD}/targets.sh up {TARGETS}")
    assert probe_from_container(host, METADATA, INTERNET) == {
        METADATA: "refused",
        INTERNET: "open tmpnb-target 198.51.100.7:80",
    }


@pytest.mark.parametrize("phase", ["install", "configure", "service"])
def test_one_phase_alone_runs_and_changes_nothing(phase):
    check_phase_alone("apply.yml", phase)
