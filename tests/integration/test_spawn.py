"""A visitor gets a pooled notebook through CHP; the container is locked down; crawlers spawn nothing."""

from __future__ import annotations

import re

import requests

from testsupport.stack import TOKEN, instance_containers, tiny_image, wait_for
from tmpnb.docker_spec import bridge_name


def test_pool_hand_out_through_chp(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=2, capacity=4)
    containers = instance_containers(dclient, orch.instance)
    assert len(containers) == 2
    before = {c.id for c in containers}

    # GET / is a page that spawns with JavaScript (button fallback): it starts nothing by itself.
    page = requests.get(f"{chp.url}/", timeout=5)
    assert page.status_code == 200
    assert 'method="post" action="/spawn"' in page.text
    assert "<button" in page.text and "submit()" in page.text
    assert orch.stats()["available"] == 2
    assert {c.id for c in instance_containers(dclient, orch.instance)} == before

    # POST /spawn through CHP (as nginx would send it) -> 303 to /user/<id>/tree
    resp = orch.spawn(via=chp.url)
    assert resp.status_code == 303, resp.text
    location = resp.headers["Location"]
    m = re.fullmatch(r"/user/([0-9a-f]{12})-[A-Za-z0-9_-]{16}/tree", location)
    assert m, location
    user_id = location.split("/")[2]
    # the id carries the key of the image its container runs (nginx picks that image's static copy)
    assert m.group(1) == dclient.images.get(tiny_image(dclient)).id.removeprefix("sha256:")[:12]

    # the user path answers through CHP, served by that user's own container
    nb = requests.get(f"{chp.url}{location}", timeout=5)
    assert nb.status_code == 200
    assert f"tinynb at /user/{user_id}/" in nb.text
    assert "uid=1000" in nb.text

    # handed out from the pool: no new container for this visitor, and the hand-out is in CHP
    route = chp.routes()[f"/user/{user_id}"]
    assert route["tmpnb_state"] == "in_use"
    assert route["tmpnb_instance"] == orch.instance
    assert isinstance(route["tmpnb_handed_out"], float)
    handed = [c for c in instance_containers(dclient, orch.instance) if c.labels["tmpnb.user_id"] == user_id]
    assert len(handed) == 1 and handed[0].id in before

    # the pool refills to its size
    wait_for(lambda: orch.stats()["available"] == 2, 30, "pool refilled")
    stats = orch.stats()
    assert stats["in_use"] == 1
    assert stats["capacity"] == 4
    assert stats["image"] == orch.options["image"]
    assert stats["version"]

    # JSON API
    api = requests.post(f"{orch.url}/api/spawn", timeout=30)
    assert api.status_code == 200
    url = api.json()["url"]
    assert url.startswith("/user/") and url.endswith("/tree")
    assert requests.get(f"{chp.url}{url}", timeout=5).status_code == 200
    assert url != location


def test_container_is_locked_down(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=1, capacity=2, mem_limit_mb=256, pids_limit=64, cpu_shares=512, cpus=0.5)
    (container,) = instance_containers(dclient, orch.instance)
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] == 256 * 1024 * 1024
    assert host["MemorySwap"] == 256 * 1024 * 1024
    assert host["PidsLimit"] == 64
    assert host["CpuShares"] == 512
    assert host["NanoCpus"] == 500_000_000  # a hard cap of half a core
    assert not host.get("PortBindings")
    ports = attrs["NetworkSettings"]["Ports"] or {}
    assert all(v is None for v in ports.values())
    labels = attrs["Config"]["Labels"]
    assert labels["tmpnb.instance"] == orch.instance
    assert labels["tmpnb.user_path"] == f"/user/{labels['tmpnb.user_id']}/"
    assert float(labels["tmpnb.created"]) > 0
    # dedicated network, inter-container traffic off; CHP routes straight to the container's IP
    net = dclient.networks.get(f"tmpnb-{orch.instance}")
    assert net.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    # a deterministic bridge name the egress firewall matches (tmpnb-+)
    assert net.attrs["Options"]["com.docker.network.bridge.name"] == bridge_name(f"tmpnb-{orch.instance}")
    # disk: read-only root, bounded tmpfs for home and /tmp, bounded /dev/shm
    host = attrs["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"]["/home/jovyan"].startswith("size=128m,uid=1000,gid=1000")
    assert host["Tmpfs"]["/tmp"].startswith("size=32m")
    assert host["ShmSize"] == 32 * 1024 * 1024
    ip = attrs["NetworkSettings"]["Networks"][f"tmpnb-{orch.instance}"]["IPAddress"]
    route = chp.routes()[f"/user/{labels['tmpnb.user_id']}"]
    assert route["target"] == f"http://{ip}:8888"
    assert route["tmpnb_state"] == "pooled"
    # metrics and health
    assert requests.get(f"{orch.url}/healthz", timeout=10).json() == {
        "ok": True,
        "docker": True,
        "chp": True,
        "network": True,
    }
    text = requests.get(f"{orch.url}/metrics", timeout=5).text
    for name in ("tmpnb_boot_duration_seconds_bucket", "tmpnb_spawn_duration_seconds", "tmpnb_culls"):
        assert name in text
    assert orch.metric("tmpnb_containers_pooled") == 1
    assert TOKEN not in text
