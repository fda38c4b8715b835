"""What a visitor does in the notebook it was given, shared by the end-to-end scenarios through
cell.py (which re-exports every name): the Visitor itself, kernels started over the notebook's REST
API and run over their websocket as a browser opens it (nginx -> CHP -> container), and a kernel
whose websocket stays open across tests (HeldKernel)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
import requests

from tmpnb.crowd.messages import execute_request

TIMEOUT = 30


@dataclass
class Visitor:
    """A browser-less visitor: a session (cookies) and the notebook path it was sent to."""

    session: requests.Session
    site: str  # the site's URL the visitor used, e.g. http://127.0.0.1:32768 (also its Origin)
    user_path: str  # "/user/<id>/"
    landing: str  # the URL the spawn redirect pointed to
    seconds: float  # POST /spawn -> notebook page answered

    @property
    def user_id(self) -> str:
        return self.user_path.strip("/").split("/")[-1]


def _xsrf(visitor: Visitor) -> str:
    """The _xsrf cookie the tree page sets (what the notebook's JavaScript sends back)."""
    visitor.session.get(visitor.site + visitor.user_path + "tree", timeout=TIMEOUT)
    return visitor.session.cookies.get("_xsrf", "")


def browser_headers(visitor: Visitor, origin: str | None = None) -> dict[str, str]:
    """What a browser's fetch() from the notebook page sends: its Origin and the XSRF token."""
    return {"Origin": origin or visitor.site, "X-XSRFToken": _xsrf(visitor)}


def start_kernel(visitor: Visitor) -> str:
    res = visitor.session.post(
        visitor.site + visitor.user_path + "api/kernels",
        json={"name": "python3"},
        headers=browser_headers(visitor),
        timeout=TIMEOUT,
    )
    assert res.status_code == 201, f"starting a kernel answered {res.status_code}: {res.text[:300]}"
    return res.json()["id"]


def delete_kernel(visitor: Visitor, kernel_id: str) -> None:
    visitor.session.delete(
        visitor.site + visitor.user_path + f"api/kernels/{kernel_id}",
        headers=browser_headers(visitor),
        timeout=TIMEOUT,
    )


async def output_of(messages: AsyncIterator[str], msg_id: str, seconds: float = 60) -> str:
    """What the kernel printed for one execute_request (from the socket's text messages), until it
    went idle."""
    output = ""
    async with asyncio.timeout(seconds):
        async for text in messages:
            data = json.loads(text)
            if data.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if data["msg_type"] == "stream":
                output += data["content"]["text"]
            elif data["msg_type"] == "error":
                output += "\n".join(data["content"]["traceback"])
            elif data["msg_type"] == "status" and data["content"]["execution_state"] == "idle":
                return output
    raise ConnectionError("websocket closed before the kernel went idle")


def channels_url(visitor: Visitor, kernel_id: str, session_id: str) -> str:
    ws_site = visitor.site.replace("http://", "ws://")
    return f"{ws_site}{visitor.user_path}api/kernels/{kernel_id}/channels?session_id={session_id}"


def client_session(visitor: Visitor) -> aiohttp.ClientSession:
    """An aiohttp session with the visitor's cookies (the site is an IP address: unsafe jar)."""
    cookies = {c.name: c.value for c in visitor.session.cookies}
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), cookies=cookies)


def execute(visitor: Visitor, kernel_id: str, code: str, origin: str | None = None) -> str:
    """Run `code` in a kernel over its websocket, opened as a browser opens it (with the page's
    Origin) through nginx -> CHP -> container, and return what it printed."""

    async def run() -> str:
        session_id = uuid.uuid4().hex
        request = execute_request(code, session_id, username="test")
        async with (
            client_session(visitor) as client,
            client.ws_connect(
                channels_url(visitor, kernel_id, session_id), headers={"Origin": origin or visitor.site}
            ) as ws,
        ):
            await ws.send_json(request)
            texts = (m.data async for m in ws if m.type == aiohttp.WSMsgType.TEXT)
            return await output_of(texts, request["header"]["msg_id"])

    return asyncio.run(run())


def run_in_kernel(visitor: Visitor, code: str) -> str:
    """Start a kernel over the notebook's REST API, run `code` over its websocket, delete it."""
    kernel_id = start_kernel(visitor)
    try:
        return execute(visitor, kernel_id, code)
    finally:
        delete_kernel(visitor, kernel_id)


class HeldKernel:
    """A kernel whose websocket a visitor keeps open across tests, as a browser tab does: a thread
    runs the socket's event loop, reading every message as it comes (so the server's pings are
    answered) while the tests do other things. `connects` counts the sockets opened so far."""

    def __init__(self, visitor: Visitor, kernel_id: str) -> None:
        self.visitor = visitor
        self.kernel_id = kernel_id
        self.connects = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="held-kernel", daemon=True)
        self._thread.start()
        self._client: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._messages: asyncio.Queue[str | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._session_id = ""
        self._call(self._connect())

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 3 * TIMEOUT) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def is_open(self) -> bool:
        """The socket has not been closed by the other end (its reader still runs)."""
        return self._reader is not None and not self._reader.done()

    async def _connect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._client is None:
            self._client = client_session(self.visitor)
        self._session_id = uuid.uuid4().hex
        self._ws = await self._client.ws_connect(
            channels_url(self.visitor, self.kernel_id, self._session_id),
            headers={"Origin": self.visitor.site},
        )
        self._messages = asyncio.Queue()
        self._reader = asyncio.create_task(self._read(self._ws, self._messages))
        self.connects += 1

    @staticmethod
    async def _read(ws: aiohttp.ClientWebSocketResponse, queue: asyncio.Queue[str | None]) -> None:
        async for msg in ws:  # aiohttp answers pings while it reads
            if msg.type == aiohttp.WSMsgType.TEXT:
                queue.put_nowait(msg.data)
        queue.put_nowait(None)  # closed by the other end

    async def _texts(self) -> AsyncIterator[str]:
        while (text := await self._messages.get()) is not None:
            yield text

    async def _execute(self, code: str) -> str:
        if not self.is_open:
            raise ConnectionError("the websocket was closed by the other end")
        request = execute_request(code, self._session_id, username="test")
        assert self._ws is not None
        await self._ws.send_json(request)
        return await output_of(self._texts(), request["header"]["msg_id"])

    async def _execute_or_reconnect(self, code: str) -> str:
        try:
            return await self._execute(code)
        except (ConnectionError, aiohttp.ClientError):
            await self._connect()
            return await self._execute(code)

    def execute(self, code: str, reconnect: bool = False) -> str:
        """Run `code` over the held socket; with `reconnect`, over a new socket to the same kernel
        when the held one was closed (what the notebook's page does after a proxy restart)."""
        return self._call(self._execute_or_reconnect(code) if reconnect else self._execute(code))

    def close(self) -> None:
        async def shut() -> None:
            if self._ws is not None:
                await self._ws.close()
            if self._client is not None:
                await self._client.close()

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
