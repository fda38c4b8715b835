"""Hand-out: a visitor gets a pooled container (no Docker call on this path), or waits for one.

The per-client cap is reserved before any wait and given back when the visitor gets nothing; a
hand-out counts only once CHP has recorded it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from tmpnb.chp import CHPError
from tmpnb.ids import redact
from tmpnb.pool import Slot, State, can_ever_serve, mark_handed_out
from tmpnb.ratelimit import RateLimiter, client_key
from tmpnb.reconcile import route_data
from tmpnb.runtime import Runtime

log = logging.getLogger("tmpnb")


class Full(Exception):
    """No container free and none can be started for this visitor now."""


class RateLimited(Exception):
    """This client spawned its allowance for the last minute."""


class NotRecorded(Exception):
    """CHP did not record a hand-out: the slot went back to the pool, the visitor should retry."""


class HandOut:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.limiter = RateLimiter()
        self.waiters: deque[asyncio.Future[Slot]] = deque()
        self.last_hand_out = 0.0  # time.monotonic() of the last hand-out (refill defers to bursts)

    def waiting(self) -> int:
        return sum(1 for f in self.waiters if not f.done())

    def cancel_waiters(self) -> None:
        for fut in self.waiters:
            if not fut.done():
                fut.cancel()

    def user_url(self, slot: Slot) -> str:
        c = self.rt.config
        return f"{c.public_url}{c.base_path(slot.user_id)}{c.redirect_path}"

    async def spawn(self, client: str) -> str:
        """Hand a pooled container to a visitor and return its URL. No Docker call on this path.

        The per-client cap is reserved before any wait (check and record in one step) and given back
        when the visitor gets nothing. A hand-out counts only once CHP has recorded it: otherwise the
        slot goes back to the pool (its route still says pooled) and the visitor is told to retry,
        so a restart can never adopt it as pooled and hand it to a second visitor.
        """
        rt, c = self.rt, self.rt.config
        started = time.monotonic()
        now = time.time()
        key = client_key(client)
        if not self.limiter.reserve(key, c.spawn_limit_per_minute, now):
            rt.metrics.spawns.labels("rate_limited").inc()
            raise RateLimited(client)
        try:
            slot = rt.pool.take(now)
            if slot is None:
                slot = await self._wait_for_slot()
            self.last_hand_out = time.monotonic()
            rt.wake()
            await self._record_hand_out(slot)
        except (Exception, asyncio.CancelledError) as exc:  # the visitor gets nothing: the cap back,
            self.limiter.release(key, now)  # and a failed spawn, unless the visitor left
            if not isinstance(exc, asyncio.CancelledError):
                rt.recent_spawns.failed()
            raise
        latency = time.monotonic() - started
        rt.metrics.spawns.labels("ok").inc()
        rt.metrics.spawn_seconds.labels("ok").observe(latency)
        rt.recent_spawns.handed_out(latency)
        log.info("handed out %s to %s", redact(slot.path), client)
        return self.user_url(slot)

    async def _record_hand_out(self, slot: Slot) -> None:
        """Re-post the slot's route as in use; on any failure put the slot back as pooled."""
        try:
            await self.rt.chp.add_route(slot.path, slot.target, route_data(slot, self.rt.config.instance))
        except (CHPError, asyncio.CancelledError) as exc:
            self.put_back(slot)
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.rt.metrics.spawns.labels("not_recorded").inc()
            log.warning("hand-out of %s not recorded in CHP, back in the pool: %s", redact(slot.path), exc)
            raise NotRecorded(str(exc)) from exc

    def put_back(self, slot: Slot) -> None:
        """A slot taken for a visitor who did not get it: pooled again (next waiter first), unless
        something else claimed it meanwhile (a removal)."""
        if slot.state is State.IN_USE:
            slot.state, slot.handed_out = State.POOLED, None
            self.offer(slot)

    async def _wait_for_slot(self) -> Slot:
        rt, c = self.rt, self.rt.config
        if c.spawn_wait <= 0 or not can_ever_serve(rt.pool.counts(), c.capacity):
            rt.metrics.spawns.labels("full").inc()
            raise Full
        fut: asyncio.Future[Slot] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        rt.wake()
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that meets the
            # future's completion (gh-86296), and a visitor who left must not keep a slot.
            async with asyncio.timeout(c.spawn_wait):
                return await asyncio.shield(fut)
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                return fut.result()
            fut.cancel()
            rt.metrics.spawns.labels("full").inc()
            raise Full from None
        except (
            asyncio.CancelledError
        ):  # the visitor's request went away: a slot offered meanwhile is not lost
            if fut.done() and not fut.cancelled():
                self.put_back(fut.result())
            fut.cancel()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self.waiters.remove(fut)

    def offer(self, slot: Slot) -> None:
        """A slot just became ready: the first waiting visitor gets it, else it joins the pool."""
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                mark_handed_out(slot, time.time())
                fut.set_result(slot)
                return
