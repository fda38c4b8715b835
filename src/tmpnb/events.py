"""Docker events: follow the engine's event stream for this instance's containers. A death frees
its slot at once (reconciliation would notice only later); an OOM kill inside a container counts."""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from tmpnb.docker_backend import DockerError
from tmpnb.docker_spec import ContainerEvent
from tmpnb.ids import redact
from tmpnb.lifecycle import Lifecycle
from tmpnb.pool import Slot, State
from tmpnb.runtime import Runtime

log = logging.getLogger("tmpnb")

EVENTS_RETRY = 1.0  # after the event stream broke (or ended), before it is opened again


class EventWatch:
    def __init__(self, rt: Runtime, life: Lifecycle) -> None:
        self.rt = rt
        self.life = life

    async def events_pass(self) -> None:
        try:
            async for event in self.rt.docker.events(self.rt.config.instance):
                self.on_event(event)
        except (DockerError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("docker event stream broke: %s", exc)
        finally:
            self.rt.reconcile_now.set()  # events may have been missed meanwhile
        await asyncio.sleep(EVENTS_RETRY)

    def on_event(self, event: ContainerEvent) -> None:
        rt = self.rt
        action, user_id, container_id = event.action, event.user_id, event.container_id
        slot = rt.pool.slots.get(user_id)
        if action == "oom":
            # A process of the container was OOM-killed (a kernel that allocated too much); the
            # container and the visitor's server and files live on: count it, remove nothing.
            rt.metrics.oom_events.inc()
            log.warning(
                "out of memory in the container of %s: a process was killed",
                redact(user_id) if user_id else container_id[:12],
            )
            return
        if slot is None:
            if action == "die" and container_id and user_id:
                ghost = Slot(user_id, event.path, "", 0.0, State.REMOVING, container_id)
                rt.spawn_task(self.life.discard_failed(ghost, "dead"), f"ghost-{user_id}")
            return
        if action != "die":
            return
        if slot.state is State.STARTING:
            slot.died = True
        elif slot.state in (State.POOLED, State.IN_USE):
            rt.metrics.failures.labels("died").inc()
            log.warning("container of %s died (exit %s)", redact(slot.path), event.exit_code)
            self.life.remove(slot, "died")
