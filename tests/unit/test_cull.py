"""Cull choices: idle by CHP activity, too old by hand-out time."""

from __future__ import annotations

from tmpnb.cull import Reason, choose_culls
from tmpnb.pool import Slot, State

NOW = 10_000.0


def in_use(uid: str, handed_out: float) -> Slot:
    return Slot(uid, f"/user/{uid}", "img", 0.0, State.IN_USE, handed_out=handed_out)


def test_idle_and_max_age() -> None:
    slots = [
        in_use("fresh", NOW - 10),
        in_use("idle", NOW - 500),
        in_use("active", NOW - 500),
        in_use("old", NOW - 4000),
        in_use("noroute", NOW - 500),
        Slot("pooled", "/user/pooled", "img", 0.0, State.POOLED),
    ]
    activity = {"/user/fresh": None, "/user/idle": NOW - 400, "/user/active": NOW - 5, "/user/old": NOW - 1}
    culls = {c.slot.user_id: c.reason for c in choose_culls(slots, activity, NOW, 300, 3600)}
    assert culls == {"idle": Reason.IDLE, "old": Reason.MAX_AGE, "noroute": Reason.IDLE}


def test_activity_before_hand_out_does_not_count() -> None:
    # CHP's last_activity may predate the hand-out (the pooled route was added earlier)
    slot = in_use("x", NOW - 100)
    assert choose_culls([slot], {"/user/x": NOW - 1000}, NOW, 300, 3600) == []


def test_boundaries_are_strict() -> None:
    slot = in_use("x", NOW - 300)
    assert choose_culls([slot], {"/user/x": NOW - 300}, NOW, 300, 3600) == []
    assert choose_culls([in_use("y", NOW - 3600)], {}, NOW, 99999, 3600) == []
