"""Which labelled cases each cell trains on, and the rule that test subjects never train.

The unit a fraction counts is the subject when the smallest fraction keeps at least one subject
(all of a subject's cases go in together), else the case (a labelled set of few subjects, each
in many augmented copies: then a fraction counts copies). For one seed the subsets are nested:
the cases of 5 % are among those of 10 %, and so on, as the paper's fractions of one set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evaluation.downstream.data import Case
from evaluation.errors import EvalError

SUBJECT, CASE = "subject", "case"


def check_disjoint(train: Sequence[Case], test: Sequence[Case]) -> None:
    """EvalError naming a subject that has cases in both the training and the test set."""
    shared = sorted({c.subject for c in train} & {c.subject for c in test})
    if shared:
        raise EvalError(f"subject {shared[0]!r} has cases in both --labelled and --test; the "
                        f"test set must hold other subjects (or give --subject-pattern).")


def fraction_unit(cases: Sequence[Case], fractions: Sequence[float]) -> str:
    """SUBJECT when the smallest fraction keeps at least one subject, else CASE."""
    subjects = len({c.subject for c in cases})
    return SUBJECT if round(min(fractions) * subjects) >= 1 else CASE


def units_kept(total: int, fraction: float) -> int:
    """How many of `total` units a fraction keeps: rounded, at least one."""
    return max(1, round(fraction * total))


def training_subset(cases: Sequence[Case], fraction: float, seed: int, unit: str) -> list[int]:
    """Indices of the cases a (fraction, seed) cell trains on, sorted (module docstring)."""
    if unit == SUBJECT:
        subjects = sorted({c.subject for c in cases})
        order = np.random.default_rng(seed).permutation(len(subjects))
        kept = {subjects[i] for i in order[:units_kept(len(subjects), fraction)]}
        return [i for i, c in enumerate(cases) if c.subject in kept]
    order = np.random.default_rng(seed).permutation(len(cases))
    return sorted(int(i) for i in order[:units_kept(len(cases), fraction)])
