"""Are samples copies of training volumes? The memorisation check and its report.

3D latent diffusion models memorise training scans, more so with small data sets and long
training; synthetic data protects privacy only if its samples are not copies. For every sample
this finds its nearest training volume and their similarity, measures how well the check tells a
copy from an unseen subject on this data (its power), and classes the sample as a copy, close,
novel or off-distribution against thresholds calibrated on the data, not guessed, or says it
cannot tell when the power is too low. The similarity and the calibration rule are
`evaluation.copy_search`'s docstring.

Samples and held-out volumes are read through `diffusion_core.sources` in the training preset's
model space [-1, 1], as the training arrays are; NCC ignores brightness and contrast anyway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffusion_core.data import PreparedDataset
from diffusion_core.prepared import PreparedError
from diffusion_core.presets import Preset, PresetError, get_preset
from diffusion_core.sources import VolumeSource, check_shape, open_source
from evaluation.copy_search import (
    CLASSES,
    COPY_QUANTILE,
    DEFAULT_CANDIDATES,
    DEFAULT_FINE_GRID,
    DEFAULT_GRID,
    DEFAULT_MAX_SHIFT,
    NOVEL_QUANTILE,
    OFF_MARGIN,
    POWER_NEEDED,
    Matches,
    Thresholds,
    augment,
    calibrate,
    classify,
    downsample,
    nearest_neighbours,
    refine,
    summary,
)
from evaluation.errors import EvalError
from evaluation.slice_panels import (
    check_figure_path,
    save_png,
)

DEFAULT_COPIES = 200
DEFAULT_NOISE = 0.1
DEFAULT_BLUR = 1.0
DEFAULT_PAIRS = 6
TRAIN_SPLITS = ("train", "all")


# --- reading --------------------------------------------------------------------------------

@dataclass
class CoarseSet:
    """Volumes of one input, pooled to the coarse and to the fine grid, with their names."""

    label: str  # "train", "samples" or "holdout"
    folder: Path
    split: str | None
    names: list[str]
    coarse: torch.Tensor  # (n, d, h, w) float32
    fine: torch.Tensor  # (n, D', H', W') float32 (1 GB for a thousand 64^3 volumes)


def pool_both(volume: np.ndarray, grids: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """One (D, H, W) volume pooled to the coarse grid and to the fine grid, float32."""
    tensor = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None]
    return downsample(tensor, grids[0])[0], downsample(tensor, grids[1])[0]


def _pool_stream(read: Callable[[int], np.ndarray], count: int, grids: tuple[int, int],
                 desc: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Read `count` (D, H, W) volumes one by one, pooling each at once: (coarse, fine)."""
    coarse = fine = None
    # Closed before an error leaves, so the error's sentence is not printed into the bar's line.
    with tqdm(total=count, desc=desc, unit="volume", disable=not progress) as bar:
        for index in range(count):
            small, large = pool_both(read(index), grids)
            if coarse is None:
                coarse = torch.empty((count, *small.shape))
                fine = torch.empty((count, *large.shape))
            coarse[index], fine[index] = small, large
            bar.update()
    return coarse, fine


def read_prepared(prep_dir: str | os.PathLike, split: str, label: str, option: str,
                  grids: tuple[int, int], *, minimum: int = 1, progress: bool = True
                  ) -> tuple[CoarseSet, PreparedDataset]:
    """One split of a PREP_DIR, pooled; also the dataset (to draw volumes from)."""
    try:
        dataset = PreparedDataset(prep_dir, split, flip=False)
    except PreparedError as err:
        raise EvalError(f"{option} {prep_dir}: {str(err).rstrip('.')}.") from None
    if len(dataset) < minimum:
        raise EvalError(f"the {split} split of {option} {prep_dir} holds {len(dataset)} "
                        f"volume(s); the memorisation check needs at least {minimum} there.")
    coarse, fine = _pool_stream(lambda i: _read_prepared(dataset, i), len(dataset), grids,
                                f"reading {label}", progress)
    return CoarseSet(label, Path(prep_dir), split, list(dataset.names), coarse, fine), dataset


def _read_prepared(dataset: PreparedDataset, index: int) -> np.ndarray:
    """One array of a PreparedDataset as (D, H, W); EvalError for an unreadable one."""
    try:
        return dataset[index][0].numpy()
    except PreparedError as err:
        raise EvalError(f"{str(err).rstrip('.')}.") from None


def read_folder(folder: str | os.PathLike, label: str, option: str, shape: tuple[int, ...],
                grids: tuple[int, int], preset: Preset, *, progress: bool = True
                ) -> tuple[CoarseSet, VolumeSource]:
    """A samples folder, PREP_DIR or folder of scans of the training `preset`, in its model space
    (`diffusion_core.sources`), pooled; every volume must have `shape`."""
    source = open_source(folder, option=option, preset=preset)

    def read(index: int) -> np.ndarray:
        volume = source.read(index)
        check_shape(volume, shape, "the training volumes")
        return volume.array

    coarse, fine = _pool_stream(read, len(source), grids, f"reading {label}", progress)
    return CoarseSet(label, Path(folder), None, source.names, coarse, fine), source


# --- the check ------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckOptions:
    """How the check compares and calibrates (module docstring of `evaluation.copy_search`)."""

    train_split: str = "train"
    grid: int = DEFAULT_GRID
    fine_grid: int = DEFAULT_FINE_GRID
    max_shift: int = DEFAULT_MAX_SHIFT
    candidates: int = DEFAULT_CANDIDATES
    copies: int = DEFAULT_COPIES
    noise: float = DEFAULT_NOISE
    blur: float = DEFAULT_BLUR
    seed: int = 0


def memorization_report(train: str | os.PathLike, samples: str | os.PathLike, *,
                        holdout: str | os.PathLike | None = None,
                        options: CheckOptions = CheckOptions(),
                        figure: str | os.PathLike | None = None, pairs: int = DEFAULT_PAIRS,
                        progress: bool = True, force: bool = False) -> dict:
    """Nearest training volume, score and class of every sample, with the calibration and the
    check's power (JSON); an existing `figure` is replaced only with `force`."""
    started = time.perf_counter()
    figure = None if figure is None else Path(figure)
    if figure is not None:
        check_figure_path(figure, force=force, inputs=[
            ("--train", train), ("--samples", samples), ("--holdout", holdout)])
    _check_options(options, pairs)
    grids = (options.grid, options.fine_grid)
    train_set, dataset = read_prepared(train, options.train_split, "training volumes",
                                       "--train", grids, minimum=2, progress=progress)
    shape, preset = tuple(dataset.shape), _training_preset(dataset)
    if options.max_shift >= min(train_set.coarse.shape[1:]):
        raise EvalError(f"--max-shift {options.max_shift} leaves no overlap on the coarse grid "
                        f"{tuple(train_set.coarse.shape[1:])}; use a smaller shift.")
    sample_set, sample_source = read_folder(samples, "samples", "--samples", shape, grids,
                                            preset, progress=progress)
    holdout_set = _read_holdout(holdout, train, options.train_split, shape, grids, preset,
                                progress)

    rng = np.random.default_rng(options.seed)
    chosen = np.sort(rng.choice(len(dataset), size=min(options.copies, len(dataset)),
                                replace=False))
    factors = [n / c for n, c in zip(shape, train_set.coarse.shape[1:], strict=True)]
    max_voxels = [int(round(options.max_shift * f)) for f in factors]
    augmented = _augmented_copies(dataset, chosen, rng, max_voxels, options, progress)

    def search(queries: tuple[torch.Tensor, torch.Tensor], desc: str) -> Matches:
        coarse = nearest_neighbours(queries[0], train_set.coarse, max_shift=options.max_shift,
                                    candidates=options.candidates, desc=desc,
                                    progress=progress)
        return refine(queries[1], train_set.fine, coarse, tuple(train_set.coarse.shape[1:]),
                      desc=f"{desc}, aligning", progress=progress)

    augmented_matches = search(augmented, "augmented copies")
    holdout_matches = (search((holdout_set.coarse, holdout_set.fine), "held-out volumes")
                       if holdout_set else None)
    sample_matches = search((sample_set.coarse, sample_set.fine), "samples")
    thresholds = calibrate(augmented_matches.score,
                           holdout_matches.score if holdout_matches else None)
    report = {
        "inputs": _inputs_json(train_set, sample_set, holdout_set, options.train_split),
        "similarity": _similarity_json(shape, train_set, options),
        "calibration": _calibration_json(thresholds, augmented_matches, chosen, holdout_matches,
                                         holdout_set, options, max_voxels),
        **_classes_json(sample_set, sample_matches, train_set.names, thresholds),
        "figure": None,
    }
    if figure is not None:
        from evaluation.memorization_figure import draw_closest_pairs

        drawn = draw_closest_pairs(report, sample_source, dataset, pairs, thresholds,
                                   augmented_matches.score,
                                   holdout_matches.score if holdout_matches else None)
        save_png(drawn, figure)
        report["figure"] = str(figure)
    report["seconds"] = time.perf_counter() - started
    return report


def _similarity_json(shape: tuple[int, ...], train_set: CoarseSet,
                     options: CheckOptions) -> dict:
    """The report's similarity: the measure, both grids, shifts and candidates."""
    return {"measure": "normalised cross-correlation at the fine grid, locally aligned",
            "shape": list(shape), "grid": list(train_set.coarse.shape[1:]),
            "fine_grid": list(train_set.fine.shape[1:]), "max_shift": options.max_shift,
            "candidates": options.candidates, "flip": "left-right (W)"}


def _inputs_json(train_set: CoarseSet, sample_set: CoarseSet, holdout_set: CoarseSet | None,
                 train_split: str) -> dict:
    """The report's inputs: each folder, its split and its count."""
    return {
        "train": {"dir": str(train_set.folder), "split": train_split,
                  "n_volumes": len(train_set.names)},
        "samples": {"dir": str(sample_set.folder), "n_volumes": len(sample_set.names)},
        "holdout": None if holdout_set is None else {
            "dir": str(holdout_set.folder), "split": holdout_set.split,
            "n_volumes": len(holdout_set.names)},
    }


def _augmented_copies(dataset: PreparedDataset, chosen: np.ndarray, rng: np.random.Generator,
                      max_voxels: list[int], options: CheckOptions,
                      progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen training volumes, each augmented (`augment`) and pooled: (coarse, fine)."""
    pooled = [pool_both(augment(_read_prepared(dataset, int(i)), rng, max_voxels=max_voxels,
                                noise=options.noise, blur=options.blur)[0],
                        (options.grid, options.fine_grid))
              for i in tqdm(chosen, desc="augmenting copies", unit="volume",
                            disable=not progress)]
    return torch.stack([p[0] for p in pooled]), torch.stack([p[1] for p in pooled])


def _classes_json(sample_set: CoarseSet, matches: Matches, train_names: list[str],
                  thresholds: Thresholds) -> dict:
    """The report's counts, fractions and per-sample results."""
    classes = classify(matches.score, thresholds)
    counts = {c: classes.count(c) for c in CLASSES}
    results = [{"file": name, "nearest": train_names[int(matches.index[i])],
                "score": float(matches.score[i]), "shift": [int(v) for v in matches.shift[i]],
                "flipped": bool(matches.flipped[i]), "class": classes[i]}
               for i, name in enumerate(sample_set.names)]
    return {"counts": counts, "fractions": {c: counts[c] / len(classes) for c in CLASSES},
            "results": results}


def _training_preset(dataset: PreparedDataset) -> Preset:
    """The preset the training PREP_DIR was prepared with; EvalError for one mdiff lacks."""
    try:
        return get_preset(dataset.manifest.preset)
    except PresetError as err:
        raise EvalError(f"--train {dataset.prep_dir}: {str(err).rstrip('.')}.") from None


def _check_options(options: CheckOptions, pairs: int) -> None:
    """EvalError for option values the check cannot use."""
    if options.train_split not in TRAIN_SPLITS:
        raise EvalError(f"--train-split is one of {', '.join(TRAIN_SPLITS)}, not "
                        f"{options.train_split!r}.")
    if options.grid < 2:
        raise EvalError(f"--grid must be at least 2, got {options.grid}.")
    if options.fine_grid < options.grid:
        raise EvalError(f"--fine-grid must be at least --grid ({options.grid}), got "
                        f"{options.fine_grid}.")
    if options.max_shift < 0:
        raise EvalError(f"--max-shift must be 0 or more, got {options.max_shift}.")
    if options.copies < 2:
        raise EvalError(f"--copies must be at least 2 to calibrate a threshold, got "
                        f"{options.copies}.")
    if not options.noise >= 0 or not options.blur >= 0:
        raise EvalError(f"--noise and --blur must be 0 or more, got {options.noise} and "
                        f"{options.blur}.")
    if options.candidates < 1 or pairs < 1:
        raise EvalError(f"--candidates and --pairs must be at least 1, got "
                        f"{options.candidates} and {pairs}.")


def _read_holdout(holdout: str | os.PathLike | None, train: str | os.PathLike, train_split: str,
                  shape: tuple[int, ...], grids: tuple[int, int], preset: Preset,
                  progress: bool) -> CoarseSet | None:
    """The held-out volumes: the validation split when --holdout is the training PREP_DIR."""
    if holdout is None:
        return None
    if Path(holdout).resolve() != Path(train).resolve():
        return read_folder(holdout, "held-out volumes", "--holdout", shape, grids, preset,
                           progress=progress)[0]
    if train_split == "all":
        raise EvalError("--holdout is the training PREP_DIR but --train-split all uses all of "
                        "it for training; give another --holdout folder or --train-split train.")
    return read_prepared(holdout, "val", "held-out volumes", "--holdout", grids,
                         progress=progress)[0]


def _calibration_json(thresholds: Thresholds, augmented: Matches, chosen: np.ndarray,
                      holdout: Matches | None, holdout_set: CoarseSet | None,
                      options: CheckOptions, max_voxels: list[int]) -> dict:
    """The calibration part of the report: the rule, thresholds, power and distributions."""
    notes = []
    if holdout is None:
        notes.append("no --holdout given: without scans of subjects the model never saw, the "
                     "check cannot measure its power, so it calls no sample a copy (cannot "
                     "tell); give --holdout with another subject's scans.")
    elif not thresholds.powered:
        notes.append(f"the check tells augmented copies from held-out volumes with AUC "
                     f"{thresholds.power:.3f} only, below the {POWER_NEEDED} needed: it cannot "
                     "tell copies from unseen scans on this data, so no sample is called a "
                     "copy (cannot tell).")
    found = float(np.mean(augmented.index == chosen))
    return {
        "rule": (f"copy: score >= the {100 * COPY_QUANTILE:g}th percentile of augmented copies' "
                 f"scores, only when the power (AUC of augmented copies over held-out volumes) "
                 f"is at least {POWER_NEEDED}, else 'cannot tell'; novel: score <= the "
                 f"{100 * NOVEL_QUANTILE:g}th percentile of held-out volumes' scores; close: "
                 f"between; off-distribution: score <= the lowest held-out score minus the "
                 f"held-out spread (at least {OFF_MARGIN})"),
        "copy_threshold": thresholds.copy,
        "novel_threshold": thresholds.novel,
        "novel_from": thresholds.novel_from,
        "off_distribution_threshold": thresholds.off_distribution,
        "power": thresholds.power,
        "power_needed": POWER_NEEDED,
        "powered": thresholds.powered,
        "overlap": thresholds.overlap,
        "augmented": {**summary(augmented.score), "noise": options.noise, "blur": options.blur,
                      "max_shift_voxels": max_voxels, "seed": options.seed,
                      "source_found": found, "scores": [float(s) for s in augmented.score]},
        "holdout": None if holdout is None else {
            **summary(holdout.score), "scores": [float(s) for s in holdout.score],
            "flagged_as_copy": float(np.mean(holdout.score >= thresholds.copy)),
            "names": holdout_set.names},
        "notes": notes,
    }


# --- figure and text ------------------------------------------------------------------------

def memorization_text(report: dict, top: int = 10) -> str:
    """The text report: thresholds, both distributions, class fractions, the closest samples."""
    calibration = report["calibration"]
    inputs = report["inputs"]
    lines = [f"{inputs['samples']['n_volumes']} samples of {inputs['samples']['dir']} against "
             f"{inputs['train']['n_volumes']} training volumes ({inputs['train']['split']} split "
             f"of {inputs['train']['dir']}); NCC searched on a "
             f"{'x'.join(map(str, report['similarity']['grid']))} grid (shifts up to "
             f"{report['similarity']['max_shift']}, left-right mirror), the best "
             f"{report['similarity']['candidates']} aligned again at "
             f"{'x'.join(map(str, report['similarity']['fine_grid']))}",
             f"rule: {calibration['rule']}"]

    def describe(name: str, part: dict) -> str:
        return (f"  {name}: n {part['n']}, min {part['min']:.4f}, 5% {part['q05']:.4f}, median "
                f"{part['median']:.4f}, 95% {part['q95']:.4f}, max {part['max']:.4f}")

    lines.append(describe("augmented copies", calibration["augmented"])
                 + f", own source found {100 * calibration['augmented']['source_found']:.0f}%")
    if calibration["holdout"] is not None:
        lines.append(describe("held-out volumes", calibration["holdout"]))
    power = calibration["power"]
    lines.append("power (AUC, augmented copies vs held-out volumes): "
                 + ("unknown (no --holdout)" if power is None else f"{power:.3f}")
                 + f", needed {calibration['power_needed']}: "
                 + ("copies can be called" if calibration["powered"] else "CANNOT TELL copies"))
    off = calibration["off_distribution_threshold"]
    lines.append(f"copy threshold {calibration['copy_threshold']:.4f}, novel threshold "
                 f"{calibration['novel_threshold']:.4f} (from {calibration['novel_from']}), "
                 "off-distribution " + ("n/a" if off is None else f"{off:.4f}"))
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
