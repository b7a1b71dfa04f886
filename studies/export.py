"""Export every reader's ratings of a study to one CSV (the input of `mdiff-eval`), or to the
input table of iMRMC (`studies.imrmc`).

One row per reader and case, readers in name order and cases in that reader's rating order.
Columns: study_id, dataset, reader, case_id, the Table 1 answers (letters A-D), then
real_or_synthetic (real|synthetic) and confidence (1-4) when the study asks them, then
not_assessable (1 when the reader flagged "image cannot be assessed", else 0) and comment (the
reader's free text), seconds_on_case and rated_at (ISO 8601, the latest answer); with
`include_practice` also practice (1 for a practice case, 0 for a study case) and after_truth (1
for a practice case with an answer given after its truth was shown to the reader, else 0); with
the key also source and origin.
Without `include_partial` only done cases are written (every question answered, or flagged); with
it, every case with an answer, a comment or a flag (unanswered cells empty). Practice cases are
written only with `include_practice`, before the reader's study cases: they are never ratings.
Every reader database is checked as it is read (`studies.ratings.read_reader_ratings`): one that
holds impossible values is refused, and so is one whose history does not explain its answers
(edited outside mdiff), naming the cases, unless `accept_edits`.
A paired (2AFC) study is exported one row per reader and trial (`studies.trial_export`); it has no
iMRMC table (iMRMC analyses one score per reader and case, and a trial's answer scores a pair).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from diffusion_core.outputs import check_output, write_text_atomically
from studies.imrmc import imrmc_table
from studies.key import KeyEntry, is_inside, read_study_key
from studies.questions import TABLE1_QUESTIONS, TURING_QUESTIONS, Question
from studies.ratings import ReaderRatings, read_study_ratings, refuse_edited
from studies.study import Study, StudyError
from studies.trial_export import trial_columns, trial_rows

ID_COLUMNS: tuple[str, ...] = ("study_id", "dataset", "reader", "case_id")
TABLE1_COLUMNS: tuple[str, ...] = tuple(q.key for q in TABLE1_QUESTIONS)
TURING_ANSWER_COLUMNS: tuple[str, ...] = tuple(q.key for q in TURING_QUESTIONS)
NOTE_COLUMNS: tuple[str, ...] = ("not_assessable", "comment")
TIME_COLUMNS: tuple[str, ...] = ("seconds_on_case", "rated_at")
PRACTICE_COLUMNS: tuple[str, ...] = ("practice", "after_truth")
UNBLINDED_COLUMNS: tuple[str, ...] = ("source", "origin")
# Every column an export can have, in the order it writes them; a study without the Turing
# questions leaves those out, an export without practice cases the practice columns, an export
# without the key the unblinded ones.
COLUMNS: tuple[str, ...] = (ID_COLUMNS + TABLE1_COLUMNS + TURING_ANSWER_COLUMNS + NOTE_COLUMNS
                            + TIME_COLUMNS + PRACTICE_COLUMNS + UNBLINDED_COLUMNS)
# Answers written as their option's text instead of the stored letter.
WORDED_QUESTIONS: tuple[str, ...] = ("real_or_synthetic",)
# How the yes/no columns (not_assessable, practice, after_truth) are written.
FLAG_CELLS: dict[bool, str] = {False: "0", True: "1"}
FORMATS: tuple[str, ...] = ("csv", "imrmc")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    rows: int  # rating rows (reader x case)
    # Ratings flagged "not assessable": written and marked in a CSV, left out of an iMRMC table.
    not_assessable: int
    # Reader-case pairs whose history disagrees with their answers, exported as they stand
    # (only with `accept_edits`; else the export is refused).
    edited: int = 0


def export_columns(study: Study, with_key: bool, with_practice: bool = False) -> list[str]:
    """The CSV header for a study."""
    return [*ID_COLUMNS, *study.question_keys, *NOTE_COLUMNS, *TIME_COLUMNS,
            *(PRACTICE_COLUMNS if with_practice else ()),
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
                key: dict[str, KeyEntry] | None = None,
                include_practice: bool = False) -> list[dict[str, str]]:
    """The CSV rows, as column -> text."""
    rows = []
    for ratings in readers:
        shown = (study.practice_ids if include_practice else []) + ratings.case_order
        for case_id in shown:
            given, note = ratings.given(case_id), ratings.note(case_id)
            if not (given or note.comment or note.not_assessable):
                continue
            if not (include_partial or ratings.is_done(case_id, study.question_keys)):
                continue
            row = {"study_id": study.study_id, "dataset": study.dataset,
                   "reader": ratings.reader, "case_id": case_id}
            for question in study.questions:
                row[question.key] = answer_cell(question, given.get(question.key, ""))
            row["not_assessable"] = FLAG_CELLS[note.not_assessable]
            row["comment"] = note.comment
            row["seconds_on_case"] = f"{ratings.seconds_on_case(case_id):.1f}"
            row["rated_at"] = ratings.answered_at.get(case_id, "")
            if include_practice:
                row["practice"] = FLAG_CELLS[study.is_practice(case_id)]
                row["after_truth"] = FLAG_CELLS[ratings.answered_after_truth(case_id)]
            if key is not None:
                row["source"] = key[case_id].source
                row["origin"] = key[case_id].origin
            rows.append(row)
    return rows


def export_study(folder: str | Path, out: str | Path, *, key_path: str | Path | None = None,
                 include_partial: bool = False, include_practice: bool = False,
                 export_format: str = "csv", score: str | None = None,
                 force: bool = False, accept_edits: bool = False) -> ExportSummary:
    """Write the export (atomically) and say what it holds; `score` (iMRMC only): realism or
    turing. `out` follows `diffusion_core.outputs.check_output`: never the key, a file of a study
    or an existing study key; an existing file only with `force` (OutputPathError).
    `accept_edits`: export databases edited outside mdiff as they stand (EditedRatingsError
    without it)."""
    if export_format not in FORMATS:
        raise StudyError(f"The export format {export_format!r} is not one of "
                         f"{', '.join(FORMATS)}; give --format csv or --format imrmc.")
    study = Study.open(folder)
    out = Path(out)
    key = None
    if key_path is not None and is_inside(out, study.folder):
        raise StudyError(f"An export with the key would put the answer key inside the study "
                         f"({out}); write it outside {study.folder}.")
    check_output(out, inputs=[("STUDY", study.folder), ("--key", key_path)], force=force)
    if key_path is not None:
        key = read_study_key(study, key_path)
    readers = read_study_ratings(study)
    if not accept_edits:
        refuse_edited(readers, "restore from a backup, or give --accept-edits to export the "
                               "answers as they stand")
    edited = sum(len(ratings.history_disagrees) for ratings in readers)
    if export_format == "imrmc" and study.design == "2afc":
        raise StudyError("A paired (2AFC) study has no iMRMC table, since iMRMC needs one score "
                         "per reader and case and a trial's answer scores a pair; export it as "
                         "CSV with --key and analyse it with `mdiff-eval afc`.")
    if export_format == "imrmc":
        if key is None:
            raise StudyError("The iMRMC table needs each case's truth; give the study's key with "
                             "--key PATH.")
        if include_partial or include_practice:
            raise StudyError("The iMRMC table holds done study cases only; leave out "
                             "--include-partial and --include-practice.")
        table = imrmc_table(study, readers, key, score)
        text, summary = table.text, ExportSummary(table.n_scores, table.n_not_assessable,
                                                  edited)
    else:
        if score is not None:
            raise StudyError("--score chooses the iMRMC table's score; give it with --format "
                             "imrmc only.")
        if study.design == "2afc":
            found = trial_rows(study, readers, include_partial, key, include_practice)
            columns = trial_columns(key is not None, include_practice)
        else:
            found = export_rows(study, readers, include_partial, key, include_practice)
            columns = export_columns(study, key is not None, include_practice)
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(found)
        flagged = sum(row["not_assessable"] == FLAG_CELLS[True] for row in found)
        text, summary = buffer.getvalue(), ExportSummary(len(found), flagged, edited)
    _write_atomically(out, text)
    return summary


def _write_atomically(out: Path, text: str) -> None:
    """Write `text` to a temporary file beside `out`, then rename it into place."""
    try:
        write_text_atomically(out, text)
    except OSError as err:
        raise StudyError(f"Cannot write {out} ({err.strerror}); choose a writable --out "
                         "path.") from None
