"""Cost of the orchestrator: its resident memory and CPU with 1,000 slots (routes and pool state),
against the same process with none, in one run.

    python -m bench cost [--slots 1000] [--pooled 100] [--window 30]

What is real here: CHP, the orchestrator process (`python -m tmpnb`), the Docker engine and 1,000
containers. What is light: each container is the orchestrator's own create body
(tmpnb.docker_spec.container_spec: labels, network, limits, lockdown) with its command replaced
by `sleep infinity` (the tiny image), and its route is posted to CHP by this bench with the data the
orchestrator writes (tmpnb.reconcile.route_data): 900 in use, 100 pooled. The orchestrator then
starts and adopts them from their labels and routes, as after a restart, and runs its periodic
passes over them. 1,000 Jupyter servers would not fit on 2 cores; 1,000 sleeping containers do, and
the orchestrator's work (listing, parsing, diffing, holding the slots) is the same for both.
Reported: RSS idle and after adoption, CPU seconds of the adoption and per reconcile pass.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiodocker

from bench.record import Proc, header, positive, write
from testsupport.stack import (
    CHP,
    OrchestratorProcess,
    cleanup_instance,
    docker_client,
    free_port,
    new_instance,
    tiny_image,
    wait_for,
)
from tmpnb.config import load
from tmpnb.docker_spec import container_name, container_spec
from tmpnb.ids import new_user_id
from tmpnb.pool import Slot, State
from tmpnb.reconcile import route_data, route_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cost")
    parser.add_argument("--slots", type=positive(int), default=1000, help="containers (and routes) to adopt")
    parser.add_argument("--pooled", type=int, default=100, help="of which pooled (the rest in use)")
    parser.add_argument(
        "--window", type=positive(float), default=30.0, help="seconds of periodic passes measured"
    )
    parser.add_argument("--reconcile-interval", type=positive(float), default=2.0)
    parser.add_argument(
        "--concurrency", type=positive(int), default=16, help="containers created/removed at once"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.pooled <= args.slots:
        parser.error(f"--pooled: expected 0 to --slots ({args.slots}), got {args.pooled}")
    load_before = header(f"cost of the orchestrator: {args.slots} slots against none")
    client = docker_client()
    image = tiny_image(client)
    with tempfile.TemporaryDirectory(prefix="tmpnb-bench-cost-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        chp = CHP(workdir, port)
        chp.start()
        options: dict[str, Any] = {
            "image": image,
            "pool_size": 0,
            "capacity": args.slots,
            "reconcile_interval": args.reconcile_interval,
            "cull_interval": 30,  # the default: the bench's harness polls faster for its tests
            "log_level": "warning",
        }
        orch = OrchestratorProcess(workdir, new_instance("cost"), chp, port, **options)
        try:
            result = measure(args, chp, orch)
            write("cost", result, load_before)  # before the (long) removal: a cut-short clean-up keeps it
        finally:
            orch.stop()
            chp.stop()
            t0 = time.monotonic()
            asyncio.run(remove_all(orch.instance, args.concurrency))
            cleanup_instance(client, orch.instance)
            print(f"   removed the containers in {time.monotonic() - t0:.0f} s")
            if client.networks.list(names=[f"tmpnb-{orch.instance}"]):
                net = f"tmpnb-{orch.instance}"
                print(f"   WARNING: the engine kept network {net} (stale endpoints): remove it later")
    return 0


def measure(args: argparse.Namespace, chp: CHP, orch: OrchestratorProcess) -> dict[str, Any]:
    chp_proc = lambda: Proc(chp.proc.pid)  # type: ignore[union-attr] # noqa: E731 - started above
    idle_chp = {"rss_mb": chp_proc().rss_mb(), "fds": chp_proc().fds()}
    # 1. no slot at all (the instance's network is created here)
    idle = run_phase(orch, 0, args.window)
    print(
        f"   no slot:    RSS {idle['rss_mb_ready']} MB after start, {idle['rss_mb_end']} MB after "
        f"{idle['passes']} passes; CPU {idle['cpu_s_start']:.2f} s to start, "
        f"{idle['cpu_ms_per_pass']:.1f} ms per reconcile pass (all loops included)"
    )
    # 2. the slots: containers from the orchestrator's own create body, routes with its data
    t0 = time.monotonic()
    config = load(orch.config_path, need_secrets=False)
    made = asyncio.run(create_slots(config, args.slots, args.concurrency))
    created_s = time.monotonic() - t0
    now = time.time()
    for i, (user_id, container_id, target) in enumerate(made):
        slot = Slot(user_id, route_path(config.user_path_prefix, user_id), config.image, now)
        slot.container_id, slot.target = container_id, target
        slot.state = State.POOLED if i < args.pooled else State.IN_USE
        slot.handed_out = None if i < args.pooled else now
        chp.add_route(slot.path, target, **route_data(slot, config.instance))
    print(
        f"   {len(made)} containers started in {created_s:.0f} s and routed in CHP "
        f"({args.pooled} pooled, {len(made) - args.pooled} in use)"
    )
    loaded_chp = {"rss_mb": chp_proc().rss_mb(), "fds": chp_proc().fds(), "routes": len(chp.routes())}
    orch.configure(pool_size=args.pooled)
    full = run_phase(orch, len(made), args.window)
    held = full["held"]
    orch_result = {"no_slot": idle, "slots": full}
    print(
        f"   {len(made)} slots: RSS {full['rss_mb_ready']} MB after adoption ({full['ready_s']:.1f} s, "
        f"CPU {full['cpu_s_start']:.2f} s from start), {full['rss_mb_end']} MB after {full['passes']} "
        f"passes; {full['cpu_ms_per_pass']:.1f} ms CPU per reconcile pass"
    )
    print(
        f"   {len(made)} slots / none: RSS x{full['rss_mb_end'] / idle['rss_mb_end']:.2f} "
        f"(+{full['rss_mb_end'] - idle['rss_mb_end']:.1f} MB, "
        f"{(full['rss_mb_end'] - idle['rss_mb_end']) * 1024 / len(made):.1f} KB per slot), CPU per pass "
        f"x{full['cpu_ms_per_pass'] / idle['cpu_ms_per_pass']:.1f}; held after: {held['in_use']} in use, "
        f"{held['pooled']} pooled, {held['removed']:.0f} removed"
    )
    print(
        f"   CHP: RSS {idle_chp['rss_mb']} MB with no route, {loaded_chp['rss_mb']} MB with "
        f"{loaded_chp['routes']} routes (JupyterHub reports 230-260 MB for its hub at 100-150 users)"
    )
    return {
        "slots": len(made),
        "pooled": args.pooled,
        "in_use": len(made) - args.pooled,
        "containers": "tests/images/tinynb with `sleep infinity` in the orchestrator's create body",
        "containers_started_s": round(created_s, 1),
        "reconcile_interval_s": args.reconcile_interval,
        "window_s": args.window,
        "orchestrator": orch_result,
        "chp": {"no_route": idle_chp, "with_routes": loaded_chp},
    }


def run_phase(orch: OrchestratorProcess, slots: int, window: float) -> dict[str, Any]:
    """Start the orchestrator, wait until it holds `slots`, then measure a window of its passes."""
    t0 = time.monotonic()
    orch.start(wait_pool=False)
    wait_for(lambda: _held(orch) >= slots, 300, f"{slots} slots adopted", interval=0.05)
    ready_s = time.monotonic() - t0
    proc = Proc(orch.proc.pid)  # type: ignore[union-attr] - started above
    cpu_start, rss_ready = proc.cpu_s(), proc.rss_mb()
    time.sleep(2)  # let the start's own work settle
    passes0, cpu0 = orch.metric("tmpnb_reconciles_total"), proc.cpu_s()
    time.sleep(window)
    passes1, cpu1 = orch.metric("tmpnb_reconciles_total"), proc.cpu_s()
    passes = int(passes1 - passes0)
    stats = orch.stats()
    result = {
        "ready_s": round(ready_s, 2),
        "rss_mb_ready": rss_ready,
        "rss_mb_end": proc.rss_mb(),
        "cpu_s_start": round(cpu_start, 2),
        "passes": passes,
        "cpu_s_window": round(cpu1 - cpu0, 2),
        "cpu_ms_per_pass": round((cpu1 - cpu0) * 1000 / max(passes, 1), 1),
        "held": {
            "in_use": stats["in_use"],
            "pooled": stats["available"],
            "removed": orch.metric("tmpnb_containers_removed_total"),
        },
    }
    orch.stop()
    return result


def _held(orch: OrchestratorProcess) -> int:
    stats = orch.stats()
    return int(stats["in_use"]) + int(stats["available"])


async def create_slots(config: Any, n: int, concurrency: int) -> list[tuple[str, str, str]]:
    """n running containers of this instance: (user id, container id, http://ip:port)."""
    sem = asyncio.Semaphore(concurrency)
    docker = aiodocker.Docker()

    async def one() -> str:
        user_id = new_user_id()
        spec = container_spec(config, user_id, time.time())
        spec["Cmd"] = ["sleep", "infinity"]  # light: the slot's state is what is measured
        async with sem:
            await docker.containers.run(config=spec, name=container_name(config.instance, user_id))
        return user_id

    try:
        await asyncio.gather(*(one() for _ in range(n)))
        listed = await docker.containers.list(filters={"label": [f"tmpnb.instance={config.instance}"]})
        made = []
        for c in listed:
            labels = c["Labels"]
            ip = c["NetworkSettings"]["Networks"][config.network_name]["IPAddress"]
            made.append((labels["tmpnb.user_id"], c.id, f"http://{ip}:{config.container_port}"))
        return made
    finally:
        await docker.close()


async def remove_all(instance: str, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)
    docker = aiodocker.Docker()

    async def one(c: Any) -> None:
        async with sem:
            await c.delete(force=True, v=True)

    try:
        listed = await docker.containers.list(all=True, filters={"label": [f"tmpnb.instance={instance}"]})
        await asyncio.gather(*(one(c) for c in listed), return_exceptions=True)
    finally:
        await docker.close()
