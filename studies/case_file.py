"""Blinded case files: uncompressed int16 NIfTI-1 with one fixed header.

Every case of a study gets byte-identical headers (affine, qform/sform codes, units, description,
calibration, no intent); only the voxel data differ. The file is the 352-byte header block then
the voxels, uncompressed, so every case of a study has the same size by construction: a
compressed size would follow the image's noise and so tell a smooth synthetic volume from a real
scan (docs/study-format.md, "Blinding").

Version 1 studies stored each case gzipped, padded to one size with empty gzip members; those files
are still read, and the sizes of their gzip members are given to the audit.

`read_case` is the one reader of the format: the audit compares what it returns, and the reader
app displays it.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError

from diffusion_core.io import VolumeError, read_volume
from diffusion_core.modality import modality_header
from studies.normalise import Grid

DATA_DTYPE = np.int16
XFORM_CODE = 1  # scanner anatomical: the same for qform and sform of every case
_GZIP_MAGIC = b"\x1f\x8b"
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_GZIP_TRAILER = 8  # CRC32 and size
MAX_HEADER_BLOCK = 1 << 16  # more than any case's header and extensions


def nifti_image(array: np.ndarray, grid: Grid, modality: str) -> nib.Nifti1Image:
    """The case as a NIfTI-1 image: (D, H, W) int16 on the study grid with the fixed header.

    The description records the study's modality the way `diffusion_core.io` reads it back.
    """
    if array.shape != grid.shape or array.dtype != DATA_DTYPE:
        raise ValueError(f"a case must be {DATA_DTYPE.__name__} of shape {grid.shape}, not "
                         f"{array.dtype} of shape {array.shape}")
    header = nib.Nifti1Header()
    header.set_data_dtype(DATA_DTYPE)
    image = nib.Nifti1Image(array, grid.affine, header)
    image.set_qform(grid.affine, code=XFORM_CODE)
    image.set_sform(grid.affine, code=XFORM_CODE)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = modality_header(modality)
    image.header["aux_file"] = b""
    image.header["cal_min"] = 0
    image.header["cal_max"] = 0
    image.header.set_intent("none")
    return image


def encode_case(array: np.ndarray, grid: Grid, modality: str) -> bytes:
    """The bytes of one case file: the fixed header block, then the voxels."""
    return nifti_image(array, grid, modality).to_bytes()


@dataclass(frozen=True)
class GzipMember:
    """One member of a gzip file: its header bytes and its length in the file."""

    header: bytes  # the member's header with its optional fields (name, comment, ...)
    size: int      # header, compressed data and trailer, in bytes


@dataclass(frozen=True)
class CaseFile:
    """One case file as read back: the image to show, and the file facts the audit compares."""

    array: np.ndarray                   # (D, H, W) in canonical orientation; int16 in a study
    spacing: tuple[float, float, float]  # mm along D, H, W
    modality: str                       # "CT" or "MR"; "" when the header records none
    dtype: np.dtype                     # the stored data type
    nifti_header: bytes  # the NIfTI header block up to the voxel data (extensions included)
    gzip_header: bytes = b""  # a version 1 (.nii.gz) case: its first gzip member's header


def _member_header_end(data: bytes, start: int) -> int:
    """Where the header of the gzip member starting at `start` ends (optional fields included)."""
    if len(data) < start + 10 or data[start:start + 2] != _GZIP_MAGIC:
        raise ValueError(f"no gzip member at byte {start}")
    flags, end = data[start + 3], start + 10
    if flags & _FEXTRA:
        end += 2 + int.from_bytes(data[end:end + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            end = data.index(b"\x00", end) + 1
    if flags & _FHCRC:
        end += 2
    return end


def gzip_members(data: bytes) -> tuple[GzipMember, ...]:
    """Every member of a gzip file, in order; ValueError when `data` is no complete gzip file.

    Each member's compressed length is what its deflate stream really took, so the first
    member's size is the file's true compressed size whatever padding follows.
    """
    members = []
    start = 0
    while start < len(data):
        header_end = _member_header_end(data, start)
        stream = zlib.decompressobj(-zlib.MAX_WBITS)
        # Feed in chunks so a padded file is not copied whole for every member.
        position = header_end
        while not stream.eof and position < len(data):
            stream.decompress(data[position:position + (1 << 20)])
            position = min(position + (1 << 20), len(data))
        if not stream.eof:
            raise ValueError("the last gzip member is truncated")
        end = position - len(stream.unused_data) + _GZIP_TRAILER
        if end > len(data):
            raise ValueError("the last gzip member lacks its trailer")
        members.append(GzipMember(data[start:header_end], end - start))
        start = end
    return tuple(members)


def read_case(path: str | Path) -> CaseFile:
    """Read one case file (.nii, or a version 1 .nii.gz); VolumeError naming it when it is none.

    `diffusion_core.io` reads the image, so a file in another orientation still comes back
    canonical and integers stay integers (no float copy).
    """
    path = Path(path)
    volume = read_volume(path)
    try:
        data = path.read_bytes()
        gzip_header = b""
        if data[:2] == _GZIP_MAGIC:
            gzip_header = data[:_member_header_end(data, 0)]
            # Only the header block is decompressed; the image is already read.
            data = _inflate_start(data[len(gzip_header):], MAX_HEADER_BLOCK)
        header = nib.Nifti1Header.from_fileobj(io.BytesIO(data[:nib.Nifti1Header.sizeof_hdr]))
        # The header block ends where the voxels start (`vox_offset`), beyond the fixed header
        # when extensions follow it.
        block = data[:max(int(header["vox_offset"]), nib.Nifti1Header.sizeof_hdr)]
    except (OSError, EOFError, ValueError, zlib.error, HeaderDataError) as err:
        raise VolumeError(f"{path} is not a NIfTI case file ({err}).") from None
    return CaseFile(np.asarray(volume.array), volume.spacing, volume.modality,
                    header.get_data_dtype(), block, gzip_header)


def _inflate_start(deflated: bytes, length: int) -> bytes:
    """The first `length` bytes a raw deflate stream decompresses to."""
    return zlib.decompressobj(-zlib.MAX_WBITS).decompress(deflated, length)
