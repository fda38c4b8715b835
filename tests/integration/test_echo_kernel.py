"""The Strata benchmark's light backend (bench/echo_kernel.py, NOT Jupyter) answers what tmpnb-crowd
asks of a notebook server: run in the notebook image (it has Tornado), as bench/strata.py runs it,
and put a small crowd through it, by itself and behind a real CHP with the bench's routes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_jupyter import notebook_image  # noqa: F401 - the fixture

from testsupport.stack import CHP, free_port

ECHO = Path(__file__).resolve().parents[2] / "bench" / "echo_kernel.py"


@pytest.fixture
def echo(notebook_image: str) -> Iterator[str]:  # noqa: F811
    """The echo app in a container of the notebook image, on a loopback port: its URL."""
    port = free_port()
    name = f"tmpnb-test-echo-{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "run", "-d", "--name", name, "--label", f"tmpnb.test={name}", "--user", "1000:1000",
         "-p", f"127.0.0.1:{port}:8888", "-v", f"{ECHO}:/opt/echo_kernel.py:ro", notebook_image,
         "python3", "/opt/echo_kernel.py", "--users", "4", "--processes", "1"],  # round robin is per process
        check=True, capture_output=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/_echo/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
                pytest.fail(f"the echo app did not answer in 30 s: {logs[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


def crowd(url: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path / "crowd.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tmpnb.crowd", url, "--json", str(out), "--quiet", "--visitors=3",
         "--kernels=2", "--sockets-per-kernel=2", "--stay=2", "--think=0.5", "--delete-kernels"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_crowd_gets_notebooks_kernels_and_cells_from_the_echo_app(echo: str, tmp_path: Path) -> None:
    proc, doc = crowd(echo + "/", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = doc["summary"]
    assert (s["ok"], s["failed"], s["errors"]) == (3, 0, {})
    assert s["peak_sockets"] == 12
    assert s["cells"] >= 12  # at least one on every socket
    # /spawn hands out the routed ids round robin, never another path
    paths = sorted(v["user_path"] for v in doc["visitors"])
    assert paths == ["/user/echo-0/", "/user/echo-1/", "/user/echo-2/"]


def test_echo_app_behind_chp_routed_like_notebooks(echo: str, tmp_path: Path) -> None:
    chp = CHP(tmp_path, free_port())
    chp.start()
    try:
        for path in ["/", "/spawn", *(f"/user/echo-{i}" for i in range(4))]:
            chp.add_route(path, echo)
        proc, doc = crowd(chp.url + "/", tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert doc["summary"]["peak_sockets"] == 12
        assert doc["summary"]["errors"] == {}
    finally:
        chp.stop()
