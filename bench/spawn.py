"""Time-to-notebook: a visitor's wait with a warm pool against cold starts, and the pool's refill
rate against raw `docker run`, on this machine, in one run; then the same wait with real Jupyter
servers (Debian's notebook 6, `tmpnb-notebook:debian-1`) for fewer visitors.

    python -m bench spawn [--visitors 100] [--concurrency 8] [--jupyter-visitors 10]

Prints the figures and writes bench/results/spawn.json. The 100-visitor run uses the light test
image (tests/images/tinynb: Debian + a tiny HTTP server answering at its base path): on a 2-core
machine 100 real Jupyter servers would measure the CPU, not the orchestrator; the Jupyter run shows
what a real boot (about 3.6 core-seconds) does to each side. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import docker

from bench.record import header, positive, summary, write
from bench.spawn_raw import phase_raw
from testsupport.stack import (
    CHP,
    NOTEBOOK6,
    NOTEBOOK_IMAGE,
    OrchestratorProcess,
    cleanup_instance,
    docker_client,
    free_port,
    new_instance,
    tiny_image,
    wait_for,
)


async def visitor(session: aiohttp.ClientSession, front: str) -> tuple[float, int]:
    """POST /spawn through CHP, follow the redirect through CHP until the notebook answers 200."""
    t0 = time.monotonic()
    async with session.post(f"{front}/spawn", allow_redirects=False) as resp:
        status = resp.status
        location = resp.headers.get("Location", "")
    if status != 303:
        return time.monotonic() - t0, status
    while True:
        async with session.get(f"{front}{location}", allow_redirects=False) as resp:
            await resp.read()
            if resp.status == 200:
                return time.monotonic() - t0, 200
        await asyncio.sleep(0.05)


async def crowd(front: str, n: int) -> tuple[list[float], dict[int, int]]:
    timeout = aiohttp.ClientTimeout(total=600)
    # CHP (Node) closes a keep-alive connection idle for 5 s: reusing one at that moment fails with
    # "Server disconnected" (a cold start keeps connections idle that long); drop them sooner.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        results = await asyncio.gather(*(visitor(session, front) for _ in range(n)))
    ok = [t for t, status in results if status == 200]
    statuses: dict[int, int] = {}
    for _, status in results:
        statuses[status] = statuses.get(status, 0) + 1
    return ok, statuses


def run_stack(workdir: Path, image: str, **options: Any) -> tuple[CHP, OrchestratorProcess]:
    port = free_port()
    chp = CHP(workdir, port)
    chp.start()
    orch = OrchestratorProcess(
        workdir, new_instance("bench"), chp, port, image=image, log_level="warning", **options
    )
    return chp, orch


def phase_warm(
    workdir: Path, image: str, visitors: int, concurrency: int, refill: bool = True, **options: Any
) -> dict[str, Any]:
    """A pool of `visitors` filled first, then they all arrive at once; with `refill`, the time the
    pool takes to fill again after the crowd emptied it."""
    chp, orch = run_stack(
        workdir,
        image,
        pool_size=visitors,
        capacity=visitors * 2,
        max_concurrent_starts=concurrency,
        **options,
    )
    client = docker_client()
    try:
        t0 = time.monotonic()
        orch.start(wait_pool=False)
        wait_for(lambda: orch.stats()["available"] >= visitors, 600, f"{visitors} pooled", interval=0.05)
        fill = time.monotonic() - t0
        times, statuses = asyncio.run(crowd(chp.url, visitors))
        count = orch.metric("tmpnb_spawn_duration_seconds_count", 'result="ok"')
        total = orch.metric("tmpnb_spawn_duration_seconds_sum", 'result="ok"')
        result: dict[str, Any] = {"hand_out_server_side_mean_s": round(total / count, 4) if count else None}
        if refill:
            # the refill proper: the crowd took the whole pool; time until it is full again
            t1 = time.monotonic()
            wait_for(lambda: orch.stats()["available"] >= visitors, 600, "pool refilled", interval=0.05)
            seconds = time.monotonic() - t1
            result["refill"] = {
                "containers": visitors,
                "seconds": round(seconds, 2),
                "per_second": round(visitors / seconds, 2),
            }
        return {
            **result,
            "pool_fill": {
                "containers": visitors,
                "seconds": round(fill, 2),
                "per_second": round(visitors / fill, 2),
            },
            "visitors": summary(times) if times else {},
            "statuses": statuses,
        }
    finally:
        orch.stop()
        chp.stop()
        cleanup_instance(client, orch.instance)


def phase_cold(workdir: Path, image: str, visitors: int, concurrency: int, **options: Any) -> dict[str, Any]:
    chp, orch = run_stack(
        workdir,
        image,
        pool_size=0,
        capacity=visitors,
        max_concurrent_starts=concurrency,
        spawn_wait=600,
        boot_timeout=600,
        **options,
    )
    client = docker_client()
    try:
        orch.start(wait_pool=False)
        times, statuses = asyncio.run(crowd(chp.url, visitors))
        return {"visitors": summary(times) if times else {}, "statuses": statuses}
    finally:
        orch.stop()
        chp.stop()
        cleanup_instance(client, orch.instance)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench spawn")
    parser.add_argument("--visitors", type=positive(int), default=100)
    parser.add_argument(
        "--concurrency", type=positive(int), default=8, help="max_concurrent_starts, and raw docker run's"
    )
    parser.add_argument(
        "--jupyter-visitors", type=int, default=10, help="visitors for the real Jupyter image (0: skip)"
    )
    args = parser.parse_args(argv)
    client = docker_client()
    image = tiny_image(client)
    load_before = header(
        f"time-to-notebook: warm pool against no pool, {args.visitors} simultaneous visitors"
    )
    print(
        f"   image {image} (light test image: a tiny HTTP server, not Jupyter), "
        f"concurrent starts {args.concurrency}"
    )
    with tempfile.TemporaryDirectory(prefix="tmpnb-bench-") as tmp:
        workdir = Path(tmp)
        warm = phase_warm(workdir, image, args.visitors, args.concurrency)
        _print("warm pool", warm)
        cold = phase_cold(workdir, image, args.visitors, args.concurrency)
        _print("no pool (cold starts)", cold)
        _ratio(warm, cold)
        jupyter = phase_jupyter(client, workdir, args.jupyter_visitors, args.concurrency)
    raw = phase_raw(image, args.visitors, args.concurrency, hardened=False)
    raw_hardened = phase_raw(image, args.visitors, args.concurrency, hardened=True)
    fill, refill = warm["pool_fill"], warm["refill"]
    print(
        f"refill rate: pool {refill['per_second']}/s after the crowd took it ({refill['containers']} in "
        f"{refill['seconds']}s; first fill incl. process start {fill['per_second']}/s), each "
        f"create+start+answer+route, vs raw `docker run` {raw['per_second']}/s ({raw['seconds']}s, "
        f"default bridge, --memory only) and {raw_hardened['per_second']}/s ({raw_hardened['seconds']}s, "
        "same hardening and icc=false network as the pool)"
    )
    result = {
        "image": image,
        "note": "light test image (tiny HTTP server); a Jupyter boot costs ~3.6 core-seconds more each",
        "visitors": args.visitors,
        "concurrency": args.concurrency,
        "warm_pool": warm,
        "cold_start": cold,
        "jupyter": jupyter,
        "raw_docker_run": raw,
        "raw_docker_run_hardened": raw_hardened,
    }
    write("spawn", result, load_before)
    return 0


def phase_jupyter(client: Any, workdir: Path, visitors: int, concurrency: int) -> dict[str, Any]:
    """The same two phases with real Jupyter servers (no refill wait: it would only repeat the fill)."""
    if visitors <= 0:
        return {"skipped": "--jupyter-visitors 0"}
    try:
        client.images.get(NOTEBOOK_IMAGE)
    except docker.errors.ImageNotFound:
        print(f"real Jupyter image {NOTEBOOK_IMAGE} not built: skipped (make notebook-image builds it)")
        return {"skipped": f"{NOTEBOOK_IMAGE} not built"}
    print(f"-- real Jupyter: {NOTEBOOK_IMAGE} (Debian's notebook 6), {visitors} simultaneous visitors")
    warm = phase_warm(
        workdir, NOTEBOOK_IMAGE, visitors, concurrency, refill=False, command=NOTEBOOK6, boot_timeout=300
    )
    _print("jupyter, warm pool", warm)
    cold = phase_cold(workdir, NOTEBOOK_IMAGE, visitors, concurrency, command=NOTEBOOK6)  # boots: 600 s
    _print("jupyter, no pool (cold starts)", cold)
    _ratio(warm, cold)
    return {"image": NOTEBOOK_IMAGE, "visitors": visitors, "warm_pool": warm, "cold_start": cold}


def _ratio(warm: dict[str, Any], cold: dict[str, Any]) -> None:
    w, c = warm["visitors"], cold["visitors"]
    if w and c:
        print(
            f"   no pool / warm pool: p50 x{c['p50_s'] / w['p50_s']:.0f}, p99 x{c['p99_s'] / w['p99_s']:.0f}"
        )


def _print(name: str, phase: dict[str, Any]) -> None:
    v = phase["visitors"]
    inside = phase.get("hand_out_server_side_mean_s")
    if inside is not None:
        print(f"{name}: hand-out inside the orchestrator: mean {inside * 1000:.1f} ms")
    if v:
        print(
            f"{name}: POST /spawn -> notebook answering through CHP: p50 {v['p50_s'] * 1000:.0f} ms, "
            f"p99 {v['p99_s'] * 1000:.0f} ms, max {v['max_s'] * 1000:.0f} ms "
            f"(n={v['n']}, statuses {phase['statuses']})"
        )
    else:
        print(f"{name}: no visitor got a notebook (statuses {phase['statuses']})")
