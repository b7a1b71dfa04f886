"""The patch discriminator, 2D and 3D from one class: shapes, features, gradients, size."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.nn.discriminators import PatchDiscriminator


def _side(length: int, kernel: int, stride: int) -> int:
    """Output length of a conv with padding ceil((kernel - 1) / 2)."""
    padding = (kernel - 1 + 1) // 2
    return (length + 2 * padding - kernel) // stride + 1


def _expected(shape: tuple[int, ...], channels: int, num_layers: int, kernel: int):
    """(logit shape, feature channels, feature spatial shapes) by pix2pixHD's recipe."""
    spatial = list(shape[2:])
    widths, sizes = [], []
    width = channels
    for stride in [2] * num_layers + [1]:
        spatial = [_side(n, kernel, stride) for n in spatial]
        widths.append(width)
        sizes.append(tuple(spatial))
        width = min(2 * width, 8 * channels)
    logits = (shape[0], 1, *(_side(n, kernel, 1) for n in spatial))
    return logits, widths, sizes


# (spatial_dims, in_channels, channels, num_layers, kernel_size, norm, input shape)
CONFIGS = [
    (2, 1, 4, 3, 4, "group", (2, 1, 32, 32)),
    (2, 2, 2, 1, 4, "batch", (3, 2, 16, 24)),
    (2, 1, 1, 5, 3, "group", (1, 1, 40, 40)),  # widths 1, 2, 4, 8, 8, 8: capped at 8x
    (3, 1, 4, 3, 4, "group", (2, 1, 8, 16, 16)),
    (3, 1, 2, 2, 4, "batch", (2, 1, 6, 12, 10)),
    (3, 3, 2, 1, 3, "group", (1, 3, 5, 9, 7)),
]


@pytest.mark.parametrize("dims, c_in, channels, layers, kernel, norm, shape", CONFIGS)
def test_logit_and_feature_shapes(dims, c_in, channels, layers, kernel, norm, shape):
    """Logits (N, 1, *patches) and num_layers + 1 features with the recipe's widths and sizes."""
    torch.manual_seed(0)
    disc = PatchDiscriminator(dims, in_channels=c_in, channels=channels, num_layers=layers,
                              kernel_size=kernel, norm=norm)
    logits, features = disc(torch.randn(shape))
    expected_logits, widths, sizes = _expected(shape, channels, layers, kernel)
    assert tuple(logits.shape) == expected_logits
    assert len(features) == layers + 1
    assert [f.shape[1] for f in features] == widths
    assert [tuple(f.shape[2:]) for f in features] == sizes


def test_docstring_example_2d_64():
    """The docstring's worked example: 64x64 with 3 layers gives 33, 17, 9, 10 and 11x11 logits."""
    logits, features = PatchDiscriminator(2, channels=2)(torch.randn(1, 1, 64, 64))
    assert [f.shape[-1] for f in features] == [33, 17, 9, 10]
    assert tuple(logits.shape) == (1, 1, 11, 11)


@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_input_and_every_parameter(dims):
    """A loss on the logits and the features back-propagates everywhere."""
    torch.manual_seed(0)
    disc = PatchDiscriminator(dims, channels=4, num_layers=2)
    x = torch.randn((2, 1) + (12,) * dims, requires_grad=True)
    logits, features = disc(x)
    (logits.mean() + sum(f.abs().mean() for f in features)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, parameter in disc.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def _authors_parameter_count(k: int = 4, c_in: int = 1, f: int = 64) -> int:
    """Hand count of the authors' 3D net: conv k^3*cin*cout + cout; norm 2*c (scale, shift)."""
    convs = [(c_in, f), (f, 2 * f), (2 * f, 4 * f), (4 * f, 8 * f), (8 * f, 1)]
    normed = [2 * f, 4 * f, 8 * f]
    return sum(k**3 * a * b + b for a, b in convs) + sum(2 * c for c in normed)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_parameter_count_of_the_authors_3d_config(norm):
    """64 filters, 3 layers, kernel 4: 11,049,665 parameters whichever norm is chosen."""
    assert _authors_parameter_count() == 11_049_665
    with torch.device("meta"):
        disc = PatchDiscriminator(3, in_channels=1, channels=64, num_layers=3, kernel_size=4,
                                  norm=norm)
    assert sum(p.numel() for p in disc.parameters()) == _authors_parameter_count()


def test_group_norm_logits_do_not_depend_on_the_batch():
    """GroupNorm (the default) scores a sample the same alone or in a batch; BatchNorm does not."""
    torch.manual_seed(0)
    x = torch.randn(2, 1, 8, 8, 8)
    group = PatchDiscriminator(3, channels=4, num_layers=2).train()
    # torch.allclose, not torch.testing: the latter's first call imports for over a second.
    assert torch.allclose(group(x[:1])[0], group(x)[0][:1], atol=1e-6)
    batch = PatchDiscriminator(3, channels=4, num_layers=2, norm="batch").train()
    assert not torch.allclose(batch(x[:1])[0], batch(x)[0][:1])


@pytest.mark.parametrize("kwargs, message", [
    ({"spatial_dims": 1}, "spatial_dims must be 2 or 3"),
    ({"spatial_dims": 2, "norm": "instance"}, "norm must be one of group, batch"),
    ({"spatial_dims": 3, "num_layers": 0}, "must be >= 1"),
])
def test_bad_arguments_are_refused(kwargs, message):
    """Each impossible configuration is one ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=message):
        PatchDiscriminator(**kwargs)


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (1, 2, 8, 16, 16), (8, 16, 16)])
def test_wrong_input_shape_is_refused(shape):
    """A 3D discriminator given 2D slices, the wrong channels or no batch axis says so."""
    disc = PatchDiscriminator(3, channels=2, num_layers=1)
    with pytest.raises(ValueError, match=r"expects \(N, 1, D, H, W\)"):
        disc(torch.zeros(shape))
