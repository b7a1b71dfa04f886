"""Window/level maths, presets, the MR auto-window of the foreground, reslicing, the linked
cursor's voxel mapping and the layouts, without Qt."""

from __future__ import annotations

import numpy as np
import pytest

from reader_app.model.windowing import (
    CT_PRESETS,
    EDGE_LABELS,
    Layout,
    Orientation,
    Window,
    drag_window,
    foreground_window,
    middle_slice,
    otsu_threshold,
    percentile_window,
    pixel_at,
    pixel_centre,
    pixel_size,
    reslice,
    slice_count,
    study_layout,
    study_percentiles,
    study_window,
    view_to_voxel,
    voxel_to_view,
)
from studies.normalise import Grid

# Distinct sizes on all three axes, so a swapped or unflipped axis cannot pass unnoticed.
ASYMMETRIC = (7, 11, 13)


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


def _head_in_air(seed: int = 0) -> np.ndarray:
    """A 40^3 volume: dark noisy air (0-30) around a sphere of tissue with values 1000-2000,
    each voxel of the sphere drawn uniformly, so its percentiles are known."""
    rng = np.random.default_rng(seed)
    d, h, w = np.meshgrid(*(np.arange(40),) * 3, indexing="ij")
    sphere = (d - 19.5) ** 2 + (h - 19.5) ** 2 + (w - 19.5) ** 2 < 15 ** 2
    volume = rng.integers(0, 31, sphere.shape)
    volume[sphere] = rng.integers(1000, 2001, int(sphere.sum()))
    return volume.astype(np.int16)


def test_otsu_threshold_falls_between_two_classes():
    """Otsu's cut lies between the air and the tissue, whatever their shares."""
    volume = _head_in_air()
    assert 30 < otsu_threshold(volume) < 1000
    skewed = np.concatenate([np.zeros(9_000), np.full(1_000, 800.0)])
    assert 0 < otsu_threshold(skewed) < 800


def test_the_mr_auto_window_spans_the_foreground_percentiles():
    """The auto-window runs from the 0.5th to the 99.5th percentile of the tissue, not of the
    whole volume (whose air would put the low end at 0 and show the tissue pale)."""
    volume = _head_in_air()
    tissue = volume[volume >= 1000]
    window = foreground_window(volume)
    assert window.low == pytest.approx(np.percentile(tissue, 0.5))
    assert window.high == pytest.approx(np.percentile(tissue, 99.5))
    assert 1000 <= window.low < 1010 and 1990 < window.high <= 2000
    assert percentile_window(volume).low < 31  # the whole volume's window starts in the air
    assert foreground_window(volume, (10.0, 90.0)).low == pytest.approx(
        np.percentile(tissue, 10.0))


def test_the_auto_window_of_a_volume_without_a_foreground_is_the_whole_volume():
    """A constant volume, or a few bright voxels, gets the whole volume's percentiles."""
    flat = np.full((4, 4, 4), 7, dtype=np.int16)
    assert foreground_window(flat) == percentile_window(flat)
    speck = np.zeros((20, 20, 20), dtype=np.int16)
    speck[0, 0, :3] = 1000
    assert foreground_window(speck) == percentile_window(speck)


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


def test_study_layout_defaults_to_the_single_view_and_names_the_choices():
    """`"layout"` in the viewer block picks the layout; absent is today's single view; any other
    value is refused with the allowed ones."""
    assert study_layout({}) is Layout.SINGLE
    assert study_layout({"layout": "single"}) is Layout.SINGLE
    assert study_layout({"layout": "three"}) is Layout.THREE
    with pytest.raises(ValueError, match='\'quad\' is not "single" or "three"'):
        study_layout({"layout": "quad"})
    assert Layout.SINGLE.toggled() is Layout.THREE and Layout.THREE.toggled() is Layout.SINGLE


def test_every_voxel_maps_to_where_reslice_shows_it_and_back():
    """On an asymmetric volume of distinct values: voxel (d, h, w) is at (row, column) of slice
    `s` in each plane exactly where `reslice` puts it, and the mapping inverts."""
    volume = np.arange(np.prod(ASYMMETRIC)).reshape(ASYMMETRIC)
    for orientation in Orientation:
        images = [reslice(volume, orientation, k)
                  for k in range(slice_count(ASYMMETRIC, orientation))]
        for voxel in np.ndindex(*ASYMMETRIC):
            slice_index, row, col = voxel_to_view(ASYMMETRIC, orientation, voxel)
            assert images[slice_index][row, col] == volume[voxel]
            assert view_to_voxel(ASYMMETRIC, orientation, slice_index, row, col) == voxel
    assert voxel_to_view(ASYMMETRIC, Orientation.CORONAL, (0, 10, 12)) == (10, 6, 12)
    assert voxel_to_view(ASYMMETRIC, Orientation.SAGITTAL, (6, 10, 12)) == (12, 0, 10)
    with pytest.raises(IndexError, match="outside the volume"):
        voxel_to_view(ASYMMETRIC, Orientation.AXIAL, (7, 0, 0))
    with pytest.raises(IndexError, match="coronal point"):
        view_to_voxel(ASYMMETRIC, Orientation.CORONAL, 3, 7, 0)


def _towards(shape: tuple[int, int, int], affine: np.ndarray, orientation: Orientation,
             step: tuple[int, int, int]) -> str:
    """The patient direction (RAS+ letter) of one step (slice, row, column) from the centre
    voxel in `orientation`'s display, through `affine`."""
    centre = tuple(n // 2 for n in shape)
    slice_index, row, col = voxel_to_view(shape, orientation, centre)
    there = view_to_voxel(shape, orientation, slice_index + step[0], row + step[1],
                          col + step[2])
    world = affine[:3, :3] @ (np.array(there) - np.array(centre))
    axis = int(np.argmax(np.abs(world)))
    return ("RL", "AP", "SI")[axis][0 if world[axis] > 0 else 1]


def test_edge_letters_agree_with_the_canonical_affine():
    """Through a study's affine (D inferior->superior, H anterior->posterior, W right->left),
    moving right along a displayed row goes towards the right edge's letter and moving down
    a column towards the bottom's, in every plane; the slices run S, P and L."""
    affine = Grid(ASYMMETRIC, (3.0, 0.8, 0.9)).affine
    for orientation in Orientation:
        steps = [(0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]  # up, down, left, right
        assert tuple(_towards(ASYMMETRIC, affine, orientation, step) for step in steps) == \
            EDGE_LABELS[orientation], orientation
    assert [_towards(ASYMMETRIC, affine, o, (1, 0, 0)) for o in Orientation] == ["S", "P", "L"]


def test_pixel_at_and_pixel_centre_are_inverse_and_stop_at_the_image():
    """A point in mm from the image corner falls in one displayed pixel; outside it, none."""
    pixel, shape = (3.0, 0.5), (7, 13)
    for row, col in [(0, 0), (6, 12), (3, 5)]:
        assert pixel_at(*pixel_centre(row, col, pixel), pixel, shape) == (row, col)
    assert pixel_centre(1, 2, pixel) == (1.25, 4.5)
    assert pixel_at(6.49, 2.99, pixel, shape) == (0, 12)
    assert pixel_at(-0.01, 1.0, pixel, shape) is None and pixel_at(1.0, 21.0, pixel, shape) is None
