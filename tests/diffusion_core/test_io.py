"""Volume I/O: NIfTI, DICOM series, multi-frame DICOM and .npy read to one canonical Volume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from diffusion_core.io import (
    Volume,
    VolumeError,
    canonical_affine,
    find_scans,
    read_volume,
    write_dicom_series,
    write_nifti,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def assert_same_volume(read: Volume, expected: Volume) -> None:
    """Same array (values and dtype) and modality; geometry equal to float32 precision."""
    np.testing.assert_array_equal(read.array, expected.array)
    assert read.array.dtype == expected.array.dtype
    np.testing.assert_allclose(read.spacing, expected.spacing, rtol=1e-6)
    np.testing.assert_allclose(read.affine, expected.affine, atol=1e-5)
    assert read.modality == expected.modality


def save_nifti_with_nibabel(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """A plain NIfTI file as other tools write it (no mdiff description)."""
    image = nib.Nifti1Image(array, affine)
    image.set_sform(affine, code=1)
    image.set_qform(affine, code=1)
    nib.save(image, path)


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


def write_dicomdir_like(path: Path) -> None:
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


def pydicom_file(name: str) -> Path:
    """A test file shipped with pydicom or pydicom-data, found offline."""
    return Path(get_testdata_file(name, download=False))


# --------------------------------------------------------------------------- orientation


def test_phantom_features_sit_where_the_canonical_axes_say(ct_phantom, tmp_path):
    """D runs to superior, H to posterior, W to patient left: the bone ball shows it."""
    write_nifti(ct_phantom, tmp_path / "ct.nii.gz")
    volume = read_volume(tmp_path / "ct.nii.gz")
    d, h, w = np.argwhere(volume.array >= 600).mean(axis=0)
    depth, height, width = volume.array.shape
    assert d > depth / 2 and h < height / 2 and w > width / 2  # superior, anterior, left
    axes = volume.affine[:3, :3]
    assert axes[2, 0] > 0 and axes[1, 1] < 0 and axes[0, 2] < 0  # +S, -A (P), -R (L)


@pytest.mark.parametrize("layout", ["RAS", "AIR"])
def test_non_canonical_nifti_loads_to_the_canonical_array(layout, ct_phantom, phantom_on_grid,
                                                          tmp_path):
    """The same voxels stored in another axis order and direction read back canonical."""
    depth, height, width = ct_phantom.array.shape
    sd, sh, sw = ct_phantom.spacing
    canonical = ct_phantom.affine
    if layout == "RAS":  # axes (W, H, D) running right, anterior, superior
        shape = (width, height, depth)
        columns = [(sw, 0, 0), (0, sh, 0), (0, 0, sd)]
        first = canonical @ [0, height - 1, width - 1, 1]
    else:  # axes (H, D, W) running anterior, inferior, right
        shape = (height, depth, width)
        columns = [(0, sh, 0), (0, 0, -sd), (sw, 0, 0)]
        first = canonical @ [depth - 1, height - 1, width - 1, 1]
    affine = np.eye(4)
    affine[:3, :3] = np.array(columns, dtype=float).T
    affine[:3, 3] = first[:3]
    save_nifti_with_nibabel(tmp_path / "scan.nii", phantom_on_grid(shape, affine), affine)
    volume = read_volume(tmp_path / "scan.nii", modality="CT")
    assert_same_volume(volume, ct_phantom)


def test_oblique_nifti_takes_the_closest_canonical_axes(ct_phantom, tmp_path):
    """A scan tilted 12 degrees is not resampled: same voxels, axes the nearest canonical ones."""
    angle = np.deg2rad(12.0)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    # Stored as (W, H, D) running left-to-right reversed, i.e. the canonical array transposed.
    stored = np.ascontiguousarray(ct_phantom.array.transpose(2, 1, 0)[::-1])
    width = ct_phantom.array.shape[2]
    flip = np.eye(4)
    flip[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    flip[2, 3] = width - 1  # stored index (i, j, k) is canonical (k, j, width - 1 - i)
    stored_affine = rotation @ ct_phantom.affine @ flip
    save_nifti_with_nibabel(tmp_path / "oblique.nii.gz", stored, stored_affine)
    volume = read_volume(tmp_path / "oblique.nii.gz")
    np.testing.assert_array_equal(volume.array, ct_phantom.array)
    np.testing.assert_allclose(volume.affine, rotation @ ct_phantom.affine, atol=1e-4)
    np.testing.assert_allclose(volume.spacing, ct_phantom.spacing, rtol=1e-6)


# --------------------------------------------------------------------------- NIfTI


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_nifti_round_trip_is_identical(name, ct_phantom, tmp_path):
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
def test_nifti_keeps_dtype_and_modality(dtype, modality, tmp_path):
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


def test_singleton_fourth_axis_is_squeezed(ct_phantom, tmp_path):
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


# --------------------------------------------------------------------------- modality and .npy


def test_mrnet_npy_keeps_its_slice_axis(tmp_path):
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


def test_modality_fills_in_unknown_and_refuses_a_contradiction(ct_phantom, tmp_path):
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


# --------------------------------------------------------------------------- DICOM series


def test_dicom_series_reads_like_the_nifti_it_came_from(ct_phantom, tmp_path):
    """The same scan as NIfTI and as a shuffled DICOM series (intercept -1024) reads the same."""
    write_nifti(ct_phantom, tmp_path / "ct.nii.gz")
    from_nifti = read_volume(tmp_path / "ct.nii.gz")
    paths = write_dicom_series(from_nifti, tmp_path / "series", rescale_intercept=-1024)
    shuffle_names(paths, np.random.default_rng(7))
    from_dicom = read_volume(tmp_path / "series")
    assert_same_volume(from_dicom, from_nifti)
    assert from_dicom.array.dtype == np.int16
    assert from_dicom.source == str(tmp_path / "series")


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
    heights = [float(d.ImagePositionPatient[2]) for d in datasets]
    np.testing.assert_allclose(np.diff(heights), 3.0)  # array[k] goes up the patient
    for k, (path, dataset) in enumerate(zip(paths, datasets, strict=True)):
        assert path.name == f"{dataset.SOPInstanceUID}.dcm"
        assert dataset.InstanceNumber == k + 1
        np.testing.assert_array_equal(dataset.pixel_array.astype(np.int32) - 1024,
                                      ct_phantom.array[k])
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)


def test_sagittal_series_reads_to_the_canonical_array(ct_phantom, phantom_on_grid, tmp_path):
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


def test_non_dicom_files_beside_a_series_are_ignored(ct_phantom, tmp_path):
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


# --------------------------------------------------------------------------- multi-frame DICOM


def test_enhanced_mr_multiframe_reads_as_3d_mr():
    """pydicom-data's emri_small.dcm (10 frames of 64 x 64, no plane positions) is a 3D MR."""
    path = pydicom_file("emri_small.dcm")
    volume = read_volume(path)
    frames = pydicom.dcmread(path).pixel_array
    assert volume.array.shape == (10, 64, 64) and volume.modality == "MR"
    np.testing.assert_array_equal(volume.array, frames)  # frame order kept as D
    assert volume.spacing == (1.2, 1.0, 1.0)  # SpacingBetweenSlices; no PixelSpacing in it


def test_enhanced_ct_frames_follow_their_functional_groups(tmp_path):
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


# --------------------------------------------------------------------------- bad inputs


def _truncated_copy(source: Path, target: Path, keep: int) -> Path:
    """target holding the first `keep` bytes of source (negative: all but the last)."""
    data = source.read_bytes()
    target.write_bytes(data[:keep])
    return target


def _bad_input(kind: str, tmp: Path, ct: Volume) -> tuple[Path, Path]:
    """Create one bad input; returns (what to read, the file the message must name)."""
    if kind == "missing file":
        return tmp / "absent.nii.gz", tmp / "absent.nii.gz"
    if kind == "unsupported extension":
        (tmp / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        return tmp / "scan.png", tmp / "scan.png"
    if kind == "text named .nii":
        (tmp / "notes.nii").write_text("not an image\n" * 40)
        return tmp / "notes.nii", tmp / "notes.nii"
    if kind in ("truncated .nii.gz", "truncated .nii", "corrupt .nii.gz"):
        name = "ct.nii" if kind == "truncated .nii" else "ct.nii.gz"
        write_nifti(ct, tmp / name)
        data = (tmp / name).read_bytes()
        if kind == "corrupt .nii.gz":
            data = data[:40] + bytes(b ^ 0x5A for b in data[40:200]) + data[200:]
        else:
            data = data[:len(data) // 2]
        (tmp / ("bad_" + name)).write_bytes(data)
        return tmp / ("bad_" + name), tmp / ("bad_" + name)
    if kind in ("2D NIfTI", "flat NIfTI", "4D NIfTI", "NaN NIfTI"):
        array = {"2D NIfTI": np.zeros((8, 8), np.float32),
                 "flat NIfTI": np.zeros((8, 8, 1), np.float32),
                 "4D NIfTI": np.zeros((4, 4, 4, 3), np.float32),
                 "NaN NIfTI": np.full((4, 4, 4), np.nan, np.float32)}[kind]
        save_nifti_with_nibabel(tmp / "image.nii.gz", array, np.eye(4))
        return tmp / "image.nii.gz", tmp / "image.nii.gz"
    if kind in ("2D .npy", "Inf .npy", "pickled .npy"):
        array = {"2D .npy": np.zeros((256, 256), np.uint8),
                 "Inf .npy": np.full((3, 4, 4), np.inf),
                 "pickled .npy": np.array([{"exam": 1}], dtype=object)}[kind]
        np.save(tmp / "exam.npy", array, allow_pickle=True)
        return tmp / "exam.npy", tmp / "exam.npy"
    if kind == "empty folder":
        (tmp / "empty").mkdir()
        return tmp / "empty", tmp / "empty"
    if kind == "folder without DICOM":
        (tmp / "docs").mkdir()
        (tmp / "docs" / "readme.txt").write_text("no images here\n")
        write_dicomdir_like(tmp / "docs" / "DICOMDIR")
        return tmp / "docs", tmp / "docs"
    if kind in ("truncated DICOM pixels", "truncated DICOM header"):
        paths = write_dicom_series(ct, tmp / "series", rescale_intercept=-1024)
        keep = -100 if kind == "truncated DICOM pixels" else 400
        _truncated_copy(paths[3], paths[3], keep)
        return tmp / "series", paths[3]
    if kind == "single DICOM slice file":
        shutil.copy(pydicom_file("CT_small.dcm"), tmp / "CT_small.dcm")
        return tmp / "CT_small.dcm", tmp / "CT_small.dcm"
    if kind == "folder with one slice":
        (tmp / "one").mkdir()
        shutil.copy(pydicom_file("CT_small.dcm"), tmp / "one" / "slice.dcm")
        return tmp / "one", tmp / "one"
    if kind == "DICOMDIR":
        write_dicomdir_like(tmp / "DICOMDIR.dcm")
        return tmp / "DICOMDIR.dcm", tmp / "DICOMDIR.dcm"
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "problem"), [
    ("missing file", "does not exist"),
    ("unsupported extension", "is not a NIfTI"),
    ("text named .nii", "not a valid NIfTI file"),
    ("truncated .nii.gz", "truncated"),
    ("truncated .nii", "truncated"),
    ("corrupt .nii.gz", "truncated or not a valid NIfTI"),
    ("2D NIfTI", "2D image"),
    ("flat NIfTI", "2D image"),
    ("4D NIfTI", "4D series"),
    ("NaN NIfTI", "NaN or infinite"),
    ("2D .npy", "2D array"),
    ("Inf .npy", "NaN or infinite"),
    ("pickled .npy", "not a numpy array file"),
    ("empty folder", "empty folder"),
    ("folder without DICOM", "no DICOM image files"),
    ("truncated DICOM pixels", "truncated"),
    ("truncated DICOM header", "truncated"),
    ("single DICOM slice file", "single 2D DICOM image"),
    ("folder with one slice", "single DICOM slice"),
    ("DICOMDIR", "without image data"),
])
def test_bad_input_raises_volume_error_naming_the_file(kind, problem, ct_phantom, tmp_path):
    """Each bad input is one VolumeError whose one-line message names the file and problem."""
    target, named = _bad_input(kind, tmp_path, ct_phantom)
    with pytest.raises(VolumeError) as caught:
        read_volume(target)
    message = str(caught.value)
    assert str(named) in message
    assert problem in message
    assert "\n" not in message


# --------------------------------------------------------------------------- find_scans


def test_find_scans_lists_each_scan_of_a_mixed_folder(ct_phantom, tmp_path):
    """NIfTI, .npy, multi-frame files and series folders are found; the rest is skipped."""
    raw = tmp_path / "raw"
    write_nifti(ct_phantom, raw / "b.nii.gz")
    write_nifti(ct_phantom, raw / "a.nii")
    np.save(raw / "exam.npy", np.zeros((3, 8, 8), np.uint8))
    write_nifti(ct_phantom, raw / ".hidden.nii.gz")
    (raw / "notes.txt").write_text("hello\n")
    write_dicomdir_like(raw / "DICOMDIR")
    (raw / "multi").mkdir()
    shutil.copy(pydicom_file("emri_small.dcm"), raw / "multi" / "enhanced")
    write_dicom_series(ct_phantom, raw / "patient1" / "ct", rescale_intercept=-1024)
    (raw / "patient1" / "ct" / "report.txt").write_text("findings\n")
    series = write_dicom_series(ct_phantom, raw / "patient2", rescale_intercept=-1024)
    series[0].rename(raw / "patient2" / "IM_no_extension")
    (raw / "patient3" / "empty").mkdir(parents=True)
    expected = sorted([raw / "a.nii", raw / "b.nii.gz", raw / "exam.npy",
                       raw / "multi" / "enhanced", raw / "patient1" / "ct", raw / "patient2"])
    assert find_scans(raw) == expected
    for scan in expected:
        assert read_volume(scan).array.ndim == 3


@pytest.mark.parametrize("state", ["missing", "empty", "only notes"])
def test_find_scans_refuses_a_folder_without_scans(state, tmp_path):
    """A missing folder, an empty one or one without scans is a VolumeError naming it."""
    folder = tmp_path / "raw"
    if state != "missing":
        folder.mkdir()
    if state == "only notes":
        (folder / "notes.txt").write_text("nothing\n")
    with pytest.raises(VolumeError) as caught:
        find_scans(folder)
    assert str(folder) in str(caught.value)


def test_volume_rejects_a_wrong_shape():
    """A Volume is 3D with 3 spacings and a 4x4 affine."""
    with pytest.raises(ValueError, match="3D array"):
        Volume(np.zeros((4, 4)), (1, 1, 1), np.eye(4), "CT")


def test_write_dicom_series_paths_exist(ct_phantom, tmp_path):
    """Every returned path is a file; nothing else is written."""
    paths = write_dicom_series(ct_phantom, tmp_path / "series", rescale_intercept=-1024)
    assert sorted(paths) == sorted((tmp_path / "series").iterdir())
    assert all(os.path.getsize(p) > 128 for p in paths)
