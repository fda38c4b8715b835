"""One visitor, behaving like a browser: its own cookie jar, the landing page, ``POST /spawn``
following the redirect to its notebook, the page's static files, K kernels over Jupyter's REST
API (with the ``_xsrf`` cookie), S websockets per kernel, cells while it stays, then it leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Coroutine, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from tmpnb.crowd.assets import static_assets
from tmpnb.crowd.kernel_socket import hold, open_socket
from tmpnb.crowd.options import Options
from tmpnb.crowd.record import StepError, Tally, Visitor, emfile_in

BROWSER_CONNECTIONS = 6  # a browser's parallel HTTP/1.1 connections per host
MAX_BODY_SCAN = 64 * 1024  # bytes of an error body searched for EMFILE


async def request(
    http: aiohttp.ClientSession, method: str, url: str, step: str, expect: tuple[int, ...], **kwargs: object
) -> tuple[aiohttp.ClientResponse, bytes]:
    """One HTTP request; a status outside ``expect`` raises StepError (``emfile`` when the error
    body says so, else ``http <status>``)."""
    async with http.request(method, url, **kwargs) as resp:  # type: ignore[arg-type]
        body = await resp.read()
    if resp.status not in expect:
        text = body[:MAX_BODY_SCAN].decode("utf-8", "replace")
        if emfile_in(text):
            raise StepError(
                "emfile", f"{method} {resp.url.path} answered {resp.status} with EMFILE in its body"
            )
        raise StepError(
            f"http {resp.status}", f"{method} {resp.url.path} answered {resp.status} {resp.reason}"
        )
    return resp, body


def user_path_of(resp: aiohttp.ClientResponse, prefix: str) -> str:
    """``/user/<id>/`` from the redirect ``POST /spawn`` answered (or the page it ended on)."""
    location = resp.history[0].headers.get("Location", "") if resp.history else str(resp.url)
    path = urlsplit(location).path
    rest = path.removeprefix(prefix + "/")
    user_id = rest.split("/", 1)[0]
    if rest == path or not user_id:
        raise StepError(
            "protocol", f"POST /spawn led to {location!r}, not under {prefix}/ (see --user-prefix)"
        )
    return f"{prefix}/{user_id}/"


async def first_error(coros: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run ``coros`` side by side; on the first failure cancel the others and raise that failure."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None


class Browser:
    def __init__(self, visitor: Visitor, opts: Options, tally: Tally) -> None:
        self.v = visitor
        self.opts = opts
        self.tally = tally
        self.step = "arrive"
        self.xsrf = ""

    def _headers(self) -> dict[str, str]:
        return {"X-XSRFToken": self.xsrf} if self.xsrf else {}

    async def load_notebook(self, http: aiohttp.ClientSession) -> None:
        o = self.opts
        self.step = "landing page"
        await request(http, "GET", o.base_url + "/", self.step, (200,))
        self.step = "spawn"
        resp, body = await request(
            http, "POST", o.base_url + "/spawn", self.step, (200,), headers={"Origin": o.origin}
        )
        self.v.user_path = user_path_of(resp, o.user_prefix)
        self.tally.event(self.v, "spawned")
        self.step = "static files"
        page = body.decode("utf-8", "replace")
        urls = static_assets(page, str(resp.url), self.v.user_path, o.max_assets)
        gate = asyncio.Semaphore(BROWSER_CONNECTIONS)

        async def fetch(url: str) -> None:
            async with gate:
                await request(http, "GET", url, self.step, (200,))

        await asyncio.gather(*(fetch(u) for u in urls))
        self.v.assets = len(urls)
        cookie = http.cookie_jar.filter_cookies(resp.url).get("_xsrf")
        self.xsrf = cookie.value if cookie else ""

    async def start_kernels(self, http: aiohttp.ClientSession) -> None:
        self.step = "start kernel"
        url = f"{self.opts.origin}{self.v.user_path}api/kernels"
        for _ in range(self.opts.kernels):
            try:
                _, body = await request(
                    http, "POST", url, self.step, (200, 201), json={}, headers=self._headers()
                )
            except StepError as exc:
                if exc.kind == "http 403" and not self.xsrf:
                    exc.message += " (the notebook page set no _xsrf cookie)"
                raise
            try:
                self.v.kernels.append(str(json.loads(body)["id"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise StepError(
                    "protocol", f"POST api/kernels answered no kernel id: {body[:200]!r}"
                ) from exc
        self.tally.event(self.v, "kernels started")

    async def delete_kernels(self, http: aiohttp.ClientSession) -> None:
        self.step = "delete kernel"
        for kernel_id in self.v.kernels:
            url = f"{self.opts.origin}{self.v.user_path}api/kernels/{kernel_id}"
            await request(http, "DELETE", url, self.step, (204,), headers=self._headers())

    async def visit(self, http: aiohttp.ClientSession) -> None:
        o, v, tally = self.opts, self.v, self.tally
        arrived_at = tally.clock.now()
        async with asyncio.timeout(o.step_timeout):
            await self.load_notebook(http)
        v.time_to_notebook = round(tally.clock.now() - arrived_at, 3)
        tally.in_notebook += 1
        tally.event(v, "in notebook")
        try:
            await self.start_kernels(http)
            async with contextlib.AsyncExitStack() as sockets:
                self.step = "open websocket"
                held: list[tuple[aiohttp.ClientWebSocketResponse, str]] = []

                async def open_one(kernel_id: str) -> None:
                    ws, session_id = await open_socket(http, o, v.user_path, kernel_id)
                    sockets.push_async_callback(self._close, ws)
                    tally.socket_opened()
                    v.sockets += 1
                    held.append((ws, session_id))

                # A browser's tabs open their sockets side by side.
                await first_error(open_one(k) for k in v.kernels for _ in range(o.sockets_per_kernel))
                tally.event(v, "sockets open")
                self.step = "cells"
                leave_at = tally.clock.now() + o.stay  # --stay counts from a working kernel session
                await first_error(hold(ws, sid, o, v, tally, arrived_at, leave_at) for ws, sid in held)
                self.step = "leave"
            tally.event(v, "sockets closed")
            if o.delete_kernels:
                await self.delete_kernels(http)
        finally:
            tally.in_notebook -= 1

    async def _close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.tally.sockets -= 1
        with contextlib.suppress(Exception):
            await ws.close()


async def run_visitor(visitor: Visitor, opts: Options, tally: Tally) -> None:
    """Wait for the visitor's arrival, then visit; every failure is recorded on the visitor."""
    await asyncio.sleep(max(0.0, visitor.arrival - tally.clock.now()))
    tally.arrived += 1
    tally.event(visitor, "arrived")
    browser = Browser(visitor, opts, tally)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of sites on an IP address (127.0.0.1) too
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=opts.step_timeout)
    try:
        async with aiohttp.ClientSession(cookie_jar=jar, connector=connector, timeout=timeout) as http:
            await browser.visit(http)
    except Exception as exc:  # recorded on the visitor (kind from classify); the crowd goes on
        tally.error(visitor, browser.step, exc)
    finally:
        tally.left += 1
        tally.event(visitor, "left")
    visitor.done = True
