"""The slice view's display state without Qt: plane, slice, window and the default-window rule."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.modality import CT_SOFT_TISSUE
from reader_app.display import DisplayModel
from reader_app.windowing import CT_PRESETS, Orientation, Window, reslice

SPACING = (3.0, 1.0, 1.5)
VOLUME = (np.arange(8 * 24 * 20) % 997).reshape(8, 24, 20).astype(np.int16)
CASE_WINDOW = Window(level=500.0, width=1000.0)


class Recorder:
    """Every event a model emits, in order, as (name, args)."""

    def __init__(self, model: DisplayModel) -> None:
        self.seen: list[tuple] = []
        for name in ("volume_changed", "plane_changed", "slice_changed", "window_changed"):
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
