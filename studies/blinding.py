"""The blinding test the study builder and the audit share: does a feature tell sources apart?

A feature is one number per case. Its **AUC** is P(a synthetic case's value > a real one's), ties
counting one half: 0.5 is chance, 0 or 1 a complete separation. Its **p-value** is a permutation
test of |AUC - 0.5|: the share of the ways of labelling the cases that separate at least as well,
over every labelling when there are at most `EXACT_LIMIT`, else over `PERMUTATIONS` random ones
drawn from a fixed seed (so an audit is repeatable). A permutation test needs no assumption about
the feature's distribution, which for file times or value counts would be hard to justify.

Two rules decide when a feature gives sources away:
- **file-level** features (sizes, headers, times, orders) are all under the study builder's
  control, so any separation is a defect: the feature fails when it separates completely (AUC 0
  or 1, with at least `MIN_GROUP` cases of each source) or when p < `FILE_ALPHA`;
- **value-set** features (distinct values, extremes, histogram gaps, noise) follow the image as
  well as the road to the case, so small differences are expected between any two groups of
  images: the feature fails when it separates near-perfectly (AUC within `NEAR_PERFECT` of 0 or
  1) and significantly: p < `VALUE_ALPHA` / the number of value-set features tested together
  (Bonferroni), so that an honest study fails on one of them by chance at most 5% of the time.
  (Among 8 such features, fewer than 6 cases of a source can never be that significant: too
  few to tell anything.)

`mdiff-study create` places the cases again while any order a reader could see (list position,
file name, inode, directory position, access and change time) fails the file-level rule, so a
fresh study never fails on them; a copy of a study (new inodes, new times) fails on one of them
by chance with a probability of about `FILE_ALPHA` each.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from studies.study import CASES_DIR

MIN_GROUP = 2
FILE_ALPHA = 0.01
VALUE_ALPHA = 0.05
NEAR_PERFECT = 0.05  # AUC at most this or at least 1 - this
EXACT_LIMIT = 20_000
PERMUTATIONS = 10_000
PERMUTATION_SEED = 0
FILE, VALUES = "file", "values"  # the two kinds of feature


def auc(values: dict[str, float], sources: dict[str, str]) -> float:
    """P(a synthetic case's value > a real one's), ties counting one half."""
    real = np.array([v for c, v in values.items() if sources[c] == "real"], dtype=float)
    synthetic = np.array([v for c, v in values.items() if sources[c] == "synthetic"], dtype=float)
    greater = (synthetic[:, None] > real[None, :]).sum()
    ties = (synthetic[:, None] == real[None, :]).sum()
    return float((greater + 0.5 * ties) / (real.size * synthetic.size))


@dataclass(frozen=True)
class CheckResult:
    """The outcome of an audit check that is no feature (file names, the practice block)."""

    name: str
    passed: bool
    reason: str


def listed_files_failure(name: str, folder: Path, ids: list[str],
                         suffix: str) -> CheckResult | None:
    """A failed check `name` when `folder` holds other files than `ids` (with `suffix`), else
    None."""
    odd = sorted(set(os.listdir(folder)) ^ {f"{case_id}{suffix}" for case_id in ids})
    if not odd:
        return None
    return CheckResult(name, False, f"the {folder.name} folder and study.json disagree about "
                                    f"{len(odd)} files, e.g. {odd[0]}")


@dataclass(frozen=True)
class FeatureTest:
    """One feature's test: its AUC and p-value, and whether it gives sources away."""

    name: str
    kind: str  # FILE or VALUES
    real: tuple[float, ...]
    synthetic: tuple[float, ...]
    auc: float | None  # None when a source has no case
    p_value: float | None
    passed: bool
    reason: str  # why it failed, or "" when it passed


class SourceTest:
    """The permutation test of one labelling of cases, shared by every feature of a study."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = dict(sources)
        self.cases = sorted(self.sources)
        self.is_synthetic = np.array([self.sources[c] == "synthetic" for c in self.cases])
        self.n_synthetic = int(self.is_synthetic.sum())
        self.n_real = len(self.cases) - self.n_synthetic
        self.exact = math.comb(len(self.cases), self.n_synthetic) <= EXACT_LIMIT
        self._labellings = self._draw_labellings() if self.n_real and self.n_synthetic else None

    def _draw_labellings(self) -> np.ndarray:
        """(labellings, n_synthetic) indices of the cases called synthetic in each labelling."""
        n, m = len(self.cases), self.n_synthetic
        if self.exact:
            return np.array(list(combinations(range(n), m)), dtype=np.intp)
        rng = np.random.default_rng(PERMUTATION_SEED)
        return np.argsort(rng.random((PERMUTATIONS, n)), axis=1)[:, :m]

    def test(self, name: str, kind: str, values: dict[str, float],
             family: int = 1) -> FeatureTest:
        """The AUC and p-value of `values` (case id -> number) and the rule of `kind`; `family`:
        how many value-set features are tested together (the Bonferroni divisor)."""
        numbers = np.array([values[c] for c in self.cases], dtype=float)
        real = tuple(float(v) for v in numbers[~self.is_synthetic])
        synthetic = tuple(float(v) for v in numbers[self.is_synthetic])
        if self._labellings is None:
            return FeatureTest(name, kind, real, synthetic, None, None, True, "")
        area, p_value = self._auc_and_p(numbers)
        return FeatureTest(name, kind, real, synthetic, area, p_value,
                           *_verdict(kind, area, p_value, self.n_real, self.n_synthetic, family))

    def _auc_and_p(self, numbers: np.ndarray) -> tuple[float, float]:
        """AUC from the rank sum (Mann-Whitney U, mid-ranks for ties) and its permutation p."""
        ranks = _midranks(numbers)
        m, k = self.n_synthetic, self.n_real
        offset = m * (m + 1) / 2.0
        observed = ranks[self.is_synthetic].sum() - offset
        permuted = ranks[self._labellings].sum(axis=1) - offset
        centre = m * k / 2.0
        # A small slack, so that ties of rank sums count as "at least as extreme" despite floats.
        extreme = np.abs(permuted - centre) >= abs(observed - centre) - 1e-9
        if self.exact:
            p_value = float(extreme.mean())
        else:
            p_value = float((extreme.sum() + 1) / (len(permuted) + 1))
        return float(observed / (m * k)), p_value


def _midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    ranks = np.empty(len(values))
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def _verdict(kind: str, area: float, p_value: float, n_real: int, n_synthetic: int,
             family: int) -> tuple[bool, str]:
    """(passed, reason) by the rule of `kind` (module docstring)."""
    direction = "higher" if area > 0.5 else "lower"
    if kind == FILE:
        complete = area in (0.0, 1.0) and min(n_real, n_synthetic) >= MIN_GROUP
        if complete:
            return False, f"every synthetic case is {direction} than every real one"
        if p_value < FILE_ALPHA:
            return False, (f"synthetic cases are {direction} than real ones more often than "
                           f"chance (p = {p_value:.3g} < {FILE_ALPHA})")
        return True, ""
    if abs(area - 0.5) >= 0.5 - NEAR_PERFECT and p_value < VALUE_ALPHA / family:
        return False, (f"separates near-perfectly: synthetic cases {direction} (AUC {area:.2f}, "
                       f"p = {p_value:.3g})")
    return True, ""


def order_features(study_folder: Path, listed: list[str],
                   suffix: str) -> dict[str, dict[str, float]]:
    """Orders a reader could see without the app: feature name -> case id -> value.

    Times are in seconds after the earliest case's, so they read as durations.
    """
    cases_dir = study_folder / CASES_DIR
    names = os.listdir(cases_dir)
    ids = [n[: -len(suffix)] for n in names if n.endswith(suffix)]
    stats = {c: os.stat(cases_dir / f"{c}{suffix}") for c in listed}
    directory = {c: float(i) for i, c in enumerate(ids) if c in stats}
    return {
        "list position in study.json": {c: float(i) for i, c in enumerate(listed)},
        "file name (alphabetical order)": {c: float(i) for i, c in enumerate(sorted(listed))},
        "inode number (creation order)": {c: float(s.st_ino) for c, s in stats.items()},
        "directory listing order": directory,
        "access time (s)": _seconds({c: s.st_atime_ns for c, s in stats.items()}),
        "change time (s)": _seconds({c: s.st_ctime_ns for c, s in stats.items()}),
    }


def _seconds(times_ns: dict[str, int]) -> dict[str, float]:
    """Times in nanoseconds as seconds after the earliest."""
    first = min(times_ns.values())
    return {c: (t - first) / 1e9 for c, t in times_ns.items()}


def order_leaks(study_folder: Path, listed: list[str], sources: dict[str, str],
                suffix: str) -> list[str]:
    """The order features that fail the file-level rule, each with how."""
    tester = SourceTest(sources)
    leaks = []
    for feature, values in order_features(study_folder, listed, suffix).items():
        result = tester.test(feature, FILE, values)
        if not result.passed:
            leaks.append(f"{feature}: {result.reason}")
    return leaks
