"""Which cases to hold in memory and to read ahead around the one on screen, without Qt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrefetchPlan:
    """Case positions (0-based, in the reader's order) to keep read and to start reading."""

    keep: tuple[int, ...]     # every other case's image is dropped, so memory stays bounded
    preload: tuple[int, ...]  # read in the background after the current case, in this order


def prefetch_plan(index: int, case_count: int) -> PrefetchPlan:
    """The plan while the reader is at case `index` of `case_count`.

    The previous case stays read, so going back to check it again is instant; the next case
    is read ahead, since readers mostly go forward. Past the last case (the study finished)
    nothing is kept.
    """
    if case_count < 0:
        raise ValueError(f"a study has no negative number of cases ({case_count})")
    if not 0 <= index < case_count:
        return PrefetchPlan(keep=(), preload=())
    keep = tuple(i for i in (index - 1, index, index + 1) if 0 <= i < case_count)
    preload = (index + 1,) if index + 1 < case_count else ()
    return PrefetchPlan(keep=keep, preload=preload)
