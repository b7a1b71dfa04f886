"""Build a blinded study from folders of synthetic and real volumes.

The study is built in a hidden temporary folder beside the target and renamed into place at the
end, so a failure leaves no partial study. Blinding, beyond the values (normalise.py) and headers
(case_file.py):
- case ids are random (`secrets.token_hex`), with no sequence;
- cases are written in one random order and listed in study.json in another;
- every case file gets the same modification and access time, set in a third random order;
- the orders a reader could see (list, names, inodes, directory listing, change times) are checked
  with the audit's rule (`studies.blinding`), and the cases are placed again with fresh ids while
  any of them separates real from synthetic (with two or more of each this happens by chance
  with probability 2 / C(n, m) per order, so a retry is rare).
`--seed` makes the choice of inputs and the image values reproducible; ids and orders always come
from `secrets`, so the seed says nothing about them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from diffusion_core.io import Scan, Volume, VolumeError, list_scans
from diffusion_core.modality import MODALITIES
from diffusion_core.preprocess import PreprocessError
from diffusion_core.presets import Preset, PresetError, get_preset
from studies.blinding import order_leaks
from studies.case_file import common_size, encode_case, pad_file
from studies.key import KeyEntry, default_key_path, is_inside, write_key
from studies.normalise import CT_VIEWER, MR_VIEWER, Grid, to_study_values
from studies.questions import study_questions
from studies.study import (
    CASE_SUFFIX,
    CASES_DIR,
    MANIFEST_NAME,
    RATINGS_DIR,
    STUDY_FORMAT,
    STUDY_VERSION,
    Study,
    StudyError,
    utc_now,
)

CASE_ID_BYTES = 4
MAX_PLACEMENTS = 50
MODEL_FILE = "model.json"  # optional, in a synthetic folder: {"name": ...} or {"model": ...}


@dataclass(frozen=True)
class CreatedStudy:
    """What `create_study` made."""

    folder: Path
    key_path: Path
    study_id: str
    n_synthetic: int
    n_real: int


@dataclass(frozen=True)
class _Input:
    """One chosen input volume and what the key will say about it."""

    scan: Scan
    source: str  # "real" | "synthetic"
    model: str = ""
    seed: str = ""

    @property
    def path(self) -> Path:
        """Where the input volume is."""
        return self.scan.path


@dataclass
class _StagedCase:
    """A case encoded into the staging folder, waiting for its random id."""

    staged: Path
    entry: _Input
    origin: str


def create_study(out: str | Path, *, synthetic: str | Path | None = None,
                 real: str | Path | None = None, n: int | None = None,
                 n_real: int | None = None, preset: str | None = None, turing: bool = False,
                 key: str | Path | None = None, seed: int | None = None,
                 title: str | None = None, dataset: str | None = None,
                 modality: str | None = None, progress: bool = False) -> CreatedStudy:
    """Build a blinded study in `out` and write its key (see the module docstring)."""
    out = Path(out)
    key_path = Path(key) if key is not None else default_key_path(out)
    _check_targets(out, key_path)
    the_preset = _load_preset(preset)
    modality = _study_modality(modality, the_preset)
    # Independent streams for choosing inputs and for the dither, both from the one seed.
    streams = np.random.SeedSequence(seed).spawn(2)
    choice_rng, value_rng = (np.random.default_rng(stream) for stream in streams)
    inputs = _choose_inputs(synthetic, real, n, n_real, choice_rng)
    the_preset = _preset_of_prepared(inputs, the_preset)
    modality = _study_modality(modality, the_preset)

    out.parent.mkdir(parents=True, exist_ok=True)
    build = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    key_tmp = key_path.with_name(key_path.name + ".tmp")
    try:
        build.mkdir()
        staged, grid, modality = _stage_cases(build / ".staging", inputs, the_preset, modality,
                                              value_rng, progress)
        listed, case_ids = _place_cases(build, staged)
        study_id = secrets.token_hex(8)
        manifest = {
            "format": STUDY_FORMAT, "version": STUDY_VERSION, "study_id": study_id,
            "title": title or f"Study {study_id}",
            "dataset": dataset or (the_preset.name if the_preset else ""),
            "modality": modality,
            "questions": [q.key for q in study_questions(turing)],
            "turing": turing, "cases": listed,
            "shape": list(grid.shape), "spacing": [float(s) for s in grid.spacing],
            "viewer": dict(CT_VIEWER if modality == "CT" else MR_VIEWER),
            "created_at": utc_now(),
        }
        (build / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
        (build / RATINGS_DIR).mkdir()
        shutil.rmtree(build / ".staging")
        Study(build, manifest).log(f"created study {study_id} with {len(listed)} cases")
        key_entries = [KeyEntry(case_id, s.entry.source, s.origin, s.entry.model, s.entry.seed)
                       for s, case_id in zip(staged, case_ids, strict=True)]
        write_key(key_tmp, key_entries)
        os.rename(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        key_tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(key_tmp, key_path)
    except OSError as err:
        shutil.rmtree(out, ignore_errors=True)
        key_tmp.unlink(missing_ok=True)
        raise StudyError(f"Cannot write the key {key_path} ({err.strerror}); the study was not "
                         "created: choose a writable --key path.") from None
    n_real_made = sum(s.entry.source == "real" for s in staged)
    return CreatedStudy(out, key_path, study_id, len(staged) - n_real_made, n_real_made)


def _check_targets(out: Path, key_path: Path) -> None:
    """Refuse an existing study folder, a key inside it, an existing key or one without a folder.

    The default key's folder is the study's parent, made with the study.
    """
    if out.exists():
        raise StudyError(f"{out} already exists; choose a new --out folder (a study is never "
                         "written over).")
    if is_inside(key_path, out):
        raise StudyError(f"The key {key_path} would lie inside the study {out}, where readers "
                         "could open it; give a --key path outside the study folder.")
    if not key_path.parent.is_dir() and key_path.parent != out.parent:
        raise StudyError(f"The folder {key_path.parent} for the key does not exist; create it or "
                         "give another --key path.")
    if key_path.exists():
        raise StudyError(f"The key {key_path} already exists; give another --key path or move "
                         "the old key away.")


def _load_preset(name: str | None) -> Preset | None:
    """The named preset, or None."""
    if name is None:
        return None
    try:
        return get_preset(name)
    except PresetError as err:
        raise StudyError(f"{str(err).rstrip('.')}.") from None


def _study_modality(modality: str | None, preset: Preset | None) -> str | None:
    """The modality given or the preset's (None: taken from the first volume read)."""
    if modality is not None and modality not in MODALITIES:
        raise StudyError(f"The modality {modality!r} is not CT or MR; give --modality CT or MR.")
    if preset is not None and modality is not None and modality != preset.modality:
        raise StudyError(f"Preset {preset.name!r} is {preset.modality}, not {modality}; leave "
                         "--modality out or choose a matching preset.")
    return modality or (preset.modality if preset else None)


def _choose_inputs(synthetic: str | Path | None, real: str | Path | None, n: int | None,
                   n_real: int | None, rng: np.random.Generator) -> list[_Input]:
    """Pick N synthetic and M real input files at random (all of a folder when not given)."""
    if synthetic is None and real is None:
        raise StudyError("No volumes were given; pass --synthetic DIR and/or --real DIR.")
    for count, option in ((n, "--n"), (n_real, "--n-real")):
        if count is not None and count < 0:
            raise StudyError(f"{option} must be 0 or more, not {count}.")
    if n and synthetic is None:
        raise StudyError(f"--n {n} asks for synthetic cases but no --synthetic folder was given.")
    if n_real and real is None:
        raise StudyError(f"--n-real {n_real} asks for real cases but no --real folder was given.")
    chosen: list[_Input] = []
    for folder, count, source, option in ((synthetic, n, "synthetic", "--n"),
                                          (real, n_real, "real", "--n-real")):
        if folder is None or count == 0:
            continue
        scans = _scans(Path(folder))
        count = len(scans) if count is None else count
        if count > len(scans):
            raise StudyError(f"{folder} holds {len(scans)} scans, fewer than the {count} asked "
                             f"with {option}; ask for fewer or add volumes.")
        picks = sorted(rng.choice(len(scans), size=count, replace=False))
        for index in picks:
            chosen.append(_input(scans[index], source, Path(folder)))
    if not chosen:
        raise StudyError("No volumes were chosen (--n and --n-real are 0); ask for at least one "
                         "case.")
    return chosen


def _scans(folder: Path) -> list[Scan]:
    """The scans of an input folder (or of a PREP_DIR); StudyError when it has none."""
    try:
        scans = list_scans(folder)
    except VolumeError as err:
        raise StudyError(_sentence(err, "give a folder of NIfTI, DICOM or .npy volumes")) from None
    if not scans:
        raise StudyError(f"{folder} holds no volumes; give a folder of NIfTI, DICOM or .npy "
                         "volumes.")
    return scans


def _input(scan: Scan, source: str, folder: Path) -> _Input:
    """An input with its provenance: a synthetic volume's model and seed, when known."""
    path = scan.path
    if source == "real":
        return _Input(scan, source)
    sidecar = _read_json(path.with_name(_stem(path) + ".json"))
    folder_model = _read_json(folder / MODEL_FILE)
    model = sidecar.get("model") or folder_model.get("name") or folder_model.get("model") \
        or folder.resolve().name
    seed = sidecar.get("seed", "")
    return _Input(scan, source, str(model), "" if seed is None else str(seed))


def _preset_of_prepared(inputs: list[_Input], preset: Preset | None) -> Preset | None:
    """The study's preset: the one that made the PREP_DIR inputs when none was given.

    StudyError when PREP_DIRs of different presets are mixed, or when --preset names another.
    """
    prepared = {entry.scan.prepared_by: entry.path.parent for entry in inputs
                if entry.scan.is_preprocessed}
    if not prepared:
        return preset
    if len(prepared) > 1:
        folders = ", ".join(f"{folder} ({name})" for name, folder in sorted(prepared.items()))
        raise StudyError(f"The PREP_DIRs were prepared with different presets ({folders}); "
                         "give folders of one preset.")
    name, folder = next(iter(prepared.items()))
    if preset is not None and preset.name != name:
        raise StudyError(f"{folder} was prepared with preset {name!r}, not {preset.name!r}; "
                         f"pass --preset {name} or leave --preset out.")
    return preset or get_preset(name)


def _stem(path: Path) -> str:
    """A volume file's name without its volume suffix (.nii.gz, .nii, .npy, .dcm)."""
    for suffix in (".nii.gz", ".nii", ".npy", ".dcm"):
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _read_json(path: Path) -> dict:
    """A JSON object from a sidecar file, or {} when there is none (or it is no object)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


def _sentence(err: Exception, advice: str) -> str:
    """An error's message as one sentence ending with what to do."""
    return f"{str(err).rstrip('. ')}; {advice}."


def _stage_cases(staging: Path, inputs: list[_Input], preset: Preset | None,
                 modality: str | None, rng: np.random.Generator,
                 progress: bool) -> tuple[list[_StagedCase], Grid, str]:
    """Read, normalise and encode every input into the staging folder; pad them to one size."""
    staging.mkdir()
    # Real volumes first: without a preset the first real scan defines the grid.
    ordered = sorted(inputs, key=lambda i: i.source != "real")
    grid = Grid(tuple(preset.shape), tuple(preset.spacing)) if preset else None
    first_shape: tuple[Path, tuple[int, ...]] | None = None
    staged: list[_StagedCase] = []
    for number, entry in enumerate(tqdm(ordered, desc="cases", unit="case",
                                        disable=None if progress else True)):
        volume = _read(entry.scan)
        if volume.modality and modality and volume.modality != modality:
            raise StudyError(f"{entry.path} is {volume.modality} but the study is {modality}; "
                             "give volumes of one modality.")
        modality = modality or volume.modality or None
        if modality is None:
            raise StudyError(f"Cannot tell whether {entry.path} is CT or MR; pass --modality "
                             "or --preset.")
        if preset is None:
            if first_shape is None:
                first_shape = (entry.path, volume.array.shape)
                # Rounded to a micrometre: NIfTI stores float32, whose 0.7 is 0.69999999.
                grid = Grid(tuple(int(s) for s in volume.array.shape),
                            tuple(round(float(s), 6) for s in volume.spacing))
            elif volume.array.shape != first_shape[1]:
                raise StudyError(
                    f"{entry.path} has shape {volume.array.shape} but {first_shape[0]} has "
                    f"{first_shape[1]}; pass --preset to bring all volumes to one grid.")
        try:
            arrays = to_study_values(volume, modality, preset, rng)
        except PreprocessError as err:
            raise StudyError(f"{entry.path} cannot go through preset {preset.name!r} ("
                             f"{str(err).rstrip('.')}); remove it from its folder.") from None
        part = int(rng.integers(len(arrays)))
        origin = str(entry.path.resolve())
        if len(arrays) > 1:
            origin += f" [part {part + 1} of {len(arrays)}]"
        target = staging / f"{number}.gz"
        target.write_bytes(encode_case(arrays[part], grid, modality))
        staged.append(_StagedCase(target, entry, origin))
    size = common_size([s.staged.stat().st_size for s in staged])
    for case in staged:
        pad_file(case.staged, size)
    return staged, grid, modality


def _read(scan: Scan) -> Volume:
    """The scan read, with its failure as a StudyError."""
    try:
        return scan.read()
    except VolumeError as err:
        raise StudyError(_sentence(err, "remove or replace that file and run create again")) \
            from None


def _place_cases(build: Path, staged: list[_StagedCase]) -> tuple[list[str], list[str]]:
    """Copy staged cases to cases/<random id>.nii.gz until no visible order separates them.

    Returns the study.json list order and the id given to each staged case, in staged order.
    """
    cases_dir = build / CASES_DIR
    cases_dir.mkdir()
    random = secrets.SystemRandom()
    for _ in range(MAX_PLACEMENTS):
        ids = _unique_ids(len(staged))
        sources = {case_id: case.entry.source for case, case_id in zip(staged, ids, strict=True)}
        for index in random.sample(range(len(staged)), len(staged)):
            shutil.copyfile(staged[index].staged, cases_dir / f"{ids[index]}{CASE_SUFFIX}")
        stamp = int(time.time())
        for case_id in random.sample(ids, len(ids)):
            os.utime(cases_dir / f"{case_id}{CASE_SUFFIX}", (stamp, stamp))
        listed = random.sample(ids, len(ids))
        if not order_leaks(build, listed, sources):
            return listed, ids
        for case_id in ids:
            (cases_dir / f"{case_id}{CASE_SUFFIX}").unlink()
    raise StudyError(f"Could not place the cases in an order that hides their source after "
                     f"{MAX_PLACEMENTS} tries; create the study again.")


def _unique_ids(count: int) -> list[str]:
    """`count` distinct random hex ids."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(CASE_ID_BYTES))
    return list(ids)
