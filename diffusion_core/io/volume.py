"""The `Volume` type and the canonical orientation, shared by every reader and writer.

A Volume's array is (D, H, W) with D running inferior -> superior, H anterior -> posterior and W
patient right -> left (DICOM's LPS axes), so `array[k]` shown row by row is the radiological axial
view. The affine is NIfTI-style (RAS+ world, mm) and maps the (d, h, w) indices of the array, so
world coordinates are those of the file. An oblique scan is put on the canonical axes closest to
its own (nibabel's `io_orientation`); it is not resampled, so its affine keeps the obliquity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)

CANONICAL_AXCODES = ("S", "P", "L")
_CANONICAL_ORNT = axcodes2ornt(CANONICAL_AXCODES)
# Flips x and y between DICOM's LPS and NIfTI's RAS world; the flip is its own inverse.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class VolumeError(Exception):
    """A scan could not be read or written; the message names the file and the problem."""


@dataclass
class Volume:
    """A 3D scan in canonical (D, H, W) orientation with its geometry and modality."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str
    source: str = ""

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3 or len(self.spacing) != 3 or self.affine.shape != (4, 4):
            raise ValueError(f"a Volume needs a 3D array, 3 spacings and a 4x4 affine, not shapes "
                             f"{self.array.shape}, {len(self.spacing)} and {self.affine.shape}")


def constant_value(array: np.ndarray) -> float | None:
    """The one value of an array whose voxels are all equal (an empty scan); None otherwise."""
    low, high = array.min(), array.max()
    return float(low) if low == high else None


def canonical_affine(spacing: Sequence[float],
                     origin: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The RAS+ affine of a canonical (S, P, L) array with this spacing and first-voxel origin."""
    sd, sh, sw = (float(s) for s in spacing)
    affine = np.array([[0.0, 0.0, -sw, 0.0], [0.0, -sh, 0.0, 0.0], [sd, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]])
    affine[:3, 3] = origin
    return affine


def brief_error(err: BaseException) -> str:
    """A library's error message on one line, to end our one-sentence message."""
    return " ".join(str(err).split()).rstrip(".") or type(err).__name__


def _to_canonical(array: np.ndarray, affine: np.ndarray, source: Path) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Transpose and flip the array onto (S, P, L) axes; the affine keeps world coordinates."""
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(f"{source} has a degenerate orientation matrix (affine), so its axes "
                          "are unknown.")
    transform = ornt_transform(io_orientation(affine), _CANONICAL_ORNT)
    canonical = np.ascontiguousarray(apply_orientation(array, transform))
    return canonical, affine @ inv_ornt_aff(transform, array.shape)


def canonical_volume(array: np.ndarray, affine: np.ndarray, modality: str,
                     source: Path) -> Volume:
    """A checked, canonical Volume from an array and the affine of its indices."""
    if array.ndim != 3 or min(array.shape) < 2:
        raise VolumeError(f"{source} is a 2D image (shape {array.shape}), not a 3D volume.")
    if array.dtype.kind not in "iuf" and array.dtype != np.bool_:
        raise VolumeError(f"{source} holds {array.dtype} values, not a grey-scale volume.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise VolumeError(f"{source} contains NaN or infinite values.")
    canonical, canonical_aff = _to_canonical(array, affine, source)
    spacing = np.sqrt((canonical_aff[:3, :3] ** 2).sum(axis=0))
    return Volume(canonical, tuple(float(s) for s in spacing), canonical_aff, modality,
                  str(source))


def rescale(raw: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """raw * slope + intercept; integer in, integer parameters -> int16/int32, else float32."""
    if slope == 1 and intercept == 0:
        return raw
    if raw.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer():
        values = raw.astype(np.int64) * int(slope) + int(intercept)
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
                return values.astype(dtype)
        return values
    dtype = np.float64 if raw.dtype == np.float64 else np.float32
    return raw.astype(dtype) * dtype(slope) + dtype(intercept)


def check_writable(volume: Volume, target: Path) -> np.ndarray:
    """The volume's array after checking it can be written (3D, finite, sane affine)."""
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise VolumeError(f"Cannot write {target}: the array has shape {array.shape}, not 3D.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise VolumeError(f"Cannot write {target}: the volume contains NaN or infinite values.")
    if not np.all(np.isfinite(volume.affine)) or abs(np.linalg.det(volume.affine[:3, :3])) < 1e-12:
        raise VolumeError(f"Cannot write {target}: the volume's affine is degenerate.")
    return array
