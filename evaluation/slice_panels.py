"""Slices of volumes on matplotlib figures: display windows, orientation letters, PNG files.

What the figure commands (`recon`, `figure`, `memorization`) share. A canonical (D, H, W) volume's
slice `array[k]` is drawn row by row as the reader app draws its axial view: anterior at the top,
the patient's right on the left (docs/models.md, "Conventions"). Windows follow the viewer:
CT in Hounsfield units with the named windows of `diffusion_core.modality.CT_WINDOWS` (soft
tissue by default), MR between the volume's 0.5th and 99.5th percentiles.

Drawn on bare matplotlib `Figure`s with the Agg canvas (no pyplot, no GUI backend).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from diffusion_core.modality import CT_WINDOWS, MR_PERCENTILES
from diffusion_core.outputs import Inputs, check_output, replacing
from evaluation.errors import EvalError

# Letters at the top, bottom, left and right edge of a depth slice, by the plane of the slices.
# Only axial slices of a canonical volume have a known in-plane orientation: the preset of
# sagittal slices (MRNet) records no in-plane direction, so its slices get no letters.
EDGE_LETTERS: dict[str, tuple[str, str, str, str] | None] = {
    "axial": ("A", "P", "R", "L"),
    "sagittal": None,
}
LETTER_COLOR = "#e0c060"  # the reader app's overlay colour


@dataclass(frozen=True)
class DisplayWindow:
    """The values shown black (`low`) and white (`high`), and how they were chosen."""

    low: float
    high: float
    rule: str  # e.g. "CT soft tissue window (L 40, W 400 HU)" or "MR 0.5-99.5th percentiles"

    def as_json(self) -> dict:
        """The window as JSON-ready data."""
        return {"low": self.low, "high": self.high, "rule": self.rule}


def ct_window(name: str = "soft tissue") -> DisplayWindow:
    """One of the named CT windows of the reader app, in HU."""
    if name not in CT_WINDOWS:
        raise EvalError(f"unknown CT window {name!r}; choose one of {', '.join(CT_WINDOWS)}.")
    level, width = CT_WINDOWS[name]
    return DisplayWindow(level - width / 2, level + width / 2,
                         f"CT {name} window (L {level:g}, W {width:g} HU)")


def percentile_window(volume: np.ndarray,
                      percentiles: tuple[float, float] = MR_PERCENTILES) -> DisplayWindow:
    """The window between two percentiles of the whole volume, as the viewer's MR auto-window."""
    low, high = (float(v) for v in np.percentile(volume, percentiles))
    if not high > low:  # a constant volume: show it mid-grey
        low, high = low - 0.5, low + 0.5
    return DisplayWindow(low, high, f"{percentiles[0]:g}-{percentiles[1]:g}th percentiles of the "
                                    "volume")


def display_window(volume: np.ndarray, modality: str | None,
                   ct_name: str = "soft tissue") -> DisplayWindow:
    """The viewer's default window: a named HU window for CT, the percentile window otherwise."""
    return ct_window(ct_name) if modality == "CT" else percentile_window(volume)


def new_figure(width: float, height: float) -> Figure:
    """A bare figure of this size in inches, on the Agg canvas."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def show_slice(ax: Axes, image: np.ndarray, window: DisplayWindow | tuple[float, float], *,
               title: str | None = None, letters: tuple[str, str, str, str] | None = None,
               cmap: str = "gray") -> AxesImage:
    """Draw a 2D slice row by row (row 0 at the top) in `window`; returns the image artist."""
    low, high = (window.low, window.high) if isinstance(window, DisplayWindow) else window
    artist = ax.imshow(image, cmap=cmap, vmin=low, vmax=high, interpolation="nearest",
                       origin="upper")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    if letters is not None:
        top, bottom, left, right = letters
        style = {"color": LETTER_COLOR, "fontsize": 7, "fontweight": "bold",
                 "transform": ax.transAxes}
        ax.text(0.5, 0.98, top, ha="center", va="top", **style)
        ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
    return artist


def check_figure_path(path: Path, *, inputs: Inputs = (), force: bool = False,
                      what: str = "--figure") -> None:
    """Refuse a figure path before anything is computed: OutputPathError when it is an input,
    lies in a study or an input folder, or exists without `force` (`diffusion_core.outputs`);
    EvalError when it cannot work (not a .png, or in a missing folder)."""
    check_output(path, inputs=inputs, force=force, what=what)
    if path.suffix.lower() != ".png":
        raise EvalError(f"the figure {path} must be a .png file; give a path ending in .png.")
    if not path.parent.is_dir():
        raise EvalError(f"the folder {path.parent} of the figure does not exist; create it first.")


def save_png(figure: Figure, path: str | os.PathLike, dpi: int = 150) -> None:
    """Write a figure as a PNG, atomically (a failed write leaves `path` as it was); EvalError
    when the file cannot be written."""
    try:
        with replacing(path) as tmp:
            figure.savefig(tmp, format="png", dpi=dpi)
    except OSError as err:
        raise EvalError(f"cannot write the figure {path} ({err.strerror or err}); choose a "
                        "writable path.") from None
