"""What every benchmark shares: the machine it ran on, percentiles, a JSON file in bench/results/."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number above zero, or an error naming the value."""

    what = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected {what} above 0, got {text!r}")
        return value

    return parse


def cores() -> int:
    return len(os.sched_getaffinity(0))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def machine(load_before: float) -> dict[str, Any]:
    """Cores, kernel, platform and the 1-minute load average before and after (other work on this
    shared machine skews every figure: the load says how much)."""
    return {
        "cores": cores(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1min_before": load_before,
        "load_average_1min_after": load_average(),
    }


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_s": round(pct(values, 50), 4),
        "p99_s": round(pct(values, 99), 4),
        "max_s": round(max(values), 4),
        "mean_s": round(statistics.fmean(values), 4),
    }


def write(name: str, result: dict[str, Any], load_before: float) -> Path:
    """bench/results/<name>.json with the time and the machine first."""
    out = RESULTS / f"{name}.json"
    data = {
        "bench": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(load_before),
        **result,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"written: {out.relative_to(ROOT)}")
    return out


def header(title: str) -> float:
    """Print the bench's title and the machine; return the load average before it ran."""
    load = load_average()
    print(f"== {title}")
    print(f"   {platform.machine()}, {cores()} cores, kernel {platform.release()}, load {load:.2f} before")
    return load


class Proc:
    """A process's resident memory, CPU seconds and open descriptors, read from /proc/<pid>."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tick = os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def cpu_s(self) -> float:
        # fields after the command (which may hold spaces): utime and stime are 14 and 15
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / self._tick

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))
