"""Noise tables and update rules only, no networks (the diffusers scheduler contract).

A scheduler holds the noise tables of one `SchedulerConfig` and offers `set_timesteps(n)`,
`timesteps` (descending), `step(model_output, t, sample, generator) -> SchedulerOutput(prev_sample,
pred_original_sample)` and, for training, `add_noise(x0, noise, t)`. Samplers are swappable over one
config: `make_scheduler("ddpm" | "ddim" | "dpm", config, **options)`.

The config, the beta schedules and the sampler names import without torch (presets hold configs);
the scheduler classes load torch when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from diffusion_core.schedulers.betas import BETA_SCHEDULES, get_beta_schedule
from diffusion_core.schedulers.config import PREDICTION_TYPES, SchedulerConfig

if TYPE_CHECKING:
    from diffusion_core.schedulers.base import Scheduler

SAMPLER_NAMES = ("ddpm", "ddim", "dpm")

# Public name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Scheduler": "base",
    "SchedulerOutput": "base",
    "randn_like_per_sample": "base",
    "DDPMScheduler": "ddpm",
    "DDIMScheduler": "ddim",
    "DPMSolverMultistepScheduler": "dpm_solver",
}

__all__ = ["BETA_SCHEDULES", "PREDICTION_TYPES", "SAMPLERS", "SAMPLER_NAMES", "SchedulerConfig",
           "get_beta_schedule", "make_scheduler", *_LAZY]


def _samplers() -> dict[str, type[Scheduler]]:
    """Sampler name -> scheduler class (imports torch)."""
    classes = [__getattr__(name) for name in
               ("DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler")]
    return {cls.name: cls for cls in classes}


def make_scheduler(name: str, config: SchedulerConfig, **options: Any) -> Scheduler:
    """The sampler registered as `name` over `config`, with its own options (e.g. DDIM's eta)."""
    samplers = _samplers()
    if name not in samplers:
        raise ValueError(f"unknown sampler {name!r}; known samplers: {', '.join(SAMPLER_NAMES)}")
    cls = samplers[name]
    allowed = cls.option_names()
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"the {name} sampler has no option {sorted(unknown)[0]!r}; its options: "
                         f"{', '.join(sorted(allowed)) or 'none'}")
    return cls(config, **options)


def __getattr__(name: str) -> Any:
    """The torch-backed names, imported on first access; SAMPLERS maps names to classes."""
    if name == "SAMPLERS":
        return _samplers()
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """Module attributes including the lazily imported ones."""
    return sorted(set(globals()) | set(__all__))
