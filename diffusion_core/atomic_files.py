"""Files written whole or not at all, JSON objects read back, content hashes; no torch.

Everything here writes to a temporary name beside the target and moves it into place with
`os.replace`, so a reader sees the old file or the new one, never half of one. Files and folders
written here follow the umask, as `open` does, so a folder shared with a group stays readable by
it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


class JSONFileError(Exception):
    """A JSON file that is missing, unreadable or not one object; the message names it."""


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
    """A JSON object from `path`; JSONFileError for a missing or unreadable file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JSONFileError(f"{path} is missing: not a complete {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise JSONFileError(f"{path} cannot be read as JSON ({err})") from None
    if not isinstance(data, dict):
        raise JSONFileError(f"{path} does not hold a JSON object")
    return data
