"""each_bounded: errors come back per item (one refused write does not cancel the others), and a
limit below 1 is refused with a clear error."""

from __future__ import annotations

import pytest

from tmpnb.bounded import each_bounded


async def test_each_item_gets_its_own_error_and_the_rest_still_run() -> None:
    done = []

    async def write(i: int) -> None:
        if i == 1:
            raise RuntimeError("refused")
        done.append(i)

    errors = await each_bounded(range(4), write, limit=2)
    assert [type(e).__name__ if e else None for e in errors] == [None, "RuntimeError", None, None]
    assert sorted(done) == [0, 2, 3]


async def test_a_limit_below_one_is_refused() -> None:
    async def write(i: int) -> None:
        pass

    with pytest.raises(ValueError, match="limit must be at least 1"):
        await each_bounded([1], write, limit=0)
