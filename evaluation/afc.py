"""Paired (2AFC) reading from an unblinded export: how often did readers pick the synthetic case?

Each trial showed a real and a synthetic volume side by side and the reader chose the synthetic
one. Per reader and pooled over readers (every reader's trial one observation):
- **proportion correct** Pc = k/n with its exact (Clopper-Pearson) 95% interval and the two-sided
  exact binomial test against 0.5 (chance). In 2AFC, Pc is criterion-free and equals the ROC AUC
  of the underlying decision variable;
- **d'** = sqrt(2) * Phi^-1(Pc), the separation of the real and synthetic distributions in
  standard deviations under the equal-variance Gaussian model. Pc = 1 or 0 would give an
  infinite d': it is computed from Pc = 1 - 1/(2n) or 1/(2n) instead (the usual half-trial
  correction), and the report says so (`corrected`);
- **side bias**: the share of trials answered "Left", with its exact interval and two-sided
  binomial test against 0.5 (every reader saw the synthetic case left in half the trials, give or
  take one, so an unbiased reader says Left about half the time);
- **confidence-weighted AUC**: each answer becomes a rating on an 8-step scale from "certain it is
  Right" to "certain it is Left": +confidence (1-4) for a Left choice, -confidence for a Right
  choice. Its ROC AUC for telling the trials with the synthetic case on the left from those with
  it on the right (ties counting one half) uses the confidence as a multi-threshold rating; with
  every confidence equal it is the mean of Pc over the two kinds of trial.
Between readers, on the trials both answered: the share choosing the same **case** (sides
differed between readers, so the case ids are compared, not the sides) and Cohen's kappa of
"chose the synthetic case" (equivalently, of the chosen case, the categories being each pair's
synthetic and real member); over the trials every reader answered, Fleiss' kappa.

Rows a reader flagged "not assessable", practice trials and trials without a choice (an export
with --include-partial) are left out and counted. A statistic that cannot be computed is None
with a `reason`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest, norm
from sklearn.metrics import roc_auc_score, roc_curve

from evaluation.ratings_csv import RatingsCsvError, _read_text_table, _reject, reader_label
from evaluation.results import JsonResult
from evaluation.turing import Accuracy, proportion
from studies.trial_export import ANSWER_COLUMNS, ID_COLUMNS
from studies.trials import SIDES

REQUIRED_COLUMNS: tuple[str, ...] = ID_COLUMNS + ANSWER_COLUMNS + ("synthetic_side", "correct")
CONFIDENCES: tuple[str, ...] = ("1", "2", "3", "4")
FLAGS: tuple[str, ...] = ("0", "1")


@dataclass(frozen=True)
class DPrime(JsonResult):
    """d' = sqrt(2) * Phi^-1(Pc) and the Pc it was computed from."""

    value: float | None
    pc_used: float | None
    corrected: bool  # Pc was 0 or 1 and was moved half a trial in
    reason: str | None = None


@dataclass(frozen=True)
class SideAuc(JsonResult):
    """The confidence-weighted ROC AUC of telling synthetic-left from synthetic-right trials."""

    auc: float | None
    n_synthetic_left: int
    n_synthetic_right: int
    # The ROC curve's points: (synthetic-right trials rated toward Left at or above a
    # threshold, synthetic-left trials so rated), from (0, 0) to (1, 1).
    roc: tuple[tuple[float, float], ...] = ()
    reason: str | None = None


@dataclass(frozen=True)
class AfcStats(JsonResult):
    """One reader's (or the pooled) paired reading."""

    correct: Accuracy  # Pc with its exact interval and binomial p against 0.5
    dprime: DPrime
    left_choices: Accuracy  # side bias: the share of Left answers, tested against 0.5
    auc_confidence: SideAuc


@dataclass(frozen=True)
class PairAgreement(JsonResult):
    """Two readers on the trials both answered: same case chosen, and Cohen's kappa."""

    readers: tuple[str, str]
    n_shared: int
    same_case: float | None  # share of shared trials where both chose the same case
    kappa: float | None
    reason: str | None = None


@dataclass(frozen=True)
class AfcAgreement(JsonResult):
    """Agreement between readers on the chosen case."""

    pairs: tuple[PairAgreement, ...]
    fleiss_kappa: float | None
    n_trials_all_readers: int
    reason: str | None = None


@dataclass(frozen=True)
class AfcLeftOut(JsonResult):
    """Rows no statistic uses."""

    not_assessable: int
    practice: int
    unanswered: int


@dataclass(frozen=True)
class AfcReport(JsonResult):
    """`mdiff-eval afc`'s report."""

    files: tuple[str, ...]
    study_id: str
    dataset: str
    n_trials: int  # trials with at least one answer analysed
    left_out: AfcLeftOut
    readers: dict[str, AfcStats]
    pooled: AfcStats
    agreement: AfcAgreement
    figure: str | None = None


# ------------------------------------------------------------------------------ statistics


def correct_share(k: int, n: int) -> Accuracy:
    """k of n with its exact (Clopper-Pearson) 95% interval and two-sided binomial p vs 0.5."""
    share = proportion(k, n, "no trial has an answer")
    p_value = float(binomtest(k, n, 0.5).pvalue) if n else None
    return Accuracy(share.value, share.k, share.n, share.ci_low, share.ci_high, share.reason,
                    p_value)


def dprime_2afc(k: int, n: int) -> DPrime:
    """d' = sqrt(2) * Phi^-1(Pc), Pc = 0 or 1 moved half a trial in (1/(2n), 1 - 1/(2n))."""
    if n == 0:
        return DPrime(None, None, False, "no trial has an answer")
    pc = k / n
    corrected = k in (0, n)
    if corrected:
        pc = 1 / (2 * n) if k == 0 else 1 - 1 / (2 * n)
    return DPrime(float(math.sqrt(2) * norm.ppf(pc)), pc, corrected)


def side_rating(chosen: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """The 8-step rating that the synthetic case is on the left: +confidence for a Left
    choice, -confidence for a Right one."""
    return np.where(chosen == "left", 1.0, -1.0) * confidence


def confidence_auc(synthetic: np.ndarray, chosen: np.ndarray,
                   confidence: np.ndarray) -> SideAuc:
    """ROC AUC of `side_rating` for synthetic-left against synthetic-right trials."""
    sure = ~np.isnan(confidence)
    left = synthetic[sure] == "left"
    n_left, n_right = int(left.sum()), int((~left).sum())
    if n_left == 0 or n_right == 0:
        return SideAuc(None, n_left, n_right, reason="every answered trial had the synthetic "
                       "case on one side, so the ROC curve is undefined")
    rating = side_rating(chosen[sure], confidence[sure])
    fpr, tpr, _ = roc_curve(left, rating, drop_intermediate=False)
    points = tuple((float(x), float(y)) for x, y in zip(fpr, tpr, strict=True))
    return SideAuc(float(roc_auc_score(left, rating)), n_left, n_right, points)


def afc_stats(rows: pd.DataFrame) -> AfcStats:
    """Pc, d', side bias and confidence-weighted AUC of one reader's (or all) answered trials."""
    n = len(rows)
    k = int(rows["correct"].sum())
    left = int((rows["chosen_side"] == "left").sum())
    return AfcStats(correct_share(k, n), dprime_2afc(k, n), correct_share(left, n),
                    confidence_auc(rows["synthetic_side"].to_numpy(dtype=str),
                                   rows["chosen_side"].to_numpy(dtype=str),
                                   rows["confidence"].to_numpy(dtype=float)))


def _binary_kappa(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two readers' yes/no calls; None when chance agreement is 1."""
    p_a, p_b = a.mean(), b.mean()
    expected = p_a * p_b + (1 - p_a) * (1 - p_b)
    if expected >= 1:
        return None
    return float((np.mean(a == b) - expected) / (1 - expected))


def _fleiss_binary(calls: np.ndarray) -> float | None:
    """Fleiss' kappa of a (trials, readers) yes/no matrix; None when there is no expected
    disagreement."""
    n_readers = calls.shape[1]
    yes = calls.sum(axis=1)
    counts = np.stack([yes, n_readers - yes], axis=1).astype(float)
    observed = ((counts * (counts - 1)).sum(axis=1) / (n_readers * (n_readers - 1))).mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares ** 2).sum())
    return None if expected >= 1 else float((observed - expected) / (1 - expected))


def reader_agreement(rows: pd.DataFrame) -> AfcAgreement:
    """Agreement on the chosen case between every two readers, and Fleiss' kappa."""
    chosen = rows.pivot(index="trial_id", columns="reader", values="chosen_case")
    correct = rows.pivot(index="trial_id", columns="reader", values="correct")
    readers = list(chosen.columns)
    pairs = []
    for first, second in combinations(readers, 2):
        both = chosen[[first, second]].notna().all(axis=1)
        n = int(both.sum())
        if n == 0:
            pairs.append(PairAgreement((first, second), 0, None, None,
                                       "the readers answered no trial in common"))
            continue
        same = float((chosen.loc[both, first] == chosen.loc[both, second]).mean())
        kappa = _binary_kappa(correct.loc[both, first].to_numpy(dtype=float),
                              correct.loc[both, second].to_numpy(dtype=float))
        pairs.append(PairAgreement((first, second), n, same, kappa, None if kappa is not None
                                   else "both readers made one call on every shared trial, so "
                                        "kappa is undefined"))
    if len(readers) < 2:
        return AfcAgreement(tuple(pairs), None, len(chosen), "agreement needs two readers")
    complete = correct.dropna()
    fleiss = _fleiss_binary(complete.to_numpy(dtype=float)) if len(complete) >= 2 else None
    reason = None
    if fleiss is None:
        reason = (f"{len(complete)} trial(s) were answered by every reader; Fleiss' kappa needs "
                  "2 or more with both calls present" if len(complete) < 2 else
                  "every reader made the same call on every trial, so kappa is undefined")
    return AfcAgreement(tuple(pairs), fleiss, len(complete), reason)


def afc_report(rows: pd.DataFrame, files: Sequence[str]) -> AfcReport:
    """The report of loaded, checked rows (`load_afc`)."""
    flagged = rows["not_assessable"] & ~rows["practice"]
    unanswered = (rows["chosen_side"] == "") & ~rows["practice"] & ~flagged
    left_out = AfcLeftOut(int(flagged.sum()), int(rows["practice"].sum()),
                          int(unanswered.sum()))
    used = rows[~(rows["practice"] | flagged | unanswered)]
    if used.empty:
        raise RatingsCsvError(f"{files[0]} holds no answered study trial (after leaving out "
                              "practice, flagged and unanswered rows); export the study after "
                              "readers have answered trials.")
    readers = {reader: afc_stats(group) for reader, group in used.groupby("reader", sort=True)}
    return AfcReport(tuple(files), str(used["study_id"].iloc[0]), str(used["dataset"].iloc[0]),
                     int(used["trial_id"].nunique()), left_out, readers, afc_stats(used),
                     reader_agreement(used))


# ------------------------------------------------------------------------------ reading


def load_afc(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Read and check the exports of one paired study; RatingsCsvError (one sentence) for a
    file that is none, a value the export never writes, or rows that contradict each other."""
    if not paths:
        raise RatingsCsvError("no ratings CSV was given; pass the CSV written by `mdiff-study "
                              "export STUDY --key KEY` of a paired study.")
    rows = pd.concat([_read_afc(Path(path)) for path in paths], ignore_index=True)
    first = f"{rows['file'].iloc[0]}"
    if rows["study_id"].nunique() > 1:
        raise RatingsCsvError(f"{first} and the other CSVs hold the trials of "
                              f"{rows['study_id'].nunique()} studies; analyse one paired study "
                              "at a time.")
    repeated = rows.duplicated(["reader", "trial_id"])
    if repeated.any():
        row = rows[repeated].iloc[0]
        raise RatingsCsvError(f"{row['file']} line {row['line']}: reader {row['reader']!r} "
                              f"answers trial {row['trial_id']} a second time; give each "
                              "export once.")
    members = rows.assign(pair=[" ".join(sorted(p)) for p in zip(
        rows["left_case_id"], rows["right_case_id"], strict=True)])
    mixed = members.groupby("trial_id")["pair"].nunique()
    if (mixed > 1).any():
        raise RatingsCsvError(f"{first}: trial {mixed[mixed > 1].index[0]} shows other cases to "
                              "different readers; give the exports of one version of a study.")
    return rows


def _read_afc(path: Path) -> pd.DataFrame:
    """One export CSV of a paired study, checked, with `correct` as 0/1 and the chosen case."""
    raw, lines = _read_text_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        if "case_id" in raw.columns:
            raise RatingsCsvError(f"{path} is the export of a single-reading study, not of a "
                                  "paired one; analyse it with `mdiff-eval turing` or "
                                  "`mdiff-eval agreement`.")
        hint = (" (export the study with --key: the statistics need the synthetic side)"
                if "synthetic_side" in missing else "")
        raise RatingsCsvError(f"{path} lacks the column{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(f'`{c}`' for c in missing)}{hint}; give a CSV "
                              "written by `mdiff-study export` of a paired study.")
    if raw.empty:
        raise RatingsCsvError(f"{path} has a header but no trials; export the study again after "
                              "readers have answered trials.")
    cells = {column: raw[column].str.strip() for column in raw.columns}
    for column in ID_COLUMNS:
        _reject(path, lines, cells[column] == "", column, cells[column], "is empty")
    checks = (("chosen_side", SIDES + ("",)), ("synthetic_side", SIDES),
              ("confidence", CONFIDENCES + ("",)), ("correct", FLAGS + ("",)))
    for column, allowed in checks:
        _reject(path, lines, ~cells[column].isin(allowed), column, cells[column],
                f"is not one of {', '.join(a for a in allowed if a) or 'the allowed values'}")
    expected = np.where(cells["chosen_side"] == "", "",
                        np.where(cells["chosen_side"] == cells["synthetic_side"], "1", "0"))
    _reject(path, lines, cells["correct"] != expected, "correct", cells["correct"],
            "disagrees with `chosen_side` and `synthetic_side`")
    frame = pd.DataFrame({"file": str(path), "line": lines})
    for column in ID_COLUMNS + ("chosen_side", "synthetic_side"):
        frame[column] = cells[column].to_numpy(dtype=object)
    frame["confidence"] = [float(c) if c else np.nan for c in cells["confidence"]]
    frame["correct"] = (cells["correct"] == "1").to_numpy(dtype=bool)
    for column in ("not_assessable", "practice"):
        values = cells.get(column, pd.Series(["0"] * len(raw)))
        _reject(path, lines, ~values.isin(FLAGS), column, values, "is not 0 or 1")
        frame[column] = (values == "1").to_numpy(dtype=bool)
    frame["chosen_case"] = np.where(frame["chosen_side"] == "left", frame["left_case_id"],
                                    np.where(frame["chosen_side"] == "right",
                                             frame["right_case_id"], None))
    return frame


def afc_from_exports(paths: Sequence[str | os.PathLike], *,
                     figure: str | os.PathLike | None = None, force: bool = False) -> AfcReport:
    """The report of a paired study's export CSVs; with `figure`, also its PNG (checked before
    anything is computed: OutputPathError for a path that is an input, in a study, or exists
    without `force`)."""
    figure = None if figure is None else Path(figure)
    if figure is not None:
        from evaluation.slice_panels import check_figure_path

        check_figure_path(figure, inputs=[("CSV", path) for path in paths], force=force)
    report = afc_report(load_afc(paths), sorted({str(p) for p in paths}))
    if figure is None:
        return report
    from evaluation.afc_figure import save_afc_figure

    save_afc_figure(report, figure)
    return replace(report, figure=str(figure))


# ------------------------------------------------------------------------------ text


def _share(stat: Accuracy) -> str:
    """'0.62 [0.45, 0.77], p = 0.2' or why there is none."""
    if stat.value is None:
        return f"- ({stat.reason})"
    return (f"{stat.value:.2f} [{stat.ci_low:.2f}, {stat.ci_high:.2f}] ({stat.k}/{stat.n}), "
            f"p = {stat.p_value:.3g}")


def _stats_lines(name: str, stats: AfcStats) -> list[str]:
    """A reader's (or the pooled) block of the text report."""
    dprime = stats.dprime
    d_text = "-" if dprime.value is None else f"{dprime.value:.2f}" + (
        f" (Pc {'1' if dprime.pc_used > 0.5 else '0'} taken as {dprime.pc_used:.3f})"
        if dprime.corrected else "")
    auc = stats.auc_confidence
    auc_text = f"{auc.auc:.2f}" if auc.auc is not None else f"- ({auc.reason})"
    return [f"{name}:",
            f"  proportion correct    {_share(stats.correct)}",
            f"  d'                    {d_text}",
            f"  chose Left            {_share(stats.left_choices)}",
            f"  confidence AUC        {auc_text}"]


def afc_text(report: AfcReport) -> str:
    """The report for the terminal."""
    left = report.left_out
    lines = [f"Paired (2AFC) reading of study {report.study_id} ({report.dataset}): "
             f"{report.n_trials} trials, {len(report.readers)} readers; left out "
             f"{left.not_assessable} flagged, {left.practice} practice and {left.unanswered} "
             "unanswered rows.",
             "Proportion correct: exact 95% interval, binomial p against 0.5; d' = sqrt(2) "
             "Phi^-1(Pc).", ""]
    for reader, stats in report.readers.items():
        lines += _stats_lines(reader_label(reader), stats)
    lines += _stats_lines("Pooled (every reader's trial one observation)", report.pooled)
    agreement = report.agreement
    lines.append("")
    lines.append("Agreement on the chosen case:")
    for pair in agreement.pairs:
        if pair.same_case is None:
            lines.append(f"  {' & '.join(pair.readers)}: - ({pair.reason})")
            continue
        kappa = "-" if pair.kappa is None else f"{pair.kappa:.2f}"
        lines.append(f"  {' & '.join(pair.readers)}: same case in {100 * pair.same_case:.0f}% "
                     f"of {pair.n_shared} shared trials, Cohen's kappa {kappa}")
    fleiss = ("-" if agreement.fleiss_kappa is None else f"{agreement.fleiss_kappa:.2f}")
    lines.append(f"  Fleiss' kappa over the {agreement.n_trials_all_readers} trials every reader "
                 f"answered: {fleiss}" + (f" ({agreement.reason})" if agreement.reason else ""))
    if report.figure:
        lines.append(f"Figure: {report.figure}")
    return "\n".join(lines)
