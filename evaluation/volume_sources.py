"""A folder of volumes as the figure and memorisation commands read it, one volume at a time.

Three kinds of folder, as `mdiff-study create` accepts them (DESIGN.md): a samples folder
(`samples.json`: its files in the plan's order, its preset from the plan), a PREP_DIR (its arrays,
mapped back to the preset's intensities: HU for CT, [0, 1] for MR), or any folder of scans
(NIfTI, DICOM, .npy; the modality each file records). Volumes are read lazily so that a thousand
64^3 samples never sit in memory at full size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io import Scan, VolumeError, list_scans
from diffusion_core.io.volume import brief_error
from diffusion_core.presets import Preset, PresetError, get_preset
from diffusion_core.samples import SAMPLES_NAME, SamplesError, read_samples
from evaluation.errors import EvalError

KINDS = ("samples", "prepared", "scans")


@dataclass(frozen=True)
class VolumeSource:
    """The volumes of one folder, listed but not yet read."""

    folder: Path
    kind: str  # one of KINDS
    scans: tuple[Scan, ...]
    preset: Preset | None  # the samples' or PREP_DIR's preset; None for a folder of scans

    def __len__(self) -> int:
        """How many volumes the folder holds."""
        return len(self.scans)

    @property
    def names(self) -> list[str]:
        """Each volume's path relative to the folder."""
        return [str(scan.path.relative_to(self.folder)) for scan in self.scans]

    @property
    def depth_axis(self) -> str:
        """The anatomical plane of the depth slices: the preset's, else axial (canonical files)."""
        return self.preset.depth_axis if self.preset is not None else "axial"

    def read(self, index: int) -> tuple[np.ndarray, str]:
        """Volume `index` as float32 (D, H, W) in intensities, with its modality ("" unknown)."""
        scan = self.scans[index]
        try:
            volume = scan.read()
        except VolumeError as err:
            raise EvalError(f"cannot read {scan.path} ({brief_error(err)}); fix or remove that "
                            "file.") from None
        array = np.asarray(volume.array, dtype=np.float32)
        if scan.is_preprocessed and self.preset is not None:
            array = np.asarray(self.preset.to_intensity(array), dtype=np.float32)
        if not np.isfinite(array).all():
            raise EvalError(f"{scan.path} holds NaN or infinite values; fix or remove it.")
        modality = volume.modality or (self.preset.modality if self.preset else "")
        return array, modality


def open_source(folder: str | Path, option: str) -> VolumeSource:
    """The volumes of `folder` given to `option` (e.g. "--samples"); EvalError when there are none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"{option} {folder} is not a folder; give a samples folder, a PREP_DIR or "
                        "a folder of scans.")
    if (folder / SAMPLES_NAME).is_file():
        return _samples_source(folder, option)
    try:
        scans = list_scans(folder).scans
    except VolumeError as err:
        raise EvalError(f"{option} {folder}: {brief_error(err)}.") from None
    if not scans:
        raise EvalError(f"{option} {folder} holds no volumes; give a samples folder, a PREP_DIR "
                        "or a folder of scans.")
    preset = None
    if scans[0].prepared_by is not None:
        preset = get_preset(scans[0].prepared_by)
    return VolumeSource(folder, "prepared" if preset else "scans", tuple(scans), preset)


def _samples_source(folder: Path, option: str) -> VolumeSource:
    """A samples folder: the planned files that exist, in the plan's order."""
    try:
        plan = read_samples(folder)
        preset = get_preset(plan.preset)
    except (SamplesError, PresetError) as err:
        raise EvalError(f"{option} {folder}: {brief_error(err)}.") from None
    scans = tuple(Scan(folder / item["file"]) for item in plan.files
                  if (folder / item["file"]).is_file())
    if not scans:
        raise EvalError(f"{option} {folder} is a samples folder without any sampled volume yet; "
                        "run mdiff-sample to fill it.")
    return VolumeSource(folder, "samples", scans, preset)


def check_shapes(shape: tuple[int, ...], expected: tuple[int, ...], path: Path,
                 reference: str) -> None:
    """EvalError when a volume's shape differs from the shape it is compared with."""
    if tuple(shape) != tuple(expected):
        raise EvalError(f"{path} has shape {tuple(shape)}, not the {tuple(expected)} of "
                        f"{reference}; compare volumes of one preset.")
