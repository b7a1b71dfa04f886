"""Audit a study's blinding with its key: can anything but the image tell real from synthetic?

Each check looks at one thing a curious reader could see without the app: file names, the order
of the list in study.json, the order of files on disk, file times, NIfTI and gzip headers, data
types, distinct-value counts, value ranges and compressed file sizes.

Properties that must be the same for every case (header bytes, dtype, modification time, name
pattern) fail on any difference. Numeric properties use the rule of `studies.blinding`: a feature
fails when it separates real from synthetic cases. Orders (list position, name, inode, directory
position, change time) have no tolerance; content features (distinct values, value range) have 5%
of their scale, so that small groups of similar images do not fail by chance.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from diffusion_core.io import VolumeError
from studies.blinding import MIN_GROUP, auc, order_features, separation, span
from studies.case_file import DATA_DTYPE, read_case
from studies.key import KeyEntry, check_key_matches, read_key
from studies.study import CASE_ID_PATTERN, CASE_SUFFIX, Study, StudyError

CONTENT_TOLERANCE = 0.05


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one audit check."""

    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class _CaseFacts:
    """What the audit compares of one case file (kept instead of the voxels)."""

    gzip_header: bytes
    nifti_header: bytes
    dtype: np.dtype
    distinct: int
    low: float
    high: float


def _facts(path: Path) -> _CaseFacts:
    """Read one case file; StudyError when it is no gzipped NIfTI."""
    try:
        stored = read_case(path)
    except VolumeError as err:
        raise StudyError(f"{str(err).rstrip('.')}; restore the case file from a copy of the "
                         "study.") from None
    return _CaseFacts(stored.gzip_header, stored.nifti_header, stored.dtype,
                      int(np.unique(stored.array).size), float(stored.array.min()),
                      float(stored.array.max()))


class _Audit:
    """The facts of every case, gathered once, and one method per check."""

    def __init__(self, study: Study, key: dict[str, KeyEntry]) -> None:
        self.study = study
        self.sources = {c: key[c].source for c in study.case_ids}
        self.orders = order_features(study.folder, study.case_ids)
        self.stored = {c: _facts(study.case_path(c)) for c in study.case_ids}
        self.stats = {c: os.stat(study.case_path(c)) for c in study.case_ids}
        counts = Counter(self.sources.values())
        self.comparable = counts["real"] >= MIN_GROUP and counts["synthetic"] >= MIN_GROUP
        self.groups = f"{counts['real']} real and {counts['synthetic']} synthetic cases"

    def _separation_check(self, name: str, features: dict[str, dict[str, float]],
                          tolerances: dict[str, float] | None = None) -> CheckResult:
        """FAIL when any of the features separates the groups."""
        if not self.comparable:
            return CheckResult(name, True, f"only {self.groups}: too few to separate")
        leaks, aucs = [], []
        for feature, values in features.items():
            how = separation(values, self.sources, (tolerances or {}).get(feature, 0.0))
            if how is not None:
                leaks.append(f"{feature}: {how}")
            feature_auc = auc(values, self.sources)
            note = f"{feature} AUC {feature_auc:.2f}"
            if feature_auc in (0.0, 1.0):
                # Apart, but by less than the feature's tolerance: say so rather than "overlap".
                real = [v for c, v in values.items() if self.sources[c] == "real"]
                synthetic = [v for c, v in values.items() if self.sources[c] == "synthetic"]
                note += (f", apart by less than the tolerance: real {span(real)}, synthetic "
                         f"{span(synthetic)}")
            aucs.append(note)
        if leaks:
            return CheckResult(name, False, "; ".join(leaks))
        return CheckResult(name, True, "no separation (" + "; ".join(aucs) + ")")

    def file_names(self) -> CheckResult:
        """Names: exactly the listed cases, one random-id pattern, no order information."""
        name = "file names"
        expected = {f"{c}{CASE_SUFFIX}" for c in self.study.case_ids}
        present = set(os.listdir(self.study.cases_dir))
        if present != expected:
            odd = sorted(present ^ expected)
            return CheckResult(name, False, f"the cases folder and study.json disagree about "
                                            f"{len(odd)} files, e.g. {odd[0]}")
        lengths = {len(c) for c in self.study.case_ids}
        if len(lengths) != 1 or not all(CASE_ID_PATTERN.match(c) for c in self.study.case_ids):
            return CheckResult(name, False, "case ids differ in length or pattern")
        feature = "alphabetical order of file names"
        result = self._separation_check(name, {feature: self.orders[feature]})
        if result.passed:
            return CheckResult(name, True, f"all {len(expected)} names are random hex ids of one "
                                           f"length; {result.reason}")
        return result

    def list_order(self) -> CheckResult:
        """The order of cases in study.json."""
        feature = "list position in study.json"
        return self._separation_check("list order", {feature: self.orders[feature]})

    def file_order(self) -> CheckResult:
        """Inode numbers (creation order) and the directory listing order."""
        features = ("inode number (creation order)", "directory listing order")
        return self._separation_check("file order", {f: self.orders[f] for f in features})

    def file_times(self) -> CheckResult:
        """One modification time for all; change-time order not separating."""
        mtimes = Counter(s.st_mtime_ns for s in self.stats.values())
        if len(mtimes) > 1:
            return CheckResult("modification times", False,
                               f"{len(mtimes)} different modification times among the cases")
        feature = "change time (ctime)"
        result = self._separation_check("modification times", {feature: self.orders[feature]})
        if result.passed:
            return CheckResult(result.name, True,
                               f"one modification time for all cases; {result.reason}")
        return result

    def headers(self) -> CheckResult:
        """Every gzip and NIfTI header field identical."""
        problems = []
        gzip_headers = {c: s.gzip_header for c, s in self.stored.items()}
        common, odd = _majority(gzip_headers)
        if odd:
            problems.append(f"the gzip header (file name, time stamp or flags) of "
                            f"{_cases(len(odd))} differs from the others")
        nifti_headers = {c: s.nifti_header for c, s in self.stored.items()}
        common, odd = _majority(nifti_headers)
        if odd:
            fields = _differing_fields(common, [nifti_headers[c] for c in odd])
            problems.append(f"the NIfTI header of {_cases(len(odd))} differs from the others "
                            f"in {', '.join(fields)}")
        if problems:
            return CheckResult("header fields", False, "; ".join(problems))
        return CheckResult("header fields", True, f"gzip and NIfTI headers are identical in all "
                                                  f"{len(self.stored)} cases")

    def dtypes(self) -> CheckResult:
        """One stored data type, int16."""
        found = Counter(str(s.dtype) for s in self.stored.values())
        expected = np.dtype(DATA_DTYPE).name
        if set(found) != {expected}:
            listing = ", ".join(f"{d} ({n} cases)" for d, n in sorted(found.items()))
            return CheckResult("dtype", False, f"expected {expected} everywhere, found {listing}")
        return CheckResult("dtype", True, f"all cases are {expected}")

    def distinct_values(self) -> CheckResult:
        """Distinct-value counts (e.g. 256 for an 8-bit source) not separating."""
        feature = "distinct values"
        counts = {c: float(s.distinct) for c, s in self.stored.items()}
        tolerance = CONTENT_TOLERANCE * max(counts.values())
        return self._separation_check("distinct values", {feature: counts}, {feature: tolerance})

    def value_range(self) -> CheckResult:
        """Per-case minimum and maximum not separating."""
        lows = {c: s.low for c, s in self.stored.items()}
        highs = {c: s.high for c, s in self.stored.items()}
        span = max(highs.values()) - min(lows.values())
        tolerance = CONTENT_TOLERANCE * span
        return self._separation_check("value range", {"minimum": lows, "maximum": highs},
                                      {"minimum": tolerance, "maximum": tolerance})

    def compressed_sizes(self) -> CheckResult:
        """File sizes (which follow image content) not separating."""
        sizes = {c: float(s.st_size) for c, s in self.stats.items()}
        result = self._separation_check("compressed size", {"file size": sizes})
        if result.passed and len(set(sizes.values())) == 1:
            return CheckResult(result.name, True,
                               f"every case file is {int(next(iter(sizes.values())))} bytes")
        return result

    def checks(self) -> list[Callable[[], CheckResult]]:
        """The checks, in the order they are printed."""
        return [self.file_names, self.list_order, self.file_order, self.file_times, self.headers,
                self.dtypes, self.distinct_values, self.value_range, self.compressed_sizes]


def _cases(count: int) -> str:
    """'1 case' or 'N cases'."""
    return f"{count} case" if count == 1 else f"{count} cases"


def _majority(values: dict[str, bytes]) -> tuple[bytes, list[str]]:
    """The most common value and the cases that do not have it."""
    common = Counter(values.values()).most_common(1)[0][0]
    return common, [c for c, v in values.items() if v != common]


def _differing_fields(reference: bytes, others: list[bytes]) -> list[str]:
    """Names of the NIfTI header fields (or extensions) that differ from `reference`."""
    def fields(block: bytes) -> dict[str, bytes]:
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(block))
        found = {key: header[key].tobytes() for key in header.keys()}
        found["extensions"] = block[nib.Nifti1Header.sizeof_hdr:]
        return found

    first = fields(reference)
    differing: set[str] = set()
    for block in others:
        try:
            other = fields(block)
        except Exception:  # an unparsable header differs as a whole, whatever the reason
            differing.add("whole header")
            continue
        differing.update(k for k in first if first[k] != other.get(k))
    return sorted(differing)


def audit_study(study: Study, key: dict[str, KeyEntry]) -> list[CheckResult]:
    """Run every check on an opened study with its key."""
    audit = _Audit(study, key)
    return [check() for check in audit.checks()]


def audit_folder(folder: str | Path, key_path: str | Path) -> list[CheckResult]:
    """Open a study and its key, check they belong together, and run every check."""
    study = Study.open(folder)
    key = read_key(key_path)
    check_key_matches(key, study.case_ids, Path(key_path), study.folder)
    return audit_study(study, key)


def audit_report(folder: str | Path, results: list[CheckResult]) -> dict:
    """The audit as one JSON-ready object: the study, whether it passed, and every check."""
    return {"study": str(folder), "passed": all(r.passed for r in results),
            "checks": [{"name": r.name, "passed": r.passed, "reason": r.reason}
                       for r in results]}


def audit_text(results: list[CheckResult]) -> str:
    """The audit for the terminal: one PASS/FAIL line per check, then the verdict."""
    lines = [f"{'PASS' if r.passed else 'FAIL'}  {r.name}: {r.reason}" for r in results]
    failed = sum(not r.passed for r in results)
    lines.append("Audit passed: nothing checked separates real from synthetic cases." if not failed
                 else f"Audit failed: {failed} of {len(results)} checks can tell real from "
                      "synthetic cases.")
    return "\n".join(lines)
