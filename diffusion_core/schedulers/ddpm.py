"""The ancestral sampler of Ho et al. 2020 (Algorithm 2), x0 clamped as the authors sampled.

Every step draws x_{t-1} ~ q(x_{t-1} | x_t, x0) with x0 predicted by the network (eq. 6-7): the
posterior mean with the clamped x0 and the posterior variance beta_tilde_t ("fixed small").
With fewer steps than trained, the chain is respaced (Nichol & Dhariwal 2021, sec. 4): between
grid points s > s', beta = 1 - abar_s / abar_s', and the same formulas hold.
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


class DDPMScheduler(Scheduler):
    """Ho et al.'s ancestral sampler; by default all T steps, the paper's (and authors') sampler."""

    name = "ddpm"

    def posterior(self, t: Timestep) -> tuple[float, float, float]:
        """(x0 coefficient, x_t coefficient, variance) of q(x_prev | x_t, x0) for the step at `t`.

        Ho et al. eq. 7: mean = sqrt(abar_prev) beta / (1 - abar_t) x0
        + sqrt(alpha) (1 - abar_prev) / (1 - abar_t) x_t, variance beta_tilde =
        (1 - abar_prev) / (1 - abar_t) beta, with alpha = 1 - beta = abar_t / abar_prev.
        """
        index = self._step_index(t)
        abar_t = float(self._abar[int(self.timesteps[index])])
        abar_prev = self._abar_after(index)
        alpha = abar_t / abar_prev
        beta = 1.0 - alpha
        return (math.sqrt(abar_prev) * beta / (1.0 - abar_t),
                math.sqrt(alpha) * (1.0 - abar_prev) / (1.0 - abar_t),
                (1.0 - abar_prev) / (1.0 - abar_t) * beta)

    def step(self, model_output: torch.Tensor, t: Timestep, sample: torch.Tensor,
             generator: Generators = None) -> SchedulerOutput:
        """x_{t-1} = posterior mean + sqrt(beta_tilde) z (eq. 7), z = 0 into x_0 (Algorithm 2).

        Algorithm 2 writes the mean with eps; eq. 7's form takes the clamped x0 instead.
        """
        index = self._step_index(t)
        t = int(self.timesteps[index])
        x0 = self._clip(self.predict_start(model_output, t, sample))
        coef_x0, coef_xt, variance = self.posterior(t)
        prev = coef_x0 * x0 + coef_xt * sample
        if index + 1 < self.num_inference_steps:  # Algorithm 2: z = 0 at t = 1
            prev = prev + math.sqrt(variance) * randn_like_per_sample(sample, generator)
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0)
