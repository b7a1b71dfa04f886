"""Constructor arguments of the networks as frozen dataclasses; torch-free, so presets hold them.

Each config is saved as JSON beside its weights, and a model is rebuilt from it alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from diffusion_core.records import dataclass_fields

ALLOWED_FACTORS = (1, 2, 4, 8)


@dataclass(frozen=True)
class VQGANConfig:
    """Constructor arguments of a VQGAN; saved as JSON beside its weights."""

    spatial_dims: int = 3
    in_channels: int = 1
    base_channels: int = 16
    compression: tuple[int, ...] = (4, 4, 4)  # per axis (D, H, W), each 1, 2, 4 or 8
    embedding_dim: int = 8
    num_codes: int = 16384
    encoder_blocks: int = 1  # residual blocks per encoder level (authors: 1)
    decoder_blocks: int = 2  # residual blocks per decoder level (authors: 2)
    norm_groups: int = 8
    codebook_decay: float = 0.99
    commitment: float = 0.25
    restart_threshold: float = 1.0
    # The prepared data's floor (-1: an MR scan's background after min-max, CT air after its
    # window), or None. Set, `VQGAN.decode` sets what the decoder puts below it to the floor, so
    # a background learned with room below the floor (VQGANLossConfig.floor_margin) comes out
    # as exact floor, as in the scans, not as noise around it. None: the paper's open decoder.
    output_floor: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "compression", tuple(int(c) for c in self.compression))
        if len(self.compression) != self.spatial_dims:
            raise ValueError(f"compression {self.compression} needs {self.spatial_dims} factors")
        bad = [c for c in self.compression if c not in ALLOWED_FACTORS]
        if bad:
            raise ValueError(f"compression factors must be 1, 2, 4 or 8 per axis, not {bad}")

    @property
    def levels(self) -> int:
        """Number of down/up-sampling levels: log2 of the largest factor."""
        return int(math.log2(max(self.compression)))

    def strides(self, level: int) -> tuple[int, ...]:
        """Per-axis stride at encoder `level`: 2 while the axis still needs downsampling."""
        return tuple(2 if factor >= 2 ** (level + 1) else 1 for factor in self.compression)

    def channels(self, level: int) -> int:
        """Channels after encoder level `level` (level -1: after the first convolution)."""
        return self.base_channels * 2 ** (level + 1)

    def latent_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Latent (C, *spatial) for an image of spatial `shape`; ValueError if not divisible."""
        shape = tuple(shape)
        if len(shape) != self.spatial_dims or any(s % c for s, c in zip(shape, self.compression,
                                                                         strict=True)):
            raise ValueError(f"a volume of shape {shape} cannot be compressed by "
                             f"{self.compression}: every axis must be divisible by its factor")
        return (self.embedding_dim, *(s // c for s, c in zip(shape, self.compression,
                                                              strict=True)))

    def to_dict(self) -> dict:
        """JSON-ready constructor arguments."""
        data = asdict(self)
        data["compression"] = list(self.compression)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VQGANConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "VQ-GAN"))


LEVEL_ATTENTION = ("linear", "full")


@dataclass(frozen=True)
class UNetConfig:
    """Constructor arguments of the latent DDPM's denoising U-Net; saved as JSON beside its weights.

    Defaults are the layout of the authors' public code at the mrnet latent's width.
    """

    channels: int = 8  # latent channels in and out: the VQ-GAN's embedding_dim
    base_channels: int = 64  # authors: the latent's in-plane size
    channel_multipliers: tuple[int, ...] = (1, 2, 4, 8)  # width of each level, times base
    blocks_per_level: int = 2
    norm_groups: int = 8
    heads: int = 8
    head_channels: int = 32
    # Levels whose blocks end with spatial then depth attention; None: every level (authors).
    attention_levels: tuple[int, ...] | None = None
    # The levels' per-slice attention: "linear" (authors: O(H*W), affordable on 64x64 slices) or
    # "full" softmax. The middle block's spatial attention is always full softmax attention.
    level_attention: str = "linear"
    max_depth_distance: int = 32  # depth offsets beyond this share one relative position bias
    time_multiplier: int = 4  # time embedding width = time_multiplier * base_channels

    def __post_init__(self) -> None:
        multipliers = tuple(int(m) for m in self.channel_multipliers)
        object.__setattr__(self, "channel_multipliers", multipliers)
        if not multipliers or min(multipliers) < 1:
            raise ValueError("channel_multipliers needs at least one positive multiplier")
        levels = range(len(multipliers))
        attention = (tuple(levels) if self.attention_levels is None
                     else tuple(sorted({int(level) for level in self.attention_levels})))
        if any(level not in levels for level in attention):
            raise ValueError(f"attention_levels {attention} must lie in 0..{len(multipliers) - 1}")
        object.__setattr__(self, "attention_levels", attention)
        if self.level_attention not in LEVEL_ATTENTION:
            raise ValueError(f"level_attention must be one of {LEVEL_ATTENTION}, "
                             f"not {self.level_attention!r}")
        if self.base_channels < 2 or self.base_channels % 2:
            raise ValueError(f"base_channels must be even (sine and cosine halves of the time "
                             f"embedding), not {self.base_channels}")

    @property
    def levels(self) -> int:
        """Number of resolution levels; the in-plane size halves between consecutive levels."""
        return len(self.channel_multipliers)

    def width(self, level: int) -> int:
        """Channels of `level`."""
        return self.base_channels * self.channel_multipliers[level]

    @property
    def in_plane_divisor(self) -> int:
        """H and W must be multiples of this: 2 ** (levels - 1)."""
        return 2 ** (self.levels - 1)

    def check_shape(self, shape: tuple[int, ...]) -> None:
        """ValueError unless `shape` is a latent (C, D, H, W) this U-Net takes."""
        shape = tuple(shape)
        if len(shape) != 4 or shape[0] != self.channels:
            raise ValueError(f"the U-Net takes latents of shape ({self.channels}, D, H, W), "
                             f"not {shape}")
        if any(s % self.in_plane_divisor for s in shape[2:]):
            raise ValueError(f"in-plane size {shape[2:]} must be divisible by "
                             f"{self.in_plane_divisor} (2^(levels - 1) for {self.levels} levels)")

    def to_dict(self) -> dict:
        """JSON-ready constructor arguments."""
        data = asdict(self)
        data["channel_multipliers"] = list(self.channel_multipliers)
        data["attention_levels"] = list(self.attention_levels)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> UNetConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "U-Net"))


WGAN_START_SIZE = 4  # the generator's first feature map is 4 voxels a side on every axis that
# upsamples (Kwon et al.'s 4^3); an axis the stages cannot reach from 4 starts larger


@dataclass(frozen=True)
class WGANConfig:
    """Constructor arguments of the GAN baseline's generator and critic (`nn.wgan`).

    `generator_channels`: the linear layer's output channels, then each upsampling stage's input
    width (the last stage goes to one channel), so its length is the number of stages;
    `critic_channels`: each strided convolution's output width.
    """

    shape: tuple[int, int, int]  # the volumes made and judged, (D, H, W)
    latent_dim: int = 1000
    generator_channels: tuple[int, ...] = (512, 256, 128, 64)
    critic_channels: tuple[int, ...] = (64, 128, 256, 512)

    def __post_init__(self) -> None:
        for name in ("shape", "generator_channels", "critic_channels"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise ValueError(f"shape must be three positive sizes (D, H, W), not {self.shape}")
        if not self.generator_channels or not self.critic_channels or min(
                (*self.generator_channels, *self.critic_channels, self.latent_dim)) < 1:
            raise ValueError("the GAN's latent size and every width must be positive")
        self.start_shape  # noqa: B018 - checks that the stages can make `shape`

    @property
    def stages(self) -> int:
        """Number of generator stages (each doubles the axes that still need it)."""
        return len(self.generator_channels)

    def upsamplings(self) -> tuple[int, ...]:
        """Per axis, how many of the stages double it: as many as take 4 voxels to its size."""
        return tuple(min(self.stages, max(0, int(math.log2(size / WGAN_START_SIZE))))
                     for size in self.shape)

    @property
    def start_shape(self) -> tuple[int, int, int]:
        """The linear layer's feature map (D, H, W); ValueError if no exact one exists."""
        start = []
        for size, ups in zip(self.shape, self.upsamplings(), strict=True):
            if size % 2 ** ups:
                raise ValueError(f"the GAN cannot make shape {self.shape}: each axis must be "
                                 f"4 times a power of two, or a multiple of 2^{self.stages}")
            start.append(size // 2 ** ups)
        return tuple(start)

    def generator_scales(self, stage: int) -> tuple[int, ...]:
        """Upsampling factor per axis at generator `stage`: an axis doubled k times doubles in
        the last k stages (so the early, wide stages stay small)."""
        return tuple(2 if stage >= self.stages - ups else 1 for ups in self.upsamplings())

    def critic_strides(self, layer: int) -> tuple[int, ...]:
        """Stride per axis at critic `layer`: 2 while the axis is above 4 voxels (the mirror of
        the generator), so every preset's last feature map is small and whole."""
        sizes = list(self.shape)
        for _ in range(layer):
            sizes = [s // 2 if s > WGAN_START_SIZE else s for s in sizes]
        return tuple(2 if s > WGAN_START_SIZE else 1 for s in sizes)

    def critic_final_shape(self) -> tuple[int, ...]:
        """The critic's last feature map (D, H, W), which one last convolution covers whole."""
        sizes = list(self.shape)
        for layer in range(len(self.critic_channels)):
            sizes = [s // stride for s, stride in zip(sizes, self.critic_strides(layer),
                                                      strict=True)]
        return tuple(sizes)

    def to_dict(self) -> dict:
        """JSON-ready constructor arguments."""
        data = asdict(self)
        for name in ("shape", "generator_channels", "critic_channels"):
            data[name] = list(getattr(self, name))
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WGANConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "GAN"))
