"""The pool's state machine and arithmetic: pure decisions, no I/O.

A slot is one container of this instance, keyed by its user id (chosen when the container is
created, since its base path is baked into its command):

    STARTING -> POOLED -> IN_USE -> REMOVING
        \\________________\\__________/^

Capacity counts every slot, removing ones too (they still hold memory until Docker frees it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from tmpnb.ids import key_of


class State(enum.StrEnum):
    STARTING = "starting"
    POOLED = "pooled"
    IN_USE = "in_use"
    REMOVING = "removing"


@dataclass
class Slot:
    user_id: str
    path: str  # CHP route path: "/user/<id>" (CHP stores it without the trailing slash)
    image: str
    created: float
    state: State = State.STARTING
    container_id: str = ""
    target: str = ""  # "http://<container ip>:<port>", empty until started
    handed_out: float | None = None
    died: bool = False  # Docker reported the container dead while it was starting
    network: str = ""  # the Docker network it is placed on (tmpnb.placement)


@dataclass(frozen=True)
class Counts:
    starting: int = 0
    pooled: int = 0
    in_use: int = 0
    removing: int = 0

    @property
    def total(self) -> int:
        return self.starting + self.pooled + self.in_use + self.removing


@dataclass
class Pool:
    slots: dict[str, Slot] = field(default_factory=dict)

    def add(self, slot: Slot) -> None:
        if slot.user_id in self.slots:
            raise ValueError(f"duplicate user id {slot.user_id}")
        self.slots[slot.user_id] = slot

    def discard(self, user_id: str) -> None:
        self.slots.pop(user_id, None)

    def in_state(self, *states: State) -> list[Slot]:
        return [s for s in self.slots.values() if s.state in states]

    def counts(self) -> Counts:
        c = {s: 0 for s in State}
        for slot in self.slots.values():
            c[slot.state] += 1
        return Counts(c[State.STARTING], c[State.POOLED], c[State.IN_USE], c[State.REMOVING])

    def take(self, now: float) -> Slot | None:
        """Hand out the oldest pooled slot (no I/O: the caller records it in CHP)."""
        pooled = self.in_state(State.POOLED)
        if not pooled:
            return None
        slot = min(pooled, key=lambda s: s.created)
        mark_handed_out(slot, now)
        return slot


def mark_handed_out(slot: Slot, now: float) -> None:
    if slot.state is not State.POOLED:
        raise ValueError(f"slot {slot.user_id} is {slot.state}, not pooled")
    slot.state = State.IN_USE
    slot.handed_out = now


def starts_needed(
    counts: Counts, pool_size: int, capacity: int, max_concurrent: int, waiters: int = 0
) -> int:
    """How many containers to start now.

    Wanted: enough to hold ``pool_size`` ready plus one per waiting visitor, counting those already
    starting. Bounded by the room left under ``capacity`` and by free concurrent-start slots.
    """
    wanted = pool_size + waiters - counts.pooled - counts.starting
    room = capacity - counts.total
    concurrency = max_concurrent - counts.starting
    return max(0, min(wanted, room, concurrency))


def can_ever_serve(counts: Counts, capacity: int) -> bool:
    """Whether a visitor without a pooled container may wait: something is booting or room remains."""
    return counts.starting > 0 or counts.total < capacity


def surplus_pooled(pool: Pool, pool_size: int, image: str, key: str | None = None) -> list[Slot]:
    """Pooled slots to remove: those of another image (rollout; by name, or by image key when the
    same name now names another image: a re-tagged build), then the oldest beyond pool_size."""
    pooled = sorted(pool.in_state(State.POOLED), key=lambda s: s.created)

    def stale(s: Slot) -> bool:
        slot_key = key_of(s.user_id)
        return s.image != image or (key is not None and slot_key is not None and slot_key != key)

    old = [s for s in pooled if stale(s)]
    current = [s for s in pooled if not stale(s)]
    excess = max(0, len(current) - pool_size)
    return old + current[:excess]
