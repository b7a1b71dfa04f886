"""The blinding rule the study builder and the audit share: when does a feature give sources away?

A feature (a number per case) **separates** real from synthetic cases when each group has at least
`MIN_GROUP` cases and their ranges do not overlap by more than the feature's tolerance, i.e. the
AUC of the feature is 0 or 1 with a margin. The orders a reader could see without the app (list
position in study.json, file name, inode, directory position, change time) are such features with
no tolerance: `mdiff-study create` places the cases again while any of them separates, and the
audit fails when one does.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from studies.study import CASE_SUFFIX, CASES_DIR

MIN_GROUP = 2


def auc(values: dict[str, float], sources: dict[str, str]) -> float:
    """P(a synthetic case's value > a real one's), ties counting one half."""
    real = np.array([v for c, v in values.items() if sources[c] == "real"], dtype=float)
    synthetic = np.array([v for c, v in values.items() if sources[c] == "synthetic"], dtype=float)
    greater = (synthetic[:, None] > real[None, :]).sum()
    ties = (synthetic[:, None] == real[None, :]).sum()
    return float((greater + 0.5 * ties) / (real.size * synthetic.size))


def separation(values: dict[str, float], sources: dict[str, str],
               tolerance: float = 0.0) -> str | None:
    """How a feature separates real from synthetic cases (see module docstring), or None."""
    real = [v for c, v in values.items() if sources[c] == "real"]
    synthetic = [v for c, v in values.items() if sources[c] == "synthetic"]
    if len(real) < MIN_GROUP or len(synthetic) < MIN_GROUP:
        return None
    if min(real) - max(synthetic) > tolerance:
        return (f"every real case is above every synthetic one (real {span(real)}, synthetic "
                f"{span(synthetic)})")
    if min(synthetic) - max(real) > tolerance:
        return (f"every synthetic case is above every real one (real {span(real)}, synthetic "
                f"{span(synthetic)})")
    return None


def span(values: list[float]) -> str:
    """'3' or '3 to 7'."""
    low, high = min(values), max(values)
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def order_features(study_folder: Path, listed: list[str]) -> dict[str, dict[str, float]]:
    """Orders a reader could see without the app: feature name -> case id -> value."""
    cases_dir = study_folder / CASES_DIR
    names = os.listdir(cases_dir)
    ids = [n[: -len(CASE_SUFFIX)] for n in names if n.endswith(CASE_SUFFIX)]
    stats = {c: os.stat(cases_dir / f"{c}{CASE_SUFFIX}") for c in listed}
    directory = {c: float(i) for i, c in enumerate(ids) if c in stats}
    return {
        "list position in study.json": {c: float(i) for i, c in enumerate(listed)},
        "alphabetical order of file names": {c: float(i) for i, c in enumerate(sorted(listed))},
        "inode number (creation order)": {c: float(s.st_ino) for c, s in stats.items()},
        "directory listing order": directory,
        "change time (ctime)": {c: float(s.st_ctime_ns) for c, s in stats.items()},
    }


def order_leaks(study_folder: Path, listed: list[str], sources: dict[str, str]) -> list[str]:
    """The order features that separate real from synthetic, with how."""
    leaks = []
    for feature, values in order_features(study_folder, listed).items():
        how = separation(values, sources)
        if how is not None:
            leaks.append(f"{feature}: {how}")
    return leaks
