"""A rating store that keeps answers in memory only, for screenshots taken without a reader."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class _Question(Protocol):
    key: str


class _Study(Protocol):
    questions: Sequence[_Question]
    case_ids: list[str]


class PreviewStore:
    """The `RatingStore` interface without a database: nothing is written to the study folder,
    so a screenshot never leaves a reader file behind. Cases come in `case_order` (a reader's),
    or in the study's listed order."""

    reader = ""

    def __init__(self, study: _Study, case_order: Sequence[str] | None = None) -> None:
        self.case_order = list(study.case_ids if case_order is None else case_order)
        self._keys = tuple(q.key for q in study.questions)
        self._answers: dict[str, dict[str, str]] = {}
        self._seconds: dict[str, float] = {}

    def answers(self, case_id: str) -> dict[str, str]:
        """Question key -> value given so far (in this process)."""
        return dict(self._answers.get(case_id, {}))

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None:
        """Keep an answer in memory."""
        self._answers.setdefault(case_id, {})[question_key] = value

    def add_time(self, case_id: str, seconds: float) -> None:
        """Add time spent on a case, in memory."""
        self._seconds[case_id] = self._seconds.get(case_id, 0.0) + seconds

    def seconds_on_case(self, case_id: str) -> float:
        """Time spent on a case so far."""
        return self._seconds.get(case_id, 0.0)

    def is_complete(self, case_id: str) -> bool:
        """Whether every question has an answer for the case."""
        return all(key in self._answers.get(case_id, {}) for key in self._keys)

    def first_unrated_index(self) -> int:
        """Index of the first incomplete case; the number of cases when all are done."""
        return next((i for i, c in enumerate(self.case_order) if not self.is_complete(c)),
                    len(self.case_order))

    def close(self) -> None:
        """Nothing to release."""
