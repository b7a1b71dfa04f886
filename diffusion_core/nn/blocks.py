"""Building blocks shared by the networks, built for 2D or 3D from `spatial_dims`.

Tests build tiny 2D cases from the same code that builds the paper's 3D networks. Sections:
helpers, slice-wise convolutions, the residual block, attention (softmax through
`scaled_dot_product_attention`, written out for short sequences on the CPU; linear), and the
U-Net's spatial and depth attention blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

Size = int | Sequence[int]
# Values per intermediate that a group of attention inputs may hold (2 MB of float32): about
# size of a CPU core's L2 cache here, past which memory-bound steps (softmax) slow down 2-3x.
CACHE_ELEMENTS = 2 ** 19
# Softmax attention over at most this many keys is written out on the CPU ("auto" path): there
# PyTorch's fused kernel runs such short sequences (the U-Net's depth attention: 8 to 32 slices)
# on one thread, 2.7x slower than the written-out products on two (benchmarks/bench_unet.py).
CPU_SHORT_KEYS = 64
ATTENTION_PATHS = ("auto", "sdpa", "explicit")


def check_attention_path(path: str) -> str:
    """`path` if it is one of ATTENTION_PATHS; ValueError otherwise."""
    if path not in ATTENTION_PATHS:
        raise ValueError(f"attention path must be one of {ATTENTION_PATHS}, not {path!r}")
    return path


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

def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          bias: torch.Tensor | None = None, *, scale: float | None = None,
                          path: str = "auto") -> torch.Tensor:
    """softmax(scale q k^T + bias) v; q: (B, heads, L, d), k, v: (B, heads, S, d).

    bias: (heads, L, S), or (1, L, S) shared by the heads; `scale` defaults to 1 / sqrt(d).
    `path` (one of ATTENTION_PATHS): "sdpa" is the fused `scaled_dot_product_attention`;
    "explicit" the same maths written out (scores scaled and biased in place), the reference the
    tests and the benchmark compare with; "auto" is SDPA except on the CPU over at most
    CPU_SHORT_KEYS keys, where the written-out products are faster.
    """
    check_attention_path(path)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    short_on_cpu = q.device.type == "cpu" and k.shape[-2] <= CPU_SHORT_KEYS
    if path == "explicit" or (path == "auto" and short_on_cpu):
        scores = q @ k.transpose(-2, -1)  # (B, heads, L, S), a fresh tensor: safe to modify
        scores.mul_(scale)
        if bias is not None:
            scores.add_(bias)
        return scores.softmax(dim=-1) @ v
    # The fused CPU kernel takes a 4D mask only; a 3D one falls back to the slow math path.
    mask = None if bias is None else bias.expand(1, *bias.shape[-3:])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


class HeadProjections(nn.Module):
    """What both attention kinds hold: a pre-LayerNorm, the fused q, k, v projection (no bias)
    and the output projection, for `heads` heads of `head_channels` over C-channel tokens."""

    def __init__(self, channels: int, heads: int = 8, head_channels: int = 32) -> None:
        super().__init__()
        self.heads, self.head_channels = heads, head_channels
        inner = heads * head_channels
        self.norm = nn.LayerNorm(channels)
        self.to_qkv = nn.Linear(channels, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, channels)

    def head_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Wq, Wk, Wv per head: three (heads, head_channels, C)."""
        return rearrange(self.to_qkv.weight, "(three h e) c -> three h e c", three=3,
                         h=self.heads).unbind(0)

    def value_output(self) -> torch.Tensor:
        """Wv_h^T Wo_h^T per head, (heads, C, C): the value and output projections in one."""
        w_o = rearrange(self.to_out.weight, "c (h e) -> h e c", h=self.heads)
        return self.head_weights()[2].transpose(1, 2) @ w_o


class Attention(HeadProjections):
    """Multi-head softmax attention with a pre-LayerNorm: tokens (B, L, C) -> (B, L, C).

    `bias` (heads, L, L) is added to the scores. `path` picks how the attention proper is
    computed (`dot_product_attention`): "auto" (default), "sdpa" or the written-out "explicit"
    softmax(QK^T)V reference.

    Narrow tokens (C <= 2 head_channels: the outer levels, e.g. 16 to 64 channels against
    8 heads x 32) take an exactly equivalent route: the scores q_h k_h^T = x (Wq_h^T Wk_h) x^T
    and the projected outputs P_h v_h Wo_h^T = P_h x (Wv_h^T Wo_h^T) go through C x C products
    per head, so keys and values are the normalised tokens themselves, shared by every head,
    and are never projected (as fast or faster up to that width here; benchmarks/bench_unet.py).
    """

    def __init__(self, channels: int, heads: int = 8, head_channels: int = 32) -> None:
        super().__init__(channels, heads, head_channels)
        self.path = "auto"

    @property
    def narrow(self) -> bool:
        """Whether the tokens are narrow enough for the C x C route to be the cheaper one."""
        return self.to_qkv.in_features <= 2 * self.head_channels

    def forward(self, tokens: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """tokens: (B, L, C); bias: (heads, L, L) or None -> (B, L, C)."""
        x = self.norm(tokens)
        if self.narrow:
            return self._forward_narrow(x, bias)
        q, k, v = rearrange(self.to_qkv(x), "b l (three h e) -> three b h l e", three=3,
                            h=self.heads)
        out = self.attend(q, k, v, bias)  # (B, heads, L, head_channels)
        return self.to_out(rearrange(out, "b h l e -> b l (h e)"))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               bias: torch.Tensor | None) -> torch.Tensor:
        """softmax(q k^T / sqrt(head_channels) + bias) v over (B, heads, L, *)."""
        return dot_product_attention(q, k, v, bias, scale=self.head_channels ** -0.5,
                                     path=self.path)

    def _forward_narrow(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The C x C route on normalised tokens x (B, L, C).

        Keys and values are x for every head, so the heads are just more query rows: one
        attention per batch item with L * heads queries (ordered token-major, head-minor so
        that no copy reorders them) against the L tokens.
        """
        (n, length, channels), heads = x.shape, self.heads
        w_q, w_k, _ = self.head_weights()
        per_head = rearrange(w_q.transpose(1, 2) @ w_k, "h c f -> c (h f)")  # Wq_h^T Wk_h
        queries = (x @ per_head).view(n, 1, length * heads, channels)
        if bias is not None:
            bias = rearrange(bias, "h i j -> 1 (i h) j")
        out = self.attend(queries, x[:, None], x[:, None], bias)  # (B, 1, L * heads, C)
        value_output = rearrange(self.value_output(), "h c f -> (h c) f")
        return torch.addmm(self.to_out.bias, out.view(n * length, heads * channels),
                           value_output).view(n, length, channels)


class LinearAttention(HeadProjections):
    """Linear attention (Shen et al., "efficient attention"), as the authors' per-slice attention.

    tokens (B, L, C) -> (B, L, C). q is normalised over each head's channels and k over the
    tokens, so q (k^T v) costs O(L) instead of O(L^2): 4096 tokens per 64x64 latent slice stay
    affordable. Where there are many tokens for the width (C^2 <= 2 L head_channels, the outer
    levels) the value and output projections fold into the small context,
    out = q (k^T x Wv^T Wo^T) + b, so that neither v nor the heads' outputs are ever formed.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L, C) -> (B, L, C), a few batch items at a time.

        Each batch item is independent; its q and k hold L x heads x head_channels values
        (1 M for the 16 slices of a 16 x 16 latent at 8 x 32 heads: 4 MB, several times the
        CPU's L2 cache), so groups of items small enough for their intermediates to stay in
        cache run 2-3x faster than the whole batch at once (benchmarks/bench_unet.py).
        """
        per_item = tokens.shape[1] * self.heads * self.head_channels
        group = max(1, CACHE_ELEMENTS // per_item)
        if tokens.shape[0] <= group:
            return self._attend(tokens)
        return torch.cat([self._attend(part) for part in tokens.split(group)])

    def _attend(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, L, C) -> (B, L, C) for one group of batch items."""
        x = self.norm(tokens)
        (n, length, channels), heads, e = x.shape, self.heads, self.head_channels
        w_q, w_k, w_v = self.to_qkv.weight.chunk(3)
        q = rearrange(F.linear(x, w_q), "b l (h e) -> b l h e", h=heads)
        q = q.softmax(dim=-1)  # over each head's channels
        # Keys channel-major, (inner, B, L): their softmax over the tokens runs along memory.
        k = (w_k @ x.reshape(-1, channels).T).view(heads * e, n, length).softmax(dim=-1)
        k = k.transpose(0, 1)  # (B, inner, L)
        if channels ** 2 <= 2 * length * e:
            context = torch.bmm(k, x).view(n, heads, e, channels)  # k_h^T x
            fold = (context @ self.value_output()) * e ** -0.5  # k_h^T x Wv_h^T Wo_h^T
            return torch.baddbmm(self.to_out.bias, q.reshape(n, length, heads * e),
                                 fold.view(n, heads * e, channels))
        v = rearrange(F.linear(x, w_v), "b l (h e) -> b h l e", h=heads)
        context = (k.view(n, heads, e, length) @ v) * e ** -0.5  # k_h^T v_h: (B, heads, e, e)
        out = torch.einsum("blhe,bhef->blhf", q, context)
        return self.to_out(out.reshape(n, length, heads * e))


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
