"""A run folder (written by `mdiff-train`): its layout, its run.json (`RunInfo`), and checking it.

```
RUN/
  run.json            RunInfo: kind, preset, settings, data records, steps, the weights' sha256
  model.safetensors   weights for sampling (the EMA weights for a DDPM)
  checkpoint_latest/  everything --resume needs (checkpoint.json lists its files' sha256)
  checkpoint_best/    the same at the lowest validation loss
  log.csv             one row per logged step
  latents/            a DDPM's cache of encoded training data
```

This module owns those names and reads and writes run.json; `checkpoints` adds the tensors,
`models` builds networks from a folder, the trainer writes one. It imports no torch, so the model
registry and the study side can check a run folder cheaply.

run.json records the sha256 of `model.safetensors` (`weights_hash`), written after the weights,
and every load checks it (`verified_weights`). It carries a format version: files written before
mdiff versioned it (no `format` key) are read by `_from_legacy`, which knows every form they took.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from diffusion_core.atomic_files import JSONFileError, file_hash, read_json, write_json
from diffusion_core.nn.config import UNetConfig, VQGANConfig, WGANConfig
from diffusion_core.records import dataclass_fields
from diffusion_core.schedulers.config import SchedulerConfig
from diffusion_core.training.config import TrainerConfig, VQGANLossConfig, WGANLossConfig

RUN_NAME = "run.json"
WEIGHTS_NAME = "model.safetensors"
LATEST, BEST = "checkpoint_latest", "checkpoint_best"
CHECKPOINT_MANIFEST = "checkpoint.json"  # inside a checkpoint folder: its files' sha256
STATE_NAME = "state.pt"  # inside a checkpoint folder: optimisers, RNG, step
LOG_NAME = "log.csv"
LATENTS_DIR = "latents"

RUN_FORMAT = "mdiff-run"
RUN_VERSION = 1
KINDS = ("vqgan", "ddpm", "wgan")
KIND_NAMES = {"vqgan": "VQ-GAN", "ddpm": "DDPM", "wgan": "GAN baseline (WGAN-GP)"}
COMMON_KEYS = ("format", "version", "kind", "preset", "data", "data_history", "trainer",
               "steps_done", "weights_step", "weights_hash")
KIND_KEYS = {"vqgan": ("vqgan", "loss", "init", "frozen"),
             "ddpm": ("vqgan_run", "unet", "scheduler", "latent_scaling", "latent_shape",
                      "latent_range", "ema"),
             "wgan": ("wgan", "gan_loss")}


class CheckpointError(Exception):
    """A run folder or checkpoint that cannot be used; the message says why in one sentence."""


@dataclass(frozen=True)
class RunRef:
    """Another run a run depends on: its folder and its model.safetensors' sha256."""

    path: str
    hash: str

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path:
            raise ValueError(f"it names no run folder ({self.path!r})")
        if not isinstance(self.hash, str) or not self.hash:
            raise ValueError(f"it records no weights hash ({self.hash!r})")

    @classmethod
    def from_dict(cls, data: dict) -> RunRef:
        """Rebuild from `asdict`, strictly."""
        return cls(**dataclass_fields(cls, data, "run reference"))


@dataclass(frozen=True)
class DataRecord:
    """The PREP_DIR a run trains on: where, which pipeline, how many arrays, their content hash.

    `content_hash` is None for a run trained before mdiff hashed a PREP_DIR's content.
    """

    prep_dir: str
    pipeline_hash: str
    arrays: int
    content_hash: str | None

    @classmethod
    def from_dict(cls, data: dict) -> DataRecord:
        """Rebuild from `asdict`, strictly."""
        return cls(**dataclass_fields(cls, data, "data"))


@dataclass(frozen=True)
class EarlierData(DataRecord):
    """Data a resumed run trained on before `--new-data`, with the steps run.json had then."""

    steps_done: int | None


@dataclass(frozen=True)
class EMARecord:
    """A DDPM's weight EMA: decay, every how many steps, from which step."""

    decay: float
    every: int
    start: int

    @classmethod
    def from_dict(cls, data: dict) -> EMARecord:
        """Rebuild from `asdict`, strictly."""
        return cls(**dataclass_fields(cls, data, "EMA"))


@dataclass(frozen=True)
class RunInfo:
    """What run.json holds. The fields after `data_history` belong to one kind each.

    `weights_step`: the step model.safetensors comes from (the best one, or the last);
    `weights_hash`: its sha256, None only in runs written before mdiff recorded it.
    """

    kind: str
    preset: str
    data: DataRecord
    trainer: TrainerConfig
    steps_done: int = 0
    weights_step: int | None = None
    weights_hash: str | None = None
    data_history: tuple[EarlierData, ...] = ()
    # a VQ-GAN run
    vqgan: VQGANConfig | None = None
    loss: VQGANLossConfig | None = None
    init: RunRef | None = None  # the run whose weights it started from
    frozen: tuple[str, ...] = ()  # parts not trained (the encoder and codebook of a fine-tune)
    # a DDPM run
    vqgan_run: RunRef | None = None  # the VQ-GAN its latents come from
    unet: UNetConfig | None = None
    scheduler: SchedulerConfig | None = None
    latent_scaling: str | None = None
    latent_shape: tuple[int, ...] | None = None
    latent_range: tuple[float, float] | None = None
    ema: EMARecord | None = None
    # a GAN baseline run
    wgan: WGANConfig | None = None
    gan_loss: WGANLossConfig | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.preset, str):
            raise ValueError(f"preset {self.preset!r} is not a name")
        for name in ("steps_done", "weights_step"):
            value = getattr(self, name)
            if not (value is None and name == "weights_step") and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{name} {value!r} is not a number of steps")
        object.__setattr__(self, "data_history", tuple(self.data_history))
        object.__setattr__(self, "frozen", tuple(str(part) for part in self.frozen))
        if self.latent_shape is not None:
            object.__setattr__(self, "latent_shape", tuple(int(s) for s in self.latent_shape))
        if self.latent_range is not None:
            low, high = (float(v) for v in self.latent_range)
            object.__setattr__(self, "latent_range", (low, high))

    def missing(self) -> list[str]:
        """This kind's fields that are still None (a run being set up has no latent range yet);
        a run.json is written and read only complete."""
        optional = ("init", "frozen")  # a VQ-GAN trained from scratch has neither
        return [name for name in KIND_KEYS[self.kind]
                if name not in optional and getattr(self, name) is None]

    def settings(self) -> dict:
        """What a run is started with and a resume must repeat: all but data, steps, weights."""
        data = self.to_dict()
        for key in ("data", "data_history", "steps_done", "weights_step", "weights_hash",
                    "trainer"):
            data.pop(key)
        return data

    def to_dict(self) -> dict:
        """run.json's JSON object (this kind's keys only)."""
        out = {"format": RUN_FORMAT, "version": RUN_VERSION, "kind": self.kind,
               "preset": self.preset, "data": asdict(self.data),
               "data_history": [asdict(entry) for entry in self.data_history],
               "trainer": self.trainer.to_dict(), "steps_done": self.steps_done,
               "weights_step": self.weights_step, "weights_hash": self.weights_hash}
        for key in KIND_KEYS[self.kind]:
            value = getattr(self, key)
            if hasattr(value, "to_dict"):
                value = value.to_dict()
            elif isinstance(value, RunRef | EMARecord):
                value = asdict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike = RUN_NAME) -> RunInfo:
        """Read run.json's object, of this version or an older one; CheckpointError (naming
        `source`) for unknown or missing keys or unusable values."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source} does not hold a JSON object")
        if "format" not in data:
            data = _from_legacy(data, source)
        elif data["format"] != RUN_FORMAT:
            raise CheckpointError(f"{source} is not a run.json written by mdiff-train")
        elif data.get("version") != RUN_VERSION:
            raise CheckpointError(f"{source} is run.json version {data.get('version')!r}, which "
                                  f"this mdiff cannot read (it reads version {RUN_VERSION} and "
                                  f"the unversioned files before it); update mdiff")
        kind = data.get("kind")
        if kind not in KINDS:
            raise CheckpointError(f"{source} is a run of kind {kind!r}, not one of "
                                  f"{', '.join(KINDS)}")
        expected = {*COMMON_KEYS, *KIND_KEYS[kind]}
        _refuse_keys(set(data) - expected, expected - set(data), source)
        try:
            info = cls(**_typed(data))
            if info.missing():
                raise ValueError(f"a {kind} run needs {', '.join(info.missing())}")
        except (TypeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{source} holds settings mdiff cannot use ({err}); it was "
                                  f"edited or written by another version: restore it") from None
        return info


def _refuse_keys(unknown: set[str], missing: set[str], source: str | os.PathLike) -> None:
    """CheckpointError naming run.json's unknown and missing keys, if there are any."""
    unknown, missing = sorted(unknown), sorted(missing)
    if unknown or missing:
        detail = "; ".join(part for part in (
            f"unknown keys {unknown}" if unknown else "",
            f"missing keys {missing}" if missing else "") if part)
        raise CheckpointError(f"{source} is not a run.json this mdiff can read ({detail}): it "
                              f"was edited or written by another version of mdiff")


def _typed(data: dict) -> dict:
    """RunInfo's constructor arguments from a checked run.json object; ValueError naming the key
    whose value is unusable."""
    out = {key: value for key, value in data.items() if key not in ("format", "version")}
    readers = {"data": DataRecord.from_dict, "data_history": _history,
               "trainer": TrainerConfig.from_dict, "vqgan": VQGANConfig.from_dict,
               "loss": VQGANLossConfig.from_dict, "init": RunRef.from_dict,
               "vqgan_run": RunRef.from_dict, "unet": UNetConfig.from_dict,
               "scheduler": SchedulerConfig.from_dict, "ema": EMARecord.from_dict,
               "wgan": WGANConfig.from_dict, "gan_loss": WGANLossConfig.from_dict}
    optional = ("init", "vqgan_run")  # None: no such run; a missing vqgan_run is said later
    for key, read in readers.items():
        if key in out and not (key in optional and out[key] is None):
            try:
                out[key] = read(out[key])
            except (TypeError, ValueError) as err:
                raise ValueError(f"{key}: {err}") from None
    return out


def _history(entries: object) -> tuple[EarlierData, ...]:
    """data_history's records."""
    if not isinstance(entries, list):
        raise ValueError("not a list")
    return tuple(EarlierData.from_dict(entry) for entry in entries)


# Unversioned run.json (mdiff before the format version): which keys every form had, and what
# a key missing from the earlier forms meant.
LEGACY_REQUIRED = {"vqgan": ("kind", "preset", "data", "trainer", "steps_done", "vqgan", "loss"),
                   "ddpm": ("kind", "preset", "data", "trainer", "steps_done", "vqgan", "unet",
                            "scheduler", "latent_shape", "latent_range", "ema")}
LEGACY_OPTIONAL = {"vqgan": ("weights_step", "weights_hash", "data_history", "init", "frozen"),
                   "ddpm": ("weights_step", "weights_hash", "data_history", "latent_scaling")}


def _from_legacy(data: dict, source: str | os.PathLike) -> dict:
    """An unversioned run.json as a version-1 object.

    Absent keys take what those runs did: `weights_step` (before `--weights best`) the last
    step, `weights_hash` and `content_hash` none to check, `latent_scaling` the codebook's range
    (the only one then), no data history, no init, nothing frozen. A DDPM's `vqgan` (its VQ-GAN
    run) becomes `vqgan_run`; the trainer's `warmup_steps`, which nothing ever set, is dropped
    when 0.
    """
    kind = data.get("kind")
    if kind not in LEGACY_REQUIRED:  # GAN runs were versioned from the start
        raise CheckpointError(f"{source} is a run of kind {kind!r}, not vqgan or ddpm")
    required, optional = LEGACY_REQUIRED[kind], LEGACY_OPTIONAL[kind]
    _refuse_keys(set(data) - {*required, *optional}, set(required) - set(data), source)
    out = {"format": RUN_FORMAT, "version": RUN_VERSION, **data,
           "weights_step": data.get("weights_step", data["steps_done"]),
           "weights_hash": data.get("weights_hash"),
           "data_history": data.get("data_history") or []}
    out["data"] = _legacy_data(data["data"])
    out["data_history"] = [_legacy_data(entry) for entry in out["data_history"]]
    trainer = dict(data["trainer"]) if isinstance(data["trainer"], dict) else data["trainer"]
    if isinstance(trainer, dict) and "warmup_steps" in trainer:
        if trainer.pop("warmup_steps") != 0:
            raise CheckpointError(f"{source} asks for a learning-rate warm-up, which mdiff never "
                                  f"had; it was edited: set warmup_steps to 0 or restore it")
    out["trainer"] = trainer
    if kind == "vqgan":
        out.setdefault("init", None)
        out.setdefault("frozen", [])
    else:
        out["vqgan_run"] = out.pop("vqgan")
        out.setdefault("latent_scaling", "codebook")
    return out


def _legacy_data(record: object) -> object:
    """A data record of an unversioned run.json, with its content hash None where it had none."""
    return {"content_hash": None, **record} if isinstance(record, dict) else record


def read_run_info(run_dir: str | os.PathLike, kind: str | None = None) -> RunInfo:
    """The RunInfo of a finished or running run (of `kind`, if given); CheckpointError otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run folder (it does not exist); train one "
                              f"with mdiff-train {kind or 'vqgan'}")
    path = run_dir / RUN_NAME
    try:
        data = read_json(path, f"{kind or 'training'} run")
    except JSONFileError as err:
        raise CheckpointError(str(err)) from None
    info = RunInfo.from_dict(data, path)
    if kind is not None and info.kind != kind:
        raise CheckpointError(_wrong_kind(run_dir, info.kind, kind))
    return info


def _wrong_kind(run_dir: Path, found: str, wanted: str) -> str:
    """Why a run of kind `found` is refused where a `wanted` run is needed (one sentence)."""
    if found == "wgan":
        return (f"{run_dir} is a GAN baseline (WGAN-GP) run, not a {wanted} run: a GAN makes "
                f"volumes straight from noise, with no VQ-GAN or latent DDPM (sample it with "
                f"mdiff-sample --model {run_dir}, or register it with mdiff-models add NAME "
                f"--wgan {run_dir})")
    if wanted == "wgan":
        return (f"{run_dir} is a {KIND_NAMES[found]} run, not a GAN baseline (WGAN-GP) run; "
                f"train one with mdiff-train wgan, or register a diffusion model with "
                f"mdiff-models add NAME --vqgan VQGAN_RUN --ddpm DDPM_RUN")
    return f"{run_dir} is a {found!r} run, not a {wanted} run"


def write_run_info(run_dir: str | os.PathLike, info: RunInfo) -> None:
    """Write RUN/run.json atomically; ValueError for a RunInfo that is not complete."""
    if info.missing():
        raise ValueError(f"a {info.kind} run.json needs {', '.join(info.missing())}")
    write_json(Path(run_dir) / RUN_NAME, info.to_dict())


def holds_run(run_dir: str | os.PathLike) -> bool:
    """Whether `run_dir` holds a run (its run.json or a checkpoint to resume)."""
    return (Path(run_dir) / RUN_NAME).exists() or checkpoint_folder(run_dir, LATEST) is not None


def checkpoint_folder(run_dir: str | os.PathLike, name: str) -> Path | None:
    """RUN/name, or the previous copy a crash during the swap left behind, or None."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / name, run_dir / f".{name}.old"):
        if (candidate / CHECKPOINT_MANIFEST).is_file():
            return candidate
    return None


def verified_weights(run_dir: str | os.PathLike, info: RunInfo) -> Path:
    """RUN/model.safetensors, checked against the sha256 run.json recorded when it was written.

    A run written before mdiff recorded the hash has none to check against.
    """
    weights = Path(run_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the run has not written its weights yet, "
                              f"or they were moved; restore the file or train the run again")
    if info.weights_hash is not None and file_hash(weights) != info.weights_hash:
        raise CheckpointError(f"{weights} does not match the sha256 its {RUN_NAME} recorded: it "
                              f"was changed or damaged after training wrote it; restore it from "
                              f"a backup or train the run again")
    return weights


def run_ref(run_dir: str | os.PathLike, kind: str) -> RunRef:
    """What another run (or a samples folder) records of a `kind` run: its folder as given and
    its weights' sha256, checked against run.json."""
    info = read_run_info(run_dir, kind)
    weights = verified_weights(run_dir, info)
    return RunRef(str(run_dir), info.weights_hash or file_hash(weights))


def verify_vqgan(recorded: RunRef, ddpm_dir: Path | None = None) -> Path:
    """The recorded VQ-GAN folder, after checking it still holds the weights it was trained on.

    A relative path (a bundled model, moved with its VQ-GAN) is relative to the DDPM run folder.
    """
    path = Path(recorded.path)
    if not path.is_absolute() and ddpm_dir is not None:
        path = ddpm_dir / path
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"the VQ-GAN this DDPM was trained with is missing ({weights}); "
                              f"restore that run folder, or retrain the DDPM on the VQ-GAN you "
                              f"have")
    if file_hash(weights) != recorded.hash:
        raise CheckpointError(f"the VQ-GAN in {path} has changed since this DDPM was trained on "
                              f"it; its latents no longer match: retrain the DDPM, or restore "
                              f"the original VQ-GAN")
    return path

