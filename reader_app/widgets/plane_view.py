"""One plane of a volume in a pyqtgraph ViewBox with reading-workstation mouse conventions: the
image sized in mm, the linked cursor's mark, the orientation letters at the image's edges and, in
the three views, the plane's name and slice."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QLineF, QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import QFrame, QGraphicsLineItem, QLabel, QVBoxLayout, QWidget

from reader_app.model.display import DisplayModel
from reader_app.model.windowing import EDGE_LABELS, Orientation, pixel_at, pixel_centre

IMAGE_BACKGROUND = "#000000"
WHEEL_NOTCH = 120  # angle delta of one wheel notch
OVERLAY_MARGIN = 6  # screen pixels between an overlay label and the edge it sits at
LETTER_STYLE = ("color: #e0c060; font-size: 14px; font-weight: bold; background: transparent;")
TITLE_STYLE = "color: #b8b8b8; font-size: 12px; background: transparent;"
# The cursor mark: thin lines across the image that stop short of the cursor voxel, so the
# voxel itself stays visible; the gap is in screen pixels, the same at every zoom.
CURSOR_COLOUR = (80, 190, 255, 200)
CURSOR_GAP_PX = 7
ACTIVE_FRAME = "#3d7cc9"  # around the plane the keys and the slider step, in the three views


class SliceViewBox(pg.ViewBox):
    """A ViewBox where the wheel steps slices and left drag sets the window; right drag zooms
    and middle drag pans as pyqtgraph does. No context menu.

    It only emits signals (no reference back to the view), so no Python reference cycle ties
    the pyqtgraph items to the widgets: Qt, not the garbage collector, deletes them.
    """

    slices_stepped = Signal(int)            # +n = n slices forward
    window_dragged = Signal(float, float, bool)  # (dx, dy) pixels since the press; True at start
    clicked = Signal(float, float)          # a left click at (x, y) in mm from the image corner

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

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (Qt naming)
        """Left click (pressed and released without a drag): the linked cursor's point."""
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseClickEvent(ev)
            return
        ev.accept()
        point = self.mapSceneToView(ev.scenePos())
        self.clicked.emit(point.x(), point.y())

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 (Qt naming)
        """Left drag: window (horizontal) and level (vertical); other buttons as pyqtgraph."""
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        moved = ev.screenPos() - ev.buttonDownScreenPos(Qt.MouseButton.LeftButton)
        self.window_dragged.emit(moved.x(), moved.y(), ev.isStart())


class CursorMark:
    """The linked cursor's mark: four line segments through the cursor across the image,
    stopping short of the cursor voxel.

    Four items, not one path: each has a thin bounding box, so when the mark moves the view
    repaints thin strips of the image (pyqtgraph's views update only what changed) instead of
    the whole image, which keeps a step in one plane cheap for the other two.
    """

    def __init__(self, view_box: pg.ViewBox) -> None:
        pen = QPen(QColor(*CURSOR_COLOUR))
        pen.setCosmetic(True)  # one screen pixel wide at every zoom
        self._lines = [QGraphicsLineItem() for _ in range(4)]
        for line in self._lines:
            line.setPen(pen)
            # Outside the auto-range bounds: moving the mark must never move the view.
            view_box.addItem(line, ignoreBounds=True)
        self._visible = True
        self.set_visible(False)

    @property
    def visible(self) -> bool:
        """Whether the mark is shown."""
        return self._visible

    def set_visible(self, visible: bool) -> None:
        """Show or hide the mark."""
        self._visible = visible
        for line in self._lines:
            line.setVisible(visible)

    def set_segments(self, segments: list[tuple[float, float, float, float]]) -> None:
        """The four segments (x1, y1, x2, y2) in mm: left, right, above and below the cursor."""
        for line, segment in zip(self._lines, segments, strict=True):
            line.setLine(QLineF(*segment))

    def segments(self) -> list[tuple[float, float, float, float]]:
        """The four segments (x1, y1, x2, y2) in mm."""
        return [(ln.line().x1(), ln.line().y1(), ln.line().x2(), ln.line().y2())
                for ln in self._lines]


class PlaneView(QFrame):
    """One plane of the shared `DisplayModel`: its image sized in mm, the cursor mark, the
    orientation letters at the image's edges and, in the three views, its name and slice.

    It renders only what `SliceView` tells it to and forwards the reader's wheel, click and
    drag to the model. A plane hidden by the layout is not kept up to date: it is rendered
    afresh when it is shown again (`show_volume`).
    """

    def __init__(self, display: DisplayModel, orientation: Orientation,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = display
        self.orientation = orientation
        self.live = False  # shown by the layout, so kept in step with the model
        self._shown_slice: int | None = None  # the slice the image item holds
        self.setObjectName("plane")
        self.graphics = pg.GraphicsView(background=IMAGE_BACKGROUND)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.view_box = SliceViewBox()
        self.view_box.setBackgroundColor(IMAGE_BACKGROUND)
        self.graphics.setCentralItem(self.view_box)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.view_box.addItem(self.image_item)
        self.cursor_mark = CursorMark(self.view_box)
        self.edge_labels = [self._overlay_label(letter, LETTER_STYLE)
                            for letter in EDGE_LABELS[orientation]]
        self.title = self._overlay_label("", TITLE_STYLE)
        self.view_box.slices_stepped.connect(self._on_wheel)
        self.view_box.window_dragged.connect(display.drag_window)
        self.view_box.clicked.connect(self._on_click)
        self.view_box.sigTransformChanged.connect(self._on_transform_changed)
        self.graphics.installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.graphics)
        self.set_active(False)
        self.show_nothing()

    # --- rendering what SliceView asks for ---------------------------------------------------

    def show_volume(self) -> None:
        """Everything afresh: a new volume, or the plane shown again by the layout."""
        display = self.display
        if not display.has_volume:
            self.show_nothing()
            return
        rows, cols = display.image(self.orientation).shape
        row_mm, col_mm = display.pixel_size(self.orientation)
        self._shown_slice = None
        self.show_cursor()
        # The image spans its physical size in mm, so the locked 1:1 aspect is the true one.
        self.image_item.setRect(QRectF(0.0, 0.0, cols * col_mm, rows * row_mm))
        self.view_box.autoRange(padding=0.0)
        for label in self.edge_labels:
            label.show()
        self.title.setVisible(self.cursor_mark.visible)
        self._place_overlays()

    def show_cursor(self) -> None:
        """The cursor moved: a new image only if this plane's slice changed, else the mark only
        (cheap: runs on every slice step of any plane)."""
        display = self.display
        index = display.slice_index_of(self.orientation)
        if index != self._shown_slice:
            window = display.window
            self.image_item.setImage(display.image(self.orientation), autoLevels=False,
                                     levels=(window.low, window.high))
            self._shown_slice = index
            self.title.setText(f"{self.orientation.label}  {index + 1} / "
                               f"{display.slice_total_of(self.orientation)}")
            self.title.adjustSize()
        if self.cursor_mark.visible:
            self._place_cursor_mark()

    def show_window(self) -> None:
        """The shared display window changed."""
        if self.display.has_volume:
            window = self.display.window
            self.image_item.setLevels((window.low, window.high))

    def show_nothing(self) -> None:
        """No volume: no image, letters, mark or title."""
        self._shown_slice = None
        self.image_item.clear()
        for label in (*self.edge_labels, self.title):
            label.hide()

    def set_cursor_mark_visible(self, visible: bool) -> None:
        """The cursor mark and the plane's title, shown in the three views only."""
        self.cursor_mark.set_visible(visible)
        self.title.setVisible(visible and self.display.has_volume)
        if visible and self.display.has_volume:
            self._place_cursor_mark()

    def set_active(self, active: bool) -> None:
        """Frame the plane that the keys and the slider step."""
        colour = ACTIVE_FRAME if active else "transparent"
        self.setStyleSheet(f"#plane {{ border: 2px solid {colour}; }}")

    def reset_zoom(self) -> None:
        """The whole image in view."""
        self.view_box.autoRange(padding=0.0)

    # --- input -------------------------------------------------------------------------------

    def _on_wheel(self, slices: int) -> None:
        self.display.set_orientation(self.orientation)
        self.display.step(slices)

    def _on_click(self, x_mm: float, y_mm: float) -> None:
        if not self.display.has_volume:
            return
        shape = self.display.image(self.orientation).shape
        pixel = pixel_at(x_mm, y_mm, self.display.pixel_size(self.orientation), shape)
        if pixel is not None:
            self.display.click(self.orientation, *pixel)

    # --- overlays ----------------------------------------------------------------------------

    def _place_cursor_mark(self) -> None:
        """Lines through the cursor voxel across the image, with a gap around the voxel."""
        display = self.display
        if not display.has_volume:
            return
        pixel = display.pixel_size(self.orientation)
        rows, cols = display.image(self.orientation).shape
        width, height = cols * pixel[1], rows * pixel[0]
        x, y = pixel_centre(*display.cursor_pixel(self.orientation), pixel)
        per_px_x, per_px_y = self.view_box.viewPixelSize()
        gap_x, gap_y = CURSOR_GAP_PX * per_px_x, CURSOR_GAP_PX * per_px_y
        self.cursor_mark.set_segments([(0.0, y, max(0.0, x - gap_x), y),
                                       (min(width, x + gap_x), y, width, y),
                                       (x, 0.0, x, max(0.0, y - gap_y)),
                                       (x, min(height, y + gap_y), x, height)])

    def _on_transform_changed(self, _box: object) -> None:
        """Zoom, pan or resize: the letters follow the image's edges, the mark's gap its
        screen size."""
        self._place_overlays()
        if self.cursor_mark.visible:
            self._place_cursor_mark()

    def _image_on_screen(self) -> QRectF:
        """The image's rectangle in the graphics widget's pixels."""
        bounds = self.image_item.mapRectToParent(self.image_item.boundingRect())
        scene = self.view_box.mapViewToScene(bounds)
        return QRectF(self.graphics.mapFromScene(scene).boundingRect())

    def _place_overlays(self) -> None:
        """Each letter just outside its edge of the image where the view has room, else just
        inside it at the view's edge; centred on the part of that edge in view."""
        width, height = self.graphics.width(), self.graphics.height()
        view = QRectF(0.0, 0.0, width, height)
        image = self._image_on_screen() if self.display.has_volume else view
        seen = image.intersected(view)
        if seen.isEmpty():
            image = seen = view
        centre_x, centre_y = seen.center().x(), seen.center().y()
        top, bottom, left, right = self.edge_labels
        m = OVERLAY_MARGIN

        def clamp(value: float, low: float, high: float) -> int:
            return int(min(max(value, low), max(low, high)))

        top.move(clamp(centre_x - top.width() / 2, m, width - top.width() - m),
                 clamp(image.top() - top.height() - m, m, height - top.height() - m))
        bottom.move(clamp(centre_x - bottom.width() / 2, m, width - bottom.width() - m),
                    clamp(image.bottom() + m, m, height - bottom.height() - m))
        left.move(clamp(image.left() - left.width() - m, m, width - left.width() - m),
                  clamp(centre_y - left.height() / 2, m, height - left.height() - m))
        right.move(clamp(image.right() + m, m, width - right.width() - m),
                   clamp(centre_y - right.height() / 2, m, height - right.height() - m))
        self.title.move(m, m)

    def _overlay_label(self, text: str, style: str) -> QLabel:
        label = QLabel(text, self.graphics)
        label.setStyleSheet(style)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.adjustSize()
        return label

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt naming)
        """Keep the letters at the edges of the resized image area."""
        if watched is self.graphics and event.type() == QEvent.Type.Resize:
            self._place_overlays()
        return super().eventFilter(watched, event)
