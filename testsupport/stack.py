"""A real stack for integration tests and the benchmark (both import testsupport.stack): a CHP
process on free loopback ports, the orchestrator as a real process (`python -m tmpnb`), the local
Docker engine and a small test image.

Everything created carries a unique instance name, and `cleanup_instance` removes exactly that.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import requests

from tmpnb.placement import instance_network

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "tests" / "images"
CHP_BIN = ROOT / ".cache" / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
BASE_IMAGE = os.environ.get("TMPNB_BASE_IMAGE", "tmpnb-testhost:bookworm-1")
TOKEN = secrets.token_hex(16)
ADMIN_TOKEN = secrets.token_hex(16)
# Debian's notebook 6 (scripts/build-notebook-image.sh): the real Jupyter server of test_jupyter and bench/.
NOTEBOOK_IMAGE = os.environ.get("TMPNB_NOTEBOOK_IMAGE", "tmpnb-notebook:debian-1")
NOTEBOOK6 = [
    "jupyter", "notebook", "--no-browser", "--ip=0.0.0.0", "--port={port}",
    "--NotebookApp.base_url={base_path}", "--NotebookApp.token=", "--NotebookApp.password=",
]  # fmt: skip
TINY_COMMAND = ["python3", "/opt/tinynb.py", "--base-url={base_path}", "--port={port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (requests.RequestException, OSError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise RuntimeError(f"no Docker engine answers ({exc}); run `make engine`") from exc
    return client


def tiny_image(client: docker.DockerClient) -> str:
    """Build the light test image when missing; its tag is the hash of its files (a cache key)."""
    folder = IMAGES / "tinynb"
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        digest.update(f.name.encode() + f.read_bytes())
    digest.update(BASE_IMAGE.encode())
    tag = f"tmpnb-test-tinynb:{digest.hexdigest()[:12]}"
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        try:
            client.images.get(BASE_IMAGE)
        except docker.errors.ImageNotFound as exc:
            raise RuntimeError(f"base image {BASE_IMAGE} missing: run `make base-image`") from exc
        client.images.build(path=str(folder), tag=tag, buildargs={"BASE": BASE_IMAGE}, rm=True)
    return tag


class CHP:
    """configurable-http-proxy on free loopback ports, restartable on the same ports."""

    def __init__(self, workdir: Path, default_target_port: int) -> None:
        if not CHP_BIN.exists():
            raise RuntimeError(f"{CHP_BIN} missing: run `make chp`")
        self.port = free_port()
        self.api_port = free_port()
        self.default_target_port = default_target_port
        self.log_path = workdir / f"chp-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        env = {**os.environ, "CONFIGPROXY_AUTH_TOKEN": TOKEN}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(CHP_BIN),
                    "--ip=127.0.0.1",
                    f"--port={self.port}",
                    "--api-ip=127.0.0.1",
                    f"--api-port={self.api_port}",
                    f"--default-target=http://127.0.0.1:{self.default_target_port}",
                    "--log-level=warn",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.routes() is not None, 20, "CHP's admin API")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None

    def routes(self) -> dict[str, Any]:
        r = requests.get(f"{self.api_url}/api/routes", headers={"Authorization": f"token {TOKEN}"}, timeout=5)
        r.raise_for_status()
        return r.json()

    def add_route(self, path: str, target: str, **data: Any) -> None:
        r = requests.post(
            f"{self.api_url}/api/routes{path}",
            json={"target": target, **data},
            headers={"Authorization": f"token {TOKEN}"},
            timeout=5,
        )
        r.raise_for_status()


class OrchestratorProcess:
    """`python -m tmpnb --config FILE` as a real process; config rewritten with `configure`."""

    def __init__(self, workdir: Path, instance: str, chp: CHP, port: int, **options: Any) -> None:
        self.workdir = workdir
        self.instance = instance
        self.chp = chp
        self.port = port
        self.config_path = workdir / f"tmpnb-{instance}.toml"
        self.log_path = workdir / f"tmpnb-{instance}.log"
        self.options: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.configure(**options)

    def configure(self, **options: Any) -> None:
        self.options.update(options)
        values: dict[str, Any] = {
            "instance": self.instance,
            "listen_port": self.port,
            "chp_api_url": self.chp.api_url,
            "command": TINY_COMMAND,
            "redirect_path": "tree",
            "reconcile_interval": 2,
            "cull_interval": 0.5,
            **self.options,
        }
        lines = []
        for key, value in values.items():
            if isinstance(value, str):
                lines.append(f'{key} = "{value}"')
            elif isinstance(value, list):
                lines.append(f"{key} = [{', '.join(repr(v).replace(chr(39), chr(34)) for v in value)}]")
            elif isinstance(value, bool):
                lines.append(f"{key} = {str(value).lower()}")
            else:
                lines.append(f"{key} = {value}")
        self.config_path.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait_pool: bool = True) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "CONFIGPROXY_AUTH_TOKEN": TOKEN,
            "TMPNB_ADMIN_TOKEN": ADMIN_TOKEN,
            "PYTHONUNBUFFERED": "1",
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tmpnb", "--config", str(self.config_path)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.alive() and self.stats(), 30, f"orchestrator on :{self.port} ({self.log_path})")
        if wait_pool:
            want = int(self.options.get("pool_size", 4))
            wait_for(lambda: self.stats()["available"] >= want, 60, f"{want} pooled containers")

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"orchestrator exited; log:\n{self.log()}")
        return True

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def reload(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/api/stats", timeout=5).json()

    def spawn(self, via: str | None = None) -> requests.Response:
        return requests.post(f"{via or self.url}/spawn", allow_redirects=False, timeout=60)

    def metric(self, name: str, labels: str = "") -> float:
        text = requests.get(f"{self.url}/metrics", timeout=5).text
        key = f"{name}{{{labels}}}" if labels else name
        total = 0.0
        for line in text.splitlines():
            if line.startswith(key + " "):
                total += float(line.split()[-1])
        return total


def new_instance(prefix: str = "it") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def instance_containers(client: docker.DockerClient, instance: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"tmpnb.instance={instance}"})


def cleanup_instance(client: docker.DockerClient, instance: str) -> None:
    """Remove exactly what this test instance created: containers by label, then its networks
    (``tmpnb-<instance>``, or ``tmpnb-<instance>-<n>`` when it needed several)."""
    for c in instance_containers(client, instance):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True, v=True)
    base = f"tmpnb-{instance}"
    for net in client.networks.list(names=[base]):  # Docker matches names by substring
        if instance_network(base, [net.name]) == net.name:
            with contextlib.suppress(docker.errors.APIError):
                net.remove()


def keep_logs(workdir: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for f in workdir.glob("*.log"):
        shutil.copy(f, dest / f.name)
