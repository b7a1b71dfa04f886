"""What every sampler shares: the noise tables of one SchedulerConfig, q_sample, x0 from the
network's output, the grid of sampling timesteps, per-sample noise and config save/load.

Timesteps are 0-based: index t = 0 .. T-1 is the paper's step t + 1 (Ho et al. 2020 count 1 .. T).
"Step after the last" means the clean sample, abar = 1.
"""

from __future__ import annotations

import inspect
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from diffusion_core.atomic_files import read_json, write_json
from diffusion_core.schedulers.betas import get_beta_schedule
from diffusion_core.schedulers.config import SchedulerConfig

Generators = torch.Generator | Sequence[torch.Generator] | None
Timestep = int | torch.Tensor


@dataclass(frozen=True)
class SchedulerOutput:
    """One sampling step: the less noisy sample and the (clamped) x0 prediction it came from."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


def randn_like_per_sample(shape_like: torch.Tensor, generators: Generators = None) -> torch.Tensor:
    """Standard normal noise with the shape, device and dtype of `shape_like` (N, ...).

    `generators`: None (torch's global RNG), one torch.Generator for the whole batch, or one per
    batch element; then element i is drawn from `generators[i]` alone, so a volume's seed gives the
    same volume whether it is sampled alone or in any batch. Noise is drawn on the generator's
    device and then moved, so CPU generators give the same noise on any accelerator; it is drawn as
    diffusers' `randn_tensor` draws it, so the same seeds give the same noise there.
    """
    shape, dtype = shape_like.shape, shape_like.dtype
    if generators is None:
        return torch.randn(shape, device=shape_like.device, dtype=dtype)
    if isinstance(generators, torch.Generator):
        noise = torch.randn(shape, generator=generators, device=generators.device, dtype=dtype)
        return noise.to(shape_like.device)
    generators = list(generators)
    if len(generators) != shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {shape[0]}: give one per "
                         "sample")
    return torch.stack([torch.randn(shape[1:], generator=g, device=g.device,
                                    dtype=dtype).to(shape_like.device) for g in generators])


def trailing_timesteps(last: int, n: int) -> list[int]:
    """`n` timesteps evenly spaced over [0, last), descending from last - 1.

    "Trailing" spacing (Lin et al. 2024, Table 2): every grid starts at the noisiest step it may
    use, where sampling starts from pure noise, and with n = last it is every step, the paper's
    sampler. Rounding is half up, in integers.
    """
    return [((n - i) * last * 2 + n) // (2 * n) - 1 for i in range(n)]


class Scheduler(ABC):
    """Noise tables of one SchedulerConfig and the maths every sampler shares.

    Public tables are float32 tensors (betas, alphas, alphas_cumprod), computed in float64;
    coefficients are taken from the float64 values and cast to the sample's dtype.
    """

    name: ClassVar[str]

    def __init__(self, config: SchedulerConfig) -> None:
        if not isinstance(config, SchedulerConfig):
            raise TypeError(f"a scheduler needs a SchedulerConfig, not {type(config).__name__}")
        self.config = config
        betas = get_beta_schedule(config.beta_schedule)(config.num_train_timesteps)
        self._abar = np.cumprod(1.0 - betas)  # float64 alphas_cumprod
        self.betas = torch.from_numpy(betas).float()
        self.alphas = torch.from_numpy(1.0 - betas).float()
        self.alphas_cumprod = torch.from_numpy(self._abar).float()
        self._sqrt_abar = torch.from_numpy(np.sqrt(self._abar))
        self._sqrt_one_minus_abar = torch.from_numpy(np.sqrt(1.0 - self._abar))
        self.set_timesteps(self.max_inference_steps)

    # -- training: the forward process ------------------------------------------------------------

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: Timestep) -> torch.Tensor:
        """q_sample (Ho et al. eq. 4): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise.

        x0, noise: (N, ...); t: (N,) integer tensor, or one timestep for the whole batch.
        """
        a, s = self._signal_noise(t, x0)
        return a * x0 + s * noise

    def get_velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: Timestep) -> torch.Tensor:
        """The v target (Salimans & Ho 2022): sqrt(abar_t) noise - sqrt(1 - abar_t) x0."""
        a, s = self._signal_noise(t, x0)
        return a * noise - s * x0

    def predict_start(self, model_output: torch.Tensor, t: Timestep,
                      sample: torch.Tensor) -> torch.Tensor:
        """x0 from the network's output at x_t = `sample`, before any clamping.

        epsilon: x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), eq. 4 solved for x0 (as in
        eq. 15); v: x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v.
        """
        a, s = self._signal_noise(t, sample)
        if self.config.prediction_type == "epsilon":
            return (sample - s * model_output) / a
        return a * sample - s * model_output

    def _signal_noise(self, t: Timestep, like: torch.Tensor
                      ) -> tuple[float, float] | tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t)): floats for one timestep, (N, 1, ...) for (N,) ones."""
        if isinstance(t, torch.Tensor) and t.ndim == 1:
            if t.dtype.is_floating_point or t.dtype == torch.bool:
                raise ValueError(f"timesteps must be an integer tensor, not {t.dtype}")
            if t.shape[0] != like.shape[0]:
                raise ValueError(f"{t.shape[0]} timesteps for a batch of {like.shape[0]}")
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.config.num_train_timesteps):
                raise ValueError(f"timesteps must lie in [0, {self.config.num_train_timesteps})")
            shape = (-1,) + (1,) * (like.ndim - 1)
            index = t.to(self._sqrt_abar.device)
            return (self._sqrt_abar[index].to(like.device, like.dtype).reshape(shape),
                    self._sqrt_one_minus_abar[index].to(like.device, like.dtype).reshape(shape))
        abar = self._abar[self._train_index(t)]
        return math.sqrt(abar), math.sqrt(1.0 - abar)

    def _train_index(self, t: Timestep) -> int:
        """One training timestep as an int in [0, T); ValueError otherwise."""
        if isinstance(t, torch.Tensor):
            if t.numel() != 1 or t.dtype.is_floating_point:
                raise ValueError("give one integer timestep for the batch, or an (N,) tensor")
            t = int(t)
        if isinstance(t, bool) or not isinstance(t, int | np.integer):
            raise ValueError(f"a timestep must be an integer, not {t!r}")
        if not 0 <= t < self.config.num_train_timesteps:
            raise ValueError(f"timestep {t} is outside [0, {self.config.num_train_timesteps})")
        return int(t)

    def _clip(self, x0: torch.Tensor) -> torch.Tensor:
        """Clamp the predicted x0 to the data range when the config asks (the authors' [-1, 1])."""
        if not self.config.clip_sample:
            return x0
        return x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)

    # -- sampling: the grid of timesteps ---------------------------------------------------------

    @property
    def max_inference_steps(self) -> int:
        """The most sampling steps this scheduler allows: every training step."""
        return self.config.num_train_timesteps

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Sample in `num_inference_steps` evenly spaced steps (see trailing_timesteps)."""
        n = num_inference_steps
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"the number of sampling steps must be a positive integer, not {n!r}")
        limit = self.max_inference_steps
        if n > limit:
            raise ValueError(f"cannot sample in {n} steps: more steps than trained "
                             f"({self._steps_available()})")
        grid = trailing_timesteps(limit, int(n))
        self.num_inference_steps = int(n)
        self.timesteps = torch.tensor(grid, dtype=torch.long)
        self._index = {t: i for i, t in enumerate(grid)}

    def _steps_available(self) -> str:
        """Why max_inference_steps is what it is, for the too-many-steps error."""
        return f"the model was trained with {self.config.num_train_timesteps} steps"

    def _step_index(self, t: Timestep) -> int:
        """Position of `t` in `timesteps`; ValueError for a timestep not on the grid."""
        t = self._train_index(t)
        try:
            return self._index[t]
        except KeyError:
            raise ValueError(f"timestep {t} is not one of this scheduler's "
                             f"{self.num_inference_steps} timesteps; step through `timesteps` "
                             "after set_timesteps") from None

    def _abar_after(self, index: int) -> float:
        """abar of the timestep that follows grid position `index`; 1 (clean) after the last."""
        if index + 1 < self.num_inference_steps:
            return float(self._abar[int(self.timesteps[index + 1])])
        return 1.0

    @abstractmethod
    def step(self, model_output: torch.Tensor, t: Timestep, sample: torch.Tensor,
             generator: Generators = None) -> SchedulerOutput:
        """One sampling step from x_t (`sample`, (N, ...)) given the network's output at t."""

    # -- config ----------------------------------------------------------------------------------

    @classmethod
    def option_names(cls) -> set[str]:
        """Names of the sampler's own constructor arguments (beside `config`)."""
        return set(inspect.signature(cls.__init__).parameters) - {"self", "config"}

    @property
    def options(self) -> dict:
        """This sampler's own constructor arguments beside the config (JSON-ready)."""
        return {}

    def save_config(self, path: str | os.PathLike) -> None:
        """Write the sampler's name, its SchedulerConfig and its options as JSON."""
        write_json(path, {"sampler": self.name, "config": self.config.to_dict(),
                          "options": self.options})

    @classmethod
    def from_config(cls, path: str | os.PathLike) -> Scheduler:
        """Rebuild a scheduler that `save_config` wrote; ValueError for another sampler's file."""
        data = read_json(path, "scheduler config")
        if set(data) != {"sampler", "config", "options"}:
            raise ValueError(f"{path} is not a scheduler config (expected sampler, config, "
                             "options)")
        if data["sampler"] != cls.name:
            raise ValueError(f"{path} holds a {data['sampler']!r} scheduler, not {cls.name!r}; "
                             "load it with make_scheduler or that sampler's class")
        config = SchedulerConfig.from_dict(data["config"])
        unknown = set(data["options"]) - cls.option_names()
        if unknown:
            raise ValueError(f"{path}: unknown {cls.name} options {sorted(unknown)}")
        return cls(config, **data["options"])
