"""A PREP_DIR: one .npy per preprocessed scan plus manifest.json, and the run that fills it.

The manifest records the preset, its pipeline and hash, the source of every array and the files
that were skipped with the reason. It is rewritten atomically after every scan, so an interrupted
run resumes where it stopped, and a second run skips the scans already done.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from diffusion_core.io import (
    VolumeError,
    constant_value,
    find_scans,
    modality_doubt,
    read_volume,
    search_scans,
)
from diffusion_core.preprocess import PreprocessError
from diffusion_core.presets import Preset

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "mdiff-prepared"
MANIFEST_VERSION = 1
_SCAN_SUFFIXES = (".nii.gz", ".nii", ".npy", ".dcm", ".dicom", ".ima")


class PreparedError(Exception):
    """A PREP_DIR that cannot be used or filled as asked; the message says why in one sentence."""


@dataclass
class PreparedScan:
    """A scan that was prepared: its path relative to RAW_DIR and the arrays made from it."""

    source: str
    arrays: list[str]  # file names inside PREP_DIR
    mask: str | None = None  # the mask file used, relative to the masks folder
    source_shape: list[int] = field(default_factory=list)
    source_spacing: list[float] = field(default_factory=list)


@dataclass
class SkippedScan:
    """A scan that could not be prepared, and why."""

    source: str
    reason: str


@dataclass
class Manifest:
    """The content of PREP_DIR/manifest.json."""

    preset: str
    pipeline_hash: str
    pipeline: list[dict]
    modality: str
    shape: list[int]
    spacing: list[float]
    hu_window: list[float] | None
    depth_axis: str
    raw_dir: str
    masks_dir: str | None
    scans: list[PreparedScan] = field(default_factory=list)
    skipped: list[SkippedScan] = field(default_factory=list)

    @classmethod
    def for_preset(cls, preset: Preset, raw_dir: Path, masks_dir: Path | None) -> Manifest:
        """An empty manifest for preparing `raw_dir` with `preset`."""
        return cls(
            preset=preset.name, pipeline_hash=preset.pipeline_hash, pipeline=preset.pipeline(),
            modality=preset.modality, shape=list(preset.shape), spacing=list(preset.spacing),
            hu_window=None if preset.hu_window is None else list(preset.hu_window),
            depth_axis=preset.depth_axis, raw_dir=str(raw_dir),
            masks_dir=None if masks_dir is None else str(masks_dir),
        )

    def array_sources(self) -> list[tuple[str, str]]:
        """(array file name, source scan) for every prepared array, in manifest order."""
        return [(name, scan.source) for scan in self.scans for name in scan.arrays]

    def to_json(self) -> dict:
        """The manifest as JSON-ready data."""
        return {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict, path: Path) -> Manifest:
        """Parse manifest data read from `path`; PreparedError when it is not one of ours."""
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise PreparedError(f"{path} is not an mdiff-prepare manifest")
        if data.get("format_version") != MANIFEST_VERSION:
            raise PreparedError(f"{path} has manifest version {data.get('format_version')!r}; "
                                f"this mdiff reads version {MANIFEST_VERSION}")
        try:
            fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
            fields["scans"] = [PreparedScan(**scan) for scan in fields.get("scans", [])]
            fields["skipped"] = [SkippedScan(**item) for item in fields.get("skipped", [])]
            return cls(**fields)
        except TypeError as err:
            raise PreparedError(f"{path} is a damaged manifest ({err})") from None

    def save(self, prep_dir: Path) -> None:
        """Write manifest.json atomically (a temporary file, then os.replace)."""
        path = prep_dir / MANIFEST_NAME
        temporary = path.with_name(MANIFEST_NAME + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, path)


def load_manifest(prep_dir: str | os.PathLike) -> Manifest:
    """The manifest of a PREP_DIR; PreparedError when it is missing or unreadable."""
    path = Path(prep_dir) / MANIFEST_NAME
    if not path.is_file():
        raise PreparedError(f"{prep_dir} has no {MANIFEST_NAME}; prepare the data first with "
                            f"mdiff-prepare --preset NAME --data RAW_DIR --out {prep_dir}")
    return Manifest.from_json(_manifest_data(path), path)


def find_manifest(folder: str | os.PathLike) -> Manifest | None:
    """The manifest when `folder` is a PREP_DIR; None when it has none (or another tool's).

    PreparedError for an mdiff-prepare manifest that is damaged or of another version, and for a
    manifest.json that is not JSON at all (it cannot be told apart from a damaged one).
    """
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        return None
    data = _manifest_data(path)
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        return None
    return Manifest.from_json(data, path)


def _manifest_data(path: Path) -> object:
    """The JSON content of a manifest file; PreparedError when it cannot be read as JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PreparedError(f"{path} cannot be read as JSON ({err})") from None


# mdiff-prepare clips to [-1, 1] exactly; the margin only forgives float rounding of other tools.
VALUE_TOLERANCE = 1e-3
CONTENT_HASH_FORMAT = "mdiff-prepared-content/1"


def check_array(array: np.ndarray, path: str | os.PathLike,
                shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """`array` as float32 when it is a PREP_DIR array: `shape`, finite, inside [-1, 1].

    PreparedError naming `path` otherwise: such an array was not written by mdiff-prepare (or
    was changed since), and training or scoring on it gives wrong numbers, not an error.
    """
    shape = tuple(int(n) for n in shape)
    if array.shape != shape:
        raise PreparedError(f"{path} has shape {array.shape}, not the {shape} its PREP_DIR's "
                            f"manifest.json gives; run mdiff-prepare again")
    if array.dtype.kind not in "fiu":
        raise PreparedError(f"{path} holds {array.dtype} values, not a prepared volume; run "
                            f"mdiff-prepare again")
    values = np.asarray(array, dtype=np.float32)
    if not np.isfinite(values).all():
        raise PreparedError(f"{path} holds NaN or infinite values; run mdiff-prepare again")
    low, high = float(values.min()), float(values.max())
    if low < -1.0 - VALUE_TOLERANCE or high > 1.0 + VALUE_TOLERANCE:
        raise PreparedError(f"{path} holds values from {low:g} to {high:g}, outside the "
                            f"prepared range [-1, 1]; run mdiff-prepare again")
    return values


def load_array(path: str | os.PathLike, shape: tuple[int, ...] | list[int]) -> np.ndarray:
    """One PREP_DIR array as float32, checked by `check_array`; PreparedError naming the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError) as err:
        raise PreparedError(f"{path} (listed in manifest.json) cannot be read ({err}); run "
                            f"mdiff-prepare again") from None
    return check_array(array, path, shape)


def content_hash(prep_dir: str | os.PathLike) -> str:
    """The fingerprint of a PREP_DIR's content: equal for equal data wherever it lies.

    sha256 over the preset, its pipeline hash and, for each array in the order of its file
    name, the name, its source scan and the sha256 of the file's bytes (the array names and
    sources decide the split and the flips, so they are content too; the folder's path and the
    raw data folder are not). Every array is read once and checked on the way (`check_array`),
    so a PREP_DIR that hashes is one that trains. PreparedError naming a missing or bad file.
    """
    prep_dir = Path(prep_dir)
    manifest = load_manifest(prep_dir)
    digest = hashlib.sha256(json.dumps([CONTENT_HASH_FORMAT, manifest.preset,
                                        manifest.pipeline_hash]).encode("utf-8"))
    for name, source in sorted(manifest.array_sources()):
        path = prep_dir / name
        try:
            data = path.read_bytes()
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (OSError, EOFError, ValueError) as err:
            raise PreparedError(f"{path} (listed in manifest.json) cannot be read ({err}); run "
                                f"mdiff-prepare again") from None
        check_array(array, path, manifest.shape)
        record = [name, source, hashlib.sha256(data).hexdigest()]
        digest.update(("\n" + json.dumps(record)).encode("utf-8"))
    return digest.hexdigest()


SPLITS = ("train", "val", "all")


def _unit_hash(text: str) -> float:
    """A number in [0, 1) fixed by `text` (sha256), the same on every machine and run."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_arrays(manifest: Manifest, split: str, *, val_fraction: float = 0.1,
                 seed: int = 0) -> list[tuple[str, str]]:
    """(array name, source) of one split: "train", "val" or "all", in manifest order.

    The authors had no validation split; ours is deterministic: a scan goes to validation when
    the hash of (seed, its source path) falls under `val_fraction`, so adding scans later moves
    none of the others. Both halves of a DUKE scan share a source and so a split. When the hash
    picks no scan at all but there are two or more, the lowest-hashing one is held out, so a small
    PREP_DIR still gets a validation set.
    """
    if split not in SPLITS:
        raise ValueError(f"split is one of {', '.join(SPLITS)}, not {split!r}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction lies in [0, 1), not {val_fraction}")
    arrays = manifest.array_sources()
    if split == "all":
        return arrays
    scores = {source: _unit_hash(f"{seed}:{source}") for _name, source in arrays}
    held_out = {source for source, score in scores.items() if score < val_fraction}
    if not held_out and val_fraction > 0 and len(scores) >= 2:
        held_out = {min(scores, key=scores.get)}
    return [(name, source) for name, source in arrays if (source in held_out) == (split == "val")]


@dataclass
class PrepareSummary:
    """What one `prepare_folder` run did."""

    preset: str
    out_dir: str
    prepared: int = 0
    skipped: int = 0
    already_done: int = 0
    arrays: int = 0  # arrays in PREP_DIR after the run, old and new

    def line(self) -> str:
        """One line for people: 'prepared 12, skipped 1 (see ...), already done 3; ...'."""
        skipped = f"skipped {self.skipped}"
        if self.skipped:
            skipped += f" (see {Path(self.out_dir) / MANIFEST_NAME})"
        return (f"prepared {self.prepared}, {skipped}, already done {self.already_done}; "
                f"{self.arrays} arrays in {self.out_dir}")


def scan_stem(path: Path) -> str:
    """A scan's name without its file type: case1.nii.gz -> case1; a DICOM folder keeps its name."""
    name = path.name
    for suffix in _SCAN_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def output_stem(scan: Path, raw_dir: Path) -> str:
    """A stable file stem for a scan's arrays from its path in RAW_DIR (a/b.nii -> a__b)."""
    relative = scan.relative_to(raw_dir)
    parts = list(relative.parts[:-1]) + [scan_stem(scan)] if relative.parts else [raw_dir.name]
    return "__".join(re.sub(r"[^A-Za-z0-9._-]+", "_", part) for part in parts)


def _mask_index(masks_dir: Path) -> dict[str, Path]:
    """The masks in `masks_dir` by file stem; PreparedError when a stem is ambiguous."""
    index: dict[str, Path] = {}
    try:
        found = find_scans(masks_dir)
    except VolumeError as err:
        raise PreparedError(f"no masks found: {err}") from None
    for path in found:
        stem = scan_stem(path)
        if stem in index:
            raise PreparedError(f"two masks are named {stem!r} in {masks_dir} ({index[stem].name} "
                                f"and {path.name}); keep one")
        index[stem] = path
    return index


def _source_name(scan: Path, raw_dir: Path) -> str:
    """A scan's path relative to RAW_DIR, with forward slashes (the manifest's key)."""
    relative = scan.relative_to(raw_dir).as_posix()
    return raw_dir.name if relative == "." else relative


def _write_array(array: np.ndarray, path: Path) -> None:
    """Save one .npy atomically, so an interrupted run never leaves half an array."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.save(handle, np.ascontiguousarray(array, dtype=np.float32))
    os.replace(temporary, path)


def _open_manifest(preset: Preset, raw_dir: Path, out_dir: Path, masks_dir: Path | None,
                   overwrite: bool) -> Manifest:
    """The manifest to continue: the existing one when it matches, else a new one."""
    fresh = Manifest.for_preset(preset, raw_dir, masks_dir)
    if not (out_dir / MANIFEST_NAME).exists():
        return fresh
    try:
        old = load_manifest(out_dir)
    except PreparedError as err:
        if not overwrite:
            raise PreparedError(f"{err}; use --overwrite to prepare {out_dir} again") from None
        return fresh
    differs = None
    if old.preset != preset.name:
        differs = f"was prepared with preset {old.preset!r}, not {preset.name!r}"
    elif old.pipeline_hash != preset.pipeline_hash:
        differs = f"was prepared by another version of the {preset.name!r} pipeline"
    elif (old.masks_dir is None) != (masks_dir is None):
        differs = ("was prepared with masks" if old.masks_dir else "was prepared without masks")
    # Sources are recorded relative to the data folder, so scans of another folder with the same
    # relative paths would pass as done and the manifest would name the wrong files.
    elif old.raw_dir != fresh.raw_dir:
        differs = f"was prepared from another data folder ({old.raw_dir})"
    elif old.masks_dir != fresh.masks_dir:
        differs = f"was prepared with masks from another folder ({old.masks_dir})"
    if differs is None:
        return old
    if not overwrite:
        raise PreparedError(f"{out_dir} {differs}; choose another --out or add --overwrite to "
                            f"replace its arrays")
    for name, _source in old.array_sources():
        (out_dir / name).unlink(missing_ok=True)
    return fresh


def _check_folders(raw_dir: Path, out_dir: Path, masks_dir: Path | None, preset: Preset) -> None:
    """PreparedError for folders that cannot work together."""
    if not raw_dir.is_dir():
        raise PreparedError(f"the data folder {raw_dir} does not exist; pass a folder of scans "
                            f"to --data")
    if out_dir.exists() and not out_dir.is_dir():
        raise PreparedError(f"--out {out_dir} is a file, not a folder; choose a folder")
    if out_dir.resolve().is_relative_to(raw_dir.resolve()):
        raise PreparedError(f"--out {out_dir} lies inside the data folder {raw_dir}, where its "
                            f".npy arrays would be read as scans; choose a folder outside it")
    if masks_dir is not None:
        if not preset.uses_masks:
            raise PreparedError(f"preset {preset.name!r} takes no masks; drop --masks")
        if not masks_dir.is_dir():
            raise PreparedError(f"the masks folder {masks_dir} does not exist")


def prepare_folder(preset: Preset, raw_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                   masks_dir: str | os.PathLike | None = None, overwrite: bool = False,
                   progress: bool = True) -> PrepareSummary:
    """Run `preset`'s pipeline over every scan in `raw_dir` into `out_dir` (see module doc).

    A scan that cannot be read or processed, a constant one, one whose file records another
    modality than the preset's, or a DICOM image that is no CT or MR scan (a segmentation, an RT
    dose, an ultrasound) is reported on stderr, recorded in the manifest's `skipped` list and
    passed over; scans skipped by an earlier run are tried again. A scan whose values look like
    the other modality (HU air under an MR preset, an 8-bit range under a CT preset) is prepared
    with a warning on stderr.
    PreparedError for folder-level problems (missing data folder, no scans, a PREP_DIR made by
    another preset or from another data folder).
    """
    from tqdm import tqdm

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    masks_dir = None if masks_dir is None else Path(masks_dir)
    _check_folders(raw_dir, out_dir, masks_dir, preset)
    try:
        scans, not_scans = search_scans(raw_dir)
    except VolumeError as err:
        raise PreparedError(str(err)) from None
    if not scans:
        raise PreparedError(f"no scans found in {raw_dir}")
    masks = _mask_index(masks_dir) if masks_dir is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = _open_manifest(preset, raw_dir.resolve(), out_dir,
                              None if masks_dir is None else masks_dir.resolve(), overwrite)
    summary = PrepareSummary(preset=preset.name, out_dir=str(out_dir))
    for other in not_scans:
        source = _source_name(other.path, raw_dir)
        manifest.scans = [s for s in manifest.scans if s.source != source]
        manifest.skipped = [s for s in manifest.skipped if s.source != source]
        manifest.skipped.append(SkippedScan(source=source, reason=f"{other.reason}."))
        summary.skipped += 1
        print(f"skipped {source}: {other.reason}", file=sys.stderr)
    manifest.save(out_dir)
    for scan in tqdm(scans, desc=f"mdiff-prepare {preset.name}", unit="scan", file=sys.stderr,
                     disable=not progress):
        source = _source_name(scan, raw_dir)
        done = next((s for s in manifest.scans if s.source == source), None)
        if done is not None and all((out_dir / name).is_file() for name in done.arrays):
            summary.already_done += 1
            continue
        manifest.scans = [s for s in manifest.scans if s.source != source]
        manifest.skipped = [s for s in manifest.skipped if s.source != source]
        try:
            record = _prepare_scan(preset, scan, raw_dir, out_dir, masks, manifest)
        except (VolumeError, PreparedError) as err:
            reason = str(err)
        except PreprocessError as err:
            reason = f"{scan}: {err}"
        except Exception as err:  # one bad file must not end a long batch
            reason = f"{scan}: unexpected {type(err).__name__}: {err}"
        else:
            manifest.scans.append(record)
            manifest.save(out_dir)
            summary.prepared += 1
            continue
        manifest.skipped.append(SkippedScan(source=source, reason=reason))
        manifest.save(out_dir)
        summary.skipped += 1
        tqdm.write(f"skipped {source}: {reason}", file=sys.stderr)
    summary.arrays = len(manifest.array_sources())
    return summary


def _prepare_scan(preset: Preset, scan: Path, raw_dir: Path, out_dir: Path,
                  masks: dict[str, Path] | None, manifest: Manifest) -> PreparedScan:
    """Read, preprocess and save one scan; the manifest record of what was written."""
    mask_path = None
    mask = None
    if masks is not None:
        mask_path = masks.get(scan_stem(scan))
        if mask_path is None:
            raise PreparedError(f"{scan}: no mask named {scan_stem(scan)!r} in the masks folder")
    volume = read_volume(scan, modality=preset.modality)
    value = constant_value(volume.array)
    if value is not None:
        raise PreparedError(f"{scan}: every voxel is {value:g}, a constant volume with no image")
    doubt = modality_doubt(volume, preset.modality)
    if doubt is not None:
        from tqdm import tqdm

        tqdm.write(f"warning: {scan}: {doubt} (preset {preset.name!r}); check that it belongs "
                   "with this preset.", file=sys.stderr)
    if mask_path is not None:
        mask = read_volume(mask_path).array
        if mask.shape != volume.array.shape:
            raise PreparedError(f"{scan}: its mask {mask_path} has shape {mask.shape}, the scan "
                                f"{volume.array.shape}")
    parts = preset.preprocess_parts(volume, mask)
    stem = output_stem(scan, raw_dir)
    taken = {name for name, _source in manifest.array_sources()}
    names = [f"{stem}_{part.label}.npy" if part.label else f"{stem}.npy" for part in parts]
    if taken.intersection(names):
        # Two sources with one stem (a.nii beside a.nii.gz): tell them apart by the source path.
        tag = hashlib.sha1(_source_name(scan, raw_dir).encode("utf-8")).hexdigest()[:8]
        stem = f"{stem}-{tag}"
        names = [f"{stem}_{part.label}.npy" if part.label else f"{stem}.npy" for part in parts]
    for part, name in zip(parts, names, strict=True):
        _write_array(part.array, out_dir / name)
    return PreparedScan(
        source=_source_name(scan, raw_dir), arrays=names,
        mask=None if mask_path is None else mask_path.name,
        source_shape=[int(n) for n in volume.array.shape],
        source_spacing=[float(s) for s in volume.spacing],
    )
