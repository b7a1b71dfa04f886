"""The export of a paired (2AFC) study: one row per reader and trial (the input of
`mdiff-eval afc`).

Readers in name order, trials in that reader's order. Columns: study_id, dataset, reader,
trial_id, left_case_id and right_case_id (the cases as this reader saw them: layout A or its
mirror), chosen_side (left|right: the reader's answer to "Which one is synthetic?"),
confidence (1-4), not_assessable, comment, seconds_on_trial, rated_at; with `include_practice`
also practice and after_truth (as the single-reading export); with the key also synthetic_side
(left|right: where the synthetic case was, as this reader saw it), correct (1 when the chosen
side is the synthetic side, 0 when not, empty without a choice), left_origin and right_origin.
Which rows are written follows the single-reading export (done trials only, unless
`include_partial`; practice trials only with `include_practice`, before the study trials).
"""

from __future__ import annotations

from studies.key import KeyEntry
from studies.ratings import ReaderRatings
from studies.study import Study
from studies.trials import LETTER_SIDES, Trial, mirror_side

ID_COLUMNS: tuple[str, ...] = ("study_id", "dataset", "reader", "trial_id", "left_case_id",
                               "right_case_id")
ANSWER_COLUMNS: tuple[str, ...] = ("chosen_side", "confidence")
NOTE_COLUMNS: tuple[str, ...] = ("not_assessable", "comment")
TIME_COLUMNS: tuple[str, ...] = ("seconds_on_trial", "rated_at")
PRACTICE_COLUMNS: tuple[str, ...] = ("practice", "after_truth")
UNBLINDED_COLUMNS: tuple[str, ...] = ("synthetic_side", "correct", "left_origin",
                                      "right_origin")
# Every column, in the order the export writes them.
COLUMNS: tuple[str, ...] = (ID_COLUMNS + ANSWER_COLUMNS + NOTE_COLUMNS + TIME_COLUMNS
                            + PRACTICE_COLUMNS + UNBLINDED_COLUMNS)
FLAG_CELLS: dict[bool, str] = {False: "0", True: "1"}


def trial_columns(with_key: bool, with_practice: bool = False) -> list[str]:
    """The CSV header of a paired study's export."""
    return [*ID_COLUMNS, *ANSWER_COLUMNS, *NOTE_COLUMNS, *TIME_COLUMNS,
            *(PRACTICE_COLUMNS if with_practice else ()),
            *(UNBLINDED_COLUMNS if with_key else ())]


def shown_trial(study: Study, ratings: ReaderRatings, trial_id: str) -> Trial:
    """A trial with its members on the sides this reader saw them."""
    trial = study.trial(trial_id)
    return trial.mirrored() if ratings.mirrored else trial


def truth_side(study: Study, trial: Trial, practice: bool,
               key: dict[str, KeyEntry]) -> str:
    """Where a shown trial's synthetic case was: from the key (a practice trial's from
    study.json, mirrored as shown)."""
    if practice:
        layout_a = study.trial(trial.trial_id)
        return mirror_side(study.practice[trial.trial_id], layout_a.left != trial.left)
    return "left" if key[trial.left].source == "synthetic" else "right"


def trial_rows(study: Study, readers: list[ReaderRatings], include_partial: bool,
               key: dict[str, KeyEntry] | None = None,
               include_practice: bool = False) -> list[dict[str, str]]:
    """The CSV rows of a paired study, as column -> text."""
    rows = []
    keys = study.question_keys
    for ratings in readers:
        shown = (study.practice_ids if include_practice else []) + ratings.case_order
        for trial_id in shown:
            given, note = ratings.given(trial_id), ratings.note(trial_id)
            if not (given or note.comment or note.not_assessable):
                continue
            if not (include_partial or ratings.is_done(trial_id, keys)):
                continue
            trial = shown_trial(study, ratings, trial_id)
            chosen = LETTER_SIDES.get(given.get("synthetic_side", ""), "")
            row = {"study_id": study.study_id, "dataset": study.dataset,
                   "reader": ratings.reader, "trial_id": trial_id, "left_case_id": trial.left,
                   "right_case_id": trial.right, "chosen_side": chosen,
                   "confidence": given.get("confidence", ""),
                   "not_assessable": FLAG_CELLS[note.not_assessable], "comment": note.comment,
                   "seconds_on_trial": f"{ratings.seconds_on_case(trial_id):.1f}",
                   "rated_at": ratings.answered_at.get(trial_id, "")}
            practice = study.is_practice(trial_id)
            if include_practice:
                row["practice"] = FLAG_CELLS[practice]
                row["after_truth"] = FLAG_CELLS[ratings.answered_after_truth(trial_id)]
            if key is not None:
                side = truth_side(study, trial, practice, key)
                row["synthetic_side"] = side
                row["correct"] = FLAG_CELLS[chosen == side] if chosen else ""
                row["left_origin"] = key[trial.left].origin
                row["right_origin"] = key[trial.right].origin
            rows.append(row)
    return rows
