"""Fixtures for the diffusion_core tests: a generated CT-like phantom in world coordinates, and
small PREP_DIRs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine
from diffusion_core.prepared import Manifest, PreparedScan
from diffusion_core.presets import get_preset

# The phantom's canonical grid: thick slices, anisotropic in-plane voxels, centre off the origin.
PHANTOM_SHAPE = (12, 40, 36)
PHANTOM_SPACING = (3.0, 0.8, 0.9)
PHANTOM_CENTRE = np.array([5.0, -7.0, 40.0])  # RAS mm


def _phantom_hu(world: np.ndarray) -> np.ndarray:
    """Hounsfield units of the phantom at RAS points (..., 3).

    An elliptic water-like body in air, a bone-like ball at the patient's left-anterior-superior
    side, a lung-like ball at the right-posterior-inferior side and a smooth texture, so any
    flip or transposition of the axes changes the image.
    """
    x, y, z = np.moveaxis(np.round(world, 4) - PHANTOM_CENTRE, -1, 0)
    hu = np.full(x.shape, -1000.0)
    hu[(x / 14.0) ** 2 + (y / 13.0) ** 2 < 1.0] = 40.0
    hu[(x + 7.0) ** 2 + (y - 6.0) ** 2 + (z - 9.0) ** 2 < 25.0] = 700.0  # RAS: -x is left
    hu[(x - 6.0) ** 2 + (y + 4.0) ** 2 + (z + 6.0) ** 2 < 25.0] = -800.0
    hu += np.rint(20.0 * np.sin(0.9 * x + 0.4 * y + 0.25 * z))
    return hu.astype(np.int16)


def _sample(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """The phantom sampled at the voxel centres of a grid of this shape and affine."""
    indices = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    world = indices @ affine[:3, :3].T + affine[:3, 3]
    return _phantom_hu(world)


@pytest.fixture
def phantom_on_grid() -> Callable[[tuple[int, ...], np.ndarray], np.ndarray]:
    """A function sampling the CT phantom (int16 HU) on any grid (shape, RAS affine)."""
    return _sample


@pytest.fixture
def phantom_canonical_affine() -> np.ndarray:
    """The RAS affine of the phantom's canonical (S, P, L) grid."""
    extent = (np.array(PHANTOM_SHAPE) - 1) * np.array(PHANTOM_SPACING)
    # The first voxel is the inferior, anterior, patient-right corner (RAS: low z, high y, high x).
    origin = PHANTOM_CENTRE + np.array([extent[2], extent[1], -extent[0]]) / 2
    return canonical_affine(PHANTOM_SPACING, origin)


@pytest.fixture
def ct_phantom(phantom_canonical_affine) -> Volume:
    """The CT phantom as a canonical Volume: int16 HU, shape (12, 40, 36), 3 x 0.8 x 0.9 mm."""
    array = _sample(PHANTOM_SHAPE, phantom_canonical_affine)
    return Volume(array, PHANTOM_SPACING, phantom_canonical_affine, "CT", "phantom")


def _tiny_prep_dir(folder: Path, sources: list[str], *, halves: bool = False) -> Path:
    """A PREP_DIR of the tiny preset: one asymmetric array per source (two with `halves`)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.for_preset(get_preset("tiny"), folder / "raw", None)
    rng = np.random.default_rng(0)
    for source in sources:
        names = [f"{source}_right.npy", f"{source}_left.npy"] if halves else [f"{source}.npy"]
        for name in names:
            np.save(folder / name, rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32))
        manifest.scans.append(PreparedScan(source=source, arrays=names))
    manifest.save(folder)
    return folder


@pytest.fixture
def make_prep_dir() -> Callable[..., Path]:
    """A function writing a tiny-preset PREP_DIR (folder, sources, halves=False) -> folder."""
    return _tiny_prep_dir


def _write_run_json(folder: Path, kind: str, preset: str = "tiny", vqgan_run=None):
    """A complete run.json of `kind` with `preset`'s settings in `folder` (no weights); its
    RunInfo. A DDPM's `vqgan_run` is a `run_folder.RunRef`."""
    from diffusion_core.presets import ddpm_settings, vqgan_settings
    from diffusion_core.run_folder import DataRecord, EMARecord, RunInfo, write_run_info
    from diffusion_core.training.config import TrainerConfig

    common = {"preset": preset, "data": DataRecord("prep", "a" * 64, 4, "b" * 64),
              "trainer": TrainerConfig(steps=4, batch_size=2, learning_rate=1e-3),
              "steps_done": 4, "weights_step": 4}
    if kind == "vqgan":
        settings = vqgan_settings(preset)
        info = RunInfo("vqgan", vqgan=settings.model, loss=settings.loss, **common)
    else:
        settings = ddpm_settings(preset)
        info = RunInfo("ddpm", vqgan_run=vqgan_run, unet=settings.unet,
                       scheduler=settings.scheduler, latent_scaling=settings.latent_scaling,
                       latent_shape=(settings.unet.channels, 2, 4, 4), latent_range=(-1.0, 1.0),
                       ema=EMARecord(settings.ema_decay, settings.ema_every, settings.ema_start),
                       **common)
    folder.mkdir(parents=True, exist_ok=True)
    write_run_info(folder, info)
    return info


@pytest.fixture
def write_run_json() -> Callable[..., object]:
    """A function writing a complete run.json (folder, kind, preset="tiny", vqgan_run=None)."""
    return _write_run_json
