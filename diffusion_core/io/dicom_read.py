"""Reading DICOM: a folder holding one single-frame series, or one multi-frame file.

Only grey-scale CT and MR image storage is a scan (`SCAN_CLASSES`); a segmentation, an RT dose,
an ultrasound, a secondary capture or any other DICOM image is not, and is named with its class
and modality wherever it is met. Slices are stacked along their normal (refusing repeated
positions, gaps and mixed geometry) and rescaled to Hounsfield units for CT; multi-frame files
are placed by their per-frame functional groups. Files without plane positions keep their own
frame order as D with a canonical affine. Each file is opened once: the 'DICM' marker is checked
and the dataset parsed from one handle.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    MRImageStorage,
)

from diffusion_core.io.volume import (
    LPS_TO_RAS,
    Volume,
    VolumeError,
    brief_error,
    canonical_affine,
    canonical_volume,
    rescale,
)
from diffusion_core.modality import MODALITIES

# Slice steps may wobble by this fraction of the nominal step (plus 1 micron) and still count as
# uniform; scanners write positions with a few decimals, so real jitter is far below this.
_STEP_TOLERANCE = 0.02
_KIND_TAGS = ["SOPClassUID", "NumberOfFrames", "Rows", "Modality", "SamplesPerPixel",
              "PhotometricInterpretation"]
# The storage classes of CT and MR images: the only DICOM objects that are scans.
SCAN_CLASSES = frozenset({CTImageStorage, EnhancedCTImageStorage,
                          LegacyConvertedEnhancedCTImageStorage, MRImageStorage,
                          EnhancedMRImageStorage, LegacyConvertedEnhancedMRImageStorage})


class DicomKind(NamedTuple):
    """What a DICOM file is: 'single-frame', 'multi-frame' or 'other' (not a scan), and why not."""

    kind: str
    problem: str = ""  # for 'other': why it is no scan ("" for files without an image)


def _parse(path: Path, **options: object) -> Dataset | None:
    """The dataset of a Part 10 DICOM file, from one open; None when it has no 'DICM' marker.

    pydicom's own errors (a damaged file) propagate; a file that cannot be opened counts as not
    DICOM.
    """
    try:
        handle = path.open("rb")
    except OSError:
        return None
    with handle:
        handle.seek(128)
        if handle.read(4) != b"DICM":
            return None
        handle.seek(0)
        return pydicom.dcmread(handle, force=False, **options)


def dicom_kind(path: Path) -> DicomKind | None:
    """What a DICOM file is, from its header alone (no pixels); None when it is not DICOM.

    A file without an image (DICOMDIR, a report) is 'other' without a problem to report; an image
    that is no CT or MR scan is 'other' with its `scan_problem`. A damaged file counts as
    single-frame, so its folder is listed and reading it says what is wrong.
    """
    try:
        header = _parse(path, stop_before_pixels=True, specific_tags=_KIND_TAGS)
    except Exception:  # pydicom raises many types for damaged files
        return DicomKind("single-frame")
    if header is None:
        return None
    if _sop_class(header) and not _is_image_class(header):
        return DicomKind("other")
    problem = scan_problem(header)
    if problem is not None:
        return DicomKind("other", f"{path} is {problem}")
    frames = int(header.get("NumberOfFrames") or 1)
    return DicomKind("multi-frame" if frames > 1 else "single-frame")


def scan_problem(dataset: Dataset) -> str | None:
    """Why a DICOM image is no grey-scale CT or MR scan, naming its class and modality; or None.

    A file that names no storage class counts by its Modality attribute (none: a scan).
    """
    sop = _sop_class(dataset)
    modality = str(dataset.get("Modality", "") or "").upper()
    if (sop and sop not in SCAN_CLASSES) or (not sop and modality and modality not in MODALITIES):
        kind = UID(sop).name if sop else "image"
        return f"a DICOM {kind} (modality {modality or 'not given'}), not a CT or MR image"
    photometric = str(dataset.get("PhotometricInterpretation", "") or "MONOCHROME2")
    if int(dataset.get("SamplesPerPixel") or 1) != 1 or not photometric.startswith("MONOCHROME"):
        return (f"a colour image ({photometric}, modality {modality or 'not given'}), not a "
                "grey-scale CT or MR volume")
    return None


def read_dicom_dataset(path: Path) -> Dataset | None:
    """The whole DICOM dataset of a file; None when it is not DICOM; VolumeError when damaged."""
    try:
        return _parse(path)
    except Exception as err:  # pydicom raises many types for damaged files
        raise VolumeError(f"{path} is a truncated or corrupt DICOM file "
                          f"({brief_error(err)}).") from err


def read_dicom_file(dataset: Dataset, path: Path) -> Volume:
    """A multi-frame DICOM file already parsed (read_dicom_dataset); a single slice is 2D."""
    if not _is_image(dataset, path):
        raise VolumeError(f"{path} is a DICOM file without image data (e.g. a DICOMDIR), not a "
                          "volume.")
    problem = scan_problem(dataset)
    if problem is not None:
        raise VolumeError(f"{path} is {problem}.")
    if int(dataset.get("NumberOfFrames") or 1) < 2:
        raise VolumeError(f"{path} is a single 2D DICOM image; pass the folder holding its whole "
                          "series.")
    return _read_multiframe(dataset, path)


def read_dicom_folder(folder: Path) -> Volume:
    """The one DICOM series whose files sit directly in `folder` (other files are ignored)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise VolumeError(f"{folder} is an empty folder, not a DICOM series.")
    images = []
    others = []
    for file in files:
        dataset = read_dicom_dataset(file)
        if dataset is None or not _is_image(dataset, file):
            continue
        problem = scan_problem(dataset)
        if problem is None:
            images.append((file, dataset))
        else:
            others.append(f"{file.name} is {problem}")
    if not images and others:
        raise VolumeError(f"{folder} holds no DICOM CT or MR image files ({others[0]}).")
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
        slices.append(rescale(raw, *_dataset_rescale(dataset)))
    array = np.stack(slices)
    return canonical_volume(array, LPS_TO_RAS @ affine_lps, _modality(first), folder)


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
    rescales = [_frame_rescale(g, dataset) for g in groups]
    if orientation is not None and all(p is not None for p in positions):
        order, affine_lps = _stack_geometry(np.array(positions), orientation,
                                            spacing or [1.0, 1.0], path)
        affine = LPS_TO_RAS @ affine_lps
    else:
        # No plane positions: keep the file's frame order as D with a canonical affine.
        order = list(range(count))
        step = _float_list(dataset.get("SpacingBetweenSlices")
                           or _functional(groups[0], "PixelMeasuresSequence", "SliceThickness")
                           or dataset.get("SliceThickness"), 1)
        row, column = spacing or [1.0, 1.0]
        affine = canonical_affine((step[0] if step else 1.0, row, column))
    array = np.stack([rescale(frames[i], *rescales[i]) for i in order])
    return canonical_volume(array, affine, _modality(dataset), path)


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


def _sop_class(dataset: Dataset) -> str:
    """The SOP class UID from the dataset or its file meta; '' when the header lacks both."""
    meta = getattr(dataset, "file_meta", None) or Dataset()
    return str(dataset.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")


def _is_image_class(dataset: Dataset) -> bool:
    """Whether the SOP class stores images (DICOMDIR, reports and structure sets do not)."""
    return "Image Storage" in UID(_sop_class(dataset)).name or "Rows" in dataset


def _pixels(dataset: Dataset, path: Path) -> np.ndarray:
    """The stored pixel values, (frames, rows, columns) or (rows, columns)."""
    try:
        return dataset.pixel_array
    except Exception as err:  # truncated data, unknown compression, missing handler
        raise VolumeError(f"{path} is truncated or has pixel data that cannot be decoded "
                          f"({brief_error(err)}).") from err


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
