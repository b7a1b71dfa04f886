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
from reader_app.display import DisplayModel
from reader_app.keymap import RESET_KEY
from reader_app.windowing import AUTO_WINDOW_KEY, CT_PRESETS, Orientation, Window

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

    The display state (plane, slice, window) lives in `display`, a Qt-free `DisplayModel`:
    the widget renders it on the model's events and forwards the reader's input to it; zoom and
    pan stay pyqtgraph's. Every control is kept out of the keyboard focus chain so the window's
    keys always reach the main window's handler.
    """

    def __init__(self, modality: str, default_window: Window | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = display = DisplayModel(modality, default_window)

        self.graphics = pg.GraphicsView(background=IMAGE_BACKGROUND)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view_box = SliceViewBox()
        self.view_box.slices_stepped.connect(self.display.step)
        self.view_box.window_dragged.connect(self.display.drag_window)
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
        self.slider.valueChanged.connect(self.display.set_slice)
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
            button.setProperty("orientation", orientation.value)
            button.clicked.connect(lambda _=False, o=orientation: display.set_orientation(o))
            self.plane_buttons.addButton(button)
            toolbar.addWidget(button)
        toolbar.addSpacing(16)
        self.preset_buttons: list[QPushButton] = []
        if modality == "CT":
            for number, preset in enumerate(CT_PRESETS, start=1):
                button = self._tool_button(f"{preset.name} ({preset.key})")
                button.clicked.connect(lambda _=False, n=number: display.apply_preset(n))
                self.preset_buttons.append(button)
                toolbar.addWidget(button)
        auto = self._tool_button(f"Auto ({AUTO_WINDOW_KEY})")
        auto.clicked.connect(self.display.auto_window)
        self.preset_buttons.append(auto)
        toolbar.addWidget(auto)
        reset = self._tool_button(f"Reset ({RESET_KEY})")
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

        self.display.volume_changed.connect(self._on_volume_changed)
        self.display.plane_changed.connect(self._on_plane_changed)
        self.display.slice_changed.connect(self._on_slice_changed)
        self.display.window_changed.connect(self._on_window_changed)
        self._check_plane_button()
        self._update_labels()
        self._update_edges()

    # --- actions that are the view's own ---------------------------------------------------

    def set_volume(self, volume: np.ndarray, spacing: tuple[float, float, float],
                   auto_window: Window) -> None:
        """Show a new case at its middle slice; a window the reader chose is kept."""
        self._message.hide()
        self.display.set_volume(volume, spacing, auto_window)

    def clear(self, message: str) -> None:
        """Show no image, only `message` (e.g. while a case loads or when it cannot be read)."""
        self._message.setText(message)
        self._message.show()
        self.display.clear()

    def reset(self) -> None:
        """Back to the default window and the whole image in view."""
        self.display.reset_window()
        self.view_box.autoRange(padding=0.0)

    # --- rendering the model ---------------------------------------------------------------

    def _on_volume_changed(self) -> None:
        if self.display.has_volume:
            self._show_plane()
        else:
            self.image_item.clear()
            self._update_labels()
            self._update_edges()

    def _on_plane_changed(self, _orientation: Orientation) -> None:
        self._check_plane_button()
        if self.display.has_volume:
            self._show_plane()
        else:
            self._update_labels()
            self._update_edges()

    def _on_slice_changed(self, _index: int) -> None:
        self._render()

    def _on_window_changed(self, window: Window) -> None:
        if self.display.has_volume:
            self.image_item.setLevels((window.low, window.high))
        self._update_labels()

    def _show_plane(self) -> None:
        """A new volume or plane: the image, its physical size, the slider range, the view."""
        display = self.display
        rows, cols = display.image().shape
        row_mm, col_mm = display.pixel_size()
        with signals_blocked(self.slider):
            self.slider.setRange(0, display.slice_total - 1)
        self._render()
        # The image spans its physical size in mm, so the locked 1:1 aspect is the true one.
        self.image_item.setRect(QRectF(0.0, 0.0, cols * col_mm, rows * row_mm))
        self.view_box.autoRange(padding=0.0)
        self._update_edges()

    def _render(self) -> None:
        """The current slice with the current window (cheap: runs on every slice step)."""
        display = self.display
        window = display.window
        self.image_item.setImage(display.image(), autoLevels=False,
                                 levels=(window.low, window.high))
        # The slider is the view of the slice too: moving it here must not echo back.
        with signals_blocked(self.slider):
            self.slider.setValue(display.slice_index)
        self._update_labels()

    def _check_plane_button(self) -> None:
        # setChecked emits no `clicked`, the only signal the buttons are connected by.
        for button in self.plane_buttons.buttons():
            button.setChecked(button.property("orientation") == self.display.orientation.value)

    def _update_labels(self) -> None:
        """The slice and window readouts."""
        display = self.display
        total = display.slice_total
        self.slice_label.setText(f"slice {display.slice_index + 1} / {total}" if total else "")
        self.window_label.setText(f"W {display.window.width:.0f}   L {display.window.level:.0f}"
                                  if display.has_volume else "")

    def _update_edges(self) -> None:
        """The orientation letters at the image edges, for a new plane or volume."""
        letters = EDGE_LABELS[self.display.orientation]
        for label, letter in zip(self._edge_labels, letters, strict=True):
            label.setText(letter)
            label.setVisible(self.display.has_volume)
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
