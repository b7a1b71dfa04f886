"""Building blocks shared by the networks, built for 2D or 3D from `spatial_dims`.

Tests build tiny 2D cases from the same code that builds the paper's 3D networks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

Size = int | Sequence[int]


def conv_class(spatial_dims: int) -> type[nn.Module]:
    """`nn.Conv2d` or `nn.Conv3d`."""
    return _by_dims(spatial_dims, nn.Conv2d, nn.Conv3d)


def conv_transpose_class(spatial_dims: int) -> type[nn.Module]:
    """`nn.ConvTranspose2d` or `nn.ConvTranspose3d`."""
    return _by_dims(spatial_dims, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _by_dims(spatial_dims: int, two: type, three: type) -> type:
    if spatial_dims == 2:
        return two
    if spatial_dims == 3:
        return three
    raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims}")


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= `groups` that divides `channels`."""
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-6)


def same_padding(kernel_size: Sequence[int]) -> tuple[int, ...]:
    """Padding that keeps the size for odd kernels."""
    return tuple(k // 2 for k in kernel_size)


def as_tuple(value: Size, spatial_dims: int) -> tuple[int, ...]:
    """`value` repeated per axis, or checked to have one entry per axis."""
    if isinstance(value, int):
        return (value,) * spatial_dims
    value = tuple(int(v) for v in value)
    if len(value) != spatial_dims:
        raise ValueError(f"expected {spatial_dims} values, got {value}")
    return value


class ResnetBlock(nn.Module):
    """(GroupNorm, SiLU, conv) twice plus a skip; optional time scale-shift (DDPM U-Net).

    x: (N, C_in, *spatial) -> (N, C_out, *spatial). With `time_dim`, the second norm's output is
    modulated by (1 + scale) and shifted by shift, both projected from the time embedding
    (Ho et al.'s and the authors' "scale-shift" conditioning).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 kernel_size: Size = 3, norm_groups: int = 8, time_dim: int | None = None) -> None:
        super().__init__()
        conv = conv_class(spatial_dims)
        kernel = as_tuple(kernel_size, spatial_dims)
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = conv(in_channels, out_channels, kernel, padding=same_padding(kernel))
        self.norm2 = group_norm(out_channels, norm_groups)
        self.conv2 = conv(out_channels, out_channels, kernel, padding=same_padding(kernel))
        self.act = nn.SiLU()
        self.time_proj = (nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * out_channels))
                          if time_dim is not None else None)
        self.skip = (conv(in_channels, out_channels, 1) if in_channels != out_channels
                     else nn.Identity())

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, C_in, *spatial); time: (N, time_dim) when built with `time_dim`."""
        h = self.conv1(self.act(self.norm1(x)))
        h = self.norm2(h)
        if self.time_proj is not None:
            if time is None:
                raise ValueError("this block is time-conditioned: pass the time embedding")
            scale, shift = self.time_proj(time).chunk(2, dim=1)
            extra = (1,) * (h.ndim - 2)
            h = h * (1 + scale.view(*scale.shape, *extra)) + shift.view(*shift.shape, *extra)
        h = self.conv2(self.act(h))
        return h + self.skip(x)
