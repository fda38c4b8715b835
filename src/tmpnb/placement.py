"""Which Docker networks an instance uses and which one a new container goes to: pure decisions.

A Linux bridge holds at most 1024 ports (tmpnb#46), one per container. When capacity (which counts
every container: pooled, starting, in use and being removed) would pass ``containers_per_network``,
the containers are spread over several networks of the instance, ``<base>-0``, ``<base>-1``, ...
(``<base>`` is the ``network`` option, default ``tmpnb-<instance>``); with one network needed the
name stays ``<base>``, as before.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

BRIDGE_PORTS = 1024  # a Linux bridge holds at most 1024 ports (tmpnb#46): one per container


def networks_needed(capacity: int, per_network: int) -> int:
    """How many networks hold ``capacity`` containers, ``per_network`` on each (at least one). The
    pool is part of capacity (tmpnb.pool.starts_needed never goes past it), so it adds nothing."""
    return max(1, -(-capacity // per_network))


def network_names(base: str, count: int) -> tuple[str, ...]:
    """The instance's networks: ``base`` alone when one is enough, else ``base-0`` .. ``base-<count-1>``."""
    return (base,) if count <= 1 else tuple(f"{base}-{i}" for i in range(count))


def instance_network(base: str, names: Iterable[str]) -> str | None:
    """Of the networks a container is attached to, the one of this instance (``base`` or
    ``base-<n>``, whatever the count is today, so a container placed under another capacity is
    still adopted); None when it has none."""
    pattern = re.compile(rf"{re.escape(base)}(-[0-9]+)?")
    ours = sorted(n for n in names if pattern.fullmatch(n))
    return ours[0] if ours else None


def least_full(names: Sequence[str], used: Mapping[str, int]) -> str:
    """The network a new container goes to: the one holding the fewest containers (``used``: per
    network, containers counted in every state), the first in order on a tie."""
    if not names:
        raise ValueError("no network to place a container on")
    return min(names, key=lambda n: (used.get(n, 0), names.index(n)))
