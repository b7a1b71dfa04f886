"""The noise process a diffusion model was trained with, as a frozen dataclass; torch-free.

One `SchedulerConfig` is shared by every sampler (DDPM, DDIM, DPM-Solver++): it fixes the training
noise tables, so any sampler can be swapped in for a trained model. Sampler choices (DDIM's eta,
DPM-Solver's lambda clipping) are the sampler's own arguments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from diffusion_core.records import dataclass_fields
from diffusion_core.schedulers.betas import get_beta_schedule

PREDICTION_TYPES = ("epsilon", "v_prediction")


@dataclass(frozen=True)
class SchedulerConfig:
    """Training noise process: T steps, a named beta schedule, what the network predicts.

    `prediction_type`: "epsilon" (the noise; the authors' choice) or "v_prediction"
    (v = sqrt(abar) eps - sqrt(1 - abar) x0, Salimans & Ho 2022). `clip_sample`: clamp the
    predicted x0 to [-clip_sample_range, clip_sample_range] at every sampling step, as the authors
    did with latents min-max scaled to [-1, 1].
    """

    num_train_timesteps: int = 300
    beta_schedule: str = "cosine"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0

    def __post_init__(self) -> None:
        steps = self.num_train_timesteps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"num_train_timesteps must be a positive integer, not {steps!r}")
        get_beta_schedule(self.beta_schedule)
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"unknown prediction type {self.prediction_type!r}; choose from "
                             f"{', '.join(PREDICTION_TYPES)}")
        if not isinstance(self.clip_sample, bool):
            raise ValueError(f"clip_sample must be true or false, not {self.clip_sample!r}")
        limit = self.clip_sample_range
        if isinstance(limit, bool) or not isinstance(limit, int | float) or not limit > 0:
            raise ValueError(f"clip_sample_range must be a positive number, not {limit!r}")
        object.__setattr__(self, "clip_sample_range", float(limit))

    def to_dict(self) -> dict:
        """JSON-ready constructor arguments."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SchedulerConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "scheduler"))
