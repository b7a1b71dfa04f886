"""A samples folder (docs/models.md): sampled NIfTI volumes plus samples.json.

`samples.json` is written first, with the whole plan (model, which kind of model it is, its run
hashes, sampler, steps, the seed of every file), then each volume is written atomically under its
planned name. A folder that was interrupted is resumed by running the same command again: files
already there are kept and their seeds are not sampled twice; a folder planned with other
settings is refused. Provenance lives in this sidecar, never in the NIfTI headers. Reading it
needs no torch.

A plan is checked against the disk and the memory it needs before anything is allocated or
written (`check_room`): a count that cannot fit is one sentence, not a process the system kills.
`complete` turns true once every planned file is there; a reader that takes the folder as a set of
finished samples (`read_samples(..., finished=True)`) refuses an interrupted one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from diffusion_core.atomic_files import JSONFileError, read_json, write_json
from diffusion_core.records import dataclass_fields

SAMPLES_NAME = "samples.json"
SAMPLES_FORMAT = "mdiff-samples"
SAMPLES_VERSION = 1
# What made a samples folder: the latent diffusion model (a VQ-GAN and a DDPM run) or the GAN
# baseline (one WGAN-GP run, whose generator makes a volume in one pass: sampler "generator").
MODEL_KINDS = ("diffusion", "wgan")


# A lower bound of one sampled volume's file: gzip keeps at least an eighth of the float32
# voxels of a sample (about 29% for the demo preset's, whose background is mostly flat), plus the
# NIfTI header and the file's line in samples.json.
COMPRESSED_FRACTION = 1 / 8
FILE_OVERHEAD_BYTES = 512
# Memory per planned file while a plan is made, compared and written: its {"file", "seed"} entry
# (about 300 B), the copies `settings()` and a resumed folder's plan make, and samples.json's
# text while it is written (the peak: about 900 B a file with the entry).
PLAN_BYTES_PER_FILE = 2048


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
    kind: str = "diffusion"  # MODEL_KINDS; folders written before GANs were diffusion ones
    gan: dict = field(default_factory=dict)  # a GAN's run: {"path", "hash"}; {} for diffusion

    def settings(self) -> dict:
        """Everything but the completion flag: two plans with equal settings are one folder."""
        data = asdict(self)
        data.pop("complete")
        return data

    def to_dict(self) -> dict:
        """samples.json's JSON object, with its format and version."""
        return {"format": SAMPLES_FORMAT, "version": SAMPLES_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str | os.PathLike = SAMPLES_NAME) -> SamplesPlan:
        """Read samples.json's object; SamplesError (naming `source`) for another format or
        version, unknown or missing keys, or unusable values."""
        if not isinstance(data, dict) or data.get("format") != SAMPLES_FORMAT:
            raise SamplesError(f"{source} is not an mdiff samples.json")
        if data.get("version") != SAMPLES_VERSION:
            raise SamplesError(f"{source} is samples.json version {data.get('version')!r}, "
                               f"which this mdiff cannot read (it reads version "
                               f"{SAMPLES_VERSION}); update mdiff")
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            plan = cls(**dataclass_fields(cls, body, "samples.json"))
            for name in ("model", "preset", "sampler"):
                if not isinstance(getattr(plan, name), str):
                    raise ValueError(f"its {name} is not text")
            if not all(isinstance(run, dict) for run in (plan.vqgan, plan.ddpm, plan.gan)):
                raise ValueError("its vqgan, ddpm and gan are not objects")
            if plan.kind not in MODEL_KINDS:
                raise ValueError(f"its kind {plan.kind!r} is not one of {', '.join(MODEL_KINDS)}")
            for item in plan.files:
                if set(item) != {"file", "seed"}:
                    raise ValueError(f"a file entry has the keys {sorted(item)}, not file, seed")
                str(item["file"]), int(item["seed"])
        except (TypeError, ValueError) as err:
            raise SamplesError(f"{source} is damaged or from another version of mdiff "
                               f"({err})") from None
        return plan


def case_name(index: int) -> str:
    """The file name of the index-th (from 1) sampled volume."""
    return f"case_{index:04d}.nii.gz"


def planned_files(n: int, seed: int) -> list[dict]:
    """The files of a plan of `n` volumes from `seed` on: case_0001 gets `seed`, and so on."""
    return [{"file": case_name(i + 1), "seed": seed + i} for i in range(n)]


def read_samples(folder: str | os.PathLike, *, finished: bool = False) -> SamplesPlan:
    """The plan of a samples folder; SamplesError when it has none or it is damaged.

    `finished`: also refuse a folder whose sampling was interrupted (not `complete`), for a
    reader that takes its volumes as the whole set (a study's synthetic cases).
    """
    path = Path(folder) / SAMPLES_NAME
    try:
        plan = SamplesPlan.from_dict(read_json(path, "samples folder"), path)
    except JSONFileError as err:
        raise SamplesError(str(err)) from None
    if finished and plan.complete is not True:
        done = sum(1 for item in plan.files if (Path(folder) / item["file"]).is_file())
        raise SamplesError(f"{folder} was interrupted while it was being sampled ({done} of "
                           f"{len(plan.files)} volumes written); finish it by running the same "
                           f"mdiff-sample command again (the same --model, --n, --seed, "
                           f"--sampler and --steps, with --out {folder})")
    return plan


def write_samples(folder: Path, plan: SamplesPlan) -> None:
    """Write samples.json atomically."""
    write_json(folder / SAMPLES_NAME, plan.to_dict())


def open_samples_folder(folder: Path, plan: SamplesPlan) -> list[dict]:
    """Create or resume a samples folder for `plan`; returns the files still to sample."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SamplesError(f"--out {folder} is a file, not a folder; give the path of a new or "
                           f"empty folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / SAMPLES_NAME).exists():
            previous = read_samples(folder)
            if previous.settings() != plan.settings():
                raise SamplesError(f"{folder} holds samples made with other settings (model, "
                                   f"sampler, steps, seeds or count); choose another --out")
        else:
            stray = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
            if stray:
                raise SamplesError(f"{folder} is not empty and is not a samples folder; choose "
                                   f"an empty or new --out")
            write_samples(folder, plan)
    except OSError as err:
        raise SamplesError(unwritable(folder, err)) from None
    return [item for item in plan.files if not (folder / item["file"]).is_file()]


def unwritable(folder: Path, err: OSError) -> str:
    """The sentence for a samples folder the system does not let us create or write."""
    reason = err.strerror or " ".join(str(err).split())
    where = f" ({err.filename})" if err.filename and str(err.filename) != str(folder) else ""
    return (f"cannot write the samples folder {folder}{where}: {reason}; choose an --out "
            f"where you may create files")


def existing_parent(path: Path) -> Path:
    """`path` itself when it exists, else its nearest existing ancestor."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_folder(folder: Path) -> None:
    """Refuse an --out that cannot become a samples folder we may write, before any work."""
    folder = Path(folder)
    place = existing_parent(folder)
    if not place.is_dir():
        what = "is a file, not a folder" if place == Path(os.path.abspath(folder)) else \
            f"cannot be made: {place} is a file"
        raise SamplesError(f"--out {folder} {what}; give the path of a new or empty folder")
    if not os.access(place, os.W_OK | os.X_OK):
        raise SamplesError(f"cannot write the samples folder {folder}: {place} is not writable "
                           f"by you; choose an --out where you may create files")


def estimated_file_bytes(voxels: int) -> int:
    """A lower bound of one sampled volume's size on disk (COMPRESSED_FRACTION)."""
    return int(voxels * 4 * COMPRESSED_FRACTION) + FILE_OVERHEAD_BYTES


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux's MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_room(folder: Path, n: int, voxels: int) -> None:
    """Refuse a plan of `n` volumes of `voxels` each that the disk under `folder` or the memory
    cannot hold, before anything is allocated or written (files already there count as done)."""
    folder = Path(folder)
    done = 0
    if folder.is_dir():
        with os.scandir(folder) as entries:
            done = sum(1 for e in entries if e.name.startswith("case_") and e.is_file())
    need_disk = max(0, n - done) * estimated_file_bytes(voxels)
    place = existing_parent(folder)
    try:
        usage = shutil.disk_usage(place)
    except OSError:
        usage = None  # not a place we can write to: opening the folder says so
    # A pseudo file system (/proc) has no size at all: creating the folder there says what fails.
    free = usage.free if usage is not None and usage.total > 0 else None
    if free is not None and need_disk > free:
        raise SamplesError(f"--n {n} volumes need at least {_size(need_disk)} but {place} has "
                           f"{_size(free)} free; ask for fewer volumes or choose an --out on a "
                           f"larger disk")
    need_memory = n * PLAN_BYTES_PER_FILE
    memory = available_memory()
    if memory is not None and need_memory > memory:
        raise SamplesError(f"--n {n} volumes need about {_size(need_memory)} of memory just to "
                           f"plan (each file's seed), more than the {_size(memory)} available; "
                           f"sample fewer volumes per folder (with --seed to continue the seeds)")


def _size(count: float) -> str:
    """A byte count for people: 1.5 GB."""
    unit = "B"
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            break
        count /= 1000
    return f"{count:.0f} B" if unit == "B" else f"{count:.1f} {unit}"
