"""One SQLite ratings database per reader: `ratings/<reader>.sqlite`.

Every answer is committed the moment it is given, and one database per reader means no two
readers ever write one file; a second process for the same reader is refused. The modules:

  readers   reader names (normalised, matched without case), database paths, case orders
  lock      one writer per reader (`ReaderLock`)
  schema    the tables and their versions, opening a database, migrating an older one
  done      the one rule for when a case is done, may change, and its time
  validate  the checks every read makes: possible values, a history that explains the answers
  snapshot  a whole database read without writing (`ReaderRatings`): status, export, merge
  store     the live, locked writer the reader app uses (`RatingStore`)
  records   the values handed out (`CaseNote`, `AnswerChange`, `CaseRecord`)
  errors    `RatingStoreError` and its kinds: no caller ever sees a raw `sqlite3.Error`
"""

from studies.ratings.errors import (
    AnswersFinalError,
    EditedRatingsError,
    InvalidRatingsError,
    RatingStoreError,
    ReaderLockedError,
    TruthNotShownError,
    case_list,
)
from studies.ratings.lock import LOCK_SUFFIX, ReaderLock
from studies.ratings.readers import (
    DATABASE_SUFFIX,
    MAX_READER_LENGTH,
    database_path,
    existing_reader,
    order_seed,
    reader_key,
    reader_order,
    shuffled_case_order,
    validate_reader,
)
from studies.ratings.records import (
    COMMENT,
    MAX_COMMENT_LENGTH,
    NOT_ASSESSABLE,
    AnswerChange,
    CaseNote,
    CaseRecord,
)
from studies.ratings.schema import SCHEMA_VERSION
from studies.ratings.snapshot import (
    ReaderRatings,
    read_reader_ratings,
    read_study_ratings,
    refuse_edited,
)
from studies.ratings.store import RatingStore, truth_when_flagged

__all__ = [
    "COMMENT", "DATABASE_SUFFIX", "LOCK_SUFFIX", "MAX_COMMENT_LENGTH", "MAX_READER_LENGTH",
    "NOT_ASSESSABLE", "SCHEMA_VERSION",
    "AnswerChange", "AnswersFinalError", "CaseNote", "CaseRecord", "EditedRatingsError",
    "InvalidRatingsError", "RatingStore", "RatingStoreError", "ReaderLock", "ReaderLockedError",
    "ReaderRatings", "TruthNotShownError",
    "case_list", "database_path", "existing_reader", "order_seed", "read_reader_ratings",
    "read_study_ratings", "reader_key", "reader_order", "refuse_edited", "shuffled_case_order",
    "truth_when_flagged", "validate_reader",
]
