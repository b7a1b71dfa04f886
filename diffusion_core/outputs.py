"""The one rule of every file or folder a command writes at a path the user gave (`--out`,
`--figure`, `--key`, `--volumes-out`), and writing a file atomically.

`check_output` refuses, before anything is computed:

- a path that is one of the command's own inputs (the same file, through a symbolic or a hard
  link too) or lies inside an input folder;
- a path inside a study folder (a folder holding an mdiff `study.json`): a command never writes
  over a study's manifest, case files or readers' databases, nor adds files to it;
- an existing study key (a CSV with the key's columns): the only record of which case is real,
  which cannot be made again;
- an existing folder where a file is wanted, or an existing file where a folder is wanted;
- an existing file, unless `force` (`--force`) is given.

`--force` never overrides the first three. Standard library only: studies, evaluation and the Qt
app import it without torch or numpy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from diffusion_core.atomic_files import atomic_path

# studies.study.MANIFEST_NAME and STUDY_FORMAT, studies.key.KEY_COLUMNS (diffusion_core imports
# nothing of studies; a test keeps them equal).
STUDY_MANIFEST = "study.json"
STUDY_FORMAT = "mdiff-study"
STUDY_PARTS = ("cases", "ratings")  # a study's folders, for a study.json that cannot be read
KEY_HEADER = ("case_id", "source", "origin", "model", "seed")

PathLike = str | os.PathLike
Inputs = Iterable[tuple[str, PathLike | None]]


class OutputPathError(ValueError):
    """An output path that would write over an input, into a study, or over an existing file
    without --force; the message is one sentence naming the path and what to do."""


def check_output(path: PathLike, *, inputs: Inputs = (), force: bool = False,
                 what: str = "--out", kind: str = "file") -> Path:
    """Refuse `path` as the output `what` of a command (see the module docstring); return it.

    `inputs` are the command's inputs as (option, path) pairs, files or folders (None: not
    given). `kind` is "file" (replaced only with `force`) or "folder" (an existing folder is
    fine: the command decides what may go into it).
    """
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', not {kind!r}")
    path = Path(path)
    given = [(option, Path(source)) for option, source in inputs if source is not None]
    places = _places(path)
    for option, source in given:
        if _same_file(path, source):
            raise OutputPathError(f"{what} {path} is the input {option} {source}; an input is "
                                  "never written over: choose another path.")
    study = next((folder for place in places for folder in _study_folders(place)), None)
    if study is not None:
        raise OutputPathError(f"{what} {path} lies inside the study {study}, whose files no "
                              "command writes over or adds to; choose a path outside it.")
    for option, source in given:
        if source.is_dir() and any(_is_within(place, source) for place in places):
            raise OutputPathError(f"{what} {path} lies inside the input folder {option} "
                                  f"{source}; choose a path outside the command's inputs.")
    if kind == "folder":
        if path.exists() and not path.is_dir():
            raise OutputPathError(f"{what} {path} is a file, not a folder; give a folder path.")
        return path
    if path.is_dir():
        raise OutputPathError(f"{what} {path} is a folder; give the path of a file to write.")
    if is_study_key(path):
        raise OutputPathError(f"{what} {path} is a study's key, the only record of which case "
                              "is real, and is never written over; choose another path.")
    if path.exists() or path.is_symlink():
        if not force:
            raise OutputPathError(f"{what} {path} exists; pass --force to replace it, or choose "
                                  "another path.")
    return path


def is_study_key(path: PathLike) -> bool:
    """Whether `path` is an existing file whose first line is a study key's header."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = handle.readline(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return tuple(cell.strip() for cell in first.strip().split(",")) == KEY_HEADER


def is_study_folder(folder: PathLike) -> bool:
    """Whether `folder` is an mdiff study: it holds a study.json of that format (or, when that
    cannot be read, a study.json beside a study's cases or ratings folder)."""
    folder = Path(folder)
    manifest = folder / STUDY_MANIFEST
    if not manifest.is_file():
        return False
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return any((folder / part).is_dir() for part in STUDY_PARTS)
    if isinstance(data, dict) and data.get("format") == STUDY_FORMAT:
        return True
    return any((folder / part).is_dir() for part in STUDY_PARTS)


@contextmanager
def replacing(path: PathLike) -> Iterator[Path]:
    """A new temporary file beside `path` to write; on success it replaces `path` in one rename,
    else it is removed (a failed or interrupted write leaves `path` as it was)."""
    path = Path(path)
    tmp = atomic_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomically(path: PathLike, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` through `replacing`."""
    with replacing(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def _places(path: Path) -> list[Path]:
    """Where `path` is: as given (made absolute) and with every link resolved."""
    absolute = Path(os.path.abspath(path))
    resolved = Path(os.path.realpath(path))
    return [absolute] if absolute == resolved else [absolute, resolved]


def _same_file(path: Path, source: Path) -> bool:
    """Whether `path` names the file (or folder) `source`: the same resolved path, or the same
    inode (a hard link)."""
    if os.path.realpath(path) == os.path.realpath(source):
        return True
    try:
        return os.path.samefile(path, source)
    except OSError:
        return False  # one of them does not exist


def _is_within(place: Path, folder: Path) -> bool:
    """Whether the absolute `place` is `folder` or below it (`folder` as given or resolved)."""
    return any(place.is_relative_to(root) for root in
               {Path(os.path.abspath(folder)), Path(os.path.realpath(folder))})


def _study_folders(place: Path) -> Iterator[Path]:
    """The study folders that hold `place` (the place itself included), innermost first."""
    for folder in (place, *place.parents):
        if is_study_folder(folder):
            yield folder
