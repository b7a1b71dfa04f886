"""Opening a run folder for training: what it records about its data, and resume checks.

run.json's `data` names the PREP_DIR a run trains on and its content hash
(`prepared.content_hash`): a resume must bring the same content (from any path: a moved or copied
PREP_DIR is the same data), or say with `new_data` that other data is meant; run.json then keeps
the earlier records, each with the steps run.json had counted then, in `data_history`.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core import checkpoints
from diffusion_core.prepared import content_hash, load_manifest
from diffusion_core.presets import get_preset
from diffusion_core.training.trainer import RunSetupError

DATA_HISTORY = "data_history"


def check_data(prep_dir: str | os.PathLike, preset_name: str) -> dict:
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
    return {"prep_dir": str(Path(prep_dir).resolve()), "pipeline_hash": manifest.pipeline_hash,
            "arrays": len(manifest.array_sources()), "content_hash": content_hash(prep_dir)}


def open_run_dir(run_dir: Path, kind: str, info: dict, *, resume: bool,
                 new_data: bool = False) -> dict | None:
    """Create RUN_DIR, or check that a resumed one was made by the same kind, preset and data.

    Returns the resumed run's run.json (None for a new run). `new_data` lets a resume continue on
    other data than it was trained on; `info` (what the trainer writes to run.json) then carries
    the earlier data records in `data_history`, and always carries the ones it already had.
    """
    run_json = run_dir / checkpoints.RUN_NAME
    if new_data and not resume:
        raise RunSetupError("--new-data goes with --resume: it continues a run on other data "
                            "than it was trained on")
    if not resume:
        if run_json.exists() or checkpoints.checkpoint_folder(run_dir, checkpoints.LATEST):
            raise RunSetupError(f"{run_dir} already holds a run; pass --resume to continue it "
                                f"or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not run_json.is_file():
        raise RunSetupError(f"{run_dir} holds no run to resume ({checkpoints.RUN_NAME} is "
                            f"missing); start without --resume")
    previous = checkpoints.read_json(run_json, "run")
    for key in ("kind", "preset"):
        wanted = kind if key == "kind" else info.get(key)
        if previous.get(key) != wanted:
            raise RunSetupError(f"{run_dir} is a {previous.get(key)!r} run, not {wanted!r}; "
                                f"resume it with the settings it was started with")
    old_data = previous.get("data") if isinstance(previous.get("data"), dict) else {}
    if old_data.get("pipeline_hash") != info["data"]["pipeline_hash"]:
        raise RunSetupError(f"{run_dir} was trained on data of another pipeline; resume it "
                            f"with the PREP_DIR it was started with")
    for key in info:
        if key not in ("data", DATA_HISTORY) and key in previous and previous[key] != info[key]:
            raise RunSetupError(f"{run_dir} was started with other {key} settings; resume it "
                                f"with the settings it was started with")
    history = list(previous.get(DATA_HISTORY) or [])
    if old_data.get("content_hash") != info["data"]["content_hash"]:
        if not new_data:
            raise RunSetupError(_other_data(run_dir, old_data, info["data"]["prep_dir"]))
        history.append({**old_data, "steps_done": previous.get("steps_done")})
    if history:
        info[DATA_HISTORY] = history
    return previous


def _other_data(run_dir: Path, old_data: dict, prep_dir: str) -> str:
    """Why a resume on `prep_dir` is refused, and what to do (one sentence)."""
    if "content_hash" not in old_data:
        return (f"{run_dir} was trained before mdiff recorded its data's content, so whether "
                f"{prep_dir} holds the same data cannot be told; add --new-data to continue on "
                f"it (run.json keeps the old data record)")
    return (f"{run_dir} was trained on other data than {prep_dir} (it was started on "
            f"{old_data.get('prep_dir')}, whose content differs); resume it with the data it was "
            f"trained on, or add --new-data to continue on this PREP_DIR")
