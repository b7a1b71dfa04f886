"""Which cases stay read and which are read ahead, and what that means for the case cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reader_app.model.loader import CaseCache, CaseImage
from reader_app.model.prefetch import PrefetchPlan, prefetch_plan
from reader_app.model.windowing import Window


@pytest.mark.parametrize("index, count, keep, preload", [
    (2, 5, (1, 2, 3), (3,)),      # the previous, current and next case; the next read ahead
    (0, 5, (0, 1), (1,)),         # no case before the first
    (4, 5, (3, 4), ()),           # nothing to read after the last
    (0, 1, (0,), ()),
    (5, 5, (), ()),               # the study is finished: nothing stays in memory
])
def test_the_plan_around_the_current_case(index, count, keep, preload):
    """At most three cases are held, and only the next one is read ahead."""
    assert prefetch_plan(index, count) == PrefetchPlan(keep=keep, preload=preload)


def test_a_negative_case_count_is_refused():
    """A count below zero is a bug in the caller, not an empty study."""
    with pytest.raises(ValueError, match="negative"):
        prefetch_plan(0, -1)


def test_following_the_plan_reads_each_case_once_going_forward_and_none_going_back():
    """Reading through five cases reads each once; one step back reads nothing; two steps back
    reads the dropped case again, so memory stays bounded."""
    reads: list[str] = []

    def fake_read(path: Path) -> CaseImage:
        reads.append(path.name)
        return CaseImage(np.zeros((2, 2, 2), np.int16), (1.0, 1.0, 1.0), Window(0.0, 1.0))

    cache, paths = CaseCache(fake_read), [Path(f"case{i}") for i in range(5)]

    def visit(index: int) -> None:
        plan = prefetch_plan(index, len(paths))
        cache.retain(paths[i] for i in plan.keep)
        futures = [cache.request(paths[i]) for i in (index, *plan.preload)]
        for future in futures:
            future.result(timeout=10)

    try:
        for index in range(5):
            visit(index)
        assert reads == [f"case{i}" for i in range(5)]
        visit(3)
        assert len(reads) == 5
        visit(2)
        assert reads[5:] == ["case2"]
    finally:
        cache.shutdown()
