"""Schedule quantities against their closed forms: cosine abar, linear betas, the posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_core.schedulers import (
    DDPMScheduler,
    SchedulerConfig,
    make_scheduler,
    randn_like_per_sample,
)
from diffusion_core.schedulers.betas import cosine_betas


def _cosine_abar(t: float, T: int, s: float = 0.008) -> float:
    """Nichol & Dhariwal eq. 17 for the paper's step t in 1 .. T."""
    f = lambda u: math.cos((u / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t) / f(0)


@pytest.mark.parametrize("T", [300, 1000])
def test_cosine_alphas_cumprod_follow_the_closed_form(T):
    scheduler = DDPMScheduler(SchedulerConfig(num_train_timesteps=T))
    abar = scheduler.alphas_cumprod.double().numpy()
    expected = np.array([_cosine_abar(t + 1, T) for t in range(T)])
    # All but the last step: there abar_T = 0 and beta is clipped at 0.999.
    np.testing.assert_allclose(abar[:-1], expected[:-1], rtol=1e-6)  # float32 tables
    exact = np.cumprod(1 - cosine_betas(T))
    np.testing.assert_allclose(exact[:-1], expected[:-1], rtol=1e-10)  # float64 before the cast
    betas = scheduler.betas.double().numpy()
    assert betas[-1] == pytest.approx(0.999) and betas[:-1].max() < 0.999
    assert abar[-1] == pytest.approx(abar[-2] * 0.001, rel=1e-5)
    assert betas.min() > 0 and bool((np.diff(abar) < 0).all())
    np.testing.assert_allclose(scheduler.alphas.double().numpy(), 1 - betas, rtol=0, atol=1e-7)


@pytest.mark.parametrize("T", [300, 1000])
def test_linear_betas_are_ho_et_al_scaled_to_T(T):
    betas = DDPMScheduler(SchedulerConfig(num_train_timesteps=T,
                                          beta_schedule="linear")).betas.double().numpy()
    scale = 1000 / T
    assert betas[0] == pytest.approx(1e-4 * scale, rel=1e-6)
    assert betas[-1] == pytest.approx(0.02 * scale, rel=1e-6)
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) * scale / (T - 1), rtol=1e-4)


def test_linear_schedule_needs_more_than_20_steps():
    with pytest.raises(ValueError, match="more than 20 training steps"):
        DDPMScheduler(SchedulerConfig(num_train_timesteps=20, beta_schedule="linear"))


def test_posterior_variance_is_beta_tilde():
    """Ho et al. eq. 7 over every step: beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t."""
    scheduler = DDPMScheduler(SchedulerConfig())
    betas = cosine_betas(300)  # float64: 1 - abar near t = 0 is too coarse in float32
    abar = np.cumprod(1 - betas)
    for t in range(1, 300):
        expected = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
        assert scheduler.posterior(t)[2] == pytest.approx(expected, rel=1e-10)
    assert scheduler.posterior(0)[2] == 0.0  # the step into x_0 adds no noise


def test_respaced_posterior_uses_the_grid_neighbour():
    """Nichol & Dhariwal's respacing: beta between grid points s > s' is 1 - abar_s / abar_s'."""
    scheduler = DDPMScheduler(SchedulerConfig())
    scheduler.set_timesteps(10)
    abar = np.cumprod(1 - cosine_betas(300))
    s, s_prev = int(scheduler.timesteps[3]), int(scheduler.timesteps[4])
    beta = 1 - abar[s] / abar[s_prev]
    coef_x0, coef_xt, variance = scheduler.posterior(s)
    assert variance == pytest.approx((1 - abar[s_prev]) / (1 - abar[s]) * beta, rel=1e-10)
    assert coef_x0 == pytest.approx(math.sqrt(abar[s_prev]) * beta / (1 - abar[s]), rel=1e-10)
    assert coef_xt == pytest.approx(math.sqrt(1 - beta) * (1 - abar[s_prev]) / (1 - abar[s]),
                                    rel=1e-10)


def test_ancestral_step_is_posterior_mean_plus_scaled_noise(network):
    """x_{t-1} = mu_tilde(x_t, clamp(x0)) + sqrt(beta_tilde) z, with z from the given seed."""
    config = SchedulerConfig()
    scheduler = DDPMScheduler(config)
    betas = torch.from_numpy(cosine_betas(300))
    abar = torch.cumprod(1 - betas, 0)
    t = 120
    sample = torch.randn(2, 1, 4, 4, 4, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    eps = network(sample, t)
    out = scheduler.step(eps, t, sample, generator=torch.Generator().manual_seed(5))
    x0 = ((sample - (1 - abar[t]).sqrt() * eps) / abar[t].sqrt()).clamp(-1, 1)
    torch.testing.assert_close(out.pred_original_sample, x0)
    mean = (abar[t - 1].sqrt() * betas[t] / (1 - abar[t]) * x0
            + (1 - betas[t]).sqrt() * (1 - abar[t - 1]) / (1 - abar[t]) * sample)
    noise = randn_like_per_sample(sample, torch.Generator().manual_seed(5))
    variance = (1 - abar[t - 1]) / (1 - abar[t]) * betas[t]
    torch.testing.assert_close(out.prev_sample, mean + variance.sqrt() * noise, rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm"])
def test_final_step_returns_the_clamped_x0(name, network):
    scheduler = make_scheduler(name, SchedulerConfig())
    scheduler.set_timesteps(10)
    sample = 3 * torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    t = scheduler.timesteps[-1]
    out = scheduler.step(network(sample, t), t, sample, generator=torch.Generator())
    assert torch.equal(out.pred_original_sample, out.pred_original_sample.clamp(-1, 1))
    torch.testing.assert_close(out.prev_sample, out.pred_original_sample)


def test_clamping_follows_the_config(network):
    sample = 4 * torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    outputs = {}
    for clip, limit in ((True, 1.0), (True, 2.0), (False, 1.0)):
        scheduler = DDPMScheduler(SchedulerConfig(clip_sample=clip, clip_sample_range=limit))
        outputs[clip, limit] = scheduler.step(network(sample, 150), 150, sample,
                                              generator=torch.Generator()).pred_original_sample
    raw = outputs[False, 1.0]
    assert raw.abs().max() > 2.0
    torch.testing.assert_close(outputs[True, 1.0], raw.clamp(-1, 1))
    torch.testing.assert_close(outputs[True, 2.0], raw.clamp(-2, 2))


def test_ddim_with_eta_one_over_every_step_is_the_ancestral_step(network):
    """With eta = 1 on the full grid, eq. 12 with eq. 16's sigma is Ho et al.'s eq. 7 step."""
    config = SchedulerConfig()
    ddpm, ddim = DDPMScheduler(config), make_scheduler("ddim", config, eta=1.0)
    sample = torch.randn(2, 1, 3, 4, 4, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(0))
    for t in (299, 200, 37, 1, 0):
        steps = [one.step(network(sample, t), t, sample,
                          generator=torch.Generator().manual_seed(t)) for one in (ddpm, ddim)]
        torch.testing.assert_close(steps[0].prev_sample, steps[1].prev_sample, rtol=1e-9,
                                   atol=1e-9)
