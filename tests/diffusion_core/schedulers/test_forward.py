"""The forward process: add_noise, get_velocity and predict_start invert each other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_core.schedulers import DDPMScheduler, SchedulerConfig
from diffusion_core.schedulers.betas import cosine_betas

T = 300


def _data(shape, dtype=torch.float64):
    generator = torch.Generator().manual_seed(0)
    x0 = torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1
    noise = torch.randn(shape, generator=generator, dtype=dtype)
    return x0, noise


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("shape", [(T, 2, 3, 4, 4), (T, 1, 5, 5)], ids=["3d", "2d"])
def test_true_target_recovers_x0_at_every_step(prediction_type, shape):
    """x_t = q_sample(x0, eps, t); the true eps (or v) gives x0 back, t = 0 .. T-1 in one batch."""
    scheduler = DDPMScheduler(SchedulerConfig(prediction_type=prediction_type))
    x0, noise = _data(shape)
    t = torch.arange(T)
    x_t = scheduler.add_noise(x0, noise, t)
    target = noise if prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
    torch.testing.assert_close(scheduler.predict_start(target, t, x_t), x0, rtol=0, atol=1e-9)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_float32_recovery(prediction_type):
    """In float32 too, where abar is not tiny (x0 = (x_t - s eps) / a amplifies rounding by 1/a)."""
    scheduler = DDPMScheduler(SchedulerConfig(prediction_type=prediction_type))
    x0, noise = _data((250, 1, 4, 4), torch.float32)
    t = torch.arange(250)
    x_t = scheduler.add_noise(x0, noise, t)
    target = noise if prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
    torch.testing.assert_close(scheduler.predict_start(target, t, x_t), x0, rtol=0, atol=1e-4)


def test_add_noise_is_q_sample():
    scheduler = DDPMScheduler(SchedulerConfig())
    x0, noise = _data((3, 1, 2, 2))
    t = torch.tensor([0, 150, 299])
    abar = torch.from_numpy(np.cumprod(1 - cosine_betas(T)))[t].reshape(3, 1, 1, 1)
    expected = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
    torch.testing.assert_close(scheduler.add_noise(x0, noise, t), expected)
    velocity = abar.sqrt() * noise - (1 - abar).sqrt() * x0
    torch.testing.assert_close(scheduler.get_velocity(x0, noise, t), velocity)


def test_one_timestep_for_the_batch_equals_a_repeated_one():
    scheduler = DDPMScheduler(SchedulerConfig())
    x0, noise = _data((4, 1, 3, 3))
    per_sample = scheduler.add_noise(x0, noise, torch.full((4,), 77))
    torch.testing.assert_close(scheduler.add_noise(x0, noise, 77), per_sample)
    torch.testing.assert_close(scheduler.add_noise(x0, noise, torch.tensor(77)), per_sample)


@pytest.mark.parametrize("t, message", [
    (torch.tensor([1, 2]), "2 timesteps for a batch of 3"),
    (torch.tensor([0.0, 1.0, 2.0]), "integer tensor"),
    (torch.tensor([0, 1, 300]), r"lie in \[0, 300\)"),
    (torch.tensor([-1, 1, 2]), r"lie in \[0, 300\)"),
    (300, r"outside \[0, 300\)"),
    (1.5, "must be an integer"),
])
def test_bad_timesteps(t, message):
    scheduler = DDPMScheduler(SchedulerConfig())
    x0, noise = _data((3, 1, 2, 2))
    with pytest.raises(ValueError, match=message):
        scheduler.add_noise(x0, noise, t)
