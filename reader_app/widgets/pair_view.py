"""The pair view of a paired (2AFC) trial: two slice views side by side over one
`LinkedDisplays`, under one bar of plane, layout and link buttons and over one bar of window
buttons.

Each side is a `SliceView` without controls of its own (its planes, its slider, its window and
slice readouts) under a header naming the side and its keys. The shared buttons act on the
active side, the one moved last; while the sides are linked that moves both, and zoom and pan
follow too (pyqtgraph's linked views, plane by plane), so both show the same region. Unlinked,
the active side is framed, so the reader sees which one the keys step.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.model.display import DisplayModel
from reader_app.model.keymap import LAYOUT_KEY, LINK_KEY, RESET_KEY
from reader_app.model.loader import CaseImage
from reader_app.model.pair import SIDES, LinkedDisplays
from reader_app.model.windowing import AUTO_WINDOW_KEY, CT_PRESETS, Layout, Orientation, Window
from reader_app.widgets.slice_view import TOOLBAR_STYLE, SliceView

SIDE_KEYS = {"left": "← or 1", "right": "→ or 2"}
HEADER_STYLE = "font-size: 15px; font-weight: bold; padding: 2px 6px; border-radius: 4px;"
PICKED_STYLE = HEADER_STYLE + " background: #2d4f78; color: #ffffff;"
PLAIN_STYLE = HEADER_STYLE + " color: #d0d0d0;"
ACTIVE_SIDE = "#3d7cc9"  # the frame of the side the keys step, while the sides are unlinked
LINKED_TEXT, UNLINKED_TEXT = f"Linked ({LINK_KEY})", f"Unlinked ({LINK_KEY})"


def header_text(side: str, picked: bool, truth: str | None) -> str:
    """A side's header: its name and keys, the reader's pick, and a practice trial's truth once
    shown ("Left (← or 1) · your pick · synthetic")."""
    parts = [f"{side.capitalize()}  ({SIDE_KEYS[side]})"]
    if picked:
        parts.append("your pick")
    if truth is not None:
        parts.append("synthetic" if truth == side else "real")
    return "  ·  ".join(parts)


class PairView(QWidget):
    """Two slice views, left and right, over one `LinkedDisplays` (`pair`).

    The window uses it as it uses a `SliceView`: `display` (the active side's), `show_images`,
    `clear` and `reset`.
    """

    def __init__(self, modality: str, default_window: Window | None = None,
                 layout: Layout = Layout.SINGLE, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pair = pair = LinkedDisplays(modality, default_window, layout)
        self.sides = {side: SliceView(modality, display=pair.display(side), controls=False)
                      for side in SIDES}
        self.headers = {side: QLabel() for side in SIDES}
        self._frames = {side: self._side_frame(side) for side in SIDES}
        self.plane_buttons = QButtonGroup(self)
        self.plane_buttons.setExclusive(True)
        self.layout_button = self._tool_button(f"3 views ({LAYOUT_KEY})", checkable=True)
        self.layout_button.clicked.connect(lambda _=False: self.display.toggle_layout())
        self.link_button = self._tool_button(LINKED_TEXT, checkable=True)
        self.link_button.clicked.connect(lambda _=False: pair.toggle_link())
        self.preset_buttons: list[QPushButton] = []  # the CT presets and Auto
        self.setStyleSheet(TOOLBAR_STYLE)

        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(6)
        box.addLayout(self._toolbar())
        row = QHBoxLayout()
        row.setSpacing(8)
        for side in SIDES:
            row.addWidget(self._frames[side], 1)
        box.addLayout(row, 1)
        box.addLayout(self._window_bar(modality))

        pair.link_changed.connect(self._on_link_changed)
        pair.active_changed.connect(self._on_active_changed)
        for side in SIDES:
            pair.display(side).plane_changed.connect(self._on_plane_changed)
            pair.display(side).layout_changed.connect(self._on_layout_changed)
        self.show_answer(None, None)
        self._link_zoom(pair.linked)
        self._show_buttons()

    def _side_frame(self, side: str) -> QFrame:
        frame = QFrame()
        frame.setObjectName("side")
        column = QVBoxLayout(frame)
        column.setContentsMargins(3, 3, 3, 3)
        column.setSpacing(4)
        header = self.headers[side]
        header.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(header)
        column.addWidget(self.sides[side], 1)
        return frame

    def _toolbar(self) -> QHBoxLayout:
        """The plane buttons, the layout button and the link toggle."""
        toolbar = QHBoxLayout()
        toolbar.setSpacing(4)
        for orientation in Orientation:
            button = self._tool_button(orientation.label, checkable=True)
            button.setProperty("orientation", orientation.value)
            button.clicked.connect(
                lambda _=False, o=orientation: self.display.set_orientation(o))
            self.plane_buttons.addButton(button)
            toolbar.addWidget(button)
        toolbar.addSpacing(8)
        toolbar.addWidget(self.layout_button)
        toolbar.addSpacing(8)
        toolbar.addWidget(self.link_button)
        toolbar.addStretch(1)
        return toolbar

    def _window_bar(self, modality: str) -> QHBoxLayout:
        """The CT presets, Auto and Reset."""
        bar = QHBoxLayout()
        bar.setSpacing(4)
        if modality == "CT":
            for number, preset in enumerate(CT_PRESETS, start=1):
                button = self._tool_button(f"{preset.name} ({preset.key})")
                button.clicked.connect(lambda _=False, n=number: self.display.apply_preset(n))
                self.preset_buttons.append(button)
        auto = self._tool_button(f"Auto ({AUTO_WINDOW_KEY})")
        auto.clicked.connect(lambda _=False: self.display.auto_window())
        reset = self._tool_button(f"Reset ({RESET_KEY})")
        reset.clicked.connect(lambda _=False: self.reset())
        self.preset_buttons.append(auto)
        for button in (*self.preset_buttons, reset):
            bar.addWidget(button)
        bar.addStretch(1)
        return bar

    def _tool_button(self, text: str, checkable: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setCheckable(checkable)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        return button

    # --- what the window uses ----------------------------------------------------------------

    @property
    def display(self) -> DisplayModel:
        """The active side's display: the one the keys and the buttons act on."""
        return self.pair.active

    def show_images(self, images: tuple[CaseImage, ...]) -> None:
        """Show a trial: its left and right members."""
        left, right = images
        self.pair.set_volumes(left, right)

    def clear(self, message: str) -> None:
        """Show no images, only `message` on both sides (a trial loading, or unreadable)."""
        for view in self.sides.values():
            view.clear(message)

    def reset(self) -> None:
        """Both sides back to the default window, each plane shown with its whole image."""
        for view in self.sides.values():
            view.reset()

    def show_answer(self, picked: str | None, truth: str | None) -> None:
        """Mark the side the reader picked as synthetic (`picked`: "left", "right" or None)
        and, once a practice trial shows it, which side was (`truth`)."""
        for side, header in self.headers.items():
            header.setText(header_text(side, picked == side, truth))
            header.setStyleSheet(PICKED_STYLE if picked == side else PLAIN_STYLE)

    # --- rendering the model -----------------------------------------------------------------

    def _on_link_changed(self, linked: bool) -> None:
        self._link_zoom(linked)
        self._show_buttons()

    def _link_zoom(self, linked: bool) -> None:
        """Each right plane's zoom and pan follow the left one's (and the reverse), or not;
        linking puts the right plane where the left one is."""
        for orientation, plane in self.sides["right"].planes.items():
            left = self.sides["left"].planes[orientation].view_box if linked else None
            plane.view_box.setXLink(left)
            plane.view_box.setYLink(left)

    def _on_active_changed(self, _side: str) -> None:
        self._show_buttons()

    def _on_plane_changed(self, _orientation: Orientation) -> None:
        self._show_buttons()

    def _on_layout_changed(self, _layout: Layout) -> None:
        self._show_buttons()

    def _show_buttons(self) -> None:
        """The buttons show the active side's plane and layout and the link; unlinked, the
        active side is framed."""
        display, linked = self.display, self.pair.linked
        for button in self.plane_buttons.buttons():
            button.setChecked(button.property("orientation") == display.orientation.value)
        self.layout_button.setChecked(display.layout is Layout.THREE)
        self.link_button.setChecked(linked)
        self.link_button.setText(LINKED_TEXT if linked else UNLINKED_TEXT)
        for side, frame in self._frames.items():
            framed = not linked and side == self.pair.active_side
            colour = ACTIVE_SIDE if framed else "transparent"
            frame.setStyleSheet(f"#side {{ border: 2px solid {colour}; border-radius: 4px; }}")
