"""Run many small writes (CHP route changes) at once, at most ``limit`` in flight.

Reconciliation after a CHP restart re-adds every route: one by one under the reconcile lock that
took a round trip each (10,000 routes = 10,000 sequential requests). JupyterHub's proxy check_routes
gathers its writes; here they are gathered behind a semaphore, so CHP sees a bounded burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

ROUTE_WRITE_CONCURRENCY = 16  # CHP route writes in flight during one reconciliation


async def each_bounded(
    items: Iterable[T], write: Callable[[T], Awaitable[object]], limit: int = ROUTE_WRITE_CONCURRENCY
) -> list[BaseException | None]:
    """Await ``write(item)`` for every item, ``limit`` at a time; returns each item's error or None."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    gate = asyncio.Semaphore(limit)

    async def one(item: T) -> BaseException | None:
        async with gate:
            try:
                await write(item)
            except Exception as exc:  # returned to the caller, which logs or raises it
                return exc
            return None

    return list(await asyncio.gather(*(one(i) for i in items)))
