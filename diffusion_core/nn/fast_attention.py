"""Faster routes to exactly the attention that `blocks` writes out, chosen by `path`.

`blocks.Attention` and `blocks.LinearAttention` compute the paper's attention plainly (project
q, k and v, split the heads, attend, merge, project out). The same weights give the same result,
within float rounding, by cheaper routes; on the CPU, where a step of the U-Net is dominated by
its attention over short sequences and narrow tokens, they save about half of the time
(benchmarks/bench_unet.py):

- fused softmax attention (`scaled_dot_product_attention`), except over short sequences on the
  CPU (the depth attention's 8 to 32 slices), where the written-out products are faster;
- narrow tokens (C <= 2 head_channels): keys and values are the normalised tokens themselves,
  the heads' projections folded into C x C products (`narrow_softmax_attention`);
- linear attention: the value and output projections folded into the small context, and the
  batch taken in groups small enough for their intermediates to stay in the CPU's cache.

Paths (ATTENTION_PATHS, set per module by `UNet.attention_path`): "auto" (the default) takes the
routes above; "sdpa" the same routes with every softmax attention fused; "explicit" the plain
formula of `blocks`, the reference the tests and the benchmark compare the others with.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

ATTENTION_PATHS = ("auto", "sdpa", "explicit")
# Values per intermediate that a group of attention inputs may hold (2 MB of float32): about the
# size of a CPU core's L2 cache here, past which memory-bound steps (softmax) slow down 2-3x.
CACHE_ELEMENTS = 2 ** 19
# Softmax attention over at most this many keys is written out on the CPU ("auto" path): there
# PyTorch's fused kernel runs such short sequences (the U-Net's depth attention: 8 to 32 slices)
# on one thread, 2.7x slower than the written-out products on two (benchmarks/bench_unet.py).
CPU_SHORT_KEYS = 64


class HeadProjections(Protocol):
    """The weights every route reads: what `blocks.HeadProjections` holds."""

    heads: int
    head_channels: int
    norm: nn.LayerNorm
    to_qkv: nn.Linear
    to_out: nn.Linear


def check_attention_path(path: str) -> str:
    """`path` if it is one of ATTENTION_PATHS; ValueError otherwise."""
    if path not in ATTENTION_PATHS:
        raise ValueError(f"attention path must be one of {ATTENTION_PATHS}, not {path!r}")
    return path


# --- softmax attention ----------------------------------------------------------------------------

def dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                          bias: torch.Tensor | None = None, *, scale: float | None = None,
                          path: str = "auto") -> torch.Tensor:
    """softmax(scale q k^T + bias) v; q: (B, heads, L, d), k, v: (B, heads, S, d).

    bias: (heads, L, S), or (1, L, S) shared by the heads; `scale` defaults to 1 / sqrt(d).
    "sdpa" is the fused `scaled_dot_product_attention`; "explicit" the same maths written out
    (scores scaled and biased in place); "auto" is SDPA except on the CPU over at most
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


def is_narrow(att: HeadProjections) -> bool:
    """Whether the tokens are narrow enough (C <= 2 head_channels) for the C x C route to pay."""
    return att.to_qkv.in_features <= 2 * att.head_channels


def softmax_attention(att: HeadProjections, tokens: torch.Tensor, bias: torch.Tensor | None,
                      path: str = "auto") -> torch.Tensor:
    """`blocks.Attention` by the fast routes: tokens (B, L, C), bias (heads, L, L) -> (B, L, C)."""
    x = att.norm(tokens)
    if is_narrow(att):
        return narrow_softmax_attention(att, x, bias, path)
    q, k, v = rearrange(att.to_qkv(x), "b l (three h e) -> three b h l e", three=3,
                        h=att.heads)
    out = dot_product_attention(q, k, v, bias, scale=att.head_channels ** -0.5, path=path)
    return att.to_out(rearrange(out, "b h l e -> b l (h e)"))


def narrow_softmax_attention(att: HeadProjections, x: torch.Tensor, bias: torch.Tensor | None,
                             path: str = "auto") -> torch.Tensor:
    """Softmax attention on normalised narrow tokens x (B, L, C) through C x C products per head.

    The scores q_h k_h^T = x (Wq_h^T Wk_h) x^T and the projected outputs
    P_h v_h Wo_h^T = P_h x (Wv_h^T Wo_h^T): keys and values are x for every head, never
    projected, so the heads are just more query rows, one attention per batch item with
    L * heads queries (token-major, head-minor, so that no copy reorders them) against the L
    tokens. As fast or faster up to C = 2 head_channels here (the outer levels: 16 to 64
    channels against 8 heads x 32).
    """
    (n, length, channels), heads = x.shape, att.heads
    w_q, w_k, _ = head_weights(att)
    per_head = rearrange(w_q.transpose(1, 2) @ w_k, "h c f -> c (h f)")  # Wq_h^T Wk_h
    queries = (x @ per_head).view(n, 1, length * heads, channels)
    if bias is not None:
        bias = rearrange(bias, "h i j -> 1 (i h) j")
    out = dot_product_attention(queries, x[:, None], x[:, None], bias,
                                scale=att.head_channels ** -0.5, path=path)  # (B, 1, L h, C)
    value_out = rearrange(value_output(att), "h c f -> (h c) f")
    return torch.addmm(att.to_out.bias, out.view(n * length, heads * channels),
                       value_out).view(n, length, channels)


def head_weights(att: HeadProjections) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wq, Wk, Wv per head: three (heads, head_channels, C)."""
    return rearrange(att.to_qkv.weight, "(three h e) c -> three h e c", three=3,
                     h=att.heads).unbind(0)


def value_output(att: HeadProjections) -> torch.Tensor:
    """Wv_h^T Wo_h^T per head, (heads, C, C): the value and output projections in one."""
    w_o = rearrange(att.to_out.weight, "c (h e) -> h e c", h=att.heads)
    return head_weights(att)[2].transpose(1, 2) @ w_o


# --- linear attention -----------------------------------------------------------------------------

def linear_attention(att: HeadProjections, tokens: torch.Tensor) -> torch.Tensor:
    """`blocks.LinearAttention` by the fast routes: tokens (B, L, C) -> (B, L, C).

    Each batch item is independent; its q and k hold L x heads x head_channels values (1 M for
    the 16 slices of a 16 x 16 latent at 8 x 32 heads: 4 MB, several times the CPU's L2 cache),
    so groups of items small enough for their intermediates to stay in cache run 2-3x faster
    than the whole batch at once.
    """
    per_item = tokens.shape[1] * att.heads * att.head_channels
    group = max(1, CACHE_ELEMENTS // per_item)
    if tokens.shape[0] <= group:
        return linear_attention_group(att, tokens)
    return torch.cat([linear_attention_group(att, part) for part in tokens.split(group)])


def linear_attention_group(att: HeadProjections, tokens: torch.Tensor) -> torch.Tensor:
    """Linear attention over one group of batch items: tokens (B, L, C) -> (B, L, C).

    Where there are many tokens for the width (C^2 <= 2 L head_channels, the outer levels) the
    value and output projections fold into the small context, out = q (k^T x Wv^T Wo^T) + b,
    so that neither v nor the heads' outputs are ever formed.
    """
    x = att.norm(tokens)
    (n, length, channels), heads, e = x.shape, att.heads, att.head_channels
    w_q, w_k, w_v = att.to_qkv.weight.chunk(3)
    q = rearrange(F.linear(x, w_q), "b l (h e) -> b l h e", h=heads)
    q = q.softmax(dim=-1)  # over each head's channels
    # Keys channel-major, (inner, B, L): their softmax over the tokens runs along memory.
    k = (w_k @ x.reshape(-1, channels).T).view(heads * e, n, length).softmax(dim=-1)
    k = k.transpose(0, 1)  # (B, inner, L)
    if channels ** 2 <= 2 * length * e:
        context = torch.bmm(k, x).view(n, heads, e, channels)  # k_h^T x
        fold = (context @ value_output(att)) * e ** -0.5  # k_h^T x Wv_h^T Wo_h^T
        return torch.baddbmm(att.to_out.bias, q.reshape(n, length, heads * e),
                             fold.view(n, heads * e, channels))
    v = rearrange(F.linear(x, w_v), "b l (h e) -> b h l e", h=heads)
    context = (k.view(n, heads, e, length) @ v) * e ** -0.5  # k_h^T v_h: (B, heads, e, e)
    out = torch.einsum("blhe,bhef->blhf", q, context)
    return att.to_out(out.reshape(n, length, heads * e))
