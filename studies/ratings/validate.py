"""The checks every read makes of a ratings database: possible values, and a history that
explains the current state.

Every answer is an option of its question, times are finite numbers of seconds >= 0 and time
stamps ISO 8601, flags 0 or 1, case ids the reader's (`ValueChecks`; a failure is an
`InvalidRatingsError`). The history must explain the current answers, comments, flags and
after-truth marks: the cases where it does not (edited outside mdiff) are what
`history_disagrees` lists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from studies.questions import ALL_QUESTIONS, Question
from studies.ratings.errors import InvalidRatingsError, RatingStoreError
from studies.ratings.records import COMMENT, MAX_COMMENT_LENGTH, NOT_ASSESSABLE, CaseNote
from studies.study import PRACTICE_ID_PATTERN, Study

# case -> question -> (value, answered_at, seconds_on_case), as a table or the history holds it
Answers = dict[str, dict[str, tuple[str, str, float]]]


class ValueChecks:
    """The checks of the values of one database; each failure is an InvalidRatingsError."""

    def __init__(self, path: Path, order: list[str], study: Study | None) -> None:
        self.path = path
        self.order = set(order)
        self.study = study
        self.questions: Mapping[str, Question] = ALL_QUESTIONS if study is None else \
            {q.key: q for q in study.questions}

    def fail(self, what: str) -> InvalidRatingsError:
        """The error for an impossible value (`what`: "the answer 'Z' to ... for case ...")."""
        return InvalidRatingsError(f"The ratings database {self.path} holds {what}: a value "
                                   "mdiff never writes, so it was edited outside mdiff; restore "
                                   "it from a backup.")

    def case(self, case_id: Any, where: str, practice: bool | None) -> str:
        """A case id of this reader: a study case of the order (practice False), a practice
        case (True) or either (None)."""
        ours = isinstance(case_id, str) and case_id in self.order
        practice_id = isinstance(case_id, str) and (
            self.study.is_practice(case_id) if self.study is not None
            else bool(PRACTICE_ID_PATTERN.match(case_id)))
        if not (practice_id if practice else ours if practice is False else ours or practice_id):
            kind = {True: "a practice case of the study", False: "a case of its case order",
                    None: "a case of its case order or a practice case"}[practice]
            raise self.fail(f"the case id {case_id!r} in {where}, not {kind}")
        return case_id

    def answer(self, case_id: str, question: Any, value: Any, where: str) -> None:
        """An option letter of one of the study's questions."""
        asked = self.questions.get(question) if isinstance(question, str) else None
        if asked is None:
            raise self.fail(f"an answer to {question!r} for case {case_id} in {where}, a "
                            "question the study does not ask")
        if not isinstance(value, str) or value not in asked.letters:
            raise self.fail(f"the answer {value!r} to {question} for case {case_id} in {where}, "
                            f"not one of {', '.join(asked.letters)}")

    def seconds(self, value: Any, case_id: str, where: str) -> float:
        """A finite number of seconds >= 0 (SQLite keeps text in a REAL column as text)."""
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise self.fail(f"the time {value!r} for case {case_id} in {where}, not a finite "
                            "number of seconds >= 0")
        return float(value)

    def stamp(self, value: Any, case_id: str, where: str) -> str:
        """An ISO 8601 time stamp."""
        try:
            datetime.fromisoformat(value)
        except (TypeError, ValueError):
            raise self.fail(f"the time stamp {value!r} for case {case_id} in {where}, not an "
                            "ISO 8601 time") from None
        return value

    def flag(self, value: Any, case_id: str, where: str) -> bool:
        """0 or 1."""
        if type(value) is not int or value not in (0, 1):
            raise self.fail(f"the value {value!r} for case {case_id} in {where}, not 0 or 1")
        return bool(value)

    def comment(self, value: Any, case_id: str, where: str) -> str:
        """Text of at most MAX_COMMENT_LENGTH characters."""
        if not isinstance(value, str) or len(value) > MAX_COMMENT_LENGTH:
            raise self.fail(f"a comment for case {case_id} in {where} that is not text of at "
                            f"most {MAX_COMMENT_LENGTH} characters")
        return value

    def history_entry(self, case_id: Any, item: Any, value: Any, changed_at: Any,
                      seconds: Any) -> None:
        """A whole history entry: the reader's case, a possible value, its time and seconds."""
        self.case(case_id, "answer_history", None)
        if item == COMMENT:
            self.comment(value, case_id, "answer_history")
        elif item == NOT_ASSESSABLE:
            if value not in ("0", "1"):
                raise self.fail(f"the flag {value!r} for case {case_id} in answer_history, not "
                                "'0' or '1'")
        else:
            self.answer(case_id, item, value, "answer_history")
        self.stamp(changed_at, case_id, "answer_history")
        self.seconds(seconds, case_id, "answer_history")


def check_belongs(path: Path, study: Study, study_id: str, order: list[str]) -> None:
    """RatingStoreError unless the database is of `study` and lists its cases (its trials in a
    paired study)."""
    if study_id != study.study_id:
        raise RatingStoreError(f"The ratings database {path} belongs to study {study_id}, not "
                               f"{study.study_id}; move it out of the ratings folder.")
    if sorted(order) != sorted(study.rated_ids):
        raise RatingStoreError(f"The ratings database {path} lists other cases than the study; "
                               "it does not belong to this study's version.")


def history_disagrees(current: Answers, notes: dict[str, CaseNote],
                      after_truth: dict[str, set[str]], history: Iterable[tuple],
                      shown_after: dict[str, int]) -> list[str]:
    """The cases whose current answers (value, time, seconds), comment, flag or after-truth
    marks are not what replaying the (checked) history gives, in id order."""
    answers: Answers = {}
    given_at: dict[str, dict[str, int]] = {}  # case -> question -> seq of the current answer
    replayed_notes: dict[str, CaseNote] = {}
    for seq, case_id, item, value, changed_at, seconds in history:
        note = replayed_notes.get(case_id, CaseNote())
        if item == COMMENT:
            replayed_notes[case_id] = CaseNote(value, note.not_assessable)
        elif item == NOT_ASSESSABLE:
            replayed_notes[case_id] = CaseNote(note.comment, value == "1")
        else:
            answers.setdefault(case_id, {})[item] = (value, changed_at, float(seconds))
            given_at.setdefault(case_id, {})[item] = seq
    marks = {case_id: {item for item, seq in seqs.items()
                       if case_id in shown_after and seq > shown_after[case_id]}
             for case_id, seqs in given_at.items()}
    cases = set(current) | set(answers) | set(notes) | set(replayed_notes) | set(after_truth)
    return sorted(case_id for case_id in cases
                  if current.get(case_id, {}) != answers.get(case_id, {})
                  or notes.get(case_id, CaseNote()) != replayed_notes.get(case_id, CaseNote())
                  or after_truth.get(case_id, set()) != marks.get(case_id, set()))
