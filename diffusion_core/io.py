"""Reading and writing 3D scans: NIfTI, DICOM series, multi-frame DICOM and MRNet .npy exams.

Every reader returns a `Volume` in DESIGN.md's canonical orientation: the array is (D, H, W) with
D running inferior -> superior, H anterior -> posterior and W patient right -> left (DICOM's LPS
axes), so `array[k]` shown row by row is the radiological axial view. The affine is NIfTI-style
(RAS+ world, mm) and maps the (d, h, w) indices of the returned array, so world coordinates are
those of the file. An oblique scan is put on the canonical axes closest to its own (nibabel's
`io_orientation`); it is not resampled, so its affine keeps the obliquity.

Files that carry no orientation (MRNet .npy exams, multi-frame DICOM without plane position) keep
their own slice axis as D and get a canonical affine with their spacing (1 mm where none is known).

Every failure raises `VolumeError`, whose message names the file and says the problem in one
sentence. numpy, nibabel and pydicom only: the reader app imports this module at start-up.
"""

from __future__ import annotations

import datetime
import gzip
import os
import re
import secrets
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import (
    apply_orientation,
    axcodes2ornt,
    inv_ornt_aff,
    io_orientation,
    ornt_transform,
)
from nibabel.spatialimages import HeaderDataError
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

MODALITIES = ("CT", "MR")
CANONICAL_AXCODES = ("S", "P", "L")
_CANONICAL_ORNT = axcodes2ornt(CANONICAL_AXCODES)
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_DESCRIP_MODALITY = re.compile(rb"modality=(CT|MR)\b")
_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
# Slice steps may wobble by this fraction of the nominal step (plus 1 micron) and still count as
# uniform; scanners write positions with a few decimals, so real jitter is far below this.
_STEP_TOLERANCE = 0.02


class VolumeError(Exception):
    """A scan could not be read or written; the message names the file and the problem."""


@dataclass
class Volume:
    """A 3D scan in canonical (D, H, W) orientation with its geometry and modality."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray
    modality: str
    source: str = ""

    def __post_init__(self) -> None:
        self.spacing = tuple(float(s) for s in self.spacing)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3 or len(self.spacing) != 3 or self.affine.shape != (4, 4):
            raise ValueError(f"a Volume needs a 3D array, 3 spacings and a 4x4 affine, not shapes "
                             f"{self.array.shape}, {len(self.spacing)} and {self.affine.shape}")


def canonical_affine(spacing: Sequence[float],
                     origin: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """The RAS+ affine of a canonical (S, P, L) array with this spacing and first-voxel origin."""
    sd, sh, sw = (float(s) for s in spacing)
    affine = np.array([[0.0, 0.0, -sw, 0.0], [0.0, -sh, 0.0, 0.0], [sd, 0.0, 0.0, 0.0],
                       [0.0, 0.0, 0.0, 1.0]])
    affine[:3, 3] = origin
    return affine


# --------------------------------------------------------------------------- public entry points


def read_volume(path: str | os.PathLike, *, modality: str | None = None) -> Volume:
    """Read a NIfTI file, a DICOM series folder, a multi-frame DICOM file or an MRNet .npy exam.

    `modality` ("CT" or "MR") is used when the file does not record one; a file that records
    another modality is an error.
    """
    path = Path(path)
    if modality is not None and modality not in MODALITIES:
        raise VolumeError(f"Cannot read {path}: modality must be 'CT' or 'MR', not {modality!r}.")
    if not path.exists():
        raise VolumeError(f"{path} does not exist.")
    if path.is_dir():
        volume = _read_dicom_folder(path)
    elif _is_nifti_name(path):
        volume = _read_nifti(path)
    elif path.name.lower().endswith(".npy"):
        volume = _read_npy(path)
        volume.modality = modality or "MR"  # MRNet's; a bare array records no modality
    elif _has_dicom_prefix(path):
        volume = _read_dicom_file(path)
    else:
        raise VolumeError(f"{path} is not a NIfTI (.nii, .nii.gz), MRNet .npy or DICOM file, so "
                          "it cannot be read as a volume.")
    return _settle_modality(volume, modality, path)


def write_nifti(volume: Volume, path: str | os.PathLike) -> None:
    """Write a volume to .nii or .nii.gz so that read_volume gives it back unchanged."""
    path = Path(path)
    if not _is_nifti_name(path):
        raise VolumeError(f"Cannot write {path}: a NIfTI file name must end in .nii or .nii.gz.")
    array = _check_writable(volume, path)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)  # NIfTI has no boolean type
    elif array.dtype == np.float16:
        array = array.astype(np.float32)  # nor a half-float one
    image = nib.Nifti1Image(array, volume.affine, dtype=array.dtype)
    image.set_qform(volume.affine, code=1)  # 1 = scanner-based world coordinates
    image.set_sform(volume.affine, code=1)
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = f"mdiff modality={volume.modality}".encode("ascii")
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    # Written beside the target and renamed, so a crash never leaves a half-written scan.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial{suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(image, temporary)
        os.replace(temporary, path)
    except (OSError, ValueError, HeaderDataError) as err:
        temporary.unlink(missing_ok=True)
        raise VolumeError(f"Cannot write {path}: {_brief(err)}.") from err


def write_dicom_series(volume: Volume, folder: str | os.PathLike, *, modality: str | None = None,
                       rescale_intercept: float = 0.0, rescale_slope: float = 1.0,
                       series_description: str = "mdiff") -> list[Path]:
    """Write a volume as a single-frame CT or MR Image Storage series, one file per array[k].

    Stored values are round((value - intercept) / slope) as uint16 (int16 when some are negative);
    CT is usually written with intercept -1024 so that air fits unsigned. File names are the
    random SOP instance UIDs, so the slice order can only be read from the headers. Returns the
    files in slice order.
    """
    folder = Path(folder)
    modality = modality or volume.modality
    if modality not in MODALITIES:
        raise VolumeError(f"Cannot write a DICOM series to {folder}: give modality='CT' or 'MR' "
                          f"(the volume's is {volume.modality!r}).")
    if rescale_slope <= 0:
        raise VolumeError(f"Cannot write a DICOM series to {folder}: the rescale slope must be "
                          f"positive, not {rescale_slope}.")
    array = _check_writable(volume, folder)
    stored = _stored_values(array, rescale_intercept, rescale_slope, folder)
    plane = _slice_planes(volume.affine, folder)
    series = _SeriesHeader.new(modality, series_description)
    paths = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(stored.shape[0]):
            dataset = series.slice_dataset(k, stored[k], plane, rescale_intercept, rescale_slope)
            target = folder / f"{dataset.SOPInstanceUID}.dcm"
            pydicom.dcmwrite(target, dataset, enforce_file_format=True)
            paths.append(target)
    except (OSError, ValueError) as err:
        raise VolumeError(f"Cannot write a DICOM series to {folder}: {_brief(err)}.") from err
    return paths


def find_scans(folder: str | os.PathLike) -> list[Path]:
    """The scans under a raw-data folder, sorted: NIfTI, .npy, multi-frame DICOM, series folders.

    A folder whose own files include single-frame DICOM images counts as one series. Hidden
    files and folders are skipped, as are DICOM files without pixels (DICOMDIR, reports).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VolumeError(f"{folder} is not a folder, so it holds no scans to find.")
    scans: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(root)
        is_series = False
        for name in sorted(files):
            if name.startswith("."):
                continue
            file = here / name
            if _is_nifti_name(file) or name.lower().endswith(".npy"):
                scans.append(file)
            elif _has_dicom_prefix(file):
                kind = _dicom_kind(file)
                if kind == "multi-frame":
                    scans.append(file)
                elif kind == "single-frame":
                    is_series = True
        if is_series:
            scans.append(here)
    if not scans:
        raise VolumeError(f"{folder} holds no scans (NIfTI, .npy or DICOM files).")
    return sorted(scans)


# --------------------------------------------------------------------------- shared helpers


def _is_nifti_name(path: Path) -> bool:
    """Whether the file name ends in .nii or .nii.gz."""
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def _brief(err: BaseException) -> str:
    """A library's error message on one line, to end our one-sentence message."""
    return " ".join(str(err).split()).rstrip(".") or type(err).__name__


def _has_dicom_prefix(path: Path) -> bool:
    """Whether the file has the DICOM preamble and 'DICM' marker (Part 10 file format)."""
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _to_canonical(array: np.ndarray, affine: np.ndarray, source: Path) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """Transpose and flip the array onto (S, P, L) axes; the affine keeps world coordinates."""
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(f"{source} has a degenerate orientation matrix (affine), so its axes "
                          "are unknown.")
    transform = ornt_transform(io_orientation(affine), _CANONICAL_ORNT)
    canonical = np.ascontiguousarray(apply_orientation(array, transform))
    return canonical, affine @ inv_ornt_aff(transform, array.shape)


def _volume(array: np.ndarray, affine: np.ndarray, modality: str, source: Path) -> Volume:
    """A checked, canonical Volume from an array and the affine of its indices."""
    if array.ndim != 3 or min(array.shape) < 2:
        raise VolumeError(f"{source} is a 2D image (shape {array.shape}), not a 3D volume.")
    if array.dtype.kind not in "iuf" and array.dtype != np.bool_:
        raise VolumeError(f"{source} holds {array.dtype} values, not a grey-scale volume.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise VolumeError(f"{source} contains NaN or infinite values.")
    canonical, canonical_aff = _to_canonical(array, affine, source)
    spacing = np.sqrt((canonical_aff[:3, :3] ** 2).sum(axis=0))
    return Volume(canonical, tuple(float(s) for s in spacing), canonical_aff, modality,
                  str(source))


def _rescale(raw: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """raw * slope + intercept; integer in, integer parameters -> int16/int32, else float32."""
    if slope == 1 and intercept == 0:
        return raw
    if raw.dtype.kind in "iu" and float(slope).is_integer() and float(intercept).is_integer():
        values = raw.astype(np.int64) * int(slope) + int(intercept)
        for dtype in (np.int16, np.int32):
            info = np.iinfo(dtype)
            if values.size == 0 or (values.min() >= info.min and values.max() <= info.max):
                return values.astype(dtype)
        return values
    dtype = np.float64 if raw.dtype == np.float64 else np.float32
    return raw.astype(dtype) * dtype(slope) + dtype(intercept)


def _settle_modality(volume: Volume, asked: str | None, path: Path) -> Volume:
    """Fill an unknown modality from `asked`; refuse one that contradicts the file."""
    if asked is None or volume.modality == asked:
        return volume
    if volume.modality:
        raise VolumeError(f"{path} is {volume.modality}, not the {asked} that was asked for.")
    volume.modality = asked
    return volume


def _check_writable(volume: Volume, target: Path) -> np.ndarray:
    """The volume's array after checking it can be written (3D, finite, sane affine)."""
    array = np.asarray(volume.array)
    if array.ndim != 3:
        raise VolumeError(f"Cannot write {target}: the array has shape {array.shape}, not 3D.")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise VolumeError(f"Cannot write {target}: the volume contains NaN or infinite values.")
    if not np.all(np.isfinite(volume.affine)) or abs(np.linalg.det(volume.affine[:3, :3])) < 1e-12:
        raise VolumeError(f"Cannot write {target}: the volume's affine is degenerate.")
    return array


# --------------------------------------------------------------------------- NIfTI and .npy


def _read_nifti(path: Path) -> Volume:
    """A NIfTI-1/2 file; a 4D file with one volume is squeezed to 3D."""
    try:
        image = nib.load(path, mmap=False)
        proxy = image.dataobj
        raw = np.asanyarray(proxy.get_unscaled())
        slope, intercept = float(proxy.slope), float(proxy.inter)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, ImageFileError,
            HeaderDataError) as err:
        raise VolumeError(f"{path} is truncated or not a valid NIfTI file "
                          f"({_brief(err)}).") from err
    if raw.ndim == 4 and raw.shape[3] == 1:
        raw = raw[..., 0]
    if raw.ndim > 3:
        raise VolumeError(f"{path} holds a {raw.ndim}D series (shape {raw.shape}), not a single "
                          "3D volume.")
    match = _DESCRIP_MODALITY.search(image.header["descrip"].item())
    modality = match.group(1).decode("ascii") if match else ""
    return _volume(_rescale(raw, slope, intercept), image.affine, modality, path)


def _read_npy(path: Path) -> Volume:
    """An MRNet exam: (slices, rows, columns), already sagittal, kept as it is with 1 mm voxels."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise VolumeError(f"{path} is truncated or not a numpy array file "
                          f"({_brief(err)}).") from err
    if array.ndim != 3:
        raise VolumeError(f"{path} holds a {array.ndim}D array (shape {array.shape}), not a 3D "
                          "exam of (slices, rows, columns).")
    return _volume(array, canonical_affine((1.0, 1.0, 1.0)), "", path)


# --------------------------------------------------------------------------- DICOM reading


def _dicom_kind(path: Path) -> str:
    """'single-frame', 'multi-frame' or 'other' (not an image) from the header.

    A damaged file counts as single-frame, so its folder is listed and reading it says what is
    wrong.
    """
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=False,
                                 specific_tags=["SOPClassUID", "NumberOfFrames", "Rows"])
        if _sop_class(header) and not _is_image_class(header):
            return "other"
        return "multi-frame" if int(header.get("NumberOfFrames") or 1) > 1 else "single-frame"
    except Exception:
        return "single-frame"


def _sop_class(dataset: Dataset) -> str:
    """The SOP class UID from the dataset or its file meta; '' when the header lacks both."""
    meta = getattr(dataset, "file_meta", None) or Dataset()
    return str(dataset.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")


def _is_image_class(dataset: Dataset) -> bool:
    """Whether the SOP class stores images (DICOMDIR, reports and structure sets do not)."""
    return "Image Storage" in UID(_sop_class(dataset)).name or "Rows" in dataset


def _read_dataset(path: Path) -> Dataset:
    """The whole DICOM dataset of a file, library errors turned into VolumeError."""
    try:
        return pydicom.dcmread(path, force=False)
    except Exception as err:  # pydicom raises many types for damaged files
        raise VolumeError(f"{path} is a truncated or corrupt DICOM file "
                          f"({_brief(err)}).") from err


def _pixels(dataset: Dataset, path: Path) -> np.ndarray:
    """The stored pixel values, (frames, rows, columns) or (rows, columns)."""
    if int(dataset.get("SamplesPerPixel") or 1) != 1:
        raise VolumeError(f"{path} is a colour image, not a grey-scale CT or MR volume.")
    try:
        return dataset.pixel_array
    except Exception as err:  # truncated data, unknown compression, missing handler
        raise VolumeError(f"{path} is truncated or has pixel data that cannot be decoded "
                          f"({_brief(err)}).") from err


def _is_image(dataset: Dataset, path: Path) -> bool:
    """Whether a DICOM file holds an image; an image file that lost its pixels is an error."""
    if "PixelData" in dataset:
        return True
    if not _sop_class(dataset) or _is_image_class(dataset):
        # pydicom stops quietly at the end of a file cut between two elements.
        raise VolumeError(f"{path} is a truncated or corrupt DICOM file (its header or pixel "
                          "data is incomplete).")
    return False


def _modality(dataset: Dataset) -> str:
    """'CT', 'MR' or '' from the Modality attribute."""
    value = str(dataset.get("Modality", "")).upper()
    return value if value in MODALITIES else ""


def _read_dicom_file(path: Path) -> Volume:
    """A multi-frame DICOM file; a single slice is refused as 2D."""
    dataset = _read_dataset(path)
    if not _is_image(dataset, path):
        raise VolumeError(f"{path} is a DICOM file without image data (e.g. a DICOMDIR), not a "
                          "volume.")
    if int(dataset.get("NumberOfFrames") or 1) < 2:
        raise VolumeError(f"{path} is a single 2D DICOM image; pass the folder holding its whole "
                          "series.")
    return _read_multiframe(dataset, path)


def _read_dicom_folder(folder: Path) -> Volume:
    """The one DICOM series whose files sit directly in `folder` (other files are ignored)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise VolumeError(f"{folder} is an empty folder, not a DICOM series.")
    images = []
    for file in files:
        if _has_dicom_prefix(file):
            dataset = _read_dataset(file)
            if _is_image(dataset, file):
                images.append((file, dataset))
    if not images:
        raise VolumeError(f"{folder} holds no DICOM image files, so it is not a DICOM series.")
    multi = [(f, d) for f, d in images if int(d.get("NumberOfFrames") or 1) > 1]
    if len(multi) == len(images) == 1:
        return _read_multiframe(multi[0][1], multi[0][0])
    if multi:
        raise VolumeError(f"{folder} mixes multi-frame DICOM files ({multi[0][0].name}) with "
                          "others; read each multi-frame file on its own.")
    series: dict[str, list[tuple[Path, Dataset]]] = {}
    for file, dataset in images:
        series.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((file, dataset))
    if len(series) > 1:
        names = ", ".join(f"{uid or 'no UID'} ({len(members)} files)"
                          for uid, members in series.items())
        raise VolumeError(f"{folder} holds {len(series)} DICOM series ({names}); put each series "
                          "in its own folder.")
    return _read_single_frame_series(images, folder)


def _read_single_frame_series(images: list[tuple[Path, Dataset]], folder: Path) -> Volume:
    """Stack single-frame slices along their normal, in Hounsfield units for CT."""
    if len(images) == 1:
        raise VolumeError(f"{folder} holds a single DICOM slice ({images[0][0].name}), a 2D "
                          "image, not a volume.")
    first_file, first = images[0]
    orientation = _float_list(first.get("ImageOrientationPatient"), 6)
    spacing = _float_list(first.get("PixelSpacing"), 2)
    for file, dataset in images:
        other = _float_list(dataset.get("ImageOrientationPatient"), 6)
        if orientation is None or other is None or \
                _float_list(dataset.get("ImagePositionPatient"), 3) is None:
            raise VolumeError(f"{file} has no image position or orientation, so the slices of "
                              f"{folder} cannot be ordered.")
        if not np.allclose(other, orientation, atol=1e-4):
            raise VolumeError(f"{file} is oriented differently from {first_file.name}, so "
                              f"{folder} is not one stack of slices.")
        if (dataset.get("Rows"), dataset.get("Columns")) != (first.get("Rows"),
                                                              first.get("Columns")):
            raise VolumeError(f"{file} has a different image size from {first_file.name}.")
    positions = np.array([_float_list(d.get("ImagePositionPatient"), 3) for _, d in images])
    order, affine_lps = _stack_geometry(positions, orientation, spacing or [1.0, 1.0], folder)
    slices = []
    for index in order:
        file, dataset = images[index]
        raw = _pixels(dataset, file)
        slices.append(_rescale(raw, *_dataset_rescale(dataset)))
    array = np.stack(slices)
    return _volume(array, _LPS_TO_RAS @ affine_lps, _modality(first), folder)


def _read_multiframe(dataset: Dataset, path: Path) -> Volume:
    """A multi-frame file, frames placed by their per-frame plane positions when present."""
    frames = _pixels(dataset, path)
    if frames.ndim != 3:
        raise VolumeError(f"{path} holds frames of shape {frames.shape}, not a stack of 2D "
                          "grey-scale images.")
    count = frames.shape[0]
    shared = _first_item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = list(dataset.get("PerFrameFunctionalGroupsSequence") or [])
    if per_frame and len(per_frame) != count:
        raise VolumeError(f"{path} describes {len(per_frame)} frames but holds {count}.")
    groups = [(item, shared) for item in per_frame] or [(None, shared)] * count

    orientation = _float_list(_functional(groups[0], "PlaneOrientationSequence",
                                          "ImageOrientationPatient")
                              or dataset.get("ImageOrientationPatient"), 6)
    spacing = _float_list(_functional(groups[0], "PixelMeasuresSequence", "PixelSpacing")
                          or dataset.get("PixelSpacing"), 2)
    positions = [_float_list(_functional(g, "PlanePositionSequence", "ImagePositionPatient"), 3)
                 for g in groups]
    rescale = [_frame_rescale(g, dataset) for g in groups]
    if orientation is not None and all(p is not None for p in positions):
        order, affine_lps = _stack_geometry(np.array(positions), orientation,
                                            spacing or [1.0, 1.0], path)
        affine = _LPS_TO_RAS @ affine_lps
    else:
        # No plane positions: keep the file's frame order as D with a canonical affine.
        order = list(range(count))
        step = _float_list(dataset.get("SpacingBetweenSlices")
                           or _functional(groups[0], "PixelMeasuresSequence", "SliceThickness")
                           or dataset.get("SliceThickness"), 1)
        row, column = spacing or [1.0, 1.0]
        affine = canonical_affine((step[0] if step else 1.0, row, column))
    array = np.stack([_rescale(frames[i], *rescale[i]) for i in order])
    return _volume(array, affine, _modality(dataset), path)


def _stack_geometry(positions: np.ndarray, orientation: list[float], pixel_spacing: list[float],
                    where: Path) -> tuple[list[int], np.ndarray]:
    """Slice order along the normal and the LPS affine of (slice, row, column) indices.

    Refuses repeated positions and non-uniform steps; a step that is a whole multiple of the
    usual one is reported as missing slices.
    """
    row_direction = np.asarray(orientation[:3])  # along a row: the column index grows
    column_direction = np.asarray(orientation[3:])  # down a column: the row index grows
    normal = np.cross(row_direction, column_direction)
    distance = positions @ normal
    order = [int(i) for i in np.argsort(distance, kind="stable")]
    sorted_distance = distance[order]
    steps = np.diff(sorted_distance)
    nominal = float(np.median(steps))
    tolerance = _STEP_TOLERANCE * nominal + 1e-3
    if nominal <= tolerance or steps.min() <= tolerance:
        repeated = int(np.sum(steps <= max(tolerance, 1e-3)))
        raise VolumeError(f"{where} has slices at the same position ({repeated} repeated), so "
                          "it holds several acquisitions, echoes or time points, not one volume.")
    multiples = np.round(steps / nominal)
    if np.any(np.abs(steps - multiples * nominal) > tolerance):
        raise VolumeError(f"{where} has non-uniform slice spacing (steps from {steps.min():.4g} "
                          f"to {steps.max():.4g} mm), so it is not one regular volume.")
    gaps = np.flatnonzero(multiples > 1)
    if gaps.size:
        missing = int(np.sum(multiples[gaps] - 1))
        where_missing = ", ".join(f"{sorted_distance[g]:.4g} and {sorted_distance[g + 1]:.4g}"
                                  for g in gaps[:3])
        raise VolumeError(f"{where} seems to be missing {missing} slice(s): gaps between "
                          f"positions {where_missing} mm along the slice normal, where the "
                          f"spacing is {nominal:.4g} mm.")
    first, last = positions[order[0]], positions[order[-1]]
    affine = np.eye(4)
    affine[:3, 0] = (last - first) / (len(order) - 1)
    affine[:3, 1] = column_direction * pixel_spacing[0]  # PixelSpacing = (row step, column step)
    affine[:3, 2] = row_direction * pixel_spacing[1]
    affine[:3, 3] = first
    return order, affine


def _float_list(value: object, length: int) -> list[float] | None:
    """A DICOM multi-value (or single value) as floats, None when absent or malformed."""
    if value is None or isinstance(value, str | bytes):
        return None  # absent, or an empty string where a number belongs
    items = list(value) if hasattr(value, "__iter__") else [value]
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == length and all(np.isfinite(numbers)) else None


def _first_item(dataset: Dataset, keyword: str) -> Dataset | None:
    """The first item of a sequence attribute, None when absent or empty."""
    sequence = dataset.get(keyword)
    return sequence[0] if sequence else None


def _functional(groups: tuple[Dataset | None, Dataset | None], sequence: str,
                keyword: str) -> object:
    """An attribute from a frame's functional groups, per-frame first, then shared."""
    for group in groups:
        item = _first_item(group, sequence) if group is not None else None
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _dataset_rescale(dataset: Dataset) -> tuple[float, float]:
    """(slope, intercept) of a single-frame dataset; (1, 0) when absent."""
    slope = _float_list(dataset.get("RescaleSlope"), 1)
    intercept = _float_list(dataset.get("RescaleIntercept"), 1)
    return (slope[0] if slope else 1.0), (intercept[0] if intercept else 0.0)


def _frame_rescale(groups: tuple[Dataset | None, Dataset | None],
                   dataset: Dataset) -> tuple[float, float]:
    """(slope, intercept) of one frame: Pixel Value Transformation group, else the top level."""
    slope = _float_list(_functional(groups, "PixelValueTransformationSequence", "RescaleSlope"), 1)
    intercept = _float_list(_functional(groups, "PixelValueTransformationSequence",
                                        "RescaleIntercept"), 1)
    if slope is None and intercept is None:
        return _dataset_rescale(dataset)
    return (slope[0] if slope else 1.0), (intercept[0] if intercept else 0.0)


# --------------------------------------------------------------------------- DICOM writing


@dataclass(frozen=True)
class _SlicePlanes:
    """Where each array[k] lies: DICOM plane attributes in LPS millimetres."""

    origin: np.ndarray  # position of voxel (0, 0, 0)
    slice_step: np.ndarray  # LPS vector from one slice to the next
    orientation: list[float]  # ImageOrientationPatient: row direction, then column direction
    pixel_spacing: list[float]  # (between rows, between columns)
    thickness: float  # slice spacing along the normal


def _slice_planes(affine: np.ndarray, folder: Path) -> _SlicePlanes:
    """The DICOM plane geometry of every array[k] from a RAS affine."""
    lps = _LPS_TO_RAS @ affine  # the flip is its own inverse
    rows, columns = lps[:3, 1], lps[:3, 2]
    row_step, column_step = np.linalg.norm(rows), np.linalg.norm(columns)
    row_direction, column_direction = columns / column_step, rows / row_step
    if abs(row_direction @ column_direction) > 1e-4:
        raise VolumeError(f"Cannot write a DICOM series to {folder}: the volume's in-plane axes "
                          "are not perpendicular, which DICOM cannot describe.")
    normal = np.cross(row_direction, column_direction)
    return _SlicePlanes(origin=lps[:3, 3], slice_step=lps[:3, 0],
                        orientation=[*row_direction, *column_direction],
                        pixel_spacing=[float(row_step), float(column_step)],
                        thickness=float(abs(lps[:3, 0] @ normal)))


def _stored_values(array: np.ndarray, intercept: float, slope: float, folder: Path) -> np.ndarray:
    """Stored pixel values round((value - intercept) / slope) as uint16, else int16."""
    if array.dtype.kind in "iub" and slope == 1 and float(intercept).is_integer():
        stored = array.astype(np.int64) - int(intercept)
    else:
        stored = np.rint((array.astype(np.float64) - intercept) / slope).astype(np.int64)
        levels = int(stored.max() - stored.min())
        lossy = not np.allclose(stored * slope + intercept, array, rtol=0, atol=1e-6 * slope)
        if lossy and levels < 255:
            raise VolumeError(f"Cannot write a DICOM series to {folder}: with rescale slope "
                              f"{slope} the volume keeps only {levels + 1} grey levels; pass a "
                              "smaller rescale_slope.")
    low, high = int(stored.min()), int(stored.max())
    if low >= 0 and high <= np.iinfo(np.uint16).max:
        return stored.astype(np.uint16)
    if low >= np.iinfo(np.int16).min and high <= np.iinfo(np.int16).max:
        return stored.astype(np.int16)
    raise VolumeError(f"Cannot write a DICOM series to {folder}: values from {array.min()} to "
                      f"{array.max()} do not fit 16 bits with intercept {intercept} and slope "
                      f"{slope}.")


@dataclass(frozen=True)
class _SeriesHeader:
    """What every slice of one written series shares: UIDs, dates, modality."""

    modality: str
    description: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    date: str
    time: str

    @classmethod
    def new(cls, modality: str, description: str) -> _SeriesHeader:
        """Fresh UIDs and the current date for a new study with one series."""
        now = datetime.datetime.now()
        return cls(modality, description, generate_uid(), generate_uid(), generate_uid(),
                   now.strftime("%Y%m%d"), now.strftime("%H%M%S"))

    def slice_dataset(self, k: int, stored: np.ndarray, plane: _SlicePlanes, intercept: float,
                      slope: float) -> Dataset:
        """The complete dataset of slice k (CT or MR Image Storage, explicit little endian)."""
        sop_class = _CT_IMAGE_STORAGE if self.modality == "CT" else _MR_IMAGE_STORAGE
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        # SOP common, patient, study, series, equipment (type 2 attributes present, maybe empty)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL" if self.modality == "CT" else "OTHER"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = self.date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = self.time
        ds.AccessionNumber = ""
        ds.Modality = self.modality
        ds.Manufacturer = "mdiff"
        ds.ReferringPhysicianName = ""
        ds.SeriesDescription = self.description[:64]  # LO holds at most 64 characters
        ds.PatientName = "SYNTHETIC^MDIFF"
        ds.PatientID = f"MDIFF{self.study_uid[-8:]}"
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.StudyInstanceUID = self.study_uid
        ds.SeriesInstanceUID = self.series_uid
        ds.StudyID = ""
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.PatientPosition = "HFS"
        ds.FrameOfReferenceUID = self.frame_of_reference_uid
        ds.PositionReferenceIndicator = ""
        # Image plane
        position = plane.origin + k * plane.slice_step
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in plane.orientation]
        ds.PixelSpacing = [_ds(v) for v in plane.pixel_spacing]
        ds.SliceThickness = _ds(plane.thickness)
        normal = np.cross(plane.orientation[:3], plane.orientation[3:])
        ds.SliceLocation = _ds(position @ normal)
        # Image pixel
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = stored.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if stored.dtype == np.int16 else 0
        ds.PixelData = stored.astype(stored.dtype.newbyteorder("<")).tobytes()
        if self.modality == "CT":
            ds.KVP = ""
            ds.AcquisitionNumber = ""
            ds.RescaleType = "HU"
            ds.WindowCenter, ds.WindowWidth = "40", "400"  # soft-tissue window for a PACS
        else:
            ds.ScanningSequence = "RM"  # research mode: a synthetic image has no pulse sequence
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = ""
            ds.RepetitionTime = ""
            ds.EchoTime = ""
            ds.EchoTrainLength = ""
        if self.modality == "CT" or (slope, intercept) != (1.0, 0.0):
            # Required for CT; MR Image Storage has no Modality LUT, but readers honour it.
            ds.RescaleIntercept = _ds(intercept)
            ds.RescaleSlope = _ds(slope)
        return ds


def _ds(value: float) -> str:
    """A number as a DICOM decimal string (at most 16 characters)."""
    return format_number_as_ds(float(value))
