"""The latent DDPM apart from its network: latent normalisation and the training loss.

Latents are the VQ-GAN's *unquantised* encoder output, min-max scaled to [-1, 1] by the
codebook's smallest and largest value (the paper: the codes approximate the range of the
encoder's output); sampling undoes the scaling, snaps to the nearest code and decodes.

Training (Ho et al. 2020, Algorithm 1, with the authors' L1 instead of L2): t ~ U{0..T-1},
x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, and the network predicts eps (the authors'; their
config's `pred_x0` was never used) or, with `prediction_type="v_prediction"`, the velocity
v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LatentScale:
    """Latents' [low, high] mapped to [-1, 1], and back: the codebook's range (the paper), or
    the training latents' mean -+ one standard deviation (unit variance)."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"a codebook range must have high > low, got [{self.low}, "
                             f"{self.high}]")

    def normalise(self, z: torch.Tensor | float) -> torch.Tensor | float:
        """Encoder output -> roughly [-1, 1]."""
        return (z - self.low) / (self.high - self.low) * 2.0 - 1.0

    def extent(self, low: float, high: float) -> float:
        """The largest |value| that [low, high] (the codebook's range) takes in this scale: 1
        for the paper's codebook scaling, several at unit variance."""
        return max(abs(self.normalise(low)), abs(self.normalise(high)))

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> the encoder's scale (then quantise and decode)."""
        return (x + 1.0) / 2.0 * (self.high - self.low) + self.low


def training_noise(scheduler, shape: tuple[int, ...], device: torch.device | str,
                   dtype: torch.dtype, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, noise) for a training batch of `shape`: one uniform timestep per volume, then
    standard normal noise."""
    steps = scheduler.config.num_train_timesteps
    t = torch.randint(0, steps, (shape[0],), device=device, generator=generator)
    noise = torch.randn(shape, device=device, dtype=dtype, generator=generator)
    return t, noise


def diffusion_loss(model: nn.Module, scheduler, x0: torch.Tensor,
                   generator: torch.Generator | None = None,
                   draw: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """L1 between the network's prediction and its target at random t for a batch x0 (N, ...);
    `draw` gives (t, noise) instead of drawing them (`training_noise`)."""
    t, noise = draw if draw is not None else training_noise(scheduler, tuple(x0.shape),
                                                            x0.device, x0.dtype, generator)
    x_t = scheduler.add_noise(x0, noise, t)
    if scheduler.config.prediction_type == "epsilon":
        target = noise
    else:
        target = scheduler.get_velocity(x0, noise, t)
    return F.l1_loss(model(x_t, t), target)
