"""tmpnb-crowd against the real stack: CHP, the orchestrator and real Jupyter servers (Debian's
notebook 6). The tool runs as its own process (`python -m tmpnb.crowd`), as an operator runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image
from test_jupyter import NOTEBOOK6, notebook_image  # noqa: F401 - the fixture

from testsupport.stack import free_port

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def crowd(url: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    out = tmp_path / "crowd.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tmpnb.crowd", url, "--json", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, (json.loads(out.read_text()) if out.exists() else None)


def test_crowd_through_real_jupyter(make_stack, notebook_image: str, tmp_path: Path) -> None:  # noqa: F811
    chp, orch = make_stack(start=False, pool_size=3, capacity=3, boot_timeout=90, command=NOTEBOOK6)
    orch.configure(image=notebook_image)
    orch.start()
    chart = tmp_path / "crowd.png"
    proc, doc = crowd(
        chp.url + "/", tmp_path,
        "--visitors=3", "--arrival=1", "--kernels=2", "--sockets-per-kernel=2",
        "--stay=3", "--think=1", "--delete-kernels", f"--pid={chp.proc.pid}", "--chart", str(chart),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = doc["summary"]
    assert doc["format"] == "tmpnb-crowd/1"
    assert (s["visitors"], s["ok"], s["failed"], s["errors"]) == (3, 3, 0, {})
    assert s["peak_sockets"] >= 2 * 2  # at least one visitor's 2 kernels x 2 sockets open at once
    assert s["time_to_notebook"]["count"] == 3 and s["time_to_first_result"]["count"] == 3
    assert s["peak_fds"]["chp"] > 0  # CHP's /proc/<pid>/fd, sampled while the crowd was in
    users = {v["user_path"] for v in doc["visitors"]}
    assert len(users) == 3 and all(u.startswith("/user/") for u in users)  # one notebook each
    for v in doc["visitors"]:
        assert v["ok"] and len(v["kernels"]) == 2 and v["sockets"] == 4
        assert v["assets"] > 0  # the tree page's scripts and stylesheets were loaded
        assert len(v["cells"]) >= 4  # at least one cell on each socket
        assert v["time_to_first_result"] >= v["time_to_notebook"] > 0
    assert any("chp" in sample.get("fds", {}) for sample in doc["samples"])
    assert chart.read_bytes().startswith(PNG_MAGIC)
    with Image.open(chart) as img:
        assert img.format == "PNG" and img.size[0] >= 500 and img.size[1] >= 400
    assert "3/3 visitors ok" in proc.stdout and "time to first result" in proc.stdout


def test_crowd_reports_a_full_site(make_stack, tmp_path: Path) -> None:
    chp, orch = make_stack(pool_size=1, capacity=1, spawn_wait=0)
    assert orch.spawn(via=chp.url).status_code == 303  # someone took the only notebook
    proc, doc = crowd(chp.url + "/", tmp_path, "--visitors=2", "--stay=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    s = doc["summary"]
    assert (s["ok"], s["failed"], s["errors"]) == (0, 2, {"http 429": 2})
    assert all(v["errors"][0]["step"] == "spawn" for v in doc["visitors"])
    assert "http 429: 2" in proc.stdout


def test_crowd_reports_a_site_that_does_not_answer(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    proc, doc = crowd(url, tmp_path, "--visitors=2", "--stay=0", "--step-timeout=5")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert doc["summary"]["errors"] == {"connection": 2}
    assert all(v["errors"][0]["step"] == "landing page" for v in doc["visitors"])
