"""NIfTI read and write, and .npy arrays read as MRNet exams."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import (
    Volume,
    VolumeError,
    canonical_affine,
    read_volume,
    write_nifti,
)


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_nifti_round_trip_is_identical(name, ct_phantom, tmp_path, assert_same_volume):
    """write_nifti then read_volume gives the array, dtype, spacing, affine and modality back."""
    write_nifti(ct_phantom, tmp_path / name)
    first = read_volume(tmp_path / name)
    assert_same_volume(first, ct_phantom)
    assert first.source == str(tmp_path / name)
    write_nifti(first, tmp_path / ("again_" + name))
    second = read_volume(tmp_path / ("again_" + name))
    np.testing.assert_array_equal(second.affine, first.affine)  # float32-exact from here on
    assert second.spacing == first.spacing
    header = nib.load(tmp_path / name).header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("modality", ["MR", ""])
def test_nifti_keeps_dtype_and_modality(dtype, modality, tmp_path, assert_same_volume):
    """Any stored dtype NIfTI has comes back unchanged, and so does the modality."""
    array = np.arange(4 * 5 * 6).reshape(4, 5, 6).astype(dtype)
    volume = Volume(array, (2.0, 1.0, 0.5), canonical_affine((2.0, 1.0, 0.5)), modality)
    write_nifti(volume, tmp_path / "v.nii.gz")
    assert_same_volume(read_volume(tmp_path / "v.nii.gz"), volume)


def test_write_nifti_replaces_atomically_and_makes_folders(ct_phantom, tmp_path):
    """A second write replaces the first; no temporary file is left behind."""
    target = tmp_path / "new" / "ct.nii.gz"
    write_nifti(ct_phantom, target)
    brighter = Volume(ct_phantom.array + 1, ct_phantom.spacing, ct_phantom.affine, "CT")
    write_nifti(brighter, target)
    np.testing.assert_array_equal(read_volume(target).array, brighter.array)
    assert [p.name for p in target.parent.iterdir()] == ["ct.nii.gz"]


def test_nifti_scaled_integers_become_hounsfield_integers(ct_phantom, tmp_path):
    """A uint16 file with scl_inter -1024 (common CT conversions) reads as int16 HU."""
    image = nib.Nifti1Image((ct_phantom.array.astype(np.int32) + 1024).astype(np.uint16),
                            ct_phantom.affine)
    image.header.set_slope_inter(1.0, -1024.0)
    nib.save(image, tmp_path / "scaled.nii.gz")
    volume = read_volume(tmp_path / "scaled.nii.gz", modality="CT")
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, ct_phantom.array)


def test_singleton_fourth_axis_is_squeezed(ct_phantom, tmp_path, save_nifti_with_nibabel):
    """A 4D file holding one volume reads as that volume."""
    save_nifti_with_nibabel(tmp_path / "one.nii.gz", ct_phantom.array[..., None],
                            ct_phantom.affine)
    np.testing.assert_array_equal(read_volume(tmp_path / "one.nii.gz").array, ct_phantom.array)


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.nii.zip"])
def test_write_nifti_refuses_other_extensions(name, ct_phantom, tmp_path):
    """Only .nii and .nii.gz are NIfTI names."""
    with pytest.raises(VolumeError, match=r"\.nii or \.nii\.gz") as caught:
        write_nifti(ct_phantom, tmp_path / name)
    assert name in str(caught.value)
    assert not list(tmp_path.iterdir())


def test_write_nifti_refuses_nan(tmp_path):
    """A volume with NaN is not written."""
    array = np.zeros((3, 4, 5), np.float32)
    array[1, 2, 3] = np.nan
    with pytest.raises(VolumeError, match="NaN") as caught:
        write_nifti(Volume(array, (1, 1, 1), np.eye(4), "MR"), tmp_path / "nan.nii.gz")
    assert "nan.nii.gz" in str(caught.value)


def test_mrnet_npy_keeps_its_slice_axis(tmp_path, assert_same_volume):
    """An MRNet exam keeps (slices, 256, 256) as (D, H, W), uint8, 1 mm, MR; NIfTI round trip."""
    exam = np.random.default_rng(3).integers(0, 256, size=(5, 256, 256), dtype=np.uint8)
    np.save(tmp_path / "0001.npy", exam)
    volume = read_volume(tmp_path / "0001.npy")
    np.testing.assert_array_equal(volume.array, exam)
    assert volume.array.dtype == np.uint8
    assert volume.spacing == (1.0, 1.0, 1.0) and volume.modality == "MR"
    np.testing.assert_array_equal(volume.affine, canonical_affine((1, 1, 1)))
    write_nifti(volume, tmp_path / "0001.nii.gz")
    assert_same_volume(read_volume(tmp_path / "0001.nii.gz"), volume)


def test_modality_fills_in_unknown_and_refuses_a_contradiction(ct_phantom, tmp_path,
                                                               save_nifti_with_nibabel):
    """modality= is used where the file records none; a recorded one must agree."""
    save_nifti_with_nibabel(tmp_path / "plain.nii.gz", ct_phantom.array, ct_phantom.affine)
    assert read_volume(tmp_path / "plain.nii.gz").modality == ""
    assert read_volume(tmp_path / "plain.nii.gz", modality="CT").modality == "CT"
    write_nifti(ct_phantom, tmp_path / "ct.nii.gz")
    with pytest.raises(VolumeError, match="is CT, not the MR"):
        read_volume(tmp_path / "ct.nii.gz", modality="MR")
    with pytest.raises(VolumeError, match="'CT' or 'MR'"):
        read_volume(tmp_path / "ct.nii.gz", modality="PET")
    np.save(tmp_path / "exam.npy", ct_phantom.array)
    assert read_volume(tmp_path / "exam.npy", modality="CT").modality == "CT"
