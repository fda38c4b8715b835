"""Prometheus metrics, in a registry of their own (one per orchestrator)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tmpnb.pool import Counts

__all__ = ["CONTENT_TYPE", "Metrics"]

SPAWN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BOOT_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120)


def _count_of(counts: Callable[[], Counts], state: str) -> float:
    """The number of containers in ``state`` now (a gauge's value, read at each scrape)."""
    return float(getattr(counts(), state))


class Metrics:
    def __init__(self, counts: Callable[[], Counts], capacity: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.spawn_seconds = Histogram(
            "tmpnb_spawn_duration_seconds",
            "Time from a spawn request to its answer (hand-out), by result",
            ["result"],
            buckets=SPAWN_BUCKETS,
            registry=r,
        )
        self.boot_seconds = Histogram(
            "tmpnb_boot_duration_seconds",
            "Time from container create to answering HTTP and routed in CHP",
            buckets=BOOT_BUCKETS,
            registry=r,
        )
        self.spawns = Counter("tmpnb_spawns", "Spawn requests by result", ["result"], registry=r)
        self.culls = Counter("tmpnb_culls", "Handed-out containers culled, by reason", ["reason"], registry=r)
        self.failures = Counter("tmpnb_failures", "Failures by stage", ["stage"], registry=r)
        self.removed = Counter(
            "tmpnb_containers_removed", "Containers removed, by reason", ["reason"], registry=r
        )
        self.loop_errors = Counter(
            "tmpnb_loop_errors", "Unexpected errors in a background loop (it went on)", ["loop"], registry=r
        )
        self.oom_events = Counter(
            "tmpnb_oom_events",
            "Docker oom events: a process in a container was OOM-killed (the container keeps running)",
            registry=r,
        )
        self.reconciles = Counter("tmpnb_reconciles", "Reconciliation passes", registry=r)
        self.routes_restored = Counter(
            "tmpnb_routes_restored", "Routes re-added because CHP had lost them (CHP restarted)", registry=r
        )
        self.adopted = Counter(
            "tmpnb_containers_adopted", "Living containers adopted from labels", registry=r
        )
        for state in ("starting", "pooled", "in_use", "removing"):
            Gauge(
                f"tmpnb_containers_{state}", f"Containers of this instance now {state}", registry=r
            ).set_function(functools.partial(_count_of, counts, state))
        Gauge("tmpnb_capacity", "Maximum containers (pooled + in use)", registry=r).set_function(capacity)

    def render(self) -> bytes:
        return generate_latest(self.registry)
