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
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import docker
import jinja2
import yaml

from bench.record import ROOT, Proc, header, pct, positive, write
from testsupport.stack import (
    CHP,
    NOTEBOOK6,
    NOTEBOOK_IMAGE,
    OrchestratorProcess,
    cleanup_instance,
    docker_client,
    free_port,
    new_instance,
    stop_process,
    wait_for,
)
from tmpnb.crowd.assets import static_assets

ROLE = ROOT / "roles" / "nginx_static"
SITE_TEMPLATE = ROLE / "templates" / "etc" / "nginx" / "conf.d" / "tmpnb.conf.j2"

MAIN_CONF = """# nginx.conf for bench/static.py: Debian's defaults that matter here, paths under the bench's
# directory, the site below rendered from roles/nginx_static's template.
daemon off;
worker_processes auto;
worker_rlimit_nofile {nofile};
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections {connections};
}}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    access_log {dir}/access.log;
    gzip on;
    # No effect while no .gz sits next to a file (extract_static.py writes none): the bench's last
    # side adds one, to measure serving it precompressed instead of compressing on every request.
    gzip_static on;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    include {dir}/tmpnb.conf;
}}
"""


def render_site(
    static_dir: Path,
    http_port: int,
    upstream: str,
    trees: list[dict[str, str]] | None = None,
    access_log: Path | None = None,
) -> str:
    """roles/nginx_static's site template with the role's defaults and this bench's paths/ports.
    TREES: the role's placed trees ({prefix, name, dest}, reverse order of prefix, as
    tasks/main.yml sets them); default its one tree static/ in STATIC_DIR (linked as
    STATIC_DIR/images/<key>/static by the extractor's --images-dir)."""
    values: dict[str, Any] = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values.update(
        nginx_static_image=NOTEBOOK_IMAGE,
        nginx_static_dir=str(static_dir),
        # The role's placement of its default one tree (tasks/main.yml).
        __nginx_static_locations=trees or [{"prefix": "static/", "name": "static", "dest": str(static_dir)}],
        nginx_static_http_port=http_port,
        nginx_static_access_log=str(access_log or static_dir.parent / "access.log"),
        nginx_static_upstream=upstream,
        ansible_managed="rendered by bench/static.py from roles/nginx_static",
        __nginx_static_ipv6={"stat": {"exists": False}},
    )
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )  # nginx config, not HTML
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    return env.from_string(SITE_TEMPLATE.read_text()).render(**values)


class Nginx:
    """Debian's nginx binary as a foreground process of this bench."""

    def __init__(
        self, workdir: Path, static_dir: Path, upstream: str, trees: list[dict[str, str]] | None = None
    ) -> None:
        self.dir = workdir / "nginx"
        (self.dir / "tmp").mkdir(parents=True)
        self.port = free_port()
        nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1048576)
        (self.dir / "tmpnb.conf").write_text(
            render_site(static_dir, self.port, upstream, trees, self.dir / "access.log")
        )
        (self.dir / "nginx.conf").write_text(
            MAIN_CONF.format(dir=self.dir, nofile=nofile, connections=min(16384, nofile // 2))
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def args(self) -> list[str]:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        return [
            binary,
            "-e",
            str(self.dir / "error.log"),
            "-p",
            str(self.dir),
            "-c",
            str(self.dir / "nginx.conf"),
        ]

    def check(self) -> None:
        """`nginx -t` on the rendered configuration; a RuntimeError with nginx's words if refused."""
        check = subprocess.run([*self.args(), "-t", "-q"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered config: {check.stderr.strip()}")

    def start(self) -> None:
        self.check()
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(lambda: (self.dir / "nginx.pid").exists() and self.workers(), 20, "nginx workers")

    def workers(self) -> list[int]:
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def fds(self) -> int:
        assert self.proc is not None
        return sum(Proc(pid).fds() for pid in [self.proc.pid, *self.workers()])

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


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
