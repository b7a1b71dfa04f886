"""The latent DDPM plugged into the shared trainer: the latent cache, the loss and weight EMA.

A frozen VQ-GAN encodes every prepared volume once, and its left-right flipped twin (the flip
augmentation, applied to the image before encoding), into `RUN/latents/`, in a file named by the
content hashes of the VQ-GAN and of the PREP_DIR (`latent_cache`): a changed VQ-GAN or other data
never feed stale latents, and a rebuilt cache replaces the old one. The run records the VQ-GAN's
folder and hash instead of copying its weights; both are checked whenever the run is resumed or
sampled.

Weight EMA as the authors: every `ema_every` steps, a copy of the weights until `ema_start`, then
ema = decay * ema + (1 - decay) * weights (0.995, every 10 steps, from step 2,000).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from diffusion_core import checkpoints, distributed
from diffusion_core.data import LatentDataset, PreparedDataset
from diffusion_core.diffusion import LatentScale, diffusion_loss, training_noise
from diffusion_core.models import load_vqgan
from diffusion_core.nn.unet import UNet
from diffusion_core.run_folder import LATENTS_DIR, CheckpointError, EMARecord, RunInfo, run_ref
from diffusion_core.runtime import resolve_device
from diffusion_core.schedulers import DDPMScheduler
from diffusion_core.training import runs
from diffusion_core.training.config import DDPMSettings, TrainerConfig
from diffusion_core.training.trainer import StepContext, Trainer, TrainingTask, seed_run

VAL_SEED = 1234  # fixed t and noise for validation, so val_loss is comparable across steps


class WeightEMA:
    """Exponential moving average of a module's floating-point state."""

    def __init__(self, module: nn.Module, decay: float, every: int, start: int) -> None:
        self.decay, self.every, self.start = decay, every, start
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        """After `step` optimisation steps: copy before `start`, average after, every `every`."""
        if step % self.every:
            return
        for key, value in module.state_dict().items():
            if step < self.start or not value.is_floating_point():
                self.shadow[key].copy_(value)
            else:
                self.shadow[key].lerp_(value, 1.0 - self.decay)


def rank_training_noise(scheduler, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, noise) for this process's batch: drawn for every process's batch, each keeping its
    own rows. Under torchrun the ranks share one RNG state (one checkpoint, exact resume), so a
    draw per rank would give every rank the same timesteps and noise; this gives what one
    process with the whole batch would draw."""
    world = distributed.world_size()
    t, noise = training_noise(scheduler, (len(batch) * world, *batch.shape[1:]), batch.device,
                              batch.dtype)
    return distributed.rank_share(t), distributed.rank_share(noise)


class DDPMTask(TrainingTask):
    """A U-Net trained to denoise normalised latents, with its EMA copy for sampling."""

    kind = "ddpm"
    log_columns = ("loss", "val_loss")

    def __init__(self, unet: UNet, scheduler: DDPMScheduler, settings: DDPMSettings) -> None:
        self.unet, self.scheduler, self.settings = unet, scheduler, settings
        self.ema = WeightEMA(unet, settings.ema_decay, settings.ema_every, settings.ema_start)

    def modules(self) -> dict[str, nn.Module]:
        """The U-Net (its EMA copy is extra state)."""
        return {"unet": self.unet}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam (authors': lr 1e-4), fused: one kernel over all parameters (23 -> 9 ms a step)."""
        return {"unet": torch.optim.Adam(self.unet.parameters(), lr=self.settings.learning_rate,
                                         fused=True)}

    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """One denoising step on a batch of normalised latents."""
        draw = rank_training_noise(self.scheduler, batch)
        with ctx.autocast():
            loss = diffusion_loss(ctx.module("unet"), self.scheduler, batch, draw=draw)
        ctx.backward(loss, "unet")
        return {"loss": float(loss.detach())}

    def after_step(self, step: int) -> None:
        """Weight EMA."""
        self.ema.update(self.unet, step)

    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """The loss on validation latents with fixed timesteps and noise."""
        generator = torch.Generator(device=device).manual_seed(VAL_SEED)
        total, count = 0.0, 0
        for batch in batches:
            total += float(diffusion_loss(self.unet, self.scheduler, batch, generator)) * len(batch)
            count += len(batch)
        return {"val_loss": total / max(1, count)}

    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The EMA weights (what the authors sampled with)."""
        return self.ema.shadow

    def extra_state(self) -> dict:
        """The EMA weights."""
        return {"ema": self.ema.shadow}

    def load_extra_state(self, state: dict) -> None:
        """Restore the EMA weights."""
        ema = state.get("ema")
        if not isinstance(ema, dict) or set(ema) != set(self.ema.shadow):
            raise CheckpointError("the checkpoint holds no EMA weights for this U-Net")
        for key, value in ema.items():
            self.ema.shadow[key].copy_(value)


def _encode_all(vqgan: nn.Module, dataset: PreparedDataset, device: torch.device,
                progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Unquantised latents of every volume and of its left-right flipped twin."""
    from tqdm.auto import tqdm

    plain, flipped = [], []
    for index in tqdm(range(len(dataset)), desc="encode latents", unit="volume",
                      file=sys.stderr, disable=not progress):
        x = dataset[index].unsqueeze(0).to(device)
        with torch.no_grad():
            plain.append(vqgan.encode(x)[0].float().cpu())
            flipped.append(vqgan.encode(torch.flip(x, dims=(-1,)))[0].float().cpu())
    return torch.stack(plain), torch.stack(flipped)


def cache_key(vqgan_hash: str, data_hash: str, splits: dict[str, PreparedDataset]) -> str:
    """What a latent cache encodes: the VQ-GAN's and the PREP_DIR's content hashes and the order
    of each split's arrays (the cache's rows follow it)."""
    record = {"vqgan": vqgan_hash, "data": data_hash,
              "splits": {split: dataset.names for split, dataset in sorted(splits.items())}}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()


def latent_cache(run_dir: Path, vqgan_run: Path, vqgan_hash: str, data: Path, data_hash: str,
                 device: torch.device, progress: bool) -> dict[str, LatentDataset | list]:
    """Train and val latent datasets, from RUN/latents/<key>.safetensors or encoded anew.

    The file is named by `cache_key`, so latents of another VQ-GAN or of other data (another
    PREP_DIR of the preset, or this one prepared again) are never read: they are encoded anew
    and the old file is deleted. `data_hash` is `prepared.content_hash(data)`.
    """
    cache_dir = run_dir / LATENTS_DIR
    splits = {split: PreparedDataset(data, split, flip=False) for split in ("train", "val")}
    path = cache_dir / f"{cache_key(vqgan_hash, data_hash, splits)[:32]}.safetensors"
    if not path.is_file():
        if distributed.rank() == 0:
            vqgan, _ = load_vqgan(vqgan_run, str(device))
            tensors = {}
            for split, dataset in splits.items():
                if len(dataset):
                    tensors[f"{split}.plain"], tensors[f"{split}.flipped"] = _encode_all(
                        vqgan, dataset, device, progress)
            cache_dir.mkdir(parents=True, exist_ok=True)
            for stale in cache_dir.glob("*.safetensors"):
                stale.unlink()  # latents of another VQ-GAN or other data
            checkpoints.save_weights(path, tensors)
        distributed.barrier()
    tensors = checkpoints.load_weights(path)
    out: dict[str, LatentDataset | list] = {}
    for split, dataset in splits.items():
        if f"{split}.plain" not in tensors:
            out[split] = []
            continue
        if tensors[f"{split}.plain"].shape[0] != len(dataset):
            raise CheckpointError(f"{path} does not match {data} (another number of "
                                              f"volumes); delete it to encode again")
        out[split] = LatentDataset(tensors[f"{split}.plain"], tensors[f"{split}.flipped"],
                                   dataset.names, flip=split == "train")
    return out


def latent_range(scaling: str, vqgan, train: LatentDataset) -> tuple[float, float]:
    """The [low, high] that `LatentScale` maps to [-1, 1] (DDPMSettings.latent_scaling)."""
    if scaling == "codebook":
        return vqgan.codebook.range()
    # Over what training draws from, plain and flipped, in float64 a few latents at a time:
    # a float64 copy of the whole cache would be four times its size.
    parts = [chunk for tensor in (train.latents, train.flipped) for chunk in tensor.split(64)]
    count = sum(part.numel() for part in parts)
    mean = sum(float(part.double().sum()) for part in parts) / count
    square_sum = sum(float((part.double() - mean).square().sum()) for part in parts)
    std = (square_sum / (count - 1)) ** 0.5  # torch.std's unbiased estimate
    return mean - std, mean + std


class _Normalised(torch.utils.data.Dataset):
    """A latent dataset seen through the run's latent scaling."""

    def __init__(self, latents: LatentDataset, scale: LatentScale) -> None:
        self.latents, self.scale = latents, scale

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch (for the flips)."""
        self.latents.set_epoch(epoch)

    def __len__(self) -> int:
        """Number of latents."""
        return len(self.latents)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Latent `index` scaled to about [-1, 1]."""
        return self.scale.normalise(self.latents[index])


def train_ddpm(preset_name: str, data: str | Path, vqgan_run: str | Path, out: str | Path, *,
               settings: DDPMSettings, trainer: TrainerConfig, device: str = "auto",
               resume: bool = False, weights: str = "best", progress: bool = True,
               new_data: bool = False) -> dict[str, float]:
    """Train a preset's latent DDPM on a PREP_DIR through a trained VQ-GAN run.

    `new_data` (with `resume`): continue on other data than the run was trained on
    (`runs.open_run_dir`); its latents are encoded anew, at the run's latent scale.
    """
    run_dir = Path(out)
    data_info = runs.check_data(data, preset_name)
    vqgan_ref = run_ref(Path(vqgan_run).resolve(), "vqgan")
    vqgan, vqgan_json = load_vqgan(vqgan_run)
    if vqgan_json.preset != preset_name:
        raise runs.RunSetupError(f"{vqgan_run} is a VQ-GAN of preset {vqgan_json.preset!r}, "
                                 f"not {preset_name!r}")
    latent_shape = vqgan.config.latent_shape(tuple(PreparedDataset(data, "all").shape))
    info = RunInfo(kind="ddpm", preset=preset_name, data=data_info, trainer=trainer,
                   vqgan_run=vqgan_ref, unet=settings.unet, scheduler=settings.scheduler,
                   latent_scaling=settings.latent_scaling, latent_shape=latent_shape,
                   ema=EMARecord(settings.ema_decay, settings.ema_every, settings.ema_start))
    if settings.unet.channels != latent_shape[0]:
        raise runs.RunSetupError(f"the U-Net takes {settings.unet.channels} channels but the "
                                 f"VQ-GAN's latents have {latent_shape[0]}")
    previous, info = runs.open_run_dir(run_dir, info, resume=resume, new_data=new_data)
    latents = latent_cache(run_dir, Path(vqgan_run), vqgan_ref.hash, Path(data),
                           data_info.content_hash, resolve_device(device), progress)
    if previous is not None:
        # The scale the U-Net has learnt: kept when a run goes on with --new-data.
        low, high = previous.latent_range
    else:
        # A function of the VQ-GAN and the cached latents, fixed when the run starts.
        low, high = latent_range(settings.latent_scaling, vqgan, latents["train"])
    info = replace(info, latent_range=(low, high))
    scale = LatentScale(low, high)
    train = _Normalised(latents["train"], scale)
    val = _Normalised(latents["val"], scale) if latents["val"] else []
    seed_run(trainer.seed)
    task = DDPMTask(UNet(settings.unet), DDPMScheduler(settings.scheduler), settings)
    loop = Trainer(task, trainer, run_dir, train, val, device=device, run_info=info,
                   progress=progress)
    return loop.run(resume=resume, weights=weights)
