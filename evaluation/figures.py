"""The paper's Figure 2: how often each reader chose options A-D, per question and dataset.

One panel per dataset; in it, bars grouped by Table 1 question, one stacked bar per reader whose
segments are the shares (in percent) of options A (bottom) to D (top) among the cases that reader
answered; each bar is labelled with its reader's name. The full Table 1 texts are too long for
a legend, so the legend names the letters and a footnote gives the short labels of
`SHORT_OPTION_LABELS`:

- realistic appearance: A not recognizable, B unrealistic, C minor flaws, D can't tell
- slice consistency: A none consistent, B up to 3 consistent, C majority consistent,
  D all consistent
- anatomical correctness: A not recognizable, B major errors, C minor errors, D correct

Drawn on a bare matplotlib `Figure` with the Agg canvas (no pyplot, no GUI backend).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evaluation.ratings_csv import CATEGORIES, CATEGORY_TITLES, LETTERS
from evaluation.slice_panels import new_figure, save_png

if TYPE_CHECKING:  # evaluation.agreement imports this module where it draws the figure
    from evaluation.agreement import AgreementReport, DatasetAgreement, OptionCounts

SHORT_OPTION_LABELS: dict[str, tuple[str, str, str, str]] = {
    "realistic_appearance": ("not recognizable", "unrealistic", "minor flaws", "can't tell"),
    "slice_consistency": ("none consistent", "up to 3 consistent", "majority consistent",
                          "all consistent"),
    "anatomical_correctness": ("not recognizable", "major errors", "minor errors", "correct"),
}
# Red (worst) to green (best), so a mostly green bar reads as "rated realistic".
OPTION_COLORS: tuple[tuple[float, float, float, float], ...] = tuple(
    colormaps["RdYlGn"](x) for x in (0.08, 0.35, 0.68, 0.92))
GROUP_GAP = 1.0  # empty bar slots between two questions
# Panel width: at least PANEL_INCHES, more with many readers so that each bar slot stays wide
# enough for a reader label such as "Reader" at font size 7; wider panels go one per row.
PANEL_INCHES = 5.2
SLOT_INCHES = 0.42
PANEL_MARGIN_INCHES = 1.2
FOOTNOTE_INCHES = 0.8


def option_shares(counts: OptionCounts) -> np.ndarray:
    """Percent of answers per option A-D from one reader's `option_counts`; zeros if none."""
    total = counts.total
    per_option = np.array([counts.options[letter] for letter in LETTERS], dtype=float)
    return 100.0 * per_option / total if total else np.zeros(len(LETTERS))


def bar_positions(n_readers: int) -> np.ndarray:
    """x of each bar, ordered question by question and reader by reader within a question."""
    step = n_readers + GROUP_GAP
    return np.array([i * step + j for i in range(len(CATEGORIES)) for j in range(n_readers)],
                    dtype=float)


def panel_inches(n_readers: int) -> float:
    """Width of one dataset's panel, grown with the number of bars so reader labels never touch."""
    slots = len(CATEGORIES) * n_readers + (len(CATEGORIES) - 1) * GROUP_GAP
    return max(PANEL_INCHES, PANEL_MARGIN_INCHES + SLOT_INCHES * slots)


def draw_dataset(ax: Axes, dataset: str, summary: DatasetAgreement) -> None:
    """One panel: per question a stacked bar per reader, from a dataset of `agreement_report`."""
    readers = summary.readers
    x = bar_positions(len(readers))
    shares = np.array([option_shares(summary.categories[c].counts[r])
                       for c in CATEGORIES for r in readers]).reshape(-1, len(LETTERS))
    bottom = np.zeros(len(x))
    for k, letter in enumerate(LETTERS):
        ax.bar(x, shares[:, k], bottom=bottom, width=0.8, color=OPTION_COLORS[k],
               edgecolor="white", linewidth=0.5, label=f"Option {letter}")
        bottom += shares[:, k]
    # Long reader names ("Reader A") break at their first space so neighbouring bars stay legible.
    names = [str(r).replace(" ", "\n", 1) for r in readers]
    ax.set_xticks(x, [name for _ in CATEGORIES for name in names], fontsize=7)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of answers (%)")
    cases = "synthetic cases" if summary.cases == "synthetic" else "cases"
    ax.set_title(f"{dataset} ({summary.n_cases} {cases})", fontsize=10)
    # Question names on a second tick row, pushed below the reader names by blank lines.
    centres = x.reshape(len(CATEGORIES), len(readers)).mean(axis=1)
    blank = "\n" * (max((name.count("\n") for name in names), default=0) + 2)
    questions = ax.secondary_xaxis(location=0)
    questions.set_xticks(centres, [blank + CATEGORY_TITLES[c].capitalize().replace(" ", "\n", 1)
                                   for c in CATEGORIES], fontsize=8)
    questions.tick_params(axis="x", length=0)
    questions.spines["bottom"].set_visible(False)
    ax.spines[["top", "right"]].set_visible(False)


def option_footnote() -> str:
    """The figure's footnote: how bars read and the short label of every option."""
    lines = ["Bars: one per reader (named below it), options A (bottom) to D (top)."]
    for category in CATEGORIES:
        labels = zip(LETTERS, SHORT_OPTION_LABELS[category], strict=True)
        lines.append(f"{CATEGORY_TITLES[category].capitalize()}: "
                     + ", ".join(f"{letter} {text}" for letter, text in labels))
    return "\n".join(lines)


def figure2(report: AgreementReport) -> Figure:
    """Figure 2 of the paper for an `agreement_report`: one panel per dataset."""
    datasets = list(report.datasets)
    if not datasets:
        raise ValueError("the report holds no dataset to draw")
    panel_width = panel_inches(max(len(report.datasets[d].readers) for d in datasets))
    ncols = min(2 if panel_width <= 2 * PANEL_INCHES else 1, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    height = 3.6 * nrows + FOOTNOTE_INCHES
    fig = new_figure(panel_width * ncols, height)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, dataset in zip(axes, datasets, strict=False):
        draw_dataset(ax, dataset, report.datasets[dataset])
    for ax in axes[len(datasets):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="outside right upper", fontsize=8)
    fig.text(0.01, 0.0, option_footnote(), fontsize=7, ha="left", va="bottom")
    # Keep the panels above the footnote.
    margin = FOOTNOTE_INCHES / height
    fig.get_layout_engine().set(rect=(0, margin, 1, 1 - margin))
    return fig


def save_figure2(report: AgreementReport, path: str | os.PathLike) -> None:
    """Draw `figure2(report)` and write it as a PNG; EvalError when the file cannot be written."""
    save_png(figure2(report), path)
