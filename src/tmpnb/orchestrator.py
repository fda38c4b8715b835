"""The orchestrator: keeps the warm pool, hands containers out, culls, reconciles, follows Docker.

All decisions come from the pure modules (pool, cull, reconcile); this module does the I/O. State
lives in Docker labels and CHP route data; memory is a cache that reconciliation rebuilds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import aiohttp

from tmpnb import __version__
from tmpnb.chp import CHPClient, CHPError
from tmpnb.config import Config, changed_options, load
from tmpnb.cull import choose_culls
from tmpnb.docker_backend import DockerBackend, DockerError, NetworkRefused
from tmpnb.docker_spec import LABEL_USER_ID, LABEL_USER_PATH
from tmpnb.ids import new_user_id, redact
from tmpnb.metrics import Metrics
from tmpnb.placement import least_full
from tmpnb.pool import Pool, Slot, State, can_ever_serve, mark_handed_out, starts_needed, surplus_pooled
from tmpnb.ratelimit import RateLimiter, client_key
from tmpnb.reconcile import diff, parse_routes, route_data, route_path

log = logging.getLogger("tmpnb")

PROBE_TIMEOUT = 2.0
PROBE_MAX_INTERVAL = 0.1
MAX_BACKOFF = 30.0
# During a burst of hand-outs, container starts would take the CPU the visitors' requests need:
# refill waits for a quiet moment (REFILL_QUIET without a hand-out), but never longer than
# REFILL_MAX_DEFER, and never while a visitor waits for a container.
REFILL_QUIET = 0.3
REFILL_MAX_DEFER = 2.0
CHP_WATCH_INTERVAL = 2.0  # how soon a CHP restart (routes lost) is noticed
LOOP_ERROR_PAUSE = 1.0  # after an unexpected error in a background loop, before its next pass
NETWORK_RECHECK = 5.0  # how often a refused network is inspected again (it may have been fixed)
REMOVED_MEMORY = 600.0  # how long a removed user id is never re-adopted (a listing may predate it)


class Full(Exception):
    """No container free and none can be started for this visitor now."""


class RateLimited(Exception):
    """This client spawned its allowance for the last minute."""


class NotRecorded(Exception):
    """CHP did not record a hand-out: the slot went back to the pool, the visitor should retry."""


class BootError(RuntimeError):
    """A container did not become ready."""


class Orchestrator:
    def __init__(self, config: Config, config_path: str | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.pool = Pool()
        self.docker = DockerBackend(config.docker_url)
        self.chp = CHPClient(config.chp_api_url, config.chp_auth_token)
        self.metrics = Metrics(self.pool.counts, lambda: self.config.capacity)
        self.limiter = RateLimiter()
        self._waiters: deque[asyncio.Future[Slot]] = deque()
        self._wake = asyncio.Event()
        self._reconcile_now = asyncio.Event()
        self._reconcile_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._doomed: set[str] = set()  # user ids whose container must go (a removal failed)
        self._removed: dict[str, float] = {}  # user id -> when we removed it (never re-adopt it)
        self._boot_failures = 0
        self._next_boot_at = 0.0
        self._last_hand_out = 0.0
        self._probe: aiohttp.ClientSession | None = None
        self.chp_ok = False
        self.docker_ok = False
        self.network_error: str | None = "not checked yet"  # None: the network is fit for notebooks
        self._network_checked_at = 0.0

    # ---- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        c = self.config
        self._probe = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True, limit=0))
        log.info(
            "starting instance=%s image=%s pool_size=%d capacity=%d networks=%s chp=%s",
            c.instance,
            c.image,
            c.pool_size,
            c.capacity,
            ",".join(c.network_names),
            c.chp_api_url,
        )
        if await self._check_network():
            try:
                if not await self.docker.image_exists(c.image):
                    log.error(
                        "image %s is not present in the Docker engine (tmpnb never pulls): build or load it",
                        c.image,
                    )
            except (DockerError, OSError) as exc:
                log.error("docker: %s", exc)
        if self.docker_ok:
            await self.reconcile("start")
        else:  # a hung or absent engine: listen first, reconcile from the loop
            self._reconcile_now.set()
        passes = {
            "refill": self._refill_pass,
            "cull": self._cull_pass,
            "reconcile": self._reconcile_pass,
            "events": self._events_pass,
            "chp-watch": self._chp_watch_pass,
        }
        self._loops = [asyncio.create_task(self._supervise(n, p), name=n) for n, p in passes.items()]

    async def stop(self) -> None:
        """Stop loops and remove only containers still booting (never handed out). Pooled and in-use
        containers keep running with their routes: a restart adopts them."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for fut in self._waiters:
            if not fut.done():
                fut.cancel()
        boots = [t for t in self._tasks if t.get_name().startswith("boot-")]
        for task in boots:
            task.cancel()
        await asyncio.gather(*boots, return_exceptions=True)
        if self._tasks:  # removals under way (culls, drains) finish, so no container is left unrouted
            await asyncio.wait(list(self._tasks), timeout=15)
        await self.chp.close()
        await self.docker.close()
        if self._probe is not None:
            await self._probe.close()
        log.info("stopped; %d pooled and %d in-use containers left running", *self._pooled_in_use())

    async def _check_network(self) -> bool:
        """Create or inspect the notebooks' networks; containers boot only when every one is fit."""
        self._network_checked_at = time.monotonic()
        names = self.config.network_names
        try:
            for name in names:
                await self.docker.ensure_network(name, self.config.instance)
        except NetworkRefused as exc:
            if self.network_error != str(exc):
                log.error("%s", exc)
            self.network_error = str(exc)
            self.docker_ok = True
            return False
        except (DockerError, OSError) as exc:
            log.error("docker not ready: %s (retrying in the background)", exc)
            self.network_error = f"network {name} not checked: {exc}"
            self.docker_ok = False
            return False
        if self.network_error is not None:
            log.info("network(s) %s isolated: containers may start", ", ".join(names))
        self.network_error = None
        self.docker_ok = True
        return True

    def _pooled_in_use(self) -> tuple[int, int]:
        n = self.pool.counts()
        return n.pooled, n.in_use

    def _spawn_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def wake(self) -> None:
        self._wake.set()

    # ---- visitors ---------------------------------------------------------------------------
    def user_url(self, slot: Slot) -> str:
        c = self.config
        return f"{c.public_url}{c.base_path(slot.user_id)}{c.redirect_path}"

    async def spawn(self, client: str) -> str:
        """Hand a pooled container to a visitor and return its URL. No Docker call on this path.

        The per-client cap is reserved before any wait (check and record in one step) and given back
        when the visitor gets nothing. A hand-out counts only once CHP has recorded it: otherwise the
        slot goes back to the pool (its route still says pooled) and the visitor is told to retry,
        so a restart can never adopt it as pooled and hand it to a second visitor.
        """
        c = self.config
        started = time.monotonic()
        now = time.time()
        key = client_key(client)
        if not self.limiter.reserve(key, c.spawn_limit_per_minute, now):
            self.metrics.spawns.labels("rate_limited").inc()
            raise RateLimited(client)
        try:
            slot = self.pool.take(now)
            if slot is None:
                slot = await self._wait_for_slot()
            self._last_hand_out = time.monotonic()
            self.wake()
            await self._record_hand_out(slot)
        except (Full, NotRecorded, asyncio.CancelledError):
            self.limiter.release(key, now)
            raise
        self.metrics.spawns.labels("ok").inc()
        self.metrics.spawn_seconds.labels("ok").observe(time.monotonic() - started)
        log.info("handed out %s to %s", redact(slot.path), client)
        return self.user_url(slot)

    async def _record_hand_out(self, slot: Slot) -> None:
        """Re-post the slot's route as in use; on any failure put the slot back as pooled."""
        try:
            await self.chp.add_route(slot.path, slot.target, route_data(slot, self.config.instance))
        except (CHPError, asyncio.CancelledError) as exc:
            self._put_back(slot)
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.metrics.spawns.labels("not_recorded").inc()
            log.warning("hand-out of %s not recorded in CHP, back in the pool: %s", redact(slot.path), exc)
            raise NotRecorded(str(exc)) from exc

    def _put_back(self, slot: Slot) -> None:
        """A slot taken for a visitor who did not get it: pooled again (next waiter first), unless
        something else claimed it meanwhile (a removal)."""
        if slot.state is State.IN_USE:
            slot.state, slot.handed_out = State.POOLED, None
            self._offer(slot)

    async def _wait_for_slot(self) -> Slot:
        c = self.config
        if c.spawn_wait <= 0 or not can_ever_serve(self.pool.counts(), c.capacity):
            self.metrics.spawns.labels("full").inc()
            raise Full
        fut: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self.wake()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), c.spawn_wait)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return fut.result()
            fut.cancel()
            self.metrics.spawns.labels("full").inc()
            raise Full from None
        except (
            asyncio.CancelledError
        ):  # the visitor's request went away: a slot offered meanwhile is not lost
            if fut.done() and not fut.cancelled():
                self._put_back(fut.result())
            fut.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _offer(self, slot: Slot) -> None:
        """A slot just became ready: the first waiting visitor gets it, else it joins the pool."""
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                mark_handed_out(slot, time.time())
                fut.set_result(slot)
                return

    # ---- pool refill ------------------------------------------------------------------------
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

    async def _refill_pass(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._wake.wait()
        self._wake.clear()
        await self._quiet_moment()
        self.refill_once()

    async def _quiet_moment(self) -> None:
        """Let a burst of hand-outs finish before starting containers (bounded; not for waiters)."""
        for _ in range(round(REFILL_MAX_DEFER / 0.05)):
            if self._waiters or time.monotonic() - self._last_hand_out >= REFILL_QUIET:
                return
            await asyncio.sleep(0.05)

    def refill_once(self) -> None:
        c = self.config
        for slot in surplus_pooled(self.pool, c.pool_size, c.image):
            reason = "rollout" if slot.image != c.image else "surplus"
            self._remove(slot, reason)
        if self.network_error is not None:  # no container starts on a network that is not isolated
            if time.monotonic() - self._network_checked_at >= NETWORK_RECHECK:
                self._network_checked_at = time.monotonic()
                self._spawn_task(self._check_network(), "check-network")
            return
        if time.monotonic() < self._next_boot_at:
            return
        waiting = sum(1 for f in self._waiters if not f.done())
        for _ in range(
            starts_needed(self.pool.counts(), c.pool_size, c.capacity, c.max_concurrent_starts, waiting)
        ):
            user_id = new_user_id()
            slot = Slot(user_id, route_path(c.user_path_prefix, user_id), c.image, time.time())
            slot.network = least_full(c.network_names, Counter(s.network for s in self.pool.slots.values()))
            self.pool.add(slot)
            self._spawn_task(self._boot(slot, c), f"boot-{user_id}")

    async def _boot(self, slot: Slot, c: Config) -> None:
        """Create, start, wait for HTTP at the base path, route in CHP; any failure removes it."""
        started = time.monotonic()
        stage = "create"
        try:
            s = await self.docker.create_and_start(c, slot.user_id, slot.created, slot.network)
            slot.container_id, slot.target = s.container_id, s.target
            stage = "boot"
            await self._wait_ready(slot, c)
            stage = "route"
            await self.chp.add_route(slot.path, slot.target, route_data(slot, c.instance))
            if slot.died or slot.state is not State.STARTING:
                raise BootError("container died while being routed")
        except asyncio.CancelledError:
            await self._discard_failed(slot, "stopping")
            raise
        except Exception as exc:  # any failure frees the slot, or the pool never refills
            self.metrics.failures.labels(stage).inc()
            self._boot_failures += 1
            delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self._boot_failures, 10))
            self._next_boot_at = time.monotonic() + delay
            log.error(
                "boot of %s failed at %s: %s: %s (next start in %.1fs)",
                redact(slot.user_id),
                stage,
                type(exc).__name__,
                exc,
                delay,
            )
            await self._discard_failed(slot, f"failed_{stage}")
            return
        slot.state = State.POOLED
        self._boot_failures = 0
        self._next_boot_at = 0.0
        self.metrics.boot_seconds.observe(time.monotonic() - started)
        log.info("ready %s at %s in %.2fs", redact(slot.path), slot.target, time.monotonic() - started)
        self._offer(slot)
        self.wake()

    async def _wait_ready(self, slot: Slot, c: Config) -> None:
        assert self._probe is not None
        url = f"{slot.target}{c.base_path(slot.user_id)}"
        deadline = time.monotonic() + c.boot_timeout
        delay = 0.05
        while True:
            if slot.died:
                raise BootError("container exited before answering")
            try:
                async with self._probe.get(
                    url, allow_redirects=False, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)
                ) as resp:
                    if resp.status < 500:
                        return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BootError(f"no HTTP answer at {url} within boot_timeout={c.boot_timeout:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, PROBE_MAX_INTERVAL)

    async def _discard_failed(self, slot: Slot, reason: str) -> None:
        slot.state = State.REMOVING
        with contextlib.suppress(CHPError):
            await self.chp.delete_route(slot.path)
        await self._remove_container(slot, reason)

    async def _remove_container(self, slot: Slot, reason: str) -> None:
        try:
            if slot.container_id:
                await self.docker.remove(slot.container_id)
        except (DockerError, OSError) as exc:
            log.error("removing %s failed: %s (reconcile retries)", redact(slot.user_id), exc)
            self._doomed.add(slot.user_id)
        finally:
            self.pool.discard(slot.user_id)
            self._removed[slot.user_id] = time.monotonic()
            if len(self._removed) > 10_000:
                self._forget_old_removals()
            self.metrics.removed.labels(reason).inc()
            self.wake()

    def _remove(self, slot: Slot, reason: str) -> asyncio.Task[None] | None:
        """Claim the slot now (it is never handed out from here on), remove it in a task; None when
        its removal is already under way."""
        if slot.state is State.REMOVING:
            return None
        slot.state = State.REMOVING
        return self._spawn_task(self._unroute_and_remove(slot, reason), f"remove-{slot.user_id}")

    def _forget_old_removals(self) -> None:
        horizon = time.monotonic() - REMOVED_MEMORY
        self._removed = {k: t for k, t in self._removed.items() if t > horizon}

    async def _unroute_and_remove(self, slot: Slot, reason: str) -> None:
        """Route first, then the container: a visitor never reaches a half-removed notebook."""
        try:
            await self.chp.delete_route(slot.path)
        except CHPError as exc:
            log.warning("deleting route %s failed: %s (reconcile retries)", redact(slot.path), exc)
        log.info("removing %s (%s)", redact(slot.path), reason)
        await self._remove_container(slot, reason)

    # ---- culling ----------------------------------------------------------------------------
    async def _cull_pass(self) -> None:
        await asyncio.sleep(self.config.cull_interval)
        await self.cull_once()

    async def cull_once(self) -> None:
        c = self.config
        try:
            routes = parse_routes(await self.chp.get_routes(), c.instance)
            self.chp_ok = True
        except CHPError as exc:
            if self.chp_ok:
                log.error("%s", exc)
            self.chp_ok = False
            return
        lost = [s for s in self.pool.in_state(State.POOLED, State.IN_USE) if s.path not in routes]
        if lost:
            log.warning("CHP lost %d of our routes (restarted?): reconciling now", len(lost))
            self._reconcile_now.set()
        activity = {path: r.last_activity for path, r in routes.items()}
        for cull in choose_culls(
            self.pool.in_state(State.IN_USE), activity, time.time(), c.cull_timeout, c.cull_max_age
        ):
            self.metrics.culls.labels(cull.reason.value).inc()
            log.info("culling %s: %s", redact(cull.slot.path), cull.reason.value)
            self._remove(cull.slot, f"cull_{cull.reason.value}")

    async def _chp_watch_pass(self) -> None:
        """CHP keeps routes in memory only: probe one of ours often, reconcile at once if it is gone."""
        await asyncio.sleep(CHP_WATCH_INTERVAL)
        live = self.pool.in_state(State.POOLED, State.IN_USE)
        if not live:
            return
        try:
            present = await self.chp.has_route(live[0].path)
        except CHPError:
            self.chp_ok = False
            return
        self.chp_ok = True
        if not present and live[0].state is not State.REMOVING:
            log.warning("CHP lost route %s (restarted?): reconciling now", redact(live[0].path))
            self._reconcile_now.set()

    async def restore_route(self, user_id: str) -> bool:
        """A visitor reached us on a live user path: CHP lost the route. Re-add it (and the rest)."""
        slot = self.pool.slots.get(user_id)
        if slot is None or slot.state not in (State.POOLED, State.IN_USE):
            return False
        try:
            if await self.chp.has_route(slot.path):
                return False  # CHP has it: this request did not come through CHP; no redirect loop
            self._reconcile_now.set()
            await self.chp.add_route(slot.path, slot.target, route_data(slot, self.config.instance))
        except CHPError as exc:
            log.error("re-adding route %s failed: %s", redact(slot.path), exc)
            return False
        self.metrics.routes_restored.inc()
        log.info("re-added lost route %s for a visitor", redact(slot.path))
        return True

    # ---- reconciliation ---------------------------------------------------------------------
    async def _reconcile_pass(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.reconcile_interval):
                await self._reconcile_now.wait()
        self._reconcile_now.clear()
        await self.reconcile("periodic")

    async def reconcile(self, why: str) -> bool:
        """Make Docker, CHP and memory agree. Returns False when Docker or CHP was unreachable."""
        c = self.config
        async with self._reconcile_lock:
            try:
                raw_routes = await self.chp.get_routes()
                self.chp_ok = True
            except CHPError as exc:
                log.error("reconcile (%s) skipped: %s", why, exc)
                self.chp_ok = False
                return False
            try:
                containers = await self.docker.list_containers(c)
                self.docker_ok = True
            except (DockerError, OSError) as exc:
                log.error("reconcile (%s) skipped: docker: %s", why, exc)
                self.docker_ok = False
                return False
            plan = diff(containers, parse_routes(raw_routes, c.instance), dict(self.pool.slots), c.instance)
            self.metrics.reconciles.inc()
            if plan.empty:
                return True
            await self._apply(plan, why)
        self.wake()
        return True

    async def _apply(self, plan: Any, why: str) -> None:
        c = self.config
        for user_id, target in plan.retarget.items():
            if user_id in self.pool.slots:
                self.pool.slots[user_id].target = target
        self._forget_old_removals()
        for info in plan.unroutable:
            log.warning(
                "container %s of %s has no address on network %s (or %s-<n>): left alone (not adopted)",
                info.id[:12],
                redact(info.path) or "?",
                c.network_name,
                c.network_name,
            )
        for slot in plan.adopt:
            if slot.user_id in self._removed:  # listed while we were removing it
                continue
            if slot.user_id in self._doomed:
                self._spawn_task(self._remove_container(slot, "doomed"), f"remove-{slot.user_id}")
                self._doomed.discard(slot.user_id)
                continue
            if slot.user_id not in self.pool.slots:
                self.pool.add(slot)
                self.metrics.adopted.inc()
                log.info("adopted %s (%s) from its labels", redact(slot.path), slot.state.value)
        for user_id in plan.forget:
            slot = self.pool.slots.get(user_id)
            if slot is not None and slot.state in (State.POOLED, State.IN_USE):
                log.warning("container of %s is gone: forgetting it", redact(slot.path))
                self.pool.discard(user_id)
        for path in plan.delete_routes:
            log.info("deleting route %s: no living container (%s)", redact(path), why)
            with contextlib.suppress(CHPError):
                await self.chp.delete_route(path)
        for info in plan.remove_containers:
            log.info("removing dead container %s of %s", info.id[:12], redact(info.path))
            try:
                await self.docker.remove(info.id)
                self.metrics.removed.labels("dead").inc()
                self._doomed.discard(info.user_id)
            except DockerError as exc:
                log.error("%s", exc)
        restored = 0
        for slot in plan.add_routes:
            if (
                slot.state not in (State.POOLED, State.IN_USE)
                or self.pool.slots.get(slot.user_id) is not slot
            ):
                continue
            try:
                await self.chp.add_route(slot.path, slot.target, route_data(slot, c.instance))
                restored += 1
            except CHPError as exc:
                log.error("re-adding route %s failed: %s", redact(slot.path), exc)
        if plan.missing_routes:
            self.metrics.routes_restored.inc(plan.missing_routes)
        log.info(
            "reconciled (%s): adopted %d, routes added %d, routes deleted %d, dead removed %d, forgotten %d",
            why,
            len(plan.adopt),
            restored,
            len(plan.delete_routes),
            len(plan.remove_containers),
            len(plan.forget),
        )

    # ---- Docker events ----------------------------------------------------------------------
    async def _events_pass(self) -> None:
        try:
            async for event in self.docker.events(self.config.instance):
                self.on_event(event)
        except (DockerError, OSError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("docker event stream broke: %s", exc)
        finally:
            self._reconcile_now.set()  # events may have been missed meanwhile
        await asyncio.sleep(1.0)

    def on_event(self, event: Mapping[str, Any]) -> None:
        action = str(event.get("Action") or event.get("status") or "")
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        user_id = attrs.get(LABEL_USER_ID, "")
        container_id = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        slot = self.pool.slots.get(user_id)
        if action == "oom":
            # A process of the container was OOM-killed (a kernel that allocated too much); the
            # container and the visitor's server and files live on: count it, remove nothing.
            self.metrics.oom_events.inc()
            log.warning(
                "out of memory in the container of %s: a process was killed",
                redact(user_id) if user_id else container_id[:12],
            )
            return
        if slot is None:
            if action == "die" and container_id and user_id:
                path = str(attrs.get(LABEL_USER_PATH, "")).rstrip("/")
                ghost = Slot(user_id, path, "", 0.0, State.REMOVING, container_id)
                self._spawn_task(self._discard_failed(ghost, "dead"), f"ghost-{user_id}")
            return
        if action != "die":
            return
        if slot.state is State.STARTING:
            slot.died = True
        elif slot.state in (State.POOLED, State.IN_USE):
            self.metrics.failures.labels("died").inc()
            log.warning("container of %s died (exit %s)", redact(slot.path), attrs.get("exitCode", "?"))
            self._remove(slot, "died")

    # ---- admin ------------------------------------------------------------------------------
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
                self._network_checked_at = 0.0
            logging.getLogger().setLevel(self.config.log_level.upper())
            log.info("reload: applied %s", ", ".join(f"{k}={getattr(self.config, k)!r}" for k in live))
        self.wake()
        return live

    async def drain(self) -> int:
        """Remove every idle pooled container and refill with the image now configured."""
        await self.reload()
        pooled = self.pool.in_state(State.POOLED)
        log.info("draining %d pooled containers; refilling with %s", len(pooled), self.config.image)
        await asyncio.gather(*filter(None, (self._remove(s, "drain") for s in pooled)))
        self.wake()
        return len(pooled)

    async def health(self) -> dict[str, Any]:
        """Each check bounded (a hung engine is a False within PING_TIMEOUT, never a hang)."""
        docker_ok, chp_ok = await asyncio.gather(self.docker.ping(), self.chp.ping())
        self.docker_ok, self.chp_ok = docker_ok, chp_ok
        if docker_ok and self.network_error is not None:
            await self._check_network()
        checks: dict[str, Any] = {"docker": docker_ok, "chp": chp_ok, "network": self.network_error is None}
        if self.network_error is not None:
            checks["network_error"] = self.network_error
        return checks

    def stats(self) -> dict[str, Any]:
        n = self.pool.counts()
        c = self.config
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
        }
