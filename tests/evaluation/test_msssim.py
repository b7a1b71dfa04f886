"""evaluation.msssim: identities, agreement with MONAI and torchmetrics, short axes, paper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import MultiScaleSSIMMetric
from monai.metrics.regression import compute_ssim_and_cs
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from evaluation.msssim import (
    MSSSIM_WEIGHTS,
    gaussian_window,
    ms_ssim,
    paper_ms_ssim,
    scale_pyramid,
)

W3 = MSSSIM_WEIGHTS[:3]


def _pairs(make, n_pairs: int, shape: tuple[int, ...], channels: int = 1, seed: int = 0):
    """Two (n_pairs, channels, *shape) float32 tensors of similar images, and their data range."""
    images = torch.from_numpy(make(2 * n_pairs * channels, shape, seed=seed))
    x, y = images.reshape(2, n_pairs, channels, *shape).unbind(0)
    return x, y, float(images.max() - images.min())


def _monai(x, y, data_range, weights, kernel_size=11) -> torch.Tensor:
    metric = MultiScaleSSIMMetric(spatial_dims=x.ndim - 2, data_range=data_range,
                                  kernel_size=kernel_size, weights=weights, reduction="none")
    return metric(x, y).flatten()


# --- identities -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(40, 36), (20, 24, 28)])
@pytest.mark.parametrize("padding", ["valid", "reflect"])
def test_image_with_itself_is_one(smooth_volumes, shape, padding):
    x, _, data_range = _pairs(smooth_volumes, 2, shape)
    value = ms_ssim(x.double(), x.double(), data_range, weights=W3, padding=padding)
    np.testing.assert_allclose(value.numpy(), 1.0, atol=1e-12)


def test_symmetric_and_below_one(smooth_volumes):
    x, y, data_range = _pairs(smooth_volumes, 3, (24, 24, 24))
    forward = ms_ssim(x.double(), y.double(), data_range)
    backward = ms_ssim(y.double(), x.double(), data_range)
    np.testing.assert_allclose(forward.numpy(), backward.numpy(), rtol=0, atol=1e-12)
    assert ((forward > 0.1) & (forward < 1)).all()


def test_batch_equals_one_pair_at_a_time(smooth_volumes):
    x, y, data_range = _pairs(smooth_volumes, 4, (16, 20, 24))
    together = ms_ssim(x, y, data_range, weights=W3)
    apart = torch.cat([ms_ssim(x[i : i + 1], y[i : i + 1], data_range, weights=W3)
                       for i in range(4)])
    np.testing.assert_allclose(together.numpy(), apart.numpy(), atol=1e-6)


def test_gaussian_window_matches_the_standard_taps():
    taps = gaussian_window(11, 1.5, dtype=torch.float64)
    expected = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)
    np.testing.assert_allclose(taps.numpy(), expected / expected.sum(), rtol=1e-12)
    even = gaussian_window(4, 1.0, dtype=torch.float64).numpy()
    np.testing.assert_allclose(even, even[::-1])  # centred between the two middle taps


# --- agreement with MONAI and torchmetrics ----------------------------------------------------

@pytest.mark.parametrize(
    ("shape", "weights", "kernel_size"),
    [
        ((180, 192), MSSSIM_WEIGHTS, 11),           # 2D, the standard 5 scales
        ((64, 64, 64), W3, 11),                     # 3D, 3 scales; MONAI keeps the weights as given
        ((64, 60, 12), W3, (11, 11, 1)),            # 3D with no filtering along the last axis
        ((50, 47, 45), (0.3, 0.7), (7, 9, 11)),     # odd sizes, per-axis windows, 2 scales
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agrees_with_monai(smooth_volumes, shape, weights, kernel_size, dtype):
    x, y, data_range = _pairs(smooth_volumes, 2, shape, channels=2 if len(shape) == 2 else 1)
    expected = _monai(x, y, data_range, weights, kernel_size)
    ours = ms_ssim(x.to(dtype), y.to(dtype), data_range, weights=weights, window=kernel_size)
    assert ours.dtype == dtype
    np.testing.assert_allclose(ours.double().numpy(), expected.double().numpy(), atol=1e-4)
    assert ((expected > 0.3) & (expected < 0.99)).all()  # a case where the value says something


@pytest.mark.slow
def test_agrees_with_monai_at_176_cubed_with_five_scales(smooth_volumes):
    x, y, data_range = _pairs(smooth_volumes, 1, (176, 176, 176))
    expected = _monai(x, y, data_range, MSSSIM_WEIGHTS)
    np.testing.assert_allclose(ms_ssim(x, y, data_range).numpy(), expected.numpy(), atol=1e-4)


def test_reflect_padding_agrees_with_torchmetrics(smooth_volumes):
    x, y, data_range = _pairs(smooth_volumes, 2, (64, 64, 64))
    expected = multiscale_structural_similarity_index_measure(
        x, y, data_range=data_range, betas=W3, reduction="none")
    reflect = ms_ssim(x, y, data_range, weights=W3, padding="reflect")
    valid = ms_ssim(x, y, data_range, weights=W3)
    np.testing.assert_allclose(reflect.numpy(), expected.numpy(), atol=1e-4)
    # Only the last scale's border changes: the two conventions differ by about 1e-3.
    assert 1e-5 < (reflect - valid).abs().max() < 2e-2


# --- the short-axis rule ----------------------------------------------------------------------

def test_pyramid_is_standard_when_axes_are_long_enough():
    for scale in scale_pyramid((176, 180, 200), 5):
        assert scale.window == (11, 11, 11)
        assert scale.sigma == (1.5, 1.5, 1.5)
        assert scale.pool == (2, 2, 2)
    assert [s.shape for s in scale_pyramid((176, 180, 200), 5)][-1] == (11, 11, 12)


def test_pyramid_shrinks_windows_on_short_axes():
    cube = scale_pyramid((64, 64, 64), 5)
    assert [s.shape[0] for s in cube] == [64, 32, 16, 8, 4]
    assert [s.window[0] for s in cube] == [11, 11, 11, 8, 4]
    assert cube[3].sigma[0] == pytest.approx(1.5 * 8 / 11)
    assert cube[4].sigma[0] == pytest.approx(1.5 * 4 / 11)

    paper = scale_pyramid((32, 256, 256), 5)  # the paper's 256x256x32
    assert [s.window for s in paper] == [(11, 11, 11), (11, 11, 11), (8, 11, 11), (4, 11, 11),
                                         (2, 11, 11)]
    assert paper[-1].shape == (2, 16, 16)


def test_pyramid_stops_pooling_an_axis_of_one_voxel():
    thin = scale_pyramid((6, 40, 40), 5)
    assert [s.shape[0] for s in thin] == [6, 3, 1, 1, 1]
    assert [s.pool[0] for s in thin] == [2, 2, 1, 1, 1]
    assert [s.window[0] for s in thin] == [6, 3, 1, 1, 1]


def _rule_by_hand(x, y, data_range, weights=MSSSIM_WEIGHTS) -> torch.Tensor:
    """MS-SSIM built scale by scale from MONAI's SSIM maps with the pyramid's windows and sigmas."""
    terms = []
    scales = scale_pyramid(x.shape[2:], len(weights))
    for index, scale in enumerate(scales):
        ssim_map, cs_map = compute_ssim_and_cs(x, y, spatial_dims=3, kernel_size=scale.window,
                                               kernel_sigma=scale.sigma, data_range=data_range)
        last = index == len(scales) - 1
        terms.append(torch.relu((ssim_map if last else cs_map).flatten(1).mean(1)))
        x = F.avg_pool3d(x, scale.pool, stride=scale.pool)
        y = F.avg_pool3d(y, scale.pool, stride=scale.pool)
    return torch.prod(torch.stack(terms) ** torch.tensor(weights).view(-1, 1), dim=0)


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 48, 40), (6, 40, 40)])
def test_short_axis_rule_is_what_ms_ssim_computes(smooth_volumes, shape):
    # The rule's windows, sigmas (even windows included) and pooling, applied through MONAI's own
    # SSIM maps, give the same values: the rule is not only planned but used.
    x, y, data_range = _pairs(smooth_volumes, 2, shape)
    expected = _rule_by_hand(x, y, data_range)
    # float64 on our side: MONAI works in float32, whose error at 4^3 is a few 1e-5.
    ours = ms_ssim(x.double(), y.double(), data_range)
    np.testing.assert_allclose(ours.numpy(), expected.double().numpy(), atol=1e-4)


@pytest.mark.parametrize("shape", [(64, 64, 64), (32, 96, 96), (6, 40, 40)])
def test_shapes_monai_rejects_give_valid_values(smooth_volumes, shape):
    x, y, data_range = _pairs(smooth_volumes, 2, shape)
    with pytest.raises(ValueError):
        _monai(x, y, data_range, MSSSIM_WEIGHTS)
    similar = ms_ssim(x, y, data_range)
    assert torch.isfinite(similar).all()
    assert ((similar > 0) & (similar <= 1)).all()
    np.testing.assert_allclose(ms_ssim(x, x, data_range).numpy(), 1.0, atol=1e-5)
    # More alike images score higher: y moved halfway towards x.
    closer = ms_ssim(x, (x + y) / 2, data_range)
    assert (closer > similar).all()


# --- the paper protocol -----------------------------------------------------------------------

def test_paper_protocol_sanity(smooth_volumes):
    a, b = smooth_volumes(2, (32, 32, 32), own=0.3)
    scale = max(np.abs(a).max(), np.abs(b).max())
    a, b = a / scale, b / scale  # the authors' volumes spanned [-1, 1]
    assert paper_ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    value = paper_ms_ssim(a, b)
    assert 0 < value < 1
    assert value == pytest.approx(paper_ms_ssim(b, a), abs=1e-12)


def test_paper_protocol_follows_the_authors_formula(smooth_volumes):
    # Their msssim_3d, step by step: scipy blur (reflect), C1/C2 for a range of 1, torch's 2x
    # pooling, then prod(cs[:-1] ** w[:-1] * ssim[-1] ** w[-1]), i.e. the last SSIM to 4 * w[-1].
    from scipy.ndimage import gaussian_filter

    a, b = (2.0 * v.astype(np.float64) - 1 for v in smooth_volumes(2, (36, 34, 32), own=0.3))
    x, y = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    cs, ssim = [], []
    for _ in MSSSIM_WEIGHTS:
        p, q = x.numpy(), y.numpy()
        mu_p, mu_q = gaussian_filter(p, 1.5), gaussian_filter(q, 1.5)
        cov = gaussian_filter(p * q, 1.5) - mu_p * mu_q
        var = gaussian_filter(p * p, 1.5) - mu_p**2 + gaussian_filter(q * q, 1.5) - mu_q**2
        contrast = (2 * cov + 9e-4) / (var + 9e-4)
        cs.append(contrast.mean())
        ssim.append((contrast * (2 * mu_p * mu_q + 1e-4) / (mu_p**2 + mu_q**2 + 1e-4)).mean())
        x, y = F.avg_pool3d(x, 2), F.avg_pool3d(y, 2)
    w = np.asarray(MSSSIM_WEIGHTS)
    expected = np.prod(np.asarray(cs[:-1]) ** w[:-1]) * ssim[-1] ** (4 * w[-1])
    assert paper_ms_ssim(a, b) == pytest.approx(expected, rel=1e-10)
    standard_combination = np.prod(np.asarray(cs[:-1]) ** w[:-1]) * ssim[-1] ** w[-1]
    assert abs(expected - standard_combination) > 1e-3  # the data show the exponent's effect


def test_paper_protocol_is_nan_for_anticorrelated_volumes(smooth_volumes):
    (a,) = smooth_volumes(1, (24, 24, 24), own=0.0)
    a = a / np.abs(a).max()
    assert math.isnan(paper_ms_ssim(a, -a))


# --- argument checks --------------------------------------------------------------------------

def test_rejects_bad_arguments():
    x = torch.zeros(1, 1, 16, 16, 16)
    with pytest.raises(ValueError, match="same shape"):
        ms_ssim(x, torch.zeros(1, 1, 16, 16, 15), 1.0)
    with pytest.raises(ValueError, match="data_range"):
        ms_ssim(x, x, 0.0)
    with pytest.raises(ValueError, match="padding"):
        ms_ssim(x, x, 1.0, padding="same")
    with pytest.raises(ValueError, match="one value per spatial axis"):
        ms_ssim(x, x, 1.0, window=(11, 11))
