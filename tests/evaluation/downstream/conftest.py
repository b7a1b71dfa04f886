"""Tiny folders for the downstream tests: blobs to pre-train on, ellipsoid image + mask pairs.

The writers are handed to tests as fixtures (`write_unlabelled`, `write_labelled`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine, write_nifti

SPACING = (2.0, 2.0, 2.0)


def _write(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_nifti(Volume(array, SPACING, canonical_affine(SPACING), "MR"), path)


def ellipsoid(shape: tuple[int, ...], centre, radii) -> np.ndarray:
    """A boolean ellipsoid in a grid of `shape` (voxel centre and radii)."""
    grid = np.stack(np.meshgrid(*(np.arange(s) for s in shape), indexing="ij"))
    distance = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
    return distance <= 1.0


def _write_unlabelled(folder: Path, n: int = 4, shape=(64, 32, 32), seed: int = 0) -> Path:
    """A folder of scans: smooth bright blobs on a dark ground, all of one shape."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        blob = ellipsoid(shape, np.array(shape) / 2 + rng.uniform(-3, 3, 3),
                         np.array(shape) * rng.uniform(0.2, 0.35, 3))
        array = (100 * blob + rng.normal(0, 5, shape)).astype(np.float32)
        _write(array, folder / f"vol_{i:03d}.nii.gz")
    return folder


def _write_labelled(folder: Path, subjects: list[str], copies: int = 1, shape=(32, 32, 32),
                   seed: int = 0) -> Path:
    """images/ and masks/: each subject's ellipsoid (its own centre and radii), `copies` times
    with a little noise and shift, named SUBJECT_NNN.nii.gz."""
    rng = np.random.default_rng(seed)
    for subject in subjects:
        centre = np.array(shape) / 2 + rng.uniform(-3, 3, 3)
        radii = np.array(shape) * rng.uniform(0.2, 0.3, 3)
        for copy in range(copies):
            mask = ellipsoid(shape, centre + rng.uniform(-1, 1, 3), radii)
            image = (80 * mask + 20 + rng.normal(0, 4, shape)).astype(np.float32)
            name = f"{subject}_{copy:03d}.nii.gz"
            _write(image, folder / "images" / name)
            _write(mask.astype(np.uint8), folder / "masks" / name)
    return folder


@pytest.fixture(scope="session")
def write_unlabelled():
    """The writer of a folder of unlabelled blob volumes."""
    return _write_unlabelled


@pytest.fixture(scope="session")
def write_labelled():
    """The writer of a labelled folder of ellipsoid image + mask pairs."""
    return _write_labelled
