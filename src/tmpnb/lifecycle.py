"""Container life cycle: refill the pool, boot (create, start, wait for HTTP, route), remove, and
back off after failed boots. The networks are checked here too: no container starts on one that
is not isolated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

import aiohttp

from tmpnb.chp import CHPError
from tmpnb.config import Config
from tmpnb.docker_backend import DockerError, NetworkRefused
from tmpnb.handout import HandOut
from tmpnb.ids import new_user_id, redact
from tmpnb.placement import least_full
from tmpnb.pool import Slot, State, starts_needed, surplus_pooled
from tmpnb.reconcile import route_data, route_path
from tmpnb.runtime import Runtime

log = logging.getLogger("tmpnb")

PROBE_TIMEOUT = 2.0  # one readiness probe (HTTP GET at the base path)
PROBE_FIRST_INTERVAL = 0.05  # between probes at first; grows by PROBE_GROWTH up to the maximum
PROBE_GROWTH = 1.5
PROBE_MAX_INTERVAL = 0.1
# After a failed boot the next start waits BACKOFF_BASE * 2**failures seconds (the exponent capped
# at BACKOFF_MAX_DOUBLINGS), never more than MAX_BACKOFF: a broken image does not spin the engine.
BACKOFF_BASE = 0.5
BACKOFF_MAX_DOUBLINGS = 10
MAX_BACKOFF = 30.0
# During a burst of hand-outs, container starts would take the CPU the visitors' requests need:
# refill waits for a quiet moment (REFILL_QUIET without a hand-out), but never longer than
# REFILL_MAX_DEFER, and never while a visitor waits for a container.
REFILL_QUIET = 0.3
REFILL_MAX_DEFER = 2.0
REFILL_QUIET_STEP = 0.05  # how often that quiet moment is looked for
REFILL_INTERVAL = 1.0  # refill looks at the pool at least this often without a wake-up
NETWORK_RECHECK = 5.0  # how often a refused network is inspected again (it may have been fixed)
REMOVED_MEMORY = 600.0  # how long a removed user id is never re-adopted (a listing may predate it)
REMOVED_MAX = 10_000  # past this many remembered removals, the ones older than REMOVED_MEMORY go


class BootError(RuntimeError):
    """A container did not become ready."""


def backoff_delay(failures: int) -> float:
    """Seconds before the next start after `failures` boots failed in a row."""
    return min(MAX_BACKOFF, BACKOFF_BASE * 2 ** min(failures, BACKOFF_MAX_DOUBLINGS))


class Lifecycle:
    def __init__(self, rt: Runtime, handout: HandOut) -> None:
        self.rt = rt
        self.handout = handout
        self.probe: aiohttp.ClientSession | None = None
        self.doomed: set[str] = set()  # user ids whose container must go (a removal failed)
        self.removed: dict[str, float] = {}  # user id -> when we removed it (never re-adopt it)
        self.boot_failures = 0
        self.next_boot_at = 0.0

    def open(self) -> None:
        self.probe = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))

    async def close(self) -> None:
        if self.probe is not None:
            await self.probe.close()

    def boot_tasks(self) -> list[asyncio.Task[object]]:
        return [t for t in self.rt.tasks if t.get_name().startswith("boot-")]

    async def check_network(self) -> bool:
        """Create or inspect the notebooks' networks; containers boot only when every one is fit."""
        rt = self.rt
        rt.network_checked_at = time.monotonic()
        names = rt.config.network_names
        try:
            for name in names:
                await rt.docker.ensure_network(name, rt.config.instance)
        except NetworkRefused as exc:
            if rt.network_error != str(exc):
                log.error("%s", exc)
            rt.network_error = str(exc)
            rt.docker_ok = True
            return False
        except (DockerError, OSError) as exc:
            log.error("docker not ready: %s (retrying in the background)", exc)
            rt.network_error = f"network {name} not checked: {exc}"
            rt.docker_ok = False
            return False
        if rt.network_error is not None:
            log.info("network(s) %s isolated: containers may start", ", ".join(names))
        rt.network_error = None
        rt.docker_ok = True
        return True

    # ---- refill -----------------------------------------------------------------------------
    async def refill_pass(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REFILL_INTERVAL):
                await self.rt.refill_now.wait()
        self.rt.refill_now.clear()
        await self._quiet_moment()
        self.refill_once()

    async def _quiet_moment(self) -> None:
        """Let a burst of hand-outs finish before starting containers (bounded; not for waiters)."""
        for _ in range(round(REFILL_MAX_DEFER / REFILL_QUIET_STEP)):
            if self.handout.waiters or time.monotonic() - self.handout.last_hand_out >= REFILL_QUIET:
                return
            await asyncio.sleep(REFILL_QUIET_STEP)

    def refill_once(self) -> None:
        rt, c = self.rt, self.rt.config
        for slot in surplus_pooled(rt.pool, c.pool_size, c.image, rt.image_key):
            reason = "rollout" if slot.image != c.image else "surplus"
            self.remove(slot, reason)
        if rt.network_error is not None:  # no container starts on a network that is not isolated
            if time.monotonic() - rt.network_checked_at >= NETWORK_RECHECK:
                rt.network_checked_at = time.monotonic()
                rt.spawn_task(self.check_network(), "check-network")
            return
        if time.monotonic() < self.next_boot_at:
            return
        waiting = self.handout.waiting()
        for _ in range(
            starts_needed(rt.pool.counts(), c.pool_size, c.capacity, c.max_concurrent_starts, waiting)
        ):
            user_id = new_user_id(rt.image_key)
            slot = Slot(user_id, route_path(c.user_path_prefix, user_id), c.image, time.time())
            slot.network = least_full(c.network_names, Counter(s.network for s in rt.pool.slots.values()))
            rt.pool.add(slot)
            rt.spawn_task(self.boot(slot, c), f"boot-{user_id}")

    # ---- boot -------------------------------------------------------------------------------
    async def boot(self, slot: Slot, c: Config) -> None:
        """Create, start, wait for HTTP at the base path, route in CHP; any failure removes it."""
        rt = self.rt
        started = time.monotonic()
        stage = "create"
        try:
            s = await rt.docker.create_and_start(c, slot.user_id, slot.created, slot.network)
            slot.container_id, slot.target = s.container_id, s.target
            stage = "boot"
            await self._wait_ready(slot, c)
            stage = "route"
            await rt.chp.add_route(slot.path, slot.target, route_data(slot, c.instance))
            if slot.died or slot.state is not State.STARTING:
                raise BootError("container died while being routed")
        except asyncio.CancelledError:
            await self.discard_failed(slot, "stopping")
            raise
        except Exception as exc:  # any failure frees the slot, or the pool never refills
            rt.metrics.failures.labels(stage).inc()
            self.boot_failures += 1
            delay = backoff_delay(self.boot_failures)
            self.next_boot_at = time.monotonic() + delay
            log.error(
                "boot of %s failed at %s: %s: %s (next start in %.1fs)",
                redact(slot.user_id),
                stage,
                type(exc).__name__,
                exc,
                delay,
            )
            await self.discard_failed(slot, f"failed_{stage}")
            return
        slot.state = State.POOLED
        self.boot_failures = 0
        self.next_boot_at = 0.0
        rt.metrics.boot_seconds.observe(time.monotonic() - started)
        log.info("ready %s at %s in %.2fs", redact(slot.path), slot.target, time.monotonic() - started)
        self.handout.offer(slot)
        rt.wake()

    async def _wait_ready(self, slot: Slot, c: Config) -> None:
        assert self.probe is not None
        url = f"{slot.target}{c.base_path(slot.user_id)}"
        deadline = time.monotonic() + c.boot_timeout
        delay = PROBE_FIRST_INTERVAL
        while True:
            if slot.died:
                raise BootError("container exited before answering")
            try:
                async with self.probe.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
                ) as resp:
                    if resp.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BootError(f"no HTTP answer at {url} within boot_timeout={c.boot_timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * PROBE_GROWTH, PROBE_MAX_INTERVAL)

    # ---- removal ----------------------------------------------------------------------------
    async def discard_failed(self, slot: Slot, reason: str) -> None:
        slot.state = State.REMOVING
        with contextlib.suppress(CHPError):
            await self.rt.chp.delete_route(slot.path)
        await self.remove_container(slot, reason)

    async def remove_container(self, slot: Slot, reason: str) -> None:
        rt = self.rt
        try:
            if slot.container_id:
                await rt.docker.remove(slot.container_id)
        except (DockerError, OSError) as exc:
            log.error("removing %s failed: %s (reconcile retries)", redact(slot.user_id), exc)
            self.doomed.add(slot.user_id)
        finally:
            rt.pool.discard(slot.user_id)
            self.removed[slot.user_id] = time.monotonic()
            if len(self.removed) > REMOVED_MAX:
                self.forget_old_removals()
            rt.metrics.removed.labels(reason).inc()
            rt.wake()

    def remove(self, slot: Slot, reason: str) -> asyncio.Task[None] | None:
        """Claim the slot now (it is never handed out from here on), remove it in a task; None when
        its removal is already under way."""
        if slot.state is State.REMOVING:
            return None
        slot.state = State.REMOVING
        return self.rt.spawn_task(self._unroute_and_remove(slot, reason), f"remove-{slot.user_id}")

    def forget_old_removals(self) -> None:
        horizon = time.monotonic() - REMOVED_MEMORY
        self.removed = {k: t for k, t in self.removed.items() if t > horizon}

    async def _unroute_and_remove(self, slot: Slot, reason: str) -> None:
        """Route first, then the container: a visitor never reaches a half-removed notebook."""
        try:
            await self.rt.chp.delete_route(slot.path)
        except CHPError as exc:
            log.warning("deleting route %s failed: %s (reconcile retries)", redact(slot.path), exc)
        log.info("removing %s (%s)", redact(slot.path), reason)
        await self.remove_container(slot, reason)
