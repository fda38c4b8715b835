"""One kernel websocket as a browser tab holds it: opened with the site's ``Origin``, a small cell
every ``--think`` seconds until the visitor leaves, each timed from request to reply and idle."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp

from tmpnb.crowd.messages import CellWaiter, execute_request
from tmpnb.crowd.options import Options
from tmpnb.crowd.record import StepError, Tally, Visitor

CLOSED = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


def channels_url(origin: str, user_path: str, kernel_id: str, session_id: str) -> str:
    ws_origin = "ws" + origin.removeprefix("http")  # http -> ws, https -> wss
    return f"{ws_origin}{user_path}api/kernels/{kernel_id}/channels?session_id={session_id}"


async def open_socket(
    http: aiohttp.ClientSession, opts: Options, user_path: str, kernel_id: str
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    session_id = uuid.uuid4().hex
    url = channels_url(opts.origin, user_path, kernel_id, session_id)
    async with asyncio.timeout(opts.step_timeout):
        # A browser always sends its page's Origin: Jupyter refuses cross-origin websockets.
        ws = await http.ws_connect(url, origin=opts.origin, autoping=True)
    return ws, session_id


async def run_cell(ws: aiohttp.ClientWebSocketResponse, opts: Options, session_id: str) -> None:
    """Send one execute_request and wait for its reply and idle status; raise StepError otherwise."""
    msg = execute_request(opts.code, session_id)
    waiter = CellWaiter(msg["header"]["msg_id"])
    await ws.send_str(json.dumps(msg))
    async with asyncio.timeout(opts.step_timeout):
        while not waiter.done:
            frame = await ws.receive()
            if frame.type == aiohttp.WSMsgType.TEXT:
                waiter.feed(frame.data)
            elif frame.type in CLOSED:
                detail = f"code {ws.close_code}" if ws.close_code is not None else str(ws.exception() or "")
                raise StepError("websocket", f"the server closed the socket during a cell ({detail})")
    if waiter.error:
        raise StepError("cell", f"the cell failed: {waiter.error}")


async def hold(
    ws: aiohttp.ClientWebSocketResponse,
    session_id: str,
    opts: Options,
    visitor: Visitor,
    tally: Tally,
    arrived_at: float,
    leave_at: float,
) -> None:
    """Run cells on ``ws`` until ``leave_at`` (at least one), recording each latency."""
    while True:
        started = tally.clock.now()
        await run_cell(ws, opts, session_id)
        finished = tally.clock.now()
        visitor.cells.append((started, round(finished - started, 3)))
        if visitor.time_to_first_result is None:
            visitor.time_to_first_result = round(finished - arrived_at, 3)
            tally.event(visitor, "first result")
        if finished + opts.think >= leave_at:
            return
        await asyncio.sleep(opts.think)
