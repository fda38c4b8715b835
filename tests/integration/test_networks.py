"""More than one bridge (issue 10): a capacity that needs several networks, against the real
engine and a real CHP. Containers are spread over tmpnb-<instance>-0, -1, ...; each serves through
CHP; a restart adopts them all; a container on one network cannot reach one on another (nor a
neighbour on its own: inter-container traffic is off on every one of them)."""

from __future__ import annotations

from collections import defaultdict

import requests

from testsupport.stack import instance_containers, wait_for
from tmpnb.docker_spec import BRIDGE_NAME_OPTION, ICC_OPTION, bridge_name

PORT = 8888
# Run inside a notebook container (the tiny image has python3): connect to host:port, print the outcome.
PROBE = (
    "import socket,sys\n"
    "s=socket.socket(); s.settimeout(3)\n"
    "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('CONNECTED')\n"
    "except OSError as e:\n    print('BLOCKED', e)\n"
)


def probe(container, ip: str) -> str:
    result = container.exec_run(["python3", "-c", PROBE, ip, str(PORT)])
    return result.output.decode(errors="replace").strip()


def placement(dclient, instance: str) -> dict[str, list]:
    """network name -> [(container, ip)] of the instance's running containers."""
    by_net: dict[str, list] = defaultdict(list)
    for c in instance_containers(dclient, instance):
        c.reload()
        assert c.status == "running", c.status
        nets = c.attrs["NetworkSettings"]["Networks"]
        assert len(nets) == 1, nets  # each container is on exactly one network
        [(name, info)] = nets.items()
        by_net[name].append((c, info["IPAddress"]))
    return dict(by_net)


def test_capacity_past_one_network_spreads_serves_adopts_and_isolates(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=5, capacity=5, containers_per_network=2, max_concurrent_starts=5)
    base = f"tmpnb-{orch.instance}"
    by_net = placement(dclient, orch.instance)
    assert sorted(by_net) == [f"{base}-0", f"{base}-1", f"{base}-2"], by_net
    assert sorted(len(v) for v in by_net.values()) == [1, 2, 2]  # least full first: 2 + 2 + 1
    for name in by_net:
        options = dclient.networks.get(name).attrs["Options"]
        assert options[ICC_OPTION] == "false"
        assert options[BRIDGE_NAME_OPTION] == bridge_name(name)
        assert bridge_name(name).startswith("tmpnb-")  # the egress firewall's `-i tmpnb-+`
    assert requests.get(f"{orch.url}/healthz", timeout=10).json()["network"] is True

    # every container has its route in CHP and serves through it
    def serve_all() -> set[str]:
        ours = {p: r for p, r in chp.routes().items() if r.get("tmpnb_instance") == orch.instance}
        for path in ours:
            answer = requests.get(f"{chp.url}{path}/", timeout=10)
            assert answer.status_code == 200 and f"tinynb at {path}/" in answer.text, (path, answer.text)
        return {r["target"] for r in ours.values()}

    targets = {f"http://{ip}:{PORT}" for members in by_net.values() for _, ip in members}
    assert serve_all() == targets
    location = orch.spawn(via=chp.url).headers["Location"]
    assert requests.get(f"{chp.url}{location}", timeout=10).status_code == 200

    # no container reaches one on another network, nor its neighbour on its own
    (a, a_ip) = next(members for members in by_net.values() if len(members) == 2)[0]
    assert probe(a, a_ip).startswith("CONNECTED")  # the probe can succeed: its own server answers
    for name, members in by_net.items():
        for other, ip in members:
            if other.id != a.id:
                outcome = probe(a, ip)
                assert outcome.startswith("BLOCKED"), f"{a.name} reached {other.name} on {name}: {outcome}"

    # a restart adopts every container on every network, replaces none, and all still serve
    before = {c.id for c in instance_containers(dclient, orch.instance)}
    assert orch.stop() == 0
    orch.start(wait_pool=False)
    wait_for(lambda: orch.stats()["available"] + orch.stats()["in_use"] == 5, 30, "all five adopted")
    stats = orch.stats()
    assert (stats["in_use"], stats["available"]) == (1, 4), stats
    assert {c.id for c in instance_containers(dclient, orch.instance)} == before
    assert "adopted" in orch.log()
    assert serve_all() == targets
    assert requests.get(f"{orch.url}/healthz", timeout=10).json()["network"] is True
