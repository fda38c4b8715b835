"""roles/firewall on a systemd test host: from a container on a network made like the
orchestrator's (bridge tmpnb-0123abcd, icc off), cloud metadata, the LAN and the host's own services
are refused at once, the public site answers, internet egress follows firewall_egress; the rules
come back after a docker restart, a restart of their unit and a reboot of the host, and bad input
changes nothing (test_firewall_survives.py, run after this file).

Every target lives INSIDE the test host (prepare.yml, files/targets.sh): a network namespace holding
169.254.169.254, 10.99.0.2 and 198.51.100.7 (a documentation range standing in for the internet),
routed from the test host; listeners on the host's 0.0.0.0:2222 (sshd) and 0.0.0.0:80 (nginx)."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

from firewall_probes import (
    IDLE,
    IMAGE,
    INTERNET,
    LAN,
    METADATA,
    NETWORK,
    SCAFFOLD,
    apply_role,
    changed,
    probe_from_container,
    probe_from_host,
    probe_results,
)


@pytest.fixture(scope="module")
def addrs(host) -> dict[str, str]:
    """The test host's own addresses a notebook could aim at."""
    gateway = host.check_output(
        f"docker network inspect {NETWORK} --format '{{{{(index .IPAM.Config 0).Gateway}}}}'"
    )
    eth0 = host.check_output("ip -4 -o addr show dev eth0").split()[3].split("/")[0]
    bridge = host.check_output(
        f"docker network inspect {NETWORK} --format "
        "'{{index .Options \"com.docker.network.bridge.name\"}}'"
    )
    return {"gateway": gateway, "eth0": eth0, "veth": "10.99.255.1", "bridge": bridge}


def test_unit_applied_and_enabled(host):
    unit = host.service("tmpnb-firewall.service")
    assert unit.is_enabled
    assert host.check_output("systemctl show -p ActiveState --value tmpnb-firewall.service") == "active"
    assert host.run("/usr/local/sbin/tmpnb-firewall check").rc == 0
    # The kit's chain comes first in DOCKER-USER and INPUT, matching the notebooks' bridges only.
    assert (
        host.check_output("iptables -S DOCKER-USER").splitlines()[1]
        == "-A DOCKER-USER -i tmpnb-+ -j TMPNB-EGRESS"
    )
    assert host.check_output("iptables -S INPUT").splitlines()[1] == "-A INPUT -i tmpnb-+ -j TMPNB-INPUT"


def test_network_is_like_the_orchestrators(addrs):
    assert addrs["bridge"] == "tmpnb-0123abcd"


def test_controls_the_host_reaches_every_target(host, addrs):
    """Without the firewall in the path (the host itself), every listener answers."""
    targets = [METADATA, LAN, INTERNET, "198.51.100.7:8080", "10.99.0.2:53"]
    targets += [f"{addrs[a]}:{p}" for a in ("gateway", "eth0", "veth") for p in (2222, 80)]
    results = probe_from_host(host, *targets)
    assert all(r.startswith("open tmpnb-target") for r in results.values()), results


def test_notebook_is_refused_metadata_lan_and_host_services(host, addrs):
    results = probe_from_container(
        host, METADATA, LAN, f"{addrs['eth0']}:2222", f"{addrs['gateway']}:2222", f"{addrs['veth']}:2222"
    )
    # refused, not timeout: REJECT answers at once (the probe gives each connection 5 s).
    assert set(results.values()) == {"refused"}, results


def test_notebook_reaches_public_site_and_internet(host, addrs):
    results = probe_from_container(host, f"{addrs['eth0']}:80", f"{addrs['gateway']}:80", INTERNET)
    assert results == {
        f"{addrs['eth0']}:80": "open tmpnb-target 0.0.0.0:80",
        f"{addrs['gateway']}:80": "open tmpnb-target 0.0.0.0:80",
        INTERNET: "open tmpnb-target 198.51.100.7:80",
    }


def test_embedded_dns_needs_no_rule(host):
    """Docker's embedded DNS (127.0.0.11) answers inside the container's own namespace: with the
    host's INPUT rejecting all but 80/443 from the bridge, a container name still resolves."""
    peer = "tmpnb-fw-peer"
    host.run(f"docker rm -f {peer}")
    host.run_expect(
        [0],
        f"docker run -d -i --name {peer} --network {NETWORK} {IMAGE} {IDLE}",
    )
    try:
        out = host.check_output(f"docker run --rm --network {NETWORK} {IMAGE} /usr/bin/getent hosts {peer}")
        assert out.split()[1] == peer
    finally:
        host.run(f"docker rm -f {peer}")


def test_notebook_is_refused_the_host_over_ipv6_link_local(host, addrs):
    """The kit's networks are IPv4-only, but a bridge has an fe80:: address: the host's services on
    [::] must not answer through it either (the role drops all IPv6 from the notebooks' bridges)."""
    peer = "tmpnb-fw-peer6"
    host.run(f"docker rm -f {peer}")
    # A port on the bridge brings it up (an idle bridge has no carrier and no link-local address).
    host.run_expect(
        [0],
        f"docker run -d -i --name {peer} --network {NETWORK} {IMAGE} {IDLE}",
    )
    try:
        time.sleep(2)  # IPv6 duplicate address detection; not an assertion on timing
        bridge_ll = host.run(f"ip -6 -o addr show dev {addrs['bridge']} scope link")
    finally:
        host.run(f"docker rm -f {peer}")
    if not bridge_ll.stdout.strip():
        pytest.skip("Docker gives the IPv4-only bridge no IPv6 address here: nothing to reach over IPv6")
    gateway6 = bridge_ll.stdout.split()[3].split("/")[0]
    # The host itself reaches its listener on [::]:2222 through the bridge's address (control).
    control = host.check_output(f"{SCAFFOLD}/probe.sh [{gateway6}%{addrs['bridge']}]:2222")
    host_control = probe_results(control)
    assert list(host_control.values()) == ["open tmpnb-target 0.0.0.0:2222"], host_control
    results = probe_from_container(host, f"[{gateway6}%eth0]:2222", f"[{gateway6}%eth0]:80")
    assert set(results.values()) <= {"refused", "unreachable"}, results


def test_deny_refuses_the_internet_keeps_the_public_site(host, addrs):
    run = apply_role({"firewall_egress": "deny"})
    assert run.returncode == 0, run.stdout[-3000:]
    results = probe_from_container(host, INTERNET, "198.51.100.7:8080", METADATA, f"{addrs['gateway']}:80")
    assert results == {
        INTERNET: "refused",
        "198.51.100.7:8080": "refused",
        METADATA: "refused",
        f"{addrs['gateway']}:80": "open tmpnb-target 0.0.0.0:80",
    }


def test_list_lets_only_the_listed_destinations_through(host):
    run = apply_role(
        {
            "firewall_egress": "list",
            "firewall_egress_allow": ["198.51.100.7/32:8080"],
            "firewall_dns_servers": ["10.99.0.2"],
        }
    )
    assert run.returncode == 0, run.stdout[-3000:]
    results = probe_from_container(host, INTERNET, "198.51.100.7:8080", "10.99.0.2:53", LAN, METADATA)
    assert results == {
        INTERNET: "refused",
        "198.51.100.7:8080": "open tmpnb-target 198.51.100.7:8080",
        # A resolver in a rejected range: port 53 only.
        "10.99.0.2:53": "open tmpnb-target 10.99.0.2:53",
        LAN: "refused",
        METADATA: "refused",
    }


def test_back_to_the_defaults(host):
    run = apply_role()
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed(run) > 0
    assert changed(apply_role()) == 0
    assert probe_from_container(host, INTERNET, "198.51.100.7:8080", "10.99.0.2:53") == {
        INTERNET: "open tmpnb-target 198.51.100.7:80",
        "198.51.100.7:8080": "open tmpnb-target 198.51.100.7:8080",
        "10.99.0.2:53": "refused",
    }
