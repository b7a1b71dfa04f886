"""evaluation.copy_search: the NCC search over shifts and the mirror, and the threshold rule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from evaluation.copy_search import (
    calibrate,
    classify,
    downsample,
    move,
    nearest_neighbours,
    refine,
    shifts,
)


def _brute_force(query: np.ndarray, reference: np.ndarray, max_shift: int) -> float:
    """Best Pearson correlation over overlapping crops, every shift and the W mirror."""
    best = -2.0
    for view in (query, query[..., ::-1]):
        for offset in itertools.product(range(-max_shift, max_shift + 1), repeat=3):
            pairs = list(zip(view.shape, offset, strict=True))
            q = view[tuple(slice(max(0, o), n + min(0, o)) for n, o in pairs)]
            r = reference[tuple(slice(max(0, -o), n + min(0, -o)) for n, o in pairs)]
            best = max(best, float(np.corrcoef(q.ravel(), r.ravel())[0, 1]))
    return best


def test_scores_are_the_best_correlation_over_shifts_and_mirror():
    rng = np.random.default_rng(0)
    queries, references = rng.standard_normal((3, 6, 7, 8)), rng.standard_normal((4, 6, 7, 8))
    matches = nearest_neighbours(torch.from_numpy(queries).float(),
                                 torch.from_numpy(references).float(), max_shift=1,
                                 progress=False)
    for i in range(3):
        expected = [_brute_force(queries[i], references[j], 1) for j in range(4)]
        assert matches.score[i] == pytest.approx(max(expected), abs=1e-5)
        assert matches.index[i] == int(np.argmax(expected))
    assert len(shifts(2)) == 125 and shifts(2)[0] == (0, 0, 0)


def test_a_moved_mirrored_copy_is_found_with_its_alignment():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((5, 12, 12, 12))
    query = move(references[3], (1, -2, 1))[..., ::-1]
    matches = nearest_neighbours(torch.from_numpy(query[None].copy()).float(),
                                 torch.from_numpy(references).float(), max_shift=2,
                                 progress=False)
    assert matches.index[0] == 3 and matches.flipped[0]
    assert matches.score[0] == pytest.approx(1.0, abs=1e-5)
    # Mirrored back, the query's voxel z + s faces the reference's voxel z.
    assert tuple(matches.shift[0]) == (1, -2, 1)


def test_thresholds_follow_the_rule():
    augmented = np.linspace(0.90, 1.0, 101)
    holdout = np.linspace(0.50, 0.70, 101)
    thresholds = calibrate(augmented, holdout)
    assert thresholds.copy == pytest.approx(0.905) and thresholds.novel == pytest.approx(0.69)
    assert thresholds.novel_from == "holdout" and not thresholds.overlap
    assert classify(np.array([0.95, 0.8, 0.6, 0.905]), thresholds) == ["copy", "close", "novel",
                                                                        "copy"]
    assert thresholds.power == 1.0 and thresholds.powered
    assert thresholds.off_distribution == pytest.approx(0.50 - 0.20)
    assert classify(np.array([0.3, 0.29]), thresholds) == ["off-distribution"] * 2
    alone = calibrate(augmented, None)
    assert alone.novel == pytest.approx(0.90) and alone.novel_from == "augmented copies only"
    assert alone.power is None and alone.off_distribution is None
    assert classify(np.array([0.99, 0.1]), alone) == ["cannot tell", "cannot tell"]


def test_without_power_no_copy_is_called():
    augmented = np.linspace(0.90, 1.0, 101)
    holdout = np.linspace(0.88, 0.99, 11)  # unseen scans score like copies: AUC about 0.7
    thresholds = calibrate(augmented, holdout)
    assert 0.5 < thresholds.power < 0.95 and not thresholds.powered
    assert classify(np.array([0.999, 0.93, 0.5]), thresholds) == [
        "cannot tell", "cannot tell", "off-distribution"]


def test_refine_finds_the_full_resolution_alignment_the_coarse_grid_cannot():
    rng = np.random.default_rng(2)
    from scipy.ndimage import gaussian_filter

    references = np.stack([gaussian_filter(rng.standard_normal((32, 32, 32)), 1.5)
                           for _ in range(6)]).astype(np.float32)
    query = move(references[4], (3, -1, 2))[..., ::-1].copy()
    queries = torch.from_numpy(query[None])
    small_q, small_r = downsample(queries, 8), downsample(torch.from_numpy(references), 8)
    coarse = nearest_neighbours(small_q, small_r, max_shift=2, candidates=3, progress=False)
    assert coarse.candidates.shape == (1, 3) and coarse.candidates[0, 0] == coarse.index[0]
    fine = refine(queries.half(), torch.from_numpy(references).half(), coarse, (8, 8, 8),
                  progress=False)
    assert fine.index[0] == 4 and fine.flipped[0]
    assert tuple(fine.shift[0]) == (3, -1, 2)
    assert fine.score[0] == pytest.approx(1.0, abs=1e-3)
