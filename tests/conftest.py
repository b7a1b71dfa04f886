"""Fixtures shared across packages: a tiny-preset PREP_DIR and a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffusion_core.prepared import Manifest, PreparedScan
from diffusion_core.presets import get_preset


def write_prep_dir(folder: Path, n: int = 12, preset: str = "tiny", seed: int = 0) -> Path:
    """A PREP_DIR of `preset` with `n` blob volumes in [-1, 1] (learnable, not noise)."""
    spec = get_preset(preset)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.for_preset(spec, folder / "raw", None)
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in spec.shape), indexing="ij"))
    for i in range(n):
        centre = rng.uniform(-0.4, 0.4, (3, 1, 1, 1))
        radius = rng.uniform(0.3, 0.6)
        blob = np.exp(-((grid - centre) ** 2).sum(0) / radius ** 2)
        array = (2.0 * blob - 1.0).astype(np.float32)
        name = f"scan{i:02d}.npy"
        np.save(folder / name, array)
        manifest.scans.append(PreparedScan(source=f"scan{i:02d}.nii.gz", arrays=[name]))
    manifest.save(folder)
    return folder


@pytest.fixture
def make_blob_prep_dir():
    """The `write_prep_dir` function, for tests that need other presets or sizes."""
    return write_prep_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """(VQ-GAN run, DDPM run) of the tiny preset, trained a few steps: the plumbing, not quality."""
    from diffusion_core.presets import ddpm_settings, vqgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.ddpm import train_ddpm
    from diffusion_core.training.vqgan import train_vqgan

    root = tmp_path_factory.mktemp("tiny_model")
    prep = write_prep_dir(root / "prep")
    train_vqgan("tiny", prep, root / "vq", settings=vqgan_settings("tiny"), device="cpu",
                trainer=TrainerConfig(steps=4, batch_size=2, learning_rate=1e-3, val_every=4,
                                      checkpoint_every=4), progress=False)
    train_ddpm("tiny", prep, root / "vq", root / "dd", settings=ddpm_settings("tiny"),
               device="cpu", trainer=TrainerConfig(steps=4, batch_size=4, learning_rate=1e-3,
                                                   val_every=4, checkpoint_every=4),
               progress=False)
    return root / "vq", root / "dd"
