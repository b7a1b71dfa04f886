"""Nearest training volume of each sample: a coarse search over every training volume, then
a fine comparison of the best few with local alignment; the copy / novel / off-distribution
thresholds and the check's power (the maths of `evaluation.memorization`).

Similarity. The normalised cross-correlation (Pearson correlation of voxel values) of the
overlapping parts of a sample a, mirrored m and moved by s, and a training volume b,

    NCC(a, b) = max over shifts s and mirrors m of  <A, B> / (|A| |B|),

ignores brightness and contrast, so volumes of any one value scale compare directly.
- coarse search: every volume average-pooled to at most `grid` voxels per axis (16 by default),
  every integer shift of up to `max_shift` coarse voxels per axis (2) and the left-right mirror
  (W), for every sample-training pair: one matrix product per shift and mirror. It keeps each
  sample's `candidates` (3) best training volumes with their shift and mirror.
- fine comparison: each candidate aligned again up a pyramid of grids (each axis doubling) to
  the fine grid (the volume itself, pooled to at most `fine_grid` voxels per axis, 64), one voxel
  around the shift the grid below found; the NCC of the overlap at the final alignment is the
  score and the best candidate the nearest training volume. At 16^3 any two brains correlate
  about as well as a brain and its copy; at full resolution they do not.

Calibration (the rule; every distribution is reported):
- augmented copies: `copies` training volumes (all, if fewer), each shifted by a random integer
  of up to `max_shift` coarse voxels per axis (at full resolution), mirrored with p = 0.5,
  blurred (Gaussian, sigma uniform in [0, `blur`] voxels, as a decoder softens) and given
  Gaussian noise of `noise` times its own standard deviation, are searched like samples. The copy
  threshold is the COPY_QUANTILE (5th percentile) of their scores: 95% of such copies reach it.
- held-out real volumes (`--holdout`, volumes of subjects the model never saw): the novel
  threshold is their NOVEL_QUANTILE (95th percentile); the off-distribution threshold is their
  lowest score minus their spread (at least OFF_MARGIN): a sample at or below it resembles no
  training volume even as much as another person's scan does (noise, a broken model).
- power: the ROC AUC of augmented copies' scores over held-out volumes' scores, i.e. how well the
  check tells a copy from an unseen subject on this data. Copies are called only with power of
  at least POWER_NEEDED (0.95); otherwise, and without held-out volumes, every sample above the
  off-distribution threshold is "cannot tell".
- with power: a sample at or above the copy threshold is a copy; else at or below the novel
  threshold, novel; else close.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from evaluation.volume_features import roc_auc

DEFAULT_GRID = 16
DEFAULT_MAX_SHIFT = 2
COPY_QUANTILE = 0.05
NOVEL_QUANTILE = 0.95
DEFAULT_FINE_GRID = 64
DEFAULT_CANDIDATES = 3
POWER_NEEDED = 0.95
OFF_MARGIN = 0.1
CLASSES = ("copy", "close", "novel", "off-distribution", "cannot tell")
# Score matrices are computed for at most this many (sample, training) pairs at once (64 MiB).
PAIR_BUDGET = 1 << 24


# --- similarity -----------------------------------------------------------------------------

def coarse_shape(shape: Sequence[int], grid: int = DEFAULT_GRID) -> tuple[int, ...]:
    """The pooled grid of a volume shape: at most `grid` voxels per axis."""
    return tuple(min(int(n), grid) for n in shape)


def downsample(volumes: torch.Tensor, grid: int = DEFAULT_GRID) -> torch.Tensor:
    """Average-pool (N, D, H, W) volumes to `coarse_shape` in float32 (as they are when they
    already have it)."""
    target = coarse_shape(volumes.shape[1:], grid)
    if target == tuple(volumes.shape[1:]):
        return volumes.float()
    return F.adaptive_avg_pool3d(volumes.float().unsqueeze(1), target).squeeze(1)


def shifts(max_shift: int) -> list[tuple[int, int, int]]:
    """Every integer shift (dz, dy, dx) of at most `max_shift` per axis, (0, 0, 0) first."""
    steps = sorted(range(-max_shift, max_shift + 1), key=abs)
    return list(itertools.product(steps, repeat=3))


def _overlap(length: int, offset: int) -> tuple[slice, slice]:
    """Index ranges of the query (moved by `offset`) and the reference that overlap on an axis."""
    return (slice(max(0, offset), length + min(0, offset)),
            slice(max(0, -offset), length + min(0, -offset)))


def _normalised(volumes: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, V): each row with zero mean and unit norm (a constant row stays 0)."""
    flat = volumes.reshape(volumes.shape[0], -1)
    return F.normalize(flat - flat.mean(1, keepdim=True), dim=1, eps=1e-12)


@dataclass
class Matches:
    """For each query: its best training match, the score and the alignment that gave it."""

    score: np.ndarray  # (n,) float64, NCC in [-1, 1]
    index: np.ndarray  # (n,) int64, into the references
    # (n, 3) int64 voxels of the grid searched (dz, dy, dx): query voxel z + dz faces
    # reference voxel z
    shift: np.ndarray
    flipped: np.ndarray  # (n,) bool: the query was mirrored left-right (before the shift)
    # (n, k) the k best references of each query on this grid, best first, with their shifts
    # (n, k, 3) and mirrors (n, k): the candidates a finer comparison looks at again
    candidates: np.ndarray | None = None
    candidate_shift: np.ndarray | None = None
    candidate_flipped: np.ndarray | None = None


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, *,
                       max_shift: int = DEFAULT_MAX_SHIFT, flip: bool = True, candidates: int = 1,
                       desc: str = "searching", progress: bool = True) -> Matches:
    """Best NCC of each coarse query (n, d, h, w) over references (m, d, h, w) (module doc),
    and its `candidates` best references."""
    if queries.shape[1:] != references.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape[1:])} and references "
                         f"{tuple(references.shape[1:])} differ in shape")
    n, m = queries.shape[0], references.shape[0]
    views = [(False, queries)] + ([(True, queries.flip(-1))] if flip else [])
    offsets = shifts(max_shift)
    # The best score of every (query, reference) pair, and the shift and mirror that gave it.
    pair = torch.full((n, m), -2.0)
    pair_shift = torch.zeros((n, m), dtype=torch.int16)
    pair_flip = torch.zeros((n, m), dtype=torch.bool)
    rows = max(1, PAIR_BUDGET // max(1, m))
    for which, offset in enumerate(tqdm(offsets, desc=desc, unit="shift", disable=not progress)):
        windows = [_overlap(length, o) for length, o in zip(queries.shape[1:], offset,
                                                            strict=True)]
        query_part = (slice(None), *(w[0] for w in windows))
        refs = _normalised(references[(slice(None), *(w[1] for w in windows))]).T.contiguous()
        for mirrored, view in views:
            for start in range(0, n, rows):
                value = _normalised(view[start:start + rows][query_part]) @ refs
                here = slice(start, start + value.shape[0])
                better = value > pair[here]
                pair[here] = torch.where(better, value, pair[here])
                pair_shift[here][better] = which
                if mirrored:
                    pair_flip[here] |= better
                else:
                    pair_flip[here] &= ~better
    k = min(candidates, m)
    score, index = pair.topk(k, dim=1)
    table = torch.tensor(offsets, dtype=torch.long)
    shift = table[pair_shift.gather(1, index).long()]
    flipped = pair_flip.gather(1, index)
    return Matches(score[:, 0].double().numpy(), index[:, 0].numpy(), shift[:, 0].numpy(),
                   flipped[:, 0].numpy(), index.numpy(), shift.numpy(), flipped.numpy())


# --- the fine comparison --------------------------------------------------------------------

def pyramid(coarse: Sequence[int], fine: Sequence[int]) -> list[tuple[int, ...]]:
    """The grids from just above `coarse` to `fine`, each axis doubling until it is fine."""
    levels, grid = [], tuple(coarse)
    while grid != tuple(fine):
        grid = tuple(min(2 * g, f) for g, f in zip(grid, fine, strict=True))
        levels.append(grid)
    return levels


def _pool(volumes: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """(n, D, H, W) average-pooled to `grid` in float32 (as it is when it has that shape)."""
    volumes = volumes.float()
    if tuple(volumes.shape[1:]) == tuple(grid):
        return volumes
    return F.adaptive_avg_pool3d(volumes.unsqueeze(1), tuple(grid)).squeeze(1)


def _aligned(query: torch.Tensor, reference: torch.Tensor, centre: torch.Tensor
             ) -> torch.Tensor:
    """The shift within one voxel per axis of `centre` with the best NCC, all 27 at once.

    The part of the query whose counterpart lies inside the reference for every one of the 27
    shifts is correlated with each shifted window of the reference: one 3D convolution with
    the normalised query part gives the 27 cross terms (a loop of products: faster here than a
    convolution with so large a kernel), summed-volume tables the windows' sums and sums of
    squares.
    """
    starts, stops = [], []
    for n, c in zip(query.shape, centre.tolist(), strict=True):
        starts.append(max(0, c + 1))
        stops.append(min(n, n + c - 1))
    if any(b - a < 2 for a, b in zip(starts, stops, strict=True)):
        return centre
    part = query[tuple(slice(a, b) for a, b in zip(starts, stops, strict=True))]
    kernel = _normalised(part[None]).view_as(part)
    window = reference[tuple(slice(a - c - 1, b - c + 1) for a, b, c in
                             zip(starts, stops, centre.tolist(), strict=True))]
    size = part.shape
    cross = torch.stack([(window[i:i + size[0], j:j + size[1], k:k + size[2]] * kernel).sum()
                         for i, j, k in itertools.product(range(3), repeat=3)]).view(3, 3, 3)
    count = float(part.numel())
    sums, squares = _box_sums(window, size), _box_sums(window * window, size)
    spread = (squares - sums * sums / count).clamp_min(1e-12).sqrt()
    t = int(torch.argmax(cross / spread))
    return centre + 1 - torch.tensor(np.unravel_index(t, (3, 3, 3)))


def _box_sums(volume: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Sums over every window of `size` in `volume` (one voxel larger per side): (3, 3, 3)."""
    total = volume.double()
    for axis, n in enumerate(size):
        cumulative = F.pad(total.cumsum(axis), [0, 0] * (2 - axis) + [1, 0])
        total = cumulative.narrow(axis, n, 3) - cumulative.narrow(axis, 0, 3)
    return total.float()


def ncc_at(query: torch.Tensor, reference: torch.Tensor, offset: Sequence[int]) -> float:
    """The NCC of the overlapping parts of `query` moved by `offset` and `reference`."""
    windows = [_overlap(n, int(o)) for n, o in zip(query.shape, offset, strict=True)]
    a = query[tuple(w[0] for w in windows)][None]
    b = reference[tuple(w[1] for w in windows)][None]
    return float((_normalised(a) * _normalised(b)).sum())


def refine(queries: torch.Tensor, references: torch.Tensor, coarse: Matches,
           coarse_grid: Sequence[int], *, desc: str = "aligning", progress: bool = True
           ) -> Matches:
    """The fine comparison: each query's coarse candidates aligned again up the `pyramid` to
    the fine grid of `queries` (n, D, H, W) and `references` (m, D, H, W) (any float dtype),
    one voxel around the shift the level below found; the score is the NCC of the overlap at
    the final alignment, the best candidate wins. `coarse_grid`: the grid `coarse` was found
    on. Shifts come back in fine voxels."""
    fine = tuple(queries.shape[1:])
    grid_below = tuple(int(g) for g in coarse_grid)
    levels = pyramid(grid_below, fine)
    n, k = coarse.candidates.shape
    score, index = np.full(n, -2.0), np.zeros(n, dtype=np.int64)
    shift, flipped = np.zeros((n, 3), dtype=np.int64), np.zeros(n, dtype=bool)
    for i in tqdm(range(n), desc=desc, unit="volume", disable=not progress):
        refs = references[torch.from_numpy(coarse.candidates[i])].float()
        mirrors = torch.from_numpy(coarse.candidate_flipped[i])
        query = queries[i].float()
        views = torch.stack([query.flip(-1) if m else query for m in mirrors])
        centres = torch.from_numpy(coarse.candidate_shift[i]).long()
        below = grid_below
        for level in levels:
            scale = torch.tensor([a / b for a, b in zip(level, below, strict=True)])
            centres = torch.round(centres * scale).long()
            pooled_refs, pooled_views = _pool(refs, level), _pool(views, level)
            for c in range(k):
                centres[c] = _aligned(pooled_views[c], pooled_refs[c], centres[c])
            below = level
        values = [ncc_at(views[c], refs[c], centres[c]) for c in range(k)]
        best = int(np.argmax(values))
        score[i], index[i] = values[best], coarse.candidates[i, best]
        shift[i], flipped[i] = centres[best].numpy(), bool(mirrors[best])
    return Matches(score, index, shift, flipped)


# --- calibration ----------------------------------------------------------------------------

def move(array: np.ndarray, offset: Sequence[int]) -> np.ndarray:
    """`array` with its content moved by `offset` voxels per axis (out[z + o] = array[z]); the
    uncovered border takes the array's minimum, its background."""
    moved = np.full_like(array, array.min())
    source = tuple(_overlap(n, -o)[0] for n, o in zip(array.shape, offset, strict=True))
    target = tuple(_overlap(n, -o)[1] for n, o in zip(array.shape, offset, strict=True))
    moved[target] = array[source]
    return moved


def augment(volume: np.ndarray, rng: np.random.Generator, *, max_voxels: Sequence[int],
            noise: float, blur: float = 0.0) -> tuple[np.ndarray, dict]:
    """A shifted (background-filled), maybe mirrored, blurred (Gaussian, sigma drawn uniformly
    from [0, `blur`] voxels) and noised copy of one (D, H, W) volume."""
    offset = [int(rng.integers(-v, v + 1)) for v in max_voxels]
    moved = move(volume, offset)
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        moved = moved[..., ::-1]
    sigma_blur = float(rng.uniform(0.0, blur)) if blur > 0 else 0.0
    if sigma_blur > 0:
        moved = gaussian_filter(moved, sigma_blur, mode="nearest")
    sigma = noise * float(volume.std())
    noisy = moved + rng.normal(0.0, sigma, volume.shape).astype(volume.dtype)
    return np.ascontiguousarray(noisy, dtype=volume.dtype), {
        "shift": offset, "flipped": mirrored, "blur_sigma": sigma_blur, "noise_sd": sigma}


def summary(scores: np.ndarray) -> dict:
    """Count, minimum, 5th/50th/95th percentiles and maximum of a score distribution."""
    q05, q50, q95 = np.quantile(scores, [0.05, 0.5, 0.95])
    return {"n": int(scores.size), "min": float(scores.min()), "q05": float(q05),
            "median": float(q50), "q95": float(q95), "max": float(scores.max())}


@dataclass(frozen=True)
class Thresholds:
    """The calibrated thresholds, what they were calibrated on, and the check's power."""

    copy: float
    novel: float
    novel_from: str  # "holdout" or "augmented copies only"
    power: float | None = None  # AUC of augmented copies' scores over held-out volumes' scores
    off_distribution: float | None = None  # at or below: resembles no training volume

    @property
    def overlap(self) -> bool:
        """Whether unseen volumes reach the copy threshold (the classes cannot be separated)."""
        return self.novel >= self.copy

    @property
    def powered(self) -> bool:
        """Whether the check tells copies from unseen scans well enough to call copies."""
        return self.power is not None and self.power >= POWER_NEEDED


def calibrate(augmented_scores: np.ndarray, holdout_scores: np.ndarray | None) -> Thresholds:
    """The thresholds and power of the module docstring's rule."""
    copy = float(np.quantile(augmented_scores, COPY_QUANTILE))
    if holdout_scores is None or holdout_scores.size == 0:
        return Thresholds(copy, float(augmented_scores.min()), "augmented copies only")
    labels = np.r_[np.zeros(holdout_scores.size), np.ones(augmented_scores.size)]
    power = roc_auc(np.r_[holdout_scores, augmented_scores], labels)
    spread = float(holdout_scores.max() - holdout_scores.min())
    off = float(holdout_scores.min()) - max(spread, OFF_MARGIN)
    return Thresholds(copy, float(np.quantile(holdout_scores, NOVEL_QUANTILE)), "holdout", power,
                      off)


def classify(scores: np.ndarray, thresholds: Thresholds) -> list[str]:
    """Per score: off-distribution (at or below its threshold); else, without the power to
    call copies, cannot tell; else copy (>= copy threshold), novel (<= novel threshold) or
    close."""
    def one(s: float) -> str:
        if thresholds.off_distribution is not None and s <= thresholds.off_distribution:
            return "off-distribution"
        if not thresholds.powered:
            return "cannot tell"
        return "copy" if s >= thresholds.copy else "novel" if s <= thresholds.novel else "close"

    return [one(float(s)) for s in scores]
