"""Build a blinded study from folders of synthetic and real volumes: the transaction.

`create_study(out, **options)` takes the options of a `StudyRequest` (checked when it is made),
chooses the inputs (`studies.inputs`), stages each one as a case (`studies.staging`), places the
cases under random ids (`studies.placement`), writes study.json and the key, and commits.

The study is built in a hidden folder beside the target (`.NAME.partial-XXXXXXXX`) and renamed
into place at the end, so a failure leaves no partial study. The build folder is locked (`flock`)
while a create runs; a build folder of the same study that nobody holds is what a killed create
(SIGKILL, power cut) left behind, and the next create of that study removes it and says so.

Blinding, beyond the values (normalise.py: one road for every input) and headers (case_file.py):
inputs are staged in a random order under random names (staging.py); ids and the orders a reader
could see are random and audited (placement.py). `--seed` makes the choice of inputs and the image
values reproducible; ids and orders always come from `secrets`, so the seed says nothing about
them.

A practice block (`--practice K`, or `--practice-real DIR` / `--practice-synthetic DIR`) adds cases
that readers rate first and whose truth they are shown after answering. They take the same road
(the same grid, quantisation and dither key), go to `practice/P01.nii ...` in a random order of
sources, are listed with their truth in study.json and with their origin in the key. `--practice K`
takes them from the study's own folders, before the study cases are drawn, so they are never study
cases; real and synthetic as evenly as the folders allow (an odd one goes to a seeded random
source). A study that takes every input of a folder then takes every input the practice block
left, and keeps at least one of each folder.

A paired study (`design="2afc"`, `pairs=N`) draws its real and synthetic inputs by
`studies.pairing`, stages them by the same road, pairs them (at random, or matched), places the
cases that made a pair as any study's cases, and lays out the trials (`studies.placement`); its
practice block is K practice trials. The key gets the `trials` column.

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from diffusion_core.outputs import OutputPathError, check_output
from diffusion_core.presets import Preset
from diffusion_core.samples import SamplesError
from studies.inputs import (
    Draw,
    check_room,
    choose_inputs,
    choose_practice,
    folder_pool,
    pools_of,
    preset_of_prepared,
)
from studies.key import KeyEntry, default_key_path, is_inside, samples_path, write_key
from studies.normalise import CT_VIEWER, MR_VIEWER
from studies.pairing import pair_cases, pair_draws, practice_pair_draws
from studies.placement import place_cases, place_paired, place_practice, place_practice_trials
from studies.questions import study_questions
from studies.request import StudyRequest, check_targets, study_modality
from studies.staging import CaseRoad, StagedCase, Staging, stage_cases
from studies.study import (
    MANIFEST_NAME,
    RATINGS_DIR,
    STUDY_VERSION,
    PracticeEntry,
    Study,
    StudyError,
    StudyManifest,
    dataset_name,
    utc_now,
)
from studies.trials import PracticeTrial, Trial

STAGING_DIR = ".staging"
PARTIAL_MARK = ".partial-"
VALUE_KEY_WORDS = 4  # the dither's study key (normalise.content_rng): 128 bits from the seed


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
    samples: Path | None = None  # with --model: the sampled volumes, kept beside the key
    design: str = "single"
    n_trials: int = 0  # a paired study's trials


@dataclass(frozen=True)
class _Plan:
    """What a create will stage: the draws, the preset they settled on and the cases' road."""

    draws: list[Draw]
    practice: list[Draw]
    preset: Preset | None
    road: CaseRoad
    pair_rng: np.random.Generator  # a paired study's pairing, from the seed


@dataclass(frozen=True)
class _Built:
    """What the build folder holds once staged and placed, before the commit."""

    manifest: StudyManifest
    staging: Staging
    case_ids: list[str]  # the id of each placed case, in the order of `placed`
    practice: list[tuple[str, StagedCase]]
    placed: list[StagedCase]  # the staged cases that became study cases


def create_study(out: str | Path, **options: Any) -> CreatedStudy:
    """Build a blinded study in `out` and write its key (see the module docstring).

    `options` are `StudyRequest`'s fields. Its `note` is told, as it happens, each input skipped
    and each other thing worth knowing; the same notes come back in `CreatedStudy.notes`.
    """
    request = StudyRequest(Path(out), **options)
    notes: list[str] = []

    def tell(message: str) -> None:
        notes.append(message)
        if request.note is not None:
            request.note(message)

    plan = _plan(request, tell)
    out = request.out
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in clear_stale_builds(out):
        tell(f"removed {stale}, the build folder of a create of this study that was stopped "
             "before it finished")
    built = _build_and_commit(request, plan, tell)
    cases = built.placed
    n_real = sum(s.entry.source == "real" for s in cases)
    return CreatedStudy(out, request.key_path, built.manifest.study_id, built.manifest.dataset,
                        len(cases) - n_real, n_real, tuple(notes),
                        len(built.manifest.practice), design=request.design,
                        n_trials=len(built.manifest.trials))


def create_study_from_model(out: str | Path, *, model: str, n: int, sampler: str = "dpm",
                            steps: int | None = None, device: str = "auto",
                            seed: int | None = None, **options: Any) -> CreatedStudy:
    """Sample `n` volumes from a registered model (or DDPM run), then build the study with them.

    The samples are kept in a samples folder beside the key (`studies.key.samples_path`, refused
    if it exists), so every synthetic case's origin in the key is a file that stays and its
    sampling (samples.json) can be rerun. They take the same road into cases as any other input;
    each case's model and seed reach the key. A create that fails removes the samples folder.
    With `practice=K` (and no practice folders), K more are sampled, so the practice block can
    take its synthetic cases from them; those it leaves stay in the folder, unused.
    """
    from diffusion_core.registry import RegistryError
    from diffusion_core.run_folder import CheckpointError
    from diffusion_core.sampling import sample_folder

    out = Path(out)
    options["preset"] = _model_preset(model, options.get("preset"))
    key_path = Path(options["key"]) if options.get("key") else default_key_path(out)
    inputs = {"--model": model if Path(model).exists() else None,
              **{f"--{name.replace('_', '-')}": options.get(name)
                 for name in ("real", "practice_real", "practice_synthetic")}}
    check_targets(out, key_path, inputs)
    _check_real_room(options, n)
    samples = _check_samples_target(samples_path(key_path), out, inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        samples.mkdir()  # claims the name: a create beside this one cannot take it too
    except FileExistsError:
        raise StudyError(_samples_exist(samples)) from None
    except OSError as err:
        raise StudyError(f"Cannot make the samples folder {samples} ({err.strerror}); give a "
                         "--key path in a folder you may write.") from None
    try:
        try:
            extra = 0 if options.get("practice_synthetic") else options.get("practice") or 0
            sample_folder(model, n + extra, samples, sampler=sampler, steps=steps, device=device,
                          seed=0 if seed is None else seed, progress=options.get("progress"))
        except (RegistryError, CheckpointError, SamplesError, ValueError) as err:
            raise StudyError(str(err)) from None
        made = create_study(out, synthetic=samples, n=n, seed=seed, **options)
    except BaseException:
        shutil.rmtree(samples, ignore_errors=True)
        raise
    message = (f"kept the sampled volumes in {samples}, where the key's origins point; keep "
               "that folder with the key, away from the readers")
    if options.get("note") is not None:
        options["note"](message)
    return replace(made, samples=samples, notes=(*made.notes, message))


def _check_real_room(options: dict[str, Any], n: int) -> None:
    """Refuse, before sampling (minutes to hours), a --real folder too small for the request;
    create would refuse it only after the samples were made."""
    real = options.get("real")
    if real is None:
        return
    pool = folder_pool(Path(real), "real", np.random.default_rng(0), lambda _message: None)
    pairs = options.get("pairs") or n
    paired = options.get("design") == "2afc" and not options.get("reuse")
    check_room(Path(real), len(pool.candidates), "real", "--n-real", options.get("n_real"),
               pairs if paired else None)


def _model_preset(model: str, preset: str | None) -> str:
    """The preset of a registered model (or DDPM run); StudyError if `preset` names another."""
    from diffusion_core.registry import Registry, RegistryError

    try:
        entry = Registry().resolve(model)
    except RegistryError as err:
        raise StudyError(str(err)) from None
    if preset not in (None, entry.preset):
        raise StudyError(f"model {model!r} is of preset {entry.preset!r}, not {preset!r}; leave "
                         "--preset out or pick another model.")
    return entry.preset


def _check_samples_target(samples: Path, out: Path, inputs: dict[str, str | Path | None]) -> Path:
    """Refuse a samples folder that exists, is or holds the study, or lies in the study or an
    input folder; return it."""
    if samples.exists() or samples.is_symlink():
        raise StudyError(_samples_exist(samples))
    if is_inside(samples, out) or is_inside(out, samples):
        raise StudyError(f"The samples folder {samples} kept beside the key would hold or lie in "
                         f"the study {out}; give a --key path apart from the study folder.")
    try:
        check_output(samples, inputs=inputs.items(), what="the samples folder", kind="folder")
    except OutputPathError as err:
        raise StudyError(f"{str(err).rstrip('.')} (it is kept beside the key: give another "
                         "--key path).") from None
    return samples


def _samples_exist(samples: Path) -> str:
    """The sentence for a samples folder that is already there."""
    return (f"The samples folder {samples}, where the sampled cases are kept beside the key, "
            "already exists (another study's samples, or those of a create that was stopped); "
            "move it away or give another --key path.")


def _plan(request: StudyRequest, tell: Callable[[str], None]) -> _Plan:
    """Choose the inputs, settle the preset and modality, and key the dither from the seed."""
    # Independent streams for choosing inputs and for the dither, both from the one seed.
    choice_seed, value_seed, pair_seed = np.random.SeedSequence(request.seed).spawn(3)
    value_key = tuple(int(word) for word in value_seed.generate_state(VALUE_KEY_WORDS))
    choice_rng = np.random.default_rng(choice_seed)
    if request.design == "2afc":
        draws = pair_draws(request, choice_rng, tell)
        practice = practice_pair_draws(request, draws, choice_rng, tell)
    else:
        draws = choose_inputs(request, choice_rng, tell)
        practice = choose_practice(request, draws, choice_rng, tell)
    preset = preset_of_prepared(pools_of(draws + practice), request.loaded_preset)
    modality = study_modality(request.modality, preset)
    return _Plan(draws, practice, preset, CaseRoad(preset, modality, value_key),
                 np.random.default_rng(pair_seed))


def _build_and_commit(request: StudyRequest, plan: _Plan, tell: Callable[[str], None]) -> _Built:
    """Build the study in a locked hidden folder, rename it into place, then write the key.

    Any failure removes the build folder and the key's temporary file; a key that cannot be
    written removes the study too.
    """
    out, key_path = request.out, request.key_path
    build = out.parent / f".{out.name}{PARTIAL_MARK}{secrets.token_hex(4)}"
    key_tmp = key_path.with_name(key_path.name + ".tmp")
    lock = None
    try:
        build.mkdir()
        lock = _lock_build(build)
        built = _build(build, request, plan, tell)
        write_key(key_tmp, _key_entries(built), paired=request.design == "2afc")
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
    return built


def _build(build: Path, request: StudyRequest, plan: _Plan,
           tell: Callable[[str], None]) -> _Built:
    """Stage and place the cases in `build`, and write its study.json and ratings folder."""
    staging = stage_cases(build / STAGING_DIR, plan.draws, plan.practice, plan.road,
                          progress=request.progress, tell=tell)
    trials: list[Trial] = []
    practice_trials: list[PracticeTrial] = []
    if request.design == "2afc":
        placed, listed, case_ids, trials = _place_paired(build, request, plan, staging, tell)
        practice, practice_trials = place_practice_trials(build, staging.practice)
    else:
        placed = staging.cases
        listed, case_ids = place_cases(build, placed)
        practice = place_practice(build, staging.practice)
    entries = practice_trials or [PracticeEntry(case_id, case.entry.source)
                                  for case_id, case in practice]
    manifest = _manifest(request, plan.preset, staging, listed, entries, trials)
    (build / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n",
                                       encoding="utf-8")
    (build / RATINGS_DIR).mkdir()
    shutil.rmtree(build / STAGING_DIR)
    Study(build, manifest).log(f"created study {manifest.study_id} with {len(listed)} cases")
    return _Built(manifest, staging, case_ids, practice, placed)


def _place_paired(build: Path, request: StudyRequest, plan: _Plan, staging: Staging,
                  tell: Callable[[str], None]
                  ) -> tuple[list[StagedCase], list[str], list[str], list[Trial]]:
    """Pair the staged cases, place those that made a pair, lay out the trials: the placed
    cases, study.json's case list, each placed case's id, and the trials."""
    pairs = pair_cases(staging.cases, request.pairs, request.reuse, request.match,
                       plan.pair_rng)
    used_real = sorted({r for r, _ in pairs.members})
    used_synthetic = sorted({s for _, s in pairs.members})
    placed = [pairs.real[r] for r in used_real] + [pairs.synthetic[s] for s in used_synthetic]
    unused = len(staging.cases) - len(placed)
    if unused:
        tell(f"{unused} of the {len(staging.cases)} volumes read are in no trial and were left "
             "out of the study")
    if pairs.distances is not None:
        tell(f"matched pairs: median distance {float(np.median(pairs.distances)):.2f} "
             "(foreground fraction and intensity histogram, in standard deviations)")
    at_real = {r: i for i, r in enumerate(used_real)}
    at_synthetic = {s: len(used_real) + i for i, s in enumerate(used_synthetic)}
    listed, case_ids, trials = place_paired(
        build, placed, [(at_real[r], at_synthetic[s]) for r, s in pairs.members])
    return placed, listed, case_ids, trials


def _manifest(request: StudyRequest, preset: Preset | None, staging: Staging, listed: list[str],
              practice: list[PracticeEntry] | list[PracticeTrial],
              trials: list[Trial]) -> StudyManifest:
    """The study.json of a new study."""
    study_id = secrets.token_hex(8)
    dataset = dataset_name(request.dataset, preset.name if preset else None, request.title,
                           request.out)
    return StudyManifest(
        version=STUDY_VERSION, study_id=study_id, title=request.title or f"Study {study_id}",
        dataset=dataset, modality=staging.modality,
        questions=tuple(q.key for q in study_questions(request.turing, request.design)),
        turing=request.turing,
        cases=tuple(listed), shape=tuple(staging.grid.shape),
        spacing=tuple(float(s) for s in staging.grid.spacing),
        viewer=dict(CT_VIEWER if staging.modality == "CT" else MR_VIEWER),
        created_at=utc_now(), answers_editable=request.answers_editable,
        practice=tuple(practice), design=request.design, trials=tuple(trials))


def _key_entries(built: _Built) -> list[KeyEntry]:
    """The key's rows: each study case, then each practice case, with its source and origin
    (and, in a paired study, its trials and sides)."""
    shown: dict[str, list[str]] = {}
    trials = list(built.manifest.trials) + [p.trial for p in built.manifest.practice
                                            if isinstance(p, PracticeTrial)]
    for trial in trials:
        shown.setdefault(trial.left, []).append(f"{trial.trial_id}:left")
        shown.setdefault(trial.right, []).append(f"{trial.trial_id}:right")
    placed = list(zip(built.case_ids, built.placed, strict=True)) + built.practice
    return [KeyEntry(case_id, s.entry.source, s.origin, s.entry.model, s.entry.seed,
                     " ".join(sorted(shown.get(case_id, []))))
            for case_id, s in placed]


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
