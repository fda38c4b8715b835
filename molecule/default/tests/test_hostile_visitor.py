"""What an anonymous visitor's code can reach, fill or trigger, proved from inside a real notebook
(issue 9 items 1-3): code runs in a Jupyter kernel of a container site.yml's orchestrator started,
reached through nginx at the published port like every other check of this scenario.

Probe targets live inside the test host (molecule/firewall/files/targets.sh, started by
prepare.yml): 169.254.169.254 (cloud metadata), 10.99.0.2 (the LAN), 198.51.100.7 (a documentation
address standing in for the internet) and a listener on the host's 0.0.0.0:2222 (sshd's stand-in).
No probe leaves the test host.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
pytest.register_assert_rewrite("cell")
from cell import (  # noqa: E402 - the shared module of the end-to-end scenarios
    TIMEOUT,
    Visitor,
    browser_headers,
    container_of,
    delete_kernel,
    execute,
    host_get,
    spawn,
    start_kernel,
)

# The shared fixtures (site_url, chp_token) come from the same module.
pytest_plugins = ["cell"]

# code run in the notebook: each target -> "open" | the error's name
CONNECT = """
import json, socket, struct
def gateway():
    for line in open("/proc/net/route").read().splitlines()[1:]:
        f = line.split()
        if f[1] == "00000000":
            return socket.inet_ntoa(struct.pack("<L", int(f[2], 16)))
out = {}
for name, addr, port in TARGETS:
    addr = gateway() if addr == "gateway" else addr
    try:
        socket.create_connection((addr, port), timeout=4).close()
        out[name] = "open"
    except OSError as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def stranger(host, site_url) -> Visitor:
    return spawn(host, site_url)


@pytest.fixture(scope="module")
def kernel(stranger) -> str:
    kernel_id = start_kernel(stranger)
    yield kernel_id
    delete_kernel(stranger, kernel_id)


def probe(stranger: Visitor, kernel: str, targets: list[tuple[str, str, int]]) -> dict[str, str]:
    return json.loads(execute(stranger, kernel, f"TARGETS = {targets!r}\n{CONNECT}"))


def test_notebook_egress_is_what_the_firewall_allows(host, stranger, kernel, chp_token):
    """Item 1: metadata, the LAN, the host's own services and other notebooks are closed to a
    notebook; the public site (the host's port 80) and the internet (firewall_egress: allow, the
    default) are open. Before: every one of these was open (no firewall in site.yml)."""
    _, own_ip = container_of(host, chp_token, stranger.user_path)
    other_ips = [
        ip
        for ip in host.check_output(
            "docker ps -q --filter label=tmpnb.instance | xargs docker inspect "
            "--format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}'"
        ).split()
        if ip != own_ip
    ]
    assert other_ips, "no other notebook container to probe"
    got = probe(
        stranger,
        kernel,
        [
            ("metadata", "169.254.169.254", 80),
            ("lan", "10.99.0.2", 80),
            ("host_sshd", "gateway", 2222),
            ("host_site", "gateway", 80),
            ("internet", "198.51.100.7", 80),
            ("other_notebook", other_ips[0], 8888),
        ],
    )
    print(f"\n[figure] from inside a notebook: {got}")
    closed = {k: v for k, v in got.items() if k in ("metadata", "lan", "host_sshd", "other_notebook")}
    assert all(v != "open" for v in closed.values()), got
    assert got["host_site"] == "open" and got["internet"] == "open", got


def test_the_firewall_survives_a_docker_restart(host, stranger, kernel):
    """Docker rebuilds its chains on start; tmpnb-firewall.service is PartOf docker and re-inserts
    the kit's jumps. The visitor's kernel survives too (live-restore)."""
    execute(stranger, kernel, "state = 'kept'")
    host.check_output("systemctl restart docker")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rules = host.run("iptables -S DOCKER-USER").stdout
        if "TMPNB-EGRESS" in rules and host.service("tmpnb-firewall").is_running:
            break
        time.sleep(1)
    assert "TMPNB-EGRESS" in host.check_output("iptables -S DOCKER-USER")
    got = probe(stranger, kernel, [("metadata", "169.254.169.254", 80), ("lan", "10.99.0.2", 80)])
    assert all(v != "open" for v in got.values()), got
    assert execute(stranger, kernel, "print(state)") == "kept\n"


DISK = """
import errno, os
def fill(path, mb):
    try:
        with open(path, "wb") as f:
            for _ in range(mb):
                f.write(b"x" * (1 << 20))
                f.flush()
                os.fsync(f.fileno())
        return "wrote %d MB" % mb
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
    finally:
        if os.path.exists(path):
            os.remove(path)
import json
print(json.dumps([fill(os.path.expanduser("~/big"), 400), fill("/tmp/big", 400), fill("/opt/big", 1)]))
"""


def test_a_notebook_cannot_fill_the_hosts_disk(host, stranger, kernel):
    """Item 2: home and /tmp are size-bounded tmpfs (held in the memory slice), the root file system
    is read-only; writing 400 MB gets ENOSPC and the host's Docker storage does not move. Before:
    the writes succeeded into the container's writable layer on /var/lib/docker."""
    before = int(host.check_output("df --output=avail -B1M /var/lib/docker | tail -1"))
    home, tmp, root = json.loads(execute(stranger, kernel, DISK))
    after = int(host.check_output("df --output=avail -B1M /var/lib/docker | tail -1"))
    print(f"\n[figure] home: {home}, /tmp: {tmp}, /opt: {root}; host free {before} -> {after} MB")
    assert (home, tmp, root) == ("ENOSPC", "ENOSPC", "EROFS")
    assert abs(before - after) < 100, f"the host's free space moved {before} -> {after} MB"


PIDS = """
import subprocess
procs, err = [], None
try:
    for _ in range(2000):
        procs.append(subprocess.Popen(["sleep", "120"]))
except OSError as exc:
    err = type(exc).__name__
for p in procs:
    p.kill()
for p in procs:
    p.wait()
print(len(procs), err)
"""


def test_a_fork_bomb_stops_at_the_pids_limit(stranger, kernel):
    out = execute(stranger, kernel, PIDS).split()
    print(f"\n[figure] processes a notebook could start: {out[0]} ({out[1]})")
    assert int(out[0]) < 256 and out[1] in ("BlockingIOError", "OSError"), out
    assert execute(stranger, kernel, "print('alive')") == "alive\n"


def test_a_memory_hog_loses_its_kernel_not_the_server(host, stranger, chp_token):
    """Item 3: a kernel past the 512 MB slice is OOM-killed; Docker emits `oom` for the container,
    which keeps running. Before: the orchestrator removed the container on `oom` (server, files and
    every other kernel gone). After: the same user path answers, a file written before is there."""
    name, _ = container_of(host, chp_token, stranger.user_path)
    url = stranger.site + stranger.user_path + "api/contents/before-the-hog.txt"
    put = stranger.session.put(
        url,
        json={"type": "file", "format": "text", "content": "still here"},
        headers=browser_headers(stranger),
        timeout=TIMEOUT,
    )
    assert put.status_code in (200, 201), put.text
    hog = start_kernel(stranger)
    with pytest.raises((AssertionError, TimeoutError)):  # the kernel dies mid-cell: never idle
        execute(stranger, hog, "x = [bytearray(b'x' * (64 << 20)) for _ in range(64)]\nprint('survived')")
    deadline = time.monotonic() + 60
    ooms = 0.0
    while time.monotonic() < deadline:
        _, text = host_get(host, "http://127.0.0.1:9999/metrics")
        ooms = sum(float(x.split()[-1]) for x in text.splitlines() if x.startswith("tmpnb_oom_events_total"))
        if ooms >= 1:
            break
        time.sleep(1)
    assert ooms >= 1, "Docker never reported the OOM kill (the hog was not killed?)"
    time.sleep(3)  # the orchestrator had its chance to (wrongly) remove the container
    assert container_of(host, chp_token, stranger.user_path)[0] == name
    res = stranger.session.get(url, timeout=TIMEOUT)
    assert res.status_code == 200 and res.json()["content"] == "still here", res.text[:200]
    delete_kernel(stranger, hog)
