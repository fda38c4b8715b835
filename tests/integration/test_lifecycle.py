"""Capacity, culling (idle and age), fail closed, and containers that die."""

from __future__ import annotations

import time

import requests

from testsupport.stack import TINY_COMMAND, instance_containers, wait_for


def _user_id(location: str) -> str:
    return location.split("/")[2]


def test_capacity_full_answers_429(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=2, capacity=2, spawn_wait=0, retry_after=7)
    assert orch.spawn(via=chp.url).status_code == 303
    assert orch.spawn(via=chp.url).status_code == 303
    full = orch.spawn(via=chp.url)
    assert full.status_code == 429
    assert full.headers["Retry-After"] == "7"
    assert "in use" in full.text and "<form" in full.text
    api = requests.post(f"{orch.url}/api/spawn", timeout=10)
    assert api.status_code == 429
    assert api.json()["error"] == "full"
    # never more than capacity containers
    time.sleep(1.5)
    assert len(instance_containers(dclient, orch.instance)) == 2
    assert orch.stats()["in_use"] == 2 and orch.stats()["available"] == 0


def test_visitor_waits_for_a_cold_start_when_the_pool_is_empty(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=0, capacity=2, spawn_wait=30)
    assert instance_containers(dclient, orch.instance) == []
    resp = orch.spawn(via=chp.url)
    assert resp.status_code == 303
    assert requests.get(f"{chp.url}{resp.headers['Location']}", timeout=5).status_code == 200
    assert orch.stats()["in_use"] == 1


def test_idle_notebook_is_culled_and_pool_refills(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=1, capacity=3, cull_timeout=2, cull_max_age=3600)
    location = orch.spawn(via=chp.url).headers["Location"]
    user_id = _user_id(location)
    path = f"/user/{user_id}"
    assert requests.get(f"{chp.url}{location}", timeout=5).status_code == 200

    def gone() -> bool:
        ours = [
            c for c in instance_containers(dclient, orch.instance) if c.labels["tmpnb.user_id"] == user_id
        ]
        return not ours and path not in chp.routes()

    wait_for(gone, 20, "idle notebook culled (route and container)")
    # the culled user's path now lands on the orchestrator's "gone" page (404), not on a 5xx
    after = requests.get(f"{chp.url}{location}", timeout=5)
    assert after.status_code == 404
    assert "gone" in after.text
    assert orch.metric("tmpnb_culls_total", 'reason="idle"') == 1
    wait_for(lambda: orch.stats()["available"] == 1, 20, "pool refilled after cull")


def test_active_notebook_is_culled_at_max_age(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=1, capacity=3, cull_timeout=3, cull_max_age=3)
    location = orch.spawn(via=chp.url).headers["Location"]
    path = f"/user/{_user_id(location)}"
    deadline = time.monotonic() + 20
    while path in chp.routes():  # keep it busy: activity does not save it from max age
        assert time.monotonic() < deadline, "not culled at max age"
        requests.get(f"{chp.url}{location}", timeout=5)
        time.sleep(0.3)
    assert orch.metric("tmpnb_culls_total", 'reason="max_age"') == 1
    assert orch.metric("tmpnb_culls_total", 'reason="idle"') == 0


def test_container_that_never_boots_is_never_handed_out(make_stack, dclient) -> None:
    sleeper = ["python3", "-c", "import time; time.sleep(3600)", "{base_path}"]
    chp, orch = make_stack(
        wait_pool=False, pool_size=1, capacity=2, boot_timeout=1.5, spawn_wait=0, command=sleeper
    )
    wait_for(lambda: orch.metric("tmpnb_failures_total", 'stage="boot"') >= 2, 30, "two boot timeouts")
    assert orch.stats()["available"] == 0
    resp = requests.post(f"{orch.url}/api/spawn", timeout=10)
    assert resp.status_code == 429
    ours = [r for r in chp.routes().values() if r.get("tmpnb_instance") == orch.instance]
    assert ours == []
    # failed containers are removed: at most the one booting now remains
    assert len(instance_containers(dclient, orch.instance)) <= 1
    # a config with a working command, applied by SIGHUP, recovers the pool
    orch.configure(command=TINY_COMMAND)
    orch.reload()
    wait_for(lambda: orch.stats()["available"] == 1, 60, "pool filled after SIGHUP reload")


def test_a_dead_container_is_cleaned_up_at_once(make_stack, dclient) -> None:
    chp, orch = make_stack(pool_size=2, capacity=4, reconcile_interval=3600)
    location = orch.spawn(via=chp.url).headers["Location"]
    user_id = _user_id(location)
    (victim,) = [
        c for c in instance_containers(dclient, orch.instance) if c.labels["tmpnb.user_id"] == user_id
    ]
    victim.kill()
    # followed from Docker's event stream (periodic reconcile is an hour away here)
    wait_for(lambda: f"/user/{user_id}" not in chp.routes(), 10, "route of the dead container deleted")
    wait_for(
        lambda: victim.id not in {c.id for c in instance_containers(dclient, orch.instance)}, 10, "removed"
    )
    assert orch.metric("tmpnb_failures_total", 'stage="died"') == 1
    assert orch.stats()["in_use"] == 0
    wait_for(lambda: orch.stats()["available"] == 2, 20, "pool refilled")
