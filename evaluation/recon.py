"""Reconstruction quality of trained VQ-GANs on held-out volumes: the paper's latent-size study.

The paper's Figure 3: compression 4 keeps the anatomy, compression 8 loses it. For each VQ-GAN
run and each volume of one split of a PREP_DIR (validation by default: volumes the VQ-GAN did not
train on), the volume is encoded, snapped to the codebook and decoded, then compared with the
original on the prepared scale [-1, 1] (data range R = 2):

- PSNR = 10 log10(R^2 / MSE). Identical volumes have an infinite PSNR, reported as PSNR_CAP_DB
  (the MSE is floored where that cap is reached) so that the JSON always holds a number.
- SSIM: single-scale SSIM (Gaussian window 11, sigma 1.5, valid filtering), and MS-SSIM with
  5 scales, both from `evaluation.msssim` (short axes handled by its rule) and clamped at 0 as
  MS-SSIM's terms are. Volumes are shifted from [-1, 1] to [0, 2] first: SSIM's luminance term
  assumes non-negative intensities (see `evaluation.volume_pairs`).
- Codebook usage: the codes that at least one latent vector of the split snaps to, over the
  codebook size, and the perplexity exp(H) of the split's code histogram (the number of equally
  used codes that would give the same entropy).

With `volumes_out` every reconstruction is also written as NIfTI, in the preset's intensities on
its grid as a sampler writes its volumes (`ReconWriter`): `VOLUMES_OUT/<run folder name>/<array
name>.nii.gz`. They open in any viewer, and `mdiff-study create --synthetic` takes the folder, so a
study (or `mdiff-study audit`) of reconstructions against real scans shows what the autoencoder
alone changes, before any diffusion model is trained on its latents.

A model is anything with the VQ-GAN's contract: `encode(x)`, `quantize(z)`, `decode(z_q)`,
`codebook.embedding` (K, C), `codebook.num_codes` and `config.compression`. `load_model` is the
one place models are built from run folders, so tests can substitute it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from einops import rearrange
from matplotlib.figure import Figure
from tqdm import tqdm

from diffusion_core.data import PreparedDataset
from diffusion_core.nn.codebook import nearest_codes
from diffusion_core.outputs import check_output
from diffusion_core.prepared import PreparedError
from diffusion_core.run_folder import CheckpointError
from evaluation.errors import EvalError
from evaluation.msssim import ms_ssim
from evaluation.slice_panels import (
    EDGE_LETTERS,
    check_figure_path,
    new_figure,
    save_png,
    show_slice,
)

DATA_RANGE = 2.0  # prepared volumes lie in [-1, 1]
PSNR_CAP_DB = 100.0
METRICS = ("psnr", "ssim", "ms_ssim")
SPLITS = ("val", "train", "all")
PANEL_INCHES = 1.5



class Autoencoder(Protocol):
    """What recon needs of a model: the VQ-GAN's encode / quantize / decode contract."""

    codebook: Any  # .embedding (K, C) and .num_codes
    config: Any  # .compression, per axis (D, H, W)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, *S) -> unquantised latent (N, C', *latent)."""

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Latent -> its nearest codes."""

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Quantised latent -> reconstruction (N, C, *S)."""


class ReconWriter:
    """Writes one model's reconstructions into `VOLUMES_OUT/<run folder name>/` (module doc).

    A folder that already holds files is refused before anything is computed, so nothing saved
    is overwritten; each file is written beside its name and renamed, so a crash leaves no
    half-written volume.
    """

    def __init__(self, root: Path, run: str | os.PathLike, dataset: PreparedDataset) -> None:
        from diffusion_core.io import canonical_affine
        from diffusion_core.presets import get_preset

        self.folder = root / Path(run).name
        if self.folder.exists() and (not self.folder.is_dir() or any(self.folder.iterdir())):
            raise EvalError(f"--volumes-out: {self.folder} already exists and is not an empty "
                            "folder; choose another --volumes-out so nothing is overwritten.")
        manifest = dataset.manifest
        self.preset = get_preset(manifest.preset)
        self.spacing = tuple(float(s) for s in manifest.spacing)
        self.affine = canonical_affine(self.spacing)
        self.modality = manifest.modality

    def write(self, name: str, reconstruction: np.ndarray) -> Path:
        """One (D, H, W) reconstruction on the prepared scale -> its NIfTI file."""
        from diffusion_core.io import Volume, write_nifti

        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{Path(name).stem}.nii.gz"
        intensity = self.preset.to_intensity(reconstruction.astype(np.float32))
        write_nifti(Volume(intensity, self.spacing, self.affine, self.modality,
                           f"reconstruction of {name}"), path)
        return path


ModelLoader = Callable[[str | os.PathLike, str], tuple[Autoencoder, dict]]


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> torch.Tensor:
    """PSNR in dB of each pair (x[n], y[n]) of (N, ...) tensors, capped at PSNR_CAP_DB."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    floor = data_range ** 2 * 10 ** (-PSNR_CAP_DB / 10)
    return 10 * torch.log10(data_range ** 2 / mse.clamp_min(floor))


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Single-scale SSIM of each pair of (N, C, D, H, W) tensors (clamped at 0), -> (N,)."""
    return ms_ssim(x, y, data_range, weights=(1.0,))


def volume_scores(original: torch.Tensor, reconstruction: torch.Tensor) -> dict[str, float]:
    """PSNR, SSIM and MS-SSIM of one (1, 1, D, H, W) reconstruction in [-1, 1] (module doc)."""
    x, y = original.float() + 1.0, reconstruction.float() + 1.0
    return {"psnr": float(psnr(x, y)[0]), "ssim": float(ssim(x, y, DATA_RANGE)[0]),
            "ms_ssim": float(ms_ssim(x, y, DATA_RANGE)[0])}


def reconstruct(model: Autoencoder, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode, quantise and decode x (N, C, *S); returns the reconstruction and code indices."""
    z = model.encode(x)
    indices = nearest_codes(rearrange(z, "n c ... -> (n ...) c").float(),
                            model.codebook.embedding.float())
    return model.decode(model.quantize(z)), indices


def load_model(run: str | os.PathLike, device: str) -> tuple[Autoencoder, dict]:
    """The VQ-GAN of a run folder, in eval mode on `device`, with its run.json."""
    from diffusion_core.models import load_vqgan

    try:
        model, info = load_vqgan(run, device)
    except CheckpointError as err:
        raise EvalError(f"cannot load the VQ-GAN {run}: {str(err).rstrip('.')}.") from None
    return model, info.to_dict()


@dataclass
class ModelRecon:
    """One model's scores on every volume of the split, and its codebook use."""

    run: str
    preset: str | None
    compression: tuple[int, ...]
    latent_shape: tuple[int, ...]
    num_codes: int
    names: list[str] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METRICS})
    code_counts: np.ndarray | None = None
    figure_reconstruction: np.ndarray | None = None  # (D, H, W) of the figure's volume

    def add_codes(self, indices: torch.Tensor) -> None:
        """Count the codes one volume used."""
        counts = torch.bincount(indices.cpu(), minlength=self.num_codes).numpy()
        self.code_counts = counts if self.code_counts is None else self.code_counts + counts

    def codebook_json(self) -> dict:
        """Codes used, their fraction of the codebook and the perplexity of their histogram."""
        counts = self.code_counts if self.code_counts is not None else np.zeros(self.num_codes)
        p = counts[counts > 0] / max(1, counts.sum())
        return {"codes_used": int((counts > 0).sum()),
                "usage": float((counts > 0).sum() / self.num_codes),
                "perplexity": float(math.exp(-(p * np.log(p)).sum())) if p.size else 0.0}

    def as_json(self) -> dict:
        """This model's part of the report."""
        values = {m: np.asarray(v, dtype=np.float64) for m, v in self.scores.items()}
        return {
            "run": self.run, "preset": self.preset, "compression": list(self.compression),
            "latent_shape": list(self.latent_shape), "num_codes": self.num_codes,
            "mean": {m: float(v.mean()) for m, v in values.items()},
            "std": {m: float(v.std(ddof=1)) if v.size > 1 else 0.0 for m, v in values.items()},
            "codebook": self.codebook_json(),
            "volumes": [{"name": name, **{m: float(values[m][i]) for m in METRICS}}
                        for i, name in enumerate(self.names)],
        }


def open_split(data: str | os.PathLike, split: str) -> PreparedDataset:
    """The PREP_DIR's split as a dataset without flips; EvalError when unusable or empty."""
    if split not in SPLITS:
        raise EvalError(f"--split is one of {', '.join(SPLITS)}, not {split!r}.")
    try:
        dataset = PreparedDataset(data, split, flip=False)
    except PreparedError as err:
        raise EvalError(f"--data {data}: {str(err).rstrip('.')}.") from None
    if len(dataset) == 0:
        raise EvalError(f"the {split} split of {data} holds no volume; use --split all.")
    return dataset


def read_volume(dataset: PreparedDataset, index: int) -> torch.Tensor:
    """Volume `index` of the split, (1, D, H, W); EvalError naming a bad array."""
    try:
        return dataset[index]
    except PreparedError as err:
        raise EvalError(f"--data: {str(err).rstrip('.')}.") from None


def check_preset(info: dict, run: str | os.PathLike, dataset: PreparedDataset) -> None:
    """EvalError when the VQ-GAN was trained on another preset than the data's."""
    preset = info.get("preset")
    if preset is not None and preset != dataset.manifest.preset:
        raise EvalError(f"the VQ-GAN {run} was trained on preset {preset!r} but --data "
                        f"{dataset.prep_dir} was prepared with {dataset.manifest.preset!r}; "
                        "evaluate it on a PREP_DIR of its own preset.")


def evaluate_model(model: Autoencoder, info: dict, run: str, dataset: PreparedDataset, *,
                   device: str, figure_index: int | None, progress: bool = True,
                   writer: ReconWriter | None = None) -> ModelRecon:
    """Reconstruct every volume of `dataset` with `model` and score it (module docstring);
    `writer` also saves each reconstruction."""
    shape = tuple(dataset.shape)
    compression = tuple(int(c) for c in model.config.compression)
    if len(compression) != len(shape) or any(s % c for s, c in zip(shape, compression,
                                                                   strict=False)):
        raise EvalError(f"the VQ-GAN {run} compresses by {compression}, which does not divide "
                        f"the volumes of shape {shape} in {dataset.prep_dir}; evaluate it on data "
                        "of its own preset.")
    latent = tuple(s // c for s, c in zip(shape, compression, strict=True))
    result = ModelRecon(run=str(run), preset=info.get("preset"), compression=compression,
                        latent_shape=latent, num_codes=int(model.codebook.num_codes))
    with torch.inference_mode():
        for index in tqdm(range(len(dataset)), desc=f"recon {Path(run).name}", unit="volume",
                          disable=not progress):
            x = read_volume(dataset, index).unsqueeze(0).to(device)
            reconstruction, indices = reconstruct(model, x)
            if not bool(torch.isfinite(reconstruction).all()):
                raise EvalError(f"the VQ-GAN {run} gives NaN or infinite values for "
                                f"{dataset.names[index]}; its weights are damaged, so train it "
                                "again or restore its run folder.")
            for name, value in volume_scores(x, reconstruction).items():
                result.scores[name].append(value)
            result.add_codes(indices)
            result.names.append(dataset.names[index])
            if writer is not None or index == figure_index:
                volume = reconstruction[0, 0].float().cpu().numpy()
                if writer is not None:
                    writer.write(dataset.names[index], volume)
                if index == figure_index:
                    result.figure_reconstruction = volume
    return result


def recon_report(runs: Sequence[str | os.PathLike], data: str | os.PathLike, *,
                 split: str = "val", figure: str | os.PathLike | None = None,
                 figure_volume: str | None = None, device: str = "auto",
                 volumes_out: str | os.PathLike | None = None,
                 load: ModelLoader | None = None, progress: bool = True,
                 force: bool = False) -> dict:
    """Score every run on the split of `data`, draw the figure and write the reconstructions
    (`volumes_out`) if asked; JSON-ready report.

    `load(run, device)` builds a model (default `load_model`); one trained on another preset
    than the data's is refused (EvalError). Neither output may lie in an input or a study
    (`diffusion_core.outputs`); an existing `figure` is replaced only with `force`.
    """
    from diffusion_core.runtime import resolve_device

    inputs = [("--data", data), *(("--models", run) for run in runs)]
    figure = None if figure is None else Path(figure)
    if figure is not None:
        check_figure_path(figure, inputs=inputs, force=force)
    if volumes_out is not None:
        check_output(volumes_out, inputs=inputs, what="--volumes-out", kind="folder")
    if not runs:
        raise EvalError("--models needs at least one VQ-GAN run folder.")
    device = resolve_device(device).type
    dataset = open_split(data, split)
    figure_index = None
    if figure is not None:
        figure_index = 0 if figure_volume is None else _volume_index(dataset, figure_volume, split)
    writers = {}
    if volumes_out is not None:
        names = [Path(run).name for run in runs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise EvalError(f"--volumes-out writes one folder per run folder name, and "
                            f"{', '.join(twice)} is the name of more than one of --models; "
                            "rename or link one of them.")
        writers = {str(run): ReconWriter(Path(volumes_out), run, dataset) for run in runs}
    load = load or load_model
    # Every model is loaded and checked before any is scored, so a mistake costs no time.
    models = [(run, *load(run, device)) for run in runs]
    for run, _model, info in models:
        check_preset(info, run, dataset)
    results = [evaluate_model(model, info, str(run), dataset, device=device,
                              figure_index=figure_index, progress=progress,
                              writer=writers.get(str(run)))
               for run, model, info in models]
    report = {"data": str(data), "split": split, "n_volumes": len(dataset),
              "data_range": DATA_RANGE, "psnr_cap_db": PSNR_CAP_DB,
              "models": [r.as_json() for r in results],
              "figure": None, "figure_volume": None, "figure_slices": None,
              "volumes": {run: str(w.folder) for run, w in writers.items()} or None}
    if figure is not None:
        original = read_volume(dataset, figure_index)[0].numpy()
        slices = figure_slices(original.shape[0])
        drawn = draw_recon(original, results, slices, dataset.names[figure_index],
                           dataset.manifest.depth_axis)
        save_png(drawn, figure)
        report.update(figure=str(figure), figure_volume=dataset.names[figure_index],
                      figure_slices=slices)
    return report


def _volume_index(dataset: PreparedDataset, name: str, split: str) -> int:
    """The index of volume `name` in the split; EvalError listing a few names otherwise."""
    if name in dataset.names:
        return dataset.names.index(name)
    listed = ", ".join(dataset.names[:5]) + (", ..." if len(dataset) > 5 else "")
    raise EvalError(f"--figure-volume {name} is not in the {split} split ({listed}); give one of "
                    "its array names.")


def figure_slices(depth: int) -> list[int]:
    """The depth slices the figure shows: at a quarter, half and three quarters of the depth."""
    return sorted({min(depth - 1, depth * k // 4) for k in (1, 2, 3)})


def model_label(result: ModelRecon) -> str:
    """A short column label: the run folder's name and its compression."""
    factors = "x".join(str(c) for c in result.compression)
    return f"{Path(result.run).name} (compression {factors})"


def draw_recon(original: np.ndarray, results: Sequence[ModelRecon], slices: Sequence[int],
               name: str, depth_axis: str = "axial") -> Figure:
    """Figure 3: per slice (row) the original, then each model's reconstruction and |difference|.

    Values are shown on the prepared scale [-1, 1]; every difference map shares one colour scale,
    from 0 to the largest absolute difference of any model on the slices shown.
    """
    differences = [np.abs(r.figure_reconstruction - original) for r in results]
    top = max(float(max(d[list(slices)].max() for d in differences)), 1e-6)
    columns = 1 + 2 * len(results)
    height, width = original.shape[1:]
    figure = new_figure(PANEL_INCHES * columns + 0.8,
                        PANEL_INCHES * height / width * len(slices) + 0.7)
    axes = figure.subplots(len(slices), columns, squeeze=False)
    letters = EDGE_LETTERS.get(depth_axis)
    difference_artist = None
    for row, k in enumerate(slices):
        first = row == 0
        show_slice(axes[row, 0], original[k], (-1.0, 1.0), letters=letters,
                   title="original" if first else None)
        axes[row, 0].set_ylabel(f"slice {k + 1}", fontsize=7)
        axes[row, 0].set_label(f"original slice {k}")
        for m, (result, difference) in enumerate(zip(results, differences, strict=True)):
            label = model_label(result)
            ax_rec, ax_diff = axes[row, 1 + 2 * m], axes[row, 2 + 2 * m]
            show_slice(ax_rec, result.figure_reconstruction[k], (-1.0, 1.0), letters=letters,
                       title=f"{label}\nreconstruction" if first else None)
            ax_rec.set_label(f"model {m} reconstruction slice {k}")
            difference_artist = show_slice(ax_diff, difference[k], (0.0, top), cmap="magma",
                                           title=f"{label}\n|difference|" if first else None)
            ax_diff.set_label(f"model {m} difference slice {k}")
    figure.colorbar(difference_artist, ax=axes[:, -1].tolist(), shrink=0.8,
                    label="|difference| (prepared scale)")
    figure.suptitle(f"{name}: original and reconstructions on the prepared scale [-1, 1]",
                    fontsize=8)
    return figure


def recon_text(report: dict) -> str:
    """The text report: one line per model, then the figure."""
    lines = [f"reconstruction of the {report['n_volumes']} volume(s) of the {report['split']} "
             f"split of {report['data']} (data range {report['data_range']:g}, PSNR capped at "
             f"{report['psnr_cap_db']:g} dB)",
             f"{'model':<40} {'PSNR dB':>9} {'SSIM':>7} {'MS-SSIM':>8} {'codes used':>12}"]
    for model in report["models"]:
        mean, codebook = model["mean"], model["codebook"]
        factors = "x".join(str(c) for c in model["compression"])
        name = f"{model['run']} (c {factors})"
        lines.append(f"{name:<40} {mean['psnr']:>9.2f} {mean['ssim']:>7.4f} "
                     f"{mean['ms_ssim']:>8.4f} {codebook['codes_used']:>5}/{model['num_codes']:<6}"
                     f" ({100 * codebook['usage']:.1f}%, perplexity {codebook['perplexity']:.1f})")
    if report["figure"]:
        lines.append(f"figure: {report['figure']} (volume {report['figure_volume']})")
    for run, folder in (report.get("volumes") or {}).items():
        lines.append(f"reconstructions of {run}: {folder}")
    return "\n".join(lines)
