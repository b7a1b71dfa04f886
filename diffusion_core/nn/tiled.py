"""Decoding a latent in overlapping H x W tiles, exactly, for volumes too big for the device.

Naive tiles are inexact twice over: convolutions at a tile's edge see padding instead of their
neighbours, and GroupNorm normalises each tile by its own statistics. Here the decoder runs layer
by layer: every convolution is computed tile by tile on the compute device from an input slice
widened by a halo that covers its receptive field (only the exact interior is kept), and every
GroupNorm uses statistics gathered over the whole volume, as MAISI's split decode does. The full
activations live on `storage` (by default the CPU), so the GPU holds one tile's convolution at a
time; the result equals the whole-volume decode up to float rounding (tests: within 1e-4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.nn.blocks import ResnetBlock

HALO = 2  # input voxels beyond a tile: kernel 3 (padding 1) and kernel 4 / stride 2 need <= 2


def _bounds(length: int, pieces: int) -> list[tuple[int, int]]:
    edges = [round(i * length / pieces) for i in range(pieces + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def _stride(module: nn.Module, axis: int) -> int:
    stride = module.stride
    return stride[axis] if isinstance(stride, tuple) else stride


def _conv_tiled(module: nn.Module, x: torch.Tensor, tiles: tuple[int, int],
                device: torch.device) -> torch.Tensor:
    """A (transposed) convolution over H and W in tiles; exact interior of each widened tile."""
    transposed = isinstance(module, nn.ConvTranspose2d | nn.ConvTranspose3d)
    h_axis, w_axis = x.ndim - 2, x.ndim - 1
    # Output scale per axis: transposed stride-2 layers double, stride-2 convolutions halve.
    scales = []
    for axis in (h_axis, w_axis):
        stride = _stride(module, axis - 2)
        scales.append((stride, 1) if transposed else (1, stride))  # (up, down)
    out_h = x.shape[h_axis] * scales[0][0] // scales[0][1]
    out_w = x.shape[w_axis] * scales[1][0] // scales[1][1]
    out = None
    for h0, h1 in _bounds(out_h, tiles[0]):
        for w0, w1 in _bounds(out_w, tiles[1]):
            spans = []
            for (o0, o1), (up, down), n in (((h0, h1), scales[0], x.shape[h_axis]),
                                            ((w0, w1), scales[1], x.shape[w_axis])):
                i0 = max(0, o0 * down // up - HALO)
                i1 = min(n, -(-o1 * down // up) + HALO)
                spans.append((i0, i1, o0 - i0 * up // down, o1 - i0 * up // down))
            (hi0, hi1, ha, hb), (wi0, wi1, wa, wb) = spans
            piece = module(x[..., hi0:hi1, wi0:wi1].to(device))[..., ha:hb, wa:wb]
            if out is None:
                out = x.new_empty((*piece.shape[:-2], out_h, out_w))
            out[..., h0:h1, w0:w1] = piece.to(out.device)
    return out


def _group_norm_whole(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm with statistics over the whole volume (what nn.GroupNorm computes)."""
    n, c = x.shape[:2]
    grouped = x.reshape(n, norm.num_groups, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    y = ((grouped - mean) * torch.rsqrt(var + norm.eps)).reshape_as(x)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return y * norm.weight.to(x).view(shape) + norm.bias.to(x).view(shape)


def _resnet_tiled(block: ResnetBlock, x: torch.Tensor, tiles: tuple[int, int],
                  device: torch.device) -> torch.Tensor:
    h = _conv_tiled(block.conv1, F.silu(_group_norm_whole(block.norm1, x)), tiles, device)
    h = _conv_tiled(block.conv2, F.silu(_group_norm_whole(block.norm2, h)), tiles, device)
    skip = x if isinstance(block.skip, nn.Identity) else _conv_tiled(block.skip, x, tiles, device)
    return h + skip


def _run(module: nn.Module, x: torch.Tensor, tiles: tuple[int, int],
         device: torch.device) -> torch.Tensor:
    if isinstance(module, ResnetBlock):
        return _resnet_tiled(module, x, tiles, device)
    if isinstance(module, nn.Sequential):
        for child in module:
            x = _run(child, x, tiles, device)
        return x
    if isinstance(module, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.ConvTranspose3d):
        return _conv_tiled(module, x, tiles, device)
    raise TypeError(f"tiled decoding does not know {type(module).__name__}")


@torch.no_grad()
def tiled_decode(decoder: nn.Module, z_q: torch.Tensor, tiles: tuple[int, int] = (2, 2),
                 storage: torch.device | str = "cpu") -> torch.Tensor:
    """The decoder's output for z_q (N, C, *latent), computed in `tiles` (along H, W).

    The convolutions run where the decoder's weights are; activations are kept on `storage`.
    """
    device = next(decoder.parameters()).device
    h = _conv_tiled(decoder.conv_in, z_q.to(storage), tiles, device)
    for level in decoder.levels:
        h = _run(level, h, tiles, device)
    h = F.silu(_group_norm_whole(decoder.norm_out, h))
    return _conv_tiled(decoder.conv_out, h, tiles, device)
