"""studies.case_file: the blinded case format, its padding, and reading a case back."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import VolumeError
from studies.case_file import (
    PADDING_OVERHEAD,
    common_size,
    encode_case,
    nifti_image,
    pad_file,
    padding_member,
    read_case,
)
from studies.normalise import Grid

GRID = Grid((4, 6, 5), (2.5, 0.8, 0.8))


def _case(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 2000, size=GRID.shape).astype(np.int16)


@pytest.mark.parametrize("size", [PADDING_OVERHEAD, 22, 4096])
def test_padding_member_has_the_size_asked_and_holds_nothing(size):
    member = padding_member(size)
    assert len(member) == size
    assert gzip.decompress(member) == b""


def test_padding_member_needs_room_for_its_header():
    with pytest.raises(ValueError, match="at least 21 bytes"):
        padding_member(20)


def test_common_size_leaves_room_for_padding_and_rounds_to_4096():
    assert common_size([100, 5000]) == 8192
    assert common_size([4075]) == 4096  # 4075 + 21 fits exactly
    assert common_size([4076]) == 8192


def test_encoded_case_has_no_name_no_time_and_the_modality_header():
    data = encode_case(_case(), GRID, "CT")
    assert data[:3] == b"\x1f\x8b\x08" and data[3] == 0  # deflate, no optional fields
    assert data[4:8] == b"\0\0\0\0"  # no time stamp
    image = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    assert image.header["descrip"].item() == b"mdiff modality=CT"
    assert image.get_data_dtype() == np.int16
    assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (1, 1)


@pytest.mark.parametrize("array", [np.zeros((4, 6, 5), np.float32), np.zeros((4, 6, 6), np.int16)])
def test_a_case_must_be_int16_on_the_study_grid(array):
    with pytest.raises(ValueError, match="a case must be int16 of shape \\(4, 6, 5\\)"):
        nifti_image(array, GRID, "MR")


def test_read_case_gives_back_the_padded_case_and_its_file_facts(tmp_path):
    array = _case(1)
    path = tmp_path / "case.nii.gz"
    path.write_bytes(encode_case(array, GRID, "MR"))
    pad_file(path, 8192)
    assert path.stat().st_size == 8192
    case = read_case(path)
    np.testing.assert_array_equal(case.array, array)
    assert case.array.dtype == np.int16 and case.dtype == np.int16
    assert case.spacing == pytest.approx((2.5, 0.8, 0.8))
    assert case.modality == "MR"
    assert len(case.gzip_header) == 10 and case.gzip_header[:2] == b"\x1f\x8b"
    # NIfTI-1: a 348-byte header, 4 bytes of extension flag, then the voxels.
    assert len(case.nifti_header) == 352
    assert case.nifti_header == gzip.decompress(path.read_bytes())[:352]


def test_read_case_keeps_a_gzip_file_name_in_the_header(tmp_path):
    """What the audit must see: optional gzip fields belong to the header it compares."""
    raw = nifti_image(_case(), GRID, "MR").to_bytes()
    path = tmp_path / "named.nii.gz"
    with open(path, "wb") as file, gzip.GzipFile("patient.nii", "wb", fileobj=file,
                                                mtime=0) as handle:
        handle.write(raw)
    header = read_case(path).gzip_header
    assert header.endswith(b"patient.nii\x00") and header[3] & 0x08


def test_read_case_of_a_broken_file_names_it(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(VolumeError, match="broken.nii.gz"):
        read_case(path)
