"""The slice view: one plane of a volume, or the three planes side by side with a linked cursor,
under one slice slider and the plane, layout and window controls (or, as one side of a paired
trial, under its slider and readouts only: the pair view holds the controls)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from reader_app.model.display import DisplayModel
from reader_app.model.keymap import LAYOUT_KEY, RESET_KEY
from reader_app.model.loader import CaseImage
from reader_app.model.windowing import AUTO_WINDOW_KEY, CT_PRESETS, Layout, Orientation, Window
from reader_app.widgets.blocking import signals_blocked
from reader_app.widgets.plane_view import PlaneView, SliceViewBox

TOOLBAR_STYLE = ("QPushButton { padding: 4px 10px; }"
                 " QPushButton:checked { background: #3d7cc9; color: white; border: none; }")
PLANES_SPACING = 6


class SliceView(QWidget):
    """A volume in one plane or in all three side by side, with the slider of the current
    plane, the plane and layout buttons and the window controls.

    The display state (cursor, plane, layout, window) lives in `display`, a Qt-free
    `DisplayModel` (its own, or the one given): the widget renders it on the model's events and
    forwards the reader's input to it; zoom and pan stay pyqtgraph's, per plane. Every control is
    kept out of the keyboard focus chain so the window's keys always reach the main window's
    handler. Without `controls` the plane, layout and window buttons are left out.
    """

    def __init__(self, modality: str, default_window: Window | None = None,
                 layout: Layout = Layout.SINGLE, parent: QWidget | None = None, *,
                 display: DisplayModel | None = None, controls: bool = True) -> None:
        super().__init__(parent)
        self.display = display = display or DisplayModel(modality, default_window, layout)
        self.planes = {orientation: PlaneView(display, orientation)
                       for orientation in Orientation}
        self.planes_area = self._planes_area()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(display.set_slice)
        # Fixed widths: a label that changes its size hint on every step re-lays out the window.
        self.slice_label = self._readout(110)
        self.window_label = self._readout(130)
        self.plane_buttons = QButtonGroup(self)
        self.plane_buttons.setExclusive(True)
        self.layout_button: QPushButton | None = None
        self.preset_buttons: list[QPushButton] = []
        self.setStyleSheet(TOOLBAR_STYLE)

        # The readouts, Auto and Reset sit under the image: beside the CT presets the toolbar
        # would make the window wider than a 1280-pixel screen.
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(6)
        if controls:
            box.addLayout(self._toolbar(modality))
        box.addWidget(self.planes_area, 1)
        box.addLayout(self._bottom_bar(controls))

        display.volume_changed.connect(self._on_volume_changed)
        display.plane_changed.connect(self._on_plane_changed)
        display.cursor_changed.connect(self._on_cursor_changed)
        display.slice_changed.connect(self._on_slice_changed)
        display.window_changed.connect(self._on_window_changed)
        display.layout_changed.connect(self._on_layout_changed)
        self._check_plane_button()
        self._apply_layout()
        self._update_labels()

    def _planes_area(self) -> QWidget:
        """The planes side by side, under the message shown instead of an image."""
        area = QWidget()
        planes_row = QHBoxLayout(area)
        planes_row.setContentsMargins(0, 0, 0, 0)
        planes_row.setSpacing(PLANES_SPACING)
        for plane in self.planes.values():
            planes_row.addWidget(plane, 1)
        self._message = QLabel(area)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setStyleSheet("color: #d0d0d0; font-size: 15px; background: transparent;")
        self._message.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self._message.hide()
        area.installEventFilter(self)
        return area

    def _toolbar(self, modality: str) -> QHBoxLayout:
        """The plane buttons, the layout button and the window presets (CT)."""
        display = self.display
        toolbar = QHBoxLayout()
        toolbar.setSpacing(4)
        for orientation in Orientation:
            button = self._tool_button(orientation.label, checkable=True)
            button.setProperty("orientation", orientation.value)
            button.clicked.connect(lambda _=False, o=orientation: display.set_orientation(o))
            self.plane_buttons.addButton(button)
            toolbar.addWidget(button)
        toolbar.addSpacing(8)
        self.layout_button = self._tool_button(f"3 views ({LAYOUT_KEY})", checkable=True)
        self.layout_button.clicked.connect(lambda _=False: display.toggle_layout())
        toolbar.addWidget(self.layout_button)
        toolbar.addSpacing(16)
        if modality == "CT":
            for number, preset in enumerate(CT_PRESETS, start=1):
                button = self._tool_button(f"{preset.name} ({preset.key})")
                button.clicked.connect(lambda _=False, n=number: display.apply_preset(n))
                self.preset_buttons.append(button)
                toolbar.addWidget(button)
        toolbar.addStretch(1)
        return toolbar

    def _bottom_bar(self, controls: bool) -> QHBoxLayout:
        """The slice slider, Auto and Reset (with `controls`), the window and slice readouts."""
        bottom = QHBoxLayout()
        bottom.setSpacing(4)
        bottom.addWidget(self.slider, 1)
        bottom.addSpacing(8)
        if controls:
            auto = self._tool_button(f"Auto ({AUTO_WINDOW_KEY})")
            auto.clicked.connect(self.display.auto_window)
            self.preset_buttons.append(auto)
            bottom.addWidget(auto)
            reset = self._tool_button(f"Reset ({RESET_KEY})")
            reset.clicked.connect(self.reset)
            bottom.addWidget(reset)
        bottom.addWidget(self.window_label)
        bottom.addWidget(self.slice_label)
        return bottom

    @staticmethod
    def _readout(width: int) -> QLabel:
        label = QLabel()
        label.setFixedWidth(width)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return label

    # --- the current plane's parts (the single view's, or the framed one of the three) -----

    @property
    def current_plane(self) -> PlaneView:
        """The plane the keys and the slider step."""
        return self.planes[self.display.orientation]

    @property
    def graphics(self) -> pg.GraphicsView:
        """The current plane's graphics view."""
        return self.current_plane.graphics

    @property
    def view_box(self) -> SliceViewBox:
        """The current plane's view box."""
        return self.current_plane.view_box

    @property
    def image_item(self) -> pg.ImageItem:
        """The current plane's image item."""
        return self.current_plane.image_item

    # --- actions that are the view's own ---------------------------------------------------

    def set_volume(self, volume: np.ndarray, spacing: tuple[float, float, float],
                   auto_window: Window) -> None:
        """Show a new case with every plane at its middle slice; a window the reader chose is
        kept."""
        self.display.set_volume(volume, spacing, auto_window)

    def show_images(self, images: tuple[CaseImage, ...]) -> None:
        """Show what a position of the session holds: here one case."""
        (image,) = images
        self.set_volume(image.array, image.spacing, image.auto_window)

    def clear(self, message: str) -> None:
        """Show no image, only `message` (e.g. while a case loads or when it cannot be read)."""
        self._message.setText(message)
        self._message.show()
        self._message.raise_()
        self.display.clear()

    def reset(self) -> None:
        """Back to the default window and the whole image in view in every plane shown."""
        self.display.reset_window()
        for plane in self._live_planes():
            plane.reset_zoom()

    # --- rendering the model ---------------------------------------------------------------

    def _live_planes(self) -> list[PlaneView]:
        return [plane for plane in self.planes.values() if plane.live]

    def _on_volume_changed(self) -> None:
        if self.display.has_volume:
            self._message.hide()
        for plane in self._live_planes():
            plane.show_volume()
        self._update_slider()

    def _on_cursor_changed(self, _voxel: tuple[int, int, int]) -> None:
        for plane in self._live_planes():
            plane.show_cursor()

    def _on_slice_changed(self, _index: int) -> None:
        # The slider is the view of the slice too: moving it here must not echo back.
        with signals_blocked(self.slider):
            self.slider.setValue(self.display.slice_index)
        self._update_labels()

    def _on_window_changed(self, _window: Window) -> None:
        for plane in self._live_planes():
            plane.show_window()
        self._update_labels()

    def _on_plane_changed(self, _orientation: Orientation) -> None:
        self._check_plane_button()
        self._apply_layout()
        self._update_slider()

    def _on_layout_changed(self, _layout: Layout) -> None:
        self._apply_layout()

    def _apply_layout(self) -> None:
        """Show the planes of the layout (rendering afresh the ones that were hidden), the
        cursor marks in the three views and the frame around the current plane."""
        display = self.display
        three = display.layout is Layout.THREE
        if self.layout_button is not None:
            self.layout_button.setChecked(three)
        for orientation, plane in self.planes.items():
            live = three or orientation is display.orientation
            plane.setVisible(live)
            plane.set_active(three and orientation is display.orientation)
            plane.set_cursor_mark_visible(three)
            if live and not plane.live:
                plane.live = True
                plane.show_volume()
            plane.live = live
        self._message.raise_()

    def _update_slider(self) -> None:
        display = self.display
        with signals_blocked(self.slider):
            self.slider.setRange(0, max(display.slice_total - 1, 0))
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

    def _tool_button(self, text: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        """Keep the message over the whole resized image area."""
        if watched is self.planes_area and event.type() == QEvent.Type.Resize:
            self._message.setGeometry(self.planes_area.rect())
        return super().eventFilter(watched, event)
