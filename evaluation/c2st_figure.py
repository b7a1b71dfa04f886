"""The classifier test's figure: what separates real from synthetic volumes.

Top row: the mean intensity histogram of the real and of the synthetic volumes (every voxel, on
one set of bins), and how much each depth slice drives the 3D CNN (mean |d logit / d input| per
slice over the held-out volumes of the first seed, real and synthetic apart). Below: a few held-
out real and synthetic volumes at the slice the network leaned on most, with its gradient map
over them where it is in the top quarter of that slice (brighter = the output moves more with
that voxel); maps and profile are smoothed, since strided convolutions leave a checkerboard.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from scipy.ndimage import gaussian_filter, gaussian_filter1d

from evaluation.slice_panels import new_figure, percentile_window, show_slice

BINS = 64
SMOOTH = 2.0  # voxels: the strided convolutions leave a checkerboard in raw gradient maps
PANEL = 1.6
COLOURS = {0: "#1b9e77", 1: "#d95f02"}
NAMES = {0: "real", 1: "synthetic"}


@dataclass
class Maps:
    """Where the first seed's networks looked, on held-out volumes (the figure's material)."""

    profile: np.ndarray  # (n, d) mean |gradient| per depth slice of every volume
    cases: dict[int, np.ndarray]  # a few volumes' whole saliency maps (d, h, w), by index
    inputs: dict[int, np.ndarray]  # those volumes as the network saw them (pooled)


def draw_c2st(maps: Maps, labels: np.ndarray, real: np.ndarray, synthetic: np.ndarray,
              cnn: dict) -> Figure:
    """The histograms, the per-slice profile and the gradient maps of `Maps.cases`."""
    cases = sorted(maps.cases)
    columns = max(2, len(cases))
    figure = new_figure(PANEL * columns, PANEL * 2.6)
    grid = figure.add_gridspec(2, columns, height_ratios=[1.1, 1.5])
    _histograms(figure.add_subplot(grid[0, : columns // 2]), real, synthetic)
    _profile(figure.add_subplot(grid[0, columns // 2:]), maps.profile, labels)
    for column, index in enumerate(cases):
        ax = figure.add_subplot(grid[1, column])
        volume, grads = maps.inputs[index], gaussian_filter(maps.cases[index], SMOOTH)
        k = int(np.argmax(grads.sum(axis=(1, 2))))
        show_slice(ax, volume[k], percentile_window(volume),
                   title=f"{NAMES[int(labels[index])]} (held out)\nslice {k}")
        strong = np.ma.masked_less(grads[k], float(np.quantile(grads[k], 0.75)))
        ax.imshow(strong, cmap="inferno", alpha=0.5, interpolation="bilinear",
                  vmin=0.0, vmax=float(grads[k].max()) or 1.0)
        ax.set_label(f"case {column}")
    figure.suptitle(f"what separates them: 3D CNN held-out AUC {cnn['auc']:.2f} "
                    f"[{cnn['ci_low']:.2f}, {cnn['ci_high']:.2f}]", fontsize=8)
    return figure


def _histograms(ax, real: np.ndarray, synthetic: np.ndarray) -> None:
    """The mean intensity histogram of each folder on common bins."""
    low = float(min(real.min(), synthetic.min()))
    high = float(max(real.max(), synthetic.max()))
    bins = np.linspace(low, high + 1e-9, BINS + 1)
    for label, volumes in ((0, real), (1, synthetic)):
        density = np.mean([np.histogram(v, bins=bins, density=True)[0] for v in volumes], axis=0)
        ax.stairs(density, bins, color=COLOURS[label], label=NAMES[label])
    ax.set_yscale("log")
    ax.set_xlabel("value", fontsize=7)
    ax.set_ylabel("mean density", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax.set_label("histograms")


def _profile(ax, profile: np.ndarray, labels: np.ndarray) -> None:
    """Mean |gradient| per depth slice, real and synthetic held-out volumes apart."""
    for label in (0, 1):
        ax.plot(gaussian_filter1d(profile[labels == label].mean(axis=0), 1.0),
                color=COLOURS[label], label=NAMES[label])
    ax.set_xlabel("depth slice", fontsize=7)
    ax.set_ylabel("mean |d logit / d input|", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    ax.set_label("slice profile")
