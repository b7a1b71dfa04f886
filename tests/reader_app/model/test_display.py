"""The slice view's display state without Qt: plane, slice, window and the default-window rule,
the linked cursor and the layout."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.modality import CT_SOFT_TISSUE
from reader_app.model.display import DisplayModel
from reader_app.model.windowing import CT_PRESETS, Layout, Orientation, Window, reslice

SPACING = (3.0, 1.0, 1.5)
VOLUME = (np.arange(8 * 24 * 20) % 997).reshape(8, 24, 20).astype(np.int16)
CASE_WINDOW = Window(level=500.0, width=1000.0)


class Recorder:
    """The named events a model emits, in order, as (name, args)."""

    def __init__(self, model: DisplayModel,
                 names: tuple[str, ...] = ("volume_changed", "plane_changed", "slice_changed",
                                           "window_changed")) -> None:
        self.seen: list[tuple] = []
        for name in names:
            getattr(model, name).connect(lambda *args, n=name: self.seen.append((n, *args)))


@pytest.fixture
def model() -> DisplayModel:
    """A CT model showing the (8, 24, 20) test volume."""
    display = DisplayModel("CT")
    display.set_volume(VOLUME, SPACING, CASE_WINDOW)
    return display


def test_a_new_volume_opens_at_the_middle_slice_of_the_plane():
    """Slice 4 of 8 axially, announced by one volume_changed and nothing else."""
    display = DisplayModel("CT")
    events = Recorder(display)
    assert not display.has_volume and display.slice_total == 0
    display.set_volume(VOLUME, SPACING, CASE_WINDOW)
    assert events.seen == [("volume_changed",)]
    assert display.slice_index == 4 and display.slice_total == 8
    np.testing.assert_array_equal(display.image(), VOLUME[4])
    assert display.pixel_size() == (1.0, 1.5)


@pytest.mark.parametrize("modality, study_window, expected", [
    ("CT", None, Window(*CT_SOFT_TISSUE)),                   # soft tissue, 400/40 HU
    ("MR", None, CASE_WINDOW),                               # the case's percentile window
    ("CT", Window(level=-600.0, width=1500.0), Window(level=-600.0, width=1500.0)),
    ("MR", Window(level=300.0, width=200.0), Window(level=300.0, width=200.0)),
])
def test_the_default_window_rule(modality, study_window, expected):
    """The study's window if it sets one, else soft tissue for CT, else the case's own."""
    display = DisplayModel(modality, study_window)
    display.set_volume(VOLUME, SPACING, CASE_WINDOW)
    assert display.window == expected == display.default_window()
    assert not display.window_is_custom


def test_an_mr_default_window_follows_each_case_but_a_chosen_one_stays(model):
    """Without a choice each case opens in its own window; after F-key or drag it is kept."""
    mr = DisplayModel("MR")
    mr.set_volume(VOLUME, SPACING, CASE_WINDOW)
    mr.set_volume(VOLUME, SPACING, Window(level=10.0, width=20.0))
    assert mr.window == Window(level=10.0, width=20.0)
    model.apply_preset(3)
    model.set_volume(np.zeros((4, 4, 4), np.int16), SPACING, Window(0.0, 10.0))
    assert model.window == CT_PRESETS[2].window and model.window_is_custom
    model.reset_window()
    assert model.window == CT_PRESETS[0].window and not model.window_is_custom


def test_slices_clamp_and_only_a_change_is_announced(model):
    """Steps stop at the ends; asking for the slice already shown emits nothing."""
    events = Recorder(model)
    model.step(100)
    model.step(1)
    model.first_slice()
    model.set_slice(0)
    model.last_slice()
    assert events.seen == [("slice_changed", 7), ("slice_changed", 0), ("slice_changed", 7)]
    np.testing.assert_array_equal(model.image(), VOLUME[7])


def test_another_plane_opens_at_its_middle_slice(model):
    """Coronal has 24 slices (H) and opens at 12; the cycle is axial, coronal, sagittal."""
    events = Recorder(model)
    model.set_orientation(Orientation.CORONAL)
    model.set_orientation(Orientation.CORONAL)
    assert events.seen == [("plane_changed", Orientation.CORONAL)]
    assert model.slice_total == 24 and model.slice_index == 12
    np.testing.assert_array_equal(model.image(), reslice(VOLUME, Orientation.CORONAL, 12))
    assert model.pixel_size() == (3.0, 1.5)
    model.cycle_orientation()
    assert model.orientation is Orientation.SAGITTAL and model.slice_index == 10
    model.cycle_orientation()
    assert model.orientation is Orientation.AXIAL


def test_window_presets_auto_and_drag(model):
    """F1-F4 set the HU presets (CT only), F5 the case's window; a drag works from the window
    at the press, so the whole drag is one relative move."""
    events = Recorder(model)
    model.apply_preset(2)
    assert model.window == CT_PRESETS[1].window and model.window_is_custom
    model.apply_preset(9)
    assert model.window == CT_PRESETS[1].window
    model.auto_window()
    assert model.window == CASE_WINDOW
    model.drag_window(10, 0, starting=True)
    model.drag_window(40, -20, starting=False)
    assert model.window == Window(level=500.0 - 20 * 10.0, width=1000.0 + 40 * 10.0)
    assert [name for name, *_ in events.seen] == ["window_changed"] * 4
    mr = DisplayModel("MR")
    mr.set_volume(VOLUME, SPACING, CASE_WINDOW)
    mr.apply_preset(1)
    assert mr.window == CASE_WINDOW and not mr.window_is_custom


def test_bad_values_are_refused_before_anything_changes(model):
    """A zero-width window or a 2D array is an error; the state stays as it was."""
    with pytest.raises(ValueError, match="positive width"):
        model.set_window(Window(level=0.0, width=0.0))
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        model.set_volume(VOLUME[0], SPACING, CASE_WINDOW)
    with pytest.raises(ValueError, match="spacing"):
        model.set_volume(VOLUME, (1.0, 0.0, 1.0), CASE_WINDOW)
    assert model.window == CT_PRESETS[0].window and model.volume is VOLUME


def test_clear_leaves_no_image_and_slices_do_nothing(model):
    """Without a volume there is no image to ask for and no slice to move to."""
    events = Recorder(model)
    model.clear()
    model.step(1)
    assert events.seen == [("volume_changed",)]
    assert not model.has_volume and model.slice_total == 0
    with pytest.raises(RuntimeError):
        model.image()


# An asymmetric volume (distinct sizes on every axis) with one marked voxel.
ASYMMETRIC = (7, 11, 13)
MARKER = (2, 8, 3)                 # (d, h, w)
MARKER_VALUE = 1000


def marked_volume() -> np.ndarray:
    """Zeros but for MARKER_VALUE at MARKER."""
    volume = np.zeros(ASYMMETRIC, np.int16)
    volume[MARKER] = MARKER_VALUE
    return volume


def cursor_recorder(model: DisplayModel) -> Recorder:
    """A recorder of the cursor, slice, plane and layout events."""
    return Recorder(model, ("cursor_changed", "slice_changed", "plane_changed", "layout_changed"))


@pytest.fixture
def three() -> DisplayModel:
    """A model in the three-view layout showing the marked asymmetric volume."""
    display = DisplayModel("CT", layout=Layout.THREE)
    display.set_volume(marked_volume(), (3.0, 0.8, 0.9), CASE_WINDOW)
    return display


def test_the_cursor_opens_at_the_centre_so_every_plane_is_at_its_middle(three):
    """One voxel places all three planes: axial slice d, coronal h, sagittal w."""
    assert three.cursor == (3, 5, 6)
    assert [three.slice_index_of(o) for o in Orientation] == [3, 5, 6]
    assert [three.slice_total_of(o) for o in Orientation] == [7, 11, 13]
    assert three.cursor_pixel(Orientation.CORONAL) == (3, 6)   # row 6 - d, column w
    assert three.cursor_pixel(Orientation.SAGITTAL) == (3, 5)  # row 6 - d, column h


@pytest.mark.parametrize("orientation", list(Orientation))
def test_a_click_moves_the_other_planes_to_the_clicked_voxel(three, orientation):
    """With the plane through the marker, a click on the marker's pixel puts the cursor on the
    marker, and each of the other planes then shows the marker at the cursor's pixel."""
    three.set_orientation(orientation)
    three.set_slice({Orientation.AXIAL: MARKER[0], Orientation.CORONAL: MARKER[1],
                     Orientation.SAGITTAL: MARKER[2]}[orientation])
    row, col = np.argwhere(three.image(orientation) == MARKER_VALUE)[0]
    events = cursor_recorder(three)
    three.set_orientation(Orientation.AXIAL if orientation is not Orientation.AXIAL
                          else Orientation.CORONAL)
    events.seen.clear()
    three.click(orientation, int(row), int(col))
    assert three.cursor == MARKER
    assert three.orientation is orientation  # the clicked plane is the one the keys step now
    assert [three.slice_index_of(o) for o in Orientation] == list(MARKER)
    for other in Orientation:
        assert three.image(other)[three.cursor_pixel(other)] == MARKER_VALUE
    assert events.seen[0] == ("plane_changed", orientation)
    assert ("cursor_changed", MARKER) in events.seen


def test_a_step_moves_the_cursor_along_the_current_plane_only(three):
    """Stepping the axial plane changes d: the coronal and sagittal slices stay (only their
    cursor marks move); slice_changed speaks of the current plane alone."""
    events = cursor_recorder(three)
    three.step(2)
    assert three.cursor == (5, 5, 6)
    assert events.seen == [("cursor_changed", (5, 5, 6)), ("slice_changed", 5)]
    assert three.slice_index_of(Orientation.CORONAL) == 5
    assert three.slice_index_of(Orientation.SAGITTAL) == 6
    events.seen.clear()
    three.set_cursor((5, 9, 6))  # moving within the axial plane: its slice stays
    assert events.seen == [("cursor_changed", (5, 9, 6))]
    three.set_cursor((99, -4, 6))
    assert three.cursor == (6, 0, 6)  # clamped to the volume


def test_the_single_view_ignores_clicks_and_switches_planes_through_the_cursor():
    """A stray click in the single view changes nothing; the next plane goes through the
    cursor, so after the three views the single view shows the point the reader chose."""
    display = DisplayModel("CT")
    display.set_volume(marked_volume(), (3.0, 0.8, 0.9), CASE_WINDOW)
    events = cursor_recorder(display)
    display.click(Orientation.AXIAL, 8, 3)
    assert events.seen == [] and display.cursor == (3, 5, 6)
    display.toggle_layout()
    display.click(Orientation.AXIAL, 8, 3)
    display.toggle_layout()
    assert events.seen[0] == ("layout_changed", Layout.THREE)
    assert events.seen[-1] == ("layout_changed", Layout.SINGLE)
    display.set_orientation(Orientation.SAGITTAL)
    assert display.slice_index == 3  # w of the clicked voxel
    np.testing.assert_array_equal(display.image(), reslice(display.volume,
                                                           Orientation.SAGITTAL, 3))


def test_one_window_for_every_plane_and_layout_kept_across_cases(three):
    """The window is the model's, not a plane's; a new case keeps the layout and the plane."""
    three.set_orientation(Orientation.SAGITTAL)
    three.drag_window(30, 0, starting=True)
    window = three.window
    three.set_volume(VOLUME, SPACING, CASE_WINDOW)
    assert three.layout is Layout.THREE and three.orientation is Orientation.SAGITTAL
    assert three.window == window and three.cursor == (4, 12, 10)
    assert three.pixel_size(Orientation.CORONAL) == (3.0, 1.5)
    assert three.pixel_size(Orientation.SAGITTAL) == (3.0, 1.0)
