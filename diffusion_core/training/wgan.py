"""The GAN baseline (WGAN-GP, Gulrajani et al. 2017) plugged into the shared trainer.

Critic loss: D(fake) - D(real) + lambda * (||grad_x D(x_hat)||_2 - 1)^2 on random interpolates
x_hat = a * real + (1 - a) * fake, one a per volume; the gradient's norm is taken per volume, over
all of its (C, D, H, W) voxels (`gradient_penalty`). Kwon et al.'s public 3D code takes it over
the size-1 channel axis, one norm per voxel, which constrains something else entirely. Generator
loss: -D(G(z)).

One trainer step is one generator iteration (`WGANLossConfig`): `critic_steps` critic updates,
each on its own batch of real volumes (the trainer draws them all as one step's batch, so the
data order stays a pure function of the step and resume stays exact), then `generator_steps`
generator updates on fresh noise. No gradient clipping: the penalty is the critic's constraint.
log.csv holds the critic's Wasserstein estimate D(real) - D(fake) and the penalty, averaged over
the step's critic updates; validation gives the estimate on held-out volumes against a fixed set
of latents (`val_wasserstein`, also `val_loss`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from diffusion_core import distributed
from diffusion_core.nn.wgan import Critic, Generator
from diffusion_core.run_folder import RunInfo
from diffusion_core.training import runs
from diffusion_core.training.config import TrainerConfig, WGANLossConfig, WGANSettings
from diffusion_core.training.trainer import (
    RunSetupError,
    StepContext,
    Trainer,
    TrainingTask,
    seed_run,
)

VAL_SEED = 1234  # the latents validation compares with, the same at every validation


def gradient_penalty(scores: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Mean over volumes of (||d score / d point||_2 - 1)^2, one norm per volume over all of
    its (C, D, H, W); `points` (N, C, D, H, W) must require grad and `scores` (N,) be its
    critic scores. Differentiable (create_graph), so the penalty trains the critic."""
    (grads,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    norms = grads.float().flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def critic_objective(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     mix: torch.Tensor, penalty_weight: float
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, Wasserstein estimate, penalty) of the critic on real and (detached) fake volumes.

    `mix` (N, 1, 1, 1, 1) in [0, 1] places each interpolate between its real and fake volume.
    Real, fake and interpolated volumes go through the critic in one call (its layer norm is
    per volume, so this changes no score), which also keeps DistributedDataParallel to one
    forward per backward.
    """
    n = real.shape[0]
    points = (mix * real + (1.0 - mix) * fake).detach().requires_grad_(True)
    scores = critic(torch.cat([real, fake, points])).float()
    real_scores, fake_scores, point_scores = scores.split(n)
    penalty = gradient_penalty(point_scores, points)
    wasserstein = real_scores.mean() - fake_scores.mean()
    return penalty_weight * penalty - wasserstein, wasserstein, penalty


class WGANTask(TrainingTask):
    """A generator and its critic, trained by WGAN-GP's alternating updates."""

    kind = "wgan"
    log_columns = ("wasserstein", "penalty", "critic_loss", "generator_loss",
                   "val_loss", "val_wasserstein")

    def __init__(self, generator: Generator, critic: Critic, loss: WGANLossConfig,
                 learning_rate: float) -> None:
        self.generator, self.critic, self.loss = generator, critic, loss
        self.base_lr = learning_rate
        self.batches_per_step = loss.critic_steps

    def modules(self) -> dict[str, nn.Module]:
        """The generator and the critic (both saved in checkpoints)."""
        return {"generator": self.generator, "critic": self.critic}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Adam for each network with the loss config's betas (WGAN-GP: (0.0, 0.9))."""
        return {name: torch.optim.Adam(module.parameters(), lr=self.base_lr,
                                       betas=self.loss.betas)
                for name, module in self.modules().items()}

    def _critic_step(self, real: torch.Tensor, ctx: StepContext) -> tuple[float, float, float]:
        """One critic update on `real` against fresh fakes; (loss, Wasserstein, penalty)."""
        n, world = real.shape[0], distributed.world_size()
        z = distributed.rank_share(self.generator.latents(n * world, device=real.device))
        with torch.no_grad(), ctx.autocast():
            fake = self.generator(z)
        mix = distributed.rank_share(torch.rand(n * world, 1, 1, 1, 1, device=real.device))
        with ctx.autocast():
            loss, wasserstein, penalty = critic_objective(
                ctx.module("critic"), real, fake.to(real.dtype), mix, self.loss.penalty_weight)
        ctx.backward(loss, "critic", "critic loss")
        return float(loss.detach()), float(wasserstein.detach()), float(penalty.detach())

    def _generator_step(self, n: int, ctx: StepContext) -> float:
        """One generator update on n fresh latents against the (frozen) critic; its loss."""
        world = distributed.world_size()
        z = distributed.rank_share(self.generator.latents(n * world, device=ctx.device))
        self.critic.requires_grad_(False)
        try:
            with ctx.autocast():
                loss = -self.critic(ctx.module("generator")(z)).float().mean()
        finally:
            self.critic.requires_grad_(True)
        ctx.backward(loss, "generator", "generator loss")
        return float(loss.detach())

    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """`critic_steps` critic updates (one batch each), then `generator_steps` generator ones."""
        reals = batch.chunk(self.loss.critic_steps)
        critic = [self._critic_step(real, ctx) for real in reals]
        generator = [self._generator_step(reals[0].shape[0], ctx)
                     for _ in range(self.loss.generator_steps)]
        return {"critic_loss": sum(c[0] for c in critic) / len(critic),
                "wasserstein": sum(c[1] for c in critic) / len(critic),
                "penalty": sum(c[2] for c in critic) / len(critic),
                "generator_loss": sum(generator) / len(generator)}

    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """The critic's Wasserstein estimate on held-out volumes against fixed latents."""
        rng = torch.Generator(device=device).manual_seed(VAL_SEED)
        real_sum, fake_sum, count = 0.0, 0.0, 0
        for batch in batches:
            z = self.generator.latents(batch.shape[0], generator=rng, device=device)
            real_sum += float(self.critic(batch).float().sum())
            fake_sum += float(self.critic(self.generator(z)).float().sum())
            count += batch.shape[0]
        estimate = (real_sum - fake_sum) / max(1, count)
        return {"val_loss": estimate, "val_wasserstein": estimate}

    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The generator alone (with its batch-norm statistics): what sampling needs."""
        return self.generator.state_dict()


def train_wgan(preset_name: str, data: str | Path, out: str | Path, *, settings: WGANSettings,
               trainer: TrainerConfig, device: str = "auto", resume: bool = False,
               weights: str = "latest", progress: bool = True,
               new_data: bool = False) -> dict[str, float]:
    """Train a preset's GAN baseline on a PREP_DIR into a run folder; the last logged row.

    Gradient clipping is off whatever `trainer` says (WGAN-GP clips nothing). `weights`
    "latest" (the default) keeps the last generator: a falling held-out Wasserstein estimate
    tracks sample quality only roughly, and early in a run the critic is too weak for it to.
    """
    run_dir = Path(out)
    trainer = replace(trainer, grad_clip=0.0)
    info = RunInfo(kind="wgan", preset=preset_name, data=runs.check_data(data, preset_name),
                   trainer=trainer, wgan=settings.model, gan_loss=settings.loss)
    from diffusion_core.presets import get_preset

    if settings.model.shape != get_preset(preset_name).shape:
        raise RunSetupError(f"the GAN makes volumes of shape {settings.model.shape}, not preset "
                            f"{preset_name}'s {get_preset(preset_name).shape}")
    _, info = runs.open_run_dir(run_dir, info, resume=resume, new_data=new_data)
    from diffusion_core.data import PreparedDataset

    seed_run(trainer.seed)
    task = WGANTask(Generator(settings.model), Critic(settings.model), settings.loss,
                    trainer.learning_rate)
    loop = Trainer(task, trainer, run_dir, PreparedDataset(data, "train"),
                   PreparedDataset(data, "val"), device=device, run_info=info, progress=progress)
    return loop.run(resume=resume, weights=weights)
