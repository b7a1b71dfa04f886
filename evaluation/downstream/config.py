"""Settings of the downstream experiment as frozen dataclasses; torch-free, saved as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from diffusion_core.records import dataclass_fields

SIZE_MULTIPLE = 32  # MONAI's SwinUNETR halves every axis five times


@dataclass(frozen=True)
class SwinConfig:
    """MONAI's SwinUNETR as built here: one input channel, `feature_size` divisible by 12."""

    feature_size: int = 12
    out_channels: int = 2  # background and foreground

    def __post_init__(self) -> None:
        if self.feature_size < 12 or self.feature_size % 12:
            raise ValueError(f"the feature size must be a positive multiple of 12 (MONAI's "
                             f"SwinUNETR), not {self.feature_size}")

    @property
    def encoder_channels(self) -> int:
        """Channels of the encoder's last stage (16 x feature_size)."""
        return 16 * self.feature_size


@dataclass(frozen=True)
class PretrainConfig:
    """Self-supervised pre-training: the three objectives' weights, views and schedule."""

    steps: int = 300
    batch_size: int = 2  # volumes per step; each gives two views
    learning_rate: float = 4e-4
    weight_decay: float = 0.1
    rotation_weight: float = 1.0
    contrastive_weight: float = 1.0
    inpainting_weight: float = 1.0
    temperature: float = 0.5
    mask_fraction: float = 0.3  # at most this share of the volume is masked per view
    contrastive_dim: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError("pre-training needs at least 1 step")
        if self.batch_size < 2:
            raise ValueError("the contrastive loss needs at least 2 volumes per batch")
        if not 0.0 < self.mask_fraction < 1.0:
            raise ValueError(f"the masked fraction must lie in (0, 1), not {self.mask_fraction}")
        if not self.learning_rate > 0:
            raise ValueError("the pre-training learning rate must be positive")
        if not self.temperature > 0:
            raise ValueError("the contrastive temperature must be positive")


@dataclass(frozen=True)
class FinetuneConfig:
    """Segmentation fine-tuning: the same schedule and augmentation for both arms."""

    steps: int = 100
    batch_size: int = 2
    learning_rate: float = 2e-4
    weight_decay: float = 1e-5
    flip: bool = True  # left-right (W) flips, as everywhere in mdiff

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("fine-tuning needs at least 1 step of at least 1 volume")
        if not self.learning_rate > 0:
            raise ValueError("the fine-tuning learning rate must be positive")


@dataclass(frozen=True)
class SweepConfig:
    """The grid of cells: training fractions x seeds x (with, without pre-training)."""

    fractions: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.0)
    seeds: int = 3
    first_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", tuple(float(f) for f in self.fractions))
        if not self.fractions:
            raise ValueError("give at least one training fraction")
        bad = [f for f in self.fractions if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"training fractions must lie in (0, 1], not {bad[0]}")
        if len(set(self.fractions)) != len(self.fractions):
            raise ValueError("the training fractions repeat a value")
        if self.seeds < 1:
            raise ValueError("give at least one seed")


@dataclass(frozen=True)
class DownstreamConfig:
    """Everything that fixes a downstream run's results; saved as downstream.json in its folder."""

    swin: SwinConfig
    pretrain: PretrainConfig
    finetune: FinetuneConfig
    sweep: SweepConfig

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = asdict(self)
        data["sweep"]["fractions"] = list(self.sweep.fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> DownstreamConfig:
        """Rebuild from `to_dict()`, strictly."""
        parts = dataclass_fields(cls, data, "downstream")
        return cls(swin=SwinConfig(**dataclass_fields(SwinConfig, parts["swin"], "network")),
                   pretrain=PretrainConfig(**dataclass_fields(PretrainConfig, parts["pretrain"],
                                                              "pre-training")),
                   finetune=FinetuneConfig(**dataclass_fields(FinetuneConfig, parts["finetune"],
                                                              "fine-tuning")),
                   sweep=SweepConfig(**dataclass_fields(SweepConfig, parts["sweep"], "sweep")))
