"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a second-order multistep solver of the
diffusion ODE in data prediction, for good samples in 10-20 steps.

With alpha_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t) and lambda_t = log(alpha_t / sigma_t),
a step from s to t (h = lambda_t - lambda_s) is
    x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D,
with D = x0(x_s) at first order and, at second order, with r = h_prev / h,
    D = (1 + 1 / (2r)) x0(x_s) - 1 / (2r) x0(x_prev).
x0 is the network's prediction, clamped when the config asks (diffusers' thresholding with
`sample_max_value = clip_sample_range`, which is a plain clamp for a range of 1).

The grid is trailing (see trailing_timesteps) over the steps whose lambda is at least
`lambda_min_clipped`: the cosine schedule's last steps have abar near 0 (beta clipped at 0.999),
lambda near -inf, and x0 = (x - sigma eps) / alpha blows up there. diffusers documents this
clipping as critical for the cosine schedule; -5.1, our default, is the value its tests use
(with T = 300 it drops the last 2 steps).

The final step lands on the clean sample (sigma = 0, diffusers' `final_sigmas_type="zero"`). Its
h is infinite, so it is always first order, x = x0: this is diffusers' `lower_order_final` for
2M, here at every number of steps.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from diffusion_core.schedulers.base import Generators, Scheduler, SchedulerOutput, Timestep
from diffusion_core.schedulers.config import SchedulerConfig

DEFAULT_LAMBDA_MIN = -5.1


class DPMSolverMultistepScheduler(Scheduler):
    """DPM-Solver++(2M); keeps the previous step's x0 as state, which set_timesteps resets."""

    name = "dpm"

    def __init__(self, config: SchedulerConfig,
                 lambda_min_clipped: float = DEFAULT_LAMBDA_MIN) -> None:
        value = lambda_min_clipped
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise ValueError(f"lambda_min_clipped must be a number, not {value!r}")
        self.lambda_min_clipped = float(value)
        self._previous: tuple[int, torch.Tensor] | None = None
        super().__init__(config)

    @property
    def options(self) -> dict:
        """DPM-Solver's lambda clipping."""
        return {"lambda_min_clipped": self.lambda_min_clipped}

    @property
    def lambdas(self) -> np.ndarray:
        """Half log-SNR per training step, lambda_t = log(alpha_t / sigma_t), float64 (T,)."""
        return 0.5 * (np.log(self._abar) - np.log1p(-self._abar))

    @property
    def max_inference_steps(self) -> int:
        """Training steps left after dropping the noisiest ones with lambda < lambda_min_clipped."""
        clipped = int(np.count_nonzero(self.lambdas < self.lambda_min_clipped))
        return self.config.num_train_timesteps - clipped

    def _steps_available(self) -> str:
        """Name the clipping in the too-many-steps error."""
        return (f"lambda_min_clipped={self.lambda_min_clipped} leaves {self.max_inference_steps} "
                f"of the {self.config.num_train_timesteps} training steps")

    def set_timesteps(self, num_inference_steps: int) -> None:
        """A new trailing grid; forgets the previous step's x0."""
        super().set_timesteps(num_inference_steps)
        self._previous = None

    def _alpha_sigma_after(self, index: int) -> tuple[float, float]:
        """(alpha, sigma) of the grid point after `index`; (1, 0), clean, after the last."""
        abar = self._abar_after(index)
        return math.sqrt(abar), math.sqrt(1.0 - abar)

    def step(self, model_output: torch.Tensor, t: Timestep, sample: torch.Tensor,
             generator: Generators = None) -> SchedulerOutput:
        """One DPM-Solver++(2M) step (Algorithm 2); `generator` is unused: the ODE has no noise."""
        index = self._step_index(t)
        t = int(self.timesteps[index])
        lambdas = self.lambdas
        lam_s = float(lambdas[t])
        alpha_s, sigma_s = self._signal_noise(t, sample)
        alpha_t, sigma_t = self._alpha_sigma_after(index)
        x0 = self._clip(self.predict_start(model_output, t, sample))
        # e^{-h} = (sigma_t / alpha_t) / (sigma_s / alpha_s): 0 for the final step to sigma = 0.
        exp_neg_h = (sigma_t * alpha_s) / (alpha_t * sigma_s)
        final = index + 1 == self.num_inference_steps
        data = x0
        if self._previous is not None and self._previous[0] == index - 1 and not final:
            # Algorithm 2, line 5-6: r = h_prev / h, linear extrapolation of x0 in lambda.
            lam_prev = float(lambdas[int(self.timesteps[index - 1])])
            h = -math.log(exp_neg_h)
            r = (lam_s - lam_prev) / h
            data = (1.0 + 0.5 / r) * x0 - (0.5 / r) * self._previous[1]
        prev = (sigma_t / sigma_s) * sample - alpha_t * (exp_neg_h - 1.0) * data
        self._previous = (index, x0)
        return SchedulerOutput(prev_sample=prev, pred_original_sample=x0)
