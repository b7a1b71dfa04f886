"""Opening a run folder for training: what it records about its data, and resume checks.

run.json's `data` names the PREP_DIR a run trains on and its content hash
(`prepared.content_hash`): a resume must bring the same content (from any path: a moved or copied
PREP_DIR is the same data), or say with `new_data` that other data is meant; run.json then keeps
the earlier records, each with the steps run.json had counted then, in `data_history`. The folder's
layout and run.json itself are `run_folder`'s.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path

from diffusion_core import run_folder
from diffusion_core.prepared import content_hash, load_manifest
from diffusion_core.presets import get_preset
from diffusion_core.run_folder import DataRecord, EarlierData, RunInfo
from diffusion_core.training.trainer import RunSetupError


def check_data(prep_dir: str | os.PathLike, preset_name: str) -> DataRecord:
    """The PREP_DIR's record for run.json; RunSetupError if another preset or pipeline made it.

    Reads (and checks) every array once, for its content hash; PreparedError names a bad one.
    """
    preset = get_preset(preset_name)
    manifest = load_manifest(prep_dir)
    if manifest.preset != preset.name:
        raise RunSetupError(f"{prep_dir} was prepared with preset {manifest.preset!r}, not "
                            f"{preset.name!r}; train with --preset {manifest.preset} or prepare "
                            f"the data again with --preset {preset.name}")
    if manifest.pipeline_hash != preset.pipeline_hash:
        raise RunSetupError(f"{prep_dir} was made by another version of the {preset.name} "
                            f"pipeline; run mdiff-prepare again")
    return DataRecord(prep_dir=str(Path(prep_dir).resolve()), pipeline_hash=manifest.pipeline_hash,
                      arrays=len(manifest.array_sources()), content_hash=content_hash(prep_dir))


def open_run_dir(run_dir: Path, info: RunInfo, *, resume: bool,
                 new_data: bool = False) -> tuple[RunInfo | None, RunInfo]:
    """Create RUN_DIR, or check that a resumed one was made by the same kind, preset and data.

    Returns the resumed run's RunInfo (None for a new run) and `info` (what the trainer writes
    to run.json) with the data history it carries on: the resumed run's, plus its data record
    when `new_data` lets the resume continue on other data than it was trained on.
    """
    if new_data and not resume:
        raise RunSetupError("--new-data goes with --resume: it continues a run on other data "
                            "than it was trained on")
    if not resume:
        if run_folder.holds_run(run_dir):
            raise RunSetupError(f"{run_dir} already holds a run; pass --resume to continue it "
                                f"or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        return None, info
    if not (run_dir / run_folder.RUN_NAME).is_file():
        raise RunSetupError(f"{run_dir} holds no run to resume ({run_folder.RUN_NAME} is "
                            f"missing); start without --resume")
    previous = run_folder.read_run_info(run_dir)
    for key in ("kind", "preset"):
        if getattr(previous, key) != getattr(info, key):
            raise RunSetupError(f"{run_dir} is a {getattr(previous, key)!r} run, not "
                                f"{getattr(info, key)!r}; resume it with the settings it was "
                                f"started with")
    if previous.data.pipeline_hash != info.data.pipeline_hash:
        raise RunSetupError(f"{run_dir} was trained on data of another pipeline; resume it "
                            f"with the PREP_DIR it was started with")
    _check_same_settings(run_dir, previous, info)
    history = previous.data_history
    if previous.data.content_hash != info.data.content_hash:
        if not new_data:
            raise RunSetupError(_other_data(run_dir, previous.data, info.data.prep_dir))
        history = (*history, EarlierData(**asdict(previous.data), steps_done=previous.steps_done))
    return previous, replace(info, data_history=history)


def _check_same_settings(run_dir: Path, previous: RunInfo, info: RunInfo) -> None:
    """RunSetupError unless a resume repeats the settings its run was started with (a DDPM's
    latent range is the run's own, computed when it started, so it is not compared)."""
    before, now = previous.settings(), info.settings()
    for key, value in now.items():
        if key != "latent_range" and before.get(key) != value:
            raise RunSetupError(f"{run_dir} was started with other {key} settings; resume it "
                                f"with the settings it was started with")


def _other_data(run_dir: Path, old_data: DataRecord, prep_dir: str) -> str:
    """Why a resume on `prep_dir` is refused, and what to do (one sentence)."""
    if old_data.content_hash is None:
        return (f"{run_dir} was trained before mdiff recorded its data's content, so whether "
                f"{prep_dir} holds the same data cannot be told; add --new-data to continue on "
                f"it (run.json keeps the old data record)")
    return (f"{run_dir} was trained on other data than {prep_dir} (it was started on "
            f"{old_data.prep_dir}, whose content differs); resume it with the data it was "
            f"trained on, or add --new-data to continue on this PREP_DIR")
