"""Blinded case files: int16 NIfTI with one fixed header, gzipped without name or time stamp.

Every case of a study gets byte-identical headers (affine, qform/sform codes, units, description,
calibration, no intent); only the voxel data differ. The gzip stream carries no file name and a
zero time stamp. Files are then padded to one common size with an empty gzip member whose
comment field is filler (RFC 1952 allows several members; gzip, zlib, nibabel and ITK decompress
the file to the same bytes), so the compressed size, which follows image content, tells nothing.

`read_case` is the one reader of the format: the audit compares what it returns, and the reader
app displays it.
"""

from __future__ import annotations

import gzip
import io
import struct
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from diffusion_core.io import VolumeError, read_volume
from diffusion_core.modality import modality_header
from studies.normalise import Grid

GZIP_LEVEL = 6
SIZE_QUANTUM = 4096  # padded sizes are rounded up to this, so the size says nothing either
DATA_DTYPE = np.int16
XFORM_CODE = 1  # scanner anatomical: the same for qform and sform of every case
_GZIP_MAGIC = b"\x1f\x8b"
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_OS_UNKNOWN = 255
# header (10) + comment terminator (1) + empty final deflate block (2) + CRC32 and size (8)
PADDING_OVERHEAD = 21


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
    """The gzipped NIfTI bytes of one case (zero time stamp, no file name)."""
    return gzip.compress(nifti_image(array, grid, modality).to_bytes(), compresslevel=GZIP_LEVEL,
                         mtime=0)


def padding_member(size: int) -> bytes:
    """An empty gzip member of exactly `size` bytes (at least PADDING_OVERHEAD)."""
    if size < PADDING_OVERHEAD:
        raise ValueError(f"a padding member needs at least {PADDING_OVERHEAD} bytes, not {size}")
    header = _GZIP_MAGIC + struct.pack("<BBIBB", 8, _FCOMMENT, 0, 0, _OS_UNKNOWN)
    comment = b" " * (size - PADDING_OVERHEAD) + b"\x00"
    empty_deflate = b"\x03\x00"
    return header + comment + empty_deflate + struct.pack("<II", 0, 0)


def common_size(sizes: list[int]) -> int:
    """The size every case file is padded to: room for one padding member, then rounded up."""
    needed = max(sizes) + PADDING_OVERHEAD
    return -(-needed // SIZE_QUANTUM) * SIZE_QUANTUM


def pad_file(path: Path, size: int) -> None:
    """Append one padding member so that the file is exactly `size` bytes long."""
    current = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(padding_member(size - current))


@dataclass(frozen=True)
class CaseFile:
    """One case file as read back: the image to show, and the file facts the audit compares."""

    array: np.ndarray                   # (D, H, W) in canonical orientation; int16 in a study
    spacing: tuple[float, float, float]  # mm along D, H, W
    modality: str                       # "CT" or "MR"; "" when the header records none
    dtype: np.dtype                     # the stored data type
    gzip_header: bytes   # the first gzip member's header, optional fields included
    nifti_header: bytes  # the NIfTI header block up to the voxel data (extensions included)


def gzip_member_header(data: bytes) -> bytes:
    """The header of the gzip member at the start of `data`, with its optional fields."""
    if len(data) < 10 or data[:2] != _GZIP_MAGIC:
        raise ValueError("not a gzip file")
    flags, end = data[3], 10
    if flags & _FEXTRA:
        end += 2 + int.from_bytes(data[end:end + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            end = data.index(b"\x00", end) + 1
    if flags & _FHCRC:
        end += 2
    return data[:end]


def read_case(path: str | Path) -> CaseFile:
    """Read one case file; VolumeError (naming the file) when it is no gzipped NIfTI volume.

    `diffusion_core.io` reads the image, so a file in another orientation still comes back
    canonical and integers stay integers (no float copy).
    """
    path = Path(path)
    volume = read_volume(path)
    try:
        data = path.read_bytes()
        # The NIfTI header block ends where the voxels start (`vox_offset`), beyond the fixed
        # header when extensions follow it; only that much is decompressed.
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            fixed = stream.read(nib.Nifti1Header.sizeof_hdr)
            header = nib.Nifti1Header.from_fileobj(io.BytesIO(fixed))
            block = fixed + stream.read(max(0, int(header["vox_offset"]) - len(fixed)))
        gzip_header = gzip_member_header(data)
    except (OSError, EOFError, ValueError) as err:
        raise VolumeError(f"{path} is not a gzipped NIfTI case file ({err}).") from None
    return CaseFile(np.asarray(volume.array), volume.spacing, volume.modality,
                    header.get_data_dtype(), gzip_header, block)
