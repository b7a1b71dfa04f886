"""Are samples copies of training volumes? Nearest neighbours by normalised cross-correlation.

3D latent diffusion models memorise training scans, more with small data sets and long training
(FACTS.md, "Memorisation"); synthetic data protects privacy only if its samples are not copies.
For every sample this finds its nearest training volume and their similarity, and classes the
sample as a copy, close or novel against thresholds calibrated on the data, not guessed.

Similarity. Every volume is average-pooled to a coarse grid (at most `grid` voxels per axis,
16 by default: 64^3 -> 16^3), where small misalignments and noise matter little and a thousand
by a thousand volumes compare in seconds. The similarity of a sample a and a training volume b is
the largest normalised cross-correlation (Pearson correlation of voxel values)

    NCC(a, b) = max over shifts s and mirrors m of  <A, B> / (|A| |B|)

where A and B are the overlapping parts of m(a) shifted by s and of b, each with its mean
subtracted; s runs over every integer shift of up to `max_shift` coarse voxels per axis (2 by
default, i.e. 8 voxels at 64^3) and m over identity and the left-right mirror (W), the flip used
in training. NCC ignores brightness and contrast, so a sample in its intensities (HU, [0, 1])
compares directly with prepared training arrays in [-1, 1]. For each shift and mirror, all
sample-training scores are one matrix product of the normalised overlaps.

Calibration (the rule; both distributions are reported):
- augmented copies: `copies` training volumes (all, if fewer), each shifted by a random integer
  of up to `max_shift` coarse voxels per axis (at full resolution), mirrored with p = 0.5 and
  given Gaussian noise of `noise` times its own standard deviation, are searched against the
  training set like samples. The copy threshold is the COPY_QUANTILE (5th percentile) of their
  scores: 95% of such copies reach it.
- held-out real volumes (`--holdout`: volumes the model never saw, e.g. the PREP_DIR's own
  validation split): each one's nearest-neighbour score. The novel threshold is their
  NOVEL_QUANTILE (95th percentile): a sample at or below it is no closer to the training set than
  unseen real scans are.
- a sample scoring at or above the copy threshold is a copy; else at or below the novel
  threshold, novel; else close. Where the two distributions overlap (novel threshold >= copy
  threshold) the grid cannot separate copies from unseen scans: copy wins (a privacy check must
  not miss copies) and the report says so.
- without held-out volumes only augmented copies calibrate: the novel threshold is then the
  lowest score any augmented copy reached, so "novel" means less similar than every tested copy,
  not "as different as an unseen scan"; the report says so.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from tqdm import tqdm

from diffusion_core.data import PreparedDataset
from diffusion_core.prepared import PreparedError
from evaluation.errors import EvalError
from evaluation.slice_panels import (
    check_figure_path,
    new_figure,
    percentile_window,
    save_png,
    show_slice,
)
from evaluation.volume_sources import VolumeSource, check_shapes, open_source

DEFAULT_GRID = 16
DEFAULT_MAX_SHIFT = 2
DEFAULT_COPIES = 200
DEFAULT_NOISE = 0.1
DEFAULT_PAIRS = 6
COPY_QUANTILE = 0.05
NOVEL_QUANTILE = 0.95
CLASSES = ("copy", "close", "novel")
TRAIN_SPLITS = ("train", "all")
# Score matrices are computed for at most this many (sample, training) pairs at once (64 MiB).
PAIR_BUDGET = 1 << 24
PANEL_INCHES = 1.5


# --- similarity -----------------------------------------------------------------------------

def coarse_shape(shape: Sequence[int], grid: int = DEFAULT_GRID) -> tuple[int, ...]:
    """The pooled grid of a volume shape: at most `grid` voxels per axis."""
    return tuple(min(int(n), grid) for n in shape)


def downsample(volumes: torch.Tensor, grid: int = DEFAULT_GRID) -> torch.Tensor:
    """Average-pool (N, D, H, W) volumes to `coarse_shape` in float32."""
    target = coarse_shape(volumes.shape[1:], grid)
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
    # (n, 3) int64 coarse voxels (dz, dy, dx): query voxel z + dz faces reference voxel z
    shift: np.ndarray
    flipped: np.ndarray  # (n,) bool: the query was mirrored left-right (before the shift)


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, *,
                       max_shift: int = DEFAULT_MAX_SHIFT, flip: bool = True,
                       desc: str = "searching", progress: bool = True) -> Matches:
    """Best NCC of each coarse query (n, d, h, w) over references (m, d, h, w) (module doc)."""
    if queries.shape[1:] != references.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape[1:])} and references "
                         f"{tuple(references.shape[1:])} differ in shape")
    n, m = queries.shape[0], references.shape[0]
    views = [(False, queries)] + ([(True, queries.flip(-1))] if flip else [])
    best = torch.full((n,), -2.0, dtype=torch.float64)
    index = torch.zeros(n, dtype=torch.long)
    shift = torch.zeros((n, 3), dtype=torch.long)
    flipped = torch.zeros(n, dtype=torch.bool)
    rows = max(1, PAIR_BUDGET // max(1, m))
    for offset in tqdm(shifts(max_shift), desc=desc, unit="shift", disable=not progress):
        windows = [_overlap(length, o) for length, o in zip(queries.shape[1:], offset,
                                                            strict=True)]
        query_part = (slice(None), *(w[0] for w in windows))
        refs = _normalised(references[(slice(None), *(w[1] for w in windows))]).T.contiguous()
        for mirrored, view in views:
            for start in range(0, n, rows):
                block = _normalised(view[start:start + rows][query_part])
                value, which = (block @ refs).max(dim=1)
                rows_here = slice(start, start + block.shape[0])
                better = value.double() > best[rows_here]
                best[rows_here] = torch.where(better, value.double(), best[rows_here])
                index[rows_here] = torch.where(better, which, index[rows_here])
                shift[rows_here][better] = torch.tensor(offset)
                flipped[rows_here] = torch.where(better, mirrored, flipped[rows_here])
    return Matches(best.numpy(), index.numpy(), shift.numpy(), flipped.numpy())


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
            noise: float) -> tuple[np.ndarray, dict]:
    """A shifted (background-filled), maybe mirrored, noised copy of one (D, H, W) volume."""
    offset = [int(rng.integers(-v, v + 1)) for v in max_voxels]
    moved = move(volume, offset)
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        moved = moved[..., ::-1]
    sigma = noise * float(volume.std())
    noisy = moved + rng.normal(0.0, sigma, volume.shape).astype(volume.dtype)
    return np.ascontiguousarray(noisy), {"shift": offset, "flipped": mirrored, "noise_sd": sigma}


def summary(scores: np.ndarray) -> dict:
    """Count, minimum, 5th/50th/95th percentiles and maximum of a score distribution."""
    q05, q50, q95 = np.quantile(scores, [0.05, 0.5, 0.95])
    return {"n": int(scores.size), "min": float(scores.min()), "q05": float(q05),
            "median": float(q50), "q95": float(q95), "max": float(scores.max())}


@dataclass(frozen=True)
class Thresholds:
    """The calibrated thresholds and what they were calibrated on."""

    copy: float
    novel: float
    novel_from: str  # "holdout" or "augmented copies only"

    @property
    def overlap(self) -> bool:
        """Whether unseen volumes reach the copy threshold (the classes cannot be separated)."""
        return self.novel >= self.copy


def calibrate(augmented_scores: np.ndarray, holdout_scores: np.ndarray | None) -> Thresholds:
    """The copy and novel thresholds of the module docstring's rule."""
    copy = float(np.quantile(augmented_scores, COPY_QUANTILE))
    if holdout_scores is None or holdout_scores.size == 0:
        return Thresholds(copy, float(augmented_scores.min()), "augmented copies only")
    return Thresholds(copy, float(np.quantile(holdout_scores, NOVEL_QUANTILE)), "holdout")


def classify(scores: np.ndarray, thresholds: Thresholds) -> list[str]:
    """copy (>= copy threshold), else novel (<= novel threshold), else close, per score."""
    return ["copy" if s >= thresholds.copy else "novel" if s <= thresholds.novel else "close"
            for s in scores]


# --- reading --------------------------------------------------------------------------------

@dataclass
class CoarseSet:
    """Volumes of one input, pooled to the coarse grid, with their names."""

    label: str  # "train", "samples" or "holdout"
    folder: Path
    split: str | None
    names: list[str]
    coarse: torch.Tensor  # (n, d, h, w)


def _pool_stream(read: Callable[[int], np.ndarray], count: int, grid: int,
                 desc: str, progress: bool) -> torch.Tensor:
    """Read `count` (D, H, W) volumes one by one, pooling each at once: (count, d, h, w)."""
    pooled = []
    # Closed before an error leaves, so the error's sentence is not printed into the bar's line.
    with tqdm(total=count, desc=desc, unit="volume", disable=not progress) as bar:
        for index in range(count):
            array = np.ascontiguousarray(read(index))
            pooled.append(downsample(torch.from_numpy(array)[None], grid)[0])
            bar.update()
    return torch.stack(pooled)


def read_prepared(prep_dir: str | os.PathLike, split: str, label: str, option: str, grid: int,
                  *, minimum: int = 1, progress: bool = True
                  ) -> tuple[CoarseSet, PreparedDataset]:
    """One split of a PREP_DIR, pooled; also the dataset (to draw volumes from)."""
    try:
        dataset = PreparedDataset(prep_dir, split, flip=False)
    except PreparedError as err:
        raise EvalError(f"{option} {prep_dir}: {str(err).rstrip('.')}.") from None
    if len(dataset) < minimum:
        raise EvalError(f"the {split} split of {option} {prep_dir} holds {len(dataset)} "
                        f"volume(s); the memorisation check needs at least {minimum} there.")
    coarse = _pool_stream(lambda i: _read_prepared(dataset, i), len(dataset), grid,
                             f"reading {label}", progress)
    return CoarseSet(label, Path(prep_dir), split, list(dataset.names), coarse), dataset


def _read_prepared(dataset: PreparedDataset, index: int) -> np.ndarray:
    """One array of a PreparedDataset as (D, H, W); EvalError for an unreadable one."""
    try:
        return dataset[index][0].numpy()
    except PreparedError as err:
        raise EvalError(f"{str(err).rstrip('.')}.") from None


def read_folder(folder: str | os.PathLike, label: str, option: str, shape: tuple[int, ...],
                grid: int, *, progress: bool = True) -> tuple[CoarseSet, VolumeSource]:
    """A samples folder, PREP_DIR or folder of scans, pooled; every volume must have `shape`."""
    source = open_source(folder, option)

    def read(index: int) -> np.ndarray:
        array, _modality = source.read(index)
        check_shapes(array.shape, shape, source.scans[index].path, "the training volumes")
        return array

    coarse = _pool_stream(read, len(source), grid, f"reading {label}", progress)
    return CoarseSet(label, Path(folder), None, source.names, coarse), source


# --- the check ------------------------------------------------------------------------------

def memorization_report(train: str | os.PathLike, samples: str | os.PathLike, *,
                        holdout: str | os.PathLike | None = None, train_split: str = "train",
                        grid: int = DEFAULT_GRID, max_shift: int = DEFAULT_MAX_SHIFT,
                        copies: int = DEFAULT_COPIES, noise: float = DEFAULT_NOISE,
                        seed: int = 0, figure: str | os.PathLike | None = None,
                        pairs: int = DEFAULT_PAIRS, progress: bool = True,
                        force: bool = False) -> dict:
    """Nearest training volume, score and class of every sample, with the calibration (JSON);
    an existing `figure` is replaced only with `force` (`check_figure_path`)."""
    started = time.perf_counter()
    figure = None if figure is None else Path(figure)
    if figure is not None:
        check_figure_path(figure, force=force, inputs=[
            ("--train", train), ("--samples", samples), ("--holdout", holdout)])
    _check_options(grid, max_shift, copies, noise, pairs)
    if train_split not in TRAIN_SPLITS:
        raise EvalError(f"--train-split is one of {', '.join(TRAIN_SPLITS)}, not {train_split!r}.")
    train_set, dataset = read_prepared(train, train_split, "training volumes", "--train", grid,
                                       minimum=2, progress=progress)
    shape = tuple(dataset.shape)
    if max_shift >= min(train_set.coarse.shape[1:]):
        raise EvalError(f"--max-shift {max_shift} leaves no overlap on the coarse grid "
                        f"{tuple(train_set.coarse.shape[1:])}; use a smaller shift.")
    sample_set, sample_source = read_folder(samples, "samples", "--samples", shape, grid,
                                            progress=progress)
    holdout_set = _read_holdout(holdout, train, train_split, shape, grid, progress)

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(dataset), size=min(copies, len(dataset)), replace=False))
    factors = [n / c for n, c in zip(shape, train_set.coarse.shape[1:], strict=True)]
    max_voxels = [int(round(max_shift * f)) for f in factors]
    augmented_coarse = torch.stack([
        downsample(torch.from_numpy(augment(_read_prepared(dataset, int(i)), rng,
                                            max_voxels=max_voxels, noise=noise)[0])[None],
                   grid)[0]
        for i in tqdm(chosen, desc="augmenting copies", unit="volume", disable=not progress)])

    def search(queries: torch.Tensor, desc: str) -> Matches:
        return nearest_neighbours(queries, train_set.coarse, max_shift=max_shift, desc=desc,
                                  progress=progress)

    augmented_matches = search(augmented_coarse, "augmented copies")
    holdout_matches = search(holdout_set.coarse, "held-out volumes") if holdout_set else None
    sample_matches = search(sample_set.coarse, "samples")
    thresholds = calibrate(augmented_matches.score,
                           holdout_matches.score if holdout_matches else None)
    classes = classify(sample_matches.score, thresholds)

    results = [{"file": name, "nearest": train_set.names[int(sample_matches.index[i])],
                "score": float(sample_matches.score[i]),
                "shift": [int(v) for v in sample_matches.shift[i]],
                "flipped": bool(sample_matches.flipped[i]), "class": classes[i]}
               for i, name in enumerate(sample_set.names)]
    counts = {c: classes.count(c) for c in CLASSES}
    report = {
        "inputs": {
            "train": {"dir": str(train), "split": train_split, "n_volumes": len(train_set.names)},
            "samples": {"dir": str(samples), "n_volumes": len(sample_set.names)},
            "holdout": None if holdout_set is None else {
                "dir": str(holdout), "split": holdout_set.split,
                "n_volumes": len(holdout_set.names)},
        },
        "similarity": {"measure": "normalised cross-correlation", "shape": list(shape),
                       "grid": list(train_set.coarse.shape[1:]), "max_shift": max_shift,
                       "flip": "left-right (W)"},
        "calibration": _calibration_json(thresholds, augmented_matches, chosen, holdout_matches,
                                         holdout_set, noise, max_voxels, seed),
        "counts": counts,
        "fractions": {c: counts[c] / len(classes) for c in CLASSES},
        "results": results,
        "figure": None,
    }
    if figure is not None:
        drawn = draw_closest_pairs(report, sample_source, dataset, pairs, thresholds,
                                   augmented_matches.score,
                                   holdout_matches.score if holdout_matches else None)
        save_png(drawn, figure)
        report["figure"] = str(figure)
    report["seconds"] = time.perf_counter() - started
    return report


def _check_options(grid: int, max_shift: int, copies: int, noise: float, pairs: int) -> None:
    """EvalError for option values the check cannot use."""
    if grid < 2:
        raise EvalError(f"--grid must be at least 2, got {grid}.")
    if max_shift < 0:
        raise EvalError(f"--max-shift must be 0 or more, got {max_shift}.")
    if copies < 2:
        raise EvalError(f"--copies must be at least 2 to calibrate a threshold, got {copies}.")
    if not noise >= 0:
        raise EvalError(f"--noise must be 0 or more, got {noise}.")
    if pairs < 1:
        raise EvalError(f"--pairs must be at least 1, got {pairs}.")


def _read_holdout(holdout: str | os.PathLike | None, train: str | os.PathLike, train_split: str,
                  shape: tuple[int, ...], grid: int, progress: bool) -> CoarseSet | None:
    """The held-out volumes: the validation split when --holdout is the training PREP_DIR."""
    if holdout is None:
        return None
    if Path(holdout).resolve() != Path(train).resolve():
        return read_folder(holdout, "held-out volumes", "--holdout", shape, grid,
                           progress=progress)[0]
    if train_split == "all":
        raise EvalError("--holdout is the training PREP_DIR but --train-split all uses all of "
                        "it for training; give another --holdout folder or --train-split train.")
    return read_prepared(holdout, "val", "held-out volumes", "--holdout", grid,
                         progress=progress)[0]


def _calibration_json(thresholds: Thresholds, augmented: Matches, chosen: np.ndarray,
                      holdout: Matches | None, holdout_set: CoarseSet | None, noise: float,
                      max_voxels: list[int], seed: int) -> dict:
    """The calibration part of the report: the rule, thresholds and both distributions."""
    notes = []
    if holdout is None:
        notes.append("no --holdout given: calibrated against augmented copies only; the novel "
                     "threshold is the lowest score an augmented copy reached, so 'novel' means "
                     "less similar than every tested copy, not as different as an unseen scan.")
    elif thresholds.overlap:
        notes.append("held-out volumes reach the copy threshold: at this grid the check cannot "
                     "tell copies from unseen scans; samples at or above it are called copies.")
    found = float(np.mean(augmented.index == chosen))
    return {
        "rule": (f"copy: score >= the {100 * COPY_QUANTILE:g}th percentile of augmented copies' "
                 f"scores; novel: score <= the {100 * NOVEL_QUANTILE:g}th percentile of held-out "
                 "volumes' scores (without held-out volumes: the lowest augmented score); close: "
                 "between"),
        "copy_threshold": thresholds.copy,
        "novel_threshold": thresholds.novel,
        "novel_from": thresholds.novel_from,
        "overlap": thresholds.overlap,
        "augmented": {**summary(augmented.score), "noise": noise, "max_shift_voxels": max_voxels,
                      "seed": seed, "source_found": found,
                      "scores": [float(s) for s in augmented.score]},
        "holdout": None if holdout is None else {
            **summary(holdout.score), "scores": [float(s) for s in holdout.score],
            "flagged_as_copy": float(np.mean(holdout.score >= thresholds.copy)),
            "names": holdout_set.names},
        "notes": notes,
    }


# --- figure and text ------------------------------------------------------------------------

def draw_closest_pairs(report: dict, samples: VolumeSource, dataset: PreparedDataset,
                       pairs: int, thresholds: Thresholds, augmented_scores: np.ndarray,
                       holdout_scores: np.ndarray | None) -> Figure:
    """The score distributions with both thresholds, then the closest sample-training pairs.

    Each pair row shows the middle depth slice of the sample and the same slice of its nearest
    training volume, mirrored and moved as the match aligned them, each in its own percentile
    window.
    """
    order = sorted(range(len(report["results"])), key=lambda i: -report["results"][i]["score"])
    order = order[:pairs]
    names = list(dataset.names)
    figure = new_figure(2 * PANEL_INCHES + 0.6, PANEL_INCHES * (len(order) + 1.4))
    grid = figure.add_gridspec(len(order) + 1, 2, height_ratios=[1.4] + [1] * len(order))
    hist = figure.add_subplot(grid[0, :])
    hist.set_label("score distributions")
    sample_scores = np.array([r["score"] for r in report["results"]])
    everything = np.concatenate([augmented_scores, sample_scores]
                                + ([holdout_scores] if holdout_scores is not None else []))
    bins = np.linspace(float(everything.min()), float(everything.max()) + 1e-9, 30)
    hist.hist(augmented_scores, bins=bins, alpha=0.6, label="augmented copies", color="#d95f02")
    if holdout_scores is not None:
        hist.hist(holdout_scores, bins=bins, alpha=0.6, label="held-out", color="#1b9e77")
    hist.hist(sample_scores, bins=bins, histtype="step", label="samples", color="#303030")
    hist.axvline(thresholds.copy, color="#d95f02", linestyle="--", label="copy threshold")
    hist.axvline(thresholds.novel, color="#1b9e77", linestyle=":", label="novel threshold")
    hist.set_xlabel("NCC with the nearest training volume", fontsize=7)
    hist.tick_params(labelsize=6)
    hist.legend(fontsize=6)
    for row, i in enumerate(order, start=1):
        result = report["results"][i]
        sample, _ = samples.read(i)
        train = dataset[names.index(result["nearest"])][0].numpy()
        if result["flipped"]:
            train = train[..., ::-1]
        # The sample's voxel z + s (after its mirroring) faced training voxel z on the coarse grid
        # (`Matches.shift`), so the training volume moved by s lines up with the sample, except
        # that mirroring the training volume instead of the sample turns the W shift around.
        factors = [n / c for n, c in zip(sample.shape, report["similarity"]["grid"],
                                         strict=True)]
        offset = [round(s * f) for s, f in zip(result["shift"], factors, strict=True)]
        if result["flipped"]:
            offset[2] = -offset[2]
        train = move(train, offset)
        k = sample.shape[0] // 2
        ax_sample, ax_train = figure.add_subplot(grid[row, 0]), figure.add_subplot(grid[row, 1])
        show_slice(ax_sample, sample[k], percentile_window(sample),
                   title=f"{result['file']}\n{result['class']}, NCC {result['score']:.3f}")
        aligned = "mirrored, aligned" if result["flipped"] else "aligned"
        show_slice(ax_train, train[k], percentile_window(train),
                   title=f"nearest: {result['nearest']}\n({aligned})")
        ax_sample.set_label(f"pair {row - 1} sample")
        ax_train.set_label(f"pair {row - 1} training")
    figure.suptitle("the samples closest to the training set (middle slices)", fontsize=8)
    return figure


def memorization_text(report: dict, top: int = 10) -> str:
    """The text report: thresholds, both distributions, class fractions, the closest samples."""
    calibration = report["calibration"]
    inputs = report["inputs"]
    lines = [f"{inputs['samples']['n_volumes']} samples of {inputs['samples']['dir']} against "
             f"{inputs['train']['n_volumes']} training volumes ({inputs['train']['split']} split "
             f"of {inputs['train']['dir']}); NCC on a "
             f"{'x'.join(map(str, report['similarity']['grid']))} grid, shifts up to "
             f"{report['similarity']['max_shift']}, left-right mirror",
             f"rule: {calibration['rule']}"]

    def describe(name: str, part: dict) -> str:
        return (f"  {name}: n {part['n']}, min {part['min']:.4f}, 5% {part['q05']:.4f}, median "
                f"{part['median']:.4f}, 95% {part['q95']:.4f}, max {part['max']:.4f}")

    lines.append(describe("augmented copies", calibration["augmented"])
                 + f", own source found {100 * calibration['augmented']['source_found']:.0f}%")
    if calibration["holdout"] is not None:
        lines.append(describe("held-out volumes", calibration["holdout"]))
    lines.append(f"copy threshold {calibration['copy_threshold']:.4f}, novel threshold "
                 f"{calibration['novel_threshold']:.4f} (from {calibration['novel_from']})")
    lines.extend(f"note: {note}" for note in calibration["notes"])
    lines.append("samples: " + ", ".join(
        f"{c} {report['counts'][c]} ({100 * report['fractions'][c]:.1f}%)" for c in CLASSES))
    closest = sorted(report["results"], key=lambda r: -r["score"])[:top]
    lines.append(f"{'sample':<28} {'nearest training volume':<28} {'NCC':>7}  class")
    for r in closest:
        lines.append(f"{r['file']:<28} {r['nearest']:<28} {r['score']:>7.4f}  {r['class']}"
                     + ("  (mirrored)" if r["flipped"] else ""))
    if report["figure"]:
        lines.append(f"figure: {report['figure']}")
    lines.append(f"took {report['seconds']:.1f} s")
    return "\n".join(lines)
