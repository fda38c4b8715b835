"""bench/static.py's nginx: Debian's binary with the site rendered from roles/nginx_static serves a
file of the copy itself and hands a file missing from the copy on to its upstream (CHP)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.static import Nginx
from testsupport.stack import free_port


@pytest.fixture
def workdir() -> Iterator[Path]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (make bench installs it: scripts/apt-install.sh nginx)")
    with tempfile.TemporaryDirectory(prefix="tmpnb-test-nginx-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers read the copy as an unprivileged user
        yield Path(tmp)


def test_nginx_serves_the_copy_and_passes_the_rest_to_its_upstream(workdir: Path) -> None:
    files = workdir / "static" / "current" / "files" / "notebook" / "js"
    files.mkdir(parents=True)
    (files / "main.min.js").write_text("console.log('from the copy');\n")
    os.chmod(files / "main.min.js", 0o644)
    upstream = free_port()  # nothing listens there: a request nginx passes on fails with 502
    nginx = Nginx(workdir, workdir / "static", f"127.0.0.1:{upstream}")
    nginx.start()
    try:
        base = f"http://127.0.0.1:{nginx.port}/user/AbCdEfGhIjKlMnOp/static"
        copy = requests.get(f"{base}/notebook/js/main.min.js?v=123", timeout=5)
        assert copy.status_code == 200
        assert copy.text == "console.log('from the copy');\n"
        assert "max-age=" in copy.headers["Cache-Control"]
        assert nginx.fds() > 0
        missing = requests.get(f"{base}/notebook/js/other.js", timeout=5)
        assert missing.status_code == 502  # went on to the upstream (CHP in the bench)
    finally:
        nginx.stop()
    assert nginx.proc is not None and nginx.proc.poll() is not None
