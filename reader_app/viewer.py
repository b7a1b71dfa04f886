"""The slice view: one plane of a volume in a pyqtgraph ViewBox, with reading-workstation mouse
and keyboard conventions, a slice slider and plane/window controls."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from reader_app.blocking import signals_blocked
from reader_app.windowing import (
    AUTO_WINDOW_KEY,
    CT_PRESETS,
    Orientation,
    Window,
    drag_window,
    middle_slice,
    pixel_size,
    reslice,
    slice_count,
)

IMAGE_BACKGROUND = "#000000"
TOOLBAR_STYLE = ("QPushButton { padding: 4px 10px; }"
                 " QPushButton:checked { background: #3d7cc9; color: white; border: none; }")
WHEEL_NOTCH = 120  # angle delta of one wheel notch
# Letters at the top, bottom, left and right edge of each plane (radiological convention).
EDGE_LABELS = {
    Orientation.AXIAL: ("A", "P", "R", "L"),
    Orientation.CORONAL: ("S", "I", "R", "L"),
    Orientation.SAGITTAL: ("S", "I", "A", "P"),
}


class SliceViewBox(pg.ViewBox):
    """A ViewBox where the wheel steps slices and left drag sets the window; right drag zooms
    and middle drag pans as pyqtgraph does. No context menu.

    It only emits signals (no reference back to the view), so no Python reference cycle ties
    the pyqtgraph items to the widgets: Qt, not the garbage collector, deletes them.
    """

    slices_stepped = Signal(int)            # +n = n slices forward
    window_dragged = Signal(float, float, bool)  # (dx, dy) pixels since the press; True at start

    def __init__(self) -> None:
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self._wheel_rest = 0

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        """Step one slice per wheel notch: towards the user is the next slice."""
        # Trackpads send fractions of a notch; the remainder is kept for the next event.
        self._wheel_rest += ev.delta()
        steps = int(self._wheel_rest / WHEEL_NOTCH)
        self._wheel_rest -= steps * WHEEL_NOTCH
        if steps:
            self.slices_stepped.emit(-steps)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        """Left drag: window (horizontal) and level (vertical); other buttons as pyqtgraph."""
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        moved = ev.screenPos() - ev.buttonDownScreenPos(Qt.MouseButton.LeftButton)
        self.window_dragged.emit(moved.x(), moved.y(), ev.isStart())


class SliceView(QWidget):
    """A volume shown plane by plane, with its slider, plane buttons and window controls.

    The view holds display state only (plane, slice, window, zoom); it knows nothing of studies.
    Every control is kept out of the keyboard focus chain so the window's keys always reach the
    main window's handler.
    """

    def __init__(self, modality: str, default_window: Window | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.modality = modality
        self._study_window = default_window
        self._volume: np.ndarray | None = None
        self._spacing = (1.0, 1.0, 1.0)
        self._auto_window = Window(level=0.0, width=1.0)
        self._orientation = Orientation.AXIAL
        self._index = 0
        self._window = default_window or Window(level=0.0, width=1.0)
        self._window_is_custom = False
        self._drag_start_window = self._window

        self.graphics = pg.GraphicsView(background=IMAGE_BACKGROUND)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view_box = SliceViewBox()
        self.view_box.slices_stepped.connect(self.step)
        self.view_box.window_dragged.connect(self._on_window_drag)
        self.view_box.setBackgroundColor(IMAGE_BACKGROUND)
        self.graphics.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self._edge_labels = [self._overlay_label() for _ in range(4)]
        self._message = QLabel(self.graphics)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setStyleSheet("color: #d0d0d0; font-size: 15px; background: transparent;")
        self._message.hide()
        self.graphics.installEventFilter(self)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(self._on_slider)
        self.slice_label = QLabel()
        # A fixed width: a label that changes its size hint on every step re-lays out the window.
        self.slice_label.setFixedWidth(110)
        self.slice_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.window_label = QLabel()
        self.window_label.setFixedWidth(150)

        self.plane_buttons = QButtonGroup(self)
        self.plane_buttons.setExclusive(True)
        toolbar = QHBoxLayout()
        toolbar.setSpacing(4)
        for orientation in Orientation:
            button = self._tool_button(orientation.label, checkable=True)
            button.setChecked(orientation is self._orientation)
            button.clicked.connect(lambda _=False, o=orientation: self.set_orientation(o))
            self.plane_buttons.addButton(button)
            toolbar.addWidget(button)
        toolbar.addSpacing(16)
        self.preset_buttons: list[QPushButton] = []
        if modality == "CT":
            for preset in CT_PRESETS:
                button = self._tool_button(f"{preset.name} ({preset.key})")
                button.clicked.connect(lambda _=False, w=preset.window: self.set_window(w, True))
                self.preset_buttons.append(button)
                toolbar.addWidget(button)
        auto = self._tool_button(f"Auto ({AUTO_WINDOW_KEY})")
        auto.clicked.connect(self.auto_window)
        self.preset_buttons.append(auto)
        toolbar.addWidget(auto)
        reset = self._tool_button("Reset (R)")
        reset.clicked.connect(self.reset)
        toolbar.addWidget(reset)
        toolbar.addStretch(1)
        toolbar.addWidget(self.window_label)
        self.setStyleSheet(TOOLBAR_STYLE)

        bottom = QHBoxLayout()
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.slice_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addLayout(toolbar)
        layout.addWidget(self.graphics, 1)
        layout.addLayout(bottom)
        self._update_labels()
        self._update_edges()

    # --- state -----------------------------------------------------------------------------

    @property
    def has_volume(self) -> bool:
        """Whether a volume is shown."""
        return self._volume is not None

    @property
    def slice_index(self) -> int:
        """The 0-based slice shown in the current plane."""
        return self._index

    @property
    def slice_total(self) -> int:
        """How many slices the current plane has (0 without a volume)."""
        return 0 if self._volume is None else slice_count(self._volume.shape, self._orientation)

    @property
    def orientation(self) -> Orientation:
        """The plane shown."""
        return self._orientation

    @property
    def window(self) -> Window:
        """The display window."""
        return self._window

    def default_window(self) -> Window:
        """The study's window if it sets one, else soft tissue for CT and the case's percentile
        window for MR."""
        if self._study_window is not None:
            return self._study_window
        if self.modality == "CT":
            return CT_PRESETS[0].window
        return self._auto_window

    # --- actions ---------------------------------------------------------------------------

    def set_volume(self, volume: np.ndarray, spacing: tuple[float, float, float],
                   auto_window: Window) -> None:
        """Show a new case at its middle slice; a window the reader chose is kept."""
        self._volume = volume
        self._spacing = spacing
        self._auto_window = auto_window
        if not self._window_is_custom:
            self._window = self.default_window()
        self._message.hide()
        self._show_plane(middle_slice(volume.shape, self._orientation))

    def clear(self, message: str) -> None:
        """Show no image, only `message` (e.g. while a case loads or when it cannot be read)."""
        self._volume = None
        self.image_item.clear()
        self._message.setText(message)
        self._message.show()
        self._update_labels()
        self._update_edges()

    def set_slice(self, index: int) -> None:
        """Show slice `index` of the current plane (clamped to the volume)."""
        if self._volume is None:
            return
        index = int(np.clip(index, 0, self.slice_total - 1))
        if index == self._index and self.image_item.image is not None:
            return
        self._index = index
        self._render()

    def step(self, slices: int) -> None:
        """Move `slices` slices forward (positive) or back (negative)."""
        self.set_slice(self._index + slices)

    def first_slice(self) -> None:
        """Go to the first slice."""
        self.set_slice(0)

    def last_slice(self) -> None:
        """Go to the last slice."""
        self.set_slice(self.slice_total - 1)

    def set_orientation(self, orientation: Orientation) -> None:
        """Show another plane of the same volume, at its middle slice."""
        if orientation is self._orientation:
            return
        self._orientation = orientation
        for button in self.plane_buttons.buttons():
            button.setChecked(button.text() == orientation.label)
        if self._volume is not None:
            self._show_plane(middle_slice(self._volume.shape, orientation))
        else:
            self._update_labels()
            self._update_edges()

    def cycle_orientation(self) -> None:
        """Axial -> coronal -> sagittal -> axial."""
        self.set_orientation(self._orientation.following())

    def set_window(self, window: Window, custom: bool = False) -> None:
        """Display with `window`; `custom` marks the reader's own choice, kept across cases."""
        self._window = window
        self._window_is_custom = custom
        if self._volume is not None:
            self.image_item.setLevels((window.low, window.high))
        self._update_labels()

    def apply_preset(self, number: int) -> None:
        """Apply CT preset `number` (1-based, F1..F4); ignored for MR."""
        if self.modality == "CT" and 1 <= number <= len(CT_PRESETS):
            self.set_window(CT_PRESETS[number - 1].window, custom=True)

    def auto_window(self) -> None:
        """The 0.5-99.5 percentile window of the case."""
        self.set_window(self._auto_window, custom=True)

    def reset(self) -> None:
        """Back to the default window and the whole image in view."""
        self.set_window(self.default_window())
        self.view_box.autoRange(padding=0.0)

    # --- internals -------------------------------------------------------------------------

    def _show_plane(self, index: int) -> None:
        self._index = index
        rows, cols = reslice(self._volume, self._orientation, index).shape
        row_mm, col_mm = pixel_size(self._spacing, self._orientation)
        self._render()
        # The image spans its physical size in mm, so the locked 1:1 aspect is the true one.
        self.image_item.setRect(QRectF(0.0, 0.0, cols * col_mm, rows * row_mm))
        with signals_blocked(self.slider):
            self.slider.setRange(0, self.slice_total - 1)
            self.slider.setValue(index)
        self.view_box.autoRange(padding=0.0)
        self._update_labels()
        self._update_edges()

    def _render(self) -> None:
        image = reslice(self._volume, self._orientation, self._index)
        self.image_item.setImage(image, autoLevels=False,
                                 levels=(self._window.low, self._window.high))
        with signals_blocked(self.slider):
            self.slider.setValue(self._index)
        self._update_labels()

    def _on_window_drag(self, dx: float, dy: float, starting: bool) -> None:
        if starting:
            self._drag_start_window = self._window
        self.set_window(drag_window(self._drag_start_window, dx, dy), custom=True)

    def _on_slider(self, value: int) -> None:
        self.set_slice(value)

    def _update_labels(self) -> None:
        """The slice and window readouts (cheap: runs on every slice step)."""
        total = self.slice_total
        self.slice_label.setText(f"slice {self._index + 1} / {total}" if total else "")
        self.window_label.setText(f"W {self._window.width:.0f}   L {self._window.level:.0f}"
                                  if self._volume is not None else "")

    def _update_edges(self) -> None:
        """The orientation letters at the image edges, for a new plane or volume."""
        letters = EDGE_LABELS[self._orientation]
        for label, letter in zip(self._edge_labels, letters, strict=True):
            label.setText(letter)
            label.setVisible(self._volume is not None)
            label.adjustSize()
        self._place_overlays()

    def _overlay_label(self) -> QLabel:
        label = QLabel(self.graphics)
        label.setStyleSheet("color: #e0c060; font-size: 14px; font-weight: bold;"
                            " background: transparent;")
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        return label

    def _place_overlays(self) -> None:
        width, height = self.graphics.width(), self.graphics.height()
        top, bottom, left, right = self._edge_labels
        margin = 6
        top.move((width - top.width()) // 2, margin)
        bottom.move((width - bottom.width()) // 2, height - bottom.height() - margin)
        left.move(margin, (height - left.height()) // 2)
        right.move(width - right.width() - margin, (height - right.height()) // 2)
        self._message.setGeometry(0, 0, width, height)

    def _tool_button(self, text: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        """Keep the edge letters and the message at the edges of the resized image area."""
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self._place_overlays()
        return super().eventFilter(watched, event)
