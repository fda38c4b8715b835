"""The orchestrator: starts, stops and wires its parts, runs their background loops, answers admin.

All decisions come from the pure modules (pool, cull, reconcile); the parts do the I/O:
tmpnb.handout (visitors), tmpnb.lifecycle (refill, boot, removal, backoff), tmpnb.reconciler
(reconcile, CHP watch, route restore, culls) and tmpnb.events (Docker events), sharing one
tmpnb.runtime.Runtime. State lives in Docker labels and CHP route data; memory is a cache that
reconciliation rebuilds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tmpnb import __version__
from tmpnb.chp import CHPClient
from tmpnb.config import Config, changed_options, load
from tmpnb.docker_backend import DockerBackend, DockerError
from tmpnb.docker_spec import ContainerEvent
from tmpnb.events import EventWatch
from tmpnb.handout import Full, HandOut, NotRecorded, RateLimited
from tmpnb.ids import image_key
from tmpnb.lifecycle import BootError, Lifecycle
from tmpnb.metrics import Metrics
from tmpnb.pool import Pool, Slot, State
from tmpnb.ratelimit import RateLimiter
from tmpnb.reconciler import Reconciler
from tmpnb.runtime import Runtime

__all__ = ["BootError", "Full", "NotRecorded", "Orchestrator", "RateLimited"]

log = logging.getLogger("tmpnb")

LOOP_ERROR_PAUSE = 1.0  # after an unexpected error in a background loop, before its next pass
STOP_REMOVALS_TIMEOUT = 15.0  # stop() waits this long for removals under way (culls, drains)


class Orchestrator:
    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config_path = config_path
        self.runtime = rt = Runtime(config)
        self.handout = HandOut(rt)
        self.life = Lifecycle(rt, self.handout)
        self.reconciler = Reconciler(rt, self.life)
        self.events = EventWatch(rt, self.life)
        self._loops: list[asyncio.Task[None]] = []

    # ---- the shared state, as web.py, app.py, bench/ and tests see it ----------------------
    @property
    def config(self) -> Config:
        return self.runtime.config

    @config.setter
    def config(self, value: Config) -> None:
        self.runtime.config = value

    @property
    def pool(self) -> Pool:
        return self.runtime.pool

    @property
    def docker(self) -> DockerBackend:
        return self.runtime.docker

    @property
    def chp(self) -> CHPClient:
        return self.runtime.chp

    @property
    def metrics(self) -> Metrics:
        return self.runtime.metrics

    @property
    def limiter(self) -> RateLimiter:
        return self.handout.limiter

    @property
    def network_error(self) -> str | None:
        return self.runtime.network_error

    @network_error.setter
    def network_error(self, value: str | None) -> None:
        self.runtime.network_error = value

    @property
    def chp_ok(self) -> bool:
        return self.runtime.chp_ok

    @property
    def docker_ok(self) -> bool:
        return self.runtime.docker_ok

    # ---- the parts' public calls ------------------------------------------------------------
    def wake(self) -> None:
        self.runtime.wake()

    def user_url(self, slot: Slot) -> str:
        return self.handout.user_url(slot)

    async def spawn(self, client: str) -> str:
        return await self.handout.spawn(client)

    def refill_once(self) -> None:
        self.life.refill_once()

    async def reconcile(self, why: str) -> bool:
        return await self.reconciler.reconcile(why)

    async def restore_route(self, user_id: str) -> bool:
        return await self.reconciler.restore_route(user_id)

    async def cull_once(self) -> None:
        await self.reconciler.cull_once()

    def on_event(self, event: ContainerEvent) -> None:
        self.events.on_event(event)

    # ---- start and stop ---------------------------------------------------------------------
    async def start(self) -> None:
        rt, c = self.runtime, self.config
        self.life.open()
        log.info(
            "starting instance=%s image=%s pool_size=%d capacity=%d networks=%s chp=%s",
            c.instance,
            c.image,
            c.pool_size,
            c.capacity,
            ",".join(c.network_names),
            c.chp_api_url,
        )
        if await self.life.check_network():
            try:
                await self.look_up_image_key()
            except (DockerError, OSError) as exc:
                log.error("docker: %s", exc)
        if rt.docker_ok:
            await self.reconciler.reconcile("start")
        else:  # a hung or absent engine: listen first, reconcile from the loop
            rt.reconcile_now.set()
        passes = {
            "refill": self.life.refill_pass,
            "cull": self.reconciler.cull_pass,
            "reconcile": self.reconciler.reconcile_pass,
            "events": self.events.events_pass,
            "chp-watch": self.reconciler.chp_watch_pass,
            "history": self.history_pass,
        }
        self._loops = [asyncio.create_task(self._supervise(n, p), name=n) for n, p in passes.items()]

    async def stop(self) -> None:
        """Stop loops and remove only containers still booting (never handed out). Pooled and in-use
        containers keep running with their routes: a restart adopts them."""
        rt = self.runtime
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self.handout.cancel_waiters()
        boots = self.life.boot_tasks()
        for task in boots:
            task.cancel()
        await asyncio.gather(*boots, return_exceptions=True)
        if rt.tasks:  # removals under way (culls, drains) finish, so no container is left unrouted
            await asyncio.wait(list(rt.tasks), timeout=STOP_REMOVALS_TIMEOUT)
        await rt.chp.close()
        await rt.docker.close()
        await self.life.close()
        log.info("stopped; %d pooled and %d in-use containers left running", *rt.pooled_in_use())

    async def _supervise(self, name: str, one_pass: Callable[[], Awaitable[None]]) -> None:
        """Run a background loop's passes forever: an unexpected error is logged with its traceback,
        counted (tmpnb_loop_errors_total{loop}) and the loop goes on after a short pause."""
        task = asyncio.current_task()
        while True:
            try:
                await one_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.loop_errors.labels(name).inc()
                log.exception("%s loop: unexpected error (the loop goes on)", name)
                await asyncio.sleep(LOOP_ERROR_PAUSE)
            # A cancel that arrived as a pass finished may have been swallowed on its way out
            # (Python 3.11's wait_for does, gh-86296): stop() would then wait for this loop forever.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError

    async def history_pass(self) -> None:
        """One sample of in use for the stats' history (the status page's chart), then a wait."""
        history = self.runtime.in_use_history
        history.sample(self.pool.counts().in_use)
        await asyncio.sleep(history.interval_s)

    # ---- admin ------------------------------------------------------------------------------
    async def look_up_image_key(self) -> None:
        """Note the configured image's key for the ids of new containers (tmpnb.ids)."""
        rt, image = self.runtime, self.config.image
        full_id = await rt.docker.image_id(image)
        if full_id is None:
            log.error("image %s is not in the Docker engine (tmpnb never pulls): build or load it", image)
        rt.image_key = image_key(full_id) if full_id else None
        log.info("image %s: id %s, user ids carry key %s", image, full_id, rt.image_key)

    async def reload(self) -> list[str]:
        """Re-read the config file (SIGHUP, DELETE /api/pool); apply what can change live."""
        if not self.config_path:
            return []
        try:
            new = load(self.config_path)
        except Exception as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return []
        live, restart = changed_options(self.config, new)
        if restart:
            log.warning("reload: %s change(s) need a restart; not applied", ", ".join(restart))
        if live:
            old_networks = self.config.network_names
            self.config = dataclasses.replace(self.config, **{k: getattr(new, k) for k in live})
            if self.config.network_names != old_networks:
                # capacity changed how many networks there are: none starts a
                # container before the new set is checked (refill checks it at once)
                self.network_error = f"networks {', '.join(self.config.network_names)} not checked yet"
                self.runtime.network_checked_at = 0.0
            logging.getLogger().setLevel(self.config.log_level.upper())
            log.info("reload: applied %s", ", ".join(f"{k}={getattr(self.config, k)!r}" for k in live))
        try:  # the same name may now be another image (re-tagged): looked up at every reload
            await self.look_up_image_key()
        except (DockerError, OSError) as exc:
            log.error("reload: image key not refreshed: %s", exc)
        self.wake()
        return live

    async def drain(self) -> int:
        """Remove every idle pooled container and refill with the image now configured."""
        await self.reload()
        pooled = self.pool.in_state(State.POOLED)
        log.info("draining %d pooled containers; refilling with %s", len(pooled), self.config.image)
        await asyncio.gather(*filter(None, (self.life.remove(s, "drain") for s in pooled)))
        self.wake()
        return len(pooled)

    async def health(self) -> dict[str, Any]:
        """Each check bounded (a hung engine is a False within PING_TIMEOUT, never a hang)."""
        docker_ok, chp_ok = await asyncio.gather(self.docker.ping(), self.chp.ping())
        self.runtime.docker_ok, self.runtime.chp_ok = docker_ok, chp_ok
        if docker_ok and self.network_error is not None:
            await self.life.check_network()
        checks: dict[str, Any] = {"docker": docker_ok, "chp": chp_ok, "network": self.network_error is None}
        if self.network_error is not None:
            checks["network_error"] = self.network_error
        return checks

    def stats(self) -> dict[str, Any]:
        n = self.pool.counts()
        c = self.config
        history = self.runtime.in_use_history
        return {
            "available": n.pooled,
            "in_use": n.in_use,
            "starting": n.starting,
            "removing": n.removing,
            "capacity": c.capacity,
            "pool_size": c.pool_size,
            "image": c.image,
            "instance": c.instance,
            "version": __version__,
            "spawns": self.runtime.recent_spawns.summary(),
            "history": {"interval_s": history.interval_s, "in_use": history.points()},
        }
