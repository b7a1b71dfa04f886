"""Neighbouring slices of several volumes in one grid, like the paper's Figure 1.

One row per volume (the first N of the folder, in its order: a samples folder's plan order, else
sorted by path), one column per slice: K consecutive depth slices centred on the middle slice,
the same indices for every volume, so slice-to-slice consistency can be judged. Each volume is
windowed as the reader app windows it by default (`evaluation.slice_panels`): CT in a named HU
window, MR between its own 0.5th and 99.5th percentiles. Axial slices carry the orientation
letters at their edges (A/P top/bottom, R/L left/right); the figure's title names the plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from diffusion_core.sources import SourceError, VolumeSource, check_shape, open_source
from evaluation.errors import EvalError
from evaluation.results import JsonResult
from evaluation.slice_panels import (
    EDGE_LETTERS,
    DisplayWindow,
    check_figure_path,
    display_window,
    new_figure,
    save_png,
    show_slice,
)

DEFAULT_VOLUMES = 4
DEFAULT_SLICES = 5
PANEL_INCHES = 1.6


@dataclass(frozen=True)
class SliceGrid:
    """What the grid shows: the volumes read, their windows and the slice indices."""

    source: VolumeSource
    names: list[str]
    volumes: list[np.ndarray]
    windows: list[DisplayWindow]
    modality: str
    slices: list[int]


@dataclass(frozen=True)
class SliceFigure(JsonResult):
    """What `slice_figure` drew: the figure's path, the volumes, slices and windows shown."""

    figure: str
    dir: str
    kind: str  # "samples", "prepared" or "scans"
    preset: str | None
    modality: str | None
    volumes: tuple[str, ...]
    n_available: int  # volumes in the folder
    slices: tuple[int, ...]  # 0-based depth indices
    plane: str
    edges: dict[str, str] | None  # orientation letters at the top, bottom, left, right
    windows: tuple[DisplayWindow, ...]

    def to_json(self) -> dict:
        """The summary `--json` prints."""
        return {**super().to_json(), "windows": [w.as_json() for w in self.windows]}


def neighbour_slices(depth: int, count: int) -> list[int]:
    """`count` consecutive slice indices centred on the middle slice of `depth` slices."""
    if not 1 <= count <= depth:
        raise EvalError(f"--slices {count} asks for more neighbouring slices than the "
                        f"{depth} the volumes have; give at most {depth}.")
    start = depth // 2 - count // 2
    return list(range(start, start + count))


def read_grid(folder: str | Path, n_volumes: int = DEFAULT_VOLUMES,
              n_slices: int = DEFAULT_SLICES, ct_name: str = "soft tissue") -> SliceGrid:
    """Read the first `n_volumes` volumes of `folder`, in intensities, and choose their windows
    and slices."""
    try:
        source = open_source(folder, option="DIR")
        count = min(n_volumes, len(source))
        read = [source.read_intensities(index) for index in range(count)]
        for volume in read[1:]:
            check_shape(volume, read[0].array.shape, f"the first volume, {source.names[0]}")
    except SourceError as err:
        raise EvalError(str(err)) from None
    volumes, windows, modalities = [], [], set()
    for volume in read:
        volumes.append(volume.array)
        modalities.add(volume.modality)
        windows.append(display_window(volume.array, volume.modality, ct_name))
    if len(modalities) > 1:
        raise EvalError(f"{source.folder} mixes modalities ({', '.join(sorted(modalities))}); "
                        "draw one modality per figure.")
    return SliceGrid(source, source.names[:count], volumes, windows, modalities.pop(),
                     neighbour_slices(volumes[0].shape[0], n_slices))


def draw_grid(grid: SliceGrid) -> Figure:
    """The figure: one row per volume, one column per neighbouring slice."""
    rows, cols = len(grid.volumes), len(grid.slices)
    depth, height, width = grid.volumes[0].shape
    aspect = height / width
    figure = new_figure(PANEL_INCHES * cols + 0.4, PANEL_INCHES * aspect * rows + 0.6)
    axes = figure.subplots(rows, cols, squeeze=False)
    plane = grid.source.depth_axis
    letters = EDGE_LETTERS.get(plane)
    for r, (name, volume, window) in enumerate(zip(grid.names, grid.volumes, grid.windows,
                                                   strict=True)):
        for c, k in enumerate(grid.slices):
            ax = axes[r, c]
            show_slice(ax, volume[k], window, title=f"slice {k + 1}/{depth}" if r == 0 else None,
                       letters=letters)
            ax.set_label(f"volume {r} slice {k}")
        axes[r, 0].set_ylabel(name, fontsize=6)
    orientation = ("anterior at the top, the patient's right on the left" if letters
                   else "in-plane orientation not recorded by the preset")
    figure.suptitle(f"{grid.source.folder.name}: {cols} neighbouring {plane} slices\n"
                    f"{orientation}; window: {grid.windows[0].rule}", fontsize=7)
    return figure


def slice_figure(folder: str | Path, out: str | Path, *, n_volumes: int = DEFAULT_VOLUMES,
                 n_slices: int = DEFAULT_SLICES, ct_name: str = "soft tissue",
                 force: bool = False) -> SliceFigure:
    """Draw the grid of `folder` into the PNG `out` (an existing file only with `force`, never
    one in `folder` or a study: `check_figure_path`); returns what it shows."""
    out = Path(out)
    check_figure_path(out, inputs=[("DIR", folder)], force=force, what="--out")
    if n_volumes < 1 or n_slices < 1:
        raise EvalError("--volumes and --slices must be at least 1.")
    grid = read_grid(folder, n_volumes, n_slices, ct_name)
    save_png(draw_grid(grid), out)
    letters = EDGE_LETTERS.get(grid.source.depth_axis)
    return SliceFigure(
        figure=str(out), dir=str(grid.source.folder), kind=grid.source.kind,
        preset=grid.source.preset.name if grid.source.preset else None,
        modality=grid.modality or None, volumes=tuple(grid.names),
        n_available=len(grid.source), slices=tuple(grid.slices), plane=grid.source.depth_axis,
        edges=dict(zip(("top", "bottom", "left", "right"), letters, strict=True))
        if letters else None,
        windows=tuple(grid.windows))


def slice_figure_text(report: SliceFigure) -> str:
    """The text summary of `slice_figure`'s report."""
    slices = report.slices
    lines = [f"wrote {report.figure}: {len(report.volumes)} of {report.n_available} "
             f"volumes of {report.dir} ({report.kind}), {report.plane} slices "
             f"{slices[0] + 1}-{slices[-1] + 1}"]
    for name, window in zip(report.volumes, report.windows, strict=True):
        lines.append(f"  {name}: window {window.low:g} to {window.high:g} ({window.rule})")
    return "\n".join(lines)
