"""NIfTI files (read and written) and bare .npy arrays (read), as canonical Volumes.

NIfTI has no modality field: mdiff writes it into `descrip` (diffusion_core.modality) and reads it
back from there. A .npy array carries no orientation or spacing: its first axis is kept as D.
"""

from __future__ import annotations

import gzip
import os
import secrets
import zlib
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from diffusion_core.io.volume import (
    Volume,
    VolumeError,
    brief_error,
    canonical_affine,
    canonical_volume,
    check_writable,
    rescale,
)
from diffusion_core.modality import MODALITIES, modality_from_header, modality_header

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_name(path: Path) -> bool:
    """Whether the file name ends in .nii or .nii.gz."""
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def is_npy_name(path: Path) -> bool:
    """Whether the file name ends in .npy."""
    return path.name.lower().endswith(".npy")


def read_nifti(path: Path) -> Volume:
    """A NIfTI-1/2 file; a 4D file with one volume is squeezed to 3D."""
    try:
        image = nib.load(path, mmap=False)
        proxy = image.dataobj
        raw = np.asanyarray(proxy.get_unscaled())
        slope, intercept = float(proxy.slope), float(proxy.inter)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, ImageFileError,
            HeaderDataError) as err:
        raise VolumeError(f"{path} is truncated or not a valid NIfTI file "
                          f"({brief_error(err)}).") from err
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim > 3:
        raise VolumeError(f"{path} holds a {raw.ndim}D series (shape {raw.shape}), not a single "
                          "3D volume.")
    modality = modality_from_header(image.header["descrip"].item()) or ""
    return canonical_volume(rescale(raw, slope, intercept), image.affine, modality, path)


def read_npy(path: Path, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Volume:
    """A (slices, rows, columns) array kept as it is, with `spacing` (an MRNet exam has none: 1 mm).

    The modality is left unknown ("") for the caller to fill in.
    """
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise VolumeError(f"{path} is truncated or not a numpy array file "
                          f"({brief_error(err)}).") from err
    if array.ndim != 3:
        raise VolumeError(f"{path} holds a {array.ndim}D array (shape {array.shape}), not a 3D "
                          "exam of (slices, rows, columns).")
    return canonical_volume(array, canonical_affine(spacing), "", path)


def write_nifti(volume: Volume, path: str | os.PathLike) -> None:
    """Write a volume to .nii or .nii.gz so that read_volume gives it back unchanged."""
    path = Path(path)
    if not is_nifti_name(path):
        raise VolumeError(f"Cannot write {path}: a NIfTI file name must end in .nii or .nii.gz.")
    array = check_writable(volume, path)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)  # NIfTI has no boolean type
    elif array.dtype == np.float16:
        array = array.astype(np.float32)  # nor a half-float one
    image = nib.Nifti1Image(array, volume.affine, dtype=array.dtype)
    image.set_qform(volume.affine, code=1)  # 1 = scanner-based world coordinates
    image.set_sform(volume.affine, code=1)
    image.header.set_xyzt_units("mm")
    # A volume of unknown modality records none, so it reads back as unknown.
    image.header["descrip"] = (modality_header(volume.modality)
                               if volume.modality in MODALITIES else b"")
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    # Written beside the target and renamed, so a crash never leaves a half-written scan.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, temporary)
        os.replace(temporary, path)
    except (OSError, ValueError, HeaderDataError) as err:
        temporary.unlink(missing_ok=True)
        raise VolumeError(f"Cannot write {path}: {brief_error(err)}.") from err
