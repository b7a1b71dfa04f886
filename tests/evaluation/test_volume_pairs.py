"""evaluation.volume_pairs: pair sampling, pair values and the bootstrap over volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation.msssim import ms_ssim, paper_ms_ssim
from evaluation.volume_pairs import (
    _unflatten_pairs,
    bootstrap_mean_ci,
    is_pair_count_short,
    n_distinct_pairs,
    pair_values,
    sample_pairs,
)


@pytest.mark.parametrize("n", [2, 3, 7, 40, 1001])
def test_unflatten_matches_the_row_major_list_of_pairs(n):
    i, j = np.triu_indices(n, k=1)
    flat = np.arange(len(i))
    np.testing.assert_array_equal(_unflatten_pairs(flat, n), np.stack([i, j], axis=1))


def test_sampled_pairs_are_distinct_and_ordered():
    pairs = sample_pairs(500, 1000, np.random.default_rng(3))
    assert pairs.shape == (1000, 2)
    assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.min() >= 0 and pairs.max() < 500
    assert len({tuple(p) for p in pairs}) == 1000
    again = sample_pairs(500, 1000, np.random.default_rng(3))
    np.testing.assert_array_equal(pairs, again)


def test_sampling_covers_every_pair_uniformly():
    counts = np.zeros((6, 6))
    rng = np.random.default_rng(0)
    for _ in range(3000):
        for i, j in sample_pairs(6, 3, rng):
            counts[i, j] += 1
    upper = counts[np.triu_indices(6, k=1)]
    assert upper.min() > 0.8 * upper.mean() and upper.max() < 1.2 * upper.mean()


def test_all_pairs_when_asked_or_when_fewer_exist():
    every = sample_pairs(6, None, np.random.default_rng(0))
    assert len(every) == n_distinct_pairs(6) == 15
    np.testing.assert_array_equal(sample_pairs(6, 1000, np.random.default_rng(0)), every)
    assert is_pair_count_short(6, 1000) and not is_pair_count_short(6, 15)
    assert not is_pair_count_short(6, None)


def test_bootstrap_interval_contains_the_mean():
    rng = np.random.default_rng(1)
    pairs = sample_pairs(30, None, rng)
    values = rng.uniform(0.6, 0.9, len(pairs))
    low, high = bootstrap_mean_ci(pairs, values, 30, np.random.default_rng(2))
    assert low < values.mean() < high
    assert high - low < 0.1


def test_bootstrap_of_equal_values_is_that_value():
    pairs = sample_pairs(5, None, np.random.default_rng(0))
    low, high = bootstrap_mean_ci(pairs, np.full(len(pairs), 0.7), 5, np.random.default_rng(0))
    assert low == pytest.approx(0.7) and high == pytest.approx(0.7)


def test_bootstrap_resamples_volumes_not_pairs():
    # One odd volume makes every pair it belongs to low: resampling volumes sees that as one
    # unit, so its interval is wider than one from resampling the 45 pairs independently.
    n = 10
    pairs = sample_pairs(n, None, np.random.default_rng(0))
    values = np.where((pairs == 0).any(axis=1), 0.2, 0.8)
    low, high = bootstrap_mean_ci(pairs, values, n, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    pair_means = [rng.choice(values, len(values)).mean() for _ in range(2000)]
    pair_low, pair_high = np.percentile(pair_means, [2.5, 97.5])
    assert high - low > 1.3 * (pair_high - pair_low)


def test_pair_values_standard_protocol_batches(smooth_volumes):
    volumes = smooth_volumes(4, (20, 20, 20))
    pairs = sample_pairs(4, None, np.random.default_rng(0))
    done = []
    values = pair_values(volumes, pairs, protocol="standard", data_range=1.0, low=0.0,
                         batch_size=4, progress=done.append)
    assert sum(done) == len(pairs)
    for (i, j), value in zip(pairs, values, strict=True):
        one = ms_ssim(torch.from_numpy(volumes[i])[None, None],
                      torch.from_numpy(volumes[j])[None, None], 1.0)
        assert value == pytest.approx(float(one), abs=1e-6)


def test_pair_values_paper_protocol_maps_to_minus_one_one(smooth_volumes):
    volumes = 100 * smooth_volumes(3, (16, 16, 16)) + 50  # values 50..150
    pairs = np.array([[0, 1], [1, 2]])
    values = pair_values(volumes, pairs, protocol="paper", data_range=100.0, low=50.0)
    unit = (volumes.astype(np.float64) - 50) / 50 - 1
    np.testing.assert_allclose(values, [paper_ms_ssim(unit[0], unit[1]),
                                        paper_ms_ssim(unit[1], unit[2])], rtol=1e-9)
