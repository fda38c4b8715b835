"""Recent figures for GET /api/stats (pure, clock injected): spawns in a sliding time window with
latency percentiles, and a ring buffer of in-use samples (the status page's chart).

Memory is bounded whatever the traffic: failures are counted per second (at most one bucket per
second of the window), latencies keep at most ``max_samples`` values (the newest)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

Clock = Callable[[], float]

SPAWN_WINDOW_S = 300
HISTORY_INTERVAL_S = 30
HISTORY_POINTS = 120  # an hour of samples every 30 s
MAX_LATENCY_SAMPLES = 10_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile ``q`` (0 < q <= 100) of ``values``; None when there are none."""
    if not 0 < q <= 100:
        raise ValueError(f"percentile q must be in (0, 100], got {q!r}")
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


class SpawnWindow:
    """Hand-outs (with the latency the visitor saw) and failed spawns of the last ``window_s``."""

    def __init__(
        self,
        window_s: int = SPAWN_WINDOW_S,
        clock: Clock = time.monotonic,
        max_samples: int = MAX_LATENCY_SAMPLES,
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_s = window_s
        self.clock = clock
        self._ok: deque[tuple[float, float]] = deque(maxlen=max_samples)  # (when, latency_s)
        self._failed: deque[list[int]] = deque()  # [whole second, count], oldest first

    def handed_out(self, latency_s: float) -> None:
        self._ok.append((self.clock(), latency_s))

    def failed(self) -> None:
        second = math.floor(self.clock())
        if self._failed and self._failed[-1][0] == second:
            self._failed[-1][1] += 1
        else:
            self._failed.append([second, 1])
        self._prune()

    def _prune(self) -> None:
        since = self.clock() - self.window_s
        while self._ok and self._ok[0][0] <= since:
            self._ok.popleft()
        while self._failed and self._failed[0][0] <= since:
            self._failed.popleft()

    def summary(self) -> dict[str, Any]:
        """``{window_s, count, failed, p50_s, p99_s}``; the percentiles are None with no hand-out."""
        self._prune()
        latencies = [lat for _, lat in self._ok]
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        return {
            "window_s": self.window_s,
            "count": len(latencies),
            "failed": sum(n for _, n in self._failed),
            "p50_s": None if p50 is None else round(p50, 4),
            "p99_s": None if p99 is None else round(p99, 4),
        }


class History:
    """The last ``points`` samples of a figure, ``[[epoch_s, value], ...]``, oldest first."""

    def __init__(
        self, interval_s: int = HISTORY_INTERVAL_S, points: int = HISTORY_POINTS, clock: Clock = time.time
    ) -> None:
        if interval_s <= 0 or points <= 0:
            raise ValueError(f"interval_s and points must be > 0, got {interval_s!r}, {points!r}")
        self.interval_s = interval_s
        self.clock = clock
        self._samples: deque[list[int]] = deque(maxlen=points)

    def sample(self, value: int) -> None:
        self._samples.append([int(self.clock()), value])

    def points(self) -> list[list[int]]:
        return [list(p) for p in self._samples]
