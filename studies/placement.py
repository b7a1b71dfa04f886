"""Placing staged cases in the study: random ids, and orders that say nothing about the source.

- case ids are random (`secrets.token_hex`), with no sequence;
- cases are written in one random order and listed in study.json in another;
- every case file gets the same modification and access time, set in a third random order;
- the orders a reader could see (list, names, inodes, directory listing, access and change
  times) are tested with the audit's file-level rule (`studies.blinding`), and the cases are
  placed again with fresh ids while any of them separates real from synthetic.
Ids and orders always come from `secrets`, so a study's seed says nothing about them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from pathlib import Path

from studies.blinding import order_leaks
from studies.staging import StagedCase
from studies.study import CASE_SUFFIX, CASES_DIR, PRACTICE_DIR, StudyError

CASE_ID_BYTES = 4
MAX_PLACEMENTS = 50
PRACTICE_ID_FORMAT = "P{:02d}"


def place_cases(build: Path, staged: list[StagedCase]) -> tuple[list[str], list[str]]:
    """Copy staged cases to cases/<random id>.nii until no visible order separates them.

    Returns the study.json list order and the id given to each staged case, in staged order.
    """
    cases_dir = build / CASES_DIR
    cases_dir.mkdir()
    random = secrets.SystemRandom()
    for _ in range(MAX_PLACEMENTS):
        ids = unique_ids(len(staged))
        sources = {case_id: case.entry.source for case, case_id in zip(staged, ids, strict=True)}
        for index in random.sample(range(len(staged)), len(staged)):
            shutil.copyfile(staged[index].staged, cases_dir / f"{ids[index]}{CASE_SUFFIX}")
        stamp = int(time.time())
        for case_id in random.sample(ids, len(ids)):
            os.utime(cases_dir / f"{case_id}{CASE_SUFFIX}", (stamp, stamp))
        listed = random.sample(ids, len(ids))
        if not order_leaks(build, listed, sources, CASE_SUFFIX):
            return listed, ids
        for case_id in ids:
            (cases_dir / f"{case_id}{CASE_SUFFIX}").unlink()
    raise StudyError(f"Could not place the cases in an order that hides their source after "
                     f"{MAX_PLACEMENTS} tries; create the study again.")


def place_practice(build: Path, staged: list[StagedCase]) -> list[tuple[str, StagedCase]]:
    """Copy staged practice cases to practice/P01.nii ... in a random order of sources.

    Their truth is shown to readers anyway, so no order of theirs needs hiding.
    """
    if not staged:
        return []
    practice_dir = build / PRACTICE_DIR
    practice_dir.mkdir()
    shown = secrets.SystemRandom().sample(staged, len(staged))
    placed = [(PRACTICE_ID_FORMAT.format(i), case) for i, case in enumerate(shown, start=1)]
    for case_id, case in placed:
        shutil.copyfile(case.staged, practice_dir / f"{case_id}{CASE_SUFFIX}")
    return placed


def unique_ids(count: int) -> list[str]:
    """`count` distinct random hex ids."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(CASE_ID_BYTES))
    return list(ids)
