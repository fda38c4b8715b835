"""Which handed-out notebooks to cull: pure choices from CHP activity and hand-out times."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tmpnb.pool import Slot, State


class Reason(enum.StrEnum):
    IDLE = "idle"
    MAX_AGE = "max_age"


@dataclass(frozen=True)
class Cull:
    slot: Slot
    reason: Reason


def choose_culls(
    slots: Iterable[Slot],
    last_activity: Mapping[str, float | None],
    now: float,
    cull_timeout: float,
    cull_max_age: float,
) -> list[Cull]:
    """In-use slots older than ``cull_max_age`` since hand-out, or idle longer than ``cull_timeout``.

    Idleness counts from the later of CHP's ``last_activity`` for the slot's route and the hand-out
    time (CHP resets activity when a route is (re-)added, and a missing route has no activity).
    """
    culls: list[Cull] = []
    for slot in slots:
        if slot.state is not State.IN_USE or slot.handed_out is None:
            continue
        if now - slot.handed_out > cull_max_age:
            culls.append(Cull(slot, Reason.MAX_AGE))
            continue
        seen = last_activity.get(slot.path)
        active = max(seen, slot.handed_out) if seen is not None else slot.handed_out
        if now - active > cull_timeout:
            culls.append(Cull(slot, Reason.IDLE))
    return culls
