"""What `mdiff-study create` is asked to build, checked in one place before anything is read.

`StudyRequest` holds every option of a create. Making one checks the options against each other
and against the disk (a study is never written over, its key never lies inside it, an input folder
is given once and never inside another), so a mistake is one sentence before any volume is read.
Counts that depend on what a folder holds are checked when the folders are listed
(`studies.inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.modality import MODALITIES
from diffusion_core.outputs import check_output
from diffusion_core.presets import Preset, PresetError, get_preset
from studies.key import default_key_path, is_inside
from studies.study import StudyError
from studies.trials import DESIGNS


@dataclass(frozen=True)
class StudyRequest:
    """Every option of a create, checked when made (StudyError: one sentence)."""

    out: Path
    synthetic: Path | None = None
    real: Path | None = None
    n: int | None = None  # synthetic cases to draw (None: all)
    n_real: int | None = None  # real cases to draw (None: all)
    preset: str | None = None
    turing: bool = False
    key: Path | None = None  # None: STUDY.key.csv beside the study
    seed: int | None = None
    title: str | None = None
    dataset: str | None = None
    modality: str | None = None
    practice: int | None = None
    practice_real: Path | None = None
    practice_synthetic: Path | None = None
    answers_editable: bool = True
    design: str = "single"  # "2afc": paired trials of a real and a synthetic case
    pairs: int | None = None  # 2afc: the number of trials
    reuse: bool = False  # 2afc: a case may be shown in several trials
    match: bool = False  # 2afc: pair each synthetic case with the most similar real ones
    progress: bool = False
    # Told each note as it happens (inputs skipped, ...); the notes also come back with the study.
    note: Callable[[str], None] | None = field(default=None, compare=False)
    loaded_preset: Preset | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("out", "synthetic", "real", "key", "practice_real", "practice_synthetic"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        check_targets(self.out, self.key_path, self.folders)
        check_folders(self.folders)
        object.__setattr__(self, "loaded_preset", load_preset(self.preset))
        study_modality(self.modality, self.loaded_preset)
        self._check_counts()

    @property
    def key_path(self) -> Path:
        """Where the key is written."""
        return self.key if self.key is not None else default_key_path(self.out)

    @property
    def folders(self) -> dict[str, Path | None]:
        """Each input folder by its option (None when not given)."""
        return {"--real": self.real, "--synthetic": self.synthetic,
                "--practice-real": self.practice_real,
                "--practice-synthetic": self.practice_synthetic}

    def _check_counts(self) -> None:
        """Refuse counts that no folder could satisfy, whatever the folders hold."""
        if self.synthetic is None and self.real is None:
            raise StudyError("No volumes were given; pass --synthetic DIR and/or --real DIR.")
        for count, option in ((self.n, "--n"), (self.n_real, "--n-real")):
            if count is not None and count < 0:
                raise StudyError(f"{option} must be 0 or more, not {count}.")
        if self.n and self.synthetic is None:
            raise StudyError(f"--n {self.n} asks for synthetic cases but no --synthetic folder "
                             "was given.")
        if self.n_real and self.real is None:
            raise StudyError(f"--n-real {self.n_real} asks for real cases but no --real folder "
                             "was given.")
        if all(folder is None or count == 0 for folder, count in (
                (self.synthetic, self.n), (self.real, self.n_real))):
            raise StudyError("No volumes were chosen (--n and --n-real are 0); ask for at least "
                             "one case.")
        if self.practice is not None and self.practice < 1:
            raise StudyError(f"--practice must be 1 or more, not {self.practice}.")
        self._check_design()

    def _check_design(self) -> None:
        """Refuse a paired design without its trials or inputs, and its options without it."""
        if self.design not in DESIGNS:
            raise StudyError(f"The design {self.design!r} is not one of {', '.join(DESIGNS)}; "
                             "give --design single or --design 2afc.")
        if self.design != "2afc":
            given = [option for option, value in (("--pairs", self.pairs is not None),
                                                  ("--reuse", self.reuse),
                                                  ("--match", self.match)) if value]
            if given:
                raise StudyError(f"{given[0]} is an option of paired studies; add --design 2afc "
                                 "or leave it out.")
            return
        if self.pairs is None or self.pairs < 1:
            raise StudyError("A paired study needs its number of trials: give --pairs N (1 or "
                             "more).")
        if self.synthetic is None or self.real is None or self.n_real == 0 or self.n == 0:
            raise StudyError("Every trial of a paired study shows a real and a synthetic case; "
                             "give both --real and --synthetic (or --model).")
        if self.turing:
            raise StudyError("A paired study asks which side is synthetic instead of the Turing "
                             "questions; leave out --turing.")
        if bool(self.practice_real) != bool(self.practice_synthetic):
            raise StudyError("A practice trial shows a real and a synthetic case; give both "
                             "--practice-real and --practice-synthetic, or neither.")


def check_targets(out: Path, key_path: Path, inputs: dict[str, str | Path | None]) -> None:
    """Refuse an existing study folder, a key inside it, an existing key or one without a folder,
    and either of them inside another study or an input folder (`inputs`: option -> folder).

    The default key's folder is the study's parent, made with the study.
    """
    if out.exists():
        raise StudyError(f"{out} already exists; choose a new --out folder (a study is never "
                         "written over).")
    check_output(out, inputs=inputs.items(), what="--out", kind="folder")
    if is_inside(key_path, out):
        raise StudyError(f"The key {key_path} would lie inside the study {out}, where readers "
                         "could open it; give a --key path outside the study folder.")
    if not key_path.parent.is_dir() and key_path.parent != out.parent:
        raise StudyError(f"The folder {key_path.parent} for the key does not exist; create it or "
                         "give another --key path.")
    # An existing key is refused below in create's own words: create has no --force.
    check_output(key_path, inputs=inputs.items(), what="--key", force=True)
    if key_path.exists():
        raise StudyError(f"The key {key_path} already exists; give another --key path or move "
                         "the old key away.")


def check_folders(folders: dict[str, str | Path | None]) -> None:
    """Refuse one folder given for two options (e.g. --real and --synthetic), or one inside
    another; `folders` maps each option to its folder (None when not given)."""
    given = [(option, Path(folder).resolve(), folder) for option, folder in folders.items()
             if folder is not None]
    for index, (first, first_dir, first_text) in enumerate(given):
        for second, second_dir, _ in given[index + 1:]:
            # A practice case from a study folder could be one of the study's own cases.
            why = ("practice cases must come from other scans than the study's (or use "
                   "--practice K alone)" if "practice" in first + second
                   else "give the real scans and the synthetic volumes in separate folders")
            if first_dir == second_dir:
                raise StudyError(f"{first} and {second} are the same folder ({first_text}); "
                                 f"{why}.")
            for inner, outer, inner_option, outer_option in (
                    (second_dir, first_dir, second, first), (first_dir, second_dir, first, second)):
                if inner.is_relative_to(outer):
                    raise StudyError(f"The {inner_option} folder {inner} lies inside the "
                                     f"{outer_option} folder {outer}, whose scans it would "
                                     f"join; {why}.")


def load_preset(name: str | None) -> Preset | None:
    """The named preset, or None."""
    if name is None:
        return None
    try:
        return get_preset(name)
    except PresetError as err:
        raise StudyError(f"{str(err).rstrip('.')}.") from None


def study_modality(modality: str | None, preset: Preset | None) -> str | None:
    """The modality given or the preset's (None: taken from the first volume read)."""
    if modality is not None and modality not in MODALITIES:
        raise StudyError(f"The modality {modality!r} is not CT or MR; give --modality CT or MR.")
    if preset is not None and modality is not None and modality != preset.modality:
        raise StudyError(f"Preset {preset.name!r} is {preset.modality}, not {modality}; leave "
                         "--modality out or choose a matching preset.")
    return modality or (preset.modality if preset else None)
