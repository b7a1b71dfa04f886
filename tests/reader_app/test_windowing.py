"""Window/level maths, presets, percentile auto-window and reslicing, without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from reader_app.windowing import (
    CT_PRESETS,
    Orientation,
    Window,
    drag_window,
    middle_slice,
    percentile_window,
    pixel_size,
    reslice,
    slice_count,
    study_percentiles,
    study_window,
)


def test_ct_presets_are_the_radiological_width_level_pairs():
    """Soft tissue 400/40, lung 1500/-600, bone 2500/480, brain 80/40 on F1-F4."""
    table = {p.name: (p.window.width, p.window.level, p.key) for p in CT_PRESETS}
    assert table == {"Soft tissue": (400, 40, "F1"), "Lung": (1500, -600, "F2"),
                     "Bone": (2500, 480, "F3"), "Brain": (80, 40, "F4")}
    lung = CT_PRESETS[1].window
    assert (lung.low, lung.high) == (-1350.0, 150.0)


def test_percentile_window_spans_the_half_and_99_5_percentiles():
    """The MR auto-window runs from the 0.5th to the 99.5th percentile of the whole volume."""
    volume = np.arange(1000, dtype=np.int16).reshape(10, 10, 10)
    window = percentile_window(volume)
    assert window.low == pytest.approx(np.percentile(volume, 0.5))
    assert window.high == pytest.approx(np.percentile(volume, 99.5))


def test_percentile_window_of_a_constant_volume_has_a_positive_width():
    """A flat volume must not give a zero-width window (a division by zero in the display)."""
    window = percentile_window(np.full((4, 4, 4), 7, dtype=np.int16))
    assert window.width > 0 and window.level == pytest.approx(7.0)


def test_left_drag_right_widens_and_down_raises_the_level():
    """Horizontal drag changes the width, vertical the level, relative to the start window."""
    start = Window(level=40.0, width=400.0)
    wider = drag_window(start, dx=50, dy=0)
    assert wider.width > start.width and wider.level == start.level
    higher = drag_window(start, dx=0, dy=30)
    assert higher.level > start.level and higher.width == start.width
    assert drag_window(start, dx=-10_000, dy=0).width >= 1.0


def test_axial_slice_is_the_array_plane_unchanged():
    """array[k] row by row is the radiological axial view: anterior top, right on the left."""
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    np.testing.assert_array_equal(reslice(volume, Orientation.AXIAL, 2), volume[2])


def test_coronal_and_sagittal_put_superior_at_the_top():
    """D runs inferior -> superior, so the top row of coronal/sagittal images is the last D."""
    volume = np.arange(4 * 5 * 6).reshape(4, 5, 6)
    coronal = reslice(volume, Orientation.CORONAL, 1)
    assert coronal.shape == (4, 6)
    np.testing.assert_array_equal(coronal[0], volume[3, 1, :])
    sagittal = reslice(volume, Orientation.SAGITTAL, 5)
    assert sagittal.shape == (4, 5)
    # Anterior (h = 0) on the left, superior on top.
    assert sagittal[0, 0] == volume[3, 0, 5]
    with pytest.raises(IndexError):
        reslice(volume, Orientation.SAGITTAL, 6)


def test_slice_counts_pixel_sizes_and_middle():
    """Each plane has its own slice count and the in-plane spacing of its two axes."""
    shape, spacing = (32, 256, 200), (3.0, 0.7, 0.8)
    assert [slice_count(shape, o) for o in Orientation] == [32, 256, 200]
    assert pixel_size(spacing, Orientation.AXIAL) == (0.7, 0.8)
    assert pixel_size(spacing, Orientation.CORONAL) == (3.0, 0.8)
    assert pixel_size(spacing, Orientation.SAGITTAL) == (3.0, 0.7)
    assert middle_slice(shape, Orientation.AXIAL) == 16
    assert Orientation.SAGITTAL.following() is Orientation.AXIAL


def test_study_viewer_defaults():
    """study.json's viewer block: a CT window [level, width] and MR percentiles."""
    assert study_window({"window": [40, 400]}) == Window(level=40.0, width=400.0)
    assert study_window({}) is None and study_window({"window": [40, 0]}) is None
    assert study_percentiles({"percentile": [1, 99]}) == (1.0, 99.0)
    assert study_percentiles({"percentile": [99, 1]}) == (0.5, 99.5)
