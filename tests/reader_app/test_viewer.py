"""The slice view widget: wheel, slider, window/level drag, planes, aspect, no pyqtgraph chrome."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QPushButton

from reader_app.viewer import SliceView
from reader_app.windowing import CT_PRESETS, Orientation, Window, reslice

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
