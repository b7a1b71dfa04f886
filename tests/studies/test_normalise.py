"""studies.normalise: the value step and dither, the final CT and MR quantisation, the grid."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine
from diffusion_core.presets import get_preset
from studies.normalise import (
    CT_VIEWER,
    MR_VIEWER,
    Grid,
    dequantise,
    hu_window,
    is_preprocessed,
    quantise_ct,
    quantise_mr,
    to_study_values,
    value_step,
)
from studies.study import StudyError


def test_value_step_is_the_smallest_gap_between_distinct_values():
    assert value_step(np.array([3, 7, 200], dtype=np.uint8)) == 1.0
    assert value_step(np.array([0.0, 0.25, 1.0, 1.0], dtype=np.float32)) == 0.25
    assert value_step(np.full(5, 9, dtype=np.int16)) == 0.0
    assert value_step(np.full(5, 0.5)) == 0.0


def test_dequantise_moves_each_value_by_at_most_half_a_step():
    """A uint8 scan becomes continuous: (nearly) every voxel a value of its own, none moved far."""
    scan = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16)).astype(np.uint8)
    dithered = dequantise(scan, np.random.default_rng(1))
    assert dithered.dtype == np.float32
    assert np.abs(dithered - scan).max() <= 0.5
    assert np.unique(dithered).size > 0.99 * scan.size
    constant = dequantise(np.full((2, 2, 2), 4.0), np.random.default_rng(1))
    np.testing.assert_array_equal(constant, np.full((2, 2, 2), 4.0, dtype=np.float32))


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
    """A decoder overshoots [-1, 1] a little: still the preset's grid, clipped, not re-run."""
    preset = get_preset("tiny")
    sample = np.random.default_rng(3).uniform(-1.0, 1.0, preset.shape).astype(np.float32)
    sample[0, 0, :2] = (-1.04, 1.05)
    assert is_preprocessed(sample, preset)
    assert not is_preprocessed(sample * 1.5, preset)
    volume = Volume(sample, preset.spacing, canonical_affine(preset.spacing), "MR")
    (case,) = to_study_values(volume, "MR", preset, np.random.default_rng(0))
    # Clipped to [-1, 1], then the MR scale; tiny's linear map to [0, 1] does not change it.
    clipped = np.clip(sample, -1.0, 1.0)
    low, high = np.percentile(clipped, [0.5, 99.5])
    expected = np.clip(np.rint((clipped - low) * 4095.0 / (high - low)), 0, 4095)
    assert case.shape == preset.shape
    assert np.abs(case.astype(int) - expected).max() <= 1


def test_ct_in_minus_one_to_one_without_a_preset_is_refused():
    unit = np.linspace(-1, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    volume = Volume(unit, (1.0, 1.0, 1.0), canonical_affine((1.0, 1.0, 1.0)), "CT", "unit.nii")
    with pytest.raises(StudyError, match="unit.nii holds values in \\[-1, 1\\]"):
        to_study_values(volume, "CT", None, np.random.default_rng(0))
