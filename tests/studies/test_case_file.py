"""studies.case_file: the uncompressed case format, reading a case back, version 1 cases."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import VolumeError
from studies.case_file import (
    encode_case,
    gzip_members,
    nifti_image,
    read_case,
)
from studies.normalise import Grid

GRID = Grid((4, 6, 5), (2.5, 0.8, 0.8))


def _case(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 2000, size=GRID.shape).astype(np.int16)


def test_a_case_file_is_the_header_block_then_the_voxels_uncompressed():
    data = encode_case(_case(), GRID, "CT")
    assert len(data) == 352 + 2 * 4 * 6 * 5
    assert data[:2] != b"\x1f\x8b" and data[344:348] == b"n+1\x00"  # single-file NIfTI-1
    image = nib.Nifti1Image.from_bytes(data)
    assert image.header["descrip"].item() == b"mdiff modality=CT"
    assert image.get_data_dtype() == np.int16
    assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (1, 1)
    assert data[352:] == np.asarray(_case(), dtype="<i2").tobytes(order="F")


def test_every_case_of_a_grid_has_the_same_size_and_header():
    """Different contents, same bytes up to the voxels: the size says nothing by construction."""
    first, second = encode_case(_case(1), GRID, "MR"), encode_case(_case(2), GRID, "MR")
    assert len(first) == len(second) == 352 + 2 * 4 * 6 * 5
    assert first[:352] == second[:352] and first[352:] != second[352:]


@pytest.mark.parametrize("array", [np.zeros((4, 6, 5), np.float32), np.zeros((4, 6, 6), np.int16)])
def test_a_case_must_be_int16_on_the_study_grid(array):
    with pytest.raises(ValueError, match="a case must be int16 of shape \\(4, 6, 5\\)"):
        nifti_image(array, GRID, "MR")


def test_read_case_gives_back_the_case_and_its_file_facts(tmp_path):
    array = _case(1)
    path = tmp_path / "case.nii"
    path.write_bytes(encode_case(array, GRID, "MR"))
    case = read_case(path)
    np.testing.assert_array_equal(case.array, array)
    assert case.array.dtype == np.int16 and case.dtype == np.int16
    assert case.spacing == pytest.approx((2.5, 0.8, 0.8))
    assert case.modality == "MR"
    assert case.gzip_header == b""
    # NIfTI-1: a 348-byte header, 4 bytes of extension flag, then the voxels.
    assert case.nifti_header == path.read_bytes()[:352]


def test_a_version_1_case_is_read_with_its_gzip_header(tmp_path, version_1):
    """Old studies' gzipped, padded cases: the same image and header block as the new format."""
    array = _case(3)
    path = tmp_path / "case.nii.gz"
    path.write_bytes(version_1.legacy_case_bytes(array, GRID, "CT", size=8192))
    assert path.stat().st_size == 8192
    case = read_case(path)
    np.testing.assert_array_equal(case.array, array)
    assert case.modality == "CT" and case.dtype == np.int16
    assert len(case.gzip_header) == 10 and case.gzip_header[:2] == b"\x1f\x8b"
    assert case.nifti_header == encode_case(array, GRID, "CT")[:352]


def test_read_case_keeps_a_gzip_file_name_in_the_header(tmp_path):
    """What the audit must see: optional gzip fields belong to the header it compares."""
    raw = nifti_image(_case(), GRID, "MR").to_bytes()
    path = tmp_path / "named.nii.gz"
    with open(path, "wb") as file, gzip.GzipFile("patient.nii", "wb", fileobj=file,
                                                mtime=0) as handle:
        handle.write(raw)
    header = read_case(path).gzip_header
    assert header.endswith(b"patient.nii\x00") and header[3] & 0x08


def test_gzip_members_give_the_true_compressed_size_under_the_padding(version_1):
    """The first member's size is what the image took to compress, whatever follows it."""
    nifti = nifti_image(_case(4), GRID, "MR").to_bytes()
    compressed = gzip.compress(nifti, compresslevel=6, mtime=0)
    padded = compressed + version_1.padding_member(5000) + version_1.padding_member(30)
    members = gzip_members(padded)
    assert [m.size for m in members] == [len(compressed), 5000, 30]
    assert members[0].header == compressed[:10] and members[1].header[3] == 0x10
    with pytest.raises(ValueError, match="truncated"):
        gzip_members(compressed[:-20])
    with pytest.raises(ValueError, match="no gzip member"):
        gzip_members(compressed + b"trailing bytes")


@pytest.mark.parametrize("name", ["broken.nii", "broken.nii.gz"])
def test_read_case_of_a_broken_file_names_it(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x1f\x8bnot really gzip" if name.endswith(".gz") else b"short")
    with pytest.raises(VolumeError, match=name):
        read_case(path)
