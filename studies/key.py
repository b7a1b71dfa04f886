"""The study key: which case is real and which synthetic, kept outside the study folder.

A CSV with the columns `case_id, source, origin, model, seed`: `source` is real|synthetic,
`origin` the input file, `model` and `seed` what is known of a synthetic case's provenance. A study
with a practice block lists its practice cases (P01, ...) too, so the audit can compare their
origins with the study cases'.

The key of a paired (2AFC) study has one more column, `trials`: the trials that show the case
and on which side of layout A, `TRIAL_ID:left` or `TRIAL_ID:right`, space-separated (several
only with `--reuse`); a practice trial's members (P01a, P01b) name their practice trial. So the
key alone says each trial's pair and which member is synthetic.

Every origin is a file that outlives the create: the volumes sampled by `create --model` are kept
in a samples folder beside the key (`samples_path`: `STUDY.samples/` beside `STUDY.key.csv`),
never inside the study, so a synthetic case can be looked at or its sampling rerun later.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from studies.study import SOURCES, Study, StudyError

KEY_COLUMNS = ("case_id", "source", "origin", "model", "seed")
TRIALS_COLUMN = "trials"  # a paired study's key only
PART_OF_SCAN = re.compile(r" \[part \d+ of \d+\]$")  # an origin's suffix for one part of a scan


@dataclass(frozen=True)
class KeyEntry:
    """One case of the key."""

    case_id: str
    source: str  # "real" | "synthetic"
    origin: str
    model: str = ""
    seed: str = ""
    trials: str = ""  # a paired study's: "TRIAL_ID:left TRIAL_ID:right ..."

    @property
    def origin_path(self) -> Path:
        """The input file (or DICOM series folder) the origin names, without the part of a
        split scan (`... [part 2 of 3]`)."""
        return Path(PART_OF_SCAN.sub("", self.origin))


def default_key_path(study_folder: str | Path) -> Path:
    """`STUDY.key.csv` beside the study folder."""
    return Path(str(Path(study_folder)) + ".key.csv")


def samples_path(key_path: str | Path) -> Path:
    """The samples folder kept beside a key: `STUDY.samples` for `STUDY.key.csv` (`K.samples`
    for `K.csv`, `K.samples` for any other name `K`)."""
    key_path = Path(key_path)
    stem = key_path.name
    for suffix in (".key.csv", ".csv"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[:-len(suffix)]
            break
    return key_path.with_name(f"{stem}.samples")


def is_inside(path: Path, folder: Path) -> bool:
    """Whether `path` lies in `folder` or below it (both resolved, the path need not exist)."""
    return path.resolve().is_relative_to(folder.resolve())


def write_key(path: Path, entries: list[KeyEntry], paired: bool = False) -> None:
    """Write the key CSV (sorted by case id, so its row order tells nothing) atomically; a
    paired study's with the `trials` column."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(KEY_COLUMNS + ((TRIALS_COLUMN,) if paired else ()))
        for entry in sorted(entries, key=lambda e: e.case_id):
            row = [entry.case_id, entry.source, entry.origin, entry.model, entry.seed]
            writer.writerow(row + ([entry.trials] if paired else []))
    os.replace(tmp, path)


def read_key(path: str | Path) -> dict[str, KeyEntry]:
    """Case id -> entry; StudyError when the file is missing or not a study key."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = tuple(reader.fieldnames or ())
            rows = list(reader)
    except FileNotFoundError:
        raise StudyError(f"The key {path} does not exist; give the key CSV written by "
                         "`mdiff-study create`.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise StudyError(f"The key {path} cannot be read ({err}); give the key CSV written by "
                         "`mdiff-study create`.") from None
    if columns[:len(KEY_COLUMNS)] != KEY_COLUMNS:
        raise StudyError(f"The key {path} does not have the columns {', '.join(KEY_COLUMNS)}; "
                         "give the key CSV written by `mdiff-study create`.")
    entries: dict[str, KeyEntry] = {}
    for line, row in enumerate(rows, start=2):
        if row["source"] not in SOURCES or not row["case_id"] or row["case_id"] in entries:
            raise StudyError(f"The key {path} has a bad or repeated row at line {line}; restore "
                             "it from the copy made with the study.")
        entries[row["case_id"]] = KeyEntry(**{c: row[c] or "" for c in KEY_COLUMNS},
                                           trials=row.get(TRIALS_COLUMN) or "")
    return entries


def read_study_key(study: Study, key_path: str | Path) -> dict[str, KeyEntry]:
    """The key of `study`; StudyError unless it lists exactly its cases and practice cases."""
    key = read_key(key_path)
    check_key_matches(key, study.case_ids + study.practice_file_ids, Path(key_path),
                      study.folder)
    return key


def check_key_matches(key: dict[str, KeyEntry], case_ids: list[str], key_path: Path,
                      study_folder: Path) -> None:
    """StudyError unless the key lists exactly the given case ids."""
    missing = [c for c in case_ids if c not in key]
    extra = [c for c in key if c not in set(case_ids)]
    if missing or extra:
        example = missing[0] if missing else extra[0]
        raise StudyError(f"The key {key_path} does not belong to the study {study_folder} "
                         f"(case {example} is in only one of them); give that study's key.")
