"""The latent DDPM's maths apart from the network: latent scaling and the training loss."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.diffusion import LatentScale, diffusion_loss
from diffusion_core.schedulers import DDPMScheduler
from diffusion_core.schedulers.config import SchedulerConfig


def test_latent_scale_maps_the_codebook_range_to_minus_one_one_and_back():
    scale = LatentScale(-3.0, 5.0)
    z = torch.tensor([-3.0, 1.0, 5.0])
    assert scale.normalise(z).tolist() == [-1.0, 0.0, 1.0]
    assert torch.allclose(scale.denormalise(scale.normalise(z)), z)
    with pytest.raises(ValueError, match="high > low"):
        LatentScale(1.0, 1.0)


def test_the_extent_of_the_codebook_range_in_a_scale():
    assert LatentScale(-3.0, 5.0).extent(-3.0, 5.0) == 1.0  # the paper's scaling
    assert LatentScale(-1.0, 1.0).extent(-4.0, 2.0) == 4.0  # unit variance: a wider codebook


class Oracle(torch.nn.Module):
    """Predicts exactly the noise that was added (it is told x0): the loss must then be 0."""

    def __init__(self, scheduler, x0, prediction):
        super().__init__()
        self.scheduler, self.x0, self.prediction = scheduler, x0, prediction

    def forward(self, x_t, t):
        abar = self.scheduler.alphas_cumprod[t].view(-1, *([1] * (x_t.ndim - 1)))
        noise = (x_t - abar.sqrt() * self.x0) / (1 - abar).sqrt()
        if self.prediction == "epsilon":
            return noise
        return abar.sqrt() * noise - (1 - abar).sqrt() * self.x0


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_loss_is_zero_for_a_perfect_predictor_and_positive_otherwise(prediction):
    scheduler = DDPMScheduler(SchedulerConfig(num_train_timesteps=300,
                                              prediction_type=prediction))
    x0 = torch.rand(4, 2, 3, 4, 4) * 2 - 1
    generator = torch.Generator().manual_seed(0)
    loss = diffusion_loss(Oracle(scheduler, x0, prediction), scheduler, x0, generator)
    assert float(loss) < 1e-4
    zero = diffusion_loss(lambda x, t: torch.zeros_like(x), scheduler, x0,
                          torch.Generator().manual_seed(0))
    assert float(zero) > 0.3
