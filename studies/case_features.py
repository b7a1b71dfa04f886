"""What an adversary without the key can measure on a case file without looking at the image.

Two kinds (see `studies.blinding` for how each is tested):
- **file-level**: size, gzip member sizes (version 1 studies), header bytes, data type, times,
  inode, name and listing order, position in study.json;
- **value-set**: distinct-value count, minimum and maximum, the fraction of voxels at each, the
  longest run of unused values between them, the fraction of even values, and the background
  noise level.
A header, data type or modification time must be the same in every case; the others are numbers
whose distribution must not differ between real and synthetic cases.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io import VolumeError
from studies.blinding import FILE, VALUES, order_features
from studies.case_file import CaseFile, gzip_members, read_case
from studies.study import Study, StudyError

BACKGROUND_PERCENTILE = 25.0  # the darkest quarter of the voxels is taken as background
# The median absolute difference of neighbours, over sqrt(2) and times 1.4826, is the standard
# deviation of Gaussian noise (robust to edges, unlike the standard deviation itself).
_NOISE_SCALE = 1.4826 / np.sqrt(2.0)


@dataclass(frozen=True)
class Feature:
    """One feature's value in every case."""

    name: str
    kind: str  # blinding.FILE or blinding.VALUES
    values: dict[str, float]  # case id -> value
    identical: bool = False  # must be the same in every case (headers, data type, mtime)


def value_set_features(array: np.ndarray) -> dict[str, float]:
    """The value-set features of one case array (module docstring), by name."""
    flat = np.asarray(array).ravel()
    if not np.issubdtype(flat.dtype, np.integer):
        flat = np.rint(flat)  # a case that is not integer already fails the data type check
    flat = flat.astype(np.int64)
    low, high = int(flat.min()), int(flat.max())
    counts = np.bincount(flat - low)
    used = counts > 0
    return {
        "distinct values": float(used.sum()),
        "minimum": float(low),
        "maximum": float(high),
        "fraction at the minimum": float(counts[0] / flat.size),
        "fraction at the maximum": float(counts[-1] / flat.size),
        "longest run of unused values": float(_longest_false_run(used)),
        "fraction of even values": float(np.mean(flat % 2 == 0)),
        "background noise level": background_noise(array),
    }


def _longest_false_run(used: np.ndarray) -> int:
    """The longest run of False in a boolean vector."""
    edges = np.diff(np.concatenate(([1], used.astype(np.int8), [1])))
    starts, ends = np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)
    return int((ends - starts).max()) if starts.size else 0


def background_noise(array: np.ndarray) -> float:
    """The noise of the darkest quarter: neighbours along W that are both dark, robust sigma."""
    values = np.asarray(array, dtype=np.float64)
    threshold = np.percentile(values, BACKGROUND_PERCENTILE)
    left, right = values[..., :-1], values[..., 1:]
    dark = (left <= threshold) & (right <= threshold)
    if not dark.any():
        return 0.0
    return float(_NOISE_SCALE * np.median(np.abs(left[dark] - right[dark])))


def _variants(values: dict[str, object]) -> dict[str, float]:
    """Each case's variant of a property: 0 for the most common, 1, 2, ... for the others."""
    ranking = [value for value, _count in Counter(values.values()).most_common()]
    return {c: float(ranking.index(v)) for c, v in values.items()}


def read_study_case(path: Path) -> CaseFile:
    """One case file; StudyError naming it when it cannot be read."""
    try:
        return read_case(path)
    except VolumeError as err:
        raise StudyError(f"{str(err).rstrip('.')}; restore the case file from a copy of the "
                         "study.") from None


def study_features(study: Study) -> list[Feature]:
    """Every feature of every case of `study`, file-level first, in the order of the table."""
    cases = study.case_ids
    # Times and orders before any file is read: reading may move the access times.
    orders = order_features(study.folder, cases, study.case_suffix)
    stats = {c: os.stat(study.case_path(c)) for c in cases}
    headers: dict[str, bytes] = {}
    gzip_headers: dict[str, bytes] = {}
    dtypes: dict[str, str] = {}
    members: dict[str, tuple[int, int]] = {}
    value_sets: dict[str, dict[str, float]] = {}
    compressed = study.case_suffix.endswith(".gz")
    for case_id in cases:
        path = study.case_path(case_id)
        case = read_study_case(path)
        headers[case_id], dtypes[case_id] = case.nifti_header, str(case.dtype)
        gzip_headers[case_id] = case.gzip_header
        if compressed:
            members[case_id] = _member_sizes(path)
        value_sets[case_id] = value_set_features(case.array)

    first = min(s.st_mtime_ns for s in stats.values())
    mtimes = {c: (s.st_mtime_ns - first) / 1e9 for c, s in stats.items()}
    features = [Feature("file size (bytes)", FILE,
                        {c: float(s.st_size) for c, s in stats.items()})]
    if compressed:
        features += [
            Feature("first gzip member (bytes)", FILE,
                    {c: float(m[0]) for c, m in members.items()}),
            Feature("gzip members", FILE, {c: float(m[1]) for c, m in members.items()}),
            Feature("gzip header (variant)", FILE, _variants(gzip_headers), identical=True),
        ]
    features += [
        Feature("NIfTI header (variant)", FILE, _variants(headers), identical=True),
        Feature("stored data type (variant)", FILE, _variants(dtypes), identical=True),
        Feature("modification time (s)", FILE, mtimes, identical=True),
    ]
    features += [Feature(name, FILE, values) for name, values in orders.items()]
    names = list(next(iter(value_sets.values())))
    features += [Feature(name, VALUES, {c: value_sets[c][name] for c in cases})
                 for name in names]
    return features


def _member_sizes(path: Path) -> tuple[int, int]:
    """(size of the first gzip member, number of members) of a version 1 case file."""
    try:
        found = gzip_members(path.read_bytes())
    except (OSError, ValueError) as err:
        raise StudyError(f"{path} is not a complete gzip file ({err}); restore the case file "
                         "from a copy of the study.") from None
    return found[0].size, len(found)
