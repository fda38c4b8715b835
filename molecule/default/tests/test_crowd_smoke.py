"""A short tmpnb-crowd run against the converged stack, through the published port (issue 7's
smoke run): a few visitors, each with 2 kernels, for a few seconds; 0 errors, JSON and PNG written,
nginx and CHP descriptors sampled inside the test host."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
# The shared fixture site_url comes from the scenarios' shared module.
pytest_plugins = ["cell"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_small_crowd_gets_notebooks_with_no_error(host, site_url, tmp_path: Path) -> None:
    out_json, chart = tmp_path / "crowd.json", tmp_path / "crowd.png"
    crowd = Path(sys.executable).with_name("tmpnb-crowd")
    args = [
        str(crowd), site_url + "/",
        "--visitors=2", "--arrival=1", "--kernels=2", "--sockets-per-kernel=1",
        "--stay=4", "--think=1", "--delete-kernels", "--quiet",
        "--step-timeout=120",  # a shared 2-core machine can be slow; errors, not speed, are checked
        f"--host-container={host.backend.get_hostname()}",
        "--json", str(out_json), "--chart", str(chart),
    ]  # fmt: skip
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = json.loads(out_json.read_text())["summary"]
    assert (s["visitors"], s["ok"], s["failed"], s["errors"]) == (2, 2, 0, {}), s
    assert s["peak_fds"]["chp"] > 0 and s["peak_fds"]["nginx"] > 0, s["peak_fds"]
    assert chart.read_bytes().startswith(PNG_MAGIC)
