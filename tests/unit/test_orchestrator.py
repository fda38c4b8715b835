"""Orchestrator decisions that need no Docker: an unreachable engine and CHP, a hand-made pool."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from tmpnb.config import from_mapping
from tmpnb.docker_spec import ContainerEvent, parse_event
from tmpnb.orchestrator import Full, NotRecorded, Orchestrator
from tmpnb.pool import Slot, State

UNREACHABLE = {"chp_api_url": "http://127.0.0.1:9", "docker_url": "unix:///nonexistent/docker.sock"}


@pytest.fixture
async def orch() -> AsyncIterator[Orchestrator]:
    config = from_mapping({"image": "new", "pool_size": 0, **UNREACHABLE}, {"CONFIGPROXY_AUTH_TOKEN": "chp"})
    o = Orchestrator(config)
    yield o
    await asyncio.gather(*o.runtime.tasks, return_exceptions=True)
    await o.chp.close()
    await o.docker.close()


def _pooled(uid: str, image: str = "new") -> Slot:
    return Slot(uid, f"/user/{uid}", image, 1.0, State.POOLED, "", "http://10.9.9.9:8888")


async def test_a_slot_chosen_for_removal_is_never_handed_out_meanwhile(orch: Orchestrator) -> None:
    # refill removes a pooled slot of an old image; a spawn handled before that removal task runs
    # must not get it (the visitor would be sent to a container about to be killed)
    orch.pool.add(_pooled("stale", image="old"))
    orch.refill_once()
    assert orch.pool.take(2.0) is None
    await asyncio.gather(*orch.runtime.tasks)
    assert "stale" not in orch.pool.slots


async def test_drain_claims_every_pooled_slot_before_removing_any(orch: Orchestrator) -> None:
    for uid in ("a", "b"):
        orch.pool.add(_pooled(uid))
    drain = asyncio.ensure_future(orch.drain())
    await asyncio.sleep(0)  # drain has chosen its slots; their removals have not run yet
    assert orch.pool.take(2.0) is None
    assert await drain == 2
    assert orch.pool.slots == {}


async def test_a_boot_failing_with_an_unlisted_error_frees_its_slot(orch: Orchestrator) -> None:
    # a fault fake: the backend raises an error _boot did not list (ValueError); the slot must be
    # discarded and counted, never left `starting` (the pool would never refill)
    async def broken(*args: object) -> None:
        raise ValueError("bad answer from the engine")

    orch.docker.create_and_start = broken  # type: ignore[method-assign]
    slot = Slot("u1", "/user/u1", "new", 1.0, State.STARTING, "", "")
    orch.pool.add(slot)
    await orch.life.boot(slot, orch.config)
    assert "u1" not in orch.pool.slots
    assert orch.life.boot_failures == 1
    assert orch.metrics.failures.labels("create")._value.get() == 1


def _event(action: str, uid: str) -> ContainerEvent:
    # Docker's own form of the event, parsed as the event stream parses it.
    return parse_event({"Action": action, "Actor": {"ID": "c" * 64, "Attributes": {"tmpnb.user_id": uid}}})


def test_docker_events_parse_in_both_forms() -> None:
    labels = {"tmpnb.user_id": "u1", "tmpnb.user_path": "/user/u1/", "exitCode": "137"}
    new = parse_event({"Action": "die", "Actor": {"ID": "c1", "Attributes": labels}})
    assert new == ContainerEvent("die", "c1", "u1", "/user/u1", "137")
    old = parse_event({"status": "oom", "id": "c2", "Actor": {"Attributes": {}}})
    assert old == ContainerEvent("oom", "c2", "", "", "?")


async def test_an_oom_event_counts_but_keeps_the_container(orch: Orchestrator) -> None:
    # Docker emits `oom` when any process in the cgroup is OOM-killed (a kernel); the server lives on
    orch.pool.add(_pooled("kept"))
    orch.on_event(_event("oom", "kept"))
    assert orch.pool.slots["kept"].state is State.POOLED
    assert orch.metrics.registry.get_sample_value("tmpnb_oom_events_total") == 1
    orch.on_event(_event("die", "kept"))  # the container itself exited: that one goes
    assert orch.pool.slots["kept"].state is State.REMOVING


async def test_a_boot_failing_with_an_unexpected_error_is_discarded_and_the_pool_refills(
    orch: Orchestrator,
) -> None:
    async def broken(*args: object) -> None:
        raise ValueError("an error the backend was not expected to raise")

    orch.docker.create_and_start = broken  # type: ignore[method-assign]
    orch.network_error = None
    orch.config = dataclasses.replace(orch.config, pool_size=1)
    orch.refill_once()
    await asyncio.gather(*orch.runtime.tasks, return_exceptions=True)
    assert orch.pool.slots == {}, "the failed slot stayed in the pool (starting forever)"
    assert orch.metrics.registry.get_sample_value("tmpnb_failures_total", {"stage": "create"}) == 1
    orch.life.next_boot_at = 0.0  # the backoff elapsed
    orch.refill_once()
    assert [s.state for s in orch.pool.slots.values()] == [State.STARTING]
    await asyncio.gather(*orch.runtime.tasks, return_exceptions=True)


async def test_reconciliation_goes_on_after_an_unexpected_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: _reconcile_loop had no catch-all; one unexpected error (say a dropped Docker socket
    raising more than DockerError inside _apply) ended reconciliation until a restart."""
    import tmpnb.orchestrator as module

    monkeypatch.setattr(module, "LOOP_ERROR_PAUSE", 0.01, raising=False)
    config = from_mapping(
        {"image": "new", "pool_size": 0, "reconcile_interval": 0.1, **UNREACHABLE},
        {"CONFIGPROXY_AUTH_TOKEN": "chp"},
    )
    o = Orchestrator(config)
    calls: list[str] = []

    async def flaky(why: str) -> bool:
        calls.append(why)
        if calls.count("periodic") == 1 and why == "periodic":  # the loop's first pass
            raise ConnectionResetError("the Docker socket dropped mid-apply")
        return True

    o.reconciler.reconcile = flaky  # type: ignore[method-assign]
    await o.start()
    try:
        for _ in range(100):
            if calls.count("periodic") >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await o.stop()
    assert calls.count("periodic") >= 3, f"the loop reconciled {calls}: it died with the first error"
    assert o.metrics.registry.get_sample_value("tmpnb_loop_errors_total", {"loop": "reconcile"}) == 1


def test_the_boot_backoff_doubles_then_stays_at_its_ceiling() -> None:
    from tmpnb.lifecycle import MAX_BACKOFF, backoff_delay

    delays = [backoff_delay(n) for n in range(1, 9)]
    assert delays[:5] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert delays[5:] == [MAX_BACKOFF] * 3


async def test_waiters_are_served_first_come_first_served(orch: Orchestrator) -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    orch.handout.waiters.extend([first, second])
    orch.handout.offer(_pooled("a"))
    assert first.result().user_id == "a" and not second.done()
    orch.handout.offer(_pooled("b"))
    assert second.result().user_id == "b"


async def test_a_gone_waiter_is_skipped_and_the_slot_goes_to_the_next(orch: Orchestrator) -> None:
    loop = asyncio.get_running_loop()
    gone, waiting = loop.create_future(), loop.create_future()
    gone.cancel()  # that visitor's request went away
    orch.handout.waiters.extend([gone, waiting])
    orch.handout.offer(_pooled("a"))
    assert waiting.result().user_id == "a"


async def test_a_die_event_of_an_unknown_container_removes_the_ghost(orch: Orchestrator) -> None:
    # A container of ours this process never knew (from before a restart) died: it is removed (a
    # task that tries Docker, unreachable here), never adopted into the pool.
    orch.on_event(_event("die", "ghost"))
    assert [t.get_name() for t in orch.runtime.tasks] == ["ghost-ghost"]
    await asyncio.gather(*orch.runtime.tasks, return_exceptions=True)
    assert "ghost" not in orch.pool.slots


async def test_reload_without_a_config_file_changes_nothing(orch: Orchestrator) -> None:
    before = orch.config
    assert await orch.reload() == []
    assert orch.config is before


async def test_failed_spawns_count_in_the_stats_and_a_visitor_who_left_does_not(orch: Orchestrator) -> None:
    orch.config = dataclasses.replace(orch.config, spawn_wait=0, capacity=0)
    with pytest.raises(Full):  # nothing pooled, nothing can start
        await orch.spawn("192.0.2.1")
    orch.pool.add(_pooled("a"))
    with pytest.raises(NotRecorded):  # CHP unreachable: the slot goes back, the visitor retries
        await orch.spawn("192.0.2.2")
    orch.config = dataclasses.replace(orch.config, spawn_wait=30, capacity=5)
    orch.pool.slots.clear()
    waiting = asyncio.create_task(orch.spawn("192.0.2.3"))
    await asyncio.sleep(0.05)
    waiting.cancel()  # the visitor's request went away while waiting
    with pytest.raises(asyncio.CancelledError):
        await waiting
    spawns = orch.stats()["spawns"]
    assert spawns == {"window_s": 300, "count": 0, "failed": 2, "p50_s": None, "p99_s": None}


async def test_the_history_loop_samples_in_use(orch: Orchestrator) -> None:
    slot = _pooled("a")
    slot.state = State.IN_USE
    orch.pool.add(slot)
    sampler = asyncio.create_task(orch.history_pass())
    await asyncio.sleep(0)
    sampler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sampler  # it was waiting for its next interval
    history = orch.stats()["history"]
    assert history["interval_s"] == 30
    assert [n for _, n in history["in_use"]] == [1]


async def test_a_reload_to_another_image_gives_new_ids_its_key(
    orch: Orchestrator, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP with a new image: the ids of containers started from then on carry the new image's key
    (nginx serves them that image's static copy); an image the engine lacks: ids without key."""
    ids = {"nb7": "sha256:" + "a" * 64, "classic": "sha256:" + "b" * 64}

    async def image_id(image: str) -> str | None:
        return ids.get(image)

    monkeypatch.setattr(orch.docker, "image_id", image_id)
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "chp")
    config = tmp_path / "tmpnb.toml"
    orch.config_path = str(config)
    for image, key in (("nb7", "a" * 12), ("classic", "b" * 12), ("missing", None)):
        same = "".join(f'{k} = "{v}"\n' for k, v in UNREACHABLE.items())
        config.write_text(f'image = "{image}"\npool_size = 0\n{same}')
        await orch.reload()
        assert orch.config.image == image and orch.runtime.image_key == key
