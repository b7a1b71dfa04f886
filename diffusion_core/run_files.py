"""The plain-file parts of a run folder: names, content hashes, atomic JSON; no torch.

The model registry and the study side read run folders through this module without importing
torch; `diffusion_core.checkpoints` adds the tensors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

WEIGHTS_NAME = "model.safetensors"
RUN_NAME = "run.json"


class CheckpointError(Exception):
    """A run folder or checkpoint that cannot be used; the message says why in one sentence."""


def file_hash(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_path(path: Path) -> Path:
    """A new empty temporary file beside `path` (to write, then `os.replace` onto it)."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would make a shared run folder unreadable
    return Path(name)


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
