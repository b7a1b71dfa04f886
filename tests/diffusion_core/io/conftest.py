"""Helpers shared by the io tests, as fixtures (pytest's importlib mode imports no test module
from another)."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from diffusion_core.io import Volume


def _assert_same_volume(read: Volume, expected: Volume) -> None:
    """Same array (values and dtype) and modality; geometry equal to float32 precision."""
    np.testing.assert_array_equal(read.array, expected.array)
    assert read.array.dtype == expected.array.dtype
    np.testing.assert_allclose(read.spacing, expected.spacing, rtol=1e-6)
    np.testing.assert_allclose(read.affine, expected.affine, atol=1e-5)
    assert read.modality == expected.modality


def _save_nifti_with_nibabel(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """A plain NIfTI file as other tools write it (no mdiff description)."""
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, path)


def _write_dicomdir_like(path: Path) -> None:
    """A DICOM file of the Media Storage Directory class, without pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.preamble = b"\0" * 128
    dataset.FileSetID = "MDIFF"
    pydicom.dcmwrite(path, dataset, enforce_file_format=True)


def _pydicom_file(name: str) -> Path:
    """A test file shipped with pydicom or pydicom-data, found offline."""
    return Path(get_testdata_file(name, download=False))


@pytest.fixture
def assert_same_volume() -> Callable:
    """The check that two volumes are the same (a function)."""
    return _assert_same_volume



@pytest.fixture
def save_nifti_with_nibabel() -> Callable:
    """A plain NIfTI file as other tools write it (no mdiff description) (a function)."""
    return _save_nifti_with_nibabel



@pytest.fixture
def write_dicomdir_like() -> Callable:
    """A DICOM file of the Media Storage Directory class, without pixels (a function)."""
    return _write_dicomdir_like



@pytest.fixture
def pydicom_file() -> Callable:
    """A test file shipped with pydicom or pydicom-data, found offline (a function)."""
    return _pydicom_file


@pytest.fixture
def file_reads(monkeypatch) -> dict[str, list]:
    """Every file opened (Path.open or open()) and every pydicom.dcmread from here on:
    {"opened": [path], "parsed": [options]}."""
    reads: dict[str, list] = {"opened": [], "parsed": []}
    open_path, open_file, dcmread = Path.open, builtins.open, pydicom.dcmread

    def counting_open(self, *args, **kwargs):
        reads["opened"].append(Path(self))
        return open_path(self, *args, **kwargs)

    def counting_open_file(file, *args, **kwargs):
        if isinstance(file, str | os.PathLike):
            reads["opened"].append(Path(file))
        return open_file(file, *args, **kwargs)

    def counting_dcmread(source, *args, **kwargs):
        reads["parsed"].append(kwargs)
        return dcmread(source, *args, **kwargs)

    monkeypatch.setattr(Path, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open_file)
    monkeypatch.setattr(pydicom, "dcmread", counting_dcmread)
    return reads
