"""Choosing a study's inputs: which volumes of which folders become cases, and their provenance.

Each input folder is opened by the one road (`diffusion_core.sources.open_source`: a folder of
scans, a PREP_DIR or a samples folder) and its volumes become candidates in a seeded random order.
The study draws its counts from them (`choose_inputs`); a practice block draws first, from the
practice folders or from the study's own (`choose_practice`), so practice cases are never study
cases. A candidate that cannot make a case is replaced by the next of its folder when staged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io import Volume, VolumeError
from diffusion_core.presets import Preset, get_preset
from diffusion_core.sources import SourceError, SourceItem, VolumeSource, open_source
from studies.request import StudyRequest
from studies.study import StudyError

MODEL_FILE = "model.json"  # optional, in a synthetic folder: {"name": ...} or {"model": ...}


@dataclass(frozen=True)
class Input:
    """One candidate input volume and what the key will say about it."""

    volumes: VolumeSource  # the folder it is listed in
    index: int  # its place in that listing
    source: str  # "real" | "synthetic"
    model: str = ""
    seed: str = ""
    part_draw: int = 0  # which part of a split scan becomes the case (modulo the part count)

    @property
    def item(self) -> SourceItem:
        """The listed volume: its path and what its folder says about it."""
        return self.volumes.items[self.index]

    @property
    def path(self) -> Path:
        """Where the input volume is."""
        return self.item.path

    def read(self) -> Volume:
        """The input as its file stores it, with its failure as a StudyError."""
        try:
            return self.volumes.read_stored(self.index)
        except VolumeError as err:
            raise StudyError(f"{str(err).rstrip('. ')}; remove or replace that file and run "
                             "create again.") from None


@dataclass
class Pool:
    """The candidates of one folder, in the seeded random order; each is taken at most once."""

    source: str
    folder: Path
    candidates: list[Input]
    next_index: int = 0

    def take(self) -> Input | None:
        """The next candidate not yet tried, or None when none is left."""
        if self.next_index >= len(self.candidates):
            return None
        self.next_index += 1
        return self.candidates[self.next_index - 1]

    @property
    def left(self) -> int:
        """How many candidates were not taken yet."""
        return len(self.candidates) - self.next_index


@dataclass
class Draw:
    """How many cases the study or its practice block takes from one folder's pool."""

    pool: Pool
    option: str  # the option that asked for the count: "--n", "--n-real", "--practice", ...
    wanted: int | None  # None: every candidate left
    used: int = 0
    skipped: int = 0


def choose_inputs(request: StudyRequest, rng: np.random.Generator,
                  tell: Callable[[str], None]) -> list[Draw]:
    """Each folder's candidates in a seeded random order, with the count asked of it."""
    draws = []
    for folder, count, source, option in ((request.synthetic, request.n, "synthetic", "--n"),
                                          (request.real, request.n_real, "real", "--n-real")):
        if folder is None or count == 0:
            continue
        pool = folder_pool(folder, source, rng, tell)
        check_room(folder, len(pool.candidates), source, option, count)
        draws.append(Draw(pool, option, count))
    return draws


def check_room(folder: Path, room: int, source: str, option: str, count: int | None,
               pairs: int | None = None) -> None:
    """StudyError when `folder`'s `room` volumes cannot give the `count` asked with `option`,
    or (`pairs`: a paired study without --reuse) one case of `source` per trial."""
    if count is not None and count > room:
        raise StudyError(f"{folder} holds {room} scans, fewer than the {count} asked with "
                         f"{option}; ask for fewer or add volumes.")
    if pairs is None:
        return
    if count is not None and count < pairs:
        raise StudyError(f"{option} {count} draws fewer {source} cases than the {pairs} "
                         "trials of --pairs need without --reuse; ask for fewer pairs "
                         "or give --reuse (a case then appears in several trials).")
    if room < pairs:
        raise StudyError(f"--pairs {pairs} needs {pairs} {source} volumes without "
                         f"--reuse, but {folder} holds {room}; ask for fewer pairs, add "
                         "volumes or give --reuse (a case then appears in several trials).")


def choose_practice(request: StudyRequest, study: list[Draw], rng: np.random.Generator,
                    tell: Callable[[str], None]) -> list[Draw]:
    """The practice block's draws: from the practice folders, else `practice` from the study's
    own folders (as evenly over real and synthetic as they allow); [] without a practice block."""
    practice = request.practice
    folders = [(folder, source, option) for folder, source, option in (
        (request.practice_real, "real", "--practice-real"),
        (request.practice_synthetic, "synthetic", "--practice-synthetic")) if folder is not None]
    if folders:
        draws = [Draw(folder_pool(folder, source, rng, tell), option, None)
                 for folder, source, option in folders]
        if practice is None:
            return draws
        room = [len(d.pool.candidates) for d in draws]
        if practice > sum(room):
            raise StudyError(f"--practice {practice} asks for more practice cases than the "
                             f"{sum(room)} volumes of the practice folders; ask for fewer or add "
                             "volumes.")
    elif practice is None:
        return []
    else:
        # The study keeps what it asked for; without a count, at least one case of the folder.
        room = [len(d.pool.candidates) - (d.wanted if d.wanted is not None else 1)
                for d in study]
        if practice > sum(room):
            raise StudyError(f"--practice {practice} asks for more practice cases than the "
                             f"{sum(room)} volumes the input folders hold beside the study's "
                             "cases; ask for fewer, or give --practice-real and "
                             "--practice-synthetic folders.")
        draws = [Draw(d.pool, "--practice", None) for d in study]
    for draw, count in zip(draws, _even_split(practice, room, rng), strict=True):
        draw.wanted = count
    return [d for d in draws if d.wanted]


def pools_of(draws: list[Draw]) -> list[Pool]:
    """The pools the draws take from, each once (the study and its practice may share one)."""
    return list({id(draw.pool): draw.pool for draw in draws}.values())


def preset_of_prepared(pools: list[Pool], preset: Preset | None) -> Preset | None:
    """The study's preset: the one that made the PREP_DIR inputs when none was given.

    StudyError when PREP_DIRs of different presets are mixed, or when --preset names another.
    """
    prepared = {entry.volumes.preset.name: entry.volumes.folder for pool in pools
                for entry in pool.candidates if entry.item.is_preprocessed}
    if not prepared:
        return preset
    if len(prepared) > 1:
        folders = ", ".join(f"{folder} ({name})" for name, folder in sorted(prepared.items()))
        raise StudyError(f"The PREP_DIRs were prepared with different presets ({folders}); "
                         "give folders of one preset.")
    name, folder = next(iter(prepared.items()))
    if preset is not None and preset.name != name:
        raise StudyError(f"{folder} was prepared with preset {name!r}, not {preset.name!r}; "
                         f"pass --preset {name} or leave --preset out.")
    return preset or get_preset(name)


def folder_pool(folder: Path, source: str, rng: np.random.Generator,
          tell: Callable[[str], None]) -> Pool:
    """A folder's scans as candidates in a seeded random order, each with its part draw."""
    volumes = _volumes(folder, source, tell)
    by_path = sorted(range(len(volumes)), key=lambda i: volumes.items[i].path)
    order = rng.permutation(len(volumes))
    parts = rng.integers(0, 2**31, size=len(volumes))
    return Pool(source, folder, [_input(volumes, by_path[i], source, int(part))
                                 for i, part in zip(order, parts, strict=True)])


def _even_split(total: int, room: list[int], rng: np.random.Generator) -> list[int]:
    """`total` split over the folders as evenly as their room allows; an odd one goes to a
    random folder."""
    counts = [0] * len(room)
    for _ in range(total):
        open_folders = [i for i in range(len(room)) if counts[i] < room[i]]
        fewest = min(counts[i] for i in open_folders)
        candidates = [i for i in open_folders if counts[i] == fewest]
        counts[candidates[int(rng.integers(len(candidates)))]] += 1
    return counts


def _volumes(folder: Path, source: str, tell: Callable[[str], None]) -> VolumeSource:
    """The volumes of an input folder (scans, PREP_DIR or samples folder); StudyError when it has
    none. An interrupted samples folder is no synthetic input."""
    try:
        volumes = open_source(folder, option=f"--{source}", finished=source == "synthetic")
    except SourceError as err:
        raise StudyError(str(err)) from None
    for skipped in volumes.skipped:
        tell(f"skipped {skipped.reason}")
    return volumes


def _input(volumes: VolumeSource, index: int, source: str, part_draw: int) -> Input:
    """An input with its provenance: a synthetic volume's model and seed, when known."""
    item = volumes.items[index]
    if source == "real":
        return Input(volumes, index, source, part_draw=part_draw)
    if item.kind == "samples":  # written by mdiff-sample: samples.json says
        return Input(volumes, index, source, item.model, item.seed, part_draw)
    path, folder = item.path, volumes.folder
    sidecar = _read_json(path.with_name(_stem(path) + ".json"))
    folder_model = _read_json(folder / MODEL_FILE)
    model = sidecar.get("model") or folder_model.get("name") or folder_model.get("model") \
        or folder.resolve().name
    seed = sidecar.get("seed", "")
    return Input(volumes, index, source, str(model), "" if seed is None else str(seed),
                 part_draw)


def _stem(path: Path) -> str:
    """A volume file's name without its volume suffix (.nii.gz, .nii, .npy, .dcm)."""
    for suffix in (".nii.gz", ".nii", ".npy", ".dcm"):
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def _read_json(path: Path) -> dict:
    """A JSON object from a sidecar file, or {} when there is none (or it is no object)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return value if isinstance(value, dict) else {}
