"""More than one bridge (issue 10): how many networks, their names, and where a new container goes."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tmpnb.config import ConfigError, from_mapping
from tmpnb.docker_spec import (
    BRIDGE_NAME_OPTION,
    ICC_OPTION,
    bridge_name,
    container_spec,
    network_problem,
    parse_container,
)
from tmpnb.orchestrator import Orchestrator
from tmpnb.placement import instance_network, least_full, network_names, networks_needed

ENV = {"CONFIGPROXY_AUTH_TOKEN": "chp"}
UNREACHABLE = {"chp_api_url": "http://127.0.0.1:9", "docker_url": "unix:///nonexistent/docker.sock"}


def test_networks_needed_rounds_up_and_is_at_least_one() -> None:
    assert networks_needed(1, 1000) == 1
    assert networks_needed(1000, 1000) == 1
    assert networks_needed(1001, 1000) == 2
    assert networks_needed(5, 2) == 3
    assert networks_needed(2000, 1000) == 2


def test_one_network_keeps_todays_name_several_are_numbered() -> None:
    assert network_names("tmpnb-demo", 1) == ("tmpnb-demo",)
    assert network_names("tmpnb-demo", 3) == ("tmpnb-demo-0", "tmpnb-demo-1", "tmpnb-demo-2")
    # every bridge keeps the prefix the egress firewall matches (`-i tmpnb-+`), within IFNAMSIZ
    for name in network_names("a-rather-long-custom-network-name", 40):
        assert bridge_name(name).startswith("tmpnb-") and len(bridge_name(name)) < 16


def test_a_new_container_goes_to_the_least_full_network_first_on_a_tie() -> None:
    names = ("n-0", "n-1", "n-2")
    assert least_full(names, {}) == "n-0"
    assert least_full(names, {"n-0": 1}) == "n-1"
    assert least_full(names, {"n-0": 2, "n-1": 1, "n-2": 1}) == "n-1"
    assert least_full(names, {"n-0": 0, "n-1": 5, "n-2": 0}) == "n-0"
    # containers on a network no longer in the list (capacity lowered) do not confuse it
    assert least_full(("n",), {"n-0": 3, "n": 1}) == "n"
    with pytest.raises(ValueError, match="no network"):
        least_full((), {})


def test_the_instance_network_of_a_container_is_base_or_base_dash_number() -> None:
    assert instance_network("tmpnb-x", ["bridge", "tmpnb-x-1"]) == "tmpnb-x-1"
    assert instance_network("tmpnb-x", ["tmpnb-x"]) == "tmpnb-x"
    assert instance_network("tmpnb-x", ["tmpnb-xy", "tmpnb-x-a", "tmpnb-x-1-2", "other"]) is None
    assert instance_network("a.b", ["a-b-0", "aXb-0"]) is None  # the base is literal, not a pattern


def test_containers_on_any_of_the_instance_networks_are_adopted_with_their_address() -> None:
    raw = {
        "Id": "abc",
        "State": "running",
        "Labels": {"tmpnb.instance": "x", "tmpnb.user_id": "a", "tmpnb.user_path": "/user/a/"},
        "NetworkSettings": {"Networks": {"tmpnb-x-2": {"IPAddress": "10.7.0.3"}}},
    }
    c = parse_container(raw, "x", "tmpnb-x", 8888)
    assert c is not None and c.target == "http://10.7.0.3:8888" and c.network == "tmpnb-x-2"


def test_config_derives_the_networks_and_keeps_one_name_below_the_limit() -> None:
    assert from_mapping({"image": "i", "instance": "d"}, ENV).network_names == ("tmpnb-d",)
    c = from_mapping({"image": "i", "instance": "d", "capacity": 5, "containers_per_network": 2}, ENV)
    assert c.network_names == ("tmpnb-d-0", "tmpnb-d-1", "tmpnb-d-2")
    c = from_mapping({"image": "i", "network": "nb", "capacity": 1500}, ENV)
    assert c.network_names == ("nb-0", "nb-1")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"containers_per_network": 0}, "containers_per_network"),
        ({"containers_per_network": 1024}, "containers_per_network"),
        ({"containers_per_network": "10"}, "containers_per_network"),
        ({"containers_per_network": 1, "capacity": 65}, "needs 65 Docker networks"),
    ],
)
def test_wrong_containers_per_network_is_a_clear_error(raw: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        from_mapping({"image": "i", **raw}, ENV)


def test_a_network_another_instance_created_is_refused() -> None:
    # instance "demo" with several networks has tmpnb-demo-1, the only network of instance "demo-1"
    info = {
        "Driver": "bridge",
        "Options": {ICC_OPTION: "false", BRIDGE_NAME_OPTION: bridge_name("tmpnb-demo-1")},
        "Labels": {"tmpnb.instance": "demo-1"},
    }
    problem = network_problem("tmpnb-demo-1", info, "demo")
    assert problem is not None and "belongs to tmpnb instance 'demo-1'" in problem
    assert network_problem("tmpnb-demo-1", info, "demo-1") is None
    assert network_problem("tmpnb-demo-1", {**info, "Labels": {}}, "demo") is None  # made by hand


def test_the_container_spec_attaches_to_the_network_chosen() -> None:
    c = from_mapping({"image": "i", "capacity": 5, "containers_per_network": 2}, ENV)
    spec = container_spec(c, "u", 1.0, "tmpnb-tmpnb-1")
    assert spec["HostConfig"]["NetworkMode"] == "tmpnb-tmpnb-1"
    assert list(spec["NetworkingConfig"]["EndpointsConfig"]) == ["tmpnb-tmpnb-1"]


async def test_refill_spreads_new_containers_over_the_networks() -> None:
    raw = {"image": "i", "capacity": 5, "pool_size": 5, "max_concurrent_starts": 5}
    o = Orchestrator(from_mapping({**raw, "containers_per_network": 2, **UNREACHABLE}, ENV))
    try:
        o.network_error = None  # as if the networks had been checked fit
        o.refill_once()
        placed = Counter(s.network for s in o.pool.slots.values())
        assert placed == {"tmpnb-tmpnb-0": 2, "tmpnb-tmpnb-1": 2, "tmpnb-tmpnb-2": 1}
    finally:
        await asyncio.gather(*o.runtime.tasks, return_exceptions=True)  # the unreachable engine fails them
        await o.chp.close()
        await o.docker.close()


async def test_a_reload_that_needs_more_networks_checks_them_before_any_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "chp")
    path = tmp_path / "tmpnb.toml"
    base = 'image = "i"\npool_size = 0\ncontainers_per_network = 2\n'
    base += f'chp_api_url = "{UNREACHABLE["chp_api_url"]}"\ndocker_url = "{UNREACHABLE["docker_url"]}"\n'
    path.write_text(base + "capacity = 2\n")
    o = Orchestrator(
        from_mapping(
            {"image": "i", "pool_size": 0, "containers_per_network": 2, "capacity": 2, **UNREACHABLE}, ENV
        ),
        str(path),
    )
    try:
        o.network_error = None
        path.write_text(base + "capacity = 4\n")
        assert await o.reload() == ["capacity"]
        assert o.config.network_names == ("tmpnb-tmpnb-0", "tmpnb-tmpnb-1")
        assert o.network_error is not None and "not checked" in o.network_error
    finally:
        await o.chp.close()
        await o.docker.close()
