"""Staging: each chosen input read by the one road and written as a case under a random name.

The inputs are read and staged in a random order, under random names, so even a build folder
left behind by a killed create says nothing about which file was real. Every case takes the same
road to its values (`studies.normalise`) and is written on one grid (`studies.case_file`).

An input that cannot make a case is skipped with a note, and the next candidate of its folder
takes its place: a constant volume (every voxel the same), or one that the preset's pipeline makes
constant.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from diffusion_core.io import Volume, constant_value, modality_doubt
from diffusion_core.preprocess import PreprocessError
from diffusion_core.presets import Preset
from studies.case_file import encode_case
from studies.inputs import Draw, Input, Pool, pools_of
from studies.normalise import Grid, case_values, is_preprocessed, to_unit
from studies.study import CASE_SUFFIX, StudyError


@dataclass(frozen=True)
class CaseRoad:
    """How every input of a study becomes its case's values: preset, modality and dither key."""

    preset: Preset | None
    modality: str | None  # None: taken from the first usable volume (no preset)
    value_key: tuple[int, ...]  # the dither's study key (normalise.content_rng)


@dataclass
class StagedCase:
    """A case encoded into the staging folder, waiting for its random id."""

    staged: Path
    entry: Input
    origin: str


@dataclass
class Staging:
    """What staging made: the cases, the grid and modality they share."""

    cases: list[StagedCase] = field(default_factory=list)
    practice: list[StagedCase] = field(default_factory=list)
    grid: Grid | None = None
    grid_source: Path | None = None  # without a preset: the input whose grid the study takes
    modality: str | None = None


def stage_cases(folder: Path, draws: list[Draw], practice: list[Draw], road: CaseRoad, *,
                progress: bool, tell: Callable[[str], None]) -> Staging:
    """Read each input by the one road and write its case into the staging `folder`.

    The practice block goes first: it takes its inputs from the front of each folder's seeded
    order, and a study that takes every input of a folder then takes the rest.
    """
    folder.mkdir()
    stager = _Stager(folder, road, tell, Staging(modality=road.modality))
    if road.preset is not None:
        stager.staging.grid = Grid(tuple(road.preset.shape), tuple(road.preset.spacing))
    else:
        stager.grid_from_first_input(pools_of(draws + practice))
    stager.bar = tqdm(total=0, desc="cases", unit="case", disable=None if progress else True)
    try:
        stager.staging.practice = stager.stage_draws(practice)
        stager.staging.cases = stager.stage_draws(draws)
    finally:
        stager.bar.close()
    if not stager.staging.cases:
        raise StudyError("No input could become a case (each was skipped, as noted above); give "
                         "other volumes.")
    return stager.staging


@dataclass
class _Stager:
    """One staging run: where cases go, their road, and what was read or found constant."""

    folder: Path
    road: CaseRoad
    tell: Callable[[str], None]
    staging: Staging
    cache: dict[Path, Volume] = field(default_factory=dict)  # read early, kept for its turn
    constant: set[Path] = field(default_factory=set)  # inputs already found constant (noted)
    bar: tqdm | None = None

    def stage_draws(self, draws: list[Draw]) -> list[StagedCase]:
        """Stage the cases `draws` ask for; StudyError when a folder cannot give its count.

        The inputs are taken in a random order (and a skipped one's replacement slotted in at a
        random place), so nothing staged says which file came first.
        """
        random = secrets.SystemRandom()
        queue: list[tuple[Draw, Input]] = []
        for draw in draws:
            for _ in range(draw.pool.left if draw.wanted is None else draw.wanted):
                queue.append((draw, draw.pool.take()))
        random.shuffle(queue)
        self.bar.total += len(queue)
        self.bar.refresh()
        staged = []
        while queue:
            draw, entry = queue.pop()
            case = self.stage_one(entry)
            if case is not None:
                staged.append(case)
                draw.used += 1
                self.bar.update()
                continue
            draw.skipped += 1
            if draw.wanted is None:
                self.bar.total -= 1
                self.bar.refresh()
                continue
            replacement = draw.pool.take()
            if replacement is not None:
                queue.insert(random.randrange(len(queue) + 1), (draw, replacement))
        for draw in draws:
            if draw.wanted is not None and draw.used < draw.wanted:
                raise StudyError(f"Only {draw.used} of the {draw.wanted} {draw.pool.source} "
                                 f"volumes asked with {draw.option} could be used ({draw.skipped} "
                                 f"of {draw.pool.folder} were skipped, as noted above); ask for "
                                 "fewer or add volumes.")
        return staged

    def grid_from_first_input(self, pools: list[Pool]) -> None:
        """Without a preset the first usable real volume (else synthetic) sets grid and modality.

        It is read now and kept for its turn in the staging order.
        """
        staging = self.staging
        for pool in sorted(pools, key=lambda pool: pool.source != "real"):
            for entry in pool.candidates:
                volume = entry.read()
                if self.is_constant(volume, entry):
                    continue
                self.cache[entry.path] = volume
                staging.modality = staging.modality or volume.modality or None
                if staging.modality is None:
                    raise StudyError(f"Cannot tell whether {entry.path} is CT or MR; pass "
                                     "--modality or --preset.")
                # Rounded to a micrometre: NIfTI stores float32, whose 0.7 is 0.69999999.
                staging.grid = Grid(tuple(int(s) for s in volume.array.shape),
                                    tuple(round(float(s), 6) for s in volume.spacing))
                staging.grid_source = entry.path
                return
        raise StudyError("Every chosen volume is constant, so none can set the study's grid; "
                         "give other volumes.")

    def is_constant(self, volume: Volume, entry: Input) -> bool:
        """Whether a volume is constant; the first time, it is noted as skipped."""
        value = constant_value(volume.array)
        if value is None:
            return False
        if entry.path not in self.constant:
            self.constant.add(entry.path)
            self.tell(f"skipped {entry.path}: every voxel is {value:g}, a constant volume with "
                      "no image")
        return True

    def stage_one(self, entry: Input) -> StagedCase | None:
        """One input's case in the staging folder; None when it is skipped (and noted)."""
        if entry.path in self.constant:
            return None
        volume = self.cache.pop(entry.path) if entry.path in self.cache else entry.read()
        if self.is_constant(volume, entry):
            return None
        self._check_volume(volume, entry)
        preset, modality = self.road.preset, self.staging.modality
        try:
            units = to_unit(volume, modality, preset, prepared=entry.item.is_preprocessed)
        except PreprocessError as err:
            raise StudyError(f"{entry.path} cannot go through preset {preset.name!r} ("
                             f"{str(err).rstrip('.')}); remove it from its folder.") from None
        part = entry.part_draw % len(units)
        if constant_value(units[part]) is not None:
            how = f"preset {preset.name!r}" if preset else f"the {modality} value scale"
            self.tell(f"skipped {entry.path}: {how} makes it a constant volume")
            return None
        origin = str(entry.path.resolve())
        if len(units) > 1:
            origin += f" [part {part + 1} of {len(units)}]"
        target = self.folder / f"{secrets.token_hex(8)}{CASE_SUFFIX}"
        values = case_values(units[part], modality, preset, self.road.value_key)
        target.write_bytes(encode_case(values, self.staging.grid, modality))
        return StagedCase(target, entry, origin)

    def _check_volume(self, volume: Volume, entry: Input) -> None:
        """Refuse another modality or (without a preset) another shape; note a doubtful one."""
        preset, modality, grid = self.road.preset, self.staging.modality, self.staging.grid
        if volume.modality and volume.modality != modality:
            against = f"preset {preset.name!r} is" if preset else "the study is"
            raise StudyError(f"{entry.path} is {volume.modality} but {against} {modality}; give "
                             "volumes of one modality.")
        if not entry.item.is_preprocessed and not (
                preset is not None and is_preprocessed(volume.array, preset)):
            doubt = modality_doubt(volume, modality)
            if doubt is not None:
                self.tell(f"warning: {entry.path}: {doubt}; check that it belongs in this study")
        if preset is None and volume.array.shape != grid.shape:
            raise StudyError(f"{entry.path} has shape {volume.array.shape} but "
                             f"{self.staging.grid_source} has {grid.shape}; pass --preset to "
                             "bring all volumes to one grid.")
