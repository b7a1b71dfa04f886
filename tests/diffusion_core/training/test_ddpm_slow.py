"""Slow: a tiny U-Net overfits a handful of latents (the training loss falls clearly)."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.diffusion import diffusion_loss
from diffusion_core.nn.config import UNetConfig
from diffusion_core.nn.unet import UNet
from diffusion_core.schedulers import DDPMScheduler
from diffusion_core.schedulers.config import SchedulerConfig


@pytest.mark.slow
def test_a_tiny_unet_overfits_four_latents():
    torch.manual_seed(0)
    latents = torch.tanh(torch.randn(4, 4, 4, 8, 8))  # four fixed "latents" in [-1, 1]
    unet = UNet(UNetConfig(channels=4, base_channels=16, channel_multipliers=(1, 2),
                           heads=2, head_channels=8, norm_groups=4))
    scheduler = DDPMScheduler(SchedulerConfig(num_train_timesteps=100))
    optimiser = torch.optim.Adam(unet.parameters(), lr=2e-3)
    probe = torch.Generator().manual_seed(1)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(diffusion_loss(unet, scheduler, latents.repeat(8, 1, 1, 1, 1),
                                        probe.manual_seed(1)))

    before = held_out_loss()
    for _ in range(600):
        loss = diffusion_loss(unet, scheduler, latents)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    after = held_out_loss()
    print(f"L1 noise loss on fixed probes: {before:.3f} before, {after:.3f} after 600 steps")
    assert after < 0.5 * before
