"""Spawns per client address per minute: a sliding window, pure and in memory (it protects the pool
from one crawler or script; losing it on restart costs nothing).

A spawn *reserves* its hit before it waits for a container (check and record in one step, so
concurrent requests from one address cannot all pass the check), and gives it back when the visitor
ends up with nothing. IPv6 clients are counted by their /64 (one host usually holds a whole /64);
IPv4 ones by their full address.
"""

from __future__ import annotations

from collections import deque
from ipaddress import IPv6Address, ip_address

WINDOW = 60.0
MAX_CLIENTS = 100_000  # bound the memory a flood of distinct addresses can take
IPV6_PREFIX = 64


def client_key(address: str) -> str:
    """What the cap counts: an IPv4 address as is, an IPv6 address by its /64 (an IPv4-mapped one as
    its IPv4 address); anything else (no address known) as given."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        mask = (1 << 128) - (1 << (128 - IPV6_PREFIX))
        return f"{IPv6Address(int(ip) & mask)}/{IPV6_PREFIX}"
    return str(ip)


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

    def reserve(self, client: str, limit: int, now: float) -> bool:
        """Check and record in one step: True (hit recorded at ``now``) when ``client`` may spawn;
        ``limit`` 0 means no limit (nothing recorded)."""
        if limit <= 0:
            return True
        if not self.allowed(client, limit, now):
            return False
        self.record(client, now)
        return True

    def release(self, client: str, when: float) -> None:
        """Give back a hit reserved at ``when`` (the visitor got nothing); a no-op if it is gone."""
        hits = self._hits.get(client)
        if hits is not None and when in hits:
            hits.remove(when)

    def prune(self, now: float) -> None:
        for client in [c for c, h in self._hits.items() if not h or now - h[-1] >= WINDOW]:
            del self._hits[client]
        if len(self._hits) >= MAX_CLIENTS:  # all recent: forget the oldest half rather than grow
            for client in sorted(self._hits, key=lambda c: self._hits[c][-1])[: MAX_CLIENTS // 2]:
                del self._hits[client]

    def __len__(self) -> int:
        return len(self._hits)
