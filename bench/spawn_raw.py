"""The raw side of the spawn bench (bench/spawn.py): `docker run -d` and an HTTP poll per
container, without the orchestrator, plain or with the orchestrator's hardening, to compare the
pool's refill rate with."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

import aiohttp

from testsupport.stack import new_instance

# What the orchestrator asks of Docker for each container (tmpnb.docker_spec.container_spec).
HARDENED = [
    "--init", "--memory", "512m", "--memory-swap", "512m", "--cpu-shares", "1024", "--pids-limit", "256",
    "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "1000:1000",
]  # fmt: skip


async def _raw_one(
    image: str, label: str, extra: list[str], sem: asyncio.Semaphore, session: aiohttp.ClientSession
) -> None:
    async with sem:
        proc = await asyncio.create_subprocess_exec(
            "docker", "run", "-d", "--label", label, *extra, image,
            "python3", "/opt/tinynb.py", "--base-url=/x/", "--port=8888",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        cid = out.decode().strip()
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        proc = await asyncio.create_subprocess_exec(
            "docker", "inspect", "-f", fmt, cid, stdout=asyncio.subprocess.PIPE
        )
        ip = (await proc.communicate())[0].decode().strip()
        while True:
            try:
                async with session.get(f"http://{ip}:8888/x/") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)


def phase_raw(image: str, n: int, concurrency: int, hardened: bool) -> dict[str, Any]:
    """`docker run -d` + poll HTTP, n containers, `concurrency` at once: plain (default bridge, no
    limits) or hardened (the orchestrator's settings, on an icc=false network of its own)."""
    name = new_instance("raw")
    label = f"tmpnb.bench={name}"
    extra: list[str] = ["--memory", "512m"]
    if hardened:
        subprocess.run(
            ["docker", "network", "create", "-o", "com.docker.network.bridge.enable_icc=false", name],
            capture_output=True,
            check=True,
        )
        extra = [*HARDENED, "--network", name]

    async def go() -> float:
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            t0 = time.monotonic()
            await asyncio.gather(*(_raw_one(image, label, extra, sem, session) for _ in range(n)))
            return time.monotonic() - t0

    try:
        seconds = asyncio.run(go())
    finally:
        ids = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True, check=False
        ).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        if hardened:
            subprocess.run(["docker", "network", "rm", name], capture_output=True, check=False)
    return {
        "containers": n,
        "concurrency": concurrency,
        "hardened": hardened,
        "seconds": round(seconds, 2),
        "per_second": round(n / seconds, 2),
    }
