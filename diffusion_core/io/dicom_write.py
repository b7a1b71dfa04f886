"""Writing a Volume as a DICOM series: single-frame CT or MR Image Storage, one file per slice.

The files carry fresh UIDs, a synthetic patient and the plane geometry of each array[k], so any
DICOM viewer (and `read_volume`) puts the slices back in place; CT gets the soft-tissue window
(diffusion_core.modality) as its display default.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from diffusion_core.io.volume import LPS_TO_RAS, Volume, VolumeError, brief_error, check_writable
from diffusion_core.modality import CT_SOFT_TISSUE, MODALITIES

_CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


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
    array = check_writable(volume, folder)
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
        raise VolumeError(f"Cannot write a DICOM series to {folder}: {brief_error(err)}.") from err
    return paths


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
    lps = LPS_TO_RAS @ affine  # the flip is its own inverse
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
            level, width = CT_SOFT_TISSUE  # a PACS's display default: "40", "400"
            ds.WindowCenter, ds.WindowWidth = f"{level:g}", f"{width:g}"
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
