"""Fixtures for training tests: a tiny-preset PREP_DIR of smooth, structured volumes."""

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
def tiny_prep_dir(tmp_path) -> Path:
    """A tiny-preset PREP_DIR of 12 volumes (8x16x16)."""
    return write_prep_dir(tmp_path / "prep")


@pytest.fixture
def make_prep_dir():
    """The `write_prep_dir` function, for tests that need other presets or sizes."""
    return write_prep_dir
