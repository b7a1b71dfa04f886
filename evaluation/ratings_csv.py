"""Load and validate the ratings CSVs written by `mdiff-study export` into one pandas DataFrame.

The export has one row per reader and case with the columns `study_id, dataset, reader, case_id`,
the three Table 1 answers (letters A-D), then `real_or_synthetic` (real|synthetic) and `confidence`
(1-4) when the study asks the Turing questions, `not_assessable` (0|1) and `comment`,
`seconds_on_case, rated_at`, `practice` (0|1) when the export includes the practice cases, and
with the key also `source` (real|synthetic) and `origin`. An empty answer cell means the reader has
not answered yet. Exports made before `not_assessable` existed are read as if nothing was flagged.

The loaded frame keeps the identifying columns as strings, turns the Table 1 letters into ordinal
scores (A=1 ... D=4, NaN when unanswered) and `confidence` into floats, `not_assessable` and
`practice` into booleans (False when the column is absent), and adds `file` and `line` (the CSV
line, header = 1) so later messages can point at the source of a value. `split_left_out` takes the
flagged and practice rows out before any statistic.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.errors import EvalError
from evaluation.results import JsonResult
from studies.export import FLAG_CELLS, ID_COLUMNS, TABLE1_COLUMNS, answer_cells
from studies.key import SOURCES
from studies.questions import ALL_QUESTIONS

# The Table 1 questions, in the paper's order, with the wording used in reports.
CATEGORIES: tuple[str, ...] = TABLE1_COLUMNS
CATEGORY_TITLES: dict[str, str] = {
    "realistic_appearance": "realistic appearance",
    "slice_consistency": "slice consistency",
    "anatomical_correctness": "anatomical correctness",
}
LETTERS: tuple[str, ...] = answer_cells(ALL_QUESTIONS[CATEGORIES[0]])  # A-D for every question
LETTER_SCORES: dict[str, int] = {letter: i + 1 for i, letter in enumerate(LETTERS)}
SCORES: tuple[int, ...] = tuple(LETTER_SCORES.values())

REQUIRED_COLUMNS: tuple[str, ...] = ID_COLUMNS + CATEGORIES
CALLS: tuple[str, ...] = answer_cells(ALL_QUESTIONS["real_or_synthetic"])
CONFIDENCES: tuple[str, ...] = answer_cells(ALL_QUESTIONS["confidence"])
# Rows no statistic uses: ratings flagged "image cannot be assessed", and practice cases.
LEFT_OUT_COLUMNS: tuple[str, ...] = ("not_assessable", "practice")


def reader_label(reader: str) -> str:
    """How reports name a reader: 'Reader A' for `A`, a name that already says 'reader' as is."""
    return reader if reader.lower().startswith("reader") else f"Reader {reader}"


class RatingsCsvError(EvalError, ValueError):
    """An export CSV that cannot be used; the message is one sentence naming the file."""


def load_ratings(paths: Sequence[str | os.PathLike], *,
                 require: Iterable[str] = ()) -> pd.DataFrame:
    """Read and validate export CSVs into one frame; `require`: extra columns every file needs."""
    if not paths:
        raise RatingsCsvError("no ratings CSV was given; pass at least one file written by "
                              "`mdiff-study export`.")
    required = tuple(REQUIRED_COLUMNS) + tuple(c for c in require if c not in REQUIRED_COLUMNS)
    frames = [_read_one(Path(p), required) for p in paths]
    ratings = pd.concat(frames, ignore_index=True)
    _check_duplicates(ratings)
    _check_key_consistency(ratings)
    return ratings


def _read_one(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """One export CSV, validated, with scores in place of letters."""
    raw, lines = _read_text_table(path)
    missing = [c for c in required if c not in raw.columns]
    if missing:
        names = ", ".join(f"`{c}`" for c in missing)
        hint = (" (an unblinded export made with the study's key is needed)"
                if {"source", "real_or_synthetic"} & set(missing) else "")
        raise RatingsCsvError(
            f"{path} lacks the column{'s' if len(missing) > 1 else ''} {names}{hint}; "
            "give a CSV written by `mdiff-study export`."
        )
    if raw.empty:
        raise RatingsCsvError(f"{path} has a header but no ratings; export the study again "
                              "after readers have rated cases.")

    frame = pd.DataFrame({"file": str(path), "line": lines})
    for column in ID_COLUMNS:
        values = raw[column].str.strip()
        _reject(path, lines, values == "", column, values, "is empty")
        frame[column] = values.to_numpy(dtype=object)
    for column in CATEGORIES:
        frame[column] = _parse_choice(path, lines, raw[column], column, LETTERS, LETTER_SCORES)
    if "real_or_synthetic" in raw.columns:
        frame["real_or_synthetic"] = _parse_choice(
            path, lines, raw["real_or_synthetic"], "real_or_synthetic", CALLS, None)
    if "confidence" in raw.columns:
        frame["confidence"] = _parse_choice(path, lines, raw["confidence"], "confidence",
                                            CONFIDENCES, {c: int(c) for c in CONFIDENCES})
    for column in LEFT_OUT_COLUMNS:
        if column not in raw.columns:
            frame[column] = False
            continue
        values = raw[column].str.strip()
        _reject(path, lines, ~values.isin(tuple(FLAG_CELLS.values())), column, values,
                f"is not {FLAG_CELLS[False]} or {FLAG_CELLS[True]}")
        frame[column] = (values == FLAG_CELLS[True]).to_numpy(dtype=bool)
    if "source" in raw.columns:
        source = raw["source"].str.strip()
        # The key names every case, so an empty source is a broken export, not an open answer.
        _reject(path, lines, ~source.isin(SOURCES), "source", source,
                "is not `real` or `synthetic`")
        frame["source"] = source.to_numpy(dtype=object)
    return frame


@dataclass(frozen=True)
class LeftOut(JsonResult):
    """How many rows no statistic uses: practice rows, and other rows flagged not assessable."""

    not_assessable: int
    practice: int

    def text(self) -> str:
        """'2 ratings flagged not assessable left out' (and the practice rows, if any)."""
        text = f"{self.not_assessable} ratings flagged not assessable left out"
        if self.practice:
            text += f", and {self.practice} practice ratings"
        return text


def split_left_out(rows: pd.DataFrame) -> tuple[pd.DataFrame, LeftOut]:
    """The rows statistics use, and how many were left out: `practice` rows, and other rows
    flagged `not_assessable`."""
    practice = rows["practice"].to_numpy(dtype=bool)
    flagged = rows["not_assessable"].to_numpy(dtype=bool) & ~practice
    left_out = LeftOut(not_assessable=int(flagged.sum()), practice=int(practice.sum()))
    return rows[~(practice | flagged)], left_out


def _read_text_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The CSV cells as strings and the file line of each row; unreadable or empty files raise."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise RatingsCsvError(f"{path} is empty; give a CSV written by "
                                      "`mdiff-study export`.")
            header = [name.strip() for name in header]
            repeated = sorted({name for name in header if header.count(name) > 1})
            if repeated:
                raise RatingsCsvError(f"{path} has the column `{repeated[0]}` more than once; "
                                      "give a CSV written by `mdiff-study export`.")
            rows, lines = [], []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise RatingsCsvError(
                        f"{path} line {reader.line_num} has {len(row)} fields but the header "
                        f"has {len(header)}; fix the export or re-export the study.")
                rows.append(row)
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise RatingsCsvError(f"{path} does not exist; check the path of the ratings "
                              "CSV.") from None
    except IsADirectoryError:
        raise RatingsCsvError(f"{path} is a folder, not a ratings CSV; give the exported "
                              "CSV file.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise RatingsCsvError(f"{path} cannot be read as a CSV ({reason}); give a CSV written "
                              "by `mdiff-study export`.") from None
    return pd.DataFrame(rows, columns=header, dtype=object), np.array(lines, dtype=int)


def _parse_choice(path: Path, lines: np.ndarray, column: pd.Series, name: str,
                  allowed: tuple[str, ...], scores: dict[str, int] | None) -> np.ndarray:
    """Validate answers of one question (empty = unanswered) and map them to scores if given."""
    values = column.str.strip()
    _reject(path, lines, (values != "") & ~values.isin(allowed), name, values,
            f"is not one of {', '.join(allowed)}")
    if scores is None:
        return np.array([v if v else None for v in values], dtype=object)
    return np.array([float(scores[v]) if v else np.nan for v in values], dtype=float)


def _reject(path: Path, lines: np.ndarray, bad: pd.Series, column: str, values: pd.Series,
            problem: str) -> None:
    """Raise for the first row flagged in `bad`, naming its CSV line, column and value."""
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise RatingsCsvError(
            f"{path} line {lines[row]}, column `{column}`: the value {values.iloc[row]!r} "
            f"{problem}; fix the export or re-export the study."
        )


def _check_duplicates(ratings: pd.DataFrame) -> None:
    """A reader rates each case of a study once; the same case twice means a file given twice."""
    keys = ["study_id", "reader", "case_id"]
    dup = ratings.duplicated(keys, keep=False)
    if dup.any():
        rows = ratings[dup]
        first = rows.iloc[0]
        same = rows[(rows[keys] == first[keys]).all(axis=1)]
        one, two = same.iloc[0], same.iloc[1]
        where = (f"{one.file} is given twice" if one.file == two.file and one.line == two.line
                 else f"{one.file} line {one.line} and {two.file} line {two.line}")
        raise RatingsCsvError(
            f"reader {first.reader!r} rated case {first.case_id!r} of study {first.study_id!r} "
            f"twice ({where}); give each export once."
        )


def _check_key_consistency(ratings: pd.DataFrame) -> None:
    """All exports of one dataset must be with the key or all without, so cases are chosen alike."""
    if "source" not in ratings.columns:
        return
    keyed = ratings[ratings["source"].notna()]
    sources = keyed.groupby(["study_id", "case_id"])["source"].nunique()
    if (sources > 1).any():
        study_id, case_id = sources[sources > 1].index[0]
        raise RatingsCsvError(
            f"case {case_id!r} of study {study_id!r} is `real` in one export and `synthetic` in "
            "another; export every reader with the same key."
        )
    for dataset, rows in ratings.groupby("dataset", sort=True):
        has_key = rows["source"].notna()
        if has_key.any() and not has_key.all():
            without = sorted(set(rows.loc[~has_key, "file"]))
            raise RatingsCsvError(
                f"dataset {dataset!r} mixes exports with the key and without it ({without[0]} "
                "has no `source` column); export every study of a dataset the same way."
            )
