"""Bad requests get 4xx, never 5xx; the admin drain rolls the pool onto a new image; rate limits."""

from __future__ import annotations

import socket

import requests

from testsupport.stack import ADMIN_TOKEN, instance_containers, wait_for


def _raw(port: int, data: bytes) -> int:
    """Send raw bytes; the status code of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1."), head[:80]
    return int(head.split()[1])


def test_bad_requests_get_4xx(make_stack) -> None:
    _chp, orch = make_stack(pool_size=1, capacity=2)
    u = orch.url
    assert requests.get(f"{u}/nope", timeout=5).status_code == 404
    assert requests.get(f"{u}/api/nope", timeout=5).json()["status"] == 404
    assert requests.get(f"{u}/spawn", timeout=5).status_code == 405
    assert requests.put(f"{u}/api/stats", timeout=5).status_code == 405
    assert requests.post(f"{u}/spawn", data=b"x" * 100_000, timeout=5).status_code == 413
    assert requests.post(f"{u}/api/spawn", data=b"x" * 100_000, timeout=5).status_code == 413
    assert requests.delete(f"{u}/api/pool", timeout=5).status_code == 401
    assert (
        requests.delete(f"{u}/api/pool", headers={"Authorization": "token wrong"}, timeout=5).status_code
        == 401
    )
    assert (
        requests.delete(f"{u}/api/pool", headers={"Authorization": "Basic Zm9v"}, timeout=5).status_code
        == 401
    )
    assert requests.get(f"{u}/user/doesnotexist/tree", timeout=5).status_code == 404
    assert requests.get(f"{u}/%ZZ", timeout=5).status_code in (400, 404)
    # malformed HTTP straight to the socket
    assert _raw(orch.port, b"GARBAGE\r\n\r\n") == 400
    assert _raw(orch.port, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n") == 400
    assert _raw(orch.port, b"POST /spawn HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: bogus\r\n\r\n") in (
        400,
        501,
    )
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    assert _raw(orch.port, huge) in (400, 431)
    # chunked oversized body
    chunks = (b"x" * 8192 for _ in range(8))
    assert requests.post(f"{u}/api/spawn", data=chunks, timeout=5).status_code == 413
    # still healthy, nothing was spawned by any of it
    assert requests.get(f"{u}/healthz", timeout=5).status_code == 200
    assert orch.stats()["in_use"] == 0
    assert "Traceback" not in orch.log()


def test_admin_drain_rolls_the_pool_onto_the_configured_image(make_stack, dclient, image) -> None:
    chp, orch = make_stack(pool_size=2, capacity=4)
    location = orch.spawn(via=chp.url).headers["Location"]
    wait_for(lambda: orch.stats()["available"] == 2, 30, "pool refilled")
    in_use = [
        c for c in instance_containers(dclient, orch.instance) if c.labels["tmpnb.user_path"] in location
    ]
    assert len(in_use) == 1

    new_tag = f"tmpnb-test-tinynb:rollout-{orch.instance}"
    dclient.images.get(image).tag(new_tag)
    try:
        orch.configure(image=new_tag)
        resp = requests.delete(
            f"{orch.url}/api/pool", headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=30
        )
        assert resp.status_code == 202
        assert resp.json() == {"drained": 2, "image": new_tag}

        def rolled() -> bool:
            pooled = [c for c in instance_containers(dclient, orch.instance) if c.id != in_use[0].id]
            return len(pooled) == 2 and all(c.labels["tmpnb.image"] == new_tag for c in pooled)

        wait_for(rolled, 30, "pool refilled with the new image")
        assert orch.stats()["image"] == new_tag
        # the visitor on the old image keeps their session
        assert requests.get(f"{chp.url}{location}", timeout=5).status_code == 200
        assert in_use[0].id in {c.id for c in instance_containers(dclient, orch.instance)}
    finally:
        orch.stop()
        for c in instance_containers(dclient, orch.instance):
            c.remove(force=True)
        dclient.images.remove(new_tag)


def test_spawns_per_client_are_capped(make_stack) -> None:
    _chp, orch = make_stack(
        pool_size=2, capacity=4, spawn_limit_per_minute=1, client_address_header="X-Real-IP"
    )
    a = requests.post(
        f"{orch.url}/spawn", headers={"X-Real-IP": "192.0.2.1"}, allow_redirects=False, timeout=10
    )
    assert a.status_code == 303
    b = requests.post(
        f"{orch.url}/spawn", headers={"X-Real-IP": "192.0.2.1"}, allow_redirects=False, timeout=10
    )
    assert b.status_code == 429
    assert "Retry-After" in b.headers
    c = requests.post(
        f"{orch.url}/spawn", headers={"X-Real-IP": "192.0.2.2"}, allow_redirects=False, timeout=10
    )
    assert c.status_code == 303
    assert orch.metric("tmpnb_spawns_total", 'result="rate_limited"') == 1
