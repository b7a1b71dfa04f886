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
    left_out_text,
    load_ratings,
    reader_label,
    split_left_out,
)

KAPPA_WEIGHTINGS: tuple[str, ...] = ("linear", "quadratic")
C_SCORE = 3  # "C or better" in the paper's counts: options C and D
MIN_KAPPA_VARIANCE = 1e-12  # below this, statsmodels' variance is a rounded zero


def option_counts(scores: np.ndarray) -> dict:
    """The paper's count for one reader and question: cases rated C or better, and per option."""
    answered = scores[~np.isnan(scores)]
    per_option = {letter: int(np.sum(answered == s)) for letter, s in zip(LETTERS, SCORES,
                                                                           strict=True)}
    return {"c_or_better": int(np.sum(answered >= C_SCORE)), "total": int(answered.size),
            "options": per_option}


def contingency_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """4x4 table of two readers' scores (rows: first reader), all options A-D kept."""
    table = np.zeros((len(SCORES), len(SCORES)), dtype=float)
    np.add.at(table, (a.astype(int) - 1, b.astype(int) - 1), 1)
    return table


def percent_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """Share of shared cases (in percent) where both readers chose the same option."""
    if a.size == 0:
        return {"percent": None, "n_cases": 0, "reason": "the readers rated no case in common"}
    return {"percent": float(100.0 * np.mean(a == b)), "n_cases": int(a.size)}


def weighted_kappa(a: np.ndarray, b: np.ndarray, weighting: str) -> dict:
    """Weighted Cohen's kappa ('linear' or 'quadratic') of two readers with its 95% interval."""
    if weighting not in KAPPA_WEIGHTINGS:
        raise ValueError(f"weighting must be one of {KAPPA_WEIGHTINGS}, not {weighting!r}")
    null = {"kappa": None, "ci_low": None, "ci_high": None, "n_cases": int(a.size)}
    if a.size < 2:
        return {**null,
                "reason": f"the readers share {a.size} rated case(s); kappa needs at least 2"}
    if np.unique(np.concatenate([a, b])).size == 1:
        # Both readers always gave the same single option: chance agreement is 1, kappa is 0/0.
        letter = LETTERS[int(a[0]) - 1]
        return {**null, "reason": f"both readers answered {letter} for every shared case, so "
                                  "there is no expected disagreement"}
    # statsmodels also derives a z test from the variance under kappa = 0, which is 0/0 when one
    # reader gives a single answer; that test is not reported, so its warning is silenced.
    with np.errstate(divide="ignore", invalid="ignore"):
        result = cohens_kappa(contingency_table(a, b), wt=weighting)
    kappa = float(result.kappa)
    if not (np.isfinite(result.var_kappa) and result.var_kappa > MIN_KAPPA_VARIANCE):
        # A zero variance (e.g. one reader always gives the same answer, or kappa is exactly
        # +-1) would make a zero-width interval that claims certainty the data do not give.
        return {**null, "kappa": kappa,
                "reason": "the asymptotic variance of kappa is zero or undefined for these "
                          "ratings, so there is no confidence interval"}
    # statsmodels' interval is Wald (kappa +- 1.96 sd); kappa lives in [-1, 1], so clip it there.
    return {"kappa": kappa, "ci_low": float(max(result.kappa_low, -1.0)),
            "ci_high": float(min(result.kappa_upp, 1.0)), "n_cases": int(a.size)}


def fleiss(complete: np.ndarray) -> dict:
    """Fleiss' kappa of a (cases, readers) score matrix in which every reader rated every case."""
    n_cases, n_readers = complete.shape
    null = {"kappa": None, "n_cases": int(n_cases), "n_readers": int(n_readers)}
    if n_readers < 2:
        return {**null, "reason": "Fleiss' kappa needs at least two readers"}
    if n_cases < 2:
        return {**null, "reason": f"{n_cases} case(s) were rated by all {n_readers} readers; "
                                  "Fleiss' kappa needs at least 2"}
    if np.unique(complete).size == 1:
        letter = LETTERS[int(complete.flat[0]) - 1]
        return {**null, "reason": f"every reader answered {letter} for every case, so there is "
                                  "no expected disagreement"}
    counts, _ = aggregate_raters(complete.astype(int) - 1, n_cat=len(SCORES))
    return {**null, "kappa": float(fleiss_kappa(counts, method="fleiss"))}


def krippendorff_ordinal(by_reader: np.ndarray) -> dict:
    """Krippendorff's alpha (ordinal) of a (readers, cases) score matrix, NaN where unrated."""
    pairable = np.sum(~np.isnan(by_reader), axis=0) >= 2
    null = {"alpha": None, "n_cases": int(pairable.sum())}
    if by_reader.shape[0] < 2:
        return {**null, "reason": "Krippendorff's alpha needs at least two readers"}
    if not pairable.any():
        return {**null, "reason": "no case was rated by two or more readers"}
    values = by_reader[:, pairable]
    values = values[~np.isnan(values)]
    if np.unique(values).size == 1:
        letter = LETTERS[int(values[0]) - 1]
        return {**null, "reason": f"every answer is {letter}, so there is no expected "
                                  "disagreement"}
    alpha = krippendorff.alpha(reliability_data=by_reader, level_of_measurement="ordinal",
                               value_domain=list(SCORES))
    return {**null, "alpha": float(alpha)}


def score_matrix(rows: pd.DataFrame, category: str) -> pd.DataFrame:
    """Scores of one question as a (case, reader) frame, cases keyed by (study_id, case_id)."""
    matrix = rows.pivot(index=["study_id", "case_id"], columns="reader", values=category)
    return matrix.reindex(columns=sorted(matrix.columns))


def category_agreement(matrix: pd.DataFrame) -> dict:
    """Counts per reader and every agreement statistic for one (case, reader) score matrix."""
    readers = list(matrix.columns)
    counts = {r: option_counts(matrix[r].to_numpy(dtype=float)) for r in readers}
    pairs = []
    for first, second in combinations(readers, 2):
        shared = matrix[[first, second]].dropna()
        a = shared[first].to_numpy(dtype=float)
        b = shared[second].to_numpy(dtype=float)
        pair = {"readers": [first, second], "n_shared": int(len(shared)),
                "percent_agreement": percent_agreement(a, b)}
        for weighting in KAPPA_WEIGHTINGS:
            pair[f"kappa_{weighting}"] = weighted_kappa(a, b, weighting)
        pairs.append(pair)
    complete = matrix.dropna().to_numpy(dtype=float)
    return {
        "counts": counts,
        "pairs": pairs,
        "fleiss": fleiss(complete),
        "krippendorff": krippendorff_ordinal(matrix.to_numpy(dtype=float).T),
    }


def analysed_cases(rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows the statistics use: synthetic cases when the key is known, else all ('all')."""
    if "source" in rows.columns and rows["source"].notna().all():
        return rows[rows["source"] == "synthetic"], "synthetic"
    return rows, "all"


def agreement_report(ratings: pd.DataFrame) -> dict:
    """The agreement analysis of validated ratings (see `load_ratings`) as a JSON-able dict."""
    datasets = {}
    totals: dict[str, dict[str, dict[str, int]]] = {c: {} for c in CATEGORIES}
    for dataset, given in ratings.groupby("dataset", sort=True):
        rows, left_out = split_left_out(given)
        chosen, cases = analysed_cases(rows)
        readers = sorted(given["reader"].unique())
        categories = {}
        for category in CATEGORIES:
            # Readers without any analysed case still appear, with 0/0 counts.
            matrix = score_matrix(chosen, category).reindex(columns=readers)
            categories[category] = category_agreement(matrix)
            for reader, count in categories[category]["counts"].items():
                total = totals[category].setdefault(reader, {"c_or_better": 0, "total": 0})
                total["c_or_better"] += count["c_or_better"]
                total["total"] += count["total"]
        datasets[str(dataset)] = {
            "cases": cases,
            "n_cases": int(chosen[["study_id", "case_id"]].drop_duplicates().shape[0]),
            "left_out": left_out,
            "readers": readers,
            "categories": categories,
        }
    return {
        "files": sorted(set(ratings["file"])),
        "datasets": datasets,
        "all_datasets": {c: dict(sorted(totals[c].items())) for c in CATEGORIES},
    }


def agreement_from_exports(paths: Sequence[str | os.PathLike], *,
                           figure: str | os.PathLike | None = None,
                           force: bool = False) -> dict:
    """The agreement report of export CSVs; with `figure`, also the paper's Figure 2 as PNG.

    The report's "figure" is the PNG's path, or None. EvalError for a bad file or figure path;
    OutputPathError for a figure path that is one of the CSVs, lies in a study, or exists
    without `force` (`diffusion_core.outputs`).
    """
    figure = None if figure is None else Path(figure)
    if figure is not None:
        from evaluation.slice_panels import check_figure_path

        # Before any statistics, so a typo in the path costs nothing.
        check_figure_path(figure, inputs=[("CSV", path) for path in paths], force=force)
    report = agreement_report(load_ratings(paths))
    report["figure"] = None
    if figure is not None:
        from evaluation.figures import save_figure2

        save_figure2(report, figure)
        report["figure"] = str(figure)
    return report


def _kappa(stat: dict) -> str:
    """A kappa with its interval, or why it has none."""
    if stat["kappa"] is None:
        return f"undefined ({stat['reason']})"
    if stat["ci_low"] is None:
        return f"{stat['kappa']:.2f} (no interval: {stat['reason']})"
    return f"{stat['kappa']:.2f} (95% CI {stat['ci_low']:.2f} to {stat['ci_high']:.2f})"


def _category_lines(title: str, stats: dict) -> list[str]:
    """The pairwise and all-reader agreement of one question."""
    lines = [f"  {title.capitalize()}, agreement:"]
    for pair in stats["pairs"]:
        first, second = pair["readers"]
        agree = pair["percent_agreement"]
        agree_text = (f"agreement {agree['percent']:.1f}%" if agree["percent"] is not None
                      else f"agreement undefined ({agree['reason']})")
        lines.append(f"    {reader_label(first)} and {reader_label(second)}: "
                     f"{pair['n_shared']} shared cases, {agree_text}")
        lines.append(f"      weighted kappa, linear: {_kappa(pair['kappa_linear'])}")
        lines.append(f"      weighted kappa, quadratic: {_kappa(pair['kappa_quadratic'])}")
    fleiss = stats["fleiss"]
    if fleiss["kappa"] is None:
        lines.append(f"    Fleiss' kappa: undefined ({fleiss['reason']})")
    else:
        everyone = "both" if fleiss["n_readers"] == 2 else f"all {fleiss['n_readers']}"
        lines.append(f"    Fleiss' kappa: {fleiss['kappa']:.2f} over the {fleiss['n_cases']} "
                     f"cases rated by {everyone} readers")
    alpha = stats["krippendorff"]
    if alpha["alpha"] is None:
        lines.append(f"    Krippendorff's alpha (ordinal): undefined ({alpha['reason']})")
    else:
        lines.append(f"    Krippendorff's alpha (ordinal): {alpha['alpha']:.2f} over "
                     f"{alpha['n_cases']} cases rated by two or more readers")
    return lines


def agreement_text(report: dict) -> str:
    """The agreement report as text, with the paper-style counts first in each dataset."""
    lines: list[str] = []
    for dataset, summary in report["datasets"].items():
        if summary["cases"] == "synthetic":
            scope = f"{summary['n_cases']} synthetic cases (the export has the key; real left out)"
        else:
            scope = f"{summary['n_cases']} cases (no key: real and synthetic not told apart)"
        lines.append(f"Dataset {dataset}: {scope}; {len(summary['readers'])} readers; "
                     f"{left_out_text(summary['left_out'])}")
        for category in CATEGORIES:
            for reader, count in summary["categories"][category]["counts"].items():
                lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                             f"better {count['c_or_better']}/{count['total']}")
        for category in CATEGORIES:
            lines.extend(_category_lines(CATEGORY_TITLES[category],
                                         summary["categories"][category]))
        lines.append("")
    if len(report["datasets"]) > 1:
        lines.append("All datasets:")
        for category in CATEGORIES:
            for reader, total in report["all_datasets"][category].items():
                parts = ", ".join(
                    f"{d} {s['categories'][category]['counts'][reader]['c_or_better']}/"
                    f"{s['categories'][category]['counts'][reader]['total']}"
                    for d, s in report["datasets"].items()
                    if reader in s["categories"][category]["counts"])
                lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                             f"better {total['c_or_better']}/{total['total']} ({parts})")
        lines.append("")
    if report["figure"]:
        lines.append(f"Figure 2 written to {report['figure']}")
    return "\n".join(lines).rstrip("\n")

