"""Reconciliation writes routes concurrently, at most ROUTE_WRITE_CONCURRENCY at once, against a real
CHP. The counting wrapper only observes the real CHPClient calls (it delegates every one); Docker is
not needed: the plan is handed to _apply directly, as reconcile() would after a CHP restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from testsupport.stack import CHP, TOKEN, free_port
from tmpnb.bounded import ROUTE_WRITE_CONCURRENCY
from tmpnb.config import from_mapping
from tmpnb.orchestrator import Orchestrator
from tmpnb.pool import Slot, State
from tmpnb.reconcile import Plan

N = ROUTE_WRITE_CONCURRENCY * 3


async def test_route_writes_are_concurrent_and_bounded(tmp_path: Path) -> None:
    chp = CHP(tmp_path, default_target_port=free_port())
    chp.start()
    try:
        config = from_mapping(
            {
                "image": "x",
                "pool_size": 0,
                "chp_api_url": chp.api_url,
                "docker_url": "unix:///nonexistent.sock",
            },
            {"CONFIGPROXY_AUTH_TOKEN": TOKEN},
        )
        orch = Orchestrator(config)
        slots = [
            Slot(f"u{i}", f"/user/u{i}", "x", 1.0, State.POOLED, "", f"http://10.9.9.9:{8000 + i}")
            for i in range(N)
        ]
        for slot in slots:
            orch.pool.add(slot)
        in_flight, peak = 0, 0
        real_add, real_delete = orch.chp.add_route, orch.chp.delete_route

        async def counted(call, *args):  # type: ignore[no-untyped-def]
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                await asyncio.sleep(0)  # every write yields once before its request, as a slow CHP would
                return await call(*args)
            finally:
                in_flight -= 1

        orch.chp.add_route = lambda *a: counted(real_add, *a)  # type: ignore[method-assign]
        orch.chp.delete_route = lambda *a: counted(real_delete, *a)  # type: ignore[method-assign]
        try:
            await orch.reconciler._apply(Plan(add_routes=slots, missing_routes=N), "test")
            assert peak == ROUTE_WRITE_CONCURRENCY  # concurrent (> 1) and never above the bound
            routes = await orch.chp.get_routes()
            assert {s.path for s in slots} <= set(routes)

            peak = 0
            await orch.reconciler._apply(Plan(delete_routes=[s.path for s in slots]), "test")
            assert peak == ROUTE_WRITE_CONCURRENCY
            assert not {s.path for s in slots} & set(await orch.chp.get_routes())
        finally:
            await orch.chp.close()
            await orch.docker.close()
    finally:
        chp.stop()
