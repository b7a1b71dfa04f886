"""MS-SSIM diversity of several folders in one run, as `mdiff-eval msssim` reports it.

For each folder: the mean 3D MS-SSIM over N random distinct unordered pairs of its volumes (lower
means more diverse), the standard deviation over pairs, and a 95% confidence interval from a
bootstrap over volumes (see `evaluation.volume_pairs`). One data range serves the whole run: given,
or the maximum minus the minimum over every volume read, never per pair; the standard protocol
also shifts values by that minimum so they start at 0, as SSIM assumes. One seed gives every
folder its own random stream.

torch loads when a run starts, not at import: the command line reads this module's defaults for
its help, which must answer at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluation.errors import EvalError

if TYPE_CHECKING:
    from evaluation.volume_pairs import DiversityResult

DEFAULT_PAIRS = 1000
CPU_BATCH, CUDA_BATCH = 1, 16  # pairs per batch; one at a time was fastest on the CPU
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DiversityRun:
    """Every folder's diversity, with the one data range and protocol they were computed with."""

    results: list[DiversityResult]
    data_range: float
    range_origin: str  # "given", or where the range came from
    protocol: str

    def as_json(self) -> dict:
        """The run as one JSON-ready object (the shape `mdiff-eval msssim --json` prints)."""
        return {
            "results": [{"dir": str(r.folder), "n_volumes": r.n_volumes, "n_pairs": r.n_pairs,
                         "mean": r.mean, "std": r.std, "ci_low": r.ci_low, "ci_high": r.ci_high}
                        for r in self.results],
            "data_range": self.data_range,
            "protocol": self.protocol,
        }

    def text(self) -> str:
        """The text report: one header line, then one row per folder."""
        lines = [f"MS-SSIM diversity, {self.protocol} protocol, data range {self.data_range:g} "
                 f"({self.range_origin})",
                 f"{'folder':<40} {'volumes':>7} {'pairs':>7} {'mean':>8} {'std':>8}  95% CI"]
        for r in self.results:
            lines.append(f"{str(r.folder):<40} {r.n_volumes:>7} {r.n_pairs:>7} {r.mean:>8.4f} "
                         f"{r.std:>8.4f}  [{r.ci_low:.4f}, {r.ci_high:.4f}]")
        return "\n".join(lines)


def resolve_device(choice: str) -> str:
    """'auto' -> CUDA when available, else the CPU; 'cuda' must be available."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise EvalError("--device cuda was asked but no CUDA device is available here; use "
                        "--device cpu or auto.")
    return choice


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
        load_volume_folder,
        n_distinct_pairs,
        value_bounds,
    )

    if data_range is not None and not data_range > 0:
        raise EvalError(f"--data-range must be positive, got {data_range}.")
    device = resolve_device(device) if protocol == "standard" else "cpu"
    batch_size = batch_size or (CUDA_BATCH if device == "cuda" else CPU_BATCH)
    folders = [load_volume_folder(d) for d in dirs]

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
    return DiversityRun(results, data_range, range_origin, protocol)
