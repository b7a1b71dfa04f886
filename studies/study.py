"""A reader study on disk: the folder layout, its `study.json` manifest and the `Study` handle.

```
STUDY/
  study.json            format, version, study id, title, dataset, modality, questions, cases, ...
  cases/ID.nii          one blinded case per file (uncompressed NIfTI, see case_file.py)
  practice/P01.nii      the practice cases, if the study has a practice block
  ratings/READER.sqlite one ratings database per reader (see ratings.py)
  log.txt               details of errors, for the study's administrator
```
Nothing in the folder says which study case is real and which synthetic: that is the key, kept
outside. The one truth a study holds is that of its practice cases, which readers are shown after
answering them: study.json's optional `practice` lists them in the order they are shown, each as
`{"case_id": "P01", "source": "real"|"synthetic"}`. Practice ids (`P` and two or more digits) can
never be study case ids (lowercase hex), and practice cases are no study cases: never counted or
exported as ratings (`mdiff-study audit` checks that their truth tells nothing about study cases).

`answers_editable` (optional, default true, as for studies made before it existed): with false, a
case's answers become final once the case is done (every question answered, or flagged "not
assessable"); until then the reader may still change them. Comments can always change. Every
change is kept, with its time, in the reader's database (ratings.py).
`practice_truth_when_flagged` (optional, default false): whether a practice case flagged "not
assessable" shows its truth without every question answered.

`design` (optional, default "single"): "2afc" for a paired study, whose `trials` pair its cases
(a real and a synthetic case per trial, shown side by side) and whose practice entries are
practice trials (see trials.py); its questions are AFC_QUESTIONS. A single-reading study's
study.json has neither field.

`StudyManifest` is study.json as a value: `from_dict` reads every version on disk (1 and 2; the
optional fields above were added within them, so a file may lack them) and refuses, in one
sentence naming the file, a missing or unknown field and a value of the wrong type; `to_dict` is
what `mdiff-study create` writes. Version 2 studies store their cases as `.nii`; version 1
studies (gzipped `cases/ID.nii.gz`) are still opened, rated, exported and audited.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from diffusion_core.modality import MODALITIES
from studies.ids import CASE_ID_PATTERN, PRACTICE_ID_PATTERN
from studies.questions import ALL_QUESTIONS, TURING_QUESTIONS, Question, study_questions
from studies.trials import (
    DESIGNS,
    PracticeTrial,
    Trial,
    check_practice_trials,
    check_trials,
    practice_members,
)

STUDY_FORMAT = "mdiff-study"
STUDY_VERSION = 2
MANIFEST_NAME = "study.json"
CASES_DIR = "cases"
PRACTICE_DIR = "practice"
RATINGS_DIR = "ratings"
LOG_NAME = "log.txt"
CASE_SUFFIX = ".nii"  # the case files of a study this mdiff creates
# The case file suffix of every study version this mdiff reads.
CASE_SUFFIXES: dict[int, str] = {1: ".nii.gz", 2: CASE_SUFFIX}
SOURCES = ("real", "synthetic")

# study.json's fields and their JSON types, in the order create writes them; every version
# this mdiff reads has the same fields, the optional ones being later additions.
_REQUIRED_FIELDS: dict[str, type] = {
    "format": str, "version": int, "study_id": str, "title": str, "dataset": str,
    "modality": str, "questions": list, "turing": bool, "cases": list, "shape": list,
    "spacing": list, "viewer": dict, "created_at": str,
}
_OPTIONAL_FIELDS: dict[str, type] = {
    "answers_editable": bool, "practice": list, "practice_truth_when_flagged": bool,
    "design": str, "trials": list,
}


class StudyError(Exception):
    """A bad, missing or unusable study, or a bad request about one; the message is one sentence."""


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PracticeEntry:
    """One entry of study.json's `practice`: a practice case and its truth."""

    case_id: str
    source: str


@dataclass(frozen=True)
class StudyManifest:
    """study.json: what a study is and asks (format version 1 or 2)."""

    version: int
    study_id: str
    title: str
    dataset: str  # "" in studies made before the dataset name was always written
    modality: str
    questions: tuple[str, ...]
    turing: bool
    cases: tuple[str, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    viewer: dict[str, Any]  # the app's defaults (window, percentile, layout); it checks them
    created_at: str
    answers_editable: bool = True
    # PracticeEntry in a single-reading study, PracticeTrial in a paired one.
    practice: tuple[PracticeEntry | PracticeTrial, ...] = ()
    practice_truth_when_flagged: bool = False
    design: str = "single"
    trials: tuple[Trial, ...] = ()  # a paired study's trials in layout A, in listed order

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> StudyManifest:
        """The manifest of study.json's parsed `data`; StudyError naming `path` when invalid."""

        def bad(problem: str) -> StudyError:
            return StudyError(f"{path} {problem}; restore it from a copy of the study.")

        _check_fields(data, path, bad)
        _check_values(data, bad)
        practice = data.get("practice", [])
        design = data.get("design", "single")
        if design == "2afc":
            check_trials(data["trials"], data["cases"], bad)
            check_practice_trials(practice, bad)
            entries: tuple = tuple(PracticeTrial(**e) for e in practice)
        else:
            _check_practice(practice, bad)
            entries = tuple(PracticeEntry(e["case_id"], e["source"]) for e in practice)
        return cls(
            version=data["version"], study_id=data["study_id"], title=data["title"],
            dataset=data["dataset"], modality=data["modality"],
            questions=tuple(data["questions"]), turing=data["turing"], cases=tuple(data["cases"]),
            shape=tuple(data["shape"]), spacing=tuple(float(s) for s in data["spacing"]),
            viewer=dict(data["viewer"]), created_at=data["created_at"],
            answers_editable=data.get("answers_editable", True),
            practice=entries,
            practice_truth_when_flagged=data.get("practice_truth_when_flagged", False),
            design=design, trials=tuple(Trial(**t) for t in data.get("trials", [])))

    def to_dict(self) -> dict[str, Any]:
        """study.json's content, as `mdiff-study create` writes it."""
        data: dict[str, Any] = {
            "format": STUDY_FORMAT, "version": self.version, "study_id": self.study_id,
            "title": self.title, "dataset": self.dataset, "modality": self.modality,
            "questions": list(self.questions), "turing": self.turing, "cases": list(self.cases),
            "shape": list(self.shape), "spacing": list(self.spacing), "viewer": dict(self.viewer),
            "created_at": self.created_at, "answers_editable": self.answers_editable,
            "practice": [_practice_dict(p) for p in self.practice],
        }
        if self.practice_truth_when_flagged:  # written only where a study sets it
            data["practice_truth_when_flagged"] = True
        if self.design != "single":  # a single-reading study.json is as it always was
            data["design"] = self.design
            data["trials"] = [{"trial_id": t.trial_id, "left": t.left, "right": t.right}
                              for t in self.trials]
        return data


def _practice_dict(entry: PracticeEntry | PracticeTrial) -> dict[str, str]:
    """A practice entry as study.json lists it."""
    if isinstance(entry, PracticeTrial):
        return {"trial_id": entry.trial_id, "left": entry.left, "right": entry.right,
                "synthetic": entry.synthetic}
    return {"case_id": entry.case_id, "source": entry.source}


def read_manifest(path: Path) -> StudyManifest:
    """Read and check a study.json; StudyError naming `path` when it is unreadable or invalid."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StudyError(f"{path} cannot be read as JSON ({err}); restore it from a copy of "
                         "the study.") from None
    return StudyManifest.from_dict(data, path)


class Study:
    """An opened study folder: its manifest's fields and the paths of its parts."""

    def __init__(self, folder: Path, manifest: StudyManifest) -> None:
        self.folder = folder
        self.manifest: StudyManifest = manifest
        self.study_id: str = manifest.study_id
        self.title: str = manifest.title
        # Studies made before the dataset name was always written have "" there; the export's
        # dataset column must not be empty.
        self.dataset: str = dataset_name(manifest.dataset, None, manifest.title, folder)
        self.modality: str = manifest.modality
        self.turing: bool = manifest.turing
        self.questions: tuple[Question, ...] = tuple(
            ALL_QUESTIONS[key] for key in manifest.questions)
        self.case_ids: list[str] = list(manifest.cases)
        self.shape: tuple[int, ...] = manifest.shape
        self.spacing: tuple[float, ...] = manifest.spacing
        self.viewer: dict = dict(manifest.viewer)
        self.created_at: str = manifest.created_at
        self.design: str = manifest.design
        # A paired study's trials in layout A (trials.py), in listed order.
        self.trials: dict[str, Trial] = {t.trial_id: t for t in manifest.trials}
        # Practice case id (practice trial id in a paired study) -> its truth ("real" or
        # "synthetic"; in a paired study the synthetic member's side in layout A), in the order
        # they are shown. The app asks `RatingStore.practice_truth`, which gives it only after
        # the case is answered.
        self.practice: dict[str, str] = {}
        self.practice_trials: dict[str, Trial] = {}
        for entry in manifest.practice:
            if isinstance(entry, PracticeTrial):
                self.practice[entry.trial_id] = entry.synthetic
                self.practice_trials[entry.trial_id] = entry.trial
            else:
                self.practice[entry.case_id] = entry.source
        self.answers_editable: bool = manifest.answers_editable

    @classmethod
    def open(cls, folder: str | Path) -> Study:
        """Open and validate a study folder; StudyError when it is missing or corrupt."""
        folder = Path(folder)
        if not folder.is_dir():
            raise StudyError(f"{folder} is not a folder; give the folder made by "
                             "`mdiff-study create`.")
        manifest_path = folder / MANIFEST_NAME
        if not manifest_path.is_file():
            raise StudyError(f"{folder} is not a study (it has no {MANIFEST_NAME}); give the "
                             "folder made by `mdiff-study create`.")
        study = cls(folder, read_manifest(manifest_path))
        missing = [c for c in study.case_ids if not study.case_path(c).is_file()]
        if missing:
            raise StudyError(f"{study.case_path(missing[0])} is missing ({len(missing)} of "
                             f"{len(study.case_ids)} case files are); restore the study's "
                             f"{CASES_DIR} folder from a copy.")
        files = study.practice_file_ids
        missing = [c for c in files if not study.case_path(c).is_file()]
        if missing:
            raise StudyError(f"{study.case_path(missing[0])} is missing ({len(missing)} of "
                             f"{len(files)} practice case files are); restore the "
                             f"study's {PRACTICE_DIR} folder from a copy.")
        return study

    @property
    def case_suffix(self) -> str:
        """The case files' suffix: `.nii`, or `.nii.gz` in a version 1 study."""
        return CASE_SUFFIXES[self.manifest.version]

    @property
    def cases_dir(self) -> Path:
        """The folder holding the case files."""
        return self.folder / CASES_DIR

    @property
    def practice_dir(self) -> Path:
        """The folder holding the practice case files."""
        return self.folder / PRACTICE_DIR

    @property
    def practice_ids(self) -> list[str]:
        """The practice case ids, in the order they are shown (before every study case)."""
        return list(self.practice)

    @property
    def practice_file_ids(self) -> list[str]:
        """The ids of the practice files: the practice cases, or each practice trial's two
        members (P01a, P01b, ...) in a paired study."""
        if self.design == "2afc":
            return [member for trial_id in self.practice for member in practice_members(trial_id)]
        return self.practice_ids

    @property
    def trial_ids(self) -> list[str]:
        """A paired study's trial ids in listed order (none in a single-reading study)."""
        return list(self.trials)

    @property
    def rated_ids(self) -> list[str]:
        """What a reader answers, in listed order: the case ids, or a paired study's trial ids."""
        return self.trial_ids if self.design == "2afc" else self.case_ids

    def trial(self, trial_id: str) -> Trial:
        """A trial or practice trial of a paired study as layout A shows it; StudyError for an
        id the study does not list."""
        found = self.trials.get(trial_id) or self.practice_trials.get(trial_id)
        if found is None:
            raise StudyError(f"trial {trial_id!r} is not part of study {self.study_id} "
                             f"({self.folder}).")
        return found

    def is_practice(self, case_id: str) -> bool:
        """Whether `case_id` is one of the study's practice cases."""
        return case_id in self.practice

    @property
    def ratings_dir(self) -> Path:
        """The folder holding one ratings database per reader."""
        return self.folder / RATINGS_DIR

    @property
    def question_keys(self) -> tuple[str, ...]:
        """The keys of the study's questions, in display order."""
        return tuple(q.key for q in self.questions)

    def case_path(self, case_id: str) -> Path:
        """The file of one case or practice case (a practice trial's member in a paired study);
        StudyError for an id the study does not list."""
        if case_id in (self.practice_file_ids if self.design == "2afc" else self.practice):
            return self.practice_dir / f"{case_id}{self.case_suffix}"
        if case_id not in self.case_ids:
            raise StudyError(f"case {case_id!r} is not part of study {self.study_id} "
                             f"({self.folder}).")
        return self.cases_dir / f"{case_id}{self.case_suffix}"

    def log(self, message: str) -> None:
        """Append a timestamped line to STUDY/log.txt."""
        with open(self.folder / LOG_NAME, "a", encoding="utf-8") as log:
            log.write(f"{utc_now()} {message}\n")


def dataset_name(dataset: str | None, preset: str | None, title: str | None,
                 folder: Path) -> str:
    """A study's data set name: the one given, else the preset, else the title, else the folder."""
    return dataset or preset or title or folder.resolve().name


# ------------------------------------------------------------------------- checking study.json

_KIND_TEXT: dict[type, str] = {str: "text", int: "a whole number", bool: "true or false",
                               list: "a list", dict: "an object"}


def _is_kind(value: Any, kind: type) -> bool:
    """Whether a JSON value is of `kind` (bool is an int in Python; a version of `true` is not)."""
    return isinstance(value, kind) and (kind is bool or not isinstance(value, bool))


def _quoted(names: list[str]) -> str:
    """'a', or 'a' and 'b', or 'a', 'b' and 'c'."""
    quoted = [repr(name) for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _check_fields(data: Any, path: Path, bad: Callable[[str], StudyError]) -> None:
    """The format, a readable version, no missing or unknown field and every field's type."""
    if not isinstance(data, dict) or data.get("format") != STUDY_FORMAT:
        raise bad(f"is not an {STUDY_FORMAT} manifest")
    version = data.get("version")
    # Before the fields: a study from a newer mdiff may have fields this one does not know.
    if _is_kind(version, int) and version not in CASE_SUFFIXES:
        readable = " and ".join(str(v) for v in CASE_SUFFIXES)
        raise StudyError(f"{path} has format version {version}, but this mdiff reads "
                         f"versions {readable}; use the mdiff version that made the study.")
    missing = [name for name in _REQUIRED_FIELDS if name not in data]
    if missing:
        fields = "field" if len(missing) == 1 else "fields"
        raise bad(f"lacks the {fields} {_quoted(missing)}")
    known = {**_REQUIRED_FIELDS, **_OPTIONAL_FIELDS}
    unknown = [name for name in data if name not in known]
    if unknown:
        fields = "field" if len(unknown) == 1 else "fields"
        raise bad(f"has the unknown {fields} {_quoted(unknown)}, which no study of format "
                  f"version {version} has")
    for name, kind in known.items():
        if name in data and not _is_kind(data[name], kind):
            raise bad(f"has a field {name!r} that is not {_KIND_TEXT[kind]}")


def _check_values(data: dict, bad: Callable[[str], StudyError]) -> None:
    """The modality, the questions of the study's kind, the case ids, the shape and spacing."""
    if data["modality"] not in MODALITIES:
        raise bad(f"names the modality {data['modality']!r}, not CT or MR")
    questions = data["questions"]
    unknown = [k for k in questions if not isinstance(k, str) or k not in ALL_QUESTIONS]
    if unknown:
        raise bad(f"names the unknown question {unknown[0]!r}")
    design = data.get("design", "single")
    if design not in DESIGNS:
        raise bad(f"names the design {design!r}, not one of {', '.join(DESIGNS)}")
    if (design == "2afc") != ("trials" in data):
        raise bad("has a 'trials' field without the design '2afc', or the reverse")
    if design == "2afc" and data["turing"]:
        raise bad("is of design '2afc' but sets 'turing', which only single-reading studies "
                  "ask")
    expected = [q.key for q in study_questions(data["turing"], design)]
    if design == "2afc" and questions != expected:
        raise bad(f"lists the questions {questions} but a study of design '2afc' asks "
                  f"{expected}")
    if questions != expected:
        turing = "with" if data["turing"] else "without"
        raise bad(f"lists the questions {questions} but a study {turing} the "
                  f"{len(TURING_QUESTIONS)} Turing questions asks {expected}")
    cases = data["cases"]
    if not cases:
        raise bad("lists no cases")
    if not all(isinstance(c, str) and CASE_ID_PATTERN.match(c) for c in cases):
        raise bad("lists a case id that is not a hexadecimal name")
    if len(set(cases)) != len(cases):
        raise bad("lists a case twice")
    if len(data["shape"]) != 3 or len(data["spacing"]) != 3:
        raise bad("has a shape or spacing without three values")
    if not all(_is_kind(n, int) and n > 0 for n in data["shape"]):
        raise bad("has a shape that is not three positive whole numbers")
    if not all((_is_kind(s, int) or _is_kind(s, float)) and s > 0 for s in data["spacing"]):
        raise bad("has a spacing that is not three positive numbers")


def _check_practice(practice: list, bad: Callable[[str], StudyError]) -> None:
    """Raise `bad(problem)` unless `practice` lists practice ids with their truth (a practice id
    cannot be a study case's: PRACTICE_ID_PATTERN and CASE_ID_PATTERN are apart)."""
    seen: set[str] = set()
    for entry in practice:
        if not isinstance(entry, dict) or set(entry) != {"case_id", "source"}:
            raise bad("lists a practice case that is not {\"case_id\": ..., \"source\": ...}")
        case_id = entry["case_id"]
        if not isinstance(case_id, str) or not PRACTICE_ID_PATTERN.match(case_id):
            raise bad(f"lists the practice case {case_id!r}, which is not a practice id "
                      "(P01, P02, ...)")
        if case_id in seen:
            raise bad(f"lists the practice case {case_id} twice")
        if entry["source"] not in SOURCES:
            raise bad(f"gives the practice case {case_id} the source {entry['source']!r}, not "
                      "real or synthetic")
        seen.add(case_id)
