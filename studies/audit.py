"""Audit a study's blinding with its key: can anything but the image tell real from synthetic?

An adversary without the key and without looking at any image could still measure each case
file (`studies.case_features`): its size, gzip members, header bytes, times and orders, and the
set of values it holds. The audit measures the same, and for every feature tests whether it
separates the real cases from the synthetic ones (`studies.blinding`: AUC with a permutation
p-value; file-level features fail on any separation, value-set features on a near-perfect one).
Headers, the data type and the modification time must also be the same in every case. The case
folder must hold exactly the listed cases, named by random ids of one pattern. A study with a
practice block is checked for any way its practice truth could reach a study case
(`studies.practice_audit`: the practice files, their sources, their content, and the pairing of
study cases with labelled practice cases, a value-set feature of the table). A paired (2AFC)
study's case files are audited as a single-reading study's, and its trials besides
(`studies.trial_audit`: each a real and a synthetic case, the synthetic side balanced and told by
no order).

The result is a table, one row per feature, printed by `mdiff-study audit`; under it, for each
failure, what the feature measures, what typically causes it and where to read more
(`studies.audit_advice`).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studies.audit_advice import advice_for
from studies.blinding import VALUES, CheckResult, FeatureTest, SourceTest, listed_files_failure
from studies.case_features import Feature, study_features
from studies.key import KeyEntry, read_study_key
from studies.practice_audit import practice_audit
from studies.study import CASE_ID_PATTERN, Study
from studies.trial_audit import trial_audit


@dataclass(frozen=True)
class Audit:
    """Everything the audit found: the checks, and one test per feature."""

    study: str
    n_real: int
    n_synthetic: int
    checks: tuple[CheckResult, ...]
    features: tuple[FeatureTest, ...]
    n_practice: int = 0

    @property
    def passed(self) -> bool:
        """Whether every check and every feature passed."""
        return all(c.passed for c in self.checks) and all(f.passed for f in self.features)

    def feature(self, name: str) -> FeatureTest:
        """The test of the feature called `name`."""
        return next(f for f in self.features if f.name == name)

    @property
    def failures(self) -> list[str]:
        """One line per failed check or feature."""
        return ([f"{c.name}: {c.reason}" for c in self.checks if not c.passed]
                + [f"{f.name}: {f.reason}" for f in self.features if not f.passed])


def _test(tester: SourceTest, feature: Feature, family: int) -> FeatureTest:
    """A feature's test; a property that must be the same everywhere fails on any difference."""
    result = tester.test(feature.name, feature.kind, feature.values, family)
    variants = sorted(set(feature.values.values()))
    if feature.identical and len(variants) > 1:
        groups = sorted(_cases_of(Counter(tester.sources[c] for c, v in feature.values.items()
                                          if v == variant)) for variant in variants)
        reason = (f"must be the same in every case, but has {len(variants)} variants: one in "
                  + ", one in ".join(groups))
        return FeatureTest(result.name, result.kind, result.real, result.synthetic, result.auc,
                           result.p_value, False, reason)
    return result


def _cases_of(sources: Counter) -> str:
    """'1 real case', '5 real and 6 synthetic cases'."""
    parts = [f"{sources[s]} {s}" for s in ("real", "synthetic") if sources[s]]
    return " and ".join(parts) + (" case" if sum(sources.values()) == 1 else " cases")


def file_names(study: Study) -> CheckResult:
    """The case folder holds exactly the listed cases, named by random ids of one pattern."""
    name = "file names"
    failure = listed_files_failure(name, study.cases_dir, study.case_ids, study.case_suffix)
    if failure is not None:
        return failure
    lengths = {len(c) for c in study.case_ids}
    if len(lengths) != 1 or not all(CASE_ID_PATTERN.match(c) for c in study.case_ids):
        return CheckResult(name, False, "case ids differ in length or pattern")
    return CheckResult(name, True, f"all {len(study.case_ids)} files are listed in study.json and "
                                   "named by random hex ids of one length")


def audit_study(study: Study, key: dict[str, KeyEntry]) -> Audit:
    """Run the checks and every feature's test on an opened study with its key."""
    sources = {c: key[c].source for c in study.case_ids}
    tester = SourceTest(sources)
    checks = [file_names(study)]
    features = study_features(study)
    if study.design == "2afc":
        checks += trial_audit(study, key)
    if study.practice_ids:
        practice_checks, pairing = practice_audit(study, key, features)
        checks += practice_checks
        if pairing is not None:
            features.append(pairing)
    family = sum(feature.kind == VALUES for feature in features)
    tests = tuple(_test(tester, feature, family) for feature in features)
    return Audit(str(study.folder), tester.n_real, tester.n_synthetic, tuple(checks), tests,
                 len(study.practice_file_ids))


def audit_folder(folder: str | Path, key_path: str | Path) -> Audit:
    """Open a study and its key, check they belong together, and audit it."""
    study = Study.open(folder)
    return audit_study(study, read_study_key(study, key_path))


def _summary(values: tuple[float, ...]) -> dict | None:
    """Median and range of one group's values (None for an empty group)."""
    if not values:
        return None
    return {"median": float(np.median(values)), "min": min(values), "max": max(values)}


def audit_report(audit: Audit) -> dict:
    """The audit as one JSON-ready object: the study, the verdict, the checks, every feature."""
    return {
        "study": audit.study, "passed": audit.passed,
        "n_real": audit.n_real, "n_synthetic": audit.n_synthetic, "n_practice": audit.n_practice,
        "checks": [{"name": c.name, "passed": c.passed, "reason": c.reason,
                    "advice": _advice(c.name, c.passed)} for c in audit.checks],
        "features": [{"name": f.name, "kind": f.kind, "auc": f.auc, "p_value": f.p_value,
                      "real": _summary(f.real), "synthetic": _summary(f.synthetic),
                      "passed": f.passed, "reason": f.reason,
                      "advice": _advice(f.name, f.passed)} for f in audit.features],
    }


def _advice(name: str, passed: bool) -> dict | None:
    """A failure's advice for the JSON (what it measures, typical cause, where to read);
    None for a pass."""
    advice = None if passed else advice_for(name)
    return None if advice is None else advice.as_dict()


def advice_lines(audit: Audit) -> list[str]:
    """One line per failed check or feature: what it measures, what typically causes the
    failure and where to read more."""
    failed = ([c.name for c in audit.checks if not c.passed]
              + [f.name for f in audit.features if not f.passed])
    return [advice.line(name) for name in failed if (advice := advice_for(name)) is not None]


def _number(value: float) -> str:
    """A value for the table: integers as such, others with four significant digits."""
    return f"{value:.0f}" if float(value).is_integer() and abs(value) < 1e15 else f"{value:.4g}"


def _group(values: tuple[float, ...]) -> str:
    """'median [min, max]' or the one value of a group."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    if low == high:
        return _number(low)
    return f"{_number(float(np.median(values)))} [{_number(low)}, {_number(high)}]"


def audit_text(audit: Audit) -> str:
    """The audit for the terminal: the checks, the table of features, then the verdict."""
    practice = f" (and {audit.n_practice} practice cases)" if audit.n_practice else ""
    lines = [f"Audit of {audit.study}: {audit.n_real} real and {audit.n_synthetic} synthetic "
             f"cases{practice}."]
    lines += [f"{'PASS' if c.passed else 'FAIL'}  {c.name}: {c.reason}" for c in audit.checks]
    rows = [("", "feature", "kind", "real: median [range]", "synthetic: median [range]", "AUC",
             "p")]
    for f in audit.features:
        rows.append(("PASS" if f.passed else "FAIL", f.name, f.kind, _group(f.real),
                     _group(f.synthetic), "-" if f.auc is None else f"{f.auc:.2f}",
                     "-" if f.p_value is None else f"{f.p_value:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines.append("")
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip())
    lines.append("")
    failures = audit.failures
    if not failures:
        lines.append("Audit passed: no feature separates real from synthetic cases (file-level: "
                     "none separates at all; value sets: none near-perfectly).")
    else:
        lines += [f"FAIL  {line}" for line in failures]
        advice = advice_lines(audit)
        if advice:
            lines += ["", "What to do:"]
            lines += [textwrap.fill(line, width=100, initial_indent="  ",
                                    subsequent_indent="      ", break_on_hyphens=False)
                      for line in advice]
            lines.append("")
        total = len(audit.checks) + len(audit.features)
        lines.append(f"Audit failed: {len(failures)} of {total} checks and features can tell "
                     "real from synthetic cases.")
    return "\n".join(lines)
