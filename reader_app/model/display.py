"""What the slice view shows, without Qt: the volume, the linked cursor, the current plane, the
layout and the display window.

One cursor voxel (d, h, w) places all three planes: the axial view shows slice d, the coronal
slice h, the sagittal slice w, so the planes always meet at that voxel. Stepping a plane moves the
cursor along that plane's axis; a click in the three-view layout moves it within the clicked
plane. Setters validate, store, then emit, as napari's `components/dims.py` does; the widget
(`reader_app.widgets.slice_view.SliceView`) only renders this state and forwards the reader's
input here.
"""

from __future__ import annotations

import numpy as np

from reader_app.model.events import Event
from reader_app.model.windowing import (
    CT_PRESETS,
    SLICE_AXIS,
    Layout,
    Orientation,
    Window,
    drag_window,
    middle_slice,
    pixel_size,
    reslice,
    slice_count,
    view_to_voxel,
    voxel_to_view,
)


class DisplayModel:
    """The display state of the slice view; it knows nothing of studies or widgets.

    Events: `volume_changed()` (a new volume or none: everything may have changed),
    `plane_changed(orientation)` (another current plane: the one shown in the single layout,
    the one the keys step in the three-view layout), `cursor_changed(voxel)` (the linked cursor
    moved: a plane whose slice index changed shows another image, every other plane only moves
    its cursor mark), `slice_changed(index)` (the current plane's slice), `window_changed(window)`
    and `layout_changed(layout)`. A change that stores the value already held emits nothing.
    """

    def __init__(self, modality: str, study_window: Window | None = None,
                 layout: Layout = Layout.SINGLE) -> None:
        self.modality = modality
        self.study_window = study_window
        self.volume_changed = Event()
        self.plane_changed = Event()
        self.cursor_changed = Event()
        self.slice_changed = Event()
        self.window_changed = Event()
        self.layout_changed = Event()
        self._volume: np.ndarray | None = None
        self._spacing = (1.0, 1.0, 1.0)
        self._auto_window = Window(level=0.0, width=1.0)
        self._orientation = Orientation.AXIAL
        self._layout = Layout(layout)
        self._cursor = (0, 0, 0)
        self._window = study_window or Window(level=0.0, width=1.0)
        self._window_is_custom = False
        self._drag_start = self._window

    # --- state -----------------------------------------------------------------------------

    @property
    def volume(self) -> np.ndarray | None:
        """The canonical (D, H, W) volume shown, or None."""
        return self._volume

    @property
    def has_volume(self) -> bool:
        """Whether a volume is shown."""
        return self._volume is not None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """The volume's voxel spacing in mm, (D, H, W)."""
        return self._spacing

    @property
    def orientation(self) -> Orientation:
        """The plane shown."""
        return self._orientation

    @property
    def layout(self) -> Layout:
        """One plane at a time, or the three planes side by side."""
        return self._layout

    @property
    def cursor(self) -> tuple[int, int, int]:
        """The linked cursor's voxel (d, h, w), where the three planes meet."""
        return self._cursor

    @property
    def slice_index(self) -> int:
        """The 0-based slice shown in the current plane."""
        return self.slice_index_of(self._orientation)

    @property
    def slice_total(self) -> int:
        """How many slices the current plane has (0 without a volume)."""
        return self.slice_total_of(self._orientation)

    def slice_index_of(self, orientation: Orientation) -> int:
        """The 0-based slice shown in `orientation`: the cursor's coordinate on its axis."""
        return self._cursor[SLICE_AXIS[orientation]]

    def slice_total_of(self, orientation: Orientation) -> int:
        """How many slices `orientation` has (0 without a volume)."""
        return 0 if self._volume is None else slice_count(self._volume.shape, orientation)

    def cursor_pixel(self, orientation: Orientation) -> tuple[int, int]:
        """The (row, column) of the cursor voxel in the image of `orientation`."""
        if self._volume is None:
            raise RuntimeError("no volume is shown")
        _, row, col = voxel_to_view(self._volume.shape, orientation, self._cursor)
        return row, col

    @property
    def window(self) -> Window:
        """The display window."""
        return self._window

    @property
    def window_is_custom(self) -> bool:
        """Whether the reader chose the window (kept across cases) rather than the default."""
        return self._window_is_custom

    def default_window(self) -> Window:
        """The study's window if it sets one, else soft tissue for CT and the case's percentile
        window for MR."""
        if self.study_window is not None:
            return self.study_window
        if self.modality == "CT":
            return CT_PRESETS[0].window
        return self._auto_window

    def image(self, orientation: Orientation | None = None) -> np.ndarray:
        """The slice of `orientation` (default: the current plane) as a 2D image in display
        order."""
        if self._volume is None:
            raise RuntimeError("no volume is shown")
        orientation = orientation or self._orientation
        return reslice(self._volume, orientation, self.slice_index_of(orientation))

    def pixel_size(self, orientation: Orientation | None = None) -> tuple[float, float]:
        """The (row, column) size in mm of one displayed pixel of `orientation` (default: the
        current plane)."""
        return pixel_size(self._spacing, orientation or self._orientation)

    # --- actions ---------------------------------------------------------------------------

    def set_volume(self, volume: np.ndarray, spacing: tuple[float, float, float],
                   auto_window: Window) -> None:
        """Show a new case with the cursor at its centre voxel, so every plane opens at its
        middle slice; a window the reader chose is kept, and so are the layout and plane."""
        if volume.ndim != 3 or min(volume.shape) < 1:
            raise ValueError(f"a case volume is a non-empty (D, H, W) array, not {volume.shape}")
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"the voxel spacing is three positive sizes in mm, not {spacing}")
        self._volume = volume
        self._spacing = tuple(float(s) for s in spacing)
        self._auto_window = auto_window
        if not self._window_is_custom:
            self._window = self.default_window()
        self._cursor = tuple(middle_slice(volume.shape, orientation)
                             for orientation in SLICE_AXIS)
        self.volume_changed.emit()

    def clear(self) -> None:
        """Show no volume (while a case loads, or when it cannot be read)."""
        self._volume = None
        self.volume_changed.emit()

    def set_cursor(self, voxel: tuple[int, int, int]) -> None:
        """Move the linked cursor to `voxel` (d, h, w), clamped to the volume."""
        if self._volume is None:
            return
        if len(voxel) != 3:
            raise ValueError(f"a voxel is three indices (d, h, w), not {voxel}")
        voxel = tuple(int(np.clip(v, 0, n - 1)) for v, n in zip(voxel, self._volume.shape,
                                                               strict=True))
        if voxel == self._cursor:
            return
        before = self.slice_index
        self._cursor = voxel
        self.cursor_changed.emit(voxel)
        if self.slice_index != before:
            self.slice_changed.emit(self.slice_index)

    def set_slice(self, index: int) -> None:
        """Show slice `index` of the current plane (clamped to the volume)."""
        if self._volume is None:
            return
        voxel = list(self._cursor)
        voxel[SLICE_AXIS[self._orientation]] = int(np.clip(index, 0, self.slice_total - 1))
        self.set_cursor(tuple(voxel))

    def click(self, orientation: Orientation, row: int, col: int) -> None:
        """A click on pixel (`row`, `col`) of `orientation`'s image: in the three-view layout
        that plane becomes the current one and the cursor moves to the clicked voxel, so the
        other two planes show the slices through it. The single view has no cursor to move:
        a stray click there changes nothing."""
        if self._volume is None or self._layout is not Layout.THREE:
            return
        orientation = Orientation(orientation)
        voxel = view_to_voxel(self._volume.shape, orientation, self.slice_index_of(orientation),
                              row, col)
        self.set_orientation(orientation)
        self.set_cursor(voxel)

    def step(self, slices: int) -> None:
        """Move `slices` slices forward (positive) or back (negative)."""
        self.set_slice(self.slice_index + slices)

    def first_slice(self) -> None:
        """Go to the first slice."""
        self.set_slice(0)

    def last_slice(self) -> None:
        """Go to the last slice."""
        self.set_slice(self.slice_total - 1)

    def set_orientation(self, orientation: Orientation) -> None:
        """Make `orientation` the current plane, at the slice through the cursor (its middle
        slice until the reader moves the cursor out of that plane)."""
        orientation = Orientation(orientation)
        if orientation is self._orientation:
            return
        self._orientation = orientation
        self.plane_changed.emit(orientation)

    def cycle_orientation(self) -> None:
        """Axial -> coronal -> sagittal -> axial."""
        self.set_orientation(self._orientation.following())

    def set_layout(self, layout: Layout) -> None:
        """Show one plane, or the three planes side by side."""
        layout = Layout(layout)
        if layout is self._layout:
            return
        self._layout = layout
        self.layout_changed.emit(layout)

    def toggle_layout(self) -> None:
        """Single view <-> three views."""
        self.set_layout(self._layout.toggled())

    def set_window(self, window: Window, custom: bool = False) -> None:
        """Display with `window`; `custom` marks the reader's own choice, kept across cases."""
        if not window.width > 0:
            raise ValueError(f"a display window has a positive width, not {window.width}")
        self._window_is_custom = custom
        if window == self._window:
            return
        self._window = window
        self.window_changed.emit(window)

    def apply_preset(self, number: int) -> None:
        """Apply CT preset `number` (1-based, F1..F4); ignored for MR."""
        if self.modality == "CT" and 1 <= number <= len(CT_PRESETS):
            self.set_window(CT_PRESETS[number - 1].window, custom=True)

    def auto_window(self) -> None:
        """The percentile window of the case (0.5-99.5 unless the study sets others)."""
        self.set_window(self._auto_window, custom=True)

    def reset_window(self) -> None:
        """Back to the default window, which then follows each new case again."""
        self.set_window(self.default_window())

    def drag_window(self, dx: float, dy: float, starting: bool) -> None:
        """A left drag of (dx, dy) screen pixels since the press (`starting` on its first move)
        sets the window relative to the one at the press."""
        if starting:
            self._drag_start = self._window
        self.set_window(drag_window(self._drag_start, dx, dy), custom=True)
