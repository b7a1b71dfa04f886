"""Build a blinded study from folders of synthetic and real volumes.

The study is built in a hidden folder beside the target (`.NAME.partial-XXXXXXXX`) and renamed
into place at the end, so a failure leaves no partial study. The build folder is locked (`flock`)
while a create runs; a build folder of the same study that nobody holds is what a killed create
(SIGKILL, power cut) left behind, and the next create of that study removes it and says so.

Blinding, beyond the values (normalise.py: one road for every input) and headers (case_file.py):
- inputs are read and staged in a random order, under random names, so even a build folder left
  behind by a killed create says nothing about which file was real;
- case ids are random (`secrets.token_hex`), with no sequence;
- cases are written in one random order and listed in study.json in another;
- every case file gets the same modification and access time, set in a third random order;
- the orders a reader could see (list, names, inodes, directory listing, access and change
  times) are tested with the audit's file-level rule (`studies.blinding`), and the cases are
  placed again with fresh ids while any of them separates real from synthetic.
`--seed` makes the choice of inputs and the image values reproducible; ids and orders always come
from `secrets`, so the seed says nothing about them.

A practice block (`--practice K`, or `--practice-real DIR` / `--practice-synthetic DIR`) adds cases
that readers rate first and whose truth they are shown after answering. They take the same road
(the same grid, quantisation and dither key), go to `practice/P01.nii ...` in a random order of
sources, are listed with their truth in study.json and with their origin in the key. `--practice K`
takes them from the study's own folders, before the study cases are drawn, so they are never study
cases; real and synthetic as evenly as the folders allow (an odd one goes to a seeded random
source). A study that takes every input of a folder then takes every input the practice block
left, and keeps at least one of each folder.

An input that cannot make a case is skipped with a note, and the next candidate of its folder
takes its place: a constant volume (every voxel the same), or one that the preset's pipeline
makes constant; DICOM images that are no CT or MR scan are passed over when the folder is listed.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from diffusion_core.io import Scan, Volume, VolumeError, constant_value, list_scans, modality_doubt
from diffusion_core.modality import MODALITIES
from diffusion_core.outputs import check_output
from diffusion_core.preprocess import PreprocessError
from diffusion_core.presets import Preset, PresetError, get_preset
from diffusion_core.samples import SAMPLES_NAME, SamplesError, read_samples
from studies.blinding import order_leaks
from studies.case_file import encode_case
from studies.key import KeyEntry, default_key_path, is_inside, write_key
from studies.normalise import (
    CT_VIEWER,
    MR_VIEWER,
    Grid,
    case_values,
    is_preprocessed,
    to_unit,
)
from studies.questions import study_questions
from studies.study import (
    CASE_SUFFIX,
    CASES_DIR,
    MANIFEST_NAME,
    PRACTICE_DIR,
    RATINGS_DIR,
    STUDY_FORMAT,
    STUDY_VERSION,
    Study,
    StudyError,
    dataset_name,
    utc_now,
)

CASE_ID_BYTES = 4
MAX_PLACEMENTS = 50
MODEL_FILE = "model.json"  # optional, in a synthetic folder: {"name": ...} or {"model": ...}
STAGING_DIR = ".staging"
PARTIAL_MARK = ".partial-"
VALUE_KEY_WORDS = 4  # the dither's study key (normalise.content_rng): 128 bits from the seed
PRACTICE_ID_FORMAT = "P{:02d}"


@dataclass(frozen=True)
class CreatedStudy:
    """What `create_study` made."""

    folder: Path
    key_path: Path
    study_id: str
    dataset: str
    n_synthetic: int
    n_real: int
    notes: tuple[str, ...] = ()  # inputs skipped, values that look like another modality, ...
    n_practice: int = 0


@dataclass(frozen=True)
class _Input:
    """One candidate input volume and what the key will say about it."""

    scan: Scan
    source: str  # "real" | "synthetic"
    model: str = ""
    seed: str = ""
    part_draw: int = 0  # which part of a split scan becomes the case (modulo the part count)

    @property
    def path(self) -> Path:
        """Where the input volume is."""
        return self.scan.path


@dataclass
class _Pool:
    """The candidates of one folder, in the seeded random order; each is taken at most once."""

    source: str
    folder: Path
    candidates: list[_Input]
    next_index: int = 0

    def take(self) -> _Input | None:
        """The next candidate not yet tried, or None when none is left."""
        if self.next_index >= len(self.candidates):
            return None
        self.next_index += 1
        return self.candidates[self.next_index - 1]

    @property
    def left(self) -> int:
        """How many candidates were not taken yet."""
        return len(self.candidates) - self.next_index


@dataclass
class _Draw:
    """How many cases the study or its practice block takes from one folder's pool."""

    pool: _Pool
    option: str  # the option that asked for the count: "--n", "--n-real", "--practice", ...
    wanted: int | None  # None: every candidate left
    used: int = 0
    skipped: int = 0


@dataclass
class _StagedCase:
    """A case encoded into the staging folder, waiting for its random id."""

    staged: Path
    entry: _Input
    origin: str


@dataclass
class _Staging:
    """What staging made: the cases, the grid and modality they share, and the notes."""

    cases: list[_StagedCase] = field(default_factory=list)
    practice: list[_StagedCase] = field(default_factory=list)
    grid: Grid | None = None
    grid_source: Path | None = None  # without a preset: the input whose grid the study takes
    modality: str | None = None
    constant: set[Path] = field(default_factory=set)  # inputs already found constant (noted)


def create_study(out: str | Path, *, synthetic: str | Path | None = None,
                 real: str | Path | None = None, n: int | None = None,
                 n_real: int | None = None, preset: str | None = None, turing: bool = False,
                 key: str | Path | None = None, seed: int | None = None,
                 title: str | None = None, dataset: str | None = None,
                 modality: str | None = None, practice: int | None = None,
                 practice_real: str | Path | None = None,
                 practice_synthetic: str | Path | None = None, answers_editable: bool = True,
                 progress: bool = False,
                 note: Callable[[str], None] | None = None) -> CreatedStudy:
    """Build a blinded study in `out` and write its key (see the module docstring).

    `note` is told, as it happens, each input skipped and each other thing worth knowing; the
    same notes come back in `CreatedStudy.notes`.
    """
    out = Path(out)
    key_path = Path(key) if key is not None else default_key_path(out)
    folders = {"--real": real, "--synthetic": synthetic, "--practice-real": practice_real,
               "--practice-synthetic": practice_synthetic}
    _check_targets(out, key_path, folders)
    _check_folders(folders)
    the_preset = _load_preset(preset)
    modality = _study_modality(modality, the_preset)
    # Independent streams for choosing inputs and for the dither, both from the one seed.
    choice_seed, value_seed = np.random.SeedSequence(seed).spawn(2)
    value_key = [int(word) for word in value_seed.generate_state(VALUE_KEY_WORDS)]
    notes: list[str] = []

    def tell(message: str) -> None:
        notes.append(message)
        if note is not None:
            note(message)

    choice_rng = np.random.default_rng(choice_seed)
    draws = _choose_inputs(synthetic, real, n, n_real, choice_rng, tell)
    practice_draws = _choose_practice(draws, practice, practice_real, practice_synthetic,
                                      choice_rng, tell)
    the_preset = _preset_of_prepared(_pools_of(draws + practice_draws), the_preset)
    modality = _study_modality(modality, the_preset)

    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in clear_stale_builds(out):
        tell(f"removed {stale}, the build folder of a create of this study that was stopped "
             "before it finished")
    build = out.parent / f".{out.name}{PARTIAL_MARK}{secrets.token_hex(4)}"
    key_tmp = key_path.with_name(key_path.name + ".tmp")
    lock = None
    try:
        build.mkdir()
        lock = _lock_build(build)
        staging = _stage_cases(build / STAGING_DIR, draws, practice_draws, the_preset, modality,
                               value_key, progress, tell)
        listed, case_ids = _place_cases(build, staging.cases)
        practice_cases = _place_practice(build, staging.practice)
        study_id = secrets.token_hex(8)
        the_dataset = dataset_name(dataset, the_preset.name if the_preset else None, title, out)
        manifest = {
            "format": STUDY_FORMAT, "version": STUDY_VERSION, "study_id": study_id,
            "title": title or f"Study {study_id}",
            "dataset": the_dataset,
            "modality": staging.modality,
            "questions": [q.key for q in study_questions(turing)],
            "turing": turing, "cases": listed,
            "shape": list(staging.grid.shape),
            "spacing": [float(s) for s in staging.grid.spacing],
            "viewer": dict(CT_VIEWER if staging.modality == "CT" else MR_VIEWER),
            "created_at": utc_now(),
            "answers_editable": answers_editable,
            "practice": [{"case_id": case_id, "source": case.entry.source}
                         for case_id, case in practice_cases],
        }
        (build / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n",
                                           encoding="utf-8")
        (build / RATINGS_DIR).mkdir()
        shutil.rmtree(build / STAGING_DIR)
        Study(build, manifest).log(f"created study {study_id} with {len(listed)} cases")
        key_entries = [KeyEntry(case_id, s.entry.source, s.origin, s.entry.model, s.entry.seed)
                       for s, case_id in zip(staging.cases, case_ids, strict=True)]
        key_entries += [KeyEntry(case_id, s.entry.source, s.origin, s.entry.model, s.entry.seed)
                        for case_id, s in practice_cases]
        write_key(key_tmp, key_entries)
        os.rename(build, out)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        key_tmp.unlink(missing_ok=True)
        raise
    finally:
        if lock is not None:
            os.close(lock)  # releases the flock; the folder is the study now, or gone
    try:
        os.replace(key_tmp, key_path)
    except OSError as err:
        shutil.rmtree(out, ignore_errors=True)
        key_tmp.unlink(missing_ok=True)
        raise StudyError(f"Cannot write the key {key_path} ({err.strerror}); the study was not "
                         "created: choose a writable --key path.") from None
    n_real_made = sum(s.entry.source == "real" for s in staging.cases)
    return CreatedStudy(out, key_path, study_id, the_dataset,
                        len(staging.cases) - n_real_made, n_real_made, tuple(notes),
                        len(practice_cases))


def create_study_from_model(out: str | Path, *, model: str, n: int, sampler: str = "dpm",
                            steps: int | None = None, device: str = "auto",
                            seed: int | None = None, **options) -> CreatedStudy:
    """Sample `n` volumes from a registered model (or DDPM run), then build the study with them.

    The samples go to a temporary folder beside `out` and take the same road into cases as any
    other input; each case's model and seed reach the key. The folder is removed afterwards.
    With `practice=K` (and no practice folders), K more are sampled, so the practice block can
    take its synthetic cases from them; those it leaves are not used.
    """
    from diffusion_core.registry import Registry, RegistryError
    from diffusion_core.run_files import CheckpointError
    from diffusion_core.sampling import sample_folder

    out = Path(out)
    try:
        entry = Registry().resolve(model)
    except RegistryError as err:
        raise StudyError(str(err)) from None
    if options.get("preset") not in (None, entry.preset):
        raise StudyError(f"model {model!r} is of preset {entry.preset!r}, not "
                         f"{options['preset']!r}; leave --preset out or pick another model.")
    options["preset"] = entry.preset
    _check_targets(out, Path(options["key"]) if options.get("key") else default_key_path(out),
                   {"--model": model if Path(model).exists() else None,
                    **{f"--{name.replace('_', '-')}": options.get(name)
                       for name in ("real", "practice_real", "practice_synthetic")}})
    out.parent.mkdir(parents=True, exist_ok=True)
    samples = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.samples-"))
    try:
        try:
            extra = 0 if options.get("practice_synthetic") else options.get("practice") or 0
            sample_folder(model, n + extra, samples, sampler=sampler, steps=steps, device=device,
                          seed=0 if seed is None else seed, progress=options.get("progress"))
        except (RegistryError, CheckpointError, SamplesError, ValueError) as err:
            raise StudyError(str(err)) from None
        return create_study(out, synthetic=samples, n=n, seed=seed, **options)
    finally:
        shutil.rmtree(samples, ignore_errors=True)


def _lock_build(build: Path) -> int:
    """Hold an exclusive flock on the build folder; the OS drops it when this process ends."""
    descriptor = os.open(build, os.O_RDONLY)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return descriptor


def clear_stale_builds(out: Path) -> list[Path]:
    """Remove the build folders of `out` that no running create holds; return what was removed.

    A running create holds its build folder's flock, so a folder whose lock can be taken was
    left by a create that was killed.
    """
    removed = []
    prefix = f".{out.name}{PARTIAL_MARK}"
    for candidate in sorted(out.parent.glob(f"{prefix}*")):
        if not candidate.is_dir() or candidate.is_symlink():
            continue
        try:
            descriptor = _lock_build(candidate)
        except BlockingIOError:
            continue  # another create is building it right now
        except OSError:
            continue  # gone meanwhile, or unreadable: not ours to remove
        try:
            shutil.rmtree(candidate)
            removed.append(candidate)
        except OSError:
            pass  # what cannot be removed stays; the new build does not need its name
        finally:
            os.close(descriptor)
    return removed


def _check_targets(out: Path, key_path: Path,
                   inputs: dict[str, str | Path | None]) -> None:
    """Refuse an existing study folder, a key inside it, an existing key or one without a folder,
    and either of them inside another study or an input folder (`inputs`: option -> folder).

    The default key's folder is the study's parent, made with the study.
    """
    if out.exists():
        raise StudyError(f"{out} already exists; choose a new --out folder (a study is never "
                         "written over).")
    check_output(out, inputs=inputs.items(), what="--out", kind="folder")
    if is_inside(key_path, out):
        raise StudyError(f"The key {key_path} would lie inside the study {out}, where readers "
                         "could open it; give a --key path outside the study folder.")
    if not key_path.parent.is_dir() and key_path.parent != out.parent:
        raise StudyError(f"The folder {key_path.parent} for the key does not exist; create it or "
                         "give another --key path.")
    # An existing key is refused below in create's own words: create has no --force.
    check_output(key_path, inputs=inputs.items(), what="--key", force=True)
    if key_path.exists():
        raise StudyError(f"The key {key_path} already exists; give another --key path or move "
                         "the old key away.")


def _check_folders(folders: dict[str, str | Path | None]) -> None:
    """Refuse one folder given for two options (e.g. --real and --synthetic), or one inside
    another; `folders` maps each option to its folder (None when not given)."""
    given = [(option, Path(folder).resolve(), folder) for option, folder in folders.items()
             if folder is not None]
    for index, (first, first_dir, first_text) in enumerate(given):
        for second, second_dir, _ in given[index + 1:]:
            # A practice case from a study folder could be one of the study's own cases.
            why = ("practice cases must come from other scans than the study's (or use "
                   "--practice K alone)" if "practice" in first + second
                   else "give the real scans and the synthetic volumes in separate folders")
            if first_dir == second_dir:
                raise StudyError(f"{first} and {second} are the same folder ({first_text}); "
                                 f"{why}.")
            for inner, outer, inner_option, outer_option in (
                    (second_dir, first_dir, second, first), (first_dir, second_dir, first, second)):
                if inner.is_relative_to(outer):
                    raise StudyError(f"The {inner_option} folder {inner} lies inside the "
                                     f"{outer_option} folder {outer}, whose scans it would "
                                     f"join; {why}.")


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
                   n_real: int | None, rng: np.random.Generator,
                   tell: Callable[[str], None]) -> list[_Draw]:
    """Each folder's candidates in a seeded random order, with the count asked of it."""
    if synthetic is None and real is None:
        raise StudyError("No volumes were given; pass --synthetic DIR and/or --real DIR.")
    for count, option in ((n, "--n"), (n_real, "--n-real")):
        if count is not None and count < 0:
            raise StudyError(f"{option} must be 0 or more, not {count}.")
    if n and synthetic is None:
        raise StudyError(f"--n {n} asks for synthetic cases but no --synthetic folder was given.")
    if n_real and real is None:
        raise StudyError(f"--n-real {n_real} asks for real cases but no --real folder was given.")
    draws = []
    for folder, count, source, option in ((synthetic, n, "synthetic", "--n"),
                                          (real, n_real, "real", "--n-real")):
        if folder is None or count == 0:
            continue
        pool = _pool(Path(folder), source, rng, tell)
        if count is not None and count > len(pool.candidates):
            raise StudyError(f"{folder} holds {len(pool.candidates)} scans, fewer than the "
                             f"{count} asked with {option}; ask for fewer or add volumes.")
        draws.append(_Draw(pool, option, count))
    if not draws:
        raise StudyError("No volumes were chosen (--n and --n-real are 0); ask for at least one "
                         "case.")
    return draws


def _pool(folder: Path, source: str, rng: np.random.Generator,
          tell: Callable[[str], None]) -> _Pool:
    """A folder's scans as candidates in a seeded random order, each with its part draw."""
    scans = _scans(folder, tell)
    order = rng.permutation(len(scans))
    parts = rng.integers(0, 2**31, size=len(scans))
    return _Pool(source, folder, [_input(scans[i], source, folder, int(part))
                                  for i, part in zip(order, parts, strict=True)])


def _choose_practice(study: list[_Draw], practice: int | None,
                     practice_real: str | Path | None, practice_synthetic: str | Path | None,
                     rng: np.random.Generator, tell: Callable[[str], None]) -> list[_Draw]:
    """The practice block's draws: from the practice folders, else `practice` from the study's
    own folders (as evenly over real and synthetic as they allow); [] without a practice block."""
    if practice is not None and practice < 1:
        raise StudyError(f"--practice must be 1 or more, not {practice}.")
    folders = [(folder, source, option) for folder, source, option in (
        (practice_real, "real", "--practice-real"),
        (practice_synthetic, "synthetic", "--practice-synthetic")) if folder is not None]
    if folders:
        draws = [_Draw(_pool(Path(folder), source, rng, tell), option, None)
                 for folder, source, option in folders]
        if practice is None:
            return draws
        room = [len(d.pool.candidates) for d in draws]
        if practice > sum(room):
            raise StudyError(f"--practice {practice} asks for more practice cases than the "
                             f"{sum(room)} volumes of the practice folders; ask for fewer or add "
                             "volumes.")
    elif practice is None:
        return []
    else:
        # The study keeps what it asked for; without a count, at least one case of the folder.
        room = [len(d.pool.candidates) - (d.wanted if d.wanted is not None else 1)
                for d in study]
        if practice > sum(room):
            raise StudyError(f"--practice {practice} asks for more practice cases than the "
                             f"{sum(room)} volumes the input folders hold beside the study's "
                             "cases; ask for fewer, or give --practice-real and "
                             "--practice-synthetic folders.")
        draws = [_Draw(d.pool, "--practice", None) for d in study]
    for draw, count in zip(draws, _even_split(practice, room, rng), strict=True):
        draw.wanted = count
    return [d for d in draws if d.wanted]


def _pools_of(draws: list[_Draw]) -> list[_Pool]:
    """The pools the draws take from, each once (the study and its practice may share one)."""
    return list({id(draw.pool): draw.pool for draw in draws}.values())


def _even_split(total: int, room: list[int], rng: np.random.Generator) -> list[int]:
    """`total` split over the folders as evenly as their room allows; an odd one goes to a
    random folder."""
    counts = [0] * len(room)
    for _ in range(total):
        open_folders = [i for i in range(len(room)) if counts[i] < room[i]]
        fewest = min(counts[i] for i in open_folders)
        candidates = [i for i in open_folders if counts[i] == fewest]
        counts[candidates[int(rng.integers(len(candidates)))]] += 1
    return counts


def _scans(folder: Path, tell: Callable[[str], None]) -> list[Scan]:
    """The scans of an input folder (or of a PREP_DIR); StudyError when it has none."""
    try:
        listing = list_scans(folder)
    except VolumeError as err:
        raise StudyError(_sentence(err, "give a folder of NIfTI, DICOM or .npy volumes")) from None
    for skipped in listing.skipped:
        tell(f"skipped {skipped.reason}")
    if not listing.scans:
        raise StudyError(f"{folder} holds no volumes; give a folder of NIfTI, DICOM or .npy "
                         "volumes.")
    return listing.scans


def _input(scan: Scan, source: str, folder: Path, part_draw: int) -> _Input:
    """An input with its provenance: a synthetic volume's model and seed, when known."""
    path = scan.path
    if source == "real":
        return _Input(scan, source, part_draw=part_draw)
    if (folder / SAMPLES_NAME).is_file():  # a samples folder written by mdiff-sample
        try:
            plan = read_samples(folder, finished=True)  # an interrupted folder is no input
        except SamplesError as err:
            raise StudyError(str(err)) from None
        seeds = {item["file"]: str(item["seed"]) for item in plan.files}
        return _Input(scan, source, plan.model, seeds.get(path.name, ""), part_draw)
    sidecar = _read_json(path.with_name(_stem(path) + ".json"))
    folder_model = _read_json(folder / MODEL_FILE)
    model = sidecar.get("model") or folder_model.get("name") or folder_model.get("model") \
        or folder.resolve().name
    seed = sidecar.get("seed", "")
    return _Input(scan, source, str(model), "" if seed is None else str(seed), part_draw)


def _preset_of_prepared(pools: list[_Pool], preset: Preset | None) -> Preset | None:
    """The study's preset: the one that made the PREP_DIR inputs when none was given.

    StudyError when PREP_DIRs of different presets are mixed, or when --preset names another.
    """
    prepared = {entry.scan.prepared_by: entry.path.parent for pool in pools
                for entry in pool.candidates if entry.scan.is_preprocessed}
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


def _stage_cases(staging_dir: Path, draws: list[_Draw], practice: list[_Draw],
                 preset: Preset | None, modality: str | None, value_key: list[int],
                 progress: bool, tell: Callable[[str], None]) -> _Staging:
    """Read each input by the one road and write its case into the staging folder.

    The practice block goes first: it takes its inputs from the front of each folder's seeded
    order, and a study that takes every input of a folder then takes the rest.
    """
    staging_dir.mkdir()
    staging = _Staging(modality=modality)
    cache: dict[Path, Volume] = {}
    if preset is not None:
        staging.grid = Grid(tuple(preset.shape), tuple(preset.spacing))
    else:
        _grid_from_first_input(_pools_of(draws + practice), staging, cache, tell)
    bar = tqdm(total=0, desc="cases", unit="case", disable=None if progress else True)
    try:
        staging.practice = _stage_draws(practice, staging_dir, staging, preset, value_key,
                                        cache, bar, tell)
        staging.cases = _stage_draws(draws, staging_dir, staging, preset, value_key, cache,
                                     bar, tell)
    finally:
        bar.close()
    if not staging.cases:
        raise StudyError("No input could become a case (each was skipped, as noted above); give "
                         "other volumes.")
    return staging


def _stage_draws(draws: list[_Draw], staging_dir: Path, staging: _Staging,
                 preset: Preset | None, value_key: list[int], cache: dict[Path, Volume],
                 bar: tqdm, tell: Callable[[str], None]) -> list[_StagedCase]:
    """Stage the cases `draws` ask for; StudyError when a folder cannot give its count.

    The inputs are taken in a random order (and a skipped one's replacement slotted in at a
    random place), so nothing staged says which file came first.
    """
    random = secrets.SystemRandom()
    queue: list[tuple[_Draw, _Input]] = []
    for draw in draws:
        for _ in range(draw.pool.left if draw.wanted is None else draw.wanted):
            queue.append((draw, draw.pool.take()))
    random.shuffle(queue)
    bar.total += len(queue)
    bar.refresh()
    staged = []
    while queue:
        draw, entry = queue.pop()
        case = _stage_one(entry, staging_dir, staging, preset, value_key, cache, tell)
        if case is not None:
            staged.append(case)
            draw.used += 1
            bar.update()
            continue
        draw.skipped += 1
        if draw.wanted is None:
            bar.total -= 1
            bar.refresh()
            continue
        replacement = draw.pool.take()
        if replacement is not None:
            queue.insert(random.randrange(len(queue) + 1), (draw, replacement))
    for draw in draws:
        if draw.wanted is not None and draw.used < draw.wanted:
            raise StudyError(f"Only {draw.used} of the {draw.wanted} {draw.pool.source} volumes "
                             f"asked with {draw.option} could be used ({draw.skipped} of "
                             f"{draw.pool.folder} were skipped, as noted above); ask for fewer "
                             "or add volumes.")
    return staged


def _grid_from_first_input(pools: list[_Pool], staging: _Staging, cache: dict[Path, Volume],
                           tell: Callable[[str], None]) -> None:
    """Without a preset the first usable real volume (else synthetic) sets grid and modality.

    It is read now and kept for its turn in the staging order.
    """
    ordered = sorted(pools, key=lambda pool: pool.source != "real")
    for pool in ordered:
        for entry in pool.candidates:
            volume = _read(entry.scan)
            if _is_constant(volume, entry, staging, tell):
                continue
            cache[entry.path] = volume
            staging.modality = staging.modality or volume.modality or None
            if staging.modality is None:
                raise StudyError(f"Cannot tell whether {entry.path} is CT or MR; pass "
                                 "--modality or --preset.")
            # Rounded to a micrometre: NIfTI stores float32, whose 0.7 is 0.69999999.
            staging.grid = Grid(tuple(int(s) for s in volume.array.shape),
                                tuple(round(float(s), 6) for s in volume.spacing))
            staging.grid_source = entry.path
            return
    raise StudyError("Every chosen volume is constant, so none can set the study's grid; give "
                     "other volumes.")


def _is_constant(volume: Volume, entry: _Input, staging: _Staging,
                 tell: Callable[[str], None]) -> bool:
    """Whether a volume is constant; the first time, it is noted as skipped."""
    value = constant_value(volume.array)
    if value is None:
        return False
    if entry.path not in staging.constant:
        staging.constant.add(entry.path)
        tell(f"skipped {entry.path}: every voxel is {value:g}, a constant volume with no image")
    return True


def _stage_one(entry: _Input, staging_dir: Path, staging: _Staging, preset: Preset | None,
               value_key: list[int], cache: dict[Path, Volume],
               tell: Callable[[str], None]) -> _StagedCase | None:
    """One input's case in the staging folder; None when it is skipped (and noted)."""
    if entry.path in staging.constant:
        return None
    volume = cache.pop(entry.path) if entry.path in cache else _read(entry.scan)
    if _is_constant(volume, entry, staging, tell):
        return None
    modality = staging.modality
    if volume.modality and volume.modality != modality:
        against = f"preset {preset.name!r} is" if preset else "the study is"
        raise StudyError(f"{entry.path} is {volume.modality} but {against} {modality}; give "
                         "volumes of one modality.")
    prepared = entry.scan.is_preprocessed
    if not prepared and not (preset is not None and is_preprocessed(volume.array, preset)):
        doubt = modality_doubt(volume, modality)
        if doubt is not None:
            tell(f"warning: {entry.path}: {doubt}; check that it belongs in this study")
    if preset is None and volume.array.shape != staging.grid.shape:
        raise StudyError(f"{entry.path} has shape {volume.array.shape} but "
                         f"{staging.grid_source} has {staging.grid.shape}; pass --preset to "
                         "bring all volumes to one grid.")
    try:
        units = to_unit(volume, modality, preset, prepared=prepared)
    except PreprocessError as err:
        raise StudyError(f"{entry.path} cannot go through preset {preset.name!r} ("
                         f"{str(err).rstrip('.')}); remove it from its folder.") from None
    part = entry.part_draw % len(units)
    if constant_value(units[part]) is not None:
        how = f"preset {preset.name!r}" if preset else f"the {modality} value scale"
        tell(f"skipped {entry.path}: {how} makes it a constant volume")
        return None
    origin = str(entry.path.resolve())
    if len(units) > 1:
        origin += f" [part {part + 1} of {len(units)}]"
    target = staging_dir / f"{secrets.token_hex(8)}{CASE_SUFFIX}"
    values = case_values(units[part], modality, preset, value_key)
    target.write_bytes(encode_case(values, staging.grid, modality))
    return _StagedCase(target, entry, origin)


def _read(scan: Scan) -> Volume:
    """The scan read, with its failure as a StudyError."""
    try:
        return scan.read()
    except VolumeError as err:
        raise StudyError(_sentence(err, "remove or replace that file and run create again")) \
            from None


def _place_cases(build: Path, staged: list[_StagedCase]) -> tuple[list[str], list[str]]:
    """Copy staged cases to cases/<random id>.nii until no visible order separates them.

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
        if not order_leaks(build, listed, sources, CASE_SUFFIX):
            return listed, ids
        for case_id in ids:
            (cases_dir / f"{case_id}{CASE_SUFFIX}").unlink()
    raise StudyError(f"Could not place the cases in an order that hides their source after "
                     f"{MAX_PLACEMENTS} tries; create the study again.")


def _place_practice(build: Path, staged: list[_StagedCase]) -> list[tuple[str, _StagedCase]]:
    """Copy staged practice cases to practice/P01.nii ... in a random order of sources.

    Their truth is shown to readers anyway, so no order of theirs needs hiding.
    """
    if not staged:
        return []
    practice_dir = build / PRACTICE_DIR
    practice_dir.mkdir()
    shown = secrets.SystemRandom().sample(staged, len(staged))
    placed = [(PRACTICE_ID_FORMAT.format(i), case) for i, case in enumerate(shown, start=1)]
    for case_id, case in placed:
        shutil.copyfile(case.staged, practice_dir / f"{case_id}{CASE_SUFFIX}")
    return placed


def _unique_ids(count: int) -> list[str]:
    """`count` distinct random hex ids."""
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(secrets.token_hex(CASE_ID_BYTES))
    return list(ids)
