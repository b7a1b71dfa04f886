"""Training settings as frozen dataclasses; torch-free, so presets can hold them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from diffusion_core.nn.config import UNetConfig, VQGANConfig, WGANConfig
from diffusion_core.records import dataclass_fields
from diffusion_core.schedulers.config import SchedulerConfig


@dataclass(frozen=True)
class TrainerConfig:
    """How long and how fast to train, and how often to log, validate and checkpoint.

    A checkpoint is written every `checkpoint_every` steps and also whenever
    `checkpoint_minutes` have passed since the last one (0: by steps only), so a stop that no
    signal announces (a crash, a power cut, SIGKILL) loses at most that much work.
    """

    steps: int
    batch_size: int
    learning_rate: float
    grad_clip: float = 1.0
    log_every: int = 10
    val_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    checkpoint_minutes: float = 10.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "val_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', ' ')} must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError("the learning rate must be positive")
        if not self.checkpoint_minutes >= 0:
            raise ValueError("checkpoint minutes must be 0 (off) or more")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainerConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "trainer"))


DISCRIMINATOR_KINDS = ("2d", "3d")
GAN_WEIGHTINGS = ("adaptive", "fixed")


@dataclass(frozen=True)
class VQGANLossConfig:
    """Loss weights of the VQ-GAN (the authors' released values) and when the GAN terms start.

    `gan_weighting`: "adaptive" (default) scales the generator's adversarial term so its gradient
    at the decoder's last layer matches the reconstruction's (Esser et al., eq. 7), times
    `gan_weight`: when the discriminator starts, its term cannot swamp reconstruction, the
    collapse the authors' users reported with their fixed weight of 1. "fixed" uses `gan_weight`
    as is, as the authors did.
    """

    l1_weight: float = 4.0
    perceptual_weight: float = 4.0
    gan_weight: float = 1.0
    feature_matching_weight: float = 4.0
    gan_start_step: int = 10_000
    gan_weighting: str = "adaptive"
    discriminators: tuple[str, ...] = ("2d", "3d")
    discriminator_channels: int = 64
    discriminator_layers: int = 3
    # With the model's `output_floor`: how far below the floor the background is learned
    # (`losses.floored_l1`); None: plain L1 everywhere (the paper).
    floor_margin: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "discriminators", tuple(self.discriminators))
        unknown = [d for d in self.discriminators if d not in DISCRIMINATOR_KINDS]
        if unknown:
            raise ValueError(f"unknown discriminator {unknown[0]!r}; choose from 2d, 3d")
        if self.gan_weighting not in GAN_WEIGHTINGS:
            raise ValueError(f"gan weighting must be adaptive or fixed, not "
                             f"{self.gan_weighting!r}")
        if self.floor_margin is not None and not self.floor_margin > 0:
            raise ValueError(f"the floor margin must be positive, not {self.floor_margin}")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = asdict(self)
        data["discriminators"] = list(self.discriminators)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VQGANLossConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "VQ-GAN loss"))


@dataclass(frozen=True)
class VQGANSettings:
    """A preset's VQ-GAN: network, losses and the training schedule (Supplementary Table 1)."""

    model: VQGANConfig
    loss: VQGANLossConfig
    learning_rate: float
    batch_size: int
    steps: int


LATENT_SCALINGS = ("codebook", "std")


@dataclass(frozen=True)
class DDPMSettings:
    """A preset's latent DDPM: U-Net, noise schedule, training schedule and weight EMA."""

    unet: UNetConfig
    scheduler: SchedulerConfig
    learning_rate: float
    batch_size: int
    steps: int
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2_000
    # How latents are scaled for the U-Net (`latent_range`): "codebook", the paper's, maps the
    # codebook's [min, max] to [-1, 1]; "std" maps the training latents' mean -+ one standard
    # deviation to -+1, unit variance as Rombach et al.'s latent scale factor.
    latent_scaling: str = "codebook"

    def __post_init__(self) -> None:
        if self.latent_scaling not in LATENT_SCALINGS:
            raise ValueError(f"latent scaling must be one of {', '.join(LATENT_SCALINGS)}, "
                             f"not {self.latent_scaling!r}")


@dataclass(frozen=True)
class WGANLossConfig:
    """The WGAN-GP objective and its schedule (Gulrajani et al., 2017, Algorithm 1).

    One trainer step is one generator iteration: `critic_steps` critic updates, each on its own
    batch of real volumes, then `generator_steps` generator updates. Adam with `betas` for both
    networks, at the trainer's learning rate. Kwon et al.'s code ran one critic step per five
    generator steps (critic_steps=1, generator_steps=5); the WGAN-GP paper's 5 and 1 are the
    default.
    """

    penalty_weight: float = 10.0  # lambda
    critic_steps: int = 5
    generator_steps: int = 1
    betas: tuple[float, float] = (0.0, 0.9)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        if self.critic_steps < 1 or self.generator_steps < 1:
            raise ValueError("critic steps and generator steps must each be at least 1")
        if not self.penalty_weight >= 0:
            raise ValueError(f"the penalty weight must be 0 or more, not {self.penalty_weight}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam's betas are two numbers in [0, 1), not {self.betas}")

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        data = asdict(self)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WGANLossConfig:
        """Rebuild from `to_dict()`, strictly (`records.dataclass_fields`)."""
        return cls(**dataclass_fields(cls, data, "GAN loss"))


@dataclass(frozen=True)
class WGANSettings:
    """A preset's GAN baseline: networks, objective and training schedule."""

    model: WGANConfig
    loss: WGANLossConfig
    learning_rate: float
    batch_size: int
    steps: int
