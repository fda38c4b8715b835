"""Latency statistics: nearest-rank percentiles, so every figure is a value that was measured."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

QUANTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``values``; None when empty.

    Nearest rank: the smallest value with at least q% of the values at or below it
    (p50 of [1, 2, 3, 4] is 2, p99 of 10 values is the largest).
    """
    if not 0 < q <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {q}")
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99 and max of ``values`` (seconds, rounded to the millisecond)."""
    data = list(values)
    out: dict[str, float | int | None] = {"count": len(data)}
    for q in QUANTILES:
        out[f"p{q}"] = _ms(percentile(data, q))
    out["max"] = _ms(max(data)) if data else None
    return out


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def format_summary(name: str, summary: dict[str, float | int | None]) -> str:
    """One line: ``name  n=3  p50 0.120 s  p95 ...`` (``-`` for figures with no data)."""
    parts = [f"{name:<22} n={summary['count']}"]
    for key in ("p50", "p95", "p99", "max"):
        value = summary.get(key)
        parts.append(f"{key} {'-' if value is None else f'{value:.3f} s'}")
    return "  ".join(parts)
