"""The paper's 3D VQ-GAN: Encoder -> Codebook -> Decoder (Esser et al., made 3D as Ge et al.).

The encoder halves an axis per level until that axis reaches its compression factor (2, 4 or 8,
per axis: anisotropic factors such as depth 2 and in-plane 4 are allowed); channels double per
level from `base_channels`. The decoder mirrors it with transposed convolutions and two residual
blocks per level. No attention and no output tanh, as the authors' public code builds it.

Contract for the latent DDPM: `encode(x) -> z` (unquantised), `quantize(z) -> z_q`,
`decode(z_q) -> x`, and `codebook.range()` for the latent min-max normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from diffusion_core.nn.blocks import (
    ResnetBlock,
    conv_class,
    conv_transpose_class,
    group_norm,
)
from diffusion_core.nn.codebook import Codebook, Quantized
from diffusion_core.nn.config import VQGANConfig

__all__ = ["VQGAN", "VQGANConfig", "Encoder", "Decoder", "VQGANOutput"]

def _down_conv(config: VQGANConfig, level: int, in_ch: int, out_ch: int) -> nn.Module:
    """Kernel 4 / stride 2 / padding 1 halves an axis exactly; kernel 3 / stride 1 keeps one."""
    strides = config.strides(level)
    kernel = tuple(4 if s == 2 else 3 for s in strides)
    return conv_class(config.spatial_dims)(in_ch, out_ch, kernel, stride=strides, padding=1)


def _up_conv(config: VQGANConfig, level: int, in_ch: int, out_ch: int) -> nn.Module:
    """The transpose of `_down_conv` at the same level: doubles exactly the axes it halved."""
    strides = config.strides(level)
    kernel = tuple(4 if s == 2 else 3 for s in strides)
    return conv_transpose_class(config.spatial_dims)(in_ch, out_ch, kernel, stride=strides,
                                                     padding=1)


class Encoder(nn.Module):
    """x (N, C, *S) -> z (N, embedding_dim, *S / compression), unquantised."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        conv, groups = conv_class(config.spatial_dims), config.norm_groups
        self.conv_in = conv(config.in_channels, config.base_channels, 3, padding=1,
                            padding_mode="replicate")
        levels = []
        for level in range(config.levels):
            in_ch = config.base_channels if level == 0 else config.channels(level - 1)
            out_ch = config.channels(level)
            blocks = [ResnetBlock(config.spatial_dims, out_ch, out_ch, norm_groups=groups)
                      for _ in range(config.encoder_blocks)]
            levels.append(nn.Sequential(_down_conv(config, level, in_ch, out_ch), *blocks))
        self.levels = nn.ModuleList(levels)
        top = config.channels(config.levels - 1) if config.levels else config.base_channels
        self.norm_out = group_norm(top, groups)
        self.act = nn.SiLU()
        self.conv_out = conv(top, config.embedding_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, *S) -> (N, embedding_dim, *latent)."""
        h = self.conv_in(x)
        for level in self.levels:
            h = level(h)  # each axis still above its factor halves; channels double
        return self.conv_out(self.act(self.norm_out(h)))


class Decoder(nn.Module):
    """z_q (N, embedding_dim, *latent) -> x (N, C, *S)."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        conv, groups = conv_class(config.spatial_dims), config.norm_groups
        top = config.channels(config.levels - 1) if config.levels else config.base_channels
        self.conv_in = conv(config.embedding_dim, top, 3, padding=1)
        levels = []
        for level in reversed(range(config.levels)):
            in_ch = config.channels(level)
            out_ch = config.base_channels if level == 0 else config.channels(level - 1)
            blocks = [ResnetBlock(config.spatial_dims, in_ch, in_ch, norm_groups=groups)
                      for _ in range(config.decoder_blocks)]
            levels.append(nn.Sequential(*blocks, _up_conv(config, level, in_ch, out_ch)))
        self.levels = nn.ModuleList(levels)
        self.norm_out = group_norm(config.base_channels, groups)
        self.act = nn.SiLU()
        self.conv_out = conv(config.base_channels, config.in_channels, 3, padding=1)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        """z_q: (N, embedding_dim, *latent) -> (N, C, *S)."""
        h = self.conv_in(z_q)
        for level in self.levels:
            h = level(h)  # axes double back; channels halve
        return self.conv_out(self.act(self.norm_out(h)))


@dataclass
class VQGANOutput:
    """What one forward pass gives the training losses."""

    reconstruction: torch.Tensor  # (N, C, *S)
    quantized: Quantized


class VQGAN(nn.Module):
    """Encoder, codebook and decoder; `forward` is the training pass, the rest the contract."""

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.codebook = Codebook(config.num_codes, config.embedding_dim,
                                 decay=config.codebook_decay, commitment=config.commitment,
                                 restart_threshold=config.restart_threshold)
        self.decoder = Decoder(config)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != self.config.spatial_dims + 2 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (N, {self.config.in_channels}, "
                             f"{self.config.spatial_dims} spatial axes), got {tuple(x.shape)}")
        self.config.latent_shape(tuple(x.shape[2:]))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, *S) -> unquantised z (N, embedding_dim, *latent)."""
        self._check(x)
        return self.encoder(x)

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """z -> z_q: each latent vector snapped to its nearest code (no codebook update)."""
        return self.codebook.quantize(z)

    def decode(self, z_q: torch.Tensor, tiles: tuple[int, int] | None = None) -> torch.Tensor:
        """z_q (N, embedding_dim, *latent) -> x (N, C, *S), no lower than `output_floor`.

        With `tiles` (pieces along H and W), decode exactly in overlapping tiles with whole-volume
        GroupNorm statistics, keeping activations on the CPU (`nn.tiled`): for volumes whose
        decode does not fit on the GPU. Inference only.
        """
        if tiles is None:
            return self.floored(self.decoder(z_q))
        from diffusion_core.nn.tiled import tiled_decode
        return self.floored(tiled_decode(self.decoder, z_q, tiles).to(z_q.device))

    def floored(self, x: torch.Tensor) -> torch.Tensor:
        """x with every value below the config's `output_floor` set to it (x itself if None)."""
        floor = self.config.output_floor
        return x if floor is None else x.clamp_min(floor)

    def freeze_latent_space(self) -> None:
        """Fix the encoder and the codebook (no gradients, no EMA updates): train the decoder
        alone, so that the latents, and a DDPM trained on them, stay what they were."""
        self.encoder.requires_grad_(False)
        self.codebook.frozen = True

    @property
    def last_layer(self) -> torch.Tensor:
        """The decoder's output weight (VQGAN's adaptive GAN weight is computed on it)."""
        return self.decoder.conv_out.weight

    def forward(self, x: torch.Tensor) -> VQGANOutput:
        """Encode, quantise (updating the codebook in training mode) and decode.

        The reconstruction is the decoder's open output, below `output_floor` too: the floored
        loss needs it there (`floored` gives what `decode` would).
        """
        quantized = self.codebook(self.encode(x))
        return VQGANOutput(self.decoder(quantized.z_q), quantized)
