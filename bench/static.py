"""Static offload: the notebook page's largest static file served by nginx from the copy that
roles/nginx_static/files/extract_static made of the real notebook image, against the same file through CHP and
the notebook container, side by side in one run, with CHP's open descriptors during each.

    python -m bench static [--clients 32] [--duration 10]

nginx is Debian's (`scripts/apt-install.sh nginx`), run as a process of this bench on a free
loopback port with the site rendered from roles/nginx_static's own template (wrapped in a minimal
nginx.conf like Debian's: worker_processes auto, sendfile, gzip, access log). CHP, the orchestrator
and one real Jupyter server (`tmpnb-notebook:debian-1`) come from testsupport/stack.py. The load: aiohttp,
keep-alive, N clients each sending one GET after the other for a fixed time. The load generator is
one Python process on the same 2 cores: nginx's figure is bounded by it (said in the output).

Sides, one after the other against the same processes: nginx_copy (a browser's Accept-Encoding:
nginx compresses the file on every request, `gzip on` with the role's gzip_types),
nginx_copy_identity (no compression: sendfile), nginx_copy_gzip_static, a what-if: the same copy
with a `.gz` written next to the file, which `gzip_static on` then serves as is, and chp_container
(the notebook server answers through CHP; it does not compress).
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import docker

from bench.record import Proc, header, pct, positive, write
from bench.static_nginx import ROLE, Nginx
from testsupport.stack import (
    CHP,
    NOTEBOOK6,
    NOTEBOOK_IMAGE,
    OrchestratorProcess,
    cleanup_instance,
    docker_client,
    free_port,
    new_instance,
)
from tmpnb.crowd.assets import static_assets


async def largest_static_file(front: str, user_path: str, page: str) -> tuple[str, int, list[dict[str, Any]]]:
    """The static file the notebook page references with the most bytes (uncompressed)."""
    headers = {"Accept-Encoding": "identity"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{front}{page}") as resp:
            resp.raise_for_status()
            html = await resp.text()
        files = []
        for url in static_assets(html, f"{front}{page}", user_path):
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                if resp.status == 200 and "/static/" in url:
                    files.append({"path": url.removeprefix(front), "bytes": len(body)})
    if not files:
        raise RuntimeError(f"the notebook page {page} references no static file under {user_path}static/")
    best = max(files, key=lambda f: f["bytes"])
    return best["path"], best["bytes"], files


async def load(
    url: str, headers: dict[str, str], clients: int, duration: float, sample: dict[str, Any]
) -> dict[str, Any]:
    """`clients` keep-alive clients, each GET after GET of `url` for `duration` seconds; descriptors
    of the processes in `sample` (name -> callable) read every 0.2 s meanwhile."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    encodings: set[str] = set()
    nbytes = 0
    fds: dict[str, list[int]] = {name: [] for name in sample}
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=clients)
    # bytes as they come on the wire (a gzipped answer is not inflated: the client does no extra work)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector, auto_decompress=False) as session:
        stop = time.monotonic() + duration

        async def client() -> None:
            nonlocal nbytes
            while time.monotonic() < stop:
                t0 = time.monotonic()
                try:
                    async with session.get(url, headers=headers) as resp:
                        body = await resp.read()
                        if resp.status != 200:
                            errors[f"http {resp.status}"] = errors.get(f"http {resp.status}", 0) + 1
                            continue
                        encodings.add(resp.headers.get("Content-Encoding", "identity"))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.monotonic() - t0)
                nbytes += len(body)

        async def sampler() -> None:
            while time.monotonic() < stop:
                for name, read in sample.items():
                    fds[name].append(read())
                await asyncio.sleep(0.2)

        t0 = time.monotonic()
        await asyncio.gather(sampler(), *(client() for _ in range(clients)))
        elapsed = time.monotonic() - t0
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 2),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pct(latencies, 50) * 1000, 2) if latencies else None,
        "p99_ms": round(pct(latencies, 99) * 1000, 2) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 2) if latencies else None,
        "wire_megabytes_per_second": round(nbytes / elapsed / 1e6, 1),
        "content_encoding": sorted(encodings),
        "errors": errors,
        "open_fds": {
            name: {"max": max(v), "mean": round(sum(v) / len(v), 1)} for name, v in fds.items() if v
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench static")
    parser.add_argument("--clients", type=positive(int), default=32, help="concurrent keep-alive clients")
    parser.add_argument("--duration", type=positive(float), default=10.0, help="seconds of load on each side")
    args = parser.parse_args(argv)
    load_before = header("static offload: nginx from the extracted copy against CHP -> notebook container")
    client = docker_client()
    try:
        client.images.get(NOTEBOOK_IMAGE)
    except docker.errors.ImageNotFound:
        print(f"   {NOTEBOOK_IMAGE} not built: skipped (make notebook-image builds it)")
        return 0
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("   nginx is not installed: skipped (scripts/apt-install.sh nginx)")
        return 0
    with tempfile.TemporaryDirectory(prefix="tmpnb-bench-static-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # nginx's workers (user nobody) read the copy under it
        static_dir = workdir / "static"
        t0 = time.monotonic()
        script = ROLE / "files" / "extract_static"
        argv = [sys.executable, str(script), "--image", NOTEBOOK_IMAGE, "--dest", str(static_dir)]
        done = subprocess.run(
            [*argv, "--images-dir", str(static_dir / "images"), "--tree", "static"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"roles/nginx_static/files/extract_static failed: {done.stderr.strip()}")
        extract_s = time.monotonic() - t0
        port = free_port()
        chp = CHP(workdir, port)
        chp.start()
        orch = OrchestratorProcess(
            workdir, new_instance("bench"), chp, port, image=NOTEBOOK_IMAGE, command=NOTEBOOK6,
            pool_size=1, capacity=2, boot_timeout=120, log_level="warning",
        )  # fmt: skip
        nginx = Nginx(workdir, static_dir, f"127.0.0.1:{chp.port}")
        try:
            orch.start()
            nginx.start()
            result = measure(args, chp, orch, nginx, static_dir, extract_s)
        finally:
            nginx.stop()
            orch.stop()
            chp.stop()
            cleanup_instance(client, orch.instance)
    write("static", result, load_before)
    return 0


def measure(
    args: argparse.Namespace,
    chp: CHP,
    orch: OrchestratorProcess,
    nginx: Nginx,
    static_dir: Path,
    extract_s: float,
) -> dict[str, Any]:
    spawn = orch.spawn(via=chp.url)
    if spawn.status_code != 303:
        raise RuntimeError(f"POST /spawn answered {spawn.status_code}, not 303: {spawn.text[:200]}")
    page = spawn.headers["Location"]
    user_path = page[: page.index("/", len("/user/")) + 1]
    path, size, files = asyncio.run(largest_static_file(chp.url, user_path, page))
    relative = path.split("?", 1)[0].split("/static/", 1)[1]
    if not (static_dir / "current" / "files" / relative).is_file():
        raise RuntimeError(f"{relative} is not in the extracted copy: nginx would pass it on to CHP")
    print(f"   file: {path} ({size} bytes, the largest of the {len(files)} static files the page loads)")
    print(f"   static files extracted in {extract_s:.1f} s; {args.clients} clients, {args.duration:g} s each")
    chp_proc = Proc(chp.proc.pid)  # type: ignore[union-attr] - started above
    sample = {"chp": chp_proc.fds, "nginx": nginx.fds}
    idle = {"chp": chp_proc.fds(), "nginx": nginx.fds()}
    nginx_url, chp_url = f"http://127.0.0.1:{nginx.port}{path}", f"{chp.url}{path}"
    browser = {"Accept-Encoding": "gzip, deflate"}  # what a browser asks for
    sides = {
        "nginx_copy": (nginx_url, browser),
        "nginx_copy_identity": (nginx_url, {"Accept-Encoding": "identity"}),
        "nginx_copy_gzip_static": (nginx_url, browser),
        "chp_container": (chp_url, browser),  # last: CHP keeps its connections a while after
    }
    results: dict[str, Any] = {}
    for name, (url, headers) in sides.items():
        if name == "nginx_copy_gzip_static":  # what-if: the copy holding a precompressed sibling
            copy = static_dir / "current" / "files" / relative
            gz = copy.with_name(copy.name + ".gz")
            gz.write_bytes(gzip.compress(copy.read_bytes(), compresslevel=9, mtime=0))
            os.chmod(gz, 0o644)
        asyncio.run(load(url, headers, args.clients, 1.0, {}))  # warm-up: connections, caches
        results[name] = asyncio.run(load(url, headers, args.clients, args.duration, sample))
        r = results[name]
        print(
            f"{name:22}: {r['requests_per_second']:7.1f} req/s, p50 {r['p50_ms']:7.1f} ms, "
            f"p99 {r['p99_ms']:7.1f} ms, {r['wire_megabytes_per_second']:5.1f} MB/s on the wire "
            f"({'/'.join(r['content_encoding'])}), errors {r['errors'] or 0}, "
            f"CHP fds max {r['open_fds']['chp']['max']} (idle {idle['chp']})"
        )
    c = results["chp_container"]
    ratio = {}
    for name in ("nginx_copy", "nginx_copy_identity", "nginx_copy_gzip_static"):
        n = results[name]
        ratio[name] = {
            "requests_per_second": round(n["requests_per_second"] / c["requests_per_second"], 2),
            "p50": round(c["p50_ms"] / n["p50_ms"], 2),
            "p99": round(c["p99_ms"] / n["p99_ms"], 2),
        }
        print(
            f"   {name} / chp_container: x{ratio[name]['requests_per_second']} requests/s, "
            f"latency p50 /{ratio[name]['p50']}, p99 /{ratio[name]['p99']}; CHP held "
            f"{n['open_fds']['chp']['max']} descriptors meanwhile, {c['open_fds']['chp']['max']} "
            "while it served the file itself"
        )
    print("   (the load generator is one Python process on the same cores: it bounds nginx's figures)")
    return {
        "image": NOTEBOOK_IMAGE,
        "file": {"path": path, "bytes": size},
        "page_static_files": files,
        "extract_seconds": round(extract_s, 1),
        "clients": args.clients,
        "duration_s": args.duration,
        "idle_open_fds": idle,
        **results,
        "ratio_over_chp_container": ratio,
        "note": "one Python aiohttp process generates the load on the same 2 cores; nginx is bounded by it",
    }
