"""What a crowd run does, checked before any traffic: every wrong value gets a message naming the
option, the value and what is expected (exit code 2 on the command line)."""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tmpnb.crowd.messages import DEFAULT_CODE

CONTAINER_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
MAX_VISITORS = 100_000
MAX_PER_VISITOR = 100  # kernels, sockets per kernel


class OptionError(ValueError):
    """An option is wrong; the message names it and what is expected."""


@dataclass(frozen=True)
class Options:
    url: str
    visitors: int = 5
    arrival: float = 0.0
    kernels: int = 1
    sockets_per_kernel: int = 1
    stay: float = 10.0
    think: float = 2.0
    json: Path | None = None
    chart: Path | None = None
    host_container: str = ""
    local: bool = False
    pids: tuple[int, ...] = ()
    timeout: float = 0.0  # hard overall deadline; 0: arrival + stay + 120 s
    step_timeout: float = 30.0
    delete_kernels: bool = False
    code: str = DEFAULT_CODE
    user_prefix: str = "/user"
    max_assets: int = 50
    progress: bool = True
    sample_interval: float = 1.0

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def origin(self) -> str:
        """The site's own origin, sent as a browser's ``Origin`` header."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def deadline(self) -> float:
        return self.timeout or self.arrival + self.stay + 120.0

    @property
    def sockets(self) -> int:
        return self.visitors * self.kernels * self.sockets_per_kernel


def _check_range(
    name: str, value: float, low: float, high: float | None = None, low_open: bool = False
) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or (high is not None and value > high):
        bound = f"> {low}" if low_open else f">= {low}"
        if high is not None:
            bound += f" and <= {high}"
        raise OptionError(f"--{name.replace('_', '-')} must be {bound}, got {value}")


def validate(opts: Options) -> Options:
    """Return ``opts`` when every value is usable; raise :class:`OptionError` naming the first wrong one."""
    parts = urlsplit(opts.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OptionError(f"URL must be http:// or https:// with a host, got {opts.url!r}")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise OptionError(f"URL must be the site's root (like http://127.0.0.1:8080/), got {opts.url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise OptionError(f"URL has a bad port: {opts.url!r} ({exc})") from exc
    _check_range("visitors", opts.visitors, 1, MAX_VISITORS)
    _check_range("kernels", opts.kernels, 1, MAX_PER_VISITOR)
    _check_range("sockets_per_kernel", opts.sockets_per_kernel, 1, MAX_PER_VISITOR)
    _check_range("arrival", opts.arrival, 0, 86_400)
    _check_range("stay", opts.stay, 0, 86_400)
    _check_range("think", opts.think, 0.05, 3_600)
    _check_range("step_timeout", opts.step_timeout, 0, 3_600, low_open=True)
    _check_range("max_assets", opts.max_assets, 0, 1_000)
    _check_range("sample_interval", opts.sample_interval, 0.1, 60)
    if opts.timeout:
        _check_range("timeout", opts.timeout, 0, 7 * 86_400, low_open=True)
        if opts.timeout < opts.arrival + opts.stay:
            raise OptionError(
                f"--timeout {opts.timeout} is shorter than --arrival + --stay ({opts.arrival + opts.stay}):"
                " the last visitor could never finish"
            )
    if not opts.code.strip():
        raise OptionError("--code must not be empty")
    if not opts.user_prefix.startswith("/") or opts.user_prefix.endswith("/"):
        raise OptionError(f"--user-prefix must start with / and not end with one, got {opts.user_prefix!r}")
    if opts.host_container and not CONTAINER_RE.match(opts.host_container):
        raise OptionError(f"--host-container must be a container name or id, got {opts.host_container!r}")
    if sum((bool(opts.host_container), opts.local, bool(opts.pids))) > 1:
        raise OptionError("give one of --host-container, --local and --pid: they sample different processes")
    for pid in opts.pids:
        if pid <= 0 or not Path(f"/proc/{pid}").is_dir():
            raise OptionError(f"--pid {pid}: no such process on this machine")
    for name, path in (("json", opts.json), ("chart", opts.chart)):
        if path is not None and not path.parent.is_dir():
            raise OptionError(f"--{name} {path}: folder {path.parent} does not exist")
    if opts.chart is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise OptionError("--chart needs matplotlib: pip install 'tmpnb[crowd]'") from exc
    return opts


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tmpnb-crowd",
        description="Put a simulated crowd of browsers through a tmpnb site."
        " It only ever sends traffic to URL's host.",
    )
    p.add_argument("url", metavar="URL", help="the site's root, e.g. http://127.0.0.1:8080/")
    p.add_argument("--visitors", type=int, default=5, help="visitors in all (default 5)")
    p.add_argument("--arrival", type=float, default=0.0, help="seconds over which they arrive (0: at once)")
    p.add_argument("--kernels", type=int, default=1, help="kernels each visitor starts (default 1)")
    p.add_argument(
        "--sockets-per-kernel", type=int, default=1, help="websockets per kernel (tabs; default 1)"
    )
    p.add_argument("--stay", type=float, default=10.0, help="seconds a visitor stays in the notebook")
    p.add_argument("--think", type=float, default=2.0, help="seconds between cells on each socket")
    p.add_argument("--json", type=Path, help="write every visitor's timeline, the samples and the summary")
    p.add_argument("--chart", type=Path, help="write a PNG: latency and open sockets/descriptors over time")
    p.add_argument(
        "--host-container", default="", help="sample nginx's and CHP's descriptors in this container"
    )
    p.add_argument(
        "--local", action="store_true", help="sample nginx's and CHP's descriptors on this machine"
    )
    p.add_argument(
        "--pid", type=int, action="append", default=[], help="sample this local process (repeatable)"
    )
    p.add_argument(
        "--timeout", type=float, default=0.0, help="hard overall deadline (default arrival+stay+120)"
    )
    p.add_argument("--step-timeout", type=float, default=30.0, help="limit for one request, socket or cell")
    p.add_argument("--delete-kernels", action="store_true", help="delete each kernel when its visitor leaves")
    p.add_argument("--code", default=DEFAULT_CODE, help=f"the cell to run (default {DEFAULT_CODE!r})")
    p.add_argument("--user-prefix", default="/user", help="the site's user path prefix (default /user)")
    p.add_argument("--max-assets", type=int, default=50, help="static files loaded per page at most")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    return p


def from_args(argv: list[str] | None = None) -> Options:
    """Options from a command line; argparse handles syntax, :func:`validate` the values."""
    ns = parser().parse_args(argv)
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(Options) if hasattr(ns, f.name)}
    values["pids"] = tuple(ns.pid)
    values["progress"] = not ns.quiet
    return validate(Options(**values))
