"""bench/static.py's nginx: Debian's binary with the site rendered from roles/nginx_static serves a
file of the copy itself and hands a file missing from the copy on to its upstream (CHP)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import yaml

from bench.static_nginx import Nginx
from testsupport.stack import free_port


@pytest.fixture
def workdir() -> Iterator[Path]:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (make bench installs it: scripts/apt-install.sh nginx)")
    with tempfile.TemporaryDirectory(prefix="tmpnb-test-nginx-") as tmp:
        os.chmod(tmp, 0o755)  # nginx's workers read the copy as an unprivileged user
        yield Path(tmp)


KEY = "0123456789ab"  # the image key a user id starts with (tmpnb.ids): which image's copy nginx reads


def test_nginx_serves_the_copy_and_passes_the_rest_to_its_upstream(workdir: Path) -> None:
    files = workdir / "static" / "images" / KEY / "static" / "notebook" / "js"
    files.mkdir(parents=True)
    (files / "main.min.js").write_text("console.log('from the copy');\n")
    os.chmod(files / "main.min.js", 0o644)
    for directory in (workdir / "static").rglob("*"):
        if directory.is_dir():
            os.chmod(directory, 0o755)
    upstream = free_port()  # nothing listens there: a request nginx passes on fails with 502
    nginx = Nginx(workdir, workdir / "static", f"127.0.0.1:{upstream}")
    nginx.start()
    try:
        base = f"http://127.0.0.1:{nginx.port}/user/{KEY}-AbCdEfGhIjKlMnOp/static"
        copy = requests.get(f"{base}/notebook/js/main.min.js?v=123", timeout=5)
        assert copy.status_code == 200
        assert copy.text == "console.log('from the copy');\n"
        assert "max-age=" in copy.headers["Cache-Control"]
        assert nginx.fds() > 0
        missing = requests.get(f"{base}/notebook/js/other.js", timeout=5)
        assert missing.status_code == 502  # went on to the upstream (CHP in the bench)
        # another image's key, an id without key: the container's own files, through CHP
        for user in ("ba9876543210-AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"):
            other = requests.get(f"http://127.0.0.1:{nginx.port}/user/{user}/static/notebook/js/main.min.js")
            assert other.status_code == 502, user
    finally:
        nginx.stop()
    assert nginx.proc is not None and nginx.proc.poll() is not None


ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "local" / "group_vars" / "tmpnb.yml"
NOTEBOOK7 = "tmpnb-notebook7:1"


def demo_trees() -> list[dict[str, str]]:
    """The Notebook 7 image's static trees in inventories/local's catalogue (tmpnb_images)."""
    return yaml.safe_load(INVENTORY.read_text())["tmpnb_images"][NOTEBOOK7]["static_trees"]


STATIC_TREES = ROOT / "roles" / "tmpnb" / "files" / "notebook7" / "static_trees.json"


def placed(trees: list[dict[str, str]], static_dir: Path) -> list[dict[str, str]]:
    """roles/nginx_static's placement (tasks/main.yml): each tree's name (its prefix, / as _) under
    images/<key>/, static/ copied into the directory itself, the others under trees/<name>; reverse
    order of prefix."""
    out = []
    for t in sorted(trees, key=lambda t: t["prefix"], reverse=True):
        name = t["prefix"][:-1].replace("/", "_")
        dest = static_dir if t["prefix"] == "static/" else static_dir / "trees" / name
        out.append({**t, "name": name, "dest": str(dest)})
    return out


def test_the_demo_serves_every_directory_tree_of_notebook7_but_the_rewritten_themes() -> None:
    """inventories/local's Notebook 7 static_trees are static_trees.json (found from the image) less the
    trees the server rewrites and the single-file prefixes."""
    trees = demo_trees()
    found = json.loads(STATIC_TREES.read_text())["trees"]
    expected = {(t["prefix"], t["dirs"][0]) for t in found if t["prefix"].endswith("/") and not t["rewrites"]}
    assert {(t["prefix"], t["path"]) for t in trees} == expected


def test_nginx_serves_each_static_tree_from_its_own_copy(workdir: Path) -> None:
    """Notebook 7's trees: a nested prefix (static/notebook/) is served from its own copy, not looked
    for in the copy of static/; a file missing from a copy still goes on to the upstream."""
    trees = demo_trees()
    layout = placed(trees, workdir / "static")
    for tree in layout:
        files = workdir / "static" / "images" / KEY / tree["name"]
        files.mkdir(parents=True, exist_ok=True)
        (files / "probe.js").write_text(f"// {tree['prefix']}\n")
        os.chmod(files / "probe.js", 0o644)
    for directory in (workdir / "static").rglob("*"):
        if directory.is_dir():
            os.chmod(directory, 0o755)
    nginx = Nginx(workdir, workdir / "static", f"127.0.0.1:{free_port()}", trees=layout)
    nginx.start()
    try:
        user = f"http://127.0.0.1:{nginx.port}/user/{KEY}-AbCdEfGhIjKlMnOp"
        for tree in trees:
            got = requests.get(f"{user}/{tree['prefix']}probe.js?v=1", timeout=5)
            assert (got.status_code, got.text) == (200, f"// {tree['prefix']}\n"), tree["prefix"]
            assert "max-age=" in got.headers["Cache-Control"]
        missing = requests.get(f"{user}/static/notebook/not-in-the-copy.js", timeout=5)
        assert missing.status_code == 502  # went on to the upstream (CHP in the role)
        themes = requests.get(f"{user}/lab/api/themes/probe.js", timeout=5)
        assert themes.status_code == 502  # rewritten by the server: never from a copy
    finally:
        nginx.stop()


class _Echo(BaseHTTPRequestHandler):
    """An upstream that answers every request with the X-Real-IP nginx sent it."""

    def _answer(self) -> None:
        body = (self.headers.get("X-Real-IP") or "").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("spawn_from", "seen"),
    [
        # A single host (the default): the peer is the visitor, a client's own X-Real-IP is ignored.
        ([], "127.0.0.1"),
        # A cell behind a front at 127.0.0.1: the front's X-Real-IP is the visitor.
        (["127.0.0.1", "10.0.0.0/24", "fd00::10"], "203.0.113.9"),
    ],
)
def test_a_cell_believes_x_real_ip_only_from_its_front(
    workdir: Path, spawn_from: list[str], seen: str
) -> None:
    """nginx_static_spawn_from: the site's geo/realip blocks pass `nginx -t`, spawns from the front
    (and loopback) reach the orchestrator with the visitor's address."""
    (workdir / "static" / "current" / "files").mkdir(parents=True)
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    nginx = Nginx(
        workdir,
        workdir / "static",
        f"127.0.0.1:{upstream.server_address[1]}",
        overrides={"nginx_static_spawn_from": spawn_from},
    )
    nginx.start()
    try:
        for path in ("/spawn", "/api/spawn"):
            res = requests.post(
                f"http://127.0.0.1:{nginx.port}{path}", headers={"X-Real-IP": "203.0.113.9"}, timeout=5
            )
            assert (res.status_code, res.text) == (200, seen), path
        log = (nginx.dir / "access.log").read_text()
        assert log.splitlines()[-1].startswith(seen + " "), log
    finally:
        nginx.stop()
        upstream.shutdown()
