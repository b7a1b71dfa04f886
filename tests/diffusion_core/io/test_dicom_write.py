"""DICOM writing: standard CT and MR Image Storage series, refused volumes."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from diffusion_core.io import (
    Volume,
    VolumeError,
    canonical_affine,
    read_volume,
    write_dicom_series,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def test_written_series_is_standard_axial_ct(ct_phantom, tmp_path):
    """CT Image Storage, axial orientation, stored uint16 = HU + 1024, random UID file names."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024,
                               series_description="phantom")
    assert len(paths) == ct_phantom.array.shape[0]
    datasets = [pydicom.dcmread(p) for p in paths]
    first = datasets[0]
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert first.SOPClassUID == CT_IMAGE_STORAGE == first.file_meta.MediaStorageSOPClassUID
    assert first.Modality == "CT" and first.SeriesDescription == "phantom"
    np.testing.assert_allclose([float(v) for v in first.ImageOrientationPatient],
                               [1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose([float(v) for v in first.PixelSpacing], [0.8, 0.9])
    assert float(first.SliceThickness) == pytest.approx(3.0)
    assert (first.Rows, first.Columns) == ct_phantom.array.shape[1:]
    assert first.PixelRepresentation == 0 and first.pixel_array.dtype == np.uint16
    assert float(first.RescaleIntercept) == -1024 and float(first.RescaleSlope) == 1
    assert (first.WindowCenter, first.WindowWidth) == (40, 400)  # soft tissue, as viewers open
    heights = [float(d.ImagePositionPatient[2]) for d in datasets]
    np.testing.assert_allclose(np.diff(heights), 3.0)  # array[k] goes up the patient
    for k, (path, dataset) in enumerate(zip(paths, datasets, strict=True)):
        assert path.name == f"{dataset.SOPInstanceUID}.dcm"
        assert dataset.InstanceNumber == k + 1
        np.testing.assert_array_equal(dataset.pixel_array.astype(np.int32) - 1024,
                                      ct_phantom.array[k])
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)


def test_mr_series_uses_mr_storage_and_slope(tmp_path):
    """An MR volume is MR Image Storage; a slope of 0.5 keeps half-unit values."""
    array = (np.arange(3 * 8 * 8).reshape(3, 8, 8) * 0.5).astype(np.float32)
    volume = Volume(array, (4.0, 1.0, 1.0), canonical_affine((4.0, 1.0, 1.0)), "MR")
    paths = write_dicom_series(volume, tmp_path / "mr", rescale_slope=0.5)
    dataset = pydicom.dcmread(paths[0])
    assert dataset.SOPClassUID == MR_IMAGE_STORAGE and dataset.Modality == "MR"
    read = read_volume(tmp_path / "mr")
    assert read.modality == "MR" and read.array.dtype == np.float32
    np.testing.assert_array_equal(read.array, array)


@pytest.mark.parametrize(("volume_kwargs", "write_kwargs", "problem"), [
    ({"modality": ""}, {}, "'CT' or 'MR'"),
    ({"values": 70000}, {}, "do not fit 16 bits"),
    ({"values": 0.25}, {}, "grey levels"),
    ({}, {"rescale_slope": 0.0}, "slope must be positive"),
])
def test_write_dicom_series_refuses_what_it_cannot_store(volume_kwargs, write_kwargs, problem,
                                                         tmp_path):
    """Unknown modality, values beyond 16 bits, rounding to a few levels, a zero slope."""
    values = volume_kwargs.get("values", 100)
    array = np.linspace(0, values, 2 * 4 * 4).reshape(2, 4, 4)
    if isinstance(values, int):
        array = array.astype(np.int32)
    volume = Volume(array, (1, 1, 1), canonical_affine((1, 1, 1)),
                    volume_kwargs.get("modality", "CT"))
    with pytest.raises(VolumeError, match=problem) as caught:
        write_dicom_series(volume, tmp_path / "out", **write_kwargs)
    assert str(tmp_path / "out") in str(caught.value)


def test_write_dicom_series_paths_exist(ct_phantom, tmp_path):
    """Every returned path is a file; nothing else is written."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024)
    assert sorted(paths) == sorted((tmp_path / "series").iterdir())
    assert all(os.path.getsize(p) > 128 for p in paths)
