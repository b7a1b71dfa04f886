"""The visual Turing test from an unblinded export: can readers tell real from synthetic cases?

Per dataset, per reader and pooled over readers: accuracy of the real/synthetic answer with an
exact binomial test against 50%, sensitivity (synthetic called synthetic) and specificity (real
called real) with exact 95% intervals, and ROC AUC of spotting synthetic cases using the realism
answer as confidence (lower realism = more likely synthetic) and, when the study asked it, the
Turing confidence signed by the answer. Per Table 1 question, real and synthetic scores (A-D as
1-4, readers pooled) are compared by a two-sided Mann-Whitney U test, Holm-corrected over the
questions of a dataset. Pooled figures treat every reader's answer as one observation.

Ratings a reader flagged "image cannot be assessed" (and practice cases, in an export that
includes them) are left out, and the report says how many. Statistics that cannot be computed (no
answers, one class only) are `None` with a `reason`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
from scipy.stats import binomtest, mannwhitneyu
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from evaluation.ratings_csv import (
    CATEGORIES,
    CATEGORY_TITLES,
    LeftOut,
    load_ratings,
    reader_label,
    split_left_out,
)
from evaluation.results import JsonResult

TURING_COLUMNS: tuple[str, ...] = ("source", "real_or_synthetic")
REALISM = "realistic_appearance"


@dataclass(frozen=True)
class Proportion(JsonResult):
    """k of n as a share with its exact 95% interval; None (with a reason) when n = 0."""

    value: float | None
    k: int
    n: int
    ci_low: float | None
    ci_high: float | None
    reason: str | None = None


@dataclass(frozen=True)
class Accuracy(Proportion):
    """The share of correct real/synthetic answers and its binomial test against 50%."""

    p_value: float | None = None


@dataclass(frozen=True)
class RocAuc(JsonResult):
    """ROC AUC of spotting synthetic cases; None (with a reason) with one class only."""

    auc: float | None
    n_real: int
    n_synthetic: int
    reason: str | None = None


@dataclass(frozen=True)
class Detection(JsonResult):
    """How well one reader (or all pooled) told real from synthetic cases."""

    accuracy: Accuracy
    sensitivity: Proportion  # synthetic called synthetic
    specificity: Proportion  # real called real
    auc_realism: RocAuc
    auc_confidence: RocAuc


@dataclass(frozen=True)
class RealismTest(JsonResult):
    """Real vs synthetic scores of one Table 1 question: Mann-Whitney U, Holm-corrected p."""

    n_real: int
    n_synthetic: int
    median_real: float | None
    median_synthetic: float | None
    u: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class DatasetTuring(JsonResult):
    """The Turing test of one dataset: cases per source, per reader, pooled, per question."""

    n_cases: dict[str, int]  # "real", "synthetic"
    left_out: LeftOut
    readers: dict[str, Detection]
    pooled: Detection
    realism: dict[str, RealismTest]


@dataclass(frozen=True)
class TuringReport(JsonResult):
    """`mdiff-eval turing`'s report: the export files read and each dataset's test."""

    files: tuple[str, ...]
    datasets: dict[str, DatasetTuring]


def proportion(k: int, n: int, nothing: str) -> Proportion:
    """k of n as a share with its exact (Clopper-Pearson) 95% interval; `nothing` says why n = 0."""
    if n == 0:
        return Proportion(None, 0, 0, None, None, nothing)
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return Proportion(k / n, int(k), int(n), float(ci.low), float(ci.high))


def accuracy(called: np.ndarray, truth: np.ndarray) -> Accuracy:
    """Share of correct real/synthetic answers, with a two-sided exact binomial test against 50%."""
    k, n = int(np.sum(called == truth)), int(truth.size)
    share = proportion(k, n, "no case has a real/synthetic answer")
    p_value = float(binomtest(k, n, 0.5).pvalue) if n else None
    return Accuracy(**asdict(share), p_value=p_value)


def roc_auc(is_synthetic: np.ndarray, score: np.ndarray) -> RocAuc:
    """ROC AUC of `score` (higher = more likely synthetic) for spotting synthetic cases."""
    n_synthetic = int(is_synthetic.sum())
    n_real = int(is_synthetic.size - n_synthetic)
    if n_real == 0 or n_synthetic == 0:
        missing = "real" if n_real == 0 else "synthetic"
        return RocAuc(None, n_real, n_synthetic, f"there are no {missing} cases with an answer, "
                      "so the ROC curve is undefined")
    return RocAuc(float(roc_auc_score(is_synthetic, score)), n_real, n_synthetic)


def detection(rows: pd.DataFrame) -> Detection:
    """Accuracy, sensitivity, specificity and ROC AUCs of one reader's (or the pooled) answers."""
    answered = rows[rows["real_or_synthetic"].notna()]
    called = answered["real_or_synthetic"].to_numpy(dtype=str)
    truth = answered["source"].to_numpy(dtype=str)
    synthetic, real = truth == "synthetic", truth == "real"
    rated = rows[rows[REALISM].notna()]
    # Lower realism means the reader found the case less real, i.e. more likely synthetic.
    auc_realism = roc_auc(rated["source"].to_numpy(dtype=str) == "synthetic",
                          -rated[REALISM].to_numpy(dtype=float))
    if "confidence" in rows.columns:
        sure = answered[answered["confidence"].notna()]
        sign = np.where(sure["real_or_synthetic"].to_numpy(dtype=str) == "synthetic", 1.0, -1.0)
        auc_confidence = roc_auc(sure["source"].to_numpy(dtype=str) == "synthetic",
                                 sign * sure["confidence"].to_numpy(dtype=float))
    else:
        auc_confidence = RocAuc(None, 0, 0, "the export has no `confidence` column")
    return Detection(
        accuracy=accuracy(called, truth),
        sensitivity=proportion(int(np.sum(called[synthetic] == "synthetic")),
                               int(synthetic.sum()), "no synthetic case has an answer"),
        specificity=proportion(int(np.sum(called[real] == "real")), int(real.sum()),
                               "no real case has an answer"),
        auc_realism=auc_realism, auc_confidence=auc_confidence)


def realism_test(rows: pd.DataFrame, category: str) -> RealismTest:
    """Mann-Whitney U of real vs synthetic scores of one Table 1 question, before Holm."""
    rated = rows[rows[category].notna()]
    real = rated.loc[rated["source"] == "real", category].to_numpy(dtype=float)
    synthetic = rated.loc[rated["source"] == "synthetic", category].to_numpy(dtype=float)
    sizes = (int(real.size), int(synthetic.size),
             float(np.median(real)) if real.size else None,
             float(np.median(synthetic)) if synthetic.size else None)
    if real.size == 0 or synthetic.size == 0:
        missing = "real" if real.size == 0 else "synthetic"
        return RealismTest(*sizes, reason=f"no {missing} case has an answer to this question")
    result = mannwhitneyu(real, synthetic, alternative="two-sided")
    return RealismTest(*sizes, u=float(result.statistic), p_value=float(result.pvalue))


def realism_comparison(rows: pd.DataFrame) -> dict[str, RealismTest]:
    """Mann-Whitney U of real vs synthetic scores per Table 1 question, Holm-corrected."""
    tests = {category: realism_test(rows, category) for category in CATEGORIES}
    done = [c for c in CATEGORIES if tests[c].p_value is not None]
    if done:
        corrected = multipletests([tests[c].p_value for c in done], method="holm")[1]
        for category, p in zip(done, corrected, strict=True):
            tests[category] = replace(tests[category], p_holm=float(p))
    return tests


def dataset_turing(given: pd.DataFrame) -> DatasetTuring:
    """The Turing test of one dataset's validated, unblinded ratings."""
    rows, left_out = split_left_out(given)
    cases = rows[["study_id", "case_id", "source"]].drop_duplicates()
    return DatasetTuring(
        n_cases={s: int(np.sum(cases["source"] == s)) for s in ("real", "synthetic")},
        left_out=left_out,
        readers={str(r): detection(g) for r, g in rows.groupby("reader", sort=True)},
        pooled=detection(rows), realism=realism_comparison(rows))


def turing_report(ratings: pd.DataFrame) -> TuringReport:
    """The visual Turing test of validated, unblinded ratings (see `load_ratings`)."""
    missing = [c for c in TURING_COLUMNS if c not in ratings.columns]
    if missing:
        raise ValueError(f"the ratings lack the column(s) {missing}; load an unblinded export")
    datasets = {str(dataset): dataset_turing(given)
                for dataset, given in ratings.groupby("dataset", sort=True)}
    return TuringReport(tuple(sorted(set(ratings["file"]))), datasets)


def turing_from_exports(paths: Sequence[str | os.PathLike]) -> TuringReport:
    """The Turing test report of unblinded export CSVs; EvalError for a bad or blinded file."""
    return turing_report(load_ratings(paths, require=TURING_COLUMNS))


def _share(stat: Proportion) -> str:
    """A share in percent with its count and interval, or why it has none."""
    if stat.value is None:
        return f"undefined ({stat.reason})"
    return (f"{100 * stat.value:.1f}% ({stat.k}/{stat.n}, 95% CI "
            f"{100 * stat.ci_low:.1f}-{100 * stat.ci_high:.1f}%)")


def _auc(stat: RocAuc) -> str:
    """An AUC, or why it has none."""
    return f"undefined ({stat.reason})" if stat.auc is None else f"{stat.auc:.2f}"


def _detection_lines(name: str, stats: Detection) -> list[str]:
    """How well one reader (or all pooled) told real from synthetic."""
    accuracy = stats.accuracy
    p_text = "" if accuracy.p_value is None else f", binomial p = {accuracy.p_value:.3g}"
    return [
        f"  {name}: accuracy {_share(accuracy)}{p_text} against 50%",
        f"    sensitivity (synthetic called synthetic) {_share(stats.sensitivity)}",
        f"    specificity (real called real) {_share(stats.specificity)}",
        f"    ROC AUC, realism as confidence: {_auc(stats.auc_realism)}; "
        f"Turing confidence: {_auc(stats.auc_confidence)}",
    ]


def turing_text(report: TuringReport) -> str:
    """The Turing test report as text."""
    lines: list[str] = []
    for dataset, summary in report.datasets.items():
        n = summary.n_cases
        lines.append(f"Dataset {dataset}: {n['real']} real and {n['synthetic']} synthetic cases; "
                     f"{summary.left_out.text()}")
        for reader, stats in summary.readers.items():
            lines.extend(_detection_lines(reader_label(reader), stats))
        lines.extend(_detection_lines("All readers pooled", summary.pooled))
        lines.append("  Real vs synthetic scores (Mann-Whitney U, Holm-corrected):")
        for question, test in summary.realism.items():
            title = CATEGORY_TITLES[question]
            if test.p_value is None:
                lines.append(f"    {title}: undefined ({test.reason})")
            else:
                lines.append(f"    {title}: median real {test.median_real:g} vs synthetic "
                             f"{test.median_synthetic:g} (A=1 ... D=4), U = {test.u:g}, "
                             f"p = {test.p_value:.3g}, Holm p = {test.p_holm:.3g}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
