"""Fixtures for the scheduler tests: a fixed fake network and a sampling loop."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

Network = Callable[[torch.Tensor, torch.Tensor | int], torch.Tensor]


def fake_network(sample: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
    """A deterministic stand-in for a U-Net: elementwise in the sample, varying with t.

    Elementwise, so each batch element's output depends on that element alone.
    """
    return 0.8 * torch.tanh(sample) + 0.2 * torch.sin(3.0 * sample + 0.05 * float(t))


@pytest.fixture
def network() -> Network:
    """The fake network."""
    return fake_network


def run_loop(scheduler, network: Network, sample: torch.Tensor, generator=None) -> torch.Tensor:
    """x_T -> x_0 through every timestep of `scheduler`, as a pipeline would."""
    for t in scheduler.timesteps:
        sample = scheduler.step(network(sample, t), t, sample, generator=generator).prev_sample
    return sample


@pytest.fixture
def sample_loop() -> Callable[..., torch.Tensor]:
    """The sampling loop: (scheduler, network, x_T, generator=None) -> x_0."""
    return run_loop
