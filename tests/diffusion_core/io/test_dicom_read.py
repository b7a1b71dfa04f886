"""DICOM reading: single-frame series in any file order and plane, multi-frame files, bad series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from diffusion_core.io import (
    Volume,
    VolumeError,
    read_volume,
    write_dicom_series,
    write_nifti,
)


def shuffle_names(paths: list[Path], rng: np.random.Generator) -> list[Path]:
    """Rename files so that name order is a random permutation of slice order."""
    permutation = rng.permutation(len(paths))
    assert not np.array_equal(permutation, np.sort(permutation))
    renamed = []
    for path, rank in zip(paths, permutation, strict=True):
        target = path.with_name(f"IM{rank:04d}")
        path.rename(target)
        renamed.append(target)
    return renamed


def test_dicom_series_reads_like_the_nifti_it_came_from(ct_phantom, tmp_path, assert_same_volume):
    """The same scan as NIfTI and as a shuffled DICOM series (intercept -1024) reads the same."""
    write_nifti(ct_phantom, tmp_path / "ct.nii.gz")
    from_nifti = read_volume(tmp_path / "ct.nii.gz")
    paths = write_dicom_series(from_nifti, tmp_path / "series", rescale_intercept=-1024)
    shuffle_names(paths, np.random.default_rng(7))
    from_dicom = read_volume(tmp_path / "series")
    assert_same_volume(from_dicom, from_nifti)
    assert from_dicom.array.dtype == np.int16
    assert from_dicom.source == str(tmp_path / "series")


def test_sagittal_series_reads_to_the_canonical_array(ct_phantom, phantom_on_grid, tmp_path,
                                                       assert_same_volume):
    """Slices written sagittally (left to right, rows inferior, columns anterior) read canonical."""
    depth, height, width = ct_phantom.array.shape
    sd, sh, sw = ct_phantom.spacing
    affine = np.eye(4)
    affine[:3, :3] = np.array([(-sw, 0, 0), (0, 0, -sd), (0, sh, 0)], dtype=float).T
    affine[:3, 3] = (ct_phantom.affine @ [depth - 1, height - 1, 0, 1])[:3]
    shape = (width, depth, height)
    sagittal = Volume(phantom_on_grid(shape, affine), (sw, sd, sh), affine, "CT")
    paths = write_dicom_series(sagittal, tmp_path / "sagittal", rescale_intercept=-1024)
    orientation = [float(v) for v in pydicom.dcmread(paths[0]).ImageOrientationPatient]
    np.testing.assert_allclose(orientation, [0, -1, 0, 0, 0, -1], atol=1e-9)
    shuffle_names(paths, np.random.default_rng(1))
    assert_same_volume(read_volume(tmp_path / "sagittal"), ct_phantom)


def test_non_dicom_files_beside_a_series_are_ignored(ct_phantom, tmp_path, write_dicomdir_like):
    """Notes, a DICOMDIR and hidden files in a series folder do not disturb reading it."""
    folder = tmp_path / "series"
    write_dicom_series(ct_phantom, folder, rescale_intercept=-1024)
    (folder / "notes.txt").write_text("scanned on a Tuesday\n")
    (folder / ".DS_Store").write_bytes(b"\0\1\2")
    write_dicomdir_like(folder / "DICOMDIR")
    np.testing.assert_array_equal(read_volume(folder).array, ct_phantom.array)


@pytest.mark.parametrize(("removed", "count"), [([5], 1), ([3, 4], 2)])
def test_missing_slices_are_reported(removed, count, ct_phantom, tmp_path):
    """A gap in the series says how many slices are missing and between which positions."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024)
    z = [float(pydicom.dcmread(p).ImagePositionPatient[2]) for p in paths]
    for k in removed:
        paths[k].unlink()
    with pytest.raises(VolumeError) as caught:
        read_volume(tmp_path / "series")
    message = str(caught.value)
    assert str(tmp_path / "series") in message
    assert f"missing {count} slice(s)" in message
    assert f"{z[removed[0] - 1]:.4g} and {z[removed[-1] + 1]:.4g}" in message


def test_two_series_in_one_folder_are_refused(ct_phantom, tmp_path):
    """Two SeriesInstanceUIDs in one folder: the error names the folder and both series."""
    folder = tmp_path / "mixed"
    first = write_dicom_series(ct_phantom, folder, rescale_intercept=-1024)
    second = write_dicom_series(ct_phantom, folder, rescale_intercept=-1024)
    with pytest.raises(VolumeError, match="2 DICOM series") as caught:
        read_volume(folder)
    for paths in (first, second):
        assert pydicom.dcmread(paths[0]).SeriesInstanceUID in str(caught.value)
    assert str(folder) in str(caught.value)


@pytest.mark.parametrize(("change", "problem"), [
    ("duplicate", "at the same position"),
    ("irregular", "non-uniform slice spacing"),
    ("tilted", "oriented differently"),
])
def test_inconsistent_series_geometry_is_refused(change, problem, ct_phantom, tmp_path):
    """Repeated positions, uneven steps or a slice in another plane are not one volume."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024)
    dataset = pydicom.dcmread(paths[4])
    x, y, z = (float(v) for v in dataset.ImagePositionPatient)
    if change == "duplicate":
        dataset.ImagePositionPatient = pydicom.dcmread(paths[5]).ImagePositionPatient
    elif change == "irregular":
        dataset.ImagePositionPatient = [x, y, z + 1.3]
    else:
        dataset.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    dataset.save_as(paths[4])
    with pytest.raises(VolumeError, match=problem) as caught:
        read_volume(tmp_path / "series")
    assert str(tmp_path / "series") in str(caught.value)


def test_enhanced_mr_multiframe_reads_as_3d_mr(pydicom_file):
    """pydicom-data's emri_small.dcm (10 frames of 64 x 64, no plane positions) is a 3D MR."""
    path = pydicom_file("emri_small.dcm")
    volume = read_volume(path)
    frames = pydicom.dcmread(path).pixel_array
    assert volume.array.shape == (10, 64, 64) and volume.modality == "MR"
    np.testing.assert_array_equal(volume.array, frames)  # frame order kept as D
    assert volume.spacing == (1.2, 1.0, 1.0)  # SpacingBetweenSlices; no PixelSpacing in it


def test_enhanced_ct_frames_follow_their_functional_groups(tmp_path, assert_same_volume,
                                                           pydicom_file):
    """eCT_Supplemental.dcm: frames placed by plane position, rows flipped to canonical, in HU."""
    path = pydicom_file("eCT_Supplemental.dcm")
    dataset = pydicom.dcmread(path)
    volume = read_volume(path)
    assert volume.modality == "CT" and volume.array.shape == (2, 512, 512)
    np.testing.assert_allclose(volume.spacing, (10.0, 0.388672, 0.388672))
    # Its rows run to the patient's right (IOP -1, 0, 0), so W is reversed; intercept -1024.
    expected = dataset.pixel_array.astype(np.int32)[:, :, ::-1] - 1024
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.affine[2, 3] == pytest.approx(-159.0)  # first frame is the inferior one

    # The same file with frames stored in the opposite order reads identically.
    items = list(dataset.PerFrameFunctionalGroupsSequence)
    dataset.PerFrameFunctionalGroupsSequence = items[::-1]
    half = len(dataset.PixelData) // 2
    dataset.PixelData = dataset.PixelData[half:] + dataset.PixelData[:half]
    dataset.save_as(tmp_path / "reversed.dcm")
    assert_same_volume(read_volume(tmp_path / "reversed.dcm"), volume)


def test_reading_a_series_opens_and_parses_each_file_once(ct_phantom, tmp_path, file_reads):
    """The 'DICM' check, sorting and pixel reading share one open and one parse per file."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024)
    (tmp_path / "series" / "notes.txt").write_text("not DICOM\n")
    file_reads["opened"].clear()
    np.testing.assert_array_equal(read_volume(tmp_path / "series").array, ct_phantom.array)
    assert sorted(file_reads["opened"]) == sorted([*paths, tmp_path / "series" / "notes.txt"])
    assert len(file_reads["parsed"]) == len(paths)
    assert not any(options.get("stop_before_pixels") for options in file_reads["parsed"])
