"""DDIM (Song et al. 2021): K of the T trained steps, eta from deterministic (0) to DDPM-like (1).

The noise implied by the clamped x0 is used in the direction term, as in guided-diffusion's DDIM
(diffusers: `use_clipped_model_output=True`), so x_t, x0 and the noise stay consistent; with
eta = 1 and all T steps a step is then exactly the ancestral DDPM step.
"""

from __future__ import annotations

import math

import torch

from diffusion_core.schedulers.base import (
    Generators,
    Scheduler,
    SchedulerOutput,
    Timestep,
    randn_like_per_sample,
)
from diffusion_core.schedulers.config import SchedulerConfig


class DDIMScheduler(Scheduler):
    """Song et al.'s generalised sampler on a trailing grid of K steps (see trailing_timesteps)."""

    name = "ddim"

    def __init__(self, config: SchedulerConfig, eta: float = 0.0) -> None:
        if isinstance(eta, bool) or not isinstance(eta, int | float) or not 0.0 <= eta <= 1.0:
            raise ValueError(f"DDIM's eta must be a number in [0, 1], not {eta!r}")
        self.eta = float(eta)
        super().__init__(config)

    @property
    def options(self) -> dict:
        """DDIM's eta."""
        return {"eta": self.eta}

    def step(self, model_output: torch.Tensor, t: Timestep, sample: torch.Tensor,
             generator: Generators = None) -> SchedulerOutput:
        """Song et al. eq. 12, sigma from eq. 16 times eta; noise only where sigma > 0."""
        index = self._step_index(t)
        t = int(self.timesteps[index])
        abar_t = float(self._abar[t])
        abar_prev = self._abar_after(index)
        x0 = self._clip(self.predict_start(model_output, t, sample))
        eps = (sample - math.sqrt(abar_t) * x0) / math.sqrt(1.0 - abar_t)
        # eq. 16: sigma_t = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)
        sigma = self.eta * math.sqrt((1.0 - abar_prev) / (1.0 - abar_t)
                                     * (1.0 - abar_t / abar_prev))
        direction = math.sqrt(max(1.0 - abar_prev - sigma ** 2, 0.0))
        prev = math.sqrt(abar_prev) * x0 + direction * eps
        if sigma > 0.0:
            prev = prev + sigma * randn_like_per_sample(sample, generator)
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0)
