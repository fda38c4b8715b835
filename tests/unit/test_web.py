"""HTTP handlers' answers that need no Docker: the real app on a real socket, an empty pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from tmpnb.clients import client_address
from tmpnb.config import from_mapping
from tmpnb.orchestrator import Orchestrator
from tmpnb.pool import Slot, State
from tmpnb.web import ORCH, make_app

ENV = {"CONFIGPROXY_AUTH_TOKEN": "chp", "TMPNB_ADMIN_TOKEN": "adm"}


def _client(env: dict[str, str] = ENV, **options: object) -> TestClient:
    config = from_mapping({"image": "img", "spawn_wait": 0, "retry_after": 5, **options}, env)
    return TestClient(TestServer(make_app(Orchestrator(config))))


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with _client() as c:
        yield c


async def test_index_spawns_only_with_javascript_or_button(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    text = await resp.text()
    assert 'method="post"' in text and "<button" in text and ".submit()" in text
    assert "noindex" in text


async def test_empty_pool_answers_429_page_and_json(client: TestClient) -> None:
    resp = await client.post("/spawn", allow_redirects=False)
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "5"
    assert "text/html" in resp.headers["Content-Type"]
    api = await client.post("/api/spawn")
    assert api.status == 429
    assert (await api.json())["error"] == "full"


async def test_unknown_paths_and_methods(client: TestClient) -> None:
    assert (await client.get("/nope")).status == 404
    api = await client.get("/api/nope")
    assert api.status == 404 and (await api.json())["status"] == 404
    not_allowed = await client.get("/spawn")
    assert not_allowed.status == 405
    assert not_allowed.headers["Allow"] == "POST"
    assert (await client.post("/api/stats")).status == 405
    gone = await client.get("/user/AAAAAAAAAAAAAAAA/tree")
    assert gone.status == 404 and "gone" in await gone.text()


async def test_oversized_body(client: TestClient) -> None:
    assert (await client.post("/spawn", data=b"x" * 20000)).status == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):  # trickled: the server sees partial reads, and must still count them all
            yield b"y" * 8000
            await asyncio.sleep(0.02)

    assert (await client.post("/api/spawn", data=chunks())).status == 413


async def test_admin_token(client: TestClient) -> None:
    assert (await client.delete("/api/pool")).status == 401
    assert (await client.delete("/api/pool", headers={"Authorization": "token nope"})).status == 401
    async with _client(env={"CONFIGPROXY_AUTH_TOKEN": "chp"}) as no_admin:
        assert (await no_admin.delete("/api/pool", headers={"Authorization": "token "})).status == 403


async def test_stats_and_metrics_without_docker(client: TestClient) -> None:
    stats = await (await client.get("/api/stats")).json()
    assert stats["available"] == 0 and stats["in_use"] == 0 and stats["capacity"] == 16
    assert stats["image"] == "img" and stats["version"]
    metrics = await (await client.get("/metrics")).text()
    assert "tmpnb_containers_pooled 0.0" in metrics


async def test_healthz_reports_unreachable_backends() -> None:
    async with _client(docker_url="unix:///nonexistent.sock", chp_api_url="http://127.0.0.1:9") as c:
        resp = await c.get("/healthz")
        assert resp.status == 503
        body = await resp.json()
        assert body["network_error"]  # names why no container may start
        del body["network_error"]
        assert body == {"ok": False, "docker": False, "chp": False, "network": False}


async def test_unrecorded_hand_out_is_refused_and_costs_no_allowance() -> None:
    # CHP unreachable: the hand-out cannot be recorded, so the visitor gets 503 "try again", the slot
    # stays pooled (never handed out unrecorded) and the rate-limit hit is given back
    options = {
        "spawn_limit_per_minute": 1,
        "client_address_header": "X-Real-IP",
        "chp_api_url": "http://127.0.0.1:9",
        "docker_url": "unix:///nonexistent/docker.sock",  # handing out makes no Docker call
    }
    async with _client(**options) as c:
        orch = c.server.app[ORCH]
        uid = "AAAAAAAAAAAAAAAA"
        orch.pool.add(Slot(uid, f"/user/{uid}", "img", 1.0, State.POOLED, f"c{uid}", "http://10.9.9.9:8888"))
        for _ in range(2):  # the second is not rate limited: the first got nothing
            resp = await c.post("/api/spawn", headers={"X-Real-IP": "192.0.2.7"})
            assert resp.status == 503 and (await resp.json())["error"] == "try_again"
        page = await c.post("/spawn", headers={"X-Real-IP": "192.0.2.7"}, allow_redirects=False)
        assert page.status == 503 and "try again" in await page.text()
        assert orch.pool.slots[uid].state is State.POOLED and orch.pool.slots[uid].handed_out is None
        assert orch.stats()["in_use"] == 0


def _req(headers: dict[str, str]) -> web.Request:
    return make_mocked_request("POST", "/spawn", headers=headers)


def test_client_address_only_trusts_configured_headers() -> None:
    spoof = {"X-Real-IP": "203.0.113.9", "X-Forwarded-For": "198.51.100.1, 203.0.113.5, 127.0.0.1"}
    peer = client_address(_req(spoof), "", 1)
    assert peer not in ("203.0.113.9", "198.51.100.1")
    assert client_address(_req(spoof), "X-Real-IP", 1) == "203.0.113.9"
    assert client_address(_req(spoof), "X-Forwarded-For", 1) == "127.0.0.1"
    assert client_address(_req(spoof), "X-Forwarded-For", 2) == "203.0.113.5"
    assert client_address(_req({"X-Real-IP": "not-an-ip"}), "X-Real-IP", 1) == peer
    assert client_address(_req({"X-Forwarded-For": "1.2.3.4"}), "X-Forwarded-For", 2) == peer
