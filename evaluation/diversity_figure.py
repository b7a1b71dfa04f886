"""The MS-SSIM diversity figure: each folder's mean with its 95% CI, as the paper compares them.

Left: this run's folders, one row each (the reference first: the real scans), the mean MS-SSIM
over pairs as a dot with its volume-bootstrap 95% CI as a bar; lower means more diverse. Right:
the paper's own three figures on 64^3 ADNI brains (real 0.8095, latent diffusion 0.8557,
WGAN-GP 0.9996, each over 1000 pairs; no intervals were published), drawn for orientation only:
they come from other data and from the authors' script, whose values `--protocol paper`
reproduces and the standard protocol does not.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from evaluation.diversity import DiversityRun
from evaluation.slice_panels import new_figure

# Khader et al., the diversity comparison on ADNI (64^3): published means, without intervals.
PAPER_ROWS = (("real ADNI", 0.8095, "other"), ("latent diffusion", 0.8557, "diffusion"),
              ("WGAN-GP", 0.9996, "GAN"))
COLOURS = {"GAN": "#d95f02", "diffusion": "#7570b3", "other": "#1b9e77"}
ROW_INCHES = 0.42


def _colour(label: str) -> str:
    """The colour of a row by what its folder holds (`diversity.folder_label`)."""
    kind = label.split(" ", 1)[0]
    return COLOURS.get(kind, COLOURS["other"])


def draw_diversity(run: DiversityRun) -> Figure:
    """This run's rows beside the paper's (module docstring)."""
    rows = max(len(run.results), len(PAPER_ROWS))
    figure = new_figure(7.0, 1.1 + ROW_INCHES * rows)
    ours, paper = figure.subplots(1, 2, width_ratios=[1.5, 1.0])
    labels = run.labels or [""] * len(run.results)
    names = [f"{r.folder.name}\n{label}".strip() for r, label in zip(run.results, labels,
                                                                       strict=True)]
    for row, (result, label) in enumerate(zip(run.results, labels, strict=True)):
        colour = _colour(label)
        ours.errorbar(result.mean, row, xerr=[[result.mean - result.ci_low],
                                              [result.ci_high - result.mean]],
                      fmt="o", color=colour, capsize=3, markersize=5)
        ours.annotate(f"{result.mean:.4f} [{result.ci_low:.4f}, {result.ci_high:.4f}], "
                      f"{result.n_pairs} pairs", (result.mean, row), xytext=(0, 6),
                      textcoords="offset points", ha="center", va="bottom", fontsize=6)
    _rows(ours, names, f"this run: {run.protocol} protocol\n(dot: mean over pairs, bar: 95% CI "
                       f"over volumes)")
    ours.set_label("this run")
    for row, (_, value, kind) in enumerate(PAPER_ROWS):
        paper.plot(value, row, "s", color=COLOURS[kind], markersize=5)
        paper.annotate(f"{value:.4f}", (value, row), xytext=(6, 0), textcoords="offset points",
                       va="center", fontsize=6)
    _rows(paper, [name for name, _, _ in PAPER_ROWS],
          "the paper: ADNI 64^3, authors' script,\n1000 pairs (no intervals published)")
    paper.set_label("paper")
    figure.suptitle("MS-SSIM diversity (lower = more diverse)", fontsize=8)
    return figure


def _rows(ax: Axes, names: list[str], title: str) -> None:
    """One labelled row per entry, the first at the top, MS-SSIM on x."""
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_ylim(len(names) - 0.5, -0.8)  # room for the first row's annotation
    ax.set_xlabel("MS-SSIM", fontsize=7)
    ax.tick_params(axis="x", labelsize=6)
    ax.margins(x=0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=7)
