"""Constructor arguments of the networks as frozen dataclasses; torch-free, so presets hold them.

Each config is saved as JSON beside its weights, and a model is rebuilt from it alone.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

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
        """Rebuild from `to_dict()`; unknown keys are an error (a config from another version)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown VQ-GAN settings {sorted(unknown)}")
        return cls(**data)
