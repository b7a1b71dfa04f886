"""Export every reader's ratings of a study to one CSV (the input of `mdiff-eval`).

One row per reader and case, readers in name order and cases in that reader's rating order.
Columns: study_id, dataset, reader, case_id, the Table 1 answers (letters A-D), then
real_or_synthetic (real|synthetic) and confidence (1-4) when the study asks them, then
seconds_on_case and rated_at (ISO 8601, the latest answer); with the key also source and origin.
Without `include_partial` only cases with every question answered are written; with it, every
case with at least one answer (unanswered cells empty).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from studies.key import is_inside, read_study_key
from studies.questions import TABLE1_QUESTIONS, TURING_QUESTIONS, Question
from studies.ratings import ReaderRatings, read_study_ratings
from studies.study import Study, StudyError

ID_COLUMNS: tuple[str, ...] = ("study_id", "dataset", "reader", "case_id")
TABLE1_COLUMNS: tuple[str, ...] = tuple(q.key for q in TABLE1_QUESTIONS)
TURING_ANSWER_COLUMNS: tuple[str, ...] = tuple(q.key for q in TURING_QUESTIONS)
TIME_COLUMNS: tuple[str, ...] = ("seconds_on_case", "rated_at")
UNBLINDED_COLUMNS: tuple[str, ...] = ("source", "origin")
# Every column an export can have, in the order it writes them; a study without the Turing
# questions leaves those out, an export without the key the unblinded ones.
COLUMNS: tuple[str, ...] = (ID_COLUMNS + TABLE1_COLUMNS + TURING_ANSWER_COLUMNS + TIME_COLUMNS
                            + UNBLINDED_COLUMNS)
# Answers written as their option's text instead of the stored letter.
WORDED_QUESTIONS: tuple[str, ...] = ("real_or_synthetic",)


def export_columns(study: Study, with_key: bool) -> list[str]:
    """The CSV header for a study."""
    return [*ID_COLUMNS, *study.question_keys, *TIME_COLUMNS,
            *(UNBLINDED_COLUMNS if with_key else ())]


def answer_cell(question: Question, letter: str) -> str:
    """The export's cell for a stored answer ('' when unanswered)."""
    if letter and question.key in WORDED_QUESTIONS:
        return question.option(letter).text
    return letter


def answer_cells(question: Question) -> tuple[str, ...]:
    """Every value the export can write for an answer to `question`, in option order."""
    return tuple(answer_cell(question, letter) for letter in question.letters)


def export_rows(study: Study, readers: list[ReaderRatings], include_partial: bool,
                key: dict | None = None) -> list[dict[str, str]]:
    """The CSV rows, as column -> text."""
    rows = []
    for ratings in readers:
        for case_id in ratings.case_order:
            given = ratings.answers.get(case_id, {})
            complete = ratings.is_complete(case_id, study.question_keys)
            if not given or not (complete or include_partial):
                continue
            row = {"study_id": study.study_id, "dataset": study.dataset,
                   "reader": ratings.reader, "case_id": case_id}
            for question in study.questions:
                row[question.key] = answer_cell(question, given.get(question.key, ""))
            row["seconds_on_case"] = f"{ratings.seconds_on_case(case_id):.1f}"
            row["rated_at"] = ratings.answered_at.get(case_id, "")
            if key is not None:
                row["source"] = key[case_id].source
                row["origin"] = key[case_id].origin
            rows.append(row)
    return rows


def export_study(folder: str | Path, out: str | Path, *, key_path: str | Path | None = None,
                 include_partial: bool = False) -> int:
    """Write the export CSV (atomically) and return the number of rows."""
    study = Study.open(folder)
    out = Path(out)
    key = None
    if key_path is not None:
        if is_inside(out, study.folder):
            raise StudyError(f"An export with the key would put the answer key inside the study "
                             f"({out}); write it outside {study.folder}.")
        key = read_study_key(study, key_path)
    rows = export_rows(study, read_study_ratings(study), include_partial, key)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=export_columns(study, key is not None))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise StudyError(f"Cannot write {out} ({err.strerror}); choose a writable --out "
                         "path.") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(rows)
