"""The latent DDPM's denoising U-Net: in-plane convolutions, spatial then depth attention.

The paper (Methods, "Diffusion Models"), after Ho et al.'s video diffusion: convolutions only on
the high-resolution image plane (kernels 3 x 3 x 1, our (1, 3, 3)); each level's residual blocks
are followed by a spatial attention over every slice (depth treated as batch) and a depth
attention over every in-plane position (the plane treated as batch). Down- and up-sampling halve
and double H and W only; the depth axis is never resized. The layout is that of the authors'
published code: widths base * (1, 2, 4, 8), two residual blocks per level with GroupNorm, SiLU
and time scale-shift, 8 heads of 32 channels, a middle block with full spatial and depth
attention, a sinusoidal time embedding and an MLP to 4x the base width (3.0 M parameters at
width 16).

Choices the paper leaves open: the levels' spatial attention is linear attention by default,
as in the authors' code (`UNetConfig.level_attention`); depth attention learns one bias per
relative offset (`RelativePositionBias`, where their code uses T5 buckets and a rotary
embedding); every convolution is (1, 3, 3), where their first is (1, 7, 7) and followed by an
extra depth attention.

Activations are kept in channels-last-3d memory: folding depth into the batch for the slice-wise
convolutions and gathering a slice's tokens for spatial attention are then free views.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffusion_core.nn.blocks import (
    DepthAttention,
    HeadProjections,
    ResnetBlock,
    SliceConv,
    SliceConvTranspose,
    SpatialAttention,
)
from diffusion_core.nn.config import UNetConfig
from diffusion_core.nn.fast_attention import check_attention_path

__all__ = ["UNet", "UNetConfig", "TimeEmbedding"]

IN_PLANE = (1, 3, 3)  # every convolution of the U-Net: the paper's 3 x 3 x 1 in (H, W, D) order


# --- small modules --------------------------------------------------------------------------------

class TimeEmbedding(nn.Module):
    """t (N,) -> (N, out_channels): sinusoidal features of t, then Linear, GELU, Linear."""

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        half = channels // 2
        # Transformer position encoding over timesteps (Ho et al. 2020, appendix B).
        frequencies = torch.exp(-math.log(10_000.0) * torch.arange(half) / max(half - 1, 1))
        self.register_buffer("frequencies", frequencies, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(channels, out_channels), nn.GELU(),
                                 nn.Linear(out_channels, out_channels))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (N,) integer or fractional timesteps -> (N, out_channels)."""
        angles = t.to(self.frequencies.dtype)[:, None] * self.frequencies[None, :]
        return self.mlp(torch.cat([angles.sin(), angles.cos()], dim=1))


def downsample(channels: int) -> nn.Module:
    """Halves H and W (kernel (1, 4, 4), stride (1, 2, 2)); depth untouched."""
    return SliceConv(channels, channels, 4, stride=2, padding=1)


def upsample(channels: int) -> nn.Module:
    """Doubles H and W (the transpose of `downsample`); depth untouched."""
    return SliceConvTranspose(channels, channels, 4, stride=2, padding=1)


class SpaceThenDepth(nn.Module):
    """Spatial attention over each slice, then depth attention over each in-plane position."""

    def __init__(self, config: UNetConfig, channels: int, *, linear: bool) -> None:
        super().__init__()
        self.spatial = SpatialAttention(channels, config.heads, config.head_channels,
                                        linear=linear)
        self.depth = DepthAttention(channels, config.heads, config.head_channels,
                                    max_distance=config.max_depth_distance)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, D, H, W) -> same shape."""
        return self.depth(self.spatial(x))


# --- levels ---------------------------------------------------------------------------------------

def _resnet(config: UNetConfig, in_channels: int, out_channels: int) -> ResnetBlock:
    return ResnetBlock(3, in_channels, out_channels, kernel_size=IN_PLANE,
                       norm_groups=config.norm_groups,
                       time_dim=config.time_multiplier * config.base_channels)


def _attention(config: UNetConfig, level: int, channels: int) -> nn.Module:
    if level not in config.attention_levels:
        return nn.Identity()
    return SpaceThenDepth(config, channels, linear=config.level_attention == "linear")


class DownLevel(nn.Module):
    """Residual blocks, attention, then in-plane halving (not at the last level).

    Returns the level's output before halving (the skip to its up level) and after.
    """

    def __init__(self, config: UNetConfig, level: int) -> None:
        super().__init__()
        in_channels = config.width(level - 1) if level else config.base_channels
        width = config.width(level)
        self.blocks = nn.ModuleList(
            _resnet(config, in_channels if i == 0 else width, width)
            for i in range(config.blocks_per_level))
        self.attention = _attention(config, level, width)
        self.down = downsample(width) if level < config.levels - 1 else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (N, C_in, D, H, W) -> skip (N, width, D, H, W), next (N, width, D, H/2, W/2)."""
        for block in self.blocks:
            x = block(x, time)
        x = self.attention(x)
        return x, self.down(x)


class MiddleBlock(nn.Module):
    """Residual block, full spatial attention, depth attention, residual block (lowest level)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        width = config.width(config.levels - 1)
        self.block1 = _resnet(config, width, width)
        self.attention = SpaceThenDepth(config, width, linear=False)
        self.block2 = _resnet(config, width, width)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """x: (N, C, D, h, w) -> same shape."""
        return self.block2(self.attention(self.block1(x, time)), time)


class UpLevel(nn.Module):
    """The down level's skip concatenated, residual blocks, attention, in-plane doubling."""

    def __init__(self, config: UNetConfig, level: int) -> None:
        super().__init__()
        width = config.width(level)
        out_channels = config.width(level - 1) if level else config.base_channels
        self.blocks = nn.ModuleList(
            _resnet(config, 2 * width if i == 0 else out_channels, out_channels)
            for i in range(config.blocks_per_level))
        self.attention = _attention(config, level, out_channels)
        self.up = upsample(out_channels) if level > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        """x, skip: (N, width, D, h, w) -> (N, width of level - 1, D, 2h, 2w)."""
        x = torch.cat([x, skip], dim=1)  # (N, 2 * width, D, h, w)
        for block in self.blocks:
            x = block(x, time)
        return self.up(self.attention(x))


# --- the model ------------------------------------------------------------------------------------

class UNet(nn.Module):
    """Predicts the noise in a latent: (x_t (N, C, D, H, W), t (N,)) -> (N, C, D, H, W)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base = config.base_channels
        self.time_embedding = TimeEmbedding(base, config.time_multiplier * base)
        self.conv_in = SliceConv(config.channels, base, IN_PLANE[1:], padding=1)
        self.down = nn.ModuleList(DownLevel(config, level) for level in range(config.levels))
        self.middle = MiddleBlock(config)
        self.up = nn.ModuleList(UpLevel(config, level)
                                for level in reversed(range(config.levels)))
        self.block_out = _resnet(config, 2 * base, base)
        self.conv_out = SliceConv(base, config.channels, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x: (N, C, D, H, W) noisy latents; t: (N,) timesteps -> the predicted noise, x's shape."""
        t = self._check(x, t)
        time = self.time_embedding(t)  # (N, time_multiplier * base)
        x = x.contiguous(memory_format=torch.channels_last_3d)
        h = first = self.conv_in(x)  # (N, base, D, H, W)
        skips = []
        for level in self.down:
            skip, h = level(h, time)  # H and W halve after every level but the last
            skips.append(skip)
        h = self.middle(h, time)  # (N, width(levels - 1), D, H / 2^(levels-1), W / ...)
        for level in self.up:
            h = level(h, skips.pop(), time)  # H and W double after every level but level 0
        h = self.block_out(torch.cat([h, first], dim=1), time)  # (N, base, D, H, W)
        return self.conv_out(h).contiguous()

    def _check(self, x: torch.Tensor, t: torch.Tensor | int | float) -> torch.Tensor:
        """ValueError for a latent this U-Net cannot take; t as an (N,) tensor."""
        if x.ndim != 5:
            raise ValueError(f"the U-Net takes a batch of latents (N, C, D, H, W), "
                             f"not a tensor of shape {tuple(x.shape)}")
        self.config.check_shape(tuple(x.shape[1:]))
        t = torch.as_tensor(t, device=x.device)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must hold one timestep per latent ({x.shape[0]}), "
                             f"not shape {tuple(t.shape)}")
        return t

    def attention_path(self, path: str) -> UNet:
        """Compute every attention by `path`: "auto" (the default) or "sdpa", the fast routes of
        `fast_attention`, or "explicit", the plain formula of `blocks`, their reference."""
        check_attention_path(path)
        for module in self.modules():
            if isinstance(module, HeadProjections):
                module.path = path
        return self
