"""The denoising U-Net: shapes, depth kept, slice order, time, config, the paper's sizes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from diffusion_core.nn.blocks import RelativePositionBias
from diffusion_core.nn.config import UNetConfig
from diffusion_core.nn.unet import UNet

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(channels=3, base_channels=8, heads=2, head_channels=8, norm_groups=4)

CASES = [
    # (config overrides, latent (C, D, H, W))
    (dict(channel_multipliers=(1, 2)), (3, 5, 4, 6)),
    (dict(channel_multipliers=(1, 2, 4)), (3, 3, 8, 8)),
    (dict(channel_multipliers=(1, 2, 4), attention_levels=(2,)), (3, 1, 4, 12)),
    (dict(channel_multipliers=(1, 1, 2), attention_levels=(), level_attention="full"),
     (3, 7, 8, 4)),
    (dict(channel_multipliers=(1, 2), level_attention="full", blocks_per_level=1),
     (3, 2, 6, 6)),
]


def _tiny(**overrides) -> UNet:
    return UNet(UNetConfig(**{**TINY, **overrides}))


@pytest.mark.parametrize(("overrides", "latent"), CASES)
def test_output_has_the_input_shape(overrides, latent):
    torch.manual_seed(0)
    model = _tiny(**overrides)
    x = torch.randn(2, *latent)
    out = model(x, torch.tensor([3, 17]))
    assert out.shape == x.shape and out.is_contiguous()
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("overrides", "latent"), CASES[:3])
def test_depth_is_never_resized_and_the_plane_halves_per_level(overrides, latent):
    model = _tiny(**overrides)
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(name: str, out: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        for tensor in out if isinstance(out, tuple) else (out,):  # a down level gives two
            seen.append((name, tuple(tensor.shape)))

    hooks = [module.register_forward_hook(lambda m, i, out, name=name: record(name, out))
             for name, module in model.named_modules() if name]
    model(torch.randn(1, *latent), torch.tensor([1]))
    for hook in hooks:
        hook.remove()
    volumes = [(name, shape) for name, shape in seen if len(shape) == 5]
    assert len(volumes) > 20
    assert all(shape[2] == latent[1] for _, shape in volumes), volumes
    planes = {shape[3:] for _, shape in volumes}
    levels = len(overrides["channel_multipliers"])
    assert planes == {(latent[2] // 2 ** k, latent[3] // 2 ** k) for k in range(levels)}


def _permutation_gap(model: UNet, x: torch.Tensor, order: torch.Tensor) -> float:
    """max |U(x[:, :, order]) - U(x)[:, :, order]|: zero for a network blind to slice order."""
    t = torch.tensor([5])
    with torch.no_grad():
        return float((model(x[:, :, order], t) - model(x, t)[:, :, order]).abs().max())


def test_slice_order_reaches_the_network_only_through_the_relative_position_bias():
    # Every other layer treats slices alike (in-plane convolutions, per-slice attention,
    # GroupNorm over all of D), so without the bias permuting D would commute with the U-Net.
    torch.manual_seed(1)
    model = _tiny(channel_multipliers=(1, 2))
    x, order = torch.randn(1, 3, 6, 4, 4), torch.tensor([3, 0, 4, 1, 5, 2])
    biases = [m for m in model.modules() if isinstance(m, RelativePositionBias)]
    assert len(biases) == 5  # a depth attention per level, down and up, and in the middle
    for bias in biases:
        nn.init.normal_(bias.values)
    assert _permutation_gap(model, x, order) > 1e-3
    for bias in biases:
        nn.init.zeros_(bias.values)
    assert _permutation_gap(model, x, order) < 1e-5


@pytest.mark.parametrize("level_attention", ["linear", "full"])
def test_sdpa_and_the_explicit_softmax_reference_agree_within_1e_5(level_attention):
    torch.manual_seed(2)
    model = _tiny(channel_multipliers=(1, 2, 4), level_attention=level_attention,
                  base_channels=16)  # widths 16, 32, 64 against 8-channel heads: both routes
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([0, 299])
    with torch.no_grad():
        auto = model(x, t)
        fused = model.attention_path("sdpa")(x, t)
        reference = model.attention_path("explicit")(x, t)
        back = model.attention_path("auto")(x, t)
    assert float((fused - reference).abs().max()) < 1e-5
    assert float((auto - reference).abs().max()) < 1e-5
    assert torch.equal(back, auto)
    with pytest.raises(ValueError, match="attention path"):
        model.attention_path("flash")


def test_the_timestep_conditions_the_output():
    torch.manual_seed(3)
    model = _tiny(channel_multipliers=(1, 2))
    x = torch.randn(2, 3, 2, 4, 4)
    with torch.no_grad():
        early, late = model(x, torch.tensor([1, 1])), model(x, torch.tensor([250, 250]))
        fractional = model(x, torch.tensor([1.0, 250.0]))
        scalar = model(x, 250)
    assert float((early - late).abs().mean()) > 1e-3
    assert torch.allclose(fractional[0], early[0]) and torch.allclose(fractional[1], late[1])
    assert torch.allclose(scalar, late)


def test_a_training_step_reaches_every_parameter():
    torch.manual_seed(4)
    model = _tiny(channel_multipliers=(1, 2), level_attention="linear")
    x = torch.randn(2, 3, 3, 4, 4)
    (model(x, torch.tensor([2, 9])) - x).abs().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_bad_input_is_one_clear_sentence():
    model = _tiny(channel_multipliers=(1, 2, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 3, 2, 6, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match=r"\(3, D, H, W\)"):
        model(torch.randn(1, 4, 2, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="batch of latents"):
        model(torch.randn(3, 2, 8, 8), torch.tensor([1]))
    with pytest.raises(ValueError, match="one timestep per latent"):
        model(torch.randn(2, 3, 2, 8, 8), torch.tensor([1, 2, 3]))


def test_config_json_round_trip_and_refusals():
    config = UNetConfig(channels=4, base_channels=32, channel_multipliers=(1, 2, 4),
                        attention_levels=(2, 1), level_attention="full")
    assert config.attention_levels == (1, 2)
    assert UNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert UNetConfig().attention_levels == (0, 1, 2, 3)  # the authors': every level
    with pytest.raises(ValueError, match="unknown U-Net settings"):
        UNetConfig.from_dict({**config.to_dict(), "dropout": 0.1})
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(channel_multipliers=(1, 2), attention_levels=(2,))
    with pytest.raises(ValueError, match="level_attention"):
        UNetConfig(level_attention="sparse")
    with pytest.raises(ValueError, match="even"):
        UNetConfig(base_channels=15)


# --- parameter counts written from the architecture description, apart from the code ---------

def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out  # in-plane k x k kernels, with bias


def _resnet(c_in: int, c_out: int, time: int) -> int:
    skip = _conv(c_in, c_out, 1) if c_in != c_out else 0
    return (2 * c_in + _conv(c_in, c_out, 3) + 2 * c_out + _conv(c_out, c_out, 3)
            + time * 2 * c_out + 2 * c_out + skip)


def _attention(c: int, heads: int, head: int) -> int:
    inner = heads * head
    return 2 * c + 3 * c * inner + inner * c + c  # LayerNorm, fused qkv, out projection


def _space_then_depth(c: int, heads: int, head: int, distance: int) -> int:
    return 2 * _attention(c, heads, head) + heads * (2 * distance + 1)


def _expected_parameters(config: UNetConfig) -> int:
    base, time = config.base_channels, config.time_multiplier * config.base_channels
    widths = [base * m for m in config.channel_multipliers]
    blocks, last = config.blocks_per_level, len(widths) - 1
    attention = _space_then_depth(widths[-1], config.heads, config.head_channels,
                                  config.max_depth_distance)
    total = base * time + time + time * time + time  # time MLP: Linear, GELU, Linear
    total += _conv(config.channels, base, 3)
    for level, width in enumerate(widths):  # down path
        c_in = widths[level - 1] if level else base
        total += _resnet(c_in, width, time) + (blocks - 1) * _resnet(width, width, time)
        if level in config.attention_levels:
            total += _space_then_depth(width, config.heads, config.head_channels,
                                       config.max_depth_distance)
        total += _conv(width, width, 4) if level < last else 0
    total += 2 * _resnet(widths[-1], widths[-1], time) + attention  # middle
    for level, width in enumerate(widths):  # up path (order does not change a sum)
        c_out = widths[level - 1] if level else base
        total += _resnet(2 * width, c_out, time) + (blocks - 1) * _resnet(c_out, c_out, time)
        if level in config.attention_levels:
            total += _space_then_depth(c_out, config.heads, config.head_channels,
                                       config.max_depth_distance)
        total += _conv(c_out, c_out, 4) if level > 0 else 0  # transposed: same count
    return total + _resnet(2 * base, base, time) + _conv(base, config.channels, 1)


@pytest.mark.parametrize(("name", "width", "latent"), [
    ("mrnet", 64, (8, 8, 64, 64)),
    ("duke", 64, (8, 8, 64, 64)),
    ("adni", 32, (8, 32, 32, 32)),
    ("lidc", 32, (8, 32, 32, 32)),
])
def test_the_papers_four_latents_on_the_meta_device(name, width, latent):
    config = UNetConfig(channels=8, base_channels=width)
    with torch.device("meta"):
        model = UNet(config)
        out = model(torch.empty(2, *latent), torch.zeros(2))
    assert tuple(out.shape) == (2, *latent)
    count = sum(p.numel() for p in model.parameters())
    print(f"{name}: width {width}, latent {latent}: {count / 1e6:.2f} M parameters")
    assert count == _expected_parameters(config)


def test_the_authors_parameter_counts():
    """The authors' published U-Net has 3.0 M parameters at width 16 and 35.7 M at width 64."""
    for width, authors in ((16, 3.0e6), (64, 35.7e6)):
        with torch.device("meta"):
            count = sum(p.numel() for p in UNet(UNetConfig(base_channels=width)).parameters())
        print(f"width {width}: {count / 1e6:.3f} M parameters (authors: {authors / 1e6} M)")
        assert abs(count - authors) / authors < 0.15
