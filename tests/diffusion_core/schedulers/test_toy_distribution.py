"""Samplers against a toy problem whose answer is known: data on two points, the exact network.

Each value of x0 is -0.6 with probability 0.3 or 0.5 with probability 0.7 (mean 0.17, variance
0.2541). For that data the best epsilon-predictor is known in closed form:
E[eps | x_t] = (x_t - sqrt(abar) E[x0 | x_t]) / sqrt(1 - abar), E[x0 | x_t] from Bayes' rule with
q(x_t | x0) = N(sqrt(abar) x0, 1 - abar). With N = 20000 samples the standard errors are 0.0036
(mean), 0.0016 (variance) and 0.0032 (fraction on the upper point); bounds are about 4 of them.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_core.schedulers import SchedulerConfig, make_scheduler
from diffusion_core.schedulers.betas import cosine_betas

LOW, HIGH, P_HIGH = -0.6, 0.5, 0.7
MEAN = (1 - P_HIGH) * LOW + P_HIGH * HIGH
VARIANCE = (1 - P_HIGH) * LOW ** 2 + P_HIGH * HIGH ** 2 - MEAN ** 2
N = 20_000
ABAR = torch.from_numpy(np.cumprod(1 - cosine_betas(300)))


def exact_epsilon(x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """E[eps | x_t] for the two-point data (the ideal network), float64."""
    a, s = ABAR[int(t)].sqrt(), (1 - ABAR[int(t)]).sqrt()
    # log-odds of HIGH against LOW given x_t: prior odds times the Gaussian likelihood ratio
    log_odds = (np.log(P_HIGH / (1 - P_HIGH))
                + ((x - a * LOW) ** 2 - (x - a * HIGH) ** 2) / (2 * s ** 2))
    x0 = LOW + (HIGH - LOW) * torch.sigmoid(log_odds)
    return (x - a * x0) / s


def _sample(name: str, options: dict, steps: int, seed: int) -> torch.Tensor:
    scheduler = make_scheduler(name, SchedulerConfig(), **options)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 1, dtype=torch.float64, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(exact_epsilon(x, t), t, x, generator=generator).prev_sample
    return x


def _statistics(x: torch.Tensor) -> dict[str, float]:
    near = torch.minimum((x - LOW).abs(), (x - HIGH).abs())
    return {"mean": float(x.mean()), "variance": float(x.var()),
            "high": float((x > 0).double().mean()), "on_data": float((near < 0.01).double().mean())}


@pytest.fixture(scope="module")
def ancestral() -> dict[str, float]:
    """The paper's sampler, all 300 steps."""
    return _statistics(_sample("ddpm", {}, 300, seed=0))


def _check_against_truth(stats: dict[str, float], on_data: float) -> None:
    assert stats["mean"] == pytest.approx(MEAN, abs=0.015)
    assert stats["variance"] == pytest.approx(VARIANCE, abs=0.007)
    assert stats["high"] == pytest.approx(P_HIGH, abs=0.013)
    assert stats["on_data"] >= on_data


def test_ancestral_sampler_recovers_the_data(ancestral):
    _check_against_truth(ancestral, on_data=0.999)


def test_ddim_eta_one_all_steps_matches_ancestral_in_distribution(ancestral):
    """DDIM with eta = 1 and all T steps is the ancestral sampler (other seed, same statistics)."""
    ddim = _statistics(_sample("ddim", {"eta": 1.0}, 300, seed=1))
    _check_against_truth(ddim, on_data=0.999)
    assert ddim["mean"] == pytest.approx(ancestral["mean"], abs=0.02)  # two-sample: sqrt(2) x
    assert ddim["variance"] == pytest.approx(ancestral["variance"], abs=0.009)
    assert ddim["high"] == pytest.approx(ancestral["high"], abs=0.018)


@pytest.mark.parametrize("name, options, steps, on_data", [
    ("ddim", {"eta": 0.0}, 50, 0.999),
    ("dpm", {}, 20, 0.998),
], ids=["ddim-50", "dpm-20"])
def test_few_step_solvers_recover_the_data(name, options, steps, on_data):
    """The deterministic samplers land on the two points in the right proportions."""
    _check_against_truth(_statistics(_sample(name, options, steps, seed=2)), on_data)
