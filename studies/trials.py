"""Paired (2AFC) reading: a trial shows a real and a synthetic case side by side.

A study of design "2afc" lists its trials in study.json as `{"trial_id", "left", "right"}`, in
creation order: that is **layout A**. In layout A floor(N/2) trials have the synthetic member on
the left, chosen at random, and the trials are listed in a random order; nothing in study.json
says which member is synthetic (that is in the key). A reader sees layout A or its **mirror**
(every trial's sides swapped): a new reader gets the one fewer other readers see, so readers
alternate in the order their databases are made (`reader_mirrored`), two consecutive readers see
every pair on opposite sides, and every reader has floor(N/2) or ceil(N/2) trials with the
synthetic member on the left.

Practice trials are listed with their truth, in layout A: `{"trial_id": "P01", "left": "P01a",
"right": "P01b", "synthetic": "left"|"right"}`, their files `practice/P01a.nii` and
`practice/P01b.nii`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from studies.ids import CASE_ID_PATTERN, PRACTICE_ID_PATTERN

DESIGNS: tuple[str, ...] = ("single", "2afc")
SIDES: tuple[str, ...] = ("left", "right")
# The stored answer of "Which one is synthetic?" for each side, and back.
SIDE_LETTERS: dict[str, str] = {"left": "L", "right": "R"}
LETTER_SIDES: dict[str, str] = {letter: side for side, letter in SIDE_LETTERS.items()}
PRACTICE_MEMBER_SUFFIXES: tuple[str, str] = ("a", "b")  # P01 -> practice/P01a.nii, P01b.nii


@dataclass(frozen=True)
class Trial:
    """One trial: the case ids shown on the left and on the right."""

    trial_id: str
    left: str
    right: str

    def mirrored(self) -> Trial:
        """The same trial with its sides swapped."""
        return Trial(self.trial_id, self.right, self.left)

    def side_of(self, case_id: str) -> str:
        """"left" or "right": where `case_id` is shown; KeyError when it is no member."""
        if case_id == self.left:
            return "left"
        if case_id == self.right:
            return "right"
        raise KeyError(case_id)

    def member(self, side: str) -> str:
        """The case id shown on `side` ("left" or "right")."""
        return {"left": self.left, "right": self.right}[side]


@dataclass(frozen=True)
class PracticeTrial:
    """A practice trial of study.json, in layout A, with the side of its synthetic member."""

    trial_id: str
    left: str
    right: str
    synthetic: str  # "left" | "right"

    @property
    def trial(self) -> Trial:
        """The trial as layout A shows it."""
        return Trial(self.trial_id, self.left, self.right)


def practice_members(trial_id: str) -> tuple[str, str]:
    """The file ids of a practice trial's layout-A left and right members (P01 -> P01a, P01b)."""
    return (trial_id + PRACTICE_MEMBER_SUFFIXES[0], trial_id + PRACTICE_MEMBER_SUFFIXES[1])


def mirror_side(side: str, mirrored: bool) -> str:
    """`side` as a reader who sees the mirror of layout A sees it."""
    return {"left": "right", "right": "left"}[side] if mirrored else side


def layout_a(pairs: Sequence[tuple[str, str]], trial_ids: Sequence[str],
             random: secrets.SystemRandom | None = None) -> list[Trial]:
    """Layout A of `pairs` (real id, synthetic id): floor(N/2) random pairs get the synthetic
    member on the left, and the trials are listed in a random order (`trial_ids[i]` names
    pair i)."""
    random = random or secrets.SystemRandom()
    n = len(pairs)
    synthetic_left = set(random.sample(range(n), n // 2))
    trials = [Trial(trial_id, synthetic, real) if i in synthetic_left
              else Trial(trial_id, real, synthetic)
              for i, (trial_id, (real, synthetic)) in enumerate(zip(trial_ids, pairs,
                                                                    strict=True))]
    return random.sample(trials, n)


def reader_mirrored(others: list[bool]) -> bool:
    """Whether a new reader sees the mirror of layout A, given the other readers' layouts: the
    layout fewer of them see, layout A on a tie. Readers who start one after the other thus
    alternate (A, mirror, A, ...), and a database merged in or removed is taken into account."""
    return sum(others) < len(others) - sum(others)


# ------------------------------------------------------------------------- checking study.json

def check_trials(trials: list, cases: list, bad: Callable[[str], Exception]) -> None:
    """Raise `bad(problem)` unless `trials` pairs the study's cases: distinct hex trial ids that
    are no case ids, two different listed cases per trial, every case in some trial."""
    if not trials:
        raise bad("is of design '2afc' but lists no trials")
    listed, seen, used = set(cases), set(), set()
    for entry in trials:
        if not isinstance(entry, dict) or set(entry) != {"trial_id", "left", "right"}:
            raise bad("lists a trial that is not {\"trial_id\": ..., \"left\": ..., "
                      "\"right\": ...}")
        trial_id = entry["trial_id"]
        if not isinstance(trial_id, str) or not CASE_ID_PATTERN.match(trial_id):
            raise bad("lists a trial id that is not a hexadecimal name")
        if trial_id in seen or trial_id in listed:
            raise bad(f"lists the trial id {trial_id} twice (or as a case id too)")
        if entry["left"] not in listed or entry["right"] not in listed:
            raise bad(f"gives the trial {trial_id} a member that is not one of its cases")
        if entry["left"] == entry["right"]:
            raise bad(f"shows the same case on both sides of trial {trial_id}")
        seen.add(trial_id)
        used.update((entry["left"], entry["right"]))
    unused = sorted(listed - used)
    if unused:
        raise bad(f"lists the case {unused[0]}, which no trial shows")


def check_practice_trials(practice: list, bad: Callable[[str], Exception]) -> None:
    """Raise `bad(problem)` unless `practice` lists practice trials (P01 with members P01a and
    P01b) with the side of their synthetic member."""
    seen: set[str] = set()
    for entry in practice:
        if not isinstance(entry, dict) or set(entry) != {"trial_id", "left", "right",
                                                          "synthetic"}:
            raise bad("lists a practice trial that is not {\"trial_id\": ..., \"left\": ..., "
                      "\"right\": ..., \"synthetic\": ...}")
        trial_id = entry["trial_id"]
        if not isinstance(trial_id, str) or not PRACTICE_ID_PATTERN.match(trial_id):
            raise bad(f"lists the practice trial {trial_id!r}, which is not a practice id "
                      "(P01, P02, ...)")
        if trial_id in seen:
            raise bad(f"lists the practice trial {trial_id} twice")
        if (entry["left"], entry["right"]) != practice_members(trial_id):
            raise bad(f"gives the practice trial {trial_id} the members {entry['left']!r} and "
                      f"{entry['right']!r}, not {' and '.join(practice_members(trial_id))}")
        if entry["synthetic"] not in SIDES:
            raise bad(f"gives the practice trial {trial_id} the synthetic side "
                      f"{entry['synthetic']!r}, not left or right")
        seen.add(trial_id)
