"""The one road from a folder to volumes: a folder of scans, a PREP_DIR or a samples folder.

`open_source` recognises what a folder is and lists its volumes without reading them:

- a samples folder (`samples.json`, written by mdiff-sample): the planned files that exist, in
  the plan's order, each with its model and seed; stored in the preset's intensities;
- a PREP_DIR (`manifest.json` of mdiff-prepare): the manifest's arrays, sorted, each with the scan
  it was prepared from; stored in the preset's [-1, 1];
- anything else, a folder of scans (NIfTI, DICOM, .npy; `io.search_scans`): raw intensities.

Volumes are read one at a time, when asked, so a thousand 64^3 samples never sit in memory at
once. The convention (`VolumeSource.read`) is ONE for every kind:

- with a preset (the folder's own, or the one a folder of scans is read with): the preset's
  [-1, 1] model space, the values its pipeline leaves and its models see. PREP_DIR arrays are
  taken as stored; samples are mapped back through the inverse of `Preset.to_intensity` (exactly:
  HU through the preset's window, MR's [0, 1] to [-1, 1]); scans go through the pipeline's last
  step, its value mapping (`scan_to_model`). Geometry is never changed: a command that needs one
  shape compares shapes and refuses a mismatch in one sentence (`check_shape`).
- without a preset (only a folder of scans): the intensities the files hold.

`VolumeSource.read_intensities` gives intensities instead (`Preset.to_intensity` of a PREP_DIR
array: HU for CT, [0, 1] for MR), and `read_stored` the file's Volume exactly as stored.
`open_sources` opens several folders into the one convention, or refuses folders of different
presets in one sentence.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io import SkippedFile, Volume, VolumeError, read_volume, search_scans
from diffusion_core.io.volume import brief_error, canonical_affine, canonical_volume
from diffusion_core.prepared import PreparedError, find_manifest, load_array
from diffusion_core.preprocess import MinMax, Part
from diffusion_core.presets import Preset, PresetError, get_preset
from diffusion_core.samples import SAMPLES_NAME, SamplesError, read_samples

KINDS = ("samples", "prepared", "scans")
MODEL_SPACE = "model space [-1, 1]"
INTENSITIES = "intensities"


class SourceError(ValueError):
    """A folder of volumes that cannot be read as asked; the message is one sentence."""


@dataclass(frozen=True)
class SourceItem:
    """One volume of a folder, listed but not read: where it is and where it came from."""

    path: Path
    name: str  # the path relative to the folder
    kind: str  # one of KINDS
    model: str = ""  # a sample: the model that made it
    seed: str = ""  # a sample: its seed
    prepared_from: str = ""  # a PREP_DIR array: the scan it was prepared from (manifest)

    @property
    def is_preprocessed(self) -> bool:
        """Whether the file already went through its preset's pipeline (values in [-1, 1])."""
        return self.kind == "prepared"


@dataclass(frozen=True)
class SourceVolume:
    """One volume read: float32 (D, H, W) values in `convention`, with where it came from."""

    array: np.ndarray
    convention: str  # MODEL_SPACE or INTENSITIES
    spacing: tuple[float, float, float]
    modality: str  # "CT", "MR" or "" when neither the file nor a preset says
    item: SourceItem

    @property
    def name(self) -> str:
        """The volume's path relative to its folder."""
        return self.item.name


@dataclass(frozen=True)
class VolumeSource:
    """The volumes of one folder, listed but not yet read (see the module docstring)."""

    folder: Path
    kind: str  # one of KINDS
    items: tuple[SourceItem, ...]
    preset: Preset | None  # the folder's own; for a folder of scans, the one it is read with
    skipped: tuple[SkippedFile, ...] = ()  # DICOM files of a folder of scans that are no scans
    shape: tuple[int, ...] | None = None  # a PREP_DIR: the shape its manifest gives

    def __len__(self) -> int:
        """How many volumes the folder holds."""
        return len(self.items)

    def __iter__(self) -> Iterator[SourceVolume]:
        """Every volume in the source's convention, read one at a time."""
        return (self.read(index) for index in range(len(self.items)))

    def stack(self, need: str, *, progress: bool = False,
              desc: str | None = None) -> np.ndarray:
        """Every volume in the source's convention, read one by one into one (n, D, H, W)
        float32 array; SourceError naming two files when their shapes differ (`need` ends
        the sentence: what the caller needs one shape for)."""
        from tqdm import tqdm

        stack = None
        for index, volume in enumerate(tqdm(self, total=len(self), unit="volume",
                                            desc=desc or f"reading {self.folder.name}",
                                            disable=not progress)):
            if stack is None:
                stack = np.empty((len(self), *volume.array.shape), dtype=np.float32)
            elif volume.array.shape != stack.shape[1:]:
                raise SourceError(f"volumes in {self.folder} differ in shape: {self.names[0]} "
                                  f"is {stack.shape[1:]} but {volume.name} is "
                                  f"{volume.array.shape}; {need}.")
            stack[index] = volume.array
        return stack if stack is not None else np.empty((0,), dtype=np.float32)

    @property
    def names(self) -> list[str]:
        """Each volume's path relative to the folder."""
        return [item.name for item in self.items]

    @property
    def convention(self) -> str:
        """What `read` gives: MODEL_SPACE with a preset, else INTENSITIES."""
        return MODEL_SPACE if self.preset is not None else INTENSITIES

    @property
    def depth_axis(self) -> str:
        """The anatomical plane of the depth slices: the preset's, else axial (canonical files)."""
        return self.preset.depth_axis if self.preset is not None else "axial"

    def read_stored(self, index: int, *, modality: str | None = None) -> Volume:
        """Volume `index` exactly as its file stores it; VolumeError naming the file.

        A PREP_DIR array gets its preset's modality, nominal spacing and canonical affine, and is
        checked as training checks it (`prepared.check_array`). `modality` is `io.read_volume`'s.
        """
        item = self.items[index]
        if item.kind != "prepared":
            return read_volume(item.path, modality=modality)
        if not item.path.is_file():
            raise VolumeError(f"{item.path} does not exist, though the manifest of its PREP_DIR "
                              "lists it.")
        try:
            array = load_array(item.path, self.shape or self.preset.shape)
        except PreparedError as err:
            raise VolumeError(f"{err}.") from None
        volume = canonical_volume(array, canonical_affine(self.preset.spacing),
                                  self.preset.modality, item.path)
        if modality is not None and modality != volume.modality:
            raise VolumeError(f"{item.path} is {volume.modality}, not the {modality} that was "
                              "asked for.")
        return volume

    def read(self, index: int) -> SourceVolume:
        """Volume `index` in the source's convention (module docstring); SourceError if it
        cannot be read."""
        volume, array = self._read_checked(index)
        item = self.items[index]
        if self.preset is not None and volume.modality not in ("", self.preset.modality):
            raise SourceError(f"{item.path} is {volume.modality} but preset "
                              f"{self.preset.name!r} is {self.preset.modality}; give volumes of "
                              "one modality.")
        if self.preset is not None and item.kind == "samples":
            array = from_intensities(array, self.preset)
        elif self.preset is not None and item.kind == "scans":
            array = scan_to_model(volume, self.preset)
        return self._volume(volume, array, self.convention, item)

    def read_intensities(self, index: int) -> SourceVolume:
        """Volume `index` in intensities: a PREP_DIR array through `Preset.to_intensity` (HU for
        CT, [0, 1] for MR), any other file as it stores them."""
        volume, array = self._read_checked(index)
        item = self.items[index]
        if item.kind == "prepared":
            array = np.asarray(self.preset.to_intensity(array), dtype=np.float32)
        return self._volume(volume, array, INTENSITIES, item)

    def _read_checked(self, index: int) -> tuple[Volume, np.ndarray]:
        """The stored volume and its float32 values, finite; SourceError naming the file."""
        path = self.items[index].path
        try:
            volume = self.read_stored(index)
        except VolumeError as err:
            raise SourceError(f"cannot read {path} ({brief_error(err)}); fix or remove that "
                              "file.") from None
        array = np.asarray(volume.array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise SourceError(f"{path} holds NaN or infinite values; fix or remove it.")
        return volume, array

    def _volume(self, volume: Volume, array: np.ndarray, convention: str,
                item: SourceItem) -> SourceVolume:
        """A SourceVolume; the modality the file records, else the preset's."""
        modality = volume.modality or (self.preset.modality if self.preset else "")
        spacing = tuple(float(s) for s in volume.spacing)
        return SourceVolume(np.asarray(array, dtype=np.float32), convention, spacing, modality,
                            item)


def from_intensities(array: np.ndarray, preset: Preset) -> np.ndarray:
    """The inverse of `Preset.to_intensity`: HU through the preset's window (CT), or MR's [0, 1],
    back to [-1, 1]; float32."""
    unit = np.asarray(array, dtype=np.float32)
    window = preset.steps[-1].window
    if window is not None:
        low, high = window
        unit = (unit - np.float32(low)) / np.float32(high - low)
    return (unit * np.float32(2.0) - np.float32(1.0)).astype(np.float32)


def scan_to_model(volume: Volume, preset: Preset) -> np.ndarray:
    """A scan's values in the preset's model space, by its pipeline's last step (the value
    mapping: CT's HU window, MR's min-max); its geometry stays as stored.

    A CT array already inside [-1, 1] holds no Hounsfield units (air is -1000): it is taken as it
    is. Per-volume min-max leaves an array that spans [-1, 1] as it is anyway.
    """
    array = np.asarray(volume.array, dtype=np.float32)
    last: MinMax = preset.steps[-1]
    if last.window is not None and float(array.min()) >= -1.0 and float(array.max()) <= 1.0:
        return array
    return last(Part(array=array.copy(), spacing=tuple(volume.spacing)))[0].array


def open_source(folder: str | os.PathLike, *, option: str = "DIR", preset: Preset | None = None,
                finished: bool = False) -> VolumeSource:
    """The volumes of `folder`, given to `option` (e.g. "--samples"); SourceError when there are
    none or the folder cannot be trusted.

    `preset`: the preset a folder of scans is read with; a samples folder or PREP_DIR of another
    preset is refused. `finished`: refuse a samples folder whose sampling was interrupted.
    """
    folder = Path(folder)
    if not folder.is_dir():
        why = "" if folder.exists() else ": it does not exist"
        raise SourceError(f"{option} {folder} is not a folder{why}; give a samples folder, a "
                          "PREP_DIR or a folder of scans.")
    if (folder / SAMPLES_NAME).is_file():
        source = _samples_source(folder, option, finished)
    else:
        source = _prepared_source(folder, option) or _scans_source(folder, option, preset)
    if preset is not None and source.preset is not None and source.preset.name != preset.name:
        raise SourceError(f"{option} {folder} was made with preset {source.preset.name!r}, not "
                          f"{preset.name!r}; give folders of one preset.")
    return source


def open_sources(folders: Sequence[tuple[str, str | os.PathLike]], *,
                 preset: Preset | None = None) -> list[VolumeSource]:
    """Several folders, each given as (option, folder), opened into one convention.

    The preset is the one given, else the one the samples folders and PREP_DIRs share (folders of
    different presets are a SourceError); folders of scans are then read with it, so every volume
    is in its model space. Without any preset every folder is a folder of scans, in intensities.
    """
    sources = [open_source(folder, option=option, preset=preset) for option, folder in folders]
    own = {s.preset.name: s for s in sources if s.preset is not None and s.kind != "scans"}
    if len(own) > 1:
        (a, first), (b, second) = sorted(own.items())[:2]
        raise SourceError(f"{first.folder} was made with preset {a!r} but {second.folder} with "
                          f"{b!r}; compare folders of one preset.")
    common = preset or (next(iter(own.values())).preset if own else None)
    if common is None:
        return sources
    return [dataclasses.replace(s, preset=common) if s.kind == "scans" else s for s in sources]


def check_shape(volume: SourceVolume, expected: tuple[int, ...], reference: str) -> None:
    """SourceError when a volume's shape differs from the shape it is compared with."""
    if tuple(volume.array.shape) != tuple(expected):
        raise SourceError(f"{volume.item.path} has shape {tuple(volume.array.shape)}, not the "
                          f"{tuple(expected)} of {reference}; compare volumes of one shape.")


def _samples_source(folder: Path, option: str, finished: bool) -> VolumeSource:
    """A samples folder: the planned files that exist, in the plan's order."""
    try:
        plan = read_samples(folder, finished=finished)
        preset = get_preset(plan.preset)
    except (SamplesError, PresetError) as err:
        raise SourceError(f"{option} {folder}: {brief_error(err)}.") from None
    items = tuple(SourceItem(folder / entry["file"], str(entry["file"]), "samples",
                             model=str(plan.model), seed=str(entry["seed"]))
                  for entry in plan.files if (folder / entry["file"]).is_file())
    if not items:
        raise SourceError(f"{option} {folder} is a samples folder without any sampled volume "
                          "yet; run mdiff-sample to fill it.")
    return VolumeSource(folder, "samples", items, preset)


def _prepared_source(folder: Path, option: str) -> VolumeSource | None:
    """A PREP_DIR's arrays, sorted; None when `folder` is no PREP_DIR.

    A PREP_DIR made by another version of its preset's pipeline, or by a preset this mdiff does
    not know, is refused: its arrays would be mapped back to intensities wrongly.
    """
    try:
        manifest = find_manifest(folder)
    except PreparedError as err:
        raise SourceError(f"{option} {brief_error(err)}.") from None
    if manifest is None:
        return None
    try:
        preset = get_preset(manifest.preset)
    except PresetError as err:
        raise SourceError(f"{option} {folder} was prepared with preset {manifest.preset!r}, "
                          f"which this mdiff does not know ({brief_error(err)}).") from None
    if manifest.pipeline_hash != preset.pipeline_hash:
        raise SourceError(f"{option} {folder} was prepared by another version of the "
                          f"{preset.name!r} pipeline; prepare its scans again with mdiff-prepare "
                          "--overwrite.")
    items = tuple(SourceItem(folder / name, name, "prepared", prepared_from=source)
                  for name, source in sorted(manifest.array_sources()))
    if not items:
        raise SourceError(f"{option} {folder} is a PREP_DIR without arrays (no scan was "
                          "prepared); run mdiff-prepare on its scans.")
    return VolumeSource(folder, "prepared", items, preset, shape=tuple(manifest.shape))


def _scans_source(folder: Path, option: str, preset: Preset | None) -> VolumeSource:
    """A folder of scans (`io.search_scans`), sorted by path."""
    try:
        paths, skipped = search_scans(folder)
    except VolumeError as err:
        raise SourceError(f"{option} {brief_error(err)}; give a samples folder, a PREP_DIR or a "
                          "folder of NIfTI, DICOM or .npy volumes.") from None
    items = tuple(SourceItem(path, str(path.relative_to(folder)), "scans") for path in paths)
    return VolumeSource(folder, "scans", items, preset, tuple(skipped))
