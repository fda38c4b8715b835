"""Spawns per client address per minute: a sliding window, pure and in memory (it protects the pool
from one crawler or script; losing it on restart costs nothing)."""

from __future__ import annotations

from collections import deque

WINDOW = 60.0
MAX_CLIENTS = 100_000  # bound the memory a flood of distinct addresses can take


class RateLimiter:
    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}

    def _window(self, client: str, now: float) -> deque[float]:
        hits = self._hits.get(client)
        if hits is None:
            hits = self._hits[client] = deque()
        while hits and now - hits[0] >= WINDOW:
            hits.popleft()
        return hits

    def allowed(self, client: str, limit: int, now: float) -> bool:
        """Whether ``client`` may spawn now; ``limit`` 0 means no limit."""
        if limit <= 0:
            return True
        return len(self._window(client, now)) < limit

    def record(self, client: str, now: float) -> None:
        if len(self._hits) >= MAX_CLIENTS:
            self.prune(now)
        self._window(client, now).append(now)

    def prune(self, now: float) -> None:
        for client in [c for c, h in self._hits.items() if not h or now - h[-1] >= WINDOW]:
            del self._hits[client]
        if len(self._hits) >= MAX_CLIENTS:  # all recent: forget the oldest half rather than grow
            for client in sorted(self._hits, key=lambda c: self._hits[c][-1])[: MAX_CLIENTS // 2]:
                del self._hits[client]

    def __len__(self) -> int:
        return len(self._hits)
