"""Beta schedules registered by name; numpy only (float64), so configs can check names torch-free.

A schedule maps the number of training steps T to betas (T,) in float64; index t = 0 .. T-1 is the
paper's step t + 1 (Ho et al. 2020 count 1 .. T).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

BetaSchedule = Callable[[int], np.ndarray]

BETA_SCHEDULES: dict[str, BetaSchedule] = {}


def register_beta_schedule(name: str) -> Callable[[BetaSchedule], BetaSchedule]:
    """Decorator: add a documented schedule to BETA_SCHEDULES under `name`."""

    def add(schedule: BetaSchedule) -> BetaSchedule:
        if not schedule.__doc__:
            raise TypeError(f"beta schedule {name!r} needs a docstring")
        BETA_SCHEDULES[name] = schedule
        return schedule

    return add


def get_beta_schedule(name: str) -> BetaSchedule:
    """The schedule registered as `name`; ValueError naming the known ones otherwise."""
    try:
        return BETA_SCHEDULES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(BETA_SCHEDULES))
        raise ValueError(f"unknown beta schedule {name!r}; known schedules: {known}") from None


COSINE_OFFSET = 0.008  # s of Nichol & Dhariwal 2021, eq. 17 (the authors' value)
MAX_BETA = 0.999  # Nichol & Dhariwal clip betas here so the last step is not singular


def cosine_alphas_cumprod(num_steps: int, offset: float = COSINE_OFFSET) -> np.ndarray:
    """abar at t = 1 .. T by the closed form f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2)."""
    t = np.arange(num_steps + 1, dtype=np.float64) / num_steps
    f = np.cos((t + offset) / (1.0 + offset) * math.pi / 2.0) ** 2
    return f[1:] / f[0]


@register_beta_schedule("cosine")
def cosine_betas(num_steps: int) -> np.ndarray:
    """Nichol & Dhariwal 2021 (eq. 17), s = 0.008, betas clipped at 0.999: the authors' schedule."""
    abar = np.concatenate([[1.0], cosine_alphas_cumprod(num_steps)])
    # beta_t = 1 - abar_t / abar_{t-1}; only the last step reaches the clip (abar_T = 0).
    return np.clip(1.0 - abar[1:] / abar[:-1], 0.0, MAX_BETA)


@register_beta_schedule("linear")
def linear_betas(num_steps: int) -> np.ndarray:
    """Ho et al. 2020: linear from 1e-4 to 0.02 at T = 1000, both scaled by 1000 / T for other T.

    The scaling (Nichol & Dhariwal's `get_named_beta_schedule`) keeps the total noise of the chain
    about the same whatever T is; unscaled, T = 300 would end far from pure noise.
    """
    scale = 1000.0 / num_steps
    if scale * 0.02 >= 1.0:
        raise ValueError(f"the linear schedule needs more than 20 training steps, not {num_steps}")
    return np.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=np.float64)
