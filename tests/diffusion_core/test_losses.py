"""The VQ-GAN loss terms against values worked out by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_core.losses import (
    adaptive_gan_weight,
    feature_matching_loss,
    gan_factor,
    generator_adversarial_loss,
    hinge_discriminator_loss,
    l1_reconstruction,
)


def test_l1_reconstruction_by_hand():
    """|0-1|, |1-1|, |2-0|, |3-3| average to 0.75."""
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    x_hat = torch.tensor([[1.0, 1.0], [0.0, 3.0]])
    assert l1_reconstruction(x, x_hat).item() == pytest.approx(0.75)


def test_l1_reconstruction_refuses_shape_mismatch():
    """Broadcasting would hide a decoder that returns the wrong size: refused."""
    with pytest.raises(ValueError, match="shape"):
        l1_reconstruction(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 1))


def test_hinge_discriminator_loss_by_hand():
    """real (2, 0.5, -1) -> hinge (0, 0.5, 2); fake (-2, 0, 1) -> (0, 1, 2); 0.5 * (5/6 + 1)."""
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    assert hinge_discriminator_loss(real, fake).item() == pytest.approx(11.0 / 12.0)


def test_hinge_is_zero_for_a_confident_discriminator():
    """Real logits >= 1 and fake <= -1 cost nothing; the maps may differ in size (2D vs 3D)."""
    real = torch.full((2, 1, 3, 3), 1.5)
    fake = torch.full((2, 1, 2, 2, 2), -1.0)
    assert hinge_discriminator_loss(real, fake).item() == 0.0


def test_generator_adversarial_loss_by_hand():
    """-(1 + 2 - 6) / 3 = 1."""
    assert generator_adversarial_loss(torch.tensor([1.0, 2.0, -6.0])).item() == pytest.approx(1.0)


def test_feature_matching_zero_for_equal_features():
    """Identical feature lists match exactly."""
    features = [torch.randn(2, 4, 5, 5), torch.randn(2, 8, 3, 3)]
    assert feature_matching_loss(features, [f.clone() for f in features]).item() == 0.0


def test_feature_matching_by_hand_and_only_the_fake_side_gets_gradients():
    """Layer L1 distances 1 and 3 average to 2; the real features receive no gradient."""
    real = [torch.zeros(1, 2, 2, requires_grad=True), torch.ones(1, 3, requires_grad=True)]
    fake = [torch.ones(1, 2, 2, requires_grad=True), torch.full((1, 3), 4.0, requires_grad=True)]
    value = feature_matching_loss(real, fake)
    assert value.item() == pytest.approx(2.0)
    value.backward()
    assert all(r.grad is None for r in real)
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in fake)


def test_feature_matching_refuses_unequal_lists():
    """Different layer counts (two discriminators mixed up) are refused."""
    with pytest.raises(ValueError, match="equal, non-empty"):
        feature_matching_loss([torch.zeros(1)], [torch.zeros(1), torch.zeros(1)])
    with pytest.raises(ValueError, match="equal, non-empty"):
        feature_matching_loss([], [])


def _linear_losses(rec_direction, gan_direction):
    """rec = a . w and gan = b . w for a leaf w: their gradients at w are exactly a and b."""
    w = torch.tensor([0.5, -2.0], requires_grad=True)
    rec = (torch.tensor(rec_direction) * w).sum()
    gan = (torch.tensor(gan_direction) * w).sum()
    return rec, gan, w


def test_adaptive_weight_from_known_gradient_norms():
    """||(3, 4)|| = 5 over ||(0.3, 0.4)|| = 0.5 (+ 1e-4), detached, graphs kept for backward."""
    rec, gan, w = _linear_losses([3.0, 4.0], [0.3, 0.4])
    weight = adaptive_gan_weight(rec, gan, w)
    assert weight.item() == pytest.approx(5.0 / (0.5 + 1e-4), rel=1e-6)
    assert not weight.requires_grad
    (rec + weight * gan).backward()  # would fail had either graph been freed
    assert torch.allclose(w.grad, torch.tensor([3.0, 4.0]) + weight * torch.tensor([0.3, 0.4]))


def test_adaptive_weight_is_clamped():
    """A vanishing GAN gradient gives 5 / 1e-4 = 5e4, clamped to max_weight."""
    rec, gan, w = _linear_losses([3.0, 4.0], [0.0, 0.0])
    assert adaptive_gan_weight(rec, gan, w).item() == pytest.approx(1e4)
    assert adaptive_gan_weight(rec, gan, w, max_weight=7.0).item() == pytest.approx(7.0)
    rec, gan, w = _linear_losses([3.0, 4.0], [0.0, 1e-3])
    assert adaptive_gan_weight(rec, gan, w).item() == pytest.approx(5.0 / 1.1e-3, rel=1e-5)
    assert not math.isclose(5.0 / 1.1e-3, 1e4)


@pytest.mark.parametrize("step, start, factor", [
    (0, 10_000, 0.0), (9_999, 10_000, 0.0), (10_000, 10_000, 1.0), (25_000, 10_000, 1.0),
    (0, 0, 1.0),
])
def test_gan_factor(step, start, factor):
    """The GAN terms are off before the start step and on from it."""
    assert gan_factor(step, start) == factor


def test_floored_l1_is_l1_above_the_floor_and_a_hinge_at_it():
    from diffusion_core.losses import floored_l1
    x = torch.tensor([-1.0, -1.0, -1.0, 0.5])
    x_hat = torch.tensor([-1.5, -1.1, -0.9, 0.25])
    # At the floor only what lies above -1 - 0.2 = -1.2 counts: 0, 0.1, 0.3; above it, |0.25|.
    assert torch.isclose(floored_l1(x, x_hat, -1.0, 0.2), torch.tensor((0.1 + 0.3 + 0.25) / 4))
