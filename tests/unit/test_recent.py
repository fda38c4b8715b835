"""tmpnb.recent: the spawn window, its percentiles and the in-use history, on an injected clock."""

from __future__ import annotations

import pytest

from tmpnb.recent import History, SpawnWindow, percentile


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_nearest_rank_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    with pytest.raises(ValueError, match="percentile q"):
        percentile([1.0], 0)


def test_an_empty_window_has_no_percentiles() -> None:
    assert SpawnWindow(clock=Clock()).summary() == {
        "window_s": 300,
        "count": 0,
        "failed": 0,
        "p50_s": None,
        "p99_s": None,
    }


def test_the_window_counts_only_the_last_window_s_seconds() -> None:
    clock = Clock()
    w = SpawnWindow(window_s=300, clock=clock)
    w.handed_out(5.0)  # an old slow one
    w.failed()
    clock.now += 200
    for latency in (0.01, 0.02, 0.03):
        w.handed_out(latency)
    w.failed()
    w.failed()
    s = w.summary()
    assert (s["count"], s["failed"], s["p50_s"], s["p99_s"]) == (4, 3, 0.02, 5.0)
    clock.now += 100.5  # the first hand-out and failure are now older than 300 s
    s = w.summary()
    assert (s["count"], s["failed"], s["p50_s"], s["p99_s"]) == (3, 2, 0.02, 0.03)
    clock.now += 300
    assert w.summary()["count"] == 0 and w.summary()["failed"] == 0
    assert w.summary()["p50_s"] is None


def test_failures_take_one_bucket_per_second_and_latencies_are_capped() -> None:
    clock = Clock()
    w = SpawnWindow(window_s=60, clock=clock, max_samples=5)
    for i in range(1000):
        clock.now = 1000 + i / 100  # 100 failures a second for 10 s
        w.failed()
    assert len(w._failed) == 10
    assert w.summary()["failed"] == 1000
    for i in range(8):
        w.handed_out(float(i))
    assert w.summary()["count"] == 5  # the newest five kept
    assert w.summary()["p50_s"] == 5.0


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        SpawnWindow(window_s=0)
    with pytest.raises(ValueError, match="interval_s"):
        History(interval_s=0)


def test_history_keeps_the_last_points_oldest_first() -> None:
    clock = Clock(1_700_000_000.7)
    h = History(interval_s=30, points=120, clock=clock)
    assert h.points() == []
    for n in range(130):
        h.sample(n)
        clock.now += 30
    points = h.points()
    assert len(points) == 120
    assert points[0] == [1_700_000_000 + 10 * 30, 10]
    assert points[-1] == [1_700_000_000 + 129 * 30, 129]
    points[0][1] = -1  # a copy: the caller cannot change the history
    assert h.points()[0][1] == 10
