"""The plain-file parts of a run folder: names, content hashes, atomic JSON; no torch.

The model registry and the study side read run folders through this module without importing
torch; `diffusion_core.checkpoints` adds the tensors. run.json records the sha256 of the
run's `model.safetensors` (`WEIGHTS_HASH`), written after the weights, and every load checks it
(`verified_weights`). Files and folders written here follow the umask, as `open` does, so a run
folder shared with a group stays readable by it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

WEIGHTS_NAME = "model.safetensors"
RUN_NAME = "run.json"
WEIGHTS_HASH = "weights_hash"  # run.json's record of model.safetensors' sha256


class CheckpointError(Exception):
    """A run folder or checkpoint that cannot be used; the message says why in one sentence."""


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def follow_umask(path: str | os.PathLike, folder: bool = False) -> None:
    """Give `path` the mode `open` or `mkdir` would under the current umask (0644 / 0755 under
    0022): tempfile's 0600 and 0700, and files that writers re-create 0600, would make a run
    folder unreadable to the group that shares it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if folder else 0o666) & ~umask)


def atomic_path(path: Path) -> Path:
    """A new empty temporary file beside `path` (to write, then `os.replace` onto it)."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    follow_umask(name)
    return Path(name)


def atomic_folder(path: Path) -> Path:
    """A new empty temporary folder beside `path` (to fill, then `os.replace` onto it)."""
    name = tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-")
    follow_umask(name, folder=True)
    return Path(name)


def verified_weights(run_dir: str | os.PathLike, info: dict) -> Path:
    """RUN/model.safetensors, checked against the sha256 run.json recorded when it was written.

    A run written before mdiff recorded the hash has none to check against.
    """
    weights = Path(run_dir) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the run has not written its weights yet, "
                              f"or they were moved; restore the file or train the run again")
    recorded = info.get(WEIGHTS_HASH)
    if recorded is not None and file_hash(weights) != recorded:
        raise CheckpointError(f"{weights} does not match the sha256 its {RUN_NAME} recorded: it "
                              f"was changed or damaged after training wrote it; restore it from "
                              f"a backup or train the run again")
    return weights


def write_json(path: str | os.PathLike, data: dict) -> None:
    """Write `data` as indented JSON, atomically."""
    path = Path(path)
    tmp = atomic_path(path)
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: str | os.PathLike, what: str = "file") -> dict:
    """A JSON object from `path`; CheckpointError for a missing or unreadable file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: not a complete {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path} cannot be read as JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data
