"""MS-SSIM diversity of a stack of volumes: pair sampling, pair values, the bootstrap.

Diversity is the mean MS-SSIM over distinct unordered pairs of volumes of one folder (lower is
more diverse). Pairs share volumes, so their values are not independent: the confidence interval
resamples volumes, not pairs. Each bootstrap replicate draws the folder's volumes with replacement
(counts c_v) and averages the sampled pairs' values weighted by c_i * c_j, i.e. every pair of
drawn copies of two distinct volumes counts once; a replicate in which no sampled pair has both
members drawn is dropped. The pair values are computed once, so replicates are cheap.

Intensity offset. SSIM's luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1) assumes
intensities in [0, R]: with signed values (CT in HU, volumes scaled to [-1, 1]) two local means of
opposite sign make it negative, and the clamp at zero then zeroes the whole score. So the standard
protocol shifts every volume by the run's smallest value `low` (one constant for the run, like the
data range), which makes the result independent of the volumes' offset. The paper protocol maps
values to [-1, 1] instead, as the authors' volumes were.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from evaluation.errors import EvalError
from evaluation.msssim import ms_ssim, paper_ms_ssim

PROTOCOLS = ("standard", "paper")


class VolumeFolderError(EvalError):
    """A folder of volumes that cannot be evaluated; the message is one sentence for the user."""


@dataclass
class VolumeFolder:
    """The volumes of one folder, all of one shape, read by `evaluation.diversity`."""

    folder: Path
    files: list[Path]
    volumes: np.ndarray  # (n, D, H, W) float32, in the order of `files`

    @property
    def n_volumes(self) -> int:
        """How many volumes the folder holds."""
        return len(self.files)


@dataclass(frozen=True)
class DiversityResult:
    """Mean MS-SSIM of one folder with its volume-bootstrap confidence interval."""

    folder: Path
    n_volumes: int
    n_pairs: int
    mean: float
    std: float  # standard deviation of the pair values
    ci_low: float
    ci_high: float


def value_bounds(folders: Sequence[VolumeFolder]) -> tuple[float, float]:
    """The smallest and largest voxel value over every volume of every folder."""
    low = min(float(f.volumes.min()) for f in folders)
    high = max(float(f.volumes.max()) for f in folders)
    return low, high


def n_distinct_pairs(n_volumes: int) -> int:
    """How many distinct unordered pairs `n_volumes` volumes form."""
    return n_volumes * (n_volumes - 1) // 2


def sample_pairs(n_volumes: int, n_pairs: int | None, rng: np.random.Generator) -> np.ndarray:
    """(P, 2) distinct unordered pairs (i < j), drawn without replacement; every pair if None.

    Asking for more pairs than exist also gives every pair, in order.
    """
    total = n_distinct_pairs(n_volumes)
    if n_pairs is None or n_pairs >= total:
        return np.stack(np.triu_indices(n_volumes, k=1), axis=1).astype(np.int64)
    flat = np.sort(rng.choice(total, size=n_pairs, replace=False))
    return _unflatten_pairs(flat.astype(np.int64), n_volumes)


def _unflatten_pairs(flat: np.ndarray, n: int) -> np.ndarray:
    """Pairs (i, j) at positions `flat` of the row-major list of all pairs i < j of n items."""
    def row_start(i: np.ndarray) -> np.ndarray:
        return i * (2 * n - i - 1) // 2

    # The closed form can be one row off from rounding; the two corrections settle it exactly.
    i = np.floor((2 * n - 1 - np.sqrt((2.0 * n - 1) ** 2 - 8.0 * flat)) / 2).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    i = np.where(row_start(i) > flat, i - 1, i)
    i = np.where(row_start(i + 1) <= flat, i + 1, i)
    j = flat - row_start(i) + i + 1
    return np.stack([i, j], axis=1)


def pair_values(
    volumes: np.ndarray,
    pairs: np.ndarray,
    *,
    protocol: str,
    data_range: float,
    low: float,
    batch_size: int = 1,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """MS-SSIM of each pair of `volumes` (n, D, H, W); `progress(k)` is told of k more pairs done.

    "standard": `ms_ssim` with 5 scales in float32 on `device`, `batch_size` pairs at a time,
    on `volumes - low` (module docstring). "paper": `paper_ms_ssim` on the CPU, after mapping
    values to [-1, 1] with `low` and `data_range` as the authors' volumes were (their constants
    assume a data range of 1).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    values = np.empty(len(pairs), dtype=np.float64)
    if protocol == "paper":
        for k, (i, j) in enumerate(pairs):
            a = 2 * (volumes[i].astype(np.float64) - low) / data_range - 1
            b = 2 * (volumes[j].astype(np.float64) - low) / data_range - 1
            values[k] = paper_ms_ssim(a, b)
            if progress:
                progress(1)
        return values

    import torch

    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            batch = pairs[start : start + batch_size]
            x = torch.from_numpy(volumes[batch[:, 0]]).to(device).unsqueeze(1) - low
            y = torch.from_numpy(volumes[batch[:, 1]]).to(device).unsqueeze(1) - low
            values[start : start + len(batch)] = ms_ssim(x, y, data_range).double().cpu().numpy()
            if progress:
                progress(len(batch))
    return values


def bootstrap_mean_ci(
    pairs: np.ndarray,
    values: np.ndarray,
    n_volumes: int,
    rng: np.random.Generator,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the mean pair value when volumes are resampled (module docstring)."""
    counts = rng.multinomial(n_volumes, np.full(n_volumes, 1.0 / n_volumes), size=n_resamples)
    means = np.empty(n_resamples)
    # Replicates are weighted in chunks so that the (replicates x pairs) weights stay small.
    chunk = max(1, 4_000_000 // max(1, len(pairs)))
    for start in range(0, n_resamples, chunk):
        c = counts[start : start + chunk].astype(np.float64)
        weights = c[:, pairs[:, 0]] * c[:, pairs[:, 1]]
        total = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[start : start + chunk] = (weights @ values) / total
    means = means[np.isfinite(means)]
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def folder_diversity(
    folder: VolumeFolder,
    *,
    n_pairs: int | None,
    rng: np.random.Generator,
    protocol: str,
    data_range: float,
    low: float,
    batch_size: int = 1,
    device: str = "cpu",
    progress: bool = True,
) -> DiversityResult:
    """Mean MS-SSIM over sampled pairs of one folder, with its volume-bootstrap 95% CI."""
    pairs = sample_pairs(folder.n_volumes, n_pairs, rng)
    with tqdm(total=len(pairs), desc=f"MS-SSIM {folder.folder.name}", unit="pair",
              disable=not progress) as bar:
        values = pair_values(folder.volumes, pairs, protocol=protocol, data_range=data_range,
                             low=low, batch_size=batch_size, device=device, progress=bar.update)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i, j = pairs[bad[0]]
        hint = (" (the paper protocol gives NaN when a scale's contrast term is negative; "
                "--protocol standard does not)" if protocol == "paper" else "")
        raise VolumeFolderError(
            f"MS-SSIM of {folder.files[i].relative_to(folder.folder)} and "
            f"{folder.files[j].relative_to(folder.folder)} in {folder.folder} is not a "
            f"number{hint}.")
    ci_low, ci_high = bootstrap_mean_ci(pairs, values, folder.n_volumes, rng)
    return DiversityResult(
        folder=folder.folder,
        n_volumes=folder.n_volumes,
        n_pairs=len(pairs),
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        ci_low=ci_low,
        ci_high=ci_high,
    )


def is_pair_count_short(n_volumes: int, n_pairs: int | None) -> bool:
    """Whether asking for `n_pairs` pairs of `n_volumes` volumes falls back to every pair."""
    return n_pairs is not None and n_pairs > n_distinct_pairs(n_volumes)

