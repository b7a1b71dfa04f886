"""Sampling a latent DDPM or the GAN baseline: pipelines that compose and do no maths of their own.

noise (one generator per volume) -> loop(U-Net, scheduler.step) -> de-normalise by the codebook
range -> snap to the nearest code -> decode (in exact tiles for big volumes) -> the preset's
intensities (`Preset.to_intensity`, HU for CT). A volume's seed fixes it whatever the batch
size: its initial noise and every noise of the sampler come from its own generator. The GAN
baseline (`GANPipeline`): the seed's latent vector -> generator -> intensities, in one pass.

`sample_folder` checks everything it can before a model is loaded or a file written (the seeds'
range, --out, the disk and memory the plan needs), then samples batch by batch, writing each
volume as soon as it is done.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from diffusion_core import run_folder
from diffusion_core.diffusion import LatentScale
from diffusion_core.presets import Preset, get_preset
from diffusion_core.runtime import resolve_device
from diffusion_core.samples import (
    SamplesError,
    SamplesPlan,
    check_folder,
    check_room,
    open_samples_folder,
    planned_files,
    unwritable,
    write_samples,
)
from diffusion_core.schedulers import make_scheduler

# Decode in 2 x 2 tiles from this many output voxels on (a 128^3 CT is 2.1 M voxels).
TILED_DECODE_VOXELS = 1 << 22
# Sampling steps when none are asked for, capped at what the model allows (the tiny preset's
# DPM-Solver has 19); the ancestral ddpm sampler takes every step.
DEFAULT_STEPS = {"dpm": 20, "ddim": 50}
# Seeds are 0 .. 2**63 - 1: torch takes up to 2**64 - 1 (and wraps negative ones onto those), but
# a seed is also written to JSON, CSV keys and databases that other tools read as int64.
MAX_SEED = 2 ** 63 - 1


@dataclass
class SampledVolume:
    """One sampled volume: its seed, the model's [-1, 1] output and the preset's intensities."""

    seed: int
    normalised: np.ndarray  # (D, H, W) float32, the decoder's output in the pipeline's scale
    intensity: np.ndarray  # (D, H, W) float32, HU for CT, [0, 1] for MR


class LatentDiffusionPipeline:
    """A trained VQ-GAN and DDPM, ready to sample volumes of their preset."""

    def __init__(self, vqgan: torch.nn.Module, unet: torch.nn.Module, scheduler_config,
                 scale: LatentScale, latent_shape: Sequence[int], preset: Preset,
                 device: torch.device) -> None:
        self.vqgan, self.unet = vqgan.to(device).eval(), unet.to(device).eval()
        self.scheduler_config, self.scale = scheduler_config, scale
        self.latent_shape, self.preset, self.device = tuple(latent_shape), preset, device

    @classmethod
    def from_runs(cls, vqgan_run: str, ddpm_run: str,
                  device: torch.device) -> LatentDiffusionPipeline:
        """Load both runs (the DDPM's record of its VQ-GAN is checked)."""
        from diffusion_core.models import load_ddpm, load_vqgan

        unet, scheduler_config, info = load_ddpm(ddpm_run)
        vqgan, _ = load_vqgan(vqgan_run)
        scale = LatentScale(*info.latent_range)
        # clip_sample_range counts in codebook ranges: a predicted x0 beyond the codes would
        # quantise to the edge codes anyway. At the paper's scaling that is [-1, 1] as
        # configured; at unit variance the codes reach several standard deviations, and
        # clipping there at 1 would squash every sample towards the mean.
        extent = scale.extent(*vqgan.codebook.range())
        scheduler_config = replace(scheduler_config,
                                   clip_sample_range=scheduler_config.clip_sample_range * extent)
        return cls(vqgan, unet, scheduler_config, scale, info.latent_shape,
                   get_preset(info.preset), device)

    def _noise(self, seeds: Sequence[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
        generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        noise = torch.stack([torch.randn(self.latent_shape, generator=g, device=self.device)
                             for g in generators])
        return noise, generators

    def scheduler(self, sampler: str, steps: int | None, eta: float = 0.0):
        """The sampler's scheduler set to `steps` (by default `DEFAULT_STEPS`, or all the model
        allows if fewer); ValueError for an unknown sampler or more steps than it allows."""
        options = {"eta": eta} if sampler == "ddim" else {}
        scheduler = make_scheduler(sampler, self.scheduler_config, **options)
        limit = scheduler.max_inference_steps
        scheduler.set_timesteps(min(DEFAULT_STEPS.get(sampler, limit), limit)
                                if steps is None else steps)
        return scheduler

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], sampler: str = "ddpm", steps: int | None = None,
               *, eta: float = 0.0, progress: bool = False) -> list[SampledVolume]:
        """Sample one volume per seed, all in one batch."""
        from tqdm.auto import tqdm

        scheduler = self.scheduler(sampler, steps, eta)
        x, generators = self._noise(seeds)
        for t in tqdm(scheduler.timesteps, desc=f"{sampler} steps", unit="step", leave=False,
                      file=sys.stderr, disable=not progress):
            t_batch = torch.full((len(seeds),), int(t), device=self.device, dtype=torch.long)
            x = scheduler.step(self.unet(x, t_batch), t, x, generator=generators).prev_sample
        z_q = self.vqgan.quantize(self.scale.denormalise(x))
        voxels = int(np.prod(self.preset.shape))
        tiles = (2, 2) if voxels >= TILED_DECODE_VOXELS else None
        images = self.vqgan.decode(z_q, tiles=tiles).float().cpu().numpy()[:, 0]
        return [SampledVolume(int(seed), image, self.preset.to_intensity(image))
                for seed, image in zip(seeds, images, strict=True)]

    def stream(self, seeds: Sequence[int], batch_size: int, **kwargs) -> Iterator[SampledVolume]:
        """`sample` in batches of `batch_size`, yielding volumes as they are done."""
        for start in range(0, len(seeds), batch_size):
            yield from self.sample(seeds[start:start + batch_size], **kwargs)


class GANPipeline:
    """A trained GAN baseline's generator, ready to make volumes of its preset."""

    sampler = "generator"  # what samples.json records: one pass, no sampling steps

    def __init__(self, generator: torch.nn.Module, preset: Preset,
                 device: torch.device) -> None:
        self.generator, self.preset, self.device = generator.to(device).eval(), preset, device

    @classmethod
    def from_run(cls, run: str | os.PathLike, device: torch.device) -> GANPipeline:
        """Load a GAN run (its weights' hash and shape are checked)."""
        from diffusion_core.models import load_wgan

        generator, info = load_wgan(run)
        return cls(generator, get_preset(info.preset), device)

    @torch.no_grad()
    def sample(self, seeds: Sequence[int], **_options) -> list[SampledVolume]:
        """One volume per seed, from the latent vector its own generator draws (so a seed gives
        the same volume in any batch, up to float rounding: the generator's batch norm uses its
        running statistics). A diffusion sampler's options (sampler, steps, eta) mean
        nothing here."""
        z = torch.stack([self.generator.latents(
            1, generator=torch.Generator(device=self.device).manual_seed(int(s)),
            device=self.device)[0] for s in seeds])
        images = self.generator(z).float().cpu().numpy()[:, 0]
        return [SampledVolume(int(seed), image, self.preset.to_intensity(image))
                for seed, image in zip(seeds, images, strict=True)]


def check_seeds(seed: int, n: int) -> None:
    """ValueError unless the seeds `seed` .. `seed + n - 1` all lie in 0 .. MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"--seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}")
    if seed + n - 1 > MAX_SEED:
        raise ValueError(f"--seed {seed} with --n {n} gives seeds past {MAX_SEED}, the largest "
                         f"mdiff takes; give a --seed of at most {MAX_SEED - n + 1}")


def resolve_model(model: str | os.PathLike):
    """The registry's entry for a model name, DDPM run or GAN run folder (`Registry.resolve`),
    saying what is missing when `model` is a folder that is no run rather than an unknown name."""
    from diffusion_core.registry import Registry, RegistryError

    registry = Registry()
    try:
        return registry.resolve(model)
    except RegistryError:
        path = Path(model)
        if path.is_dir() and str(model) not in registry.entries():
            raise run_folder.CheckpointError(
                f"{path} is a folder but not a DDPM or GAN run folder: its {run_folder.RUN_NAME} "
                f"is missing (is its training still starting, or is it another folder?); give a "
                f"run written by mdiff-train ddpm or wgan, or a model name from mdiff-models list"
            ) from None
        raise


def _write_volumes(pipeline: LatentDiffusionPipeline | GANPipeline, folder: Path, todo: list[dict],
                   batch_size: int, *, progress: bool, **options) -> None:
    """Sample and write the planned files `todo` ({"file", "seed"}), `batch_size` at a time."""
    from tqdm.auto import tqdm

    from diffusion_core.io import Volume, VolumeError, canonical_affine, write_nifti

    spacing = pipeline.preset.spacing
    affine = canonical_affine(spacing)
    with tqdm(total=len(todo), desc="sample", unit="volume", file=sys.stderr,
              disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            volumes = pipeline.sample([item["seed"] for item in batch], **options)
            for item, volume in zip(batch, volumes, strict=True):
                try:  # write_nifti writes beside the file and renames: never a partial case
                    write_nifti(Volume(volume.intensity, spacing, affine,
                                       pipeline.preset.modality, f"sample seed {volume.seed}"),
                                folder / item["file"])
                except VolumeError as err:
                    cause = err.__cause__
                    raise SamplesError(unwritable(folder, cause) if isinstance(cause, OSError)
                                       else str(err)) from None
                bar.update(1)


def _pipeline_and_plan(entry, device: torch.device, sampler: str, steps: int | None,
                       eta: float) -> tuple[LatentDiffusionPipeline | GANPipeline, SamplesPlan]:
    """The loaded model of a registry entry and the plan (without files) its samples.json
    records; impossible sampler settings are refused here, before anything is written."""
    if entry.kind == "wgan":
        pipeline = GANPipeline.from_run(entry.gan, device)
        gan_ref = run_folder.run_ref(Path(entry.gan).resolve(), "wgan")
        return pipeline, SamplesPlan(model=entry.name, preset=entry.preset, vqgan={}, ddpm={},
                                     sampler=GANPipeline.sampler, steps=1, eta=0.0,
                                     kind="wgan", gan=asdict(gan_ref))
    pipeline = LatentDiffusionPipeline.from_runs(entry.vqgan, entry.ddpm, device)
    steps = pipeline.scheduler(sampler, steps, eta).num_inference_steps
    vqgan_ref = run_folder.run_ref(Path(entry.vqgan).resolve(), "vqgan")
    ddpm_ref = run_folder.run_ref(entry.ddpm, "ddpm")
    return pipeline, SamplesPlan(model=entry.name, preset=entry.preset, vqgan=asdict(vqgan_ref),
                                 ddpm=asdict(ddpm_ref), sampler=sampler, steps=int(steps),
                                 eta=float(eta))


def sample_folder(model: str, n: int, out: str | os.PathLike, *, sampler: str = "dpm",
                  steps: int | None = None, eta: float = 0.0, seed: int = 0,
                  batch_size: int = 4, device: str = "auto", progress: bool = True) -> dict:
    """Write `n` sampled volumes of a registered model (or DDPM or GAN run) into a samples folder.

    `steps` None: the sampler's default (`DEFAULT_STEPS`, capped at what the model allows). A GAN
    makes each volume in one pass: `sampler`, `steps` and `eta` are ignored, and samples.json
    records kind "wgan", sampler "generator" and 1 step.
    """
    from diffusion_core import distributed
    from diffusion_core.outputs import check_output

    if n < 1:
        raise ValueError(f"--n must be a positive number of volumes, not {n}")
    check_seeds(seed, n)
    entry = resolve_model(model)
    labels = {"vqgan": "--model's VQ-GAN", "ddpm": "--model", "wgan": "--model"}
    folder = check_output(out, inputs=[(labels[kind], run) for kind, run in entry.runs().items()],
                          kind="folder")
    check_folder(folder)
    check_room(folder, n, int(np.prod(get_preset(entry.preset).shape)))
    distributed.setup()
    rank, world = distributed.rank(), distributed.world_size()
    pipeline, plan = _pipeline_and_plan(entry, resolve_device(device), sampler, steps, eta)
    plan.files = planned_files(n, seed)
    sampler, steps, eta = plan.sampler, plan.steps, plan.eta
    if rank == 0:
        open_samples_folder(folder, plan)  # rank 0 creates or checks the folder first
    distributed.barrier()
    remaining = open_samples_folder(folder, plan)
    todo = remaining[rank::world]
    started = time.perf_counter()
    _write_volumes(pipeline, folder, todo, batch_size, progress=progress and rank == 0,
                   sampler=sampler, steps=steps, eta=eta)
    seconds = time.perf_counter() - started
    distributed.barrier()
    if rank == 0:
        plan.complete = all((folder / item["file"]).is_file() for item in plan.files)
        try:
            write_samples(folder, plan)
        except OSError as err:
            raise SamplesError(unwritable(folder, err)) from None
    return {"folder": str(folder), "model": entry.name, "kind": plan.kind, "sampler": sampler,
            "steps": steps,
            "written": len(todo), "kept": n - len(remaining),
            "seconds_per_volume": seconds / max(1, len(todo))}
