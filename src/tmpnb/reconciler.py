"""Reconciliation: make Docker, CHP and memory agree (the diff is the pure tmpnb.reconcile), watch
CHP for lost routes, re-add a route a visitor found missing, and cull from CHP's activity data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from tmpnb.bounded import each_bounded
from tmpnb.chp import CHPError
from tmpnb.cull import choose_culls
from tmpnb.docker_backend import DockerError
from tmpnb.ids import redact
from tmpnb.lifecycle import Lifecycle
from tmpnb.pool import Slot, State
from tmpnb.reconcile import Plan, diff, parse_routes, route_data
from tmpnb.runtime import Runtime

log = logging.getLogger("tmpnb")

CHP_WATCH_INTERVAL = 2.0  # how soon a CHP restart (routes lost) is noticed


class Reconciler:
    def __init__(self, rt: Runtime, life: Lifecycle) -> None:
        self.rt = rt
        self.life = life
        self.lock = asyncio.Lock()  # one reconciliation at a time

    async def reconcile_pass(self) -> None:
        rt = self.rt
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(rt.config.reconcile_interval):
                await rt.reconcile_now.wait()
        rt.reconcile_now.clear()
        await self.reconcile("periodic")

    async def reconcile(self, why: str) -> bool:
        """Make Docker, CHP and memory agree. Returns False when Docker or CHP was unreachable."""
        rt, c = self.rt, self.rt.config
        async with self.lock:
            try:
                raw_routes = await rt.chp.get_routes()
                rt.chp_ok = True
            except CHPError as exc:
                log.error("reconcile (%s) skipped: %s", why, exc)
                rt.chp_ok = False
                return False
            try:
                containers = await rt.docker.list_containers(c)
                rt.docker_ok = True
            except (DockerError, OSError) as exc:
                log.error("reconcile (%s) skipped: docker: %s", why, exc)
                rt.docker_ok = False
                return False
            plan = diff(containers, parse_routes(raw_routes, c.instance), dict(rt.pool.slots), c.instance)
            rt.metrics.reconciles.inc()
            if plan.empty:
                return True
            await self._apply(plan, why)
        rt.wake()
        return True

    async def _apply(self, plan: Plan, why: str) -> None:
        rt, c, life = self.rt, self.rt.config, self.life
        for user_id, target in plan.retarget.items():
            if user_id in rt.pool.slots:
                rt.pool.slots[user_id].target = target
        life.forget_old_removals()
        for info in plan.unroutable:
            log.warning(
                "container %s of %s has no address on network %s (or %s-<n>): left alone (not adopted)",
                info.id[:12],
                redact(info.path) or "?",
                c.network_name,
                c.network_name,
            )
        for slot in plan.adopt:
            if slot.user_id in life.removed:  # listed while we were removing it
                continue
            if slot.user_id in life.doomed:
                rt.spawn_task(life.remove_container(slot, "doomed"), f"remove-{slot.user_id}")
                life.doomed.discard(slot.user_id)
                continue
            if slot.user_id not in rt.pool.slots:
                rt.pool.add(slot)
                rt.metrics.adopted.inc()
                log.info("adopted %s (%s) from its labels", redact(slot.path), slot.state.value)
        for user_id in plan.forget:
            found = rt.pool.slots.get(user_id)
            if found is not None and found.state in (State.POOLED, State.IN_USE):
                log.warning("container of %s is gone: forgetting it", redact(found.path))
                rt.pool.discard(user_id)
        for path in plan.delete_routes:
            log.info("deleting route %s: no living container (%s)", redact(path), why)
        for err in await each_bounded(plan.delete_routes, rt.chp.delete_route):
            if err is not None and not isinstance(err, CHPError):  # CHP refused: the next pass retries
                raise err
        for info in plan.remove_containers:
            log.info("removing dead container %s of %s", info.id[:12], redact(info.path))
            try:
                await rt.docker.remove(info.id)
                rt.metrics.removed.labels("dead").inc()
                life.doomed.discard(info.user_id)
            except DockerError as exc:
                log.error("%s", exc)
        wanted = [
            slot
            for slot in plan.add_routes
            if slot.state in (State.POOLED, State.IN_USE) and rt.pool.slots.get(slot.user_id) is slot
        ]

        async def add(slot: Slot) -> None:
            await rt.chp.add_route(slot.path, slot.target, route_data(slot, c.instance))

        restored = 0
        for slot, err in zip(wanted, await each_bounded(wanted, add), strict=True):
            if err is None:
                restored += 1
            elif isinstance(err, CHPError):
                log.error("re-adding route %s failed: %s", redact(slot.path), err)
            else:
                raise err
        if plan.missing_routes:
            rt.metrics.routes_restored.inc(plan.missing_routes)
        log.info(
            "reconciled (%s): adopted %d, routes added %d, routes deleted %d, dead removed %d, forgotten %d",
            why,
            len(plan.adopt),
            restored,
            len(plan.delete_routes),
            len(plan.remove_containers),
            len(plan.forget),
        )

    # ---- CHP: lost routes and activity ------------------------------------------------------
    async def chp_watch_pass(self) -> None:
        """CHP keeps routes in memory only: probe one of ours often, reconcile at once if it is gone."""
        rt = self.rt
        await asyncio.sleep(CHP_WATCH_INTERVAL)
        live = rt.pool.in_state(State.POOLED, State.IN_USE)
        if not live:
            return
        try:
            present = await rt.chp.has_route(live[0].path)
        except CHPError:
            rt.chp_ok = False
            return
        rt.chp_ok = True
        if not present and live[0].state is not State.REMOVING:
            log.warning("CHP lost route %s (restarted?): reconciling now", redact(live[0].path))
            rt.reconcile_now.set()

    async def restore_route(self, user_id: str) -> bool:
        """A visitor reached us on a live user path: CHP lost the route. Re-add it (and the rest)."""
        rt = self.rt
        slot = rt.pool.slots.get(user_id)
        if slot is None or slot.state not in (State.POOLED, State.IN_USE):
            return False
        try:
            if await rt.chp.has_route(slot.path):
                return False  # CHP has it: this request did not come through CHP; no redirect loop
            rt.reconcile_now.set()
            await rt.chp.add_route(slot.path, slot.target, route_data(slot, rt.config.instance))
        except CHPError as exc:
            log.error("re-adding route %s failed: %s", redact(slot.path), exc)
            return False
        rt.metrics.routes_restored.inc()
        log.info("re-added lost route %s for a visitor", redact(slot.path))
        return True

    async def cull_pass(self) -> None:
        await asyncio.sleep(self.rt.config.cull_interval)
        await self.cull_once()

    async def cull_once(self) -> None:
        rt, c = self.rt, self.rt.config
        try:
            routes = parse_routes(await rt.chp.get_routes(), c.instance)
            rt.chp_ok = True
        except CHPError as exc:
            if rt.chp_ok:
                log.error("%s", exc)
            rt.chp_ok = False
            return
        lost = [s for s in rt.pool.in_state(State.POOLED, State.IN_USE) if s.path not in routes]
        if lost:
            log.warning("CHP lost %d of our routes (restarted?): reconciling now", len(lost))
            rt.reconcile_now.set()
        activity = {path: r.last_activity for path, r in routes.items()}
        for cull in choose_culls(
            rt.pool.in_state(State.IN_USE), activity, time.time(), c.cull_timeout, c.cull_max_age
        ):
            rt.metrics.culls.labels(cull.reason.value).inc()
            log.info("culling %s: %s", redact(cull.slot.path), cull.reason.value)
            self.life.remove(cull.slot, f"cull_{cull.reason.value}")
