"""A rating store that keeps answers in memory only, for screenshots taken without a reader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from studies.ratings import (
    COMMENT,
    NOT_ASSESSABLE,
    AnswerChange,
    AnswersFinalError,
    CaseNote,
    CaseRecord,
    TruthNotShownError,
    done,
    truth_when_flagged,
)
from studies.study import utc_now
from studies.trials import Trial


class _Question(Protocol):
    key: str


class _Study(Protocol):
    questions: Sequence[_Question]
    rated_ids: list[str]
    practice_ids: list[str]
    practice: dict[str, str]
    answers_editable: bool

    def trial(self, trial_id: str) -> Trial: ...


class PreviewStore:
    """The `RatingStore` interface without a database: nothing is written to the study folder,
    so a screenshot never leaves a reader file behind. Cases (a paired study's trials) come in
    `case_order` (a reader's), or in the study's listed order, after the study's practice cases;
    the store's rules (done, final answers, practice truth only once done) are the same. A paired
    study's trials show their sides as study.json lists them (layout A): which side a reader
    sees is settled only when the reader's database is made."""

    reader = ""

    def __init__(self, study: _Study, case_order: Sequence[str] | None = None) -> None:
        self.case_order = list(study.rated_ids if case_order is None else case_order)
        self.practice_order = list(study.practice_ids)
        self._study = study
        self._keys = tuple(q.key for q in study.questions)
        self._answers: dict[str, dict[str, str]] = {}
        self._notes: dict[str, CaseNote] = {}
        self._seconds: dict[str, float] = {}
        self._history: dict[str, list[AnswerChange]] = {}

    def trial(self, trial_id: str) -> Trial:
        """A paired study's trial or practice trial, its sides as study.json lists them."""
        return self._study.trial(trial_id)

    def answers(self, case_id: str) -> dict[str, str]:
        """Question key -> value given so far (in this process)."""
        return dict(self._answers.get(case_id, {}))

    def note(self, case_id: str) -> CaseNote:
        """The comment and flag given so far (in this process)."""
        return self._notes.get(case_id, CaseNote())

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None:
        """Keep an answer in memory; AnswersFinalError for a change the study does not allow."""
        if self.answers(case_id).get(question_key) == value:
            return
        self._check_may_change(case_id)
        self._answers.setdefault(case_id, {})[question_key] = value
        self._log(case_id, question_key, value)

    def set_comment(self, case_id: str, comment: str) -> None:
        """Keep a comment in memory."""
        note = self.note(case_id)
        if note.comment != comment:
            self._notes[case_id] = CaseNote(comment, note.not_assessable)
            self._log(case_id, COMMENT, comment)

    def set_not_assessable(self, case_id: str, flagged: bool) -> None:
        """Keep the flag in memory; AnswersFinalError for a change the study does not allow."""
        note = self.note(case_id)
        if note.not_assessable != flagged:
            self._check_may_change(case_id)
            self._notes[case_id] = CaseNote(note.comment, flagged)
            self._log(case_id, NOT_ASSESSABLE, "1" if flagged else "0")

    def add_time(self, case_id: str, seconds: float) -> None:
        """Add time spent on a case, in memory."""
        self._seconds[case_id] = self._seconds.get(case_id, 0.0) + seconds

    def seconds_on_case(self, case_id: str) -> float:
        """Time spent on a case so far."""
        return self._seconds.get(case_id, 0.0)

    def is_done(self, case_id: str) -> bool:
        """Whether every question has an answer for the case, or it is flagged."""
        return done.is_done(self._answers.get(case_id, {}), self.note(case_id).not_assessable,
                            self._keys)

    def practice_truth(self, case_id: str) -> str:
        """A practice case's truth where the reader's store would show it (studies.ratings.done);
        TruthNotShownError before."""
        complete = done.is_complete(self._answers.get(case_id, {}), self._keys)
        if not done.may_show_truth(complete, self.note(case_id).not_assessable,
                                   truth_when_flagged(self._study)):
            raise TruthNotShownError(f"Practice case {case_id} is not answered yet.")
        return self._study.practice[case_id]

    def review_list(self, include_practice: bool = False) -> list[CaseRecord]:
        """The cases with anything given, in the order they are shown."""
        shown = (self.practice_order if include_practice else []) + self.case_order
        return [self._record(case_id) for case_id in shown if case_id in self._history]

    def history(self, case_id: str) -> list[AnswerChange]:
        """Every answer, comment and flag given for a case (in this process), oldest first."""
        return list(self._history.get(case_id, []))

    def close(self) -> None:
        """Nothing to release."""

    def _record(self, case_id: str) -> CaseRecord:
        done = self.is_done(case_id)
        return CaseRecord(case_id, case_id in self.practice_order, self.answers(case_id),
                          self.note(case_id), self._history[case_id][-1].changed_at,
                          self.seconds_on_case(case_id), done,
                          self._study.answers_editable or not done)

    def _check_may_change(self, case_id: str) -> None:
        if not done.may_change(self.is_done(case_id), self._study.answers_editable):
            raise AnswersFinalError("The answers of this case are final in this study.")

    def _log(self, case_id: str, item: str, value: str) -> None:
        self._history.setdefault(case_id, []).append(
            AnswerChange(item, value, utc_now(), self.seconds_on_case(case_id)))
