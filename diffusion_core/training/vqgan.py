"""The VQ-GAN's losses plugged into the shared trainer.

Generator step: 4 x L1 + commitment + 4 x perceptual (one random slice per volume, when weights
were given) and, from `gan_start_step`, the adversarial term of each discriminator (2D on a random
slice, 3D on the volume) plus 4 x feature matching. Discriminator step: hinge loss on real
volumes against the detached reconstructions. Weights and schedule are those of the authors'
released VQ-GAN configuration; why the adaptive GAN weight is the default: `VQGANLossConfig`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import nn

from diffusion_core import distributed, losses
from diffusion_core.models import load_vqgan
from diffusion_core.nn.config import VQGANConfig
from diffusion_core.nn.discriminators import PatchDiscriminator
from diffusion_core.nn.perceptual import PerceptualLoss
from diffusion_core.nn.vqgan import VQGAN
from diffusion_core.run_folder import RunInfo, run_ref
from diffusion_core.training import runs
from diffusion_core.training.config import TrainerConfig, VQGANLossConfig, VQGANSettings
from diffusion_core.training.trainer import (
    RunSetupError,
    StepContext,
    Trainer,
    TrainingTask,
    seed_run,
)

DATA_RANGE = 2.0  # prepared volumes live in [-1, 1]


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio in dB of two tensors on the same scale."""
    mse = float(torch.mean((x.float() - y.float()) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = DATA_RANGE) -> float:
    """Structural similarity of two (D, H, W) or (H, W) volumes (scikit-image, Gaussian window)."""
    a, b = x.float().cpu().numpy(), y.float().cpu().numpy()
    window = min(7, *(s if s % 2 else s - 1 for s in a.shape))
    return float(structural_similarity(a, b, data_range=data_range, win_size=max(window, 3)))


class VQGANTask(TrainingTask):
    """A VQGAN, its discriminators and optional perceptual network, trained together."""

    kind = "vqgan"
    log_columns = ("loss", "l1", "commitment", "perceptual", "generator", "feature_matching",
                   "gan_weight", "discriminator", "perplexity", "usage",
                   "val_loss", "val_l1", "val_psnr", "val_ssim", "val_usage")

    def __init__(self, model: VQGAN, loss: VQGANLossConfig, learning_rate: float,
                 perceptual: nn.Module | None = None) -> None:
        self.model, self.loss, self.base_lr = model, loss, learning_rate
        self.perceptual = perceptual
        if perceptual is not None:
            perceptual.requires_grad_(False).eval()
        if model.config.spatial_dims == 2 and "3d" in loss.discriminators:
            raise ValueError("a 2D VQ-GAN cannot have a 3D discriminator")
        if loss.floor_margin is not None and model.config.output_floor is None:
            raise ValueError("a floor margin needs a VQ-GAN with an output floor")
        self.discriminators = {
            f"disc{kind}": PatchDiscriminator(int(kind[0]), in_channels=model.config.in_channels,
                                              channels=loss.discriminator_channels,
                                              num_layers=loss.discriminator_layers)
            for kind in loss.discriminators
        }

    def modules(self) -> dict[str, nn.Module]:
        """The VQ-GAN and its discriminators (the perceptual network is frozen, not saved)."""
        return {"vqgan": self.model, **self.discriminators}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam with betas (0.5, 0.9) for the generator and for the discriminators (authors)."""
        opts = {"vqgan": torch.optim.Adam(self.model.parameters(), lr=self.base_lr,
                                          betas=(0.5, 0.9))}
        disc_params = [p for d in self.discriminators.values() for p in d.parameters()]
        if disc_params:
            opts["disc"] = torch.optim.Adam(disc_params, lr=self.base_lr, betas=(0.5, 0.9))
        return opts

    def _views(self, x: torch.Tensor, slices: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """What each discriminator sees: a slice per volume for '2d', the volume for '3d'."""
        views = {}
        for name in self.discriminators:
            views[name] = _slices(x, slices) if name == "disc2d" and slices is not None else x
        return views

    def _discriminator_step(self, batch: torch.Tensor, fake: torch.Tensor,
                            slices: torch.Tensor | None, ctx: StepContext) -> float:
        """One hinge-loss step of every critic on real volumes against `fake` (detached)."""
        with ctx.autocast():
            real_views, fake_views = self._views(batch, slices), self._views(fake, slices)
            d_loss = fake.new_zeros(())
            for name in self.discriminators:
                critic = ctx.module(name)
                real_logits, _ = critic(real_views[name])
                fake_logits, _ = critic(fake_views[name])
                d_loss = d_loss + losses.hinge_discriminator_loss(real_logits, fake_logits)
        ctx.backward(d_loss, "disc", "discriminator loss")
        return float(d_loss.detach())

    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """One generator step and, once the GAN has started, one discriminator step."""
        cfg = self.loss
        gan_on = losses.gan_factor(ctx.step, cfg.gan_start_step) > 0 and self.discriminators
        volumetric = batch.ndim == 5
        # One random depth index per volume, shared by the perceptual term and the 2D critic.
        slices = (torch.randint(0, batch.shape[2], (batch.shape[0],), device=batch.device)
                  if volumetric else None)
        metrics: dict[str, float] = {}
        with ctx.autocast():
            out = ctx.module("vqgan")(batch)
            raw = out.reconstruction
            # What decode gives a user: the critics and the perceptual net judge that.
            rec = self.model.floored(raw)
            l1 = (losses.l1_reconstruction(batch, raw) if cfg.floor_margin is None else
                  losses.floored_l1(batch, raw, self.model.config.output_floor,
                                    cfg.floor_margin))
            rec_loss = cfg.l1_weight * l1
            if self.perceptual is not None and cfg.perceptual_weight > 0:
                real2d = _slices(batch, slices) if volumetric else batch
                fake2d = _slices(rec, slices) if volumetric else rec
                perceptual = self.perceptual(real2d, fake2d)
                rec_loss = rec_loss + cfg.perceptual_weight * perceptual
                metrics["perceptual"] = float(perceptual.detach())
            loss = rec_loss + out.quantized.commitment_loss
            if gan_on:
                real_views, fake_views = self._views(batch, slices), self._views(rec, slices)
                generator = rec.new_zeros(())
                matching = rec.new_zeros(())
                for name, disc in self.discriminators.items():
                    disc.requires_grad_(False)
                    with torch.no_grad():
                        _, real_features = disc(real_views[name])
                    fake_logits, fake_features = disc(fake_views[name])
                    disc.requires_grad_(True)
                    generator = generator + losses.generator_adversarial_loss(fake_logits)
                    matching = matching + losses.feature_matching_loss(real_features,
                                                                        fake_features)
                weight = torch.tensor(cfg.gan_weight, device=rec.device)
                if cfg.gan_weighting == "adaptive":
                    weight = weight * losses.adaptive_gan_weight(rec_loss, generator,
                                                                 self.model.last_layer)
                loss = loss + weight * generator + cfg.feature_matching_weight * matching
                metrics.update(generator=float(generator.detach()),
                               feature_matching=float(matching.detach()),
                               gan_weight=float(weight))
        ctx.backward(loss, "vqgan")
        if gan_on:
            metrics["discriminator"] = self._discriminator_step(batch, rec.detach(), slices, ctx)
        metrics.update(loss=float(loss.detach()), l1=float(l1.detach()),
                       commitment=float(out.quantized.commitment_loss.detach()),
                       perplexity=float(out.quantized.perplexity),
                       usage=float(out.quantized.usage))
        return metrics

    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """L1, PSNR and SSIM of reconstructions through the codebook, and codebook usage."""
        l1s, psnrs, ssims, used = [], [], [], []
        for batch in batches:
            out = self.model(batch)
            rec = self.model.floored(out.reconstruction).float().clamp(-1, 1)
            used.append(out.quantized.indices.flatten())
            for x, y in zip(batch, rec, strict=True):
                l1s.append(float(torch.mean(torch.abs(x - y))))
                psnrs.append(psnr(x, y))
                ssims.append(ssim(x[0], y[0]))
        usage = (torch.unique(torch.cat(used)).numel() / self.model.config.num_codes
                 if used else 0.0)
        return {"val_loss": float(np.mean(l1s)), "val_l1": float(np.mean(l1s)),
                "val_psnr": float(np.mean(psnrs)), "val_ssim": float(np.mean(ssims)),
                "val_usage": usage}

    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The VQ-GAN alone (encoder, codebook, decoder): what encoding and sampling need."""
        return self.model.state_dict()


def _slices(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(N, C, D, H, W) and one depth index per volume -> (N, C, H, W)."""
    return x[torch.arange(x.shape[0], device=x.device), :, index]


def train_vqgan(preset_name: str, data: str | Path, out: str | Path, *,
                settings: VQGANSettings, trainer: TrainerConfig, device: str = "auto",
                resume: bool = False, perceptual_weights: str | Path | None = None,
                weights: str = "best", progress: bool = True, init: str | Path | None = None,
                freeze_encoder: bool = False, new_data: bool = False) -> dict[str, float]:
    """Train a preset's VQ-GAN on a PREP_DIR into a run folder; returns the last logged row.

    `init`: start from another VQ-GAN run's weights (the same network, its output floor
    aside), recorded in run.json by folder and content hash. `freeze_encoder` (with `init`):
    train the decoder alone on that run's fixed latent space. `new_data` (with `resume`):
    continue on other data than the run was trained on (`runs.open_run_dir`).
    """
    from diffusion_core.data import PreparedDataset

    run_dir = Path(out)
    if freeze_encoder and init is None:
        raise RunSetupError("freezing the encoder needs a trained one to start from (--init)")
    # Read before the seed is set, so that the new run's networks initialise as any run's do.
    source = None if init is None else _init_source(init, settings.model)
    info = RunInfo(kind="vqgan", preset=preset_name, data=runs.check_data(data, preset_name),
                   trainer=trainer, vqgan=settings.model, loss=settings.loss,
                   init=None if init is None else run_ref(Path(init).resolve(), "vqgan"),
                   frozen=("encoder", "codebook") if freeze_encoder else ())
    perceptual = None
    if perceptual_weights is not None and settings.loss.perceptual_weight > 0:
        perceptual = PerceptualLoss(perceptual_weights)
    _, info = runs.open_run_dir(run_dir, info, resume=resume, new_data=new_data)
    if perceptual is None and distributed.rank() == 0:
        print("mdiff-train: no --perceptual-weights given, so the perceptual loss is off "
              "(reconstruction is L1 only)", file=sys.stderr)
    seed_run(trainer.seed)
    model = VQGAN(settings.model)
    if source is not None:
        model.load_state_dict(source.state_dict())
    if freeze_encoder:
        model.freeze_latent_space()
    task = VQGANTask(model, settings.loss, trainer.learning_rate, perceptual)
    loop = Trainer(task, trainer, run_dir, PreparedDataset(data, "train"),
                   PreparedDataset(data, "val"), device=device, run_info=info, progress=progress)
    return loop.run(resume=resume, weights=weights)


def _init_source(init: str | Path, config: VQGANConfig) -> VQGAN:
    """The trained VQ-GAN a run starts from; RunSetupError unless it is this network (its
    output floor aside)."""
    source, _ = load_vqgan(init)
    if replace(source.config, output_floor=None) != replace(config, output_floor=None):
        raise RunSetupError(f"the VQ-GAN in {init} was built with other settings than this "
                            f"preset's, so it cannot start this run")
    return source
