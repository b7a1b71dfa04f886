"""Named presets: the paper's four data sets (Supplementary Table 1) and two small ones.

A preset holds its preprocessing pipeline as data (a tuple of steps from
`diffusion_core.preprocess`), the output shape in our (D, H, W) order (the paper's
height x width x depth is derived from it), the anatomical plane of its depth slices and the
nominal voxel spacing of its output. It runs its pipeline over a volume (`preprocess`) and maps
[-1, 1] back to intensities (`to_intensity`, the inverse of its final `MinMax`). The pipeline
hash is derived from the steps' parameters, so a PREP_DIR records exactly which pipeline made it.
Model settings (Supplementary Table 1) are at the end: `vqgan_settings`, `ddpm_settings`.
"""

from __future__ import annotations

import hashlib
import json
import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from diffusion_core.modality import MODALITIES
from diffusion_core.nn.config import UNetConfig, VQGANConfig, WGANConfig
from diffusion_core.preprocess import (
    CentreCropOrPad,
    ClipHU,
    CropToBreastRegion,
    CropToForeground,
    MinMax,
    PadToCube,
    Part,
    PreprocessError,
    Resample,
    Resize,
    SplitLeftRight,
    Step,
    run_steps,
)
from diffusion_core.schedulers.config import SchedulerConfig
from diffusion_core.training.config import (
    DDPMSettings,
    VQGANLossConfig,
    VQGANSettings,
    WGANLossConfig,
    WGANSettings,
)

if TYPE_CHECKING:
    from diffusion_core.io import Volume

# Bump when a step's behaviour changes without its parameters changing, so old PREP_DIRs are
# recognised as made by another pipeline.
PIPELINE_VERSION = 1


class PresetError(ValueError):
    """An unknown preset name; the message lists the known ones."""


@dataclass(frozen=True)
class Preset:
    """A data set's preprocessing pipeline and output geometry."""

    name: str
    description: str
    modality: str  # one of diffusion_core.modality.MODALITIES
    shape: tuple[int, int, int]  # output (D, H, W)
    spacing: tuple[float, float, float]  # nominal voxel spacing (mm, D, H, W) of the output
    depth_axis: str  # the anatomical plane of the depth (D) slices: "axial" or "sagittal"
    steps: tuple[Step, ...]  # the pipeline, in order; the last one scales to [-1, 1]

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"preset {self.name!r}: modality is one of {', '.join(MODALITIES)}, "
                             f"not {self.modality!r}")
        # to_intensity inverts the last step, so every pipeline must end in the [-1, 1] scaling.
        if not self.steps or not isinstance(self.steps[-1], MinMax):
            raise ValueError(f"preset {self.name!r}: the pipeline must end in MinMax")

    @property
    def paper_size(self) -> str:
        """The output shape as the paper writes it: height x width x depth, e.g. "256x256x32"."""
        depth, height, width = self.shape
        return f"{height}x{width}x{depth}"

    @property
    def hu_window(self) -> tuple[float, float] | None:
        """CT: the HU window the pipeline scales to [-1, 1], e.g. (-1000, 400); else None."""
        return self.steps[-1].window

    @property
    def uses_masks(self) -> bool:
        """Whether the pipeline reads a per-scan mask (`mdiff-prepare --masks`)."""
        return any(step.uses_mask for step in self.steps)

    @property
    def outputs_per_scan(self) -> int:
        """How many arrays one scan gives (2 when a step splits left from right)."""
        return 2 if any(isinstance(step, SplitLeftRight) for step in self.steps) else 1

    def pipeline(self) -> list[dict]:
        """The steps as JSON-ready data, in order."""
        return [step.describe() for step in self.steps]

    @property
    def pipeline_hash(self) -> str:
        """sha256 of the pipeline's steps and parameters (stable JSON), as hex."""
        text = json.dumps({"version": PIPELINE_VERSION, "steps": self.pipeline()},
                          sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def preprocess_parts(self, volume: Volume, mask: np.ndarray | None = None) -> list[Part]:
        """The pipeline over `volume`: each output with its label ("right", "left") and spacing.

        `mask` (the scan's breast-region mask for DUKE) must have the volume's shape.
        """
        parts = run_steps(self.steps, volume.array, volume.spacing, mask)
        for part in parts:
            if part.array.shape != self.shape:
                raise PreprocessError(f"preset {self.name!r} made shape {part.array.shape}, "
                                      f"not {self.shape}: its steps do not end in its shape")
        return parts

    def preprocess(self, volume: Volume, mask: np.ndarray | None = None) -> list[np.ndarray]:
        """The pipeline: float32 arrays of exactly `shape` with values in [-1, 1].

        A list because DUKE splits one scan into the patient's right and left breast (in that
        order); the other presets return one array.
        """
        return [part.array for part in self.preprocess_parts(volume, mask)]

    def to_intensity(self, array: np.ndarray) -> np.ndarray:
        """[-1, 1] back to intensities: CT to Hounsfield units in `hu_window`, MR to [0, 1]."""
        return self.steps[-1].invert(array)


_MRNET = Preset(
    name="mrnet",
    description="MRNet knee MRI (sagittal T2 fat-sat .npy exams): min-max, centre crop/pad "
                "to 32 slices of 256x256.",
    modality="MR",
    shape=(32, 256, 256),
    # MRNet's .npy exams carry no spacing; nominal: 3 mm sagittal slices, 160 mm field of view
    # over 256 pixels, typical of the knee protocol. Used only for the header of written volumes.
    spacing=(3.0, 0.625, 0.625),
    depth_axis="sagittal",
    # The providers already scaled the slices to 256x256; pad with the exam's own minimum so the
    # padding is background after min-max.
    steps=(CentreCropOrPad((32, 256, 256), pad_value="minimum"), MinMax()),
)

_ADNI = Preset(
    name="adni",
    description="ADNI brain MRI (skull-stripped MP-RAGE, zero outside the brain): crop to the "
                "brain, pad to a cube, resize to 64^3, min-max.",
    modality="MR",
    shape=(64, 64, 64),
    # Each brain's box is scaled to fit 64 voxels, so spacing varies with brain size; nominal:
    # a 180 mm brain (its longest, front-to-back extent) over 64 voxels.
    spacing=(2.8, 2.8, 2.8),
    depth_axis="axial",
    steps=(CropToForeground(fraction=0.0), PadToCube(pad_value=0.0), Resize((64, 64, 64)),
           MinMax()),
)

_DUKE = Preset(
    name="duke",
    description="DUKE breast MRI (T1 non-fat-sat): resample to 3 x 0.66 x 0.66 mm, crop the "
                "breast region (masks, or an automatic body mask), split right/left, resize "
                "each to 32x256x256, min-max.",
    modality="MR",
    shape=(32, 256, 256),
    # The resampling target; the final resize scales each crop by its own factor.
    spacing=(3.0, 0.66, 0.66),
    depth_axis="axial",
    steps=(Resample((3.0, 0.66, 0.66)), CropToBreastRegion(anterior_fraction=0.5),
           SplitLeftRight(), Resize((32, 256, 256)), MinMax()),
)

_LIDC_HU_WINDOW = (-1000.0, 400.0)  # the paper's: air to the top of soft tissue

_LIDC = Preset(
    name="lidc",
    description=f"LIDC-IDRI chest CT: HU clipped to [{_LIDC_HU_WINDOW[0]:g}, "
                f"{_LIDC_HU_WINDOW[1]:g}], resample to 1 mm, centre crop/pad to 320^3 (padding "
                f"is air), resize to 128^3, window to [-1, 1].",
    modality="CT",
    shape=(128, 128, 128),
    spacing=(2.5, 2.5, 2.5),  # 320 mm over 128 voxels
    depth_axis="axial",
    # Clipping before resampling keeps metal and bone outliers out of the interpolation. The
    # padding is air, the window's low end.
    steps=(ClipHU(*_LIDC_HU_WINDOW), Resample((1.0, 1.0, 1.0)),
           CentreCropOrPad((320, 320, 320), pad_value=_LIDC_HU_WINDOW[0]),
           Resize((128, 128, 128)), MinMax(window=_LIDC_HU_WINDOW)),
)

_DEMO = Preset(
    name="demo",
    description="CPU demo, head MRI: resample to 4.5 x 3 x 3 mm, crop to the head, centre "
                "crop/pad to 32x64x64, min-max.",
    modality="MR",
    # 32 axial slices of 64x64 cover 144 x 192 x 192 mm, a whole head, at a fixed spacing (no
    # per-subject stretching). Half the voxels of 64^3 and the paper's anisotropic layout (thick
    # D, never downsampled by the U-Net): at compression 4 the latent is 8x16x16, whose DDPM step
    # takes about 0.14 s on 2 quiet CPU threads (CPU_SECONDS_PER_STEP), so a demo trains and
    # samples on a laptop.
    shape=(32, 64, 64),
    spacing=(4.5, 3.0, 3.0),
    depth_axis="axial",
    steps=(Resample((4.5, 3.0, 3.0)), CropToForeground(fraction=0.1),
           CentreCropOrPad((32, 64, 64), pad_value="minimum"), MinMax()),
)

_TINY = Preset(
    name="tiny",
    description="Tests: any MR volume resized to 8x16x16, min-max.",
    modality="MR",
    shape=(8, 16, 16),
    spacing=(4.0, 4.0, 4.0),  # nominal only: the resize stretches any input to 8x16x16
    depth_axis="axial",
    steps=(Resize((8, 16, 16)), MinMax()),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_MRNET, _ADNI, _DUKE, _LIDC, _DEMO, _TINY)}


def get_preset(name: str) -> Preset:
    """The preset called `name`; PresetError listing the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise PresetError(f"unknown preset {name!r}; choose one of: "
                          f"{', '.join(PRESETS)}") from None


# --- model settings (Supplementary Table 1; small ones for the CPU) ------------------------------

def _paper_vqgan(compression: tuple[int, int, int]) -> VQGANSettings:
    """The paper's VQ-GAN: 16384 x 8 codes, lr 3e-4, batch 2, 100,000 steps, GAN from 10,000."""
    return VQGANSettings(model=VQGANConfig(compression=compression, num_codes=16384,
                                           embedding_dim=8, base_channels=16),
                         loss=VQGANLossConfig(gan_start_step=10_000),
                         learning_rate=3e-4, batch_size=2, steps=100_000)


VQGAN_SETTINGS: dict[str, VQGANSettings] = {
    "mrnet": _paper_vqgan((4, 4, 4)),
    "adni": _paper_vqgan((2, 2, 2)),
    "duke": _paper_vqgan((4, 4, 4)),
    "lidc": _paper_vqgan((4, 4, 4)),
    # 32x64x64 -> latent 8x16x16 (compression 4). Base width 8 and a codebook the few demo
    # volumes can fill, a light 3D critic only (16 filters) once reconstructions have formed:
    # about 0.12 s per step at batch 2 on two quiet CPU threads, 0.2 s with the critic
    # (CPU_SECONDS_PER_STEP; demo/train_demo.sh).
    "demo": VQGANSettings(
        model=VQGANConfig(compression=(4, 4, 4), num_codes=1024, embedding_dim=8,
                          base_channels=8),
        loss=VQGANLossConfig(gan_start_step=1_400, discriminators=("3d",),
                             discriminator_channels=16, discriminator_layers=2),
        learning_rate=3e-4, batch_size=2, steps=2_000),
    # Tests: 8x16x16 -> 4x4x4 latents in well under a second per step.
    "tiny": VQGANSettings(
        model=VQGANConfig(compression=(2, 4, 4), num_codes=32, embedding_dim=4,
                          base_channels=8),
        loss=VQGANLossConfig(gan_start_step=20, discriminators=("2d", "3d"),
                             discriminator_channels=8, discriminator_layers=2),
        learning_rate=1e-3, batch_size=2, steps=60),
}


def vqgan_settings(name: str) -> VQGANSettings:
    """The VQ-GAN settings of preset `name`; PresetError for an unknown one."""
    get_preset(name)
    return VQGAN_SETTINGS[name]


def _paper_ddpm(width: int, batch_size: int) -> DDPMSettings:
    """The paper's DDPM: width = latent in-plane size, (1, 2, 4, 8), T = 300 cosine, lr 1e-4."""
    return DDPMSettings(unet=UNetConfig(channels=8, base_channels=width,
                                        channel_multipliers=(1, 2, 4, 8)),
                        scheduler=SchedulerConfig(num_train_timesteps=300,
                                                  beta_schedule="cosine"),
                        learning_rate=1e-4, batch_size=batch_size, steps=150_000)


DDPM_SETTINGS: dict[str, DDPMSettings] = {
    "mrnet": _paper_ddpm(64, 40),  # latent 8 x 8 x 64 x 64
    "adni": _paper_ddpm(32, 10),  # latent 8 x 32 x 32 x 32
    "duke": _paper_ddpm(64, 40),
    "lidc": _paper_ddpm(32, 50),
    # latent 8 x 8 x 16 x 16: the authors' layout at width 16 (3 M parameters); 6,000 steps of
    # batch 4 (250 passes over the 48 volumes and their flips), EMA from step 500 (the bundled
    # model was resumed to 8,500 steps at 1e-4: demo/train_demo.sh). Latents at unit variance:
    # the codebook's range left them at a standard deviation of 0.17, where the noise drowns
    # the signal in all but the first few percent of timesteps. The U-Net predicts v: noise
    # prediction drew blotchier demo volumes in this short a training (README), so v is what
    # the bundled model was trained with and the preset's default.
    "demo": DDPMSettings(unet=UNetConfig(channels=8, base_channels=16,
                                         channel_multipliers=(1, 2, 4, 8)),
                         scheduler=SchedulerConfig(num_train_timesteps=300,
                                                   beta_schedule="cosine",
                                                   prediction_type="v_prediction"),
                         learning_rate=3e-4, batch_size=4, steps=6_000, ema_start=500,
                         latent_scaling="std"),
    # Tests: latent 4 x 4 x 4 x 4.
    "tiny": DDPMSettings(unet=UNetConfig(channels=4, base_channels=8, channel_multipliers=(1, 2),
                                         heads=2, head_channels=8, norm_groups=4),
                         scheduler=SchedulerConfig(num_train_timesteps=20,
                                                   beta_schedule="cosine"),
                         learning_rate=1e-3, batch_size=4, steps=40, ema_every=1, ema_start=5),
}


def ddpm_settings(name: str) -> DDPMSettings:
    """The DDPM settings of preset `name`; PresetError for an unknown one."""
    get_preset(name)
    return DDPM_SETTINGS[name]



def _gan(preset: str, channels: tuple[int, ...], latent_dim: int = 1000,
         batch_size: int = 4, steps: int = 12_000) -> WGANSettings:
    """A GAN baseline whose generator starts at 4 voxels a side: Kwon et al.'s widths (512 at
    4^3, halving per stage), one more stage per doubling of the largest axis."""
    critic = tuple(reversed(channels))
    return WGANSettings(model=WGANConfig(shape=PRESETS[preset].shape, latent_dim=latent_dim,
                                         generator_channels=channels, critic_channels=critic),
                        loss=WGANLossConfig(), learning_rate=1e-4, batch_size=batch_size,
                        steps=steps)


WGAN_SETTINGS: dict[str, WGANSettings] = {
    # Kwon et al.'s 64^3 network (its linear layer alone holds 1000 x 512 x 4^3 = 33 M
    # weights), batch 4, about their 12,000 iterations.
    "adni": _gan("adni", (512, 256, 128, 64)),
    "mrnet": _gan("mrnet", (512, 256, 128, 64, 32, 16)),
    "duke": _gan("duke", (512, 256, 128, 64, 32, 16)),
    "lidc": _gan("lidc", (512, 256, 128, 64, 32)),
    # A quarter of Kwon's widths and a 128-dim latent: 1.3 M generator weights (5 MB), about
    # 1.3 s per step (5 critic updates and one generator update at batch 4) on 2 CPU threads.
    "demo": _gan("demo", (128, 64, 32, 16), latent_dim=128, steps=900),
    "tiny": _gan("tiny", (32, 16), latent_dim=16, batch_size=2, steps=20),
}


def wgan_settings(name: str) -> WGANSettings:
    """The GAN baseline settings of preset `name`; PresetError for an unknown one."""
    get_preset(name)
    return WGAN_SETTINGS[name]


# --- what a preset costs, and the table `mdiff-train --help` and `mdiff-models presets` show -----

Seconds = tuple[float | None, float | None]  # (quiet, busy); None: not measured


@dataclass(frozen=True)
class CPUStepSeconds:
    """Seconds per training step measured on a CPU, each as (quiet, busy) medians.

    Three measurements of 10 to 20 steps each (after 2 warm-up steps) while other work came
    and went: "quiet" is the lowest median (load average about 1), "busy" the highest (load
    average up to 8; torch's default threads, one per core, then wait on each other).
    Documented measurements, not computed at run time.
    """

    vqgan: Seconds = (None, None)
    vqgan_critics: Seconds = (None, None)  # once the discriminators have started
    ddpm: Seconds = (None, None)


CPU_TIMING_NOTE = (
    "CPU s/step: median seconds per training step at the preset's batch size, measured "
    "2026-12-08 on the project's shared 2-core machine with torch's default 2 threads, "
    "quiet (busy: the slowest of three measurements beside other work, load average up to 8). "
    "A paper preset's VQ-GAN was timed over two steps while busy (load average 4-5); its DDPM "
    "did not finish one step in 80 s (adni): train the paper's presets on a GPU.")

CPU_SECONDS_PER_STEP: dict[str, CPUStepSeconds] = {
    "mrnet": CPUStepSeconds(vqgan=(None, 18.0)),
    "adni": CPUStepSeconds(vqgan=(None, 5.0)),
    "duke": CPUStepSeconds(vqgan=(None, 18.0)),  # mrnet's network and shape
    "demo": CPUStepSeconds(vqgan=(0.12, 0.13), vqgan_critics=(0.20, 1.9), ddpm=(0.14, 7.0)),
    "tiny": CPUStepSeconds(vqgan=(0.06, 1.7), vqgan_critics=(0.02, 0.7), ddpm=(0.014, 0.02)),
}


def _prediction_name(settings: DDPMSettings) -> str:
    return "v" if settings.scheduler.prediction_type == "v_prediction" else "epsilon"


def _seconds(pair: Seconds) -> str:
    quiet, busy = pair
    if quiet is None and busy is None:
        return "not measured"
    busy_text = "" if busy is None else f"busy {busy:.2g}"
    return busy_text if quiet is None else f"{quiet:.2g}" + (f" ({busy_text})" if busy_text
                                                               else "")


def preset_rows() -> list[dict]:
    """One JSON-ready row per preset: shapes in both orders, spacing, default steps and batch,
    the DDPM's default prediction and the measured CPU seconds per step."""
    rows = []
    for name, preset in PRESETS.items():
        vqgan, ddpm = VQGAN_SETTINGS[name], DDPM_SETTINGS[name]
        timing = CPU_SECONDS_PER_STEP.get(name, CPUStepSeconds())
        rows.append({
            "preset": name, "modality": preset.modality,
            "paper_size_hxwxd": preset.paper_size, "shape_dhw": list(preset.shape),
            "spacing_mm_dhw": list(preset.spacing),
            "vqgan_steps": vqgan.steps, "vqgan_batch": vqgan.batch_size,
            "ddpm_steps": ddpm.steps, "ddpm_batch": ddpm.batch_size,
            "prediction": _prediction_name(ddpm),
            "cpu_seconds_per_step": {key: None if value is None else list(value)
                                     for key, value in vars(timing).items()},
        })
    return rows


def preset_table() -> str:
    """The presets as a text table, with `CPU_TIMING_NOTE` below it."""
    head = ("preset", "H x W x D", "(D, H, W)", "spacing mm", "VQ-GAN steps", "DDPM steps",
            "predicts", "CPU s/step: VQ-GAN", "+ critics", "DDPM")
    lines = [head]
    for row in preset_rows():
        timing = CPU_SECONDS_PER_STEP.get(row["preset"], CPUStepSeconds())
        lines.append((row["preset"], row["paper_size_hxwxd"].replace("x", " x "),
                      "({}, {}, {})".format(*row["shape_dhw"]),
                      "{:g} x {:g} x {:g}".format(*row["spacing_mm_dhw"]),
                      f"{row['vqgan_steps']:,} x {row['vqgan_batch']}",
                      f"{row['ddpm_steps']:,} x {row['ddpm_batch']}", row["prediction"],
                      _seconds(timing.vqgan), _seconds(timing.vqgan_critics),
                      _seconds(timing.ddpm)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
            .rstrip() for line in lines]
    return "\n".join([*text, "", *textwrap.wrap(CPU_TIMING_NOTE, 100)])
