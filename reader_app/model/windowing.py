"""Display maths without Qt: window/level, CT presets, the MR auto-window of the case's
foreground, reslicing, the voxel <-> (plane, slice, row, column) mapping of the linked cursor and
the view layouts."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from diffusion_core.modality import CT_WINDOWS, MR_PERCENTILES

# How far one screen pixel of left-drag moves width and level, as a fraction of the width at the
# start of the drag: relative steps feel the same for an 80 HU brain and a 2500 HU bone window.
DRAG_SENSITIVITY = 0.01
MIN_WIDTH = 1.0


@dataclass(frozen=True)
class Window:
    """A display window: `level` is its centre, `width` its extent, in stored units (HU for CT)."""

    level: float
    width: float

    @property
    def low(self) -> float:
        """The value shown black."""
        return self.level - self.width / 2.0

    @property
    def high(self) -> float:
        """The value shown white."""
        return self.level + self.width / 2.0


@dataclass(frozen=True)
class WindowPreset:
    """A named CT window the reader selects with a function key."""

    name: str
    key: str
    window: Window


# Width/level in Hounsfield units as radiologists know them from reading workstations, on
# F1 (soft tissue) to F4 in the order of `CT_WINDOWS`.
CT_PRESETS: tuple[WindowPreset, ...] = tuple(
    WindowPreset(name.capitalize(), f"F{number}", Window(*window))
    for number, (name, window) in enumerate(CT_WINDOWS.items(), start=1))
AUTO_WINDOW_KEY = "F5"


SAMPLE_VOXELS = 1_000_000  # percentiles of a strided sample this large barely move
OTSU_BINS = 256
# A foreground smaller than this share of the voxels is no head or limb but a few bright voxels:
# the whole volume is windowed instead.
MIN_FOREGROUND = 0.01


def _sample(volume: np.ndarray) -> np.ndarray:
    """The volume's voxels as a flat array, strided down to about `SAMPLE_VOXELS` (fast on big
    volumes)."""
    flat = np.asarray(volume).ravel()
    if flat.size > SAMPLE_VOXELS:
        flat = flat[:: flat.size // SAMPLE_VOXELS + 1]
    return flat


def _window_between(values: np.ndarray, percentiles: tuple[float, float]) -> Window:
    """The window from the low to the high percentile of `values`; a positive width always."""
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high - low < MIN_WIDTH:
        # A (nearly) constant volume: any window that shows it mid-grey is fine.
        return Window(level=(low + high) / 2.0, width=MIN_WIDTH)
    return Window(level=(low + high) / 2.0, width=high - low)


def percentile_window(volume: np.ndarray, percentiles: tuple[float, float] = MR_PERCENTILES
                      ) -> Window:
    """The window spanning the given low/high percentiles of the whole volume."""
    return _window_between(_sample(volume), percentiles)


def otsu_threshold(values: np.ndarray, bins: int = OTSU_BINS) -> float:
    """Otsu's threshold of `values`: the histogram cut that maximises the variance between the
    two classes (the upper edge of the darker class's last bin)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2.0
    below = np.cumsum(counts)[:-1].astype(np.float64)  # voxels at or under each cut
    above = counts.sum() - below
    weighted = np.cumsum(counts * centres)
    mean_below = weighted[:-1] / np.maximum(below, 1)
    mean_above = (weighted[-1] - weighted[:-1]) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[1:-1][int(np.argmax(between))]) if between.size else float(edges[0])


def foreground_window(volume: np.ndarray, percentiles: tuple[float, float] = MR_PERCENTILES
                      ) -> Window:
    """The MR auto-window: the given low/high percentiles of the case's own foreground, the
    voxels above its Otsu threshold (the anatomy, not the air around it).

    An MR case's stored range runs from its background to its brightest voxels, so a window of
    the whole volume gives the dark air as much grey as the tissue and shows the tissue pale; the
    foreground's percentiles spread the grey over the tissue. A volume without a foreground worth
    the name (a constant one, a few bright voxels) gets the whole volume's percentiles.
    """
    flat = _sample(volume)
    if flat.size == 0 or float(flat.max()) <= float(flat.min()):
        return _window_between(flat, percentiles)
    foreground = flat[flat > otsu_threshold(flat)]
    if foreground.size < MIN_FOREGROUND * flat.size:
        foreground = flat
    return _window_between(foreground, percentiles)


def study_window(viewer: dict) -> Window | None:
    """The window a study's viewer defaults set (`{"window": [level, width]}`), if any."""
    value = viewer.get("window")
    if isinstance(value, list | tuple) and len(value) == 2:
        level, width = (float(v) for v in value)
        if width > 0:
            return Window(level=level, width=width)
    return None


def study_layout(viewer: dict) -> Layout:
    """The layout a study's viewer defaults set (`{"layout": "single" | "three"}`), the single
    view when absent; ValueError for any other value."""
    value = viewer.get("layout", Layout.SINGLE.value)
    try:
        return Layout(value)
    except ValueError:
        allowed = " or ".join(f'"{layout.value}"' for layout in Layout)
        raise ValueError(f"the study's viewer layout {value!r} is not {allowed}") from None


def study_percentiles(viewer: dict) -> tuple[float, float]:
    """The auto-window percentiles a study's viewer defaults set (`{"percentile": [lo, hi]}`),
    else the MR percentiles (0.5 and 99.5)."""
    value = viewer.get("percentile")
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = (float(v) for v in value)
        if 0.0 <= low < high <= 100.0:
            return (low, high)
    return MR_PERCENTILES


def drag_window(start: Window, dx: float, dy: float) -> Window:
    """The window after a left drag of (dx, dy) screen pixels from `start`.

    Dragging right widens the window, dragging down raises the level (the image gets darker),
    the convention of most PACS viewers.
    """
    step = max(start.width, MIN_WIDTH) * DRAG_SENSITIVITY
    width = max(MIN_WIDTH, start.width + dx * step)
    level = start.level + dy * step
    return Window(level=level, width=width)


class Orientation(enum.Enum):
    """The three standard planes through a canonical (D, H, W) LPS volume."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"

    @property
    def label(self) -> str:
        """The plane's name as shown on its button."""
        return self.value.capitalize()

    def following(self) -> Orientation:
        """The next plane in the cycle axial -> coronal -> sagittal -> axial."""
        order = list(Orientation)
        return order[(order.index(self) + 1) % len(order)]


class Layout(enum.Enum):
    """How the reading window shows a volume: one plane at a time, or the three side by side."""

    SINGLE = "single"
    THREE = "three"

    def toggled(self) -> Layout:
        """The other layout."""
        return Layout.THREE if self is Layout.SINGLE else Layout.SINGLE


# Letters at the top, bottom, left and right edge of each plane's image as `reslice` orders it
# (radiological convention; tests/reader_app/model/test_windowing.py checks them against the
# affine).
EDGE_LABELS = {
    Orientation.AXIAL: ("A", "P", "R", "L"),
    Orientation.CORONAL: ("S", "I", "R", "L"),
    Orientation.SAGITTAL: ("S", "I", "A", "P"),
}

# The volume axis each plane steps through: a plane's slice index is the cursor voxel's
# coordinate on that axis, so the three planes always pass through one point.
SLICE_AXIS = {Orientation.AXIAL: 0, Orientation.CORONAL: 1, Orientation.SAGITTAL: 2}


def slice_count(shape: tuple[int, ...], orientation: Orientation) -> int:
    """How many slices the volume has in `orientation`."""
    depth, height, width = shape
    return {Orientation.AXIAL: depth, Orientation.CORONAL: height,
            Orientation.SAGITTAL: width}[orientation]


def reslice(volume: np.ndarray, orientation: Orientation, index: int) -> np.ndarray:
    """Slice `index` of a canonical (D, H, W) volume as a 2D image in radiological display order.

    Rows run top to bottom and columns left to right on screen. Axial: anterior at the top,
    patient's right on the left. Coronal: superior at the top, patient's right on the left,
    slices anterior to posterior. Sagittal: superior at the top, anterior on the left, slices
    from the patient's right to left.
    """
    n = slice_count(volume.shape, orientation)
    if not 0 <= index < n:
        raise IndexError(f"slice {index} is outside 0..{n - 1} of the {orientation.value} view")
    if orientation is Orientation.AXIAL:
        return volume[index]
    # D runs inferior -> superior, so it is flipped to put superior at the top of the screen.
    if orientation is Orientation.CORONAL:
        return volume[::-1, index, :]
    return volume[::-1, :, index]


def voxel_to_view(shape: tuple[int, ...], orientation: Orientation,
                  voxel: tuple[int, int, int]) -> tuple[int, int, int]:
    """Where voxel (d, h, w) of a canonical volume of `shape` appears in `orientation`:
    (slice, row, column) of `reslice`'s image."""
    _check_inside(voxel, shape, "voxel")
    depth = shape[0]
    d, h, w = voxel
    if orientation is Orientation.AXIAL:
        return d, h, w
    # Coronal and sagittal rows run superior -> inferior: `reslice` flips D.
    if orientation is Orientation.CORONAL:
        return h, depth - 1 - d, w
    return w, depth - 1 - d, h


def view_to_voxel(shape: tuple[int, ...], orientation: Orientation, slice_index: int,
                  row: int, col: int) -> tuple[int, int, int]:
    """The voxel (d, h, w) shown at (`row`, `col`) of slice `slice_index` in `orientation`;
    the inverse of `voxel_to_view`."""
    depth = shape[0]
    if orientation is Orientation.AXIAL:
        voxel = (slice_index, row, col)
    elif orientation is Orientation.CORONAL:
        voxel = (depth - 1 - row, slice_index, col)
    else:
        voxel = (depth - 1 - row, col, slice_index)
    _check_inside(voxel, shape, f"the {orientation.value} point (slice {slice_index}, row {row}, "
                                f"column {col}), voxel")
    return voxel


def _check_inside(voxel: tuple[int, int, int], shape: tuple[int, ...], what: str) -> None:
    if len(voxel) != 3 or not all(0 <= v < n for v, n in zip(voxel, shape, strict=True)):
        raise IndexError(f"{what} {tuple(voxel)} is outside the volume of shape {tuple(shape)}")


def pixel_at(x_mm: float, y_mm: float, pixel: tuple[float, float],
             image_shape: tuple[int, int]) -> tuple[int, int] | None:
    """The (row, column) of the displayed pixel under the point (x, y) in mm from the image's
    top-left corner, for pixels of `pixel` (row, column) mm; None outside the image."""
    row, col = math.floor(y_mm / pixel[0]), math.floor(x_mm / pixel[1])
    if 0 <= row < image_shape[0] and 0 <= col < image_shape[1]:
        return row, col
    return None


def pixel_centre(row: int, col: int, pixel: tuple[float, float]) -> tuple[float, float]:
    """The (x, y) in mm of the centre of displayed pixel (`row`, `col`); inverse of `pixel_at`."""
    return (col + 0.5) * pixel[1], (row + 0.5) * pixel[0]


def pixel_size(spacing: tuple[float, float, float], orientation: Orientation
               ) -> tuple[float, float]:
    """The (row, column) size in mm of one displayed pixel, for a true aspect ratio."""
    d, h, w = spacing
    return {Orientation.AXIAL: (h, w), Orientation.CORONAL: (d, w),
            Orientation.SAGITTAL: (d, h)}[orientation]


def middle_slice(shape: tuple[int, ...], orientation: Orientation) -> int:
    """The index of the middle slice, where a case opens."""
    return slice_count(shape, orientation) // 2
