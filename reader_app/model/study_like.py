"""What the reading session needs of a study, its ratings store and a paired trial: the parts
of `studies.study.Study`, `studies.ratings.RatingStore` and `studies.trials.Trial` it uses, so
the session can be driven by stand-ins (the app's in-memory `PreviewStore`, tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from studies.ratings import AnswerChange, CaseNote, CaseRecord

PAIRED_DESIGN = "2afc"  # study.json's `design` of a paired study; "single" otherwise


class QuestionLike(Protocol):
    """What the session needs of a `studies.questions.Question`."""

    key: str
    letters: tuple[str, ...]


class StudyLike(Protocol):
    """What the session needs of a `studies.study.Study`."""

    questions: Sequence[QuestionLike]
    answers_editable: bool
    design: str  # "single", or PAIRED_DESIGN ("2afc")

    def case_path(self, case_id: str) -> Path: ...

    def log(self, message: str) -> None: ...


class TrialLike(Protocol):
    """What the session needs of a `studies.trials.Trial`."""

    left: str
    right: str


class StoreLike(Protocol):
    """What the session needs of a `studies.ratings.RatingStore`."""

    case_order: list[str]
    practice_order: list[str]

    def answers(self, case_id: str) -> dict[str, str]: ...

    def note(self, case_id: str) -> CaseNote: ...

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None: ...

    def set_comment(self, case_id: str, comment: str) -> None: ...

    def set_not_assessable(self, case_id: str, flagged: bool) -> None: ...

    def add_time(self, case_id: str, seconds: float) -> None: ...

    def seconds_on_case(self, case_id: str) -> float: ...

    def is_done(self, case_id: str) -> bool: ...

    def practice_truth(self, case_id: str) -> str: ...

    def trial(self, trial_id: str) -> TrialLike: ...

    def review_list(self, include_practice: bool = False) -> list[CaseRecord]: ...

    def history(self, case_id: str) -> list[AnswerChange]: ...

    def close(self) -> None: ...
