"""What a reader gives for a case, as the rest of mdiff sees it: answers, a note, the history."""

from __future__ import annotations

from dataclasses import dataclass

MAX_COMMENT_LENGTH = 10_000
COMMENT, NOT_ASSESSABLE = "comment", "not_assessable"  # history items beside the question keys


@dataclass(frozen=True)
class CaseNote:
    """A case's free-text comment and its "image cannot be assessed" flag."""

    comment: str = ""
    not_assessable: bool = False


@dataclass(frozen=True)
class AnswerChange:
    """One entry of the answer history: an answer, comment or flag as it was given."""

    item: str  # a question key, COMMENT or NOT_ASSESSABLE
    value: str  # an option letter, the comment's text, or "1"/"0" for the flag
    changed_at: str  # ISO 8601, UTC
    seconds_on_case: float


@dataclass(frozen=True)
class CaseRecord:
    """Everything the reader has given for one case, as it stands now (for the review list)."""

    case_id: str
    practice: bool
    answers: dict[str, str]  # question key -> option letter
    note: CaseNote
    answered_at: str  # the latest answer's time, "" before any
    seconds_on_case: float
    done: bool  # every question answered, or flagged not assessable
    can_change: bool  # False once a done case's answers are final
