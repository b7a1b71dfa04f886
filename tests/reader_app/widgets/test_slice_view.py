"""The slice view widget: wheel, slider, window/level drag, planes, aspect, no pyqtgraph chrome;
the three-view layout with its linked cursor, shared window, aspects and orientation letters."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QPushButton

from reader_app.model.windowing import (
    CT_PRESETS,
    EDGE_LABELS,
    Layout,
    Orientation,
    Window,
    pixel_centre,
    reslice,
)
from reader_app.widgets.plane_view import PlaneView
from reader_app.widgets.slice_view import SliceView

SPACING = (3.0, 1.0, 1.5)


@pytest.fixture
def view(qtbot):
    """A shown CT slice view holding a (8, 24, 20) volume with distinct slices."""
    widget = SliceView("CT")
    qtbot.addWidget(widget)
    widget.resize(800, 600)
    widget.show()
    qtbot.waitExposed(widget)
    volume = (np.arange(8 * 24 * 20) % 997).reshape(8, 24, 20).astype(np.int16)
    widget.set_volume(volume, SPACING, Window(level=500.0, width=1000.0))
    return widget


def wheel(view: SliceView, notches: int) -> None:
    """Turn the mouse wheel over the image by `notches` (positive = away from the user)."""
    viewport = view.graphics.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QWheelEvent(centre, viewport.mapToGlobal(centre), QPoint(0, 0),
                        QPoint(0, 120 * notches), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(viewport, event)


def test_a_new_volume_opens_at_the_middle_slice_with_its_label(view):
    """Slice 5 of 8 (0-based 4), shown as the raw plane array[4]."""
    assert view.display.slice_index == 4 and view.display.slice_total == 8
    assert view.slice_label.text() == "slice 5 / 8"
    np.testing.assert_array_equal(view.image_item.image, view.display.volume[4])


def test_wheel_steps_slices_instead_of_zooming(view):
    """One notch towards the user = next slice; the zoom does not change."""
    before = view.view_box.viewRange()
    wheel(view, -1)
    assert view.display.slice_index == 5
    wheel(view, 2)
    assert view.display.slice_index == 3
    assert view.view_box.viewRange() == before


def test_slider_and_steps_stay_in_sync_and_clamp(view):
    """The slider follows key steps and moving the slider changes the slice."""
    view.display.step(100)
    assert view.display.slice_index == 7 and view.slider.value() == 7
    view.slider.setValue(2)
    assert view.display.slice_index == 2 and view.slice_label.text() == "slice 3 / 8"
    view.display.first_slice()
    assert view.display.slice_index == 0


def drag(view: SliceView, button: Qt.MouseButton, dx: int, dy: int) -> None:
    """Drag with `button` from the image centre by (dx, dy) pixels, in five mouse moves."""
    viewport = view.graphics.viewport()
    start = QPointF(viewport.width() / 2, viewport.height() / 2)

    def send(kind, pos, changed, held):
        QApplication.sendEvent(viewport, QMouseEvent(kind, pos, viewport.mapToGlobal(pos), changed,
                                                     held, Qt.KeyboardModifier.NoModifier))

    send(QEvent.Type.MouseButtonPress, start, button, button)
    for i in range(1, 6):
        time.sleep(0.02)  # pyqtgraph drops mouse moves closer than 10 ms apart
        send(QEvent.Type.MouseMove, start + QPointF(dx * i / 5, dy * i / 5),
             Qt.MouseButton.NoButton, button)
    send(QEvent.Type.MouseButtonRelease, start + QPointF(dx, dy), button,
         Qt.MouseButton.NoButton)


def test_left_drag_sets_window_right_drag_zooms_middle_drag_pans(view):
    """The reading-room mouse: left = window/level, right = zoom, middle = pan."""
    start, view_range = view.display.window, view.view_box.viewRange()
    drag(view, Qt.MouseButton.LeftButton, 40, -20)
    assert view.display.window.width > start.width and view.display.window.level < start.level
    assert view.image_item.levels[0] == pytest.approx(view.display.window.low)
    assert view.view_box.viewRange() == view_range
    drag(view, Qt.MouseButton.RightButton, 0, -40)
    zoomed = view.view_box.viewRange()
    assert zoomed[1][1] - zoomed[1][0] < view_range[1][1] - view_range[1][0]
    drag(view, Qt.MouseButton.MiddleButton, 30, 0)
    panned = view.view_box.viewRange()
    assert panned[0][0] < zoomed[0][0]
    assert panned[0][1] - panned[0][0] == pytest.approx(zoomed[0][1] - zoomed[0][0])


def test_presets_auto_and_reset(view):
    """Presets change the displayed levels; R returns to the default window and view."""
    view.display.apply_preset(2)
    assert view.display.window == CT_PRESETS[1].window
    assert view.window_label.text() == "W 1500   L -600"
    view.display.auto_window()
    assert view.display.window == Window(level=500.0, width=1000.0)
    view.view_box.scaleBy((0.5, 0.5))
    view.reset()
    assert view.display.window == CT_PRESETS[0].window  # CT without study window: soft tissue
    low, high = view.view_box.viewRange()[1]
    assert (low, high) == (pytest.approx(0.0), pytest.approx(24.0))


def test_a_chosen_window_is_kept_for_the_next_case(view):
    """A preset the reader picked stays when the next case opens; the default does not stick."""
    view.display.apply_preset(3)
    view.set_volume(np.zeros((4, 4, 4), np.int16), SPACING, Window(0.0, 10.0))
    assert view.display.window == CT_PRESETS[2].window


def test_planes_reslice_and_use_the_voxel_spacing(view):
    """Coronal shows (D, W) planes sized in mm, so 3 mm slices look 3x as tall as 1 mm pixels."""
    view.display.set_orientation(Orientation.CORONAL)
    assert view.display.slice_total == 24 and view.display.slice_index == 12
    np.testing.assert_array_equal(view.image_item.image,
                                  reslice(view.display.volume, Orientation.CORONAL, 12))
    rect = view.image_item.mapRectToParent(view.image_item.boundingRect())
    assert rect.width() == pytest.approx(20 * 1.5) and rect.height() == pytest.approx(8 * 3.0)
    checked = [b.text() for b in view.plane_buttons.buttons() if b.isChecked()]
    assert checked == ["Coronal"]
    view.display.cycle_orientation()
    assert view.display.orientation is Orientation.SAGITTAL and view.display.slice_total == 20


def test_no_pyqtgraph_menus_histograms_or_focusable_controls(view):
    """No context menu, no histogram or ROI buttons; keys always reach the main window."""
    assert not view.view_box.menuEnabled()
    assert view.view_box.state["aspectLocked"] and view.view_box.yInverted()
    names = {type(w).__name__ for w in view.findChildren(object)}
    assert not names & {"HistogramLUTWidget", "HistogramLUTItem", "ROI", "ImageView"}
    for button in view.findChildren(QPushButton):
        assert button.focusPolicy() == Qt.FocusPolicy.NoFocus


def test_clear_shows_a_message_and_no_image(view):
    """While loading, or for an unreadable case, the view shows only a message."""
    view.clear("Loading…")
    assert not view.display.has_volume and view.image_item.image is None
    assert view._message.isVisible() and view.slice_label.text() == ""


def test_a_model_change_updates_the_widget(view):
    """The widget renders whatever the display model says, however the change came about."""
    display = view.display
    display.set_slice(1)
    assert view.slider.value() == 1 and view.slice_label.text() == "slice 2 / 8"
    np.testing.assert_array_equal(view.image_item.image, display.volume[1])
    display.set_window(Window(level=-600.0, width=1500.0), custom=True)
    assert view.image_item.levels[0] == pytest.approx(-1350.0)
    assert view.window_label.text() == "W 1500   L -600"
    display.set_orientation(Orientation.SAGITTAL)
    assert [b.text() for b in view.plane_buttons.buttons() if b.isChecked()] == ["Sagittal"]
    assert view.slider.maximum() == 19 and view.slider.value() == 10
    assert view.slice_label.text() == "slice 11 / 20"
    np.testing.assert_array_equal(view.image_item.image,
                                  reslice(display.volume, Orientation.SAGITTAL, 10))
    display.clear()
    assert view.image_item.image is None and view.slice_label.text() == ""


def test_the_controls_forward_to_the_model(view):
    """Plane and preset buttons change the model (and so the picture), not the widget alone."""
    coronal = next(b for b in view.plane_buttons.buttons() if b.text() == "Coronal")
    coronal.click()
    assert view.display.orientation is Orientation.CORONAL
    lung = next(b for b in view.preset_buttons if b.text().startswith("Lung"))
    lung.click()
    assert view.display.window == CT_PRESETS[1].window and view.display.window_is_custom


# An asymmetric volume (distinct sizes and spacings on every axis) with one marked voxel.
ASYMMETRIC = (7, 11, 13)
ASYMMETRIC_SPACING = (4.0, 0.8, 1.2)  # mm, (D, H, W): thick slices, as in most studies
MARKER = (2, 8, 3)                    # (d, h, w)
MARKER_VALUE = 1000


@pytest.fixture
def three(qtbot):
    """A shown CT slice view in the three-view layout holding the marked asymmetric volume."""
    widget = SliceView("CT", layout=Layout.THREE)
    qtbot.addWidget(widget)
    widget.resize(1200, 600)
    widget.show()
    qtbot.waitExposed(widget)
    volume = np.zeros(ASYMMETRIC, np.int16)
    volume[MARKER] = MARKER_VALUE
    widget.set_volume(volume, ASYMMETRIC_SPACING, Window(level=500.0, width=1000.0))
    QApplication.processEvents()
    return widget


def click_pixel(qtbot, plane: PlaneView, row: int, col: int) -> None:
    """A left click on the screen centre of pixel (row, col) of `plane`'s image."""
    x, y = pixel_centre(row, col, plane.display.pixel_size(plane.orientation))
    position = plane.graphics.mapFromScene(plane.view_box.mapViewToScene(QPointF(x, y)))
    qtbot.mouseClick(plane.graphics.viewport(), Qt.MouseButton.LeftButton, pos=position)


def test_the_three_views_show_the_three_planes_through_the_centre(three):
    """Axial, coronal and sagittal side by side, each with its middle slice and its title."""
    planes = [three.planes[o] for o in Orientation]
    assert all(plane.isVisible() for plane in planes)
    assert planes[0].x() < planes[1].x() < planes[2].x()
    for plane in planes:
        index = three.display.slice_index_of(plane.orientation)
        np.testing.assert_array_equal(plane.image_item.image,
                                      reslice(three.display.volume, plane.orientation, index))
        assert plane.cursor_mark.visible and plane.title.isVisible()
    assert [p.title.text() for p in planes] == ["Axial  4 / 7", "Coronal  6 / 11",
                                                "Sagittal  7 / 13"]
    assert three.layout_button.isChecked()


def test_a_click_moves_the_other_views_to_the_clicked_voxel(qtbot, three):
    """On the axial slice through the marker, a click on the marker's pixel moves the coronal
    view to slice h and the sagittal to slice w of the marker, each showing the marker under
    its cursor mark; a click in the sagittal view then moves the axial and coronal views."""
    axial, coronal, sagittal = (three.planes[o] for o in Orientation)
    three.display.set_slice(MARKER[0])
    click_pixel(qtbot, axial, MARKER[1], MARKER[2])
    assert three.display.cursor == MARKER
    assert three.display.slice_index_of(Orientation.CORONAL) == MARKER[1]
    assert three.display.slice_index_of(Orientation.SAGITTAL) == MARKER[2]
    depth = ASYMMETRIC[0]
    assert coronal.image_item.image[depth - 1 - MARKER[0], MARKER[2]] == MARKER_VALUE
    assert sagittal.image_item.image[depth - 1 - MARKER[0], MARKER[1]] == MARKER_VALUE
    assert coronal.title.text() == f"Coronal  {MARKER[1] + 1} / 11"
    # The cursor mark crosses at the centre of the marker's pixel in every view.
    for plane in (axial, coronal, sagittal):
        left, right, above, below = plane.cursor_mark.segments()
        row, col = three.display.cursor_pixel(plane.orientation)
        x, y = pixel_centre(row, col, three.display.pixel_size(plane.orientation))
        assert left[1] == right[1] == pytest.approx(y) and left[0] == 0.0
        assert above[0] == below[0] == pytest.approx(x) and above[1] == 0.0
        assert left[2] < x < right[0] and above[3] < y < below[1]  # a gap at the voxel
        assert plane.image_item.image[row, col] == MARKER_VALUE
    click_pixel(qtbot, sagittal, depth - 1 - 5, 1)  # superior row of d = 5, anterior h = 1
    assert three.display.cursor == (5, 1, MARKER[2])
    assert three.display.orientation is Orientation.SAGITTAL
    assert three.display.slice_index_of(Orientation.AXIAL) == 5
    assert three.display.slice_index_of(Orientation.CORONAL) == 1
    assert sagittal.styleSheet().count("#3d7cc9") == 1  # framed: the keys step it now
    assert "transparent" in axial.styleSheet()


def test_the_wheel_steps_the_view_under_it_and_makes_it_current(three):
    """Two notches towards the reader over the sagittal view: two sagittal slices on (w), the
    sagittal view framed, the slider and label now its; the other views' slices stay."""
    sagittal = three.planes[Orientation.SAGITTAL]
    viewport = sagittal.graphics.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    QApplication.sendEvent(viewport, QWheelEvent(
        centre, viewport.mapToGlobal(centre), QPoint(0, 0), QPoint(0, -240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False))
    assert three.display.orientation is Orientation.SAGITTAL
    assert three.display.cursor == (3, 5, 8)
    assert three.slider.maximum() == 12 and three.slider.value() == 8
    assert three.slice_label.text() == "slice 9 / 13"
    assert [b.text() for b in three.plane_buttons.buttons() if b.isChecked()] == ["Sagittal"]


def test_a_step_re_renders_only_the_stepped_view(three):
    """Stepping the axial view sets a new axial image; the coronal and sagittal views keep
    their images and only move their cursor marks."""
    axial, coronal, sagittal = (three.planes[o] for o in Orientation)
    images = {plane: plane.image_item.image for plane in (axial, coronal, sagittal)}
    marks = {plane: plane.cursor_mark.segments()[0][1] for plane in (coronal, sagittal)}
    three.display.step(1)
    assert axial.image_item.image is not images[axial]
    for plane in (coronal, sagittal):
        assert plane.image_item.image is images[plane]
        # One slice up (4 mm) is one row higher on screen.
        assert plane.cursor_mark.segments()[0][1] == pytest.approx(marks[plane] - 4.0)


def test_one_window_for_the_three_views(qtbot, three):
    """A left drag in the coronal view sets the window of all three."""
    start = three.display.window
    coronal = three.planes[Orientation.CORONAL]
    drag(coronal, Qt.MouseButton.LeftButton, 40, -20)
    window = three.display.window
    assert window.width > start.width and window.level < start.level
    for plane in three.planes.values():
        assert tuple(plane.image_item.levels) == (pytest.approx(window.low),
                                                  pytest.approx(window.high))
    assert three.display.cursor == (3, 5, 6)  # a drag is no click: the cursor stays


def test_each_view_has_the_aspect_of_its_voxel_spacing(three):
    """The coronal and sagittal rows are 4 mm slices, the in-plane pixels 0.8 x 1.2 mm: each
    image spans its size in mm, and on screen its width to height is that of the mm."""
    sizes = {Orientation.AXIAL: (13 * 1.2, 11 * 0.8), Orientation.CORONAL: (13 * 1.2, 7 * 4.0),
             Orientation.SAGITTAL: (11 * 0.8, 7 * 4.0)}
    for orientation, (width_mm, height_mm) in sizes.items():
        plane = three.planes[orientation]
        rect = plane.image_item.mapRectToParent(plane.image_item.boundingRect())
        assert (rect.width(), rect.height()) == (pytest.approx(width_mm),
                                                 pytest.approx(height_mm))
        on_screen = plane._image_on_screen()
        assert on_screen.width() / on_screen.height() == pytest.approx(width_mm / height_mm,
                                                                       rel=0.03)


def test_orientation_letters_sit_at_each_views_image_edges(three):
    """Each view has its four letters, centred on their edges of the image: just outside an
    edge where the view has room for the letter (the axial image here is wide, so above and
    below it; the coronal and sagittal are tall, so beside them), else just inside the view."""
    outside = {Orientation.AXIAL: {"top", "bottom"}, Orientation.CORONAL: {"left", "right"},
               Orientation.SAGITTAL: {"left", "right"}}
    for orientation, plane in three.planes.items():
        top, bottom, left, right = plane.edge_labels
        assert tuple(label.text() for label in plane.edge_labels) == EDGE_LABELS[orientation]
        assert all(label.isVisible() for label in plane.edge_labels)
        image, view = plane._image_on_screen(), plane.graphics.rect()
        sides = {"top": top.geometry().bottom() < image.top(),
                 "bottom": bottom.geometry().top() > image.bottom(),
                 "left": left.geometry().right() < image.left(),
                 "right": right.geometry().left() > image.right()}
        assert {side for side, out in sides.items() if out} == outside[orientation]
        for label in (top, bottom):
            assert label.geometry().center().x() == pytest.approx(image.center().x(), abs=2)
        for label in (left, right):
            assert label.geometry().center().y() == pytest.approx(image.center().y(), abs=2)
        for label in plane.edge_labels:
            assert view.contains(label.geometry())


def test_the_layout_button_toggles_back_to_the_single_view(qtbot, three):
    """One plane again, without cursor marks or titles; V then shows the next plane alone,
    through the cursor."""
    qtbot.mouseClick(three.layout_button, Qt.MouseButton.LeftButton)
    assert three.display.layout is Layout.SINGLE and not three.layout_button.isChecked()
    visible = [o for o, plane in three.planes.items() if plane.isVisible()]
    assert visible == [Orientation.AXIAL]
    assert not three.planes[Orientation.AXIAL].cursor_mark.visible
    assert not three.planes[Orientation.AXIAL].title.isVisible()
    three.display.cycle_orientation()
    assert [o for o, plane in three.planes.items() if plane.isVisible()] == [Orientation.CORONAL]
    assert three.image_item is three.planes[Orientation.CORONAL].image_item
    np.testing.assert_array_equal(three.image_item.image,
                                  reslice(three.display.volume, Orientation.CORONAL, 5))
