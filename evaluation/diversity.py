"""MS-SSIM diversity of several folders in one run, as `mdiff-eval msssim` reports it.

For each folder: the mean 3D MS-SSIM over N random distinct unordered pairs of its volumes (lower
means more diverse), the standard deviation over pairs, and a 95% confidence interval from a
bootstrap over volumes (see `evaluation.volume_pairs`). One data range serves the whole run: given,
or the maximum minus the minimum over every volume read, never per pair; the standard protocol
also shifts values by that minimum so they start at 0, as SSIM assumes. One seed gives every
folder its own random stream.

Folders are read by `diffusion_core.sources` in ONE convention: the preset's model space [-1, 1]
when any folder has a preset (samples folders, PREP_DIRs; folders of scans beside them are
mapped by that preset), else the values the files hold; folders of different presets are refused.
A samples folder and a PREP_DIR of the same arrays so give the same figure.

Diversity alone cannot tell variety from noise: volumes of noise are "more diverse" than any
real scans. So beside every folder after the first (the reference, e.g. the real scans) stands
its distance from the first: the held-out ROC AUC, with a 95% CI, of a logistic regression on
simple per-volume features (`evaluation.volume_features`; 0.5: indistinguishable, 1: apart),
and a warning when a folder is more diverse than the first by more than its CI (its upper
bound below the first folder's mean).

Each folder is labelled by what it holds (`folder_label`): a samples folder by the kind of model
its samples.json names (a diffusion model or the GAN baseline, and its name), otherwise as a
PREP_DIR or scans. `mdiff-eval msssim REAL DIFFUSION GAN` is so the paper's comparison, and
`evaluation.diversity_figure` draws it.

torch loads when a run starts, not at import: the command line reads this module's defaults for
its help, which must answer at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from diffusion_core.runtime import resolve_device
from evaluation.errors import EvalError

if TYPE_CHECKING:
    from diffusion_core.sources import VolumeSource
    from evaluation.volume_pairs import DiversityResult, VolumeFolder

DEFAULT_PAIRS = 1000
CPU_BATCH, CUDA_BATCH = 1, 16  # pairs per batch; one at a time was fastest on the CPU
DISTANCE_FOLDS = 5
DISTANCE_MEASURE = "feature classifier held-out ROC AUC vs the first folder"


@dataclass(frozen=True)
class DiversityRun:
    """Every folder's diversity, with the one data range and protocol they were computed with."""

    results: list[DiversityResult]
    data_range: float
    range_origin: str  # "given", or where the range came from
    protocol: str
    values: str = ""  # the convention the volumes were read in, for the text report
    distances: list[dict | None] = field(default_factory=list)  # per folder; None: the first
    warnings: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # per folder: `folder_label`

    def as_json(self) -> dict:
        """The run as one JSON-ready object (the shape `mdiff-eval msssim --json` prints)."""
        distances = self.distances or [None] * len(self.results)
        labels = self.labels or [""] * len(self.results)
        return {
            "results": [{"dir": str(r.folder), "label": label, "n_volumes": r.n_volumes,
                         "n_pairs": r.n_pairs, "mean": r.mean, "std": r.std, "ci_low": r.ci_low,
                         "ci_high": r.ci_high, "distance": d}
                        for r, d, label in zip(self.results, distances, labels, strict=True)],
            "data_range": self.data_range,
            "protocol": self.protocol,
            "warnings": self.warnings,
        }

    def text(self) -> str:
        """The text report: one header line, then one row per folder."""
        values = f"; values: {self.values}" if self.values else ""
        lines = [f"MS-SSIM diversity, {self.protocol} protocol, data range {self.data_range:g} "
                 f"({self.range_origin}){values}",
                 f"{'folder':<40} {'holds':<22} {'volumes':>7} {'pairs':>7} {'mean':>8} "
                 f"{'std':>8}  {'95% CI':<18}  distance from the first (feature AUC, 95% CI)"]
        distances = self.distances or [None] * len(self.results)
        labels = self.labels or [""] * len(self.results)
        for r, d, label in zip(self.results, distances, labels, strict=True):
            lines.append(f"{str(r.folder):<40} {label:<22} {r.n_volumes:>7} {r.n_pairs:>7} "
                         f"{r.mean:>8.4f} "
                         f"{r.std:>8.4f}  {f'[{r.ci_low:.4f}, {r.ci_high:.4f}]':<18}  "
                         + _distance_text(d))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _distance_text(distance: dict | None) -> str:
    """One table cell: the reference, a distance, or why there is none."""
    if distance is None:
        return "(reference)"
    if distance["auc"] is None:
        return f"n/a ({distance['note']})"
    return f"{distance['auc']:.3f} [{distance['ci_low']:.3f}, {distance['ci_high']:.3f}]"


def folder_distance(reference: VolumeFolder, other: VolumeFolder, bounds: tuple[float, float],
                    seed: int = 0) -> dict:
    """The held-out AUC (95% CI) of the feature classifier telling `other` from `reference`."""
    from evaluation.volume_features import (
        bootstrap_ci,
        feature_scores,
        feature_table,
        grouped_folds,
        roc_auc,
    )

    folds = min(DISTANCE_FOLDS, reference.n_volumes, other.n_volumes)
    base = {"measure": DISTANCE_MEASURE, "reference": str(reference.folder)}
    if folds < 2:
        return {**base, "auc": None, "ci_low": None, "ci_high": None,
                "note": "fewer than 2 volumes in a folder"}
    table = np.concatenate([feature_table(reference.volumes, bounds),
                            feature_table(other.volumes, bounds)])
    labels = np.repeat([0, 1], [reference.n_volumes, other.n_volumes])
    groups = [str(i) for i in range(len(labels))]
    rng = np.random.default_rng(seed)
    scores = feature_scores(table, labels, grouped_folds(groups, labels, folds, rng))
    low, high = bootstrap_ci(scores, labels, groups, rng, 1000)
    return {**base, "auc": roc_auc(scores, labels), "ci_low": low, "ci_high": high, "note": ""}


def diversity_warnings(results: Sequence[DiversityResult], distances: Sequence[dict | None]
                       ) -> list[str]:
    """A sentence for every folder more diverse than the first by more than its own CI."""
    reference, warnings = results[0], []
    for result, distance in zip(results[1:], distances[1:], strict=True):
        if result.ci_high >= reference.mean:
            continue
        far = ("" if distance is None or distance["auc"] is None else
               f"; a feature classifier tells it from {reference.folder} with held-out AUC "
               f"{distance['auc']:.2f}")
        warnings.append(
            f"{result.folder} is more diverse than {reference.folder} (MS-SSIM {result.mean:.3f}, "
            f"95% CI up to {result.ci_high:.3f}, vs {reference.mean:.3f}){far}: more diversity "
            "than the real scans is as likely noise or artefacts as variety; check with "
            "mdiff-eval c2st.")
    return warnings


def diversity_of_folders(dirs: Sequence[Path], *, n_pairs: int | None = DEFAULT_PAIRS,
                         seed: int = 0, protocol: str = "standard",
                         data_range: float | None = None, batch_size: int | None = None,
                         device: str = "auto",
                         note: Callable[[str], None] = lambda message: None) -> DiversityRun:
    """Load the folders and compute each one's diversity (see the module docstring).

    `n_pairs` None takes every pair; `batch_size` None: CPU_BATCH on the CPU, CUDA_BATCH on CUDA.
    `note` hears about folders with fewer distinct pairs than asked. EvalError for a bad request.
    """
    from evaluation.volume_pairs import (
        folder_diversity,
        is_pair_count_short,
        n_distinct_pairs,
        value_bounds,
    )

    if data_range is not None and not data_range > 0:
        raise EvalError(f"--data-range must be positive, got {data_range}.")
    device = resolve_device(device).type if protocol == "standard" else "cpu"
    batch_size = batch_size or (CUDA_BATCH if device == "cuda" else CPU_BATCH)
    folders, values, labels = load_folders(dirs)

    low, high = value_bounds(folders)
    if data_range is not None:
        range_origin = "given"
    else:
        data_range = high - low
        range_origin = f"maximum - minimum of the volumes read: {low:g} to {high:g}"
        if not data_range > 0:
            raise EvalError(f"every volume read holds the single value {low:g}, so the data range "
                            "is 0; pass --data-range.")

    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(folders))]
    results = []
    for folder, rng in zip(folders, rngs, strict=True):
        if is_pair_count_short(folder.n_volumes, n_pairs):
            note(f"{folder.folder} has {folder.n_volumes} volumes, so only "
                 f"{n_distinct_pairs(folder.n_volumes)} distinct pairs; using all of them "
                 f"instead of {n_pairs}.")
        results.append(folder_diversity(
            folder, n_pairs=n_pairs, rng=rng, protocol=protocol, data_range=data_range,
            low=low, batch_size=batch_size, device=device))
    distances = [None] + [folder_distance(folders[0], folder, (low, high), seed)
                          for folder in folders[1:]]
    return DiversityRun(results, data_range, range_origin, protocol, values, distances,
                        diversity_warnings(results, distances), labels)


def load_folders(dirs: Sequence[Path], *, progress: bool = True
                 ) -> tuple[list[VolumeFolder], str, list[str]]:
    """Every folder's volumes in one convention (module docstring), each folder one stack of at
    least 2 volumes of one shape; also the convention, in words, and each folder's label."""
    from diffusion_core.sources import open_sources

    sources = open_sources([("DIR", d) for d in dirs])
    preset = sources[0].preset
    values = (f"{sources[0].convention} of preset {preset.name!r}" if preset is not None
              else "as the files hold them")
    return ([_stack(source, progress) for source in sources], values,
            [folder_label(source) for source in sources])


def folder_label(source: VolumeSource) -> str:
    """What a folder holds, in a few words: "GAN 'demo-gan'", "diffusion 'demo'", "PREP_DIR"
    or "scans" (a samples folder's model and its kind come from its samples.json)."""
    from diffusion_core.samples import read_samples

    if source.kind == "samples":
        plan = read_samples(source.folder)
        return f"{'GAN' if plan.kind == 'wgan' else 'diffusion'} {plan.model!r}"
    return "PREP_DIR" if source.kind == "prepared" else "scans"


def _stack(source: VolumeSource, progress: bool) -> VolumeFolder:
    """One folder's volumes read one by one into one (n, D, H, W) float32 stack."""

    from evaluation.volume_pairs import VolumeFolder

    if len(source) < 2:
        raise EvalError(f"folder {source.folder} holds {len(source)} volume(s); MS-SSIM "
                        "diversity needs at least 2.")
    stack = source.stack("MS-SSIM needs one shape per folder", progress=progress)
    return VolumeFolder(source.folder, [item.path for item in source.items], stack)
