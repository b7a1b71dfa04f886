"""Preprocessing: each pipeline's shape and range, and the steps they are made of."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
from skimage.transform import resize as skimage_resize

from diffusion_core.io import Volume
from diffusion_core.preprocess import (
    CentreCropOrPad,
    ClipHU,
    CropToBreastRegion,
    CropToForeground,
    MinMax,
    PadToCube,
    Part,
    PreprocessError,
    Resample,
    Resize,
    SplitLeftRight,
    body_mask,
    resize_volume,
    run_steps,
)
from diffusion_core.presets import PRESETS, get_preset


def _volume(array: np.ndarray, spacing, modality: str = "MR") -> Volume:
    """A Volume around `array` with a plain scaling affine."""
    return Volume(array=array, spacing=tuple(float(s) for s in spacing),
                  affine=np.diag([*spacing[::-1], 1.0]), modality=modality)


def _ellipsoid(shape, radii, centre=None) -> np.ndarray:
    """A boolean ellipsoid in a (D, H, W) grid."""
    centre = centre if centre is not None else [(n - 1) / 2 for n in shape]
    grid = np.indices(shape, dtype=np.float32)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _brain(shape=(50, 60, 52)) -> np.ndarray:
    """Skull-stripped-brain-like MR: zero outside an ellipsoid, textured inside."""
    rng = np.random.default_rng(1)
    brain = _ellipsoid(shape, (20, 26, 21))
    return np.where(brain, 400 + 200 * rng.random(shape), 0).astype(np.float32)


def _chest_ct(shape=(24, 40, 40), spacing=(5.0, 5.0, 5.0)) -> np.ndarray:
    """LIDC-like CT in HU: air outside, a soft-tissue body, lungs, a bone block above 400 HU."""
    ct = np.full(shape, -1000.0, dtype=np.float32)
    ct[_ellipsoid(shape, (shape[0], shape[1] * 0.4, shape[2] * 0.45))] = 40.0
    ct[_ellipsoid(shape, (shape[0] * 0.4, shape[1] * 0.25, shape[2] * 0.15),
                  (shape[0] / 2, shape[1] / 2, shape[2] * 0.3))] = -850.0
    ct[:, shape[1] // 2 + 4:shape[1] // 2 + 8, shape[2] // 2 - 2:shape[2] // 2 + 2] = 1200.0
    return ct


def _breast_mr(shape=(20, 60, 80)) -> np.ndarray:
    """Prone breast MRI: dark air, a chest at the back, two breasts in front (small H)."""
    rng = np.random.default_rng(2)
    d, h, w = shape
    tissue = _ellipsoid(shape, (d, h * 0.35, w * 0.48), (d / 2, h * 0.7, w / 2))
    tissue |= _ellipsoid(shape, (d * 0.6, h * 0.3, w * 0.2), (d / 2, h * 0.4, w * 0.27))
    tissue |= _ellipsoid(shape, (d * 0.6, h * 0.3, w * 0.2), (d / 2, h * 0.4, w * 0.73))
    noise = rng.normal(0, 5, shape)
    return np.where(tissue, 300 + 40 * rng.random(shape), 10 + noise).astype(np.float32)


# Small inputs for every preset: realistic layout, spacings that keep resampling cheap.
_INPUTS = {
    "mrnet": lambda: _volume(np.random.default_rng(0).integers(0, 256, (24, 256, 256))
                             .astype(np.uint8), (1.0, 1.0, 1.0)),
    "adni": lambda: _volume(_brain(), (1.2, 1.0, 1.0)),
    "duke": lambda: _volume(_breast_mr(), (6.0, 2.64, 2.64)),
    "lidc": lambda: _volume(_chest_ct(), (5.0, 5.0, 5.0), "CT"),
    "demo": lambda: _volume(_brain((40, 64, 56)), (4.0, 3.5, 3.5)),
    "tiny": lambda: _volume(_brain((12, 20, 18)), (2.0, 2.0, 2.0)),
}


@functools.cache
def _outputs(name: str) -> tuple[np.ndarray, ...]:
    """The preset's pipeline over its small input, computed once per test session."""
    return tuple(get_preset(name).preprocess(_INPUTS[name]()))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_pipeline_gives_the_preset_shape_in_minus_one_to_one(name):
    """float32 arrays of exactly preset.shape spanning [-1, 1]; DUKE gives two."""
    preset = get_preset(name)
    arrays = _outputs(name)
    assert len(arrays) == preset.outputs_per_scan
    for array in arrays:
        assert array.shape == preset.shape
        assert array.dtype == np.float32
        assert float(array.min()) == -1.0
        assert float(array.max()) == 1.0


def test_lidc_keeps_hounsfield_meaning():
    """-1000 HU -> -1 and 400 HU (and above) -> 1; soft tissue lands where its HU says."""
    arrays = _outputs("lidc")
    hu = get_preset("lidc").to_intensity(arrays[0])
    assert hu.min() == pytest.approx(-1000.0)
    assert hu.max() == pytest.approx(400.0)
    centre = hu[64, 56:60, 80:84]  # inside the body, away from the lung and the bone
    assert np.allclose(centre, 40.0, atol=1.0)


def test_ct_window_maps_the_window_edges_exactly():
    """MinMax by a window: -1000 -> -1, 400 -> 1, beyond is clipped; to_intensity inverts it."""
    part = Part(np.array([-2000, -1000, -300, 400, 3000], np.float32).reshape(1, 1, 5),
                (1.0, 1.0, 1.0))
    scaled = MinMax(window=(-1000, 400))(part)[0].array.ravel()
    assert scaled.tolist() == pytest.approx([-1.0, -1.0, 0.0, 1.0, 1.0])
    assert get_preset("lidc").to_intensity(scaled).tolist() == pytest.approx(
        [-1000, -1000, -300, 400, 400], abs=1e-3)
    assert get_preset("adni").to_intensity(np.array([-1.0, 0.0, 1.0])).tolist() == [0, 0.5, 1]


def test_min_max_invert_is_the_inverse_of_its_window():
    """MinMax(window).invert maps its output back to the window's units; without one, [0, 1]."""
    part = Part(np.array([-1000, -650, 50, 400], np.float32).reshape(1, 1, 4), (1.0, 1.0, 1.0))
    step = MinMax(window=(-1000, 400))
    assert step.invert(step(part)[0].array).ravel().tolist() == [-1000.0, -650.0, 50.0, 400.0]
    assert MinMax().invert(MinMax()(part)[0].array).ravel().tolist() == pytest.approx(
        [0.0, 0.25, 0.75, 1.0])


def test_run_steps_passes_every_piece_of_a_split_on():
    """A split gives two parts; the steps after it run on each; the input stays as it was."""
    array = np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8)
    parts = run_steps((SplitLeftRight(), Resize((2, 3, 2)), MinMax()), array, (1.0, 2.0, 3.0))
    assert [p.label for p in parts] == ["right", "left"]
    assert all(p.array.shape == (2, 3, 2) and p.array.dtype == np.float32 for p in parts)
    assert [p.spacing for p in parts] == [(2.0, 4.0, 6.0)] * 2
    assert array[0, 0, 0] == 0 and array.dtype == np.int16
    with pytest.raises(PreprocessError, match="takes no masks"):
        run_steps((MinMax(),), array, (1.0, 1.0, 1.0), np.ones(array.shape, bool))


def test_lidc_pads_with_air_not_zero():
    """A small CT grows to 320 mm with -1000 HU around it, so the border is -1, not 0 HU."""
    arrays = _outputs("lidc")
    assert np.all(arrays[0][:, :, :8] == -1.0)
    assert np.all(arrays[0][:8] == -1.0)


def test_duke_with_a_mask_crops_to_the_mask():
    """With a mask the breast crop is exactly the mask's bounding box."""
    array = np.arange(10 * 20 * 30, dtype=np.float32).reshape(10, 20, 30)
    mask = np.zeros(array.shape, dtype=bool)
    mask[2:7, 3:11, 5:25] = True
    mask[4, 8, 12] = False  # a hole changes nothing: the crop is a box
    out = CropToBreastRegion()(Part(array, (1.0, 1.0, 1.0), mask=mask))
    assert len(out) == 1
    assert np.array_equal(out[0].array, array[2:7, 3:11, 5:25])


def test_duke_pipeline_with_and_without_a_mask():
    """Both ways give right and left breast of the preset's shape; the mask decides the crop."""
    volume = _INPUTS["duke"]()
    preset = get_preset("duke")
    mask = np.zeros(volume.array.shape, dtype=bool)
    mask[4:16, 5:30, 8:72] = True
    with_mask = preset.preprocess_parts(volume, mask)
    without = preset.preprocess_parts(volume)
    for parts in (with_mask, without):
        assert [p.label for p in parts] == ["right", "left"]
        assert all(p.array.shape == (32, 256, 256) for p in parts)
        assert all(p.array.min() == -1.0 and p.array.max() == 1.0 for p in parts)
    assert not np.allclose(with_mask[0].array, without[0].array)


def test_automatic_breast_region_is_the_front_of_the_body():
    """Without a mask: the body's anterior half, the body's width, the breasts included."""
    array = _breast_mr()
    body = body_mask(array)
    assert body[10, 42, 40] and body[10, 24, 21]  # chest and the right breast
    assert not body[10, 2, 40] and not body[10, 50, 2]  # air in front and at the side
    out = CropToBreastRegion(anterior_fraction=0.5)(Part(array, (1.0, 1.0, 1.0)))[0]
    front = np.flatnonzero(body.any(axis=(0, 2)))[0]
    back = np.flatnonzero(body.any(axis=(0, 2)))[-1] + 1
    assert out.array.shape[1] == int(np.ceil((back - front) * 0.5))
    assert out.array.shape[2] == np.flatnonzero(body[:, front:front + out.array.shape[1]]
                                                .any(axis=(0, 1))).size


def test_split_left_right_follows_the_patient():
    """W runs patient right -> left, so the first half is the right breast."""
    array = np.zeros((2, 3, 8), np.float32)
    array[..., :4] = 1.0
    right, left = SplitLeftRight()(Part(array, (1.0, 1.0, 1.0)))
    assert (right.label, left.label) == ("right", "left")
    assert np.all(right.array == 1.0) and np.all(left.array == 0.0)


def test_resample_keeps_the_physical_extent():
    """3 mm slices resampled to 1 mm triple the depth; the spacing is the one asked."""
    part = Part(np.ones((10, 20, 30), np.float32), (3.0, 1.0, 0.5))
    out = Resample((1.0, 1.0, 1.0))(part)[0]
    assert out.array.shape == (30, 20, 15)
    assert out.spacing == pytest.approx((1.0, 1.0, 1.0))
    assert np.allclose(out.array, 1.0)


def test_resample_carries_the_mask_along():
    """A mask is resampled by nearest neighbour and stays boolean."""
    mask = np.zeros((10, 10, 10), bool)
    mask[2:8, 2:8, 2:8] = True
    out = Resample((2.0, 2.0, 2.0))(Part(np.ones((10, 10, 10), np.float32), (1, 1, 1), mask))[0]
    assert out.mask.dtype == bool and out.mask.shape == (5, 5, 5)
    assert out.mask[2, 2, 2] and not out.mask[0, 0, 0]


@pytest.mark.parametrize(("source", "target"), [((20, 30, 40), (13, 61, 17)),
                                                ((7, 9, 11), (7, 9, 33)),
                                                ((30, 30, 30), (12, 12, 12))])
def test_resize_equals_scikit_image_with_anti_aliasing(source, target):
    """Our separable resize matches skimage.transform.resize (linear, anti-aliased)."""
    array = np.random.default_rng(3).normal(size=source).astype(np.float32)
    ours = resize_volume(array, target)
    reference = skimage_resize(array, target, order=1, mode="edge", anti_aliasing=True,
                               preserve_range=True)
    assert ours.dtype == np.float32 and ours.shape == target
    assert np.abs(ours - reference).max() < 0.02


def test_resize_stays_inside_the_input_range():
    """Linear resizing never overshoots: a [-1, 1] volume stays in [-1, 1]."""
    array = np.sign(np.random.default_rng(4).normal(size=(9, 17, 23))).astype(np.float32)
    out = Resize((20, 8, 31))(Part(array, (1.0, 1.0, 1.0)))[0]
    assert out.array.min() >= -1.0 and out.array.max() <= 1.0
    assert out.spacing == pytest.approx((9 / 20, 17 / 8, 23 / 31))


def test_centre_crop_or_pad_is_centred_and_pads_with_the_value():
    """Larger axes lose both ends equally; smaller ones gain padding on both sides."""
    array = np.arange(6 * 4 * 5, dtype=np.float32).reshape(6, 4, 5) + 100
    out = CentreCropOrPad((2, 8, 5), pad_value=-7)(Part(array, (1.0, 1.0, 1.0)))[0].array
    assert out.shape == (2, 8, 5)
    assert np.array_equal(out[:, 2:6], array[2:4])
    assert np.all(out[:, :2] == -7) and np.all(out[:, 6:] == -7)
    by_minimum = CentreCropOrPad((6, 6, 5))(Part(array, (1.0, 1.0, 1.0)))[0].array
    assert np.all(by_minimum[:, 0] == array.min())


def test_adni_steps_crop_to_the_brain_and_pad_to_a_cube():
    """The non-zero box, then a centred cube of its longest side, padded with zeros."""
    array = np.zeros((20, 30, 40), np.float32)
    array[5:15, 10:14, 8:28] = 3.0
    cropped = CropToForeground()(Part(array, (1.0, 1.0, 1.0)))[0]
    assert cropped.array.shape == (10, 4, 20) and np.all(cropped.array == 3.0)
    cube = PadToCube()(cropped)[0].array
    assert cube.shape == (20, 20, 20)
    assert np.all(cube[5:15, 8:12] == 3.0) and cube.sum() == 3.0 * 10 * 4 * 20


def test_crop_to_foreground_keeps_an_empty_volume_whole():
    """No voxel above the threshold: nothing to crop to, the volume passes unchanged."""
    array = np.zeros((4, 5, 6), np.float32)
    assert CropToForeground()(Part(array, (1.0, 1.0, 1.0)))[0].array.shape == (4, 5, 6)


def test_min_max_of_a_constant_volume_does_not_divide_by_zero():
    """A constant MR volume becomes -1 everywhere, without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = get_preset("tiny").preprocess(
            _volume(np.full((12, 20, 18), 7.0, np.float32), (1, 1, 1)))
    assert np.all(out[0] == -1.0)


def test_clip_hu_clips_both_ends():
    """Values outside the window take its edges."""
    part = Part(np.array([-3000.0, 0.0, 3000.0], np.float32).reshape(1, 1, 3), (1, 1, 1))
    assert ClipHU(-1000, 400)(part)[0].array.ravel().tolist() == [-1000.0, 0.0, 400.0]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Resample((1.0, 0.0, 1.0)), "spacing"),
    (lambda: ClipHU(400, -1000), "low < high"),
    (lambda: CentreCropOrPad((0, 4, 4)), "positive"),
    (lambda: PadToCube(pad_value="edge"), "minimum"),
    (lambda: MinMax(window=(1.0, 1.0)), "low < high"),
    (lambda: CropToBreastRegion(anterior_fraction=0.0), "anterior_fraction"),
])
def test_bad_step_parameters_are_refused(make, message):
    """A step with impossible parameters fails when the preset is written, not mid-run."""
    with pytest.raises(PreprocessError, match=message):
        make()


def test_bad_inputs_are_refused_with_a_reason():
    """An empty array, NaNs, a mask of another shape or empty, a mask for a preset without."""
    tiny, duke = get_preset("tiny"), get_preset("duke")
    with pytest.raises(PreprocessError, match="empty"):
        tiny.preprocess(_volume(np.zeros((0, 4, 4), np.float32), (1, 1, 1)))
    with pytest.raises(PreprocessError, match="NaN"):
        tiny.preprocess(_volume(np.full((4, 4, 4), np.nan, np.float32), (1, 1, 1)))
    volume = _volume(_breast_mr(), (6.0, 2.64, 2.64))
    with pytest.raises(PreprocessError, match="mask's shape"):
        duke.preprocess(volume, np.ones((3, 3, 3), bool))
    with pytest.raises(PreprocessError, match="takes no masks"):
        tiny.preprocess(volume, np.ones(volume.array.shape, bool))
    with pytest.raises(PreprocessError, match="mask is empty"):
        duke.preprocess(volume, np.zeros(volume.array.shape, bool))


def test_preprocess_leaves_the_input_untouched():
    """The caller's array is copied, not modified in place."""
    volume = _INPUTS["duke"]()
    before = volume.array.copy()
    get_preset("duke").preprocess(volume)
    assert np.array_equal(volume.array, before)
