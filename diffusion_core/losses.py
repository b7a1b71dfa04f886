"""The VQ-GAN's loss terms as plain functions of tensors (no weights, no modules).

Reconstruction, hinge GAN losses and the adaptive GAN weight follow Esser et al.'s VQGAN (taming
transformers); feature matching follows pix2pixHD, as the authors use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def l1_reconstruction(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between an input and its reconstruction (equal shapes)."""
    if x.shape != x_hat.shape:
        raise ValueError(f"reconstruction has shape {tuple(x_hat.shape)}, input {tuple(x.shape)}")
    return (x - x_hat).abs().mean()


def floored_l1(x: torch.Tensor, x_hat: torch.Tensor, floor: float,
               margin: float) -> torch.Tensor:
    """L1 where the input is above `floor`; where it is at the floor, only what the
    reconstruction puts above `floor - margin` counts (a hinge), so the decoder learns the
    background with room below the floor and a clamp there returns it exactly."""
    if x.shape != x_hat.shape:
        raise ValueError(f"reconstruction has shape {tuple(x_hat.shape)}, input {tuple(x.shape)}")
    at_floor = x <= floor
    above = torch.relu(x_hat - (floor - margin))
    return torch.where(at_floor, above, (x - x_hat).abs()).mean()


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake))): Esser et al.'s discriminator loss."""
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


def generator_adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """-mean(fake logits): the generator's side of the hinge GAN."""
    return -fake_logits.mean()


def feature_matching_loss(real_features: Sequence[torch.Tensor],
                          fake_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of L1(fake, detached real) between discriminator features.

    The real side is detached so that only the generator is pulled towards the real statistics.
    The authors weight the sum by 4 / len(layers), i.e. 4 x this mean.
    """
    if len(real_features) != len(fake_features) or not real_features:
        raise ValueError(f"feature matching needs equal, non-empty layer lists, got "
                         f"{len(real_features)} real and {len(fake_features)} fake")
    return torch.stack([F.l1_loss(fake, real.detach())
                        for real, fake in zip(real_features, fake_features, strict=True)]).mean()


def adaptive_gan_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor,
                        last_layer_weight: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """||d rec / d w|| / (||d gan / d w|| + 1e-4) at the decoder's last weight w, clamped, detached.

    VQGAN's balance (Esser et al.'s lambda): it scales the GAN term so that its gradient at the
    output layer is as large as the reconstruction's. Both losses must depend on w; their graphs
    are retained for the backward pass that follows.
    """
    rec_grad, = torch.autograd.grad(rec_loss, last_layer_weight, retain_graph=True)
    gan_grad, = torch.autograd.grad(gan_loss, last_layer_weight, retain_graph=True)
    weight = rec_grad.norm() / (gan_grad.norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()


def gan_factor(step: int, start_step: int) -> float:
    """0.0 before `start_step`, 1.0 from it on: the GAN terms switch on after a warm-up."""
    return 1.0 if step >= start_step else 0.0
