"""Reconciliation: the pure diff between this instance's containers (Docker), its routes (CHP) and
what the orchestrator holds in memory. Reconcile, never purge: living containers are adopted.

Ownership: a container is ours only if its ``tmpnb.instance`` label equals our instance; a route is
ours only if its data says ``tmpnb_instance`` = our instance. Names are never used to decide.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tmpnb.pool import Slot, State

# Keys of the JSON data CHP keeps per route (CHP adds "target" and "last_activity" itself).
DATA_INSTANCE = "tmpnb_instance"
DATA_STATE = "tmpnb_state"
DATA_HANDED_OUT = "tmpnb_handed_out"
DATA_CONTAINER = "tmpnb_container"
DATA_CREATED = "tmpnb_created"
DATA_IMAGE = "tmpnb_image"


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    user_id: str
    path: str
    running: bool
    target: str | None  # http://ip:port on our network, None when it has no address there
    image: str
    created: float
    network: str = ""  # the instance network it has its address on ("" when none)


@dataclass(frozen=True)
class RouteInfo:
    path: str
    target: str
    data: Mapping[str, Any]
    last_activity: float | None


@dataclass
class Plan:
    adopt: list[Slot] = field(default_factory=list)
    add_routes: list[Slot] = field(default_factory=list)
    delete_routes: list[str] = field(default_factory=list)
    remove_containers: list[ContainerInfo] = field(default_factory=list)
    forget: list[str] = field(default_factory=list)  # user ids whose container is gone
    unroutable: list[ContainerInfo] = field(default_factory=list)  # running, not on our network: left alone
    retarget: dict[str, str] = field(default_factory=dict)  # user id -> the container's real target
    missing_routes: int = 0  # routes of known live slots that CHP lost (it restarted)

    @property
    def empty(self) -> bool:
        return not (
            self.adopt
            or self.add_routes
            or self.delete_routes
            or self.remove_containers
            or self.forget
            or self.unroutable
        )


def route_path(prefix: str, user_id: str) -> str:
    """CHP's key for a user's route (CHP strips the trailing slash)."""
    return f"{prefix}/{user_id}"


def route_data(slot: Slot, instance: str) -> dict[str, Any]:
    return {
        DATA_INSTANCE: instance,
        DATA_STATE: "in_use" if slot.state is State.IN_USE else "pooled",
        DATA_HANDED_OUT: slot.handed_out,
        DATA_CONTAINER: slot.container_id,
        DATA_CREATED: slot.created,
        DATA_IMAGE: slot.image,
    }


def parse_time(value: Any) -> float | None:
    """CHP's last_activity (ISO 8601, 'Z' suffix) as a POSIX timestamp."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_routes(raw: Mapping[str, Any], instance: str) -> dict[str, RouteInfo]:
    """This instance's routes out of CHP's ``GET /api/routes`` answer."""
    routes: dict[str, RouteInfo] = {}
    for path, data in raw.items():
        if not isinstance(data, dict) or data.get(DATA_INSTANCE) != instance:
            continue
        routes[path] = RouteInfo(
            path=path,
            target=str(data.get("target", "")),
            data=data,
            last_activity=parse_time(data.get("last_activity")),
        )
    return routes


def _slot_from_route(c: ContainerInfo, route: RouteInfo | None) -> Slot:
    """A slot for a living container we do not hold in memory (we restarted)."""
    slot = Slot(
        user_id=c.user_id,
        path=c.path,
        image=c.image,
        created=c.created,
        container_id=c.id,
        target=c.target or "",
        network=c.network,
    )
    state = route.data.get(DATA_STATE) if route else None
    handed_out = route.data.get(DATA_HANDED_OUT) if route else None
    if state == "pooled":
        slot.state = State.POOLED
    else:
        # In use per the route, or unknown (CHP lost its routes while we were down): keep the
        # possible visitor. Without a recorded hand-out time, the creation time stands in for it
        # (never later than the real one, so a max-age cull is never late).
        slot.state = State.IN_USE
        slot.handed_out = float(handed_out) if isinstance(handed_out, int | float) else c.created
    return slot


def _wants_route(slot: Slot, route: RouteInfo | None, instance: str) -> bool:
    if route is None or route.target != slot.target:
        return True
    want = route_data(slot, instance)
    return (
        route.data.get(DATA_STATE) != want[DATA_STATE]
        or route.data.get(DATA_HANDED_OUT) != want[DATA_HANDED_OUT]
    )


def diff(
    containers: Iterable[ContainerInfo],
    routes: Mapping[str, RouteInfo],
    known: Mapping[str, Slot],
    instance: str,
) -> Plan:
    """What to do so that Docker, CHP and memory agree.

    ``routes`` must have been read before ``containers`` (so a container started in between has its
    route absent, never its container); slots that a task owns (starting, removing) are left alone.
    """
    plan = Plan()
    busy = {s.path for s in known.values() if s.state in (State.STARTING, State.REMOVING)}
    seen_ids: set[str] = set()
    live_paths: set[str] = set()
    for c in containers:
        seen_ids.add(c.user_id)
        slot = known.get(c.user_id)
        if slot is not None and slot.state in (State.STARTING, State.REMOVING):
            continue
        route = routes.get(c.path)
        if c.running and (c.target is None or not c.path):
            # e.g. the network option changed: never kill a living container for it; say so
            plan.unroutable.append(c)
            if c.path:
                live_paths.add(c.path)
            continue
        if not c.running:
            plan.remove_containers.append(c)
            if route is not None:
                plan.delete_routes.append(c.path)
            if slot is not None:
                plan.forget.append(c.user_id)
            continue
        live_paths.add(c.path)
        target = c.target
        if target is None:  # unreachable: a running container without an address was taken above
            continue
        if slot is None:
            slot = _slot_from_route(c, route)
            plan.adopt.append(slot)
            if route is None or route.target != target:
                plan.add_routes.append(slot)
            continue
        if route is None:
            plan.missing_routes += 1
        if slot.target != target:
            plan.retarget[c.user_id] = target
            plan.add_routes.append(slot)
        elif _wants_route(slot, route, instance):
            plan.add_routes.append(slot)
    for path in routes:
        if path not in live_paths and path not in busy and path not in plan.delete_routes:
            plan.delete_routes.append(path)
    for user_id, slot in known.items():
        if user_id not in seen_ids and slot.state in (State.POOLED, State.IN_USE):
            plan.forget.append(user_id)
    return plan
