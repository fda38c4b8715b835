"""Pool arithmetic and the slot state machine."""

from __future__ import annotations

import pytest

from tmpnb.pool import Counts, Pool, Slot, State, can_ever_serve, starts_needed, surplus_pooled


def slot(uid: str, state: State = State.POOLED, created: float = 0.0, image: str = "img") -> Slot:
    return Slot(uid, f"/user/{uid}", image, created, state)


@pytest.mark.parametrize(
    ("counts", "pool_size", "capacity", "conc", "waiters", "expected"),
    [
        (Counts(), 4, 10, 2, 0, 2),  # bounded by concurrent starts
        (Counts(), 4, 10, 8, 0, 4),  # fills to pool_size
        (Counts(), 4, 3, 8, 0, 3),  # never beyond capacity
        (Counts(pooled=4), 4, 10, 2, 0, 0),  # full pool
        (Counts(pooled=2, starting=1), 4, 10, 8, 0, 1),  # starting ones count
        (Counts(starting=2), 4, 10, 2, 0, 0),  # concurrency used up
        (Counts(in_use=9), 4, 10, 8, 0, 1),  # in-use ones take capacity
        (Counts(in_use=8, removing=2), 4, 10, 8, 0, 0),  # removing ones still hold memory
        (Counts(), 0, 10, 8, 3, 3),  # cold starts for waiting visitors
        (Counts(pooled=1), 1, 10, 8, 2, 2),  # pool plus waiters
        (Counts(pooled=6), 4, 10, 8, 0, 0),  # over-full: never negative
    ],
)
def test_starts_needed(
    counts: Counts, pool_size: int, capacity: int, conc: int, waiters: int, expected: int
) -> None:
    assert starts_needed(counts, pool_size, capacity, conc, waiters) == expected


def test_take_hands_out_the_oldest_pooled_and_marks_it() -> None:
    pool = Pool()
    for s in (slot("b", created=2), slot("a", created=1), slot("c", State.STARTING, created=0)):
        pool.add(s)
    taken = pool.take(now=100.0)
    assert taken is not None and taken.user_id == "a"
    assert taken.state is State.IN_USE and taken.handed_out == 100.0
    assert pool.counts() == Counts(starting=1, pooled=1, in_use=1)
    assert pool.take(101.0).user_id == "b"
    assert pool.take(102.0) is None  # starting ones are never handed out


def test_duplicate_user_id_refused() -> None:
    pool = Pool()
    pool.add(slot("a"))
    with pytest.raises(ValueError, match="duplicate"):
        pool.add(slot("a"))


def test_surplus_removes_stale_images_first_then_oldest_excess() -> None:
    pool = Pool()
    for s in (slot("old1", image="v1", created=1), slot("new1", image="v2", created=2)):
        pool.add(s)
    for i in range(3):
        pool.add(slot(f"new{i + 2}", image="v2", created=3 + i))
    pool.add(slot("busy", State.IN_USE, image="v1"))
    surplus = [s.user_id for s in surplus_pooled(pool, pool_size=2, image="v2")]
    assert surplus == ["old1", "new1", "new2"]


def test_surplus_removes_a_re_tagged_images_pooled_slots_by_key() -> None:
    """Same image name, another image id (a rebuild under the same tag): the key tells them apart;
    old-style ids (no key) are judged by name only."""
    pool = Pool()
    old, new = "a" * 12 + "-" + "x" * 16, "b" * 12 + "-" + "y" * 16
    pool.add(slot(old, image="nb:1", created=1))
    pool.add(slot(new, image="nb:1", created=2))
    pool.add(slot("z" * 16, image="nb:1", created=3))
    assert [s.user_id for s in surplus_pooled(pool, 4, "nb:1", "b" * 12)] == [old]
    assert surplus_pooled(pool, 4, "nb:1") == []


def test_can_ever_serve() -> None:
    assert can_ever_serve(Counts(in_use=3), 4)
    assert not can_ever_serve(Counts(in_use=4), 4)
    assert can_ever_serve(Counts(in_use=3, starting=1), 4)
