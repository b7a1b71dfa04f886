"""Opening a run folder for training: what it records about its data, and resume checks."""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core import checkpoints
from diffusion_core.prepared import load_manifest
from diffusion_core.presets import get_preset
from diffusion_core.training.trainer import RunSetupError


def check_data(prep_dir: str | os.PathLike, preset_name: str) -> dict:
    """The PREP_DIR's record for run.json; RunSetupError if another preset or pipeline made it."""
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
            "arrays": len(manifest.array_sources())}


def open_run_dir(run_dir: Path, kind: str, info: dict, *, resume: bool) -> None:
    """Create RUN_DIR, or check that a resumed one was made by the same kind, preset and data."""
    run_json = run_dir / checkpoints.RUN_NAME
    if not resume:
        if run_json.exists() or checkpoints.checkpoint_folder(run_dir, checkpoints.LATEST):
            raise RunSetupError(f"{run_dir} already holds a run; pass --resume to continue it "
                                f"or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        return
    if not run_json.is_file():
        raise RunSetupError(f"{run_dir} holds no run to resume ({checkpoints.RUN_NAME} is "
                            f"missing); start without --resume")
    previous = checkpoints.read_json(run_json, "run")
    for key in ("kind", "preset"):
        wanted = kind if key == "kind" else info.get(key)
        if previous.get(key) != wanted:
            raise RunSetupError(f"{run_dir} is a {previous.get(key)!r} run, not {wanted!r}; "
                                f"resume it with the settings it was started with")
    old_hash = previous.get("data", {}).get("pipeline_hash")
    if old_hash != info["data"]["pipeline_hash"]:
        raise RunSetupError(f"{run_dir} was trained on data of another pipeline; resume it "
                            f"with the PREP_DIR it was started with")
    for key in info:
        if key not in ("data",) and key in previous and previous[key] != info[key]:
            raise RunSetupError(f"{run_dir} was started with other {key} settings; resume it "
                                f"with the settings it was started with")
