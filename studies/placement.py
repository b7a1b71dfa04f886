"""Placing staged cases in the study: random ids, and orders that say nothing about the source.

- case ids are random (`secrets.token_hex`), with no sequence;
- cases are written in one random order and listed in study.json in another;
- every case file gets the same modification and access time, set in a third random order;
- the orders a reader could see (list, names, inodes, directory listing, access and change
  times) are tested with the audit's file-level rule (`studies.blinding`), and the cases are
  placed again with fresh ids while any of them separates real from synthetic.
Ids and orders always come from `secrets`, so a study's seed says nothing about them.

A paired study's trials get random ids too (never a case's), and layout A (trials.py) is drawn
again while an order a reader could see tells the synthetic side (`studies.trial_audit`). Some of
those orders do not change with the layout (whether a pair's synthetic case has the lower id, the
earlier list position or the lower inode in every trial), so when `LAYOUT_TRIES` layouts all
fail, the cases are placed again.
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
from studies.trial_audit import side_leaks, synthetic_sides
from studies.trials import PracticeTrial, Trial, layout_a, practice_members

CASE_ID_BYTES = 4
MAX_PLACEMENTS = 50
LAYOUT_TRIES = 10
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


def place_paired(build: Path, staged: list[StagedCase], members: list[tuple[int, int]]
                 ) -> tuple[list[str], list[str], list[Trial]]:
    """Place the staged cases and lay out the trials (`members`: each trial's real and
    synthetic case as indices into `staged`) until no order tells the synthetic side.

    Returns the study.json list order, the id given to each staged case, and the trials.
    """
    for _ in range(MAX_PLACEMENTS):
        listed, ids = place_cases(build, staged)
        trials = place_trials(build, listed, [(ids[r], ids[s]) for r, s in members])
        if trials is not None:
            return listed, ids, trials
        shutil.rmtree(build / CASES_DIR)
    raise StudyError(f"Could not place the cases and trials so that no order tells the "
                     f"synthetic side after {MAX_PLACEMENTS} tries; create the study again.")


def place_trials(build: Path, listed: list[str],
                 pairs: list[tuple[str, str]]) -> list[Trial] | None:
    """Layout A of `pairs` (real id, synthetic id) under random trial ids, drawn until no order
    a reader could see tells the synthetic side; the trials in listed order. None when
    `LAYOUT_TRIES` layouts all fail (an order of the placed cases tells it: place them again)."""
    random = secrets.SystemRandom()
    sources = {case_id: source for pair in pairs
               for case_id, source in zip(pair, ("real", "synthetic"), strict=True)}
    for _ in range(LAYOUT_TRIES):
        trial_ids = unique_ids(len(pairs), taken=set(listed))
        trials = layout_a(pairs, trial_ids, random)
        sides = synthetic_sides(trials, sources)
        if not side_leaks(build / CASES_DIR, trials, listed, CASE_SUFFIX, sides):
            return trials
    return None


def place_practice_trials(build: Path, staged: list[StagedCase]
                          ) -> tuple[list[tuple[str, StagedCase]], list[PracticeTrial]]:
    """Pair staged real and synthetic practice cases at random as practice trials P01, ...,
    the synthetic member on a random side (balanced), copied to practice/P01a.nii and P01b.nii
    (left and right in layout A). The members with their file ids, and the practice trials."""
    if not staged:
        return [], []
    random = secrets.SystemRandom()
    real = [c for c in staged if c.entry.source == "real"]
    synthetic = [c for c in staged if c.entry.source == "synthetic"]
    count = min(len(real), len(synthetic))
    real, synthetic = random.sample(real, count), random.sample(synthetic, count)
    synthetic_left = set(random.sample(range(len(real)), len(real) // 2))
    practice_dir = build / PRACTICE_DIR
    practice_dir.mkdir()
    members, trials = [], []
    for index, pair in enumerate(zip(real, synthetic, strict=True)):
        trial_id = PRACTICE_ID_FORMAT.format(index + 1)
        side = "left" if index in synthetic_left else "right"
        shown = pair[::-1] if side == "left" else pair
        for member, case in zip(practice_members(trial_id), shown, strict=True):
            shutil.copyfile(case.staged, practice_dir / f"{member}{CASE_SUFFIX}")
            members.append((member, case))
        trials.append(PracticeTrial(trial_id, *practice_members(trial_id), side))
    return members, trials


def unique_ids(count: int, taken: set[str] | None = None) -> list[str]:
    """`count` distinct random hex ids, none of them in `taken`."""
    ids: set[str] = set()
    taken = taken or set()
    while len(ids) < count:
        candidate = secrets.token_hex(CASE_ID_BYTES)
        if candidate not in taken:
            ids.add(candidate)
    return list(ids)
