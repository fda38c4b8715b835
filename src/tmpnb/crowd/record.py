"""What a run records: each visitor's timeline and errors, and the live tallies the progress line,
the samples and the peak figures read."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

EMFILE_MARKERS = ("EMFILE", "Too many open files")


class Clock:
    """Seconds since the run started (monotonic), rounded to the millisecond."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.start, 3)


class StepError(Exception):
    """A visitor's step failed: ``kind`` is what the summary counts (``http 429``, ``websocket``,
    ``timeout``, ``emfile``, ``connection``, ``cell``, ``protocol``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def emfile_in(body: str) -> bool:
    return any(marker in body for marker in EMFILE_MARKERS)


def classify(exc: BaseException) -> tuple[str, str]:
    """The kind and a message for an exception a step raised."""
    if isinstance(exc, StepError):
        return exc.kind, exc.message
    if isinstance(exc, TimeoutError):
        return "timeout", "no answer within --step-timeout"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return "websocket", f"handshake refused: HTTP {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"http {exc.status}", exc.message
    if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
        return "local emfile", f"this machine ran out of descriptors: {exc} (raise ulimit -n)"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return "connection", f"{type(exc).__name__}: {exc}"
    return "bug", f"{type(exc).__name__}: {exc}"


@dataclass
class Visitor:
    id: int
    arrival: float  # planned arrival (seconds after start)
    user_path: str = ""
    time_to_notebook: float | None = None
    time_to_first_result: float | None = None
    kernels: list[str] = field(default_factory=list)
    sockets: int = 0
    assets: int = 0
    cells: list[tuple[float, float]] = field(default_factory=list)  # (when, latency)
    errors: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    done: bool = False

    @property
    def failed(self) -> bool:
        return bool(self.errors) or not self.done

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "arrival": self.arrival,
            "user_path": self.user_path,
            "time_to_notebook": self.time_to_notebook,
            "time_to_first_result": self.time_to_first_result,
            "kernels": self.kernels,
            "sockets": self.sockets,
            "assets": self.assets,
            "cells": [list(c) for c in self.cells],
            "errors": self.errors,
            "events": [list(e) for e in self.events],
            "ok": not self.failed,
        }


@dataclass
class Tally:
    """Live counts across visitors (one event loop: no locks needed)."""

    clock: Clock
    arrived: int = 0
    in_notebook: int = 0
    sockets: int = 0
    peak_sockets: int = 0
    errors: int = 0
    left: int = 0

    def socket_opened(self) -> None:
        self.sockets += 1
        self.peak_sockets = max(self.peak_sockets, self.sockets)

    def event(self, visitor: Visitor, name: str) -> None:
        visitor.events.append((self.clock.now(), name))

    def error(self, visitor: Visitor, step: str, exc: BaseException) -> None:
        kind, message = classify(exc)
        self.errors += 1
        visitor.errors.append({"t": self.clock.now(), "step": step, "kind": kind, "message": message})
