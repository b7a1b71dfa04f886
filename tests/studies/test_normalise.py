"""studies.normalise: the one road (to [-1, 1], dither, quantise), and the grid."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine
from diffusion_core.presets import get_preset
from studies.normalise import (
    CT_VIEWER,
    MR_VIEWER,
    Grid,
    dither,
    hu_window,
    is_preprocessed,
    last_step,
    quantise_ct,
    quantise_mr,
    settle,
    to_study_values,
    to_unit,
    value_step,
)
from studies.study import StudyError


def test_value_step_is_the_smallest_gap_between_distinct_values():
    assert value_step(np.array([3, 7, 200], dtype=np.uint8)) == 1.0
    assert value_step(np.array([0.0, 0.25, 1.0, 1.0], dtype=np.float32)) == 0.25
    assert value_step(np.full(5, 9, dtype=np.int16)) == 0.0
    assert value_step(np.full(5, 0.5)) == 0.0


KEY = [1, 2, 3, 4]


def test_dither_moves_each_value_by_at_most_half_its_step_and_fills_the_gaps():
    """A uint8 scan min-max scaled keeps 256 levels 2/255 apart; the dither makes it continuous
    without moving any value past half a level, and stays inside [-1, 1]."""
    scan = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16)).astype(np.uint8)
    unit = (scan.astype(np.float32) / np.float32(127.5) - 1).astype(np.float32)
    dithered = dither(unit, KEY)
    assert dithered.dtype == np.float32
    assert np.abs(dithered - unit).max() <= 1.0 / 255 + 1e-6
    assert np.unique(dithered).size > 0.99 * scan.size
    assert dithered.min() >= -1.0 and dithered.max() <= 1.0
    constant = np.full((2, 2, 2), -1.0, dtype=np.float32)
    np.testing.assert_array_equal(dither(constant, KEY), constant)


def test_the_dither_is_keyed_by_content_and_study():
    """The same array gets the same noise (twins become the same case); another array or
    another study's key gets independent noise."""
    rng = np.random.default_rng(1)
    unit = (rng.integers(0, 50, size=(4, 16, 16)) / 24.5 - 1).astype(np.float32)
    other = unit.copy()
    other[0, 0, 0] = -unit[0, 0, 0]
    np.testing.assert_array_equal(dither(unit, KEY), dither(unit.copy(), KEY))
    noise = (dither(unit, KEY) - unit).ravel()
    for changed in (dither(other, KEY) - other, dither(unit, [9, 9, 9, 9]) - unit):
        assert abs(np.corrcoef(noise, changed.ravel())[0, 1]) < 0.1


def test_quantise_ct_rounds_to_whole_hounsfield_units_and_clips():
    values = np.array([-2000.4, -0.5, 0.5, 1.6, 4000.0])
    quantised = quantise_ct(values, (-1024.0, 3071.0))
    assert quantised.dtype == np.int16
    np.testing.assert_array_equal(quantised, [-1024, 0, 0, 2, 3071])


def test_quantise_mr_maps_the_robust_range_onto_0_to_4095():
    """0..200: the 0.5th and 99.5th percentiles are 1 and 199, so v -> (v - 1) * 4095 / 198."""
    quantised = quantise_mr(np.arange(201, dtype=np.float64))
    assert quantised.dtype == np.int16
    # 0 -> -20.7 (clipped), 50 -> 1013.4, 100 -> 2047.5 (rounded to even), 199 -> 4095, 200 clipped
    np.testing.assert_array_equal(quantised[[0, 1, 50, 100, 199, 200]],
                                  [0, 0, 1013, 2048, 4095, 4095])
    np.testing.assert_array_equal(quantise_mr(np.full((2, 3), 7.0)), np.zeros((2, 3)))


def test_hu_window_is_the_presets_or_the_12_bit_scanner_range():
    assert hu_window(None) == (-1024.0, 3071.0)
    assert hu_window(get_preset("lidc")) == tuple(float(v) for v in get_preset("lidc").hu_window)
    assert hu_window(get_preset("tiny")) == (-1024.0, 3071.0)  # an MR preset has none


def test_viewer_defaults_are_the_soft_tissue_window_and_mr_percentiles():
    assert CT_VIEWER == {"window": [40.0, 400.0]}
    assert MR_VIEWER == {"percentile": [0.5, 99.5]}


def test_grid_affine_is_canonical_and_centred():
    grid = Grid((8, 32, 32), (3.0, 0.7, 0.7))
    expected = np.array([[0.0, 0.0, -0.7, 10.85],
                         [0.0, -0.7, 0.0, 10.85],
                         [3.0, 0.0, 0.0, -10.5],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(grid.affine, expected, atol=1e-12)
    np.testing.assert_allclose(grid.affine @ [3.5, 15.5, 15.5, 1.0], [0.0, 0.0, 0.0, 1.0],
                               atol=1e-12)


def test_sampler_output_overshooting_slightly_is_taken_as_preprocessed():
    """A decoder overshoots [-1, 1] a little: still the preset's grid, not re-run; MR is scaled
    by its own range, as the pipeline's last step scales a scan."""
    preset = get_preset("tiny")
    sample = np.random.default_rng(3).uniform(-1.0, 1.0, preset.shape).astype(np.float32)
    sample[0, 0, :2] = (-1.04, 1.05)
    assert is_preprocessed(sample, preset)
    assert not is_preprocessed(sample * 1.5, preset)
    volume = Volume(sample, preset.spacing, canonical_affine(preset.spacing), "MR")
    (unit,) = to_unit(volume, "MR", preset)
    np.testing.assert_allclose(unit, (sample + 1.04) / 2.09 * 2 - 1, atol=1e-6)
    (case,) = to_study_values(volume, "MR", preset, KEY)
    # The MR scale does not see a linear map: the 0.5th and 99.5th percentiles of the sample.
    low, high = np.percentile(sample, [0.5, 99.5])
    expected = np.clip(np.rint((sample - low) * 4095.0 / (high - low)), 0, 4095)
    assert case.shape == preset.shape
    assert np.abs(case.astype(int) - expected).max() <= 1


def test_ct_on_the_grid_in_hounsfield_units_takes_only_the_window():
    """A sampler's HU output on the preset's grid is windowed, not resampled again."""
    preset = get_preset("lidc")
    hounsfield = np.random.default_rng(4).uniform(-1100, 500, preset.shape).astype(np.float32)
    volume = Volume(hounsfield, preset.spacing, canonical_affine(preset.spacing), "CT")
    (unit,) = to_unit(volume, "CT", preset)
    expected = np.clip((hounsfield + 1000.0) / 1400.0 * 2.0 - 1.0, -1.0, 1.0)
    np.testing.assert_allclose(unit, expected, atol=1e-6)


def test_settle_clips_a_window_scales_a_range_and_leaves_a_pipeline_output_alone():
    windowed, ranged = last_step("CT", None), last_step("MR", None)
    assert windowed.window == (-1024.0, 3071.0) and ranged.window is None
    array = np.array([-1.2, 0.0, 0.3, 1.1], dtype=np.float32).reshape(1, 2, 2)
    np.testing.assert_allclose(settle(array, windowed).ravel(), [-1.0, 0.0, 0.3, 1.0])
    np.testing.assert_allclose(settle(array, ranged).ravel(),
                               [-1.0, 2.4 / 2.3 - 1, 3.0 / 2.3 - 1, 1.0], atol=1e-6)
    # A pipeline's output spans exactly [-1, 1]: settled, it keeps every bit.
    spanning = np.array([-1.0, 0.1234567, 0.7654321, 1.0], dtype=np.float32).reshape(1, 2, 2)
    assert settle(spanning, ranged).tobytes() == spanning.tobytes()


def test_a_raw_scan_and_its_preprocessed_array_become_the_same_case():
    """The twin rule on one pair: a uint8 scan through tiny's pipeline, and that pipeline's
    output given as a float32 sample."""
    preset = get_preset("tiny")
    scan = np.random.default_rng(5).integers(0, 256, (10, 20, 20)).astype(np.uint8)
    raw = Volume(scan, (2.0, 2.0, 2.0), canonical_affine((2.0, 2.0, 2.0)), "MR")
    (prepared,) = preset.preprocess(raw)
    twin = Volume(prepared.copy(), (1.0, 1.0, 1.0), canonical_affine((1.0, 1.0, 1.0)), "")
    np.testing.assert_array_equal(to_study_values(raw, "MR", preset, KEY)[0],
                                  to_study_values(twin, "MR", preset, KEY)[0])


def test_ct_in_minus_one_to_one_without_a_preset_is_refused():
    unit = np.linspace(-1, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    volume = Volume(unit, (1.0, 1.0, 1.0), canonical_affine((1.0, 1.0, 1.0)), "CT", "unit.nii")
    with pytest.raises(StudyError, match="unit.nii holds values in \\[-1, 1\\]"):
        to_study_values(volume, "CT", None, KEY)
