"""The downstream experiment's figures (the paper's Figures 4 and 5) and the summary they draw.

Figure 4: mean test Dice against the training fraction, with and without pre-training, each
point the mean over seeds with its 95 % confidence interval (Student's t over the seeds; none
with one seed). Figure 5: one test case at the smallest fraction, at the axial, coronal and
sagittal slices through its mask's centre: the truth, and the first seed's prediction without
and with pre-training, each outlined over the image with its Dice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, stats

from evaluation.slice_panels import new_figure, show_slice

ARMS = {"0": ("without pre-training", "#7570b3"), "1": ("with pre-training", "#d95f02")}
TRUTH_COLOUR = "#1b9e77"


def summarise(rows: Sequence[dict[str, str]]) -> list[dict]:
    """Per (fraction, arm): seeds, mean Dice and its 95 % CI, mean HD95, training cases."""
    groups: dict[tuple[float, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((float(row["fraction"]), row["pretrained"]), []).append(row)
    out = []
    for (fraction, arm), members in sorted(groups.items()):
        dices = np.array([float(r["dice"]) for r in members])
        distances = np.array([float(r["hd95"]) for r in members])
        low, high = _t_interval(dices)
        finite = distances[np.isfinite(distances)]
        out.append({"fraction": fraction, "pretrained": arm == "1", "seeds": len(members),
                    "n_train": int(members[0]["n_train"]), "dice_mean": float(dices.mean()),
                    "dice_ci_low": low, "dice_ci_high": high,
                    "hd95_mean": float(finite.mean()) if finite.size else None})
    return out


def _t_interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """The 95 % Student-t interval of the mean; (None, None) for fewer than two values."""
    if values.size < 2:
        return None, None
    half = float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))
    return float(values.mean() - half), float(values.mean() + half)


def figure4(summary: Sequence[dict], unit: str, test_cases: int):
    """Dice against training fraction, with and without pre-training (module docstring)."""
    figure = new_figure(4.6, 3.2)
    ax = figure.add_subplot()
    for arm, (label, colour) in ARMS.items():
        points = [s for s in summary if s["pretrained"] == (arm == "1")]
        if not points:
            continue
        x = np.array([100 * p["fraction"] for p in points])
        y = np.array([p["dice_mean"] for p in points])
        ax.plot(x, y, "o-", color=colour, label=label)
        spans = [(p["dice_ci_low"], p["dice_ci_high"]) for p in points]
        if all(low is not None for low, _ in spans):  # drawn within Dice's range [0, 1]
            ax.fill_between(x, [max(s[0], 0.0) for s in spans], [min(s[1], 1.0) for s in spans],
                            color=colour, alpha=0.2, linewidth=0)
    ax.set_ylim(top=1.0)
    ax.set_xscale("log")
    fractions = sorted({100 * s["fraction"] for s in summary})
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel(f"labelled training data (% of {unit}s)")
    ax.set_ylabel(f"test Dice (mean of {test_cases} case{'s' * (test_cases != 1)})")
    seeds = max(s["seeds"] for s in summary)
    ax.set_title(f"Segmentation with and without pre-training ({seeds} seed"
                 f"{'s' * (seeds != 1)}, 95% CI)", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return figure


def _centre(mask: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(round(c)) for c in ndimage.center_of_mass(mask))


def _cuts(volume: np.ndarray, centre: tuple[int, int, int]) -> list[np.ndarray]:
    """Axial (D), coronal (H) and sagittal (W) slices through `centre`, superior at the top."""
    d, h, w = centre
    return [volume[d], volume[::-1, h, :], volume[::-1, :, w]]


def figure5(image: np.ndarray, truth: np.ndarray, predictions: dict[str, np.ndarray],
            dices: dict[str, float], fraction: float, case: str,
            spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)):
    """The test case's truth and both arms' predictions, outlined over three slices drawn at
    the voxels' true proportions (`spacing`: D, H, W in mm)."""
    panels = [("truth", truth, TRUTH_COLOUR)] + [
        (f"{ARMS[arm][0]}\nDice on this case {dices[arm]:.3f}", mask, ARMS[arm][1])
        for arm, mask in predictions.items()]
    d, h, w = spacing
    aspects = (h / w, d / w, d / h)  # row height / column width of each cut's pixels
    heights = [image.shape[1] * h, image.shape[0] * d, image.shape[0] * d]
    figure = new_figure(1.7 * len(panels), 1.7 * sum(heights) / (image.shape[2] * w) + 0.6)
    centre = _centre(truth)
    image_cuts = _cuts(image, centre)
    for column, (title, mask, colour) in enumerate(panels):
        for row, (picture, outline) in enumerate(zip(image_cuts, _cuts(mask, centre),
                                                     strict=True)):
            ax = figure.add_subplot(3, len(panels), row * len(panels) + column + 1)
            show_slice(ax, picture, (0.0, 1.0), title=title if row == 0 else None)
            ax.set_aspect(aspects[row])
            if outline.any():
                ax.contour(outline.astype(float), levels=[0.5], colors=colour, linewidths=0.8)
    figure.suptitle(f"{case}: trained on {100 * fraction:g}% of the labelled data (first "
                    f"seed)", fontsize=8)
    return figure
