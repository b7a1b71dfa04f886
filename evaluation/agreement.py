"""Reader agreement on the Table 1 questions, per dataset and category.

The paper's counts ("rated C or better: 189/200") per reader, percent agreement and weighted
Cohen's kappa (linear, quadratic; 95% interval) per reader pair, Fleiss' kappa over the cases every
reader rated, and Krippendorff's alpha (ordinal) over all cases. The formulas are statsmodels' and
the `krippendorff` package's; this module only arranges the ratings for them and decides when a
statistic is undefined, which it reports as `None` with a `reason` instead of NaN or an error.

Cases are identified by `(study_id, case_id)`, so several exports of one dataset (sites, studies)
can be given together. Ratings a reader flagged "image cannot be assessed" (and practice cases,
in an export that includes them) are left out, and the report says how many. With the key
(`source` column), only synthetic cases are analysed, as in the paper, whose readers rated
synthetic images only; the real-vs-synthetic comparison is `turing`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from evaluation.ratings_csv import (
    CATEGORIES,
    CATEGORY_TITLES,
    LETTERS,
    SCORES,
    LeftOut,
    load_ratings,
    reader_label,
    split_left_out,
)
from evaluation.results import JsonResult

KAPPA_WEIGHTINGS: tuple[str, ...] = ("linear", "quadratic")
C_SCORE = 3  # "C or better" in the paper's counts: options C and D
MIN_KAPPA_VARIANCE = 1e-12  # below this, statsmodels' variance is a rounded zero


@dataclass(frozen=True)
class Tally(JsonResult):
    """A reader's cases rated C or better, of those answered."""

    c_or_better: int
    total: int


@dataclass(frozen=True)
class OptionCounts(JsonResult):
    """The paper's count for one reader and question, and the answers per option A-D."""

    c_or_better: int
    total: int
    options: dict[str, int]


@dataclass(frozen=True)
class PercentAgreement(JsonResult):
    """Share of shared cases (in percent) where two readers chose the same option."""

    percent: float | None
    n_cases: int
    reason: str | None = None


@dataclass(frozen=True)
class Kappa(JsonResult):
    """A weighted Cohen's kappa with its 95% interval; None (with a reason) where undefined."""

    kappa: float | None
    ci_low: float | None
    ci_high: float | None
    n_cases: int
    reason: str | None = None


@dataclass(frozen=True)
class FleissKappa(JsonResult):
    """Fleiss' kappa over the cases every reader rated."""

    kappa: float | None
    n_cases: int
    n_readers: int
    reason: str | None = None


@dataclass(frozen=True)
class KrippendorffAlpha(JsonResult):
    """Krippendorff's alpha (ordinal) over the cases two or more readers rated."""

    alpha: float | None
    n_cases: int
    reason: str | None = None


@dataclass(frozen=True)
class PairAgreement(JsonResult):
    """Agreement of two readers on the cases both rated."""

    readers: tuple[str, str]
    n_shared: int
    percent_agreement: PercentAgreement
    kappa_linear: Kappa
    kappa_quadratic: Kappa


@dataclass(frozen=True)
class CategoryAgreement(JsonResult):
    """Counts per reader and every agreement statistic of one question."""

    counts: dict[str, OptionCounts]
    pairs: tuple[PairAgreement, ...]
    fleiss: FleissKappa
    krippendorff: KrippendorffAlpha


@dataclass(frozen=True)
class DatasetAgreement(JsonResult):
    """The agreement analysis of one dataset; `cases` is "synthetic" (with the key) or "all"."""

    cases: str
    n_cases: int
    left_out: LeftOut
    readers: tuple[str, ...]
    categories: dict[str, CategoryAgreement]


@dataclass(frozen=True)
class AgreementReport(JsonResult):
    """`mdiff-eval agreement`'s report: per dataset, totals over datasets, the figure's path."""

    files: tuple[str, ...]
    datasets: dict[str, DatasetAgreement]
    all_datasets: dict[str, dict[str, Tally]]  # question -> reader -> counts over datasets
    figure: str | None = None


def option_counts(scores: np.ndarray) -> OptionCounts:
    """The paper's count for one reader and question: cases rated C or better, and per option."""
    answered = scores[~np.isnan(scores)]
    per_option = {letter: int(np.sum(answered == s)) for letter, s in zip(LETTERS, SCORES,
                                                                           strict=True)}
    return OptionCounts(int(np.sum(answered >= C_SCORE)), int(answered.size), per_option)


def contingency_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4x4 table of two readers' scores (rows: first reader), all options A-D kept."""
    table = np.zeros((len(SCORES), len(SCORES)), dtype=float)
    np.add.at(table, (a.astype(int) - 1, b.astype(int) - 1), 1)
    return table


def percent_agreement(a: np.ndarray, b: np.ndarray) -> PercentAgreement:
    """Share of shared cases (in percent) where both readers chose the same option."""
    if a.size == 0:
        return PercentAgreement(None, 0, "the readers rated no case in common")
    return PercentAgreement(float(100.0 * np.mean(a == b)), int(a.size))


def weighted_kappa(a: np.ndarray, b: np.ndarray, weighting: str) -> Kappa:
    """Weighted Cohen's kappa ('linear' or 'quadratic') of two readers with its 95% interval."""
    if weighting not in KAPPA_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {KAPPA_WEIGHTINGS}, not {weighting!r}")
    if a.size < 2:
        return Kappa(None, None, None, int(a.size),
                     f"the readers share {a.size} rated case(s); kappa needs at least 2")
    if np.unique(np.concatenate([a, b])).size == 1:
        # Both readers always gave the same single option: chance agreement is 1, kappa is 0/0.
        letter = LETTERS[int(a[0]) - 1]
        return Kappa(None, None, None, int(a.size), f"both readers answered {letter} for every "
                     "shared case, so there is no expected disagreement")
    # statsmodels also derives a z test from the variance under kappa = 0, which is 0/0 when one
    # reader gives a single answer; that test is not reported, so its warning is silenced.
    with np.errstate(divide="ignore", invalid="ignore"):
        result = cohens_kappa(contingency_table(a, b), wt=weighting)
    kappa = float(result.kappa)
    if not (np.isfinite(result.var_kappa) and result.var_kappa > MIN_KAPPA_VARIANCE):
        # A zero variance (e.g. one reader always gives the same answer, or kappa is exactly
        # +-1) would make a zero-width interval that claims certainty the data do not give.
        return Kappa(kappa, None, None, int(a.size), "the asymptotic variance of kappa is zero "
                     "or undefined for these ratings, so there is no confidence interval")
    # statsmodels' interval is Wald (kappa +- 1.96 sd); kappa lives in [-1, 1], so clip it there.
    return Kappa(kappa, float(max(result.kappa_low, -1.0)), float(min(result.kappa_upp, 1.0)),
                 int(a.size))


def fleiss(complete: np.ndarray) -> FleissKappa:
    """Fleiss' kappa of a (cases, readers) score matrix in which every reader rated every case."""
    n_cases, n_readers = (int(n) for n in complete.shape)
    if n_readers < 2:
        return FleissKappa(None, n_cases, n_readers, "Fleiss' kappa needs at least two readers")
    if n_cases < 2:
        return FleissKappa(None, n_cases, n_readers, f"{n_cases} case(s) were rated by all "
                           f"{n_readers} readers; Fleiss' kappa needs at least 2")
    if np.unique(complete).size == 1:
        letter = LETTERS[int(complete.flat[0]) - 1]
        return FleissKappa(None, n_cases, n_readers, f"every reader answered {letter} for every "
                           "case, so there is no expected disagreement")
    counts, _ = aggregate_raters(complete.astype(int) - 1, n_cat=len(SCORES))
    return FleissKappa(float(fleiss_kappa(counts, method="fleiss")), n_cases, n_readers)


def krippendorff_ordinal(by_reader: np.ndarray) -> KrippendorffAlpha:
    """Krippendorff's alpha (ordinal) of a (readers, cases) score matrix, NaN where unrated."""
    pairable = np.sum(~np.isnan(by_reader), axis=0) >= 2
    n_cases = int(pairable.sum())
    if by_reader.shape[0] < 2:
        return KrippendorffAlpha(None, n_cases, "Krippendorff's alpha needs at least two readers")
    if not pairable.any():
        return KrippendorffAlpha(None, n_cases, "no case was rated by two or more readers")
    values = by_reader[:, pairable]
    values = values[~np.isnan(values)]
    if np.unique(values).size == 1:
        letter = LETTERS[int(values[0]) - 1]
        return KrippendorffAlpha(None, n_cases, f"every answer is {letter}, so there is no "
                                 "expected disagreement")
    alpha = krippendorff.alpha(reliability_data=by_reader, level_of_measurement="ordinal",
                               value_domain=list(SCORES))
    return KrippendorffAlpha(float(alpha), n_cases)


def score_matrix(rows: pd.DataFrame, category: str) -> pd.DataFrame:
    """Scores of one question as a (case, reader) frame, cases keyed by (study_id, case_id)."""
    matrix = rows.pivot(index=["study_id", "case_id"], columns="reader", values=category)
    return matrix.reindex(columns=sorted(matrix.columns))


def category_agreement(matrix: pd.DataFrame) -> CategoryAgreement:
    """Counts per reader and every agreement statistic for one (case, reader) score matrix."""
    readers = list(matrix.columns)
    counts = {r: option_counts(matrix[r].to_numpy(dtype=float)) for r in readers}
    pairs = []
    for first, second in combinations(readers, 2):
        shared = matrix[[first, second]].dropna()
        a = shared[first].to_numpy(dtype=float)
        b = shared[second].to_numpy(dtype=float)
        pairs.append(PairAgreement((first, second), int(len(shared)), percent_agreement(a, b),
                                   *(weighted_kappa(a, b, w) for w in KAPPA_WEIGHTINGS)))
    complete = matrix.dropna().to_numpy(dtype=float)
    return CategoryAgreement(counts, tuple(pairs), fleiss(complete),
                             krippendorff_ordinal(matrix.to_numpy(dtype=float).T))


def analysed_cases(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows the statistics use: synthetic cases when the key is known, else all ('all')."""
    if "source" in rows.columns and rows["source"].notna().all():
        return rows[rows["source"] == "synthetic"], "synthetic"
    return rows, "all"


def dataset_agreement(given: pd.DataFrame) -> DatasetAgreement:
    """The agreement analysis of one dataset's validated ratings."""
    rows, left_out = split_left_out(given)
    chosen, cases = analysed_cases(rows)
    readers = sorted(given["reader"].unique())
    # Readers without any analysed case still appear, with 0/0 counts.
    categories = {c: category_agreement(score_matrix(chosen, c).reindex(columns=readers))
                  for c in CATEGORIES}
    n_cases = int(chosen[["study_id", "case_id"]].drop_duplicates().shape[0])
    return DatasetAgreement(cases, n_cases, left_out, tuple(readers), categories)


def agreement_report(ratings: pd.DataFrame) -> AgreementReport:
    """The agreement analysis of validated ratings (see `load_ratings`), without a figure."""
    datasets = {str(dataset): dataset_agreement(given)
                for dataset, given in ratings.groupby("dataset", sort=True)}
    totals: dict[str, dict[str, Tally]] = {}
    for category in CATEGORIES:
        sums: dict[str, tuple[int, int]] = {}
        for summary in datasets.values():
            for reader, count in summary.categories[category].counts.items():
                better, total = sums.get(reader, (0, 0))
                sums[reader] = (better + count.c_or_better, total + count.total)
        totals[category] = {reader: Tally(*sums[reader]) for reader in sorted(sums)}
    return AgreementReport(tuple(sorted(set(ratings["file"]))), datasets, totals)


def agreement_from_exports(paths: Sequence[str | os.PathLike], *,
                           figure: str | os.PathLike | None = None,
                           force: bool = False) -> AgreementReport:
    """The agreement report of export CSVs; with `figure`, also the paper's Figure 2 as PNG.

    The report's `figure` is the PNG's path, or None. EvalError for a bad file or figure path;
    OutputPathError for a figure path that is one of the CSVs, lies in a study, or exists
    without `force` (`diffusion_core.outputs`).
    """
    figure = None if figure is None else Path(figure)
    if figure is not None:
        from evaluation.slice_panels import check_figure_path

        # Before any statistics, so a typo in the path costs nothing.
        check_figure_path(figure, inputs=[("CSV", path) for path in paths], force=force)
    report = agreement_report(load_ratings(paths))
    if figure is None:
        return report
    from evaluation.figures import save_figure2

    save_figure2(report, figure)
    return replace(report, figure=str(figure))


def _kappa(stat: Kappa) -> str:
    """A kappa with its interval, or why it has none."""
    if stat.kappa is None:
        return f"undefined ({stat.reason})"
    if stat.ci_low is None:
        return f"{stat.kappa:.2f} (no interval: {stat.reason})"
    return f"{stat.kappa:.2f} (95% CI {stat.ci_low:.2f} to {stat.ci_high:.2f})"


def _category_lines(title: str, stats: CategoryAgreement) -> list[str]:
    """The pairwise and all-reader agreement of one question."""
    lines = [f"  {title.capitalize()}, agreement:"]
    for pair in stats.pairs:
        first, second = pair.readers
        agree = pair.percent_agreement
        agree_text = (f"agreement {agree.percent:.1f}%" if agree.percent is not None
                      else f"agreement undefined ({agree.reason})")
        lines.append(f"    {reader_label(first)} and {reader_label(second)}: "
                     f"{pair.n_shared} shared cases, {agree_text}")
        lines.append(f"      weighted kappa, linear: {_kappa(pair.kappa_linear)}")
        lines.append(f"      weighted kappa, quadratic: {_kappa(pair.kappa_quadratic)}")
    fleiss = stats.fleiss
    if fleiss.kappa is None:
        lines.append(f"    Fleiss' kappa: undefined ({fleiss.reason})")
    else:
        everyone = "both" if fleiss.n_readers == 2 else f"all {fleiss.n_readers}"
        lines.append(f"    Fleiss' kappa: {fleiss.kappa:.2f} over the {fleiss.n_cases} "
                     f"cases rated by {everyone} readers")
    alpha = stats.krippendorff
    if alpha.alpha is None:
        lines.append(f"    Krippendorff's alpha (ordinal): undefined ({alpha.reason})")
    else:
        lines.append(f"    Krippendorff's alpha (ordinal): {alpha.alpha:.2f} over "
                     f"{alpha.n_cases} cases rated by two or more readers")
    return lines


def _dataset_lines(dataset: str, summary: DatasetAgreement) -> list[str]:
    """One dataset's paper-style counts, then its agreement per question."""
    if summary.cases == "synthetic":
        scope = f"{summary.n_cases} synthetic cases (the export has the key; real left out)"
    else:
        scope = f"{summary.n_cases} cases (no key: real and synthetic not told apart)"
    lines = [f"Dataset {dataset}: {scope}; {len(summary.readers)} readers; "
             f"{summary.left_out.text()}"]
    for category in CATEGORIES:
        for reader, count in summary.categories[category].counts.items():
            lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                         f"better {count.c_or_better}/{count.total}")
    for category in CATEGORIES:
        lines.extend(_category_lines(CATEGORY_TITLES[category], summary.categories[category]))
    return lines


def agreement_text(report: AgreementReport) -> str:
    """The agreement report as text, with the paper-style counts first in each dataset."""
    lines: list[str] = []
    for dataset, summary in report.datasets.items():
        lines.extend(_dataset_lines(dataset, summary))
        lines.append("")
    if len(report.datasets) > 1:
        lines.append("All datasets:")
        for category in CATEGORIES:
            for reader, total in report.all_datasets[category].items():
                parts = ", ".join(
                    f"{d} {s.categories[category].counts[reader].c_or_better}/"
                    f"{s.categories[category].counts[reader].total}"
                    for d, s in report.datasets.items()
                    if reader in s.categories[category].counts)
                lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                             f"better {total.c_or_better}/{total.total} ({parts})")
        lines.append("")
    if report.figure:
        lines.append(f"Figure 2 written to {report.figure}")
    return "\n".join(lines).rstrip("\n")
