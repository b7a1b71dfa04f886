"""Finding scans in a folder and reading any of them: every bad input is one clear VolumeError."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import (
    Volume,
    VolumeError,
    canonical_affine,
    constant_value,
    find_scans,
    modality_doubt,
    read_volume,
    search_scans,
    write_dicom_series,
    write_nifti,
)
from diffusion_core.sources import open_source


def _truncated_copy(source: Path, target: Path, keep: int) -> Path:
    """target holding the first `keep` bytes of source (negative: all but the last)."""
    data = source.read_bytes()
    target.write_bytes(data[:keep])
    return target


def _bad_input(kind: str, tmp: Path, ct: Volume, save_nifti_with_nibabel: Callable,
               write_dicomdir_like: Callable, pydicom_file: Callable) -> tuple[Path, Path]:
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
def test_bad_input_raises_volume_error_naming_the_file(kind, problem, ct_phantom, tmp_path,
                                                       save_nifti_with_nibabel,
                                                       write_dicomdir_like, pydicom_file):
    """Each bad input is one VolumeError whose one-line message names the file and problem."""
    target, named = _bad_input(kind, tmp_path, ct_phantom, save_nifti_with_nibabel,
                               write_dicomdir_like, pydicom_file)
    with pytest.raises(VolumeError) as caught:
        read_volume(target)
    message = str(caught.value)
    assert str(named) in message
    assert problem in message
    assert "\n" not in message


def test_find_scans_lists_each_scan_of_a_mixed_folder(ct_phantom, tmp_path, write_dicomdir_like,
                                                      pydicom_file):
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


def test_listing_and_reading_a_series_parse_each_file_fully_once(ct_phantom, tmp_path,
                                                                  file_reads):
    """find_scans reads only headers (one open per file); reading then opens each file once
    more and parses it in full, once."""
    paths = write_dicom_series(ct_phantom, tmp_path / "raw" / "series", rescale_intercept=-1024)
    file_reads["opened"].clear()
    (scan,) = find_scans(tmp_path / "raw")
    assert sorted(file_reads["opened"]) == sorted(paths)
    assert all(options.get("stop_before_pixels") for options in file_reads["parsed"])
    file_reads["opened"].clear()
    file_reads["parsed"].clear()
    read_volume(scan)
    assert sorted(file_reads["opened"]) == sorted(paths)
    assert len(file_reads["parsed"]) == len(paths)
    assert not any(options.get("stop_before_pixels") for options in file_reads["parsed"])


# ------------------------------------------------------------------- DICOM that is no scan

NOT_SCANS = [("liver.dcm", "Segmentation Storage (modality SEG)"),
             ("rtdose.dcm", "RT Dose Storage (modality RTDOSE)"),
             ("examples_palette.dcm", "Ultrasound Image Storage (modality US)")]


@pytest.mark.parametrize(("name", "named"), NOT_SCANS)
def test_dicom_that_is_no_ct_or_mr_image_is_skipped_with_its_modality(name, named, tmp_path,
                                                                        pydicom_file, ct_phantom):
    """pydicom's segmentation, RT dose and palette-colour ultrasound files are images but no
    CT or MR scans: listed as skipped, their class and modality named, never read as MR."""
    raw = tmp_path / "raw"
    write_dicom_series(ct_phantom, raw / "ct", rescale_intercept=-1024)
    shutil.copy(pydicom_file(name), raw / name)
    shutil.copy(pydicom_file(name), raw / "ct" / name)  # beside a series: not one of its slices
    scans, skipped = search_scans(raw)
    assert scans == [raw / "ct"]
    assert [s.path for s in skipped] == [raw / name, raw / "ct" / name]
    assert all(s.reason == f"{s.path} is a DICOM {named}, not a CT or MR image" for s in skipped)
    assert read_volume(raw / "ct").array.shape == ct_phantom.array.shape
    source = open_source(raw)
    assert [item.path for item in source.items] == [raw / "ct"]
    assert list(source.skipped) == skipped
    with pytest.raises(VolumeError, match=f"is a DICOM {re.escape(named)}, not a CT or MR"):
        read_volume(raw / name)


def test_a_folder_of_only_other_dicom_holds_no_scans_and_says_why(tmp_path, pydicom_file):
    folder = tmp_path / "dose"
    folder.mkdir()
    shutil.copy(pydicom_file("rtdose.dcm"), folder / "rtdose.dcm")
    with pytest.raises(VolumeError, match="holds no scans .* RT Dose Storage .modality RTDOSE."):
        search_scans(folder)
    shutil.copy(pydicom_file("liver_1frame.dcm"), folder / "seg.dcm")
    with pytest.raises(VolumeError, match="holds no DICOM CT or MR image files .rtdose.dcm is"):
        read_volume(folder)


def test_ct_and_mr_image_storage_are_scans(tmp_path, pydicom_file, ct_phantom):
    """Enhanced MR (multi-frame) and CT Image Storage series are kept; nothing is skipped."""
    raw = tmp_path / "raw"
    write_dicom_series(ct_phantom, raw / "ct", rescale_intercept=-1024)
    (raw / "mr").mkdir()
    shutil.copy(pydicom_file("emri_small.dcm"), raw / "mr" / "enhanced.dcm")
    assert search_scans(raw) == ([raw / "ct", raw / "mr" / "enhanced.dcm"], [])


# -------------------------------------------------------------- constant and doubtful values


def test_constant_value_names_the_one_value_of_an_empty_scan():
    assert constant_value(np.zeros((2, 3, 4), np.int16)) == 0.0
    assert constant_value(np.full((2, 2, 2), -1024.0)) == -1024.0
    assert constant_value(np.arange(8).reshape(2, 2, 2)) is None


def _volume(array: np.ndarray) -> Volume:
    return Volume(array, (1.0, 1.0, 1.0), canonical_affine((1.0, 1.0, 1.0)), "")


def test_values_that_look_like_the_other_modality_are_doubted(ct_phantom):
    """HU air under MR; a whole-valued 0-255 range under CT. Anything else raises no doubt."""
    doubt = modality_doubt(ct_phantom, "MR")
    assert doubt is not None and "like the air of a CT in Hounsfield units" in doubt
    assert modality_doubt(ct_phantom, "CT") is None
    eight_bit = _volume(np.random.default_rng(0).integers(0, 256, (4, 8, 8)).astype(np.uint8))
    doubt = modality_doubt(eight_bit, "CT")
    assert doubt is not None and "an 8-bit range" in doubt
    assert modality_doubt(eight_bit, "MR") is None
    as_floats = _volume(eight_bit.array.astype(np.float32))
    assert modality_doubt(as_floats, "CT") is not None
    unit = _volume(np.linspace(-1, 1, 256, dtype=np.float32).reshape(4, 8, 8))
    assert modality_doubt(unit, "MR") is None and modality_doubt(unit, "CT") is None
    assert modality_doubt(_volume(eight_bit.array * np.float32(3.5)), "CT") is None
