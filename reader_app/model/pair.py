"""What the two viewers of a paired (2AFC) trial show, without Qt: a left and a right display
kept in step while linked.

Each side is a `DisplayModel` of its own volume. While linked, a change on either side (a slice
step, another plane or layout, a window) is copied to the other at once, so both show the same
slice of the same plane in one window/level; unlinked, each side moves alone. Relinking puts the
right side where the left one is. The side the reader moved last is the *active* one: the keys
and the shared buttons act on it (while linked, that moves both).

Both sides open in one window, the pair's: for MR the mean of the two volumes' auto-windows, so
neither member is shown in a window fitted to it and not to the other (a cue that would tell
nothing about which is synthetic but would make them look different).
"""

from __future__ import annotations

from reader_app.model.display import DisplayModel
from reader_app.model.events import Event
from reader_app.model.loader import CaseImage
from reader_app.model.windowing import Layout, Window

SIDES = ("left", "right")


def pair_window(left: Window, right: Window) -> Window:
    """One window for both members: from the mean of their lows to the mean of their highs."""
    low = (left.low + right.low) / 2.0
    high = (left.high + right.high) / 2.0
    return Window(level=(low + high) / 2.0, width=high - low)


class LinkedDisplays:
    """The left and right displays of a trial and the link between them.

    Events: `link_changed(linked)` and `active_changed(side)`; each side's own events are its
    `DisplayModel`'s.
    """

    def __init__(self, modality: str, study_window: Window | None = None,
                 layout: Layout = Layout.SINGLE) -> None:
        self.left = DisplayModel(modality, study_window, layout)
        self.right = DisplayModel(modality, study_window, layout)
        self.link_changed = Event()
        self.active_changed = Event()
        self._linked = True
        self._active = "left"
        self._copying = False  # a change being copied to the other side is no reader's move
        for display, moved in ((self.left, self._left_moved), (self.right, self._right_moved)):
            for event in (display.cursor_changed, display.plane_changed,
                          display.window_changed, display.layout_changed):
                event.connect(moved)

    # --- state -----------------------------------------------------------------------------

    @property
    def linked(self) -> bool:
        """Whether the two sides move together."""
        return self._linked

    @property
    def active_side(self) -> str:
        """"left" or "right": the side moved last, which the keys step."""
        return self._active

    @property
    def active(self) -> DisplayModel:
        """The display the keys and the shared buttons act on."""
        return self.display(self._active)

    def display(self, side: str) -> DisplayModel:
        """The display of `side` ("left" or "right")."""
        if side not in SIDES:
            raise ValueError(f"a side is 'left' or 'right', not {side!r}")
        return self.left if side == "left" else self.right

    @property
    def has_volumes(self) -> bool:
        """Whether both sides show a volume."""
        return self.left.has_volume and self.right.has_volume

    # --- actions ---------------------------------------------------------------------------

    def set_volumes(self, left: CaseImage, right: CaseImage) -> None:
        """Show a new trial. Both sides open at their middle slices in the pair's window (a
        window the reader chose is kept); while linked, the right side then takes the left
        one's plane, layout, cursor and window."""
        window = pair_window(left.auto_window, right.auto_window)
        self.left.set_volume(left.array, left.spacing, window)
        self.right.set_volume(right.array, right.spacing, window)
        if self._linked:
            self._copy(self.left, self.right)

    def clear(self) -> None:
        """Show no volume on either side (while a trial loads, or when it cannot be read)."""
        self.left.clear()
        self.right.clear()

    def set_linked(self, linked: bool) -> None:
        """Link the sides (the right one is put where the left one is) or unlink them."""
        if linked == self._linked:
            return
        self._linked = linked
        if linked:
            self._copy(self.left, self.right)
        self.link_changed.emit(linked)

    def toggle_link(self) -> None:
        """Linked <-> unlinked."""
        self.set_linked(not self._linked)

    def set_active(self, side: str) -> None:
        """Make `side` the one the keys act on."""
        self.display(side)  # checks the name
        if side != self._active:
            self._active = side
            self.active_changed.emit(side)

    # --- internals -------------------------------------------------------------------------

    def _left_moved(self, *_args: object) -> None:
        self._moved("left", self.left, self.right)

    def _right_moved(self, *_args: object) -> None:
        self._moved("right", self.right, self.left)

    def _moved(self, side: str, source: DisplayModel, target: DisplayModel) -> None:
        if self._copying:
            return
        self.set_active(side)
        if self._linked:
            self._copy(source, target)

    def _copy(self, source: DisplayModel, target: DisplayModel) -> None:
        """Put `target` where `source` is: layout, plane, cursor (clamped to its volume) and
        window."""
        self._copying = True
        try:
            target.set_layout(source.layout)
            target.set_orientation(source.orientation)
            target.set_cursor(source.cursor)
            target.set_window(source.window, custom=source.window_is_custom)
        finally:
            self._copying = False
