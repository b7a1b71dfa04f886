"""The errors of a ratings database, and how their messages name cases.

Every failure of a database surfaces as a `RatingStoreError`, never as a raw `sqlite3.Error`, so
callers (the reader app) need not know the storage.
"""

from __future__ import annotations

from studies.study import StudyError

_LISTED_CASES = 10  # a message names at most this many cases


class RatingStoreError(StudyError):
    """A ratings database that cannot be used (corrupt, foreign, locked) or a bad answer."""


class ReaderLockedError(RatingStoreError):
    """Another window or process already has this reader's database open."""


class AnswersFinalError(RatingStoreError):
    """A change to a done case's answers in a study whose answers are final."""


class TruthNotShownError(RatingStoreError):
    """The truth of a practice case asked before the case was answered."""


class InvalidRatingsError(RatingStoreError):
    """A ratings database holding what mdiff never writes: an impossible value, or the tables of
    another schema version than the one it names."""


class EditedRatingsError(RatingStoreError):
    """A ratings database whose history does not explain its current answers (edited outside
    mdiff)."""


def case_list(case_ids: list[str]) -> str:
    """Case ids for a message: at most `_LISTED_CASES`, then how many more."""
    shown = ", ".join(case_ids[:_LISTED_CASES])
    more = len(case_ids) - _LISTED_CASES
    return shown + (f" and {more} more" if more > 0 else "")
