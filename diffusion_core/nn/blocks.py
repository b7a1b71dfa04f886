"""Building blocks shared by the networks, built for 2D or 3D from `spatial_dims` so that tests
run tiny 2D cases of the same code that builds the paper's 3D networks.

The denoising U-Net's blocks as the paper gives them (Methods, "Diffusion Models", after Ho et
al.'s video diffusion): "only use convolutions on the high-resolution image plane (i.e. kernels
of size 3 x 3 x 1)" (our (1, 3, 3): `SliceConv` in `ResnetBlock`), "followed by a spatial
attention block on this high resolution plane (thus treating the depth dimension as an
extension to the batch size)" (`SpatialAttention`), then "a depth attention block, where the
high-resolution image plane axes are treated as batch axes" (`DepthAttention`, with a relative
position bias so that it knows the slices' order).

Sections, in that order: helpers, slice-wise convolutions, the residual block, attention
(softmax and linear, written out plainly here; faster routes to the same result, chosen by each
attention's `path`, live in `fast_attention`), and the spatial and depth attention blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from einops import rearrange
from torch import nn

from diffusion_core.nn import fast_attention

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


# --- slice-wise convolutions ----------------------------------------------------------------------

class _SliceWise:
    """Runs a 2D layer on every depth slice of (N, C, D, H, W): a (1, k, k) 3D layer, exactly.

    Folding D into the batch is a free view when the volume is in channels-last-3d memory (the
    U-Net keeps it so), and the CPU's Conv2d kernels are much faster than Conv3d with a depth-1
    kernel (benchmarks/bench_unet.py measures both).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # Weights in the activations' memory format: otherwise every call reorders them.
        self.weight.data = self.weight.data.contiguous(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C_in, D, H, W) -> (N, C_out, D, H', W'); D is never touched."""
        # n c d h w -> (n d) c h w and back, as plain views: this runs ~50 times per U-Net call.
        n, c, d, h, w = x.shape
        slices = super().forward(x.transpose(1, 2).reshape(n * d, c, h, w))
        return slices.view(n, d, *slices.shape[1:]).transpose(1, 2)


class SliceConv(_SliceWise, nn.Conv2d):
    """Conv3d with kernel (1, k, k) as a Conv2d over slices; weights (C_out, C_in, k, k)."""


class SliceConvTranspose(_SliceWise, nn.ConvTranspose2d):
    """ConvTranspose3d with kernel (1, k, k) computed as a ConvTranspose2d over slices."""


# --- residual block -------------------------------------------------------------------------------

class ResnetBlock(nn.Module):
    """(GroupNorm, SiLU, conv) twice plus a skip; optional time scale-shift (DDPM U-Net).

    x: (N, C_in, *spatial) -> (N, C_out, *spatial). With `time_dim`, the second norm's output is
    modulated by (1 + scale) and shifted by shift, both projected from the time embedding
    (Ho et al.'s and the authors' "scale-shift" conditioning). A 3D kernel of depth 1, such as
    the U-Net's (1, 3, 3), makes every convolution of the block slice-wise (`SliceConv`).
    """

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, *,
                 kernel_size: Size = 3, norm_groups: int = 8, time_dim: int | None = None) -> None:
        super().__init__()
        kernel = as_tuple(kernel_size, spatial_dims)
        conv = conv_class(spatial_dims)
        if spatial_dims == 3 and kernel[0] == 1:
            conv, kernel = SliceConv, kernel[1:]
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
            h = torch.addcmul(shift.view(*shift.shape, *extra), h,
                              1 + scale.view(*scale.shape, *extra))
        h = self.conv2(self.act(h))
        return h + self.skip(x)


# --- attention ------------------------------------------------------------------------------------

class HeadProjections(nn.Module):
    """What both attention kinds hold: a pre-LayerNorm, the fused q, k, v projection (no bias)
    and the output projection, for `heads` heads of `head_channels` over C-channel tokens.

    `path` (one of `fast_attention.ATTENTION_PATHS`) picks how the attention is computed:
    "explicit" is the formula written out in `forward` here; "auto" (the default) and "sdpa"
    are the faster routes of `fast_attention` to the same result.
    """

    def __init__(self, channels: int, heads: int = 8, head_channels: int = 32) -> None:
        super().__init__()
        self.heads, self.head_channels = heads, head_channels
        inner = heads * head_channels
        self.norm = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, channels)
        self.path = "auto"

    def project(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (B, L, C) -> q, k, v, each (B, heads, L, head_channels), after the norm."""
        qkv = self.to_qkv(self.norm(tokens))
        return rearrange(qkv, "b l (three h e) -> three b h l e", three=3, h=self.heads)

    def merge(self, out: torch.Tensor) -> torch.Tensor:
        """The heads' outputs (B, heads, L, head_channels) -> (B, L, C), projected out."""
        return self.to_out(rearrange(out, "b h l e -> b l (h e)"))


class Attention(HeadProjections):
    """Multi-head softmax attention with a pre-LayerNorm: tokens (B, L, C) -> (B, L, C).

    softmax(q k^T / sqrt(head_channels) + bias) v per head, with `bias` (heads, L, L) added to
    the scores (the depth attention's relative positions).
    """

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: (B, L, C); bias: (heads, L, L) or None -> (B, L, C)."""
        if self.path != "explicit":
            return fast_attention.softmax_attention(self, tokens, bias, self.path)
        q, k, v = self.project(tokens)  # (B, heads, L, e) each
        scores = q @ k.transpose(-2, -1) * self.head_channels ** -0.5  # (B, heads, L, L)
        if bias is not None:
            scores = scores + bias
        return self.merge(scores.softmax(dim=-1) @ v)


class LinearAttention(HeadProjections):
    """Linear attention (Shen et al., "efficient attention"), as the authors' per-slice attention.

    tokens (B, L, C) -> (B, L, C). q is normalised over each head's channels and k over the
    tokens, so q (k^T v) costs O(L) instead of O(L^2): 4096 tokens per 64x64 latent slice stay
    affordable.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L, C) -> (B, L, C)."""
        if self.path != "explicit":
            return fast_attention.linear_attention(self, tokens)
        q, k, v = self.project(tokens)  # (B, heads, L, e) each
        q = q.softmax(dim=-1) * self.head_channels ** -0.5  # over each head's channels
        k = k.softmax(dim=-2)  # over the tokens
        context = k.transpose(-2, -1) @ v  # (B, heads, e, e)
        return self.merge(q @ context)


# --- the U-Net's spatial and depth attention ----------------------------------------------------

class RelativePositionBias(nn.Module):
    """A learned bias per head for each depth offset j - i: (heads, D, D) added to the scores.

    One value per offset in [-max_distance, max_distance]; farther offsets share the edge value.
    Chosen over T5's log buckets because the paper's latents have at most 32 slices, where one
    value per offset is both exact and simple.
    """

    def __init__(self, heads: int, max_distance: int = 32) -> None:
        super().__init__()
        self.max_distance = max_distance
        self.values = nn.Parameter(torch.empty(heads, 2 * max_distance + 1))
        nn.init.trunc_normal_(self.values, std=0.02)

    def forward(self, length: int) -> torch.Tensor:
        """(heads, length, length): entry [h, i, j] is head h's bias for query i, key j."""
        position = torch.arange(length, device=self.values.device)
        offset = (position[None, :] - position[:, None]).clamp(-self.max_distance,
                                                               self.max_distance)
        return self.values[:, offset + self.max_distance]


class SpatialAttention(nn.Module):
    """Attention among the in-plane positions of each slice, added to its input.

    x: (N, C, H, W), or (N, C, D, H, W) with D treated as batch -> the same shape. `linear`
    picks `LinearAttention` (the authors' per-level choice) over softmax attention.
    """

    def __init__(self, channels: int, heads: int = 8, head_channels: int = 32, *,
                 linear: bool = False) -> None:
        super().__init__()
        kind = LinearAttention if linear else Attention
        self.attention = kind(channels, heads, head_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, [D,] H, W) -> same shape."""
        if x.ndim == 4:
            out = self.attention(rearrange(x, "n c h w -> n (h w) c"))
            return x + rearrange(out, "n (h w) c -> n c h w", h=x.shape[2])
        n, _, d, h, _ = x.shape
        out = self.attention(rearrange(x, "n c d h w -> (n d) (h w) c"))
        return x + rearrange(out, "(n d) (h w) c -> n c d h w", n=n, h=h)


class DepthAttention(nn.Module):
    """Attention along depth at every in-plane position, with a relative position bias.

    x: (N, C, D, H, W) -> same shape; (H, W) positions are treated as batch. Without the bias the
    block would not know slice order (it would commute with any permutation of D).
    """

    def __init__(self, channels: int, heads: int = 8, head_channels: int = 32, *,
                 max_distance: int = 32) -> None:
        super().__init__()
        self.attention = Attention(channels, heads, head_channels)
        self.position_bias = RelativePositionBias(heads, max_distance)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, D, H, W) -> same shape."""
        n, _, d, h, _ = x.shape
        tokens = rearrange(x, "n c d h w -> (n h w) d c")
        out = self.attention(tokens, self.position_bias(d))
        return x + rearrange(out, "(n h w) d c -> n c d h w", n=n, h=h)
