"""Finding the scans in a folder and reading one, whatever its format.

A scan is a NIfTI file, a .npy array, a multi-frame DICOM file or a folder holding a single-frame
DICOM series, of CT or MR images. `read_volume` reads one path by its kind; `search_scans` lists
the scan paths under a raw-data folder and the DICOM images it passed over (segmentations, RT
dose, ultrasound, ...: anything but CT and MR), each with the reason. A bare .npy is an MRNet
exam (MR, 1 mm voxels). Files only: what a folder means (a PREP_DIR, a samples folder) is
`diffusion_core.sources`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io.dicom_read import (
    dicom_kind,
    read_dicom_dataset,
    read_dicom_file,
    read_dicom_folder,
)
from diffusion_core.io.nifti import is_nifti_name, is_npy_name, read_nifti, read_npy
from diffusion_core.io.volume import Volume, VolumeError
from diffusion_core.modality import MODALITIES

MRNET_MODALITY = "MR"  # a bare .npy records no modality: MRNet's knee MRI exams are MR


def read_volume(path: str | os.PathLike, *, modality: str | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder, a multi-frame DICOM file or an MRNet .npy exam.

    `modality` ("CT" or "MR") is used when the file does not record one; a file that records
    another modality is an error.
    """
    path = Path(path)
    if modality is not None and modality not in MODALITIES:
        raise VolumeError(f"Cannot read {path}: modality must be 'CT' or 'MR', not {modality!r}.")
    if not path.exists():
        raise VolumeError(f"{path} does not exist.")
    if path.is_dir():
        volume = read_dicom_folder(path)
    elif is_nifti_name(path):
        volume = read_nifti(path)
    elif is_npy_name(path):
        volume = read_npy(path)
        volume.modality = modality or MRNET_MODALITY
    else:
        dataset = read_dicom_dataset(path)
        if dataset is None:
            raise VolumeError(f"{path} is not a NIfTI (.nii, .nii.gz), MRNet .npy or DICOM file, "
                              "so it cannot be read as a volume.")
        volume = read_dicom_file(dataset, path)
    return _settle_modality(volume, modality, path)


@dataclass(frozen=True)
class SkippedFile:
    """A file that looked like a scan but is none, and why (one sentence naming it)."""

    path: Path
    reason: str  # "PATH is ..., not a CT or MR image", without a final full stop


def search_scans(folder: str | os.PathLike) -> tuple[list[Path], list[SkippedFile]]:
    """The scans under a raw-data folder, sorted (NIfTI, .npy, multi-frame DICOM, series
    folders), and the DICOM images that are no CT or MR scan, each with the reason.

    A folder whose own files include single-frame CT or MR images counts as one series. Hidden
    files and folders are skipped, as are DICOM files without an image (DICOMDIR, reports), and
    files of other formats. Each DICOM file is opened once, for its header only.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder} is not a folder, so it holds no scans to find.")
    scans: list[Path] = []
    skipped: list[SkippedFile] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        is_series = False
        for name in sorted(files):
            if name.startswith("."):
                continue
            file = here / name
            if is_nifti_name(file) or is_npy_name(file):
                scans.append(file)
                continue
            kind = dicom_kind(file)
            if kind is None:
                continue
            if kind.kind == "multi-frame":
                scans.append(file)
            elif kind.kind == "single-frame":
                is_series = True
            elif kind.problem:
                skipped.append(SkippedFile(file, kind.problem))
        if is_series:
            scans.append(here)
    if not scans:
        passed_over = f" ({skipped[0].reason})" if skipped else ""
        raise VolumeError(f"{folder} holds no scans (NIfTI, .npy or DICOM CT or MR files)"
                          f"{passed_over}.")
    return sorted(scans), skipped


def find_scans(folder: str | os.PathLike) -> list[Path]:
    """The scan paths of `search_scans`, without what it skipped."""
    return search_scans(folder)[0]


# A CT scan's air is -1000 HU; MR magnitudes are never that negative.
_AIR_HU = -900.0
_AIR_SHARE = 0.01
_EIGHT_BIT = 255


def modality_doubt(volume: Volume, modality: str) -> str | None:
    """Why the values of a scan read as `modality` look like the other one; None if they do not.

    For a file that records no modality (a plain NIfTI) this is the only check there is.

    Under MR: a share of voxels at or below -900, like the air of a CT in Hounsfield units.
    Under CT: only whole values from 0 to 255, the 8-bit range of an MR or screen image, where
    a CT in Hounsfield units has air near -1000.
    """
    array = np.asarray(volume.array)
    low, high = float(array.min()), float(array.max())
    if modality == "MR":
        air = float(np.mean(array <= _AIR_HU))
        if air >= _AIR_SHARE:
            return (f"{air:.0%} of its voxels are at or below {_AIR_HU:g} (down to {low:g}), like "
                    "the air of a CT in Hounsfield units, yet it is read as MR")
    elif modality == "CT" and low >= 0 and high <= _EIGHT_BIT and (
            np.issubdtype(array.dtype, np.integer) or np.array_equal(array, np.rint(array))):
        return (f"it holds only whole values from {low:g} to {high:g} (an 8-bit range), not "
                "Hounsfield units, where air is near -1000, yet it is read as CT")
    return None


def _settle_modality(volume: Volume, asked: str | None, path: Path) -> Volume:
    """Fill an unknown modality from `asked`; refuse one that contradicts the file."""
    if asked is None or volume.modality == asked:
        return volume
    if volume.modality:
        raise VolumeError(f"{path} is {volume.modality}, not the {asked} that was asked for.")
    volume.modality = asked
    return volume
