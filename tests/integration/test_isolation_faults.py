"""Faults and isolation against the real engine (issue 9 items 4 and 9): a network that lets
notebooks talk to each other is refused; a hung Docker engine bounds every call.

The hung engine is simulated by a relay on a Unix socket in front of the real Docker socket that,
on demand, keeps accepting and reading but stops answering (what a wedged dockerd looks like to a
client); a real engine cannot be wedged on demand without wedging everyone's tests on this machine.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import requests

from testsupport.stack import instance_containers, wait_for
from tmpnb.docker_spec import ICC_OPTION

DOCKER_SOCK = "/var/run/docker.sock"


class HangingDocker:
    """A relay for the Docker socket that can be made to hang (accept and read, answer nothing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.hung = threading.Event()
        self._stop = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(DOCKER_SOCK)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        held = b""
        try:
            while not self._stop.is_set():
                if held and not self.hung.is_set():
                    dst.sendall(held)
                    held = b""
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                if self.hung.is_set():
                    held += data  # read, never forwarded: the engine "hangs"
                else:
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._stop.set()
        self._server.close()


def _health(orch) -> tuple[int, dict, float]:
    started = time.monotonic()
    resp = requests.get(f"{orch.url}/healthz", timeout=30)
    return resp.status_code, resp.json(), time.monotonic() - started


def test_a_hung_engine_gives_503_health_and_the_pool_keeps_serving(make_stack, tmp_path: Path) -> None:
    """Before: no timeout on any Docker call; /healthz never answered (requests timed out after 30 s)
    and a restarted orchestrator never listened."""
    relay = HangingDocker(tmp_path / "docker.sock")
    try:
        chp, orch = make_stack(pool_size=2, capacity=4, docker_url=relay.url)
        assert _health(orch)[0] == 200
        relay.hung.set()
        status, body, took = _health(orch)
        assert status == 503 and body["docker"] is False and body["chp"] is True, body
        print(f"\n/healthz with a hung engine answered 503 in {took:.1f} s")
        # a visitor still gets a notebook from the pool: a hand-out needs CHP only
        resp = requests.post(f"{chp.url}/spawn", allow_redirects=False, timeout=30)
        assert resp.status_code == 303, resp.text
        assert requests.get(f"{chp.url}{resp.headers['Location']}", timeout=10).status_code == 200
        # a restart while the engine hangs: it listens and says why it is unhealthy
        assert orch.stop() == 0
        orch.start(wait_pool=False)
        status, body, _ = _health(orch)
        assert status == 503 and body["docker"] is False
        assert orch.stats()["in_use"] == 0  # it cannot know yet (routes not adopted without Docker)
        relay.hung.clear()
        wait_for(lambda: _health(orch)[0] == 200, 60, "healthy once the engine answers again")
        wait_for(lambda: orch.stats()["in_use"] == 1, 60, "the visitor adopted again")
        wait_for(lambda: orch.stats()["available"] == 2, 90, "pool refilled")
    finally:
        relay.hung.clear()
        relay.close()


def test_a_network_with_inter_container_traffic_is_refused(make_stack, dclient) -> None:
    """Before: only a warning; containers were started on a network where any notebook could drive
    another (notebooks have no token)."""
    _chp, orch = make_stack(start=False, pool_size=2, capacity=4)
    name = f"tmpnb-{orch.instance}"
    net = dclient.networks.create(name, driver="bridge", options={ICC_OPTION: "true"})
    try:
        orch.start(wait_pool=False)
        time.sleep(3)  # give the refill loop time to (wrongly) start containers
        assert instance_containers(dclient, orch.instance) == []
        resp = requests.get(f"{orch.url}/healthz", timeout=30)
        body = resp.json()
        assert resp.status_code == 503 and body["network"] is False, body
        assert name in body["network_error"] and "inter-container" in body["network_error"]
        assert "docker network rm" in body["network_error"]  # the fix is named
        spawn = requests.post(f"{orch.url}/api/spawn", timeout=30)
        assert spawn.status_code in (429, 503)  # never a container on that network
    finally:
        orch.stop()
        net.remove()
