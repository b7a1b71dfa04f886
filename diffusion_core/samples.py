"""A samples folder (DESIGN.md, "A samples folder"): sampled NIfTI volumes plus samples.json.

`samples.json` is written first, with the whole plan (model, its run hashes, sampler, steps, the
seed of every file), then each volume is written atomically under its planned name. A folder that
was interrupted is resumed by running the same command again: files already there are kept and
their seeds are not sampled twice; a folder planned with other settings is refused. Provenance
lives in this sidecar, never in the NIfTI headers. Reading it needs no torch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from diffusion_core import run_files

SAMPLES_NAME = "samples.json"
SAMPLES_FORMAT = "mdiff-samples"
SAMPLES_VERSION = 1


class SamplesError(Exception):
    """A samples folder that cannot be written or read as asked; one sentence says why."""


@dataclass
class SamplesPlan:
    """What samples.json holds."""

    model: str
    preset: str
    vqgan: dict
    ddpm: dict
    sampler: str
    steps: int
    eta: float
    files: list[dict] = field(default_factory=list)  # {"file": name, "seed": int}
    complete: bool = False

    def settings(self) -> dict:
        """Everything but the completion flag: two plans with equal settings are one folder."""
        data = asdict(self)
        data.pop("complete")
        return data


def case_name(index: int) -> str:
    """The file name of the index-th (from 1) sampled volume."""
    return f"case_{index:04d}.nii.gz"


def read_samples(folder: str | os.PathLike) -> SamplesPlan:
    """The plan of a samples folder; SamplesError when it has none or it is damaged."""
    path = Path(folder) / SAMPLES_NAME
    try:
        data = run_files.read_json(path, "samples folder")
    except run_files.CheckpointError as err:
        raise SamplesError(str(err)) from None
    if data.get("format") != SAMPLES_FORMAT or data.get("version") != SAMPLES_VERSION:
        raise SamplesError(f"{path} is not an mdiff samples.json (version {SAMPLES_VERSION})")
    try:
        plan = SamplesPlan(**{k: v for k, v in data.items() if k not in ("format", "version")})
        for item in plan.files:
            str(item["file"]), int(item["seed"])
    except (TypeError, KeyError, ValueError) as err:
        raise SamplesError(f"{path} is damaged ({err})") from None
    return plan


def write_samples(folder: Path, plan: SamplesPlan) -> None:
    """Write samples.json atomically."""
    run_files.write_json(folder / SAMPLES_NAME, {"format": SAMPLES_FORMAT,
                                                 "version": SAMPLES_VERSION, **asdict(plan)})


def open_samples_folder(folder: Path, plan: SamplesPlan) -> list[dict]:
    """Create or resume a samples folder for `plan`; returns the files still to sample."""
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / SAMPLES_NAME).exists():
        previous = read_samples(folder)
        if previous.settings() != plan.settings():
            raise SamplesError(f"{folder} holds samples made with other settings (model, "
                               f"sampler, steps, seeds or count); choose another --out")
    else:
        stray = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
        if stray:
            raise SamplesError(f"{folder} is not empty and is not a samples folder; choose an "
                               f"empty or new --out")
        write_samples(folder, plan)
    return [item for item in plan.files if not (folder / item["file"]).is_file()]
