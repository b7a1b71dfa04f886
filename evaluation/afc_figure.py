"""The figure of `mdiff-eval afc`: proportion correct per reader, and the confidence ROC curves.

Left panel: each reader's proportion correct (and the pooled one) with its exact 95% interval,
chance (0.5) dashed. Right panel: each reader's ROC curve of the confidence-weighted rating
(+confidence for Left, -confidence for Right; `evaluation.afc`) for telling trials with the
synthetic case on the left from those with it on the right, the AUC in the legend.
Drawn on a bare matplotlib `Figure` with the Agg canvas.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from evaluation.ratings_csv import reader_label
from evaluation.slice_panels import new_figure, save_png

if TYPE_CHECKING:  # evaluation.afc imports this module where it draws the figure
    from evaluation.afc import AfcReport, AfcStats

POOLED_LABEL = "pooled"


def _draw_correct(ax, names: list[str], stats: list[AfcStats]) -> None:
    """Proportion correct with its interval, one point per reader and the pooled one."""
    y = np.arange(len(names))[::-1]
    for row, stat in zip(y, stats, strict=True):
        share = stat.correct
        if share.value is None:
            continue
        color = "black" if row == 0 else "tab:blue"
        ax.errorbar(share.value, row, xerr=[[share.value - share.ci_low],
                                           [share.ci_high - share.value]],
                    fmt="o", color=color, capsize=3)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("proportion correct (95% exact CI)")
    ax.set_title("Which one is synthetic?", fontsize=10)
    ax.legend(loc="lower left", fontsize=8)


def _draw_roc(ax, report: AfcReport) -> None:
    """Each reader's ROC curve of the confidence-weighted rating."""
    for reader, stats in report.readers.items():
        stat = stats.auc_confidence
        if stat.auc is None:
            continue
        fpr, tpr = np.array(stat.roc).T
        ax.plot(fpr, tpr, marker=".", label=f"{reader_label(reader)} (AUC {stat.auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("synthetic-right trials rated toward Left")
    ax.set_ylabel("synthetic-left trials rated toward Left")
    ax.set_title("confidence-weighted ROC", fontsize=10)
    ax.legend(loc="lower right", fontsize=7)


def afc_figure(report: AfcReport):
    """The two panels of a report."""
    names = [reader_label(r) for r in report.readers] + [POOLED_LABEL]
    stats = list(report.readers.values()) + [report.pooled]
    figure = new_figure(10.0, max(3.6, 0.35 * len(names) + 1.6))
    left, right = figure.subplots(1, 2)
    _draw_correct(left, names, stats)
    _draw_roc(right, report)
    figure.suptitle(f"Paired (2AFC) reading, study {report.study_id} ({report.dataset}), "
                    f"{report.n_trials} trials", fontsize=10)
    return figure


def save_afc_figure(report: AfcReport, path: str | os.PathLike) -> None:
    """Draw `afc_figure` and write it as a PNG; EvalError when it cannot be written."""
    save_png(afc_figure(report), path)
