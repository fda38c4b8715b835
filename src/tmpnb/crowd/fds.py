"""Open descriptors of nginx (master and workers) and configurable-http-proxy, sampled from
``/proc/<pid>/fd``: inside a test host through ``docker exec``, or on this machine."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

from tmpnb.crowd.options import Options

NGINX_UNIT = "nginx"
CHP_UNIT = "configurable-http-proxy"

# Run inside the host with `sh -c`: pids from systemd's MainPID and pgrep, one "kind pid fds" line
# each. The [c] keeps pgrep -f from matching this very script.
HOST_SCRIPT = f"""
{{ systemctl show -p MainPID --value {NGINX_UNIT} 2>/dev/null; pgrep -x nginx; }} | sort -u |
while read -r p; do [ "${{p:-0}}" != 0 ] && echo "nginx $p $(ls /proc/$p/fd 2>/dev/null | wc -l)"; done
{{ systemctl show -p MainPID --value {CHP_UNIT} 2>/dev/null; pgrep -f '[c]onfigurable-http-proxy'; }} |
sort -u |
while read -r p; do [ "${{p:-0}}" != 0 ] && echo "chp $p $(ls /proc/$p/fd 2>/dev/null | wc -l)"; done
true
"""


class SamplerError(RuntimeError):
    """The descriptors cannot be read (no such container, no permission); says which and why."""


@dataclass(frozen=True)
class FdSample:
    fds: dict[str, int]  # kind -> descriptors summed over its processes
    processes: dict[str, int]  # kind -> processes seen


def parse_host_output(text: str) -> FdSample:
    """Sum ``kind pid count`` lines (HOST_SCRIPT's output) per kind; a pid counts once."""
    seen: dict[tuple[str, str], int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].isdigit():
            seen[(fields[0], fields[1])] = int(fields[2])
    return _sum(seen)


def _sum(seen: dict[tuple[str, str], int]) -> FdSample:
    fds: dict[str, int] = {}
    procs: dict[str, int] = {}
    for (kind, _pid), count in seen.items():
        fds[kind] = fds.get(kind, 0) + count
        procs[kind] = procs.get(kind, 0) + 1
    return FdSample(fds, procs)


def kind_of(pid: int, proc: Path = Path("/proc")) -> str | None:
    """``nginx``, ``chp`` (a node running configurable-http-proxy) or None for other processes."""
    try:
        comm = (proc / str(pid) / "comm").read_text().strip()
        if comm == "nginx":
            return "nginx"
        cmdline = (proc / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    return "chp" if b"configurable-http-proxy" in cmdline else None


def count_fds(pid: int, proc: Path = Path("/proc")) -> int | None:
    try:
        return len(os.listdir(proc / str(pid) / "fd"))
    except OSError:
        return None


def sample_local(pids: tuple[int, ...] = (), proc: Path = Path("/proc")) -> FdSample:
    """This machine's nginx and CHP processes (all of them), or only ``pids`` when given."""
    candidates = pids or tuple(int(d) for d in os.listdir(proc) if d.isdigit())
    seen: dict[tuple[str, str], int] = {}
    for pid in candidates:
        kind = kind_of(pid, proc) or (f"pid {pid}" if pids else None)
        count = count_fds(pid, proc) if kind else None
        if kind and count is not None:
            seen[(kind, str(pid))] = count
    return _sum(seen)


EXEC_TIMEOUT = 10.0


async def sample_container(name: str) -> FdSample:
    proc = await asyncio.create_subprocess_exec(
        "docker", "exec", name, "sh", "-c", HOST_SCRIPT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(EXEC_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise SamplerError(f"docker exec {name} gave no answer within {EXEC_TIMEOUT} s") from exc
    if proc.returncode != 0:
        raise SamplerError(
            f"docker exec {name} failed ({proc.returncode}): {err.decode(errors='replace').strip()}"
        )
    return parse_host_output(out.decode(errors="replace"))


class Sampler:
    """Reads descriptors the way the options say; ``None`` from :meth:`sample` when told not to."""

    def __init__(self, opts: Options) -> None:
        self.opts = opts

    @property
    def enabled(self) -> bool:
        return bool(self.opts.host_container or self.opts.local or self.opts.pids)

    async def sample(self) -> FdSample | None:
        if self.opts.host_container:
            return await sample_container(self.opts.host_container)
        if self.opts.local or self.opts.pids:
            return await asyncio.to_thread(sample_local, self.opts.pids)
        return None

    async def check(self) -> None:
        """One sample before the crowd arrives: a wrong container name fails the run up front."""
        try:
            first = await self.sample()
        except OSError as exc:  # no docker binary
            raise SamplerError(f"cannot sample descriptors: {exc}") from exc
        if first is not None and self.opts.host_container and not first.fds:
            raise SamplerError(
                f"no nginx or configurable-http-proxy process found in {self.opts.host_container}"
            )
