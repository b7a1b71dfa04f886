"""The memorisation check's figure: the score distributions with the thresholds, then the
samples closest to the training set beside their nearest training volume, aligned."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from diffusion_core.data import PreparedDataset
from diffusion_core.sources import VolumeSource
from evaluation.copy_search import Thresholds, move
from evaluation.slice_panels import new_figure, percentile_window, show_slice

PANEL_INCHES = 1.5


def draw_closest_pairs(report: dict, samples: VolumeSource, dataset: PreparedDataset,
                       pairs: int, thresholds: Thresholds, augmented_scores: np.ndarray,
                       holdout_scores: np.ndarray | None) -> Figure:
    """The score distributions with both thresholds, then the closest sample-training pairs.

    Each pair row shows the middle depth slice of the sample and the same slice of its nearest
    training volume, mirrored and moved as the match aligned them, each in its own percentile
    window.
    """
    order = sorted(range(len(report["results"])), key=lambda i: -report["results"][i]["score"])
    order = order[:pairs]
    names = list(dataset.names)
    figure = new_figure(2 * PANEL_INCHES + 0.6, PANEL_INCHES * (len(order) + 1.4))
    grid = figure.add_gridspec(len(order) + 1, 2, height_ratios=[1.4] + [1] * len(order))
    hist = figure.add_subplot(grid[0, :])
    hist.set_label("score distributions")
    sample_scores = np.array([r["score"] for r in report["results"]])
    everything = np.concatenate([augmented_scores, sample_scores]
                                + ([holdout_scores] if holdout_scores is not None else []))
    bins = np.linspace(float(everything.min()), float(everything.max()) + 1e-9, 30)
    hist.hist(augmented_scores, bins=bins, alpha=0.6, label="augmented copies", color="#d95f02")
    if holdout_scores is not None:
        hist.hist(holdout_scores, bins=bins, alpha=0.6, label="held-out", color="#1b9e77")
    hist.hist(sample_scores, bins=bins, histtype="step", label="samples", color="#303030")
    hist.axvline(thresholds.copy, color="#d95f02", linestyle="--", label="copy threshold")
    hist.axvline(thresholds.novel, color="#1b9e77", linestyle=":", label="novel threshold")
    if thresholds.off_distribution is not None:
        hist.axvline(thresholds.off_distribution, color="#7570b3", linestyle="-.",
                     label="off-distribution")
    power = "unknown" if thresholds.power is None else f"{thresholds.power:.3f}"
    hist.set_title(f"power (augmented copies vs held-out AUC): {power}", fontsize=7)
    hist.set_xlabel("NCC with the nearest training volume (fine grid, aligned)", fontsize=7)
    hist.tick_params(labelsize=6)
    hist.legend(fontsize=6)
    for row, i in enumerate(order, start=1):
        result = report["results"][i]
        sample = samples.read(i).array
        train = dataset[names.index(result["nearest"])][0].numpy()
        if result["flipped"]:
            train = train[..., ::-1]
        # The sample's voxel z + s (after its mirroring) faced training voxel z on the fine grid
        # (`Matches.shift`), so the training volume moved by s lines up with the sample, except
        # that mirroring the training volume instead of the sample turns the W shift around.
        factors = [n / c for n, c in zip(sample.shape, report["similarity"]["fine_grid"],
                                         strict=True)]
        offset = [round(s * f) for s, f in zip(result["shift"], factors, strict=True)]
        if result["flipped"]:
            offset[2] = -offset[2]
        train = move(train, offset)
        k = sample.shape[0] // 2
        ax_sample, ax_train = figure.add_subplot(grid[row, 0]), figure.add_subplot(grid[row, 1])
        show_slice(ax_sample, sample[k], percentile_window(sample),
                   title=f"{result['file']}\n{result['class']}, NCC {result['score']:.3f}")
        aligned = "mirrored, aligned" if result["flipped"] else "aligned"
        show_slice(ax_train, train[k], percentile_window(train),
                   title=f"nearest: {result['nearest']}\n({aligned})")
        ax_sample.set_label(f"pair {row - 1} sample")
        ax_train.set_label(f"pair {row - 1} training")
    figure.suptitle("the samples closest to the training set (middle slices)", fontsize=8)
    return figure
