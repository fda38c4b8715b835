"""Run the orchestrator: logging to stdout, the HTTP server, signals (TERM/INT stop, HUP reloads)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from tmpnb.config import Config
from tmpnb.ids import redact
from tmpnb.orchestrator import Orchestrator
from tmpnb.web import make_app

log = logging.getLogger("tmpnb")


class BadRequestFilter(logging.Filter):
    """A malformed request from a client is a 400 answered, not a server error: one short line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = (
                "bad request answered %s: %s",
                (exc.code, str(exc.message).splitlines()[0]),
            )
            record.exc_info = record.exc_text = None
        return True


class RedactingFormatter(logging.Formatter):
    """Every line as written, traceback included, with user ids cut (tmpnb.ids.redact): the call
    sites redact what they log, this catches what they cannot (an exception's own text, a
    library's message naming a path)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str) -> None:
    """One line per event on stdout; the journal adds the time and unit."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in server.filters):
        server.addFilter(BadRequestFilter())


async def serve(config: Config, config_path: str | None, ready: asyncio.Event | None = None) -> int:
    orch = Orchestrator(config, config_path)
    runner = web.AppRunner(make_app(orch), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reloads: set[asyncio.Task[object]] = set()

    def on_hup() -> None:
        task = loop.create_task(orch.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    try:
        await orch.start()
        site = web.TCPSite(runner, config.listen_host, config.listen_port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", config.listen_host, config.listen_port, exc)
            return 1
        log.info("listening on http://%s:%d", config.listen_host, config.listen_port)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("stopping (containers keep running; a restart adopts them)")
        return 0
    finally:
        await runner.cleanup()
        await orch.stop()


def run(config: Config, config_path: str | None) -> int:
    setup_logging(config.log_level)
    return asyncio.run(serve(config, config_path))
