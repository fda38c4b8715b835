"""Reconcile, never purge: orchestrator and CHP restarts keep every session; others' things untouched."""

from __future__ import annotations

import requests

from testsupport.stack import instance_containers, wait_for


def test_orchestrator_restart_adopts_pool_and_users(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=2, capacity=4)
    location = orch.spawn(via=chp.url).headers["Location"]
    user_id = location.split("/")[2]
    wait_for(lambda: orch.stats()["available"] == 2, 30, "pool refilled")
    before = {c.id: c.labels["tmpnb.user_id"] for c in instance_containers(dclient, orch.instance)}
    assert len(before) == 3

    assert orch.stop() == 0
    # stopping leaves every container running, and the user keeps working meanwhile
    running = [c for c in instance_containers(dclient, orch.instance) if c.status == "running"]
    assert {c.id for c in running} == set(before)
    assert requests.get(f"{chp.url}{location}", timeout=5).status_code == 200

    orch.start(wait_pool=False)
    stats = orch.stats()
    assert stats["in_use"] == 1, stats
    assert stats["available"] == 2, stats
    assert {c.id for c in instance_containers(dclient, orch.instance)} == set(before)  # adopted, not replaced
    assert "adopted" in orch.log()
    assert requests.get(f"{chp.url}{location}", timeout=5).status_code == 200
    assert chp.routes()[f"/user/{user_id}"]["tmpnb_state"] == "in_use"
    # the adopted in-use container is never handed out again
    urls = {orch.spawn(via=chp.url).headers["Location"] for _ in range(2)}
    assert location not in urls


def test_chp_restart_restores_every_route(make_stack, dclient) -> None:
    # periodic passes an hour away: only the CHP watch (or a visitor arriving) can notice
    chp, orch = make_stack(pool_size=2, capacity=4, reconcile_interval=3600, cull_interval=3600)
    location = orch.spawn(via=chp.url).headers["Location"]
    user_id = location.split("/")[2]
    wait_for(lambda: orch.stats()["available"] == 2, 30, "pool refilled")
    ours = {p: r for p, r in chp.routes().items() if r.get("tmpnb_instance") == orch.instance}
    assert len(ours) == 3

    chp.stop()
    chp.start()  # same ports, empty routing table
    assert not any(r.get("tmpnb_instance") for r in chp.routes().values())
    # a visitor arriving first lands on the orchestrator, which re-adds the route and sends them back
    back = requests.get(f"{chp.url}{location}", timeout=10)
    assert back.status_code == 200
    assert f"tinynb at /user/{user_id}/" in back.text

    def restored() -> bool:
        now = {p: r for p, r in chp.routes().items() if r.get("tmpnb_instance") == orch.instance}
        return set(now) == set(ours)

    wait_for(restored, 15, "all routes re-added after CHP restart")
    routes = chp.routes()
    for path, old in ours.items():
        assert routes[path]["target"] == old["target"]
        assert routes[path]["tmpnb_state"] == old["tmpnb_state"]
    assert routes[f"/user/{user_id}"]["tmpnb_handed_out"] == ours[f"/user/{user_id}"]["tmpnb_handed_out"]
    assert requests.get(f"{chp.url}{location}", timeout=5).status_code == 200
    assert orch.metric("tmpnb_routes_restored_total") >= 3
    stats = orch.stats()
    assert stats["in_use"] == 1 and stats["available"] == 2


def test_foreign_containers_and_routes_are_untouched(make_stack, dclient, image) -> None:
    chp, orch = make_stack(start=False, pool_size=1, capacity=2)
    sleep = ["python3", "-c", "import time; time.sleep(3600)"]
    # same name prefix as ours, no labels; another instance's container; a dead lookalike
    lookalike = dclient.containers.run(
        image, sleep, name=f"tmpnb-{orch.instance}-AAAAAAAAAAAAAAAA", detach=True
    )
    other = dclient.containers.run(
        image,
        sleep,
        name=f"tmpnb-{orch.instance}x-BBBBBBBBBBBBBBBB",
        labels={"tmpnb.instance": f"{orch.instance}x", "tmpnb.user_id": "BBBBBBBBBBBBBBBB"},
        detach=True,
    )
    exited = dclient.containers.create(image, ["true"], name=f"tmpnb-{orch.instance}-exited")
    try:
        chp.add_route("/user/someone-else", "http://127.0.0.1:9", owner="not tmpnb")
        chp.add_route("/other-app", "http://127.0.0.1:9")
        orch.start()
        wait_for(
            lambda: "reconciled" in orch.log() or orch.metric("tmpnb_reconciles_total") >= 2, 15, "reconcile"
        )
        orch.stop()
        for c in (lookalike, other):
            c.reload()
            assert c.status == "running", c.name
        exited.reload()
        assert exited.status == "created"
        routes = chp.routes()
        assert "/user/someone-else" in routes and "/other-app" in routes
    finally:
        for c in (lookalike, other, exited):
            c.remove(force=True)


def test_a_dead_container_of_ours_is_removed_and_its_route_dropped_at_start(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=1, capacity=3)
    location = orch.spawn(via=chp.url).headers["Location"]
    user_id = location.split("/")[2]
    orch.stop()
    (victim,) = [
        c for c in instance_containers(dclient, orch.instance) if c.labels["tmpnb.user_id"] == user_id
    ]
    victim.stop(timeout=0)  # dies while no orchestrator watches
    assert f"/user/{user_id}" in chp.routes()
    orch.start()
    assert f"/user/{user_id}" not in chp.routes()
    ids = {c.id for c in instance_containers(dclient, orch.instance)}
    assert victim.id not in ids
