"""The linked display state of a paired (2AFC) trial, without Qt: one slice, plane, layout and
window for both sides while linked, each side alone while unlinked."""

from __future__ import annotations

import numpy as np
import pytest

from reader_app.model.loader import CaseImage
from reader_app.model.pair import LinkedDisplays, pair_window
from reader_app.model.windowing import Layout, Orientation, Window

SHAPE = (8, 24, 20)


def image(level: float, width: float, shape: tuple[int, int, int] = SHAPE) -> CaseImage:
    return CaseImage(np.zeros(shape, np.int16), (3.0, 1.0, 1.5), Window(level, width))


@pytest.fixture
def pair() -> LinkedDisplays:
    linked = LinkedDisplays("MR")
    linked.set_volumes(image(100.0, 40.0), image(200.0, 80.0))
    return linked


def test_the_pair_opens_in_one_window_between_the_members_auto_windows():
    """Neither member gets a window fitted to it alone: low and high are the means of theirs."""
    assert pair_window(Window(100.0, 40.0), Window(200.0, 80.0)) == Window(150.0, 60.0)
    linked = LinkedDisplays("MR")
    linked.set_volumes(image(100.0, 40.0), image(200.0, 80.0))
    assert linked.left.window == linked.right.window == Window(150.0, 60.0)
    assert linked.left.slice_index == linked.right.slice_index == 4  # the middle slice


def test_linked_a_step_plane_layout_and_window_on_either_side_move_both(pair):
    pair.left.step(2)
    assert pair.left.slice_index == pair.right.slice_index == 6
    pair.right.step(-5)
    assert pair.left.slice_index == pair.right.slice_index == 1
    pair.right.set_orientation(Orientation.CORONAL)
    assert pair.left.orientation is Orientation.CORONAL
    pair.left.set_layout(Layout.THREE)
    assert pair.right.layout is Layout.THREE
    pair.right.drag_window(30.0, 0.0, starting=True)
    assert pair.left.window == pair.right.window != Window(150.0, 60.0)
    assert pair.left.window_is_custom and pair.right.window_is_custom
    assert pair.left.cursor == pair.right.cursor


def test_the_side_moved_last_is_the_active_one(pair):
    events = []
    pair.active_changed.connect(events.append)
    assert pair.active_side == "left" and pair.active is pair.left
    pair.right.step(1)
    assert pair.active_side == "right" and pair.active is pair.right and events == ["right"]
    pair.right.step(1)  # a copy to the other side never makes that side active
    assert events == ["right"]
    with pytest.raises(ValueError):
        pair.set_active("middle")


def test_unlinked_each_side_moves_alone_and_relinking_puts_the_right_where_the_left_is(pair):
    changes = []
    pair.link_changed.connect(changes.append)
    pair.toggle_link()
    assert not pair.linked and changes == [False]
    pair.left.step(3)
    pair.right.set_orientation(Orientation.SAGITTAL)
    pair.right.auto_window()
    assert pair.left.slice_index == 7 and pair.right.cursor == (4, 12, 10)
    assert pair.left.orientation is Orientation.AXIAL
    pair.set_linked(True)
    assert changes == [False, True]
    assert pair.right.orientation is Orientation.AXIAL
    assert pair.right.cursor == pair.left.cursor == (7, 12, 10)
    assert pair.right.window == pair.left.window
    pair.set_linked(True)  # no change, no event
    assert changes == [False, True]


def test_a_new_trial_keeps_the_readers_window_and_plane_on_both_sides(pair):
    pair.left.set_window(Window(10.0, 5.0), custom=True)
    pair.right.set_orientation(Orientation.CORONAL)
    pair.set_volumes(image(500.0, 100.0), image(700.0, 100.0))
    for side in (pair.left, pair.right):
        assert side.window == Window(10.0, 5.0) and side.orientation is Orientation.CORONAL
        assert side.cursor == (4, 12, 10)
    pair.left.reset_window()  # back to the new pair's own window, on both sides
    assert pair.left.window == pair.right.window == Window(600.0, 100.0)
    assert not pair.right.window_is_custom


def test_a_cursor_is_clamped_to_the_other_sides_volume():
    """Members of one study share a shape; should they not, the copy stays inside."""
    linked = LinkedDisplays("MR")
    linked.set_volumes(image(0.0, 10.0, (12, 24, 20)), image(0.0, 10.0, (6, 24, 20)))
    linked.left.last_slice()
    assert linked.left.slice_index == 11 and linked.right.slice_index == 5
    linked.clear()
    assert not linked.has_volumes


def test_the_sides_stay_unlinked_for_the_next_trial(pair):
    pair.set_linked(False)
    pair.right.step(2)
    pair.set_volumes(image(100.0, 40.0), image(200.0, 80.0))
    assert not pair.linked and pair.left.slice_index == pair.right.slice_index == 4
    pair.right.step(1)
    assert pair.left.slice_index == 4 and pair.right.slice_index == 5
