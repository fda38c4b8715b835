"""roles/nginx_static on a systemd test host: behaviour, not files.

prepare.yml imported a small image (tmpnb-test-static:1) whose tree is kept in SRC, and started a
marker backend on 127.0.0.1:8000 standing in for CHP (test scaffolding): every proxied answer
carries `X-Fake-CHP`, so an answer without it came from nginx itself.
"""

from __future__ import annotations

import hashlib
import json

import pytest

SRC = "/root/nginx-static-test/rootfs"
STATIC_IN_IMAGE = "/usr/lib/python3/dist-packages/notebook/static"
DEST = "/var/lib/tmpnb-static"
BASE = "https://127.0.0.1/user/abc123"  # a user id without image key: everything goes to CHP
RANDOM = "Zx9-_qZx9-_qZx9-"  # 16 characters, as the orchestrator's 96 random bits
CURL = "curl -sk --max-time 10"


@pytest.fixture(scope="module")
def keyed(host) -> str:
    """A user path as the orchestrator makes it: the image's key (first 12 hex of its id) in front."""
    image_id = host.check_output("docker image inspect --format '{{.Id}}' tmpnb-test-static:1")
    return f"https://127.0.0.1/user/{image_id.removeprefix('sha256:')[:12]}-{RANDOM}"


def _sha256(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def _fetch(host, url: str, out: str, *extra: str) -> dict[str, str]:
    """GET url into out on the test host; returns the response headers (lower-case names)."""
    raw = host.check_output(f"{CURL} {' '.join(extra)} -D - -o {out} '{url}'")
    headers = {}
    for line in raw.splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    headers[":status"] = raw.splitlines()[0].split()[1]
    return headers


def test_nginx_runs_with_a_valid_configuration(host) -> None:
    nginx = host.service("nginx")
    assert nginx.is_running and nginx.is_enabled
    check = host.run("nginx -t")
    assert check.rc == 0, check.stderr
    assert not host.file("/etc/nginx/sites-enabled/default").exists
    assert host.file("/etc/nginx/conf.d/tmpnb.conf").contains("Ansible managed")


@pytest.mark.parametrize(
    ("url_path", "source"),
    [
        ("base/images/logo.bin", f"{SRC}{STATIC_IN_IMAGE}/base/images/logo.bin"),
        ("notebook/js/main.min.js?v=20240101", f"{SRC}{STATIC_IN_IMAGE}/notebook/js/main.min.js"),
        # A link in the image (as Debian links components/ into /usr/share/javascript), resolved.
        ("components/jquery/jquery.min.js", f"{SRC}/usr/share/javascript/jquery/jquery.min.js"),
    ],
)
def test_static_files_come_from_nginx_byte_identical(host, keyed: str, url_path: str, source: str) -> None:
    headers = _fetch(host, f"{keyed}/static/{url_path}", "/tmp/static-got")
    assert headers[":status"] == "200"
    assert "x-fake-chp" not in headers, "a static file was answered by the backend, not by nginx"
    assert headers["cache-control"] == "public, max-age=2592000"
    assert _sha256(host, "/tmp/static-got") == _sha256(host, source)


def test_static_file_of_another_user_id_is_served_too(host, keyed: str) -> None:
    other = keyed.replace(RANDOM, "q" * 16)
    headers = _fetch(host, f"{other}/static/base/images/logo.bin", "/tmp/static-other")
    assert headers[":status"] == "200" and "x-fake-chp" not in headers


@pytest.mark.parametrize(
    "user", ["abc123", "0123456789ab-" + RANDOM, RANDOM], ids=["no-key", "unknown-key", "old-style-id"]
)
def test_an_id_without_a_known_image_key_gets_its_static_files_from_chp(host, user: str) -> None:
    """No copy to choose (an id made before keys, or an image this host never extracted): the
    container itself answers, through CHP, so nobody gets another image's files."""
    headers = _fetch(host, f"https://127.0.0.1/user/{user}/static/base/images/logo.bin", "/tmp/static-nokey")
    assert "x-fake-chp" in headers


def test_file_not_in_the_copy_falls_back_to_chp(host, keyed: str) -> None:
    headers = _fetch(host, f"{keyed}/static/not/in/the/image.js", "/tmp/fallback")
    assert headers.get("x-fake-chp") == "fake-chp"
    assert "cache-control" not in headers
    assert (
        json.loads(host.file("/tmp/fallback").content_string)["path"]
        == keyed.removeprefix("https://127.0.0.1") + "/static/not/in/the/image.js"
    )


def test_other_paths_reach_chp_with_forwarding_headers(host) -> None:
    # A site reached on a non-default port (a demo on :8080, a front on :8443): Host keeps its port
    # and Origin passes untouched, so the notebook server's Origin == Host check holds.
    headers = _fetch(
        host,
        f"{BASE}/api/kernels",
        "/tmp/proxied",
        "-H 'Host: notebooks.example.org:8443'",
        "-H 'Origin: https://notebooks.example.org:8443'",
    )
    assert headers.get("x-fake-chp") == "fake-chp"
    seen = json.loads(host.file("/tmp/proxied").content_string)
    assert seen["path"] == "/user/abc123/api/kernels"
    assert seen["headers"]["host"] == "notebooks.example.org:8443"
    assert seen["headers"]["origin"] == "https://notebooks.example.org:8443"
    assert seen["headers"]["x-real-ip"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    # Plain requests keep the connection to CHP alive (no "Connection: close", no upgrade).
    assert seen["headers"].get("connection", "") == ""


WEBSOCKET_CLIENT = r"""
import json, socket, ssl
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 443), timeout=10))
s.sendall(b"GET /user/abc123/api/kernels/k1/channels HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
          b"Origin: https://127.0.0.1:8443\r\n"
          b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(4096)
head, _, rest = head.partition(b"\r\n\r\n")
s.sendall(b"tunnel-echo-123")
while len(rest) < 15:
    rest += s.recv(4096)
lines = head.decode().split("\r\n")
seen = [l.split(":", 1)[1].strip() for l in lines if l.lower().startswith("x-seen:")]
print(json.dumps({"status": lines[0], "seen": json.loads(seen[0]) if seen else {}, "echo": rest.decode()}))
"""


def test_websocket_upgrade_is_tunnelled_to_chp(host) -> None:
    out = json.loads(host.check_output(f"python3 -c '{WEBSOCKET_CLIENT}'"))
    assert " 101 " in out["status"], out
    assert out["seen"]["upgrade"] == "websocket"
    assert out["seen"]["connection"].lower() == "upgrade"
    assert out["seen"]["x-forwarded-for"] == "127.0.0.1"
    assert out["seen"]["host"] == "127.0.0.1:8443", "the Host's port was dropped on the websocket"
    assert out["seen"]["origin"] == "https://127.0.0.1:8443"
    assert out["echo"] == "tunnel-echo-123", "bytes after the upgrade did not go through nginx both ways"


def test_http_redirects_to_https(host) -> None:
    raw = host.check_output(
        f"{CURL} -o /dev/null -w '%{{http_code}} %{{redirect_url}}' 'http://127.0.0.1/user/abc123/tree?x=1'"
    )
    assert raw == "301 https://127.0.0.1/user/abc123/tree?x=1"


def _open_files(host, pid: str) -> tuple[str, str]:
    line = next(
        line
        for line in host.file(f"/proc/{pid}/limits").content_string.splitlines()
        if line.startswith("Max open files")
    )
    soft, hard = line.split()[3:5]
    return soft, hard


def test_worker_rlimit_nofile_is_in_force(host) -> None:
    # Configured in the unit (limits_nofile's default), effective as capped by this host's ceiling.
    assert host.check_output("systemctl show -p LimitNOFILE --value nginx") == "1048576"
    pid1_hard = _open_files(host, "1")[1]
    nr_open = int(host.file("/proc/sys/fs/nr_open").content_string)
    expected = min(1048576, nr_open, *([] if pid1_hard == "unlimited" else [int(pid1_hard)]))
    conf = host.file("/etc/nginx/nginx.conf")
    assert conf.contains(f"^worker_rlimit_nofile {expected};")
    master = host.file("/run/nginx.pid").content_string.strip()
    workers = host.check_output(f"ps -o pid= --ppid {master}").split()
    assert workers
    for pid in workers:
        assert _open_files(host, pid) == (str(expected), str(expected))
    connections = int(
        host.check_output("sed -n 's/^\\s*worker_connections \\([0-9]*\\);/\\1/p' /etc/nginx/nginx.conf")
    )
    assert 1024 <= connections <= expected


def test_manifest_describes_the_copy_of_the_image(host) -> None:
    image_id = host.check_output("docker image inspect --format '{{.Id}}' tmpnb-test-static:1")
    current = host.file(f"{DEST}/current")
    assert current.is_symlink and current.linked_to == f"{DEST}/{image_id.removeprefix('sha256:')}"
    manifest = json.loads(host.file(f"{DEST}/current/manifest.json").content_string)
    assert manifest["image_id"] == image_id
    paths = {entry["path"]: entry for entry in manifest["files"]}
    assert set(paths) == {
        "base/images/logo.bin",
        "notebook/js/main.min.js",
        "components/jquery/jquery.min.js",
    }
    for path, entry in paths.items():
        assert entry["sha256"] == _sha256(host, f"{DEST}/current/files/{path}")
        assert (
            entry["sha256"] == hashlib.sha256(host.file(f"{DEST}/current/files/{path}").content).hexdigest()
        )


def test_no_container_is_left_behind(host) -> None:
    assert host.check_output("docker ps -aq --filter label=org.jupyter.tmpnb.extract-static") == ""
    assert host.file("/usr/local/lib/tmpnb/extract_static/__main__.py").mode == 0o644


def test_the_copy_is_linked_under_the_image_key_and_the_prune_timer_runs(host, keyed: str) -> None:
    image_id = host.check_output("docker image inspect --format '{{.Id}}' tmpnb-test-static:1")
    key = image_id.removeprefix("sha256:")[:12]
    assert (
        host.file(f"{DEST}/images/{key}/static").linked_to
        == f"{DEST}/{image_id.removeprefix('sha256:')}/files"
    )
    assert host.service("tmpnb-static-prune.timer").is_enabled
    assert host.run("systemctl is-active tmpnb-static-prune.timer").stdout.strip() == "active"
    # a run of the pruning service keeps the configured image's copy (no container runs it here)
    run = host.run("systemctl start tmpnb-static-prune.service")
    assert run.rc == 0, run.stderr
    assert host.file(f"{DEST}/images/{key}/static").exists
