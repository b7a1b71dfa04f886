"""The audit of a practice block: can the practice truth in study.json tell a study case's source?

Readers see each practice case's truth, and anyone can read it in study.json. Four ways it could
reach a study case, and the check of each (`mdiff-study audit`):
- **practice files**: practice/ holds exactly the listed practice cases (ids P01, ..., which can
  never be study case ids), and study.json and the key give each the same truth;
- **practice sources**: no practice case comes from the input of a study case (the key's origin,
  any part of a split scan counting as that scan), so no study case is a practice case in another
  form or a neighbouring crop of the same scan;
- **practice content**: no practice case is a copy of a study case: their voxels are not identical
  and their mean absolute difference is over `NEAR_COPY` of the pair's value range (a copy that
  took another road, or was dithered anew, differs by a unit or so, different scans by far more);
- **pairing with the practice truth** (a value-set feature of the audit's table): an adversary
  can learn from the labelled practice cases. Each study case is given the distance to its nearest
  real practice case minus that to its nearest synthetic one, in the audit's value-set features
  (standardised over practice and study cases); this score must not separate the study's real
  and synthetic cases near-perfectly (the value-set rule of `studies.blinding`).
In a paired study the practice cases are the members of the practice trials (P01a, P01b, ...),
each with the truth its trial gives it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from studies.blinding import VALUES, CheckResult, listed_files_failure
from studies.case_features import Feature, read_study_case, value_set_features
from studies.key import KeyEntry
from studies.study import Study

NEAR_COPY = 0.005  # mean absolute difference, as a share of the pair's value range
SUBSAMPLE = 16  # every 16th voxel first: a pair far from a copy needs no full comparison
PAIRING = "pairing with the practice truth"
_PART = re.compile(r" \[part \d+ of \d+\]$")


@dataclass(frozen=True)
class PracticeCase:
    """A practice case as the audit reads it: its voxels and value-set features."""

    case_id: str
    source: str
    array: np.ndarray
    values: dict[str, float]


def practice_truths(study: Study) -> dict[str, str]:
    """Practice file id -> real|synthetic: the practice cases, or in a paired study each
    practice trial's members (the one on the trial's synthetic side is synthetic)."""
    if study.design != "2afc":
        return dict(study.practice)
    truths = {}
    for trial_id, side in study.practice.items():
        trial = study.trial(trial_id)
        truths[trial.member(side)] = "synthetic"
        truths[trial.member("right" if side == "left" else "left")] = "real"
    return truths


def read_practice(study: Study) -> list[PracticeCase]:
    """Every practice case of a study, read by the one reader of case files."""
    cases = []
    for case_id, source in practice_truths(study).items():
        array = np.asarray(read_study_case(study.case_path(case_id)).array)
        cases.append(PracticeCase(case_id, source, array, value_set_features(array)))
    return cases


def practice_files(study: Study, key: dict[str, KeyEntry]) -> CheckResult:
    """practice/ holds exactly the listed practice cases, and study.json and the key agree."""
    name = "practice files"
    failure = listed_files_failure(name, study.practice_dir, study.practice_file_ids,
                                   study.case_suffix)
    if failure is not None:
        return failure
    for case_id, source in practice_truths(study).items():
        if key[case_id].source != source:
            return CheckResult(name, False, f"study.json gives {case_id} the truth {source} "
                                              f"but the key {key[case_id].source}")
    ids = study.practice_file_ids
    return CheckResult(name, True, f"practice/ holds exactly the {len(ids)} practice cases "
                                   f"({', '.join(ids)}: practice ids, none a study case's), with "
                                   "the truth the key gives them")


def _scan(origin: str) -> str:
    """The input an origin names, without the part of a split scan."""
    return _PART.sub("", origin)


def practice_sources(study: Study, key: dict[str, KeyEntry]) -> CheckResult:
    """No practice case comes from the input (any part of it) of a study case."""
    name = "practice sources"
    study_scans = {_scan(key[c].origin): c for c in study.case_ids}
    for case_id in study.practice_file_ids:
        shared = study_scans.get(_scan(key[case_id].origin))
        if shared is not None:
            return CheckResult(name, False, f"{case_id} comes from the input of study case "
                                              f"{shared} ({_scan(key[case_id].origin)})")
    return CheckResult(name, True, f"no practice case comes from the input of one of the "
                                     f"{len(study.case_ids)} study cases")


def _mean_difference(a: np.ndarray, b: np.ndarray, step: int = 1) -> float:
    """Mean absolute difference of two arrays (every `step`-th voxel) over their value range."""
    first, second = a.ravel()[::step].astype(np.float64), b.ravel()[::step].astype(np.float64)
    value_range = max(first.max(), second.max()) - min(first.min(), second.min())
    return float(np.abs(first - second).mean() / value_range) if value_range else 0.0


def practice_content(study: Study, practice: list[PracticeCase]) -> CheckResult:
    """No practice case is identical to a study case or a near copy of one."""
    name = "practice content"
    closest = np.inf
    for case_id in study.case_ids:
        array = np.asarray(read_study_case(study.case_path(case_id)).array)
        for case in practice:
            if case.array.shape != array.shape:
                continue  # another grid: Study.open and the headers' check catch it
            if np.array_equal(case.array, array):
                return CheckResult(name, False, f"{case.case_id} is identical to study case "
                                                  f"{case_id}")
            difference = _mean_difference(case.array, array, SUBSAMPLE)
            if difference < 2 * NEAR_COPY:
                difference = _mean_difference(case.array, array)
            if difference <= NEAR_COPY:
                return CheckResult(name, False, f"{case.case_id} is a near copy of study case "
                                                  f"{case_id} (mean difference "
                                                  f"{100 * difference:.2g}% of the value range)")
            closest = min(closest, difference)
    return CheckResult(name, True, f"no practice case is a copy of a study case (the closest "
                                     f"pair differs by {100 * closest:.2g}% of the value range)")


def pairing_feature(features: list[Feature], practice: list[PracticeCase]) -> Feature | None:
    """The pairing score of every study case (module docstring); None when the practice block
    lacks real or synthetic cases, so that it has nothing to teach about the difference."""
    real = [p for p in practice if p.source == "real"]
    synthetic = [p for p in practice if p.source == "synthetic"]
    if not real or not synthetic:
        return None
    value_sets = [f for f in features if f.kind == VALUES]
    cases = list(value_sets[0].values)
    study = np.array([[f.values[c] for f in value_sets] for c in cases])
    taught = np.array([[p.values[f.name] for f in value_sets] for p in practice])
    both = np.vstack([study, taught])
    scale = both.std(axis=0)
    kept = scale > 0  # a feature equal in every case tells nothing and would divide by 0
    centre = both.mean(axis=0)

    def standard(rows: np.ndarray) -> np.ndarray:
        return (rows[:, kept] - centre[kept]) / scale[kept]

    study_z = standard(study)
    real_z = standard(taught[[p.source == "real" for p in practice]])
    synthetic_z = standard(taught[[p.source == "synthetic" for p in practice]])

    def nearest(points: np.ndarray) -> np.ndarray:
        return np.sqrt(((study_z[:, None, :] - points[None, :, :]) ** 2).sum(axis=2)).min(axis=1)

    score = nearest(real_z) - nearest(synthetic_z)  # > 0: nearer a synthetic practice case
    return Feature(PAIRING, VALUES, {c: float(v) for c, v in zip(cases, score, strict=True)})


def practice_audit(study: Study, key: dict[str, KeyEntry],
                   features: list[Feature]) -> tuple[list[CheckResult], Feature | None]:
    """The practice checks and the pairing feature of a study with a practice block."""
    practice = read_practice(study)
    checks = [practice_files(study, key), practice_sources(study, key),
              practice_content(study, practice)]
    return checks, pairing_feature(features, practice)
