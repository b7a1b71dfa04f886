"""Reading and writing 3D scans: NIfTI, DICOM series, multi-frame DICOM and .npy arrays.

Every reader returns a `Volume` in the canonical orientation (see `volume`). Files that
carry no orientation (MRNet .npy exams, multi-frame DICOM without plane position) keep their own
slice axis as D and get a canonical affine with their spacing (1 mm where none is known). Every
failure raises `VolumeError`, whose message names the file and says the problem in one sentence.
numpy, nibabel and pydicom only: the reader app imports this package at start-up.

    volume.py       Volume, VolumeError, the canonical orientation
    nifti.py        NIfTI read and write; .npy read
    dicom_read.py   a DICOM series folder or a multi-frame file
    dicom_write.py  a Volume as a DICOM series
    scans.py        read_volume (any of the above by kind); the scan files of a folder
"""

from diffusion_core.io.dicom_write import write_dicom_series
from diffusion_core.io.nifti import write_nifti
from diffusion_core.io.scans import (
    SkippedFile,
    find_scans,
    modality_doubt,
    read_volume,
    search_scans,
)
from diffusion_core.io.volume import (
    CANONICAL_AXCODES,
    Volume,
    VolumeError,
    canonical_affine,
    constant_value,
)
from diffusion_core.modality import MODALITIES

__all__ = [
    "CANONICAL_AXCODES", "MODALITIES", "SkippedFile", "Volume", "VolumeError",
    "canonical_affine", "constant_value", "find_scans", "modality_doubt", "read_volume",
    "search_scans", "write_dicom_series", "write_nifti",
]
