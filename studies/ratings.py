"""One SQLite ratings database per reader: `ratings/<reader>.sqlite`.

A reader name is normalised (Unicode NFC, runs of spaces made one) and matched to an
existing reader without regard to case, so "reader x" and "Reader  X" continue the ratings of
"Reader X" instead of starting databases of their own.

Every answer is committed the moment it is given, with a rollback journal and `synchronous=FULL`,
so a crash or SIGKILL of the app loses nothing already committed. One database per reader means no
two readers ever write one file; a second process for the same reader is refused through an
exclusive `flock` on `ratings/<reader>.lock`, which the OS drops when a process dies, so a crash
never leaves a stale lock behind. The lock file itself stays (removing it would let two processes
lock two different files of one name).

Schema (version in `PRAGMA user_version`):
  meta             (study_id, reader, order_seed, created_at)   one row
  case_order       (position, case_id)                          this reader's shuffled order
  answers          (case_id, question, value, answered_at, seconds_on_case), key (case_id,
                   question): the current answers to study cases
  practice_answers the same for practice cases (P01, ...), apart so that nothing that reads
                   `answers` (status, export, merge) ever counts them, plus `after_truth` (1 for
                   an answer given after the case's truth was shown, else 0)
  case_notes       (case_id, comment, not_assessable, noted_at): the free-text comment and the
                   "image cannot be assessed" flag of a case or practice case
  answer_history   (seq, case_id, item, value, changed_at, seconds_on_case): every answer,
                   comment and flag as it was given, in order; item is a question key,
                   `comment` or `not_assessable` (value "1"/"0"); never updated or deleted
  truth_shown      (case_id, shown_at, history_seq): when a practice case's truth was first
                   shown; the history entries after `history_seq` came after it
  case_time        (case_id, seconds)                           time spent on a case, accumulated
`value` is the option's letter (A-D, R/S, 1-4). Older versions are read as they are and brought
to the current one when a store opens them, their tables kept as they were: version 1 (before
practice cases, notes and the history) gets the history with each current answer as its first
entry; version 2 (before `truth_shown`) gets, for each practice case, the moment version 2 showed
its truth (the history entry that made the case done) and the mark on the answers given later.

A case is **done** when every question has an answer or it is flagged not assessable. When the
study's `answers_editable` is false, a done case's answers and flag are final (`can_change`);
comments can always change. A practice case's truth is shown once every question is answered;
flagged without every answer, only when study.json's `practice_truth_when_flagged` is true.

Every read checks the database (`InvalidRatingsError`, one sentence): its tables and columns are
those of the version it names (a newer database relabelled older is refused, not migrated and
cut), every answer is an option of its question, times are finite numbers of seconds >= 0 and
time stamps ISO 8601, flags 0 or 1, case ids the reader's. The history must explain the current
answers, comments, flags and after-truth marks: the cases where it does not (edited outside
mdiff) are listed in `ReaderRatings.history_disagrees`; a store refuses to open such a database
(`EditedRatingsError`), and `refuse_edited` lets export do the same.

Every failure of the database surfaces as a `RatingStoreError`, never as a raw `sqlite3.Error`, so
callers (the reader app) need not know the storage.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import math
import os
import random
import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from studies.questions import ALL_QUESTIONS, Question
from studies.study import PRACTICE_ID_PATTERN, Study, StudyError, utc_now

SCHEMA_VERSION = 3
DATABASE_SUFFIX = ".sqlite"
LOCK_SUFFIX = ".lock"
MAX_READER_LENGTH = 64
MAX_COMMENT_LENGTH = 10_000
COMMENT, NOT_ASSESSABLE = "comment", "not_assessable"  # history items beside the question keys
_READER_PUNCTUATION = " -_."

_SCHEMA_1 = (
    """CREATE TABLE meta (
        study_id TEXT NOT NULL, reader TEXT NOT NULL, order_seed TEXT NOT NULL,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE case_order (
        position INTEGER PRIMARY KEY, case_id TEXT NOT NULL UNIQUE)""",
    """CREATE TABLE answers (
        case_id TEXT NOT NULL, question TEXT NOT NULL, value TEXT NOT NULL,
        answered_at TEXT NOT NULL, seconds_on_case REAL NOT NULL,
        PRIMARY KEY (case_id, question))""",
    """CREATE TABLE case_time (case_id TEXT PRIMARY KEY, seconds REAL NOT NULL)""",
)
# What version 2 adds to version 1 (the migration runs exactly these).
_SCHEMA_2 = (
    """CREATE TABLE practice_answers (
        case_id TEXT NOT NULL, question TEXT NOT NULL, value TEXT NOT NULL,
        answered_at TEXT NOT NULL, seconds_on_case REAL NOT NULL,
        PRIMARY KEY (case_id, question))""",
    """CREATE TABLE case_notes (
        case_id TEXT PRIMARY KEY, comment TEXT NOT NULL, not_assessable INTEGER NOT NULL,
        noted_at TEXT NOT NULL)""",
    """CREATE TABLE answer_history (
        seq INTEGER PRIMARY KEY, case_id TEXT NOT NULL, item TEXT NOT NULL,
        value TEXT NOT NULL, changed_at TEXT NOT NULL, seconds_on_case REAL NOT NULL)""",
    """INSERT INTO answer_history (case_id, item, value, changed_at, seconds_on_case)
        SELECT case_id, question, value, answered_at, seconds_on_case FROM answers
        ORDER BY answered_at, case_id, question""",
)
# What version 3 adds to version 2 (the migration runs these, then `_mark_truth_shown`).
_SCHEMA_3 = (
    """ALTER TABLE practice_answers ADD COLUMN after_truth INTEGER NOT NULL DEFAULT 0""",
    """CREATE TABLE truth_shown (
        case_id TEXT PRIMARY KEY, shown_at TEXT NOT NULL, history_seq INTEGER NOT NULL)""",
)
# Version -> the statements that make it from the version before (version 1: from nothing).
_SCHEMAS = {1: _SCHEMA_1, 2: _SCHEMA_2, 3: _SCHEMA_3}
# study.json's setting: whether a practice case flagged "not assessable" shows its truth.
TRUTH_WHEN_FLAGGED = "practice_truth_when_flagged"
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


def validate_reader(reader: str) -> str:
    """The reader name, NFC-normalised with runs of spaces made one; RatingStoreError when it is
    no safe file name (spaces at either end included: a name starts and ends with a letter or
    digit)."""
    name = re.sub(" {2,}", " ", unicodedata.normalize("NFC", reader)) \
        if isinstance(reader, str) else ""
    allowed = all(ch.isalnum() or ch in _READER_PUNCTUATION for ch in name)
    if not name or not name[0].isalnum() or not name[-1].isalnum() or not allowed \
            or len(name) > MAX_READER_LENGTH:
        raise RatingStoreError(
            f"The reader name {reader!r} is not allowed; use 1 to {MAX_READER_LENGTH} letters, "
            "digits, spaces, dashes, underscores or dots, starting and ending with a letter or "
            "digit.")
    return name


def reader_key(reader: str) -> str:
    """What two names of one reader share: the name with runs of spaces made one, without case."""
    return re.sub(" {2,}", " ", reader).casefold()


def existing_reader(study: Study, reader: str) -> str | None:
    """The name of the ratings database that `reader` names, whatever its case and spacing;
    None when the study has none. RatingStoreError for two databases that differ only in case."""
    key = reader_key(validate_reader(reader))
    if not study.ratings_dir.is_dir():
        return None
    matches = sorted(path.name[: -len(DATABASE_SUFFIX)]
                     for path in study.ratings_dir.glob(f"*{DATABASE_SUFFIX}")
                     if reader_key(path.name[: -len(DATABASE_SUFFIX)]) == key)
    if len(matches) > 1:
        names = " and ".join(f"'{name}'" for name in matches)
        raise RatingStoreError(f"The readers {names} of {study.folder} differ only in case or "
                               "spacing; open one of them by its exact name.")
    return matches[0] if matches else None


def reader_order(study: Study, reader: str) -> list[str]:
    """The case order a reader gets (or got) in a study, from the study id and the name."""
    name = existing_reader(study, reader) or validate_reader(reader)
    return shuffled_case_order(study.case_ids, order_seed(study.study_id, name))


def order_seed(study_id: str, reader: str) -> str:
    """The seed of a reader's case order: a hash of study id and reader name."""
    return hashlib.sha256(f"{study_id}\n{reader}".encode()).hexdigest()[:16]


def shuffled_case_order(case_ids: list[str], seed: str) -> list[str]:
    """The case ids in the order one seed gives; independent of the study's listed order."""
    order = sorted(case_ids)
    random.Random(int(seed, 16)).shuffle(order)
    return order


def database_path(study: Study, reader: str) -> Path:
    """Where a reader's ratings database lives."""
    return study.ratings_dir / f"{reader}{DATABASE_SUFFIX}"


@dataclass
class ReaderRatings:
    """Everything one reader's database holds, read at once (for status, export and merge)."""

    path: Path
    study_id: str
    reader: str
    case_order: list[str]
    answers: dict[str, dict[str, str]] = field(default_factory=dict)  # case -> question -> value
    answered_at: dict[str, str] = field(default_factory=dict)         # case -> latest answer time
    answer_seconds: dict[str, float] = field(default_factory=dict)    # case -> most seconds given
    case_time: dict[str, float] = field(default_factory=dict)         # case -> accumulated seconds
    # Practice cases' answers, never mixed into `answers` (their times are in the dicts above).
    practice_answers: dict[str, dict[str, str]] = field(default_factory=dict)
    notes: dict[str, CaseNote] = field(default_factory=dict)          # case -> comment and flag
    # Practice case -> the questions whose current answer came after the truth was shown.
    after_truth: dict[str, set[str]] = field(default_factory=dict)
    truth_shown: dict[str, str] = field(default_factory=dict)  # practice case -> when, ISO 8601
    # Cases whose answers, comment, flag or after-truth marks the history does not explain.
    history_disagrees: list[str] = field(default_factory=list)

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case, or the time given with its latest answer if none was."""
        if case_id in self.case_time:
            return self.case_time[case_id]
        return self.answer_seconds.get(case_id, 0.0)

    def given(self, case_id: str) -> dict[str, str]:
        """Question -> value given for a case or practice case."""
        return self.practice_answers.get(case_id) or self.answers.get(case_id, {})

    def note(self, case_id: str) -> CaseNote:
        """The comment and flag of a case (empty and unflagged when none was given)."""
        return self.notes.get(case_id, CaseNote())

    def is_complete(self, case_id: str, question_keys: tuple[str, ...]) -> bool:
        """Whether every question was answered for the case."""
        given = self.given(case_id)
        return all(key in given for key in question_keys)

    def is_done(self, case_id: str, question_keys: tuple[str, ...]) -> bool:
        """Whether the case is complete or flagged not assessable."""
        return self.is_complete(case_id, question_keys) or self.note(case_id).not_assessable

    def answered_after_truth(self, case_id: str) -> bool:
        """Whether any current answer of a practice case was given after its truth was shown."""
        return bool(self.after_truth.get(case_id))

    def same_ratings(self, other: ReaderRatings) -> bool:
        """Whether two copies of a reader's database hold the same answers, comments and flags."""
        return (self.answers, self.practice_answers, self.notes, self.after_truth) == \
            (other.answers, other.practice_answers, other.notes, other.after_truth)


def _connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with durable commits."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as err:
        raise _corrupt(path, err) from None
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as err:
        conn.close()
        raise _corrupt(path, err) from None
    return conn


def _corrupt(path: Path, err: Exception) -> RatingStoreError:
    """The error for a database that cannot be read; the file is left as it is."""
    return RatingStoreError(
        f"The ratings database {path} is unreadable ({err}); it was left untouched: restore it "
        "from a backup or move it away to start this reader afresh.")


@contextmanager
def _database_errors(path: Path) -> Iterator[None]:
    """Inside the block, an sqlite3 error becomes a RatingStoreError naming the database."""
    try:
        yield
    except sqlite3.Error as err:
        raise RatingStoreError(
            f"The ratings database {path} failed ({err}); check that the disk is not full and "
            "that the study folder is writable.") from None


def _check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version the database holds, 0 when it is empty; raise when its tables and
    columns are not exactly those of the version it names."""
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        layout = _layout_of(conn)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    if version == 0 and not layout:
        return 0
    if version > SCHEMA_VERSION:
        raise RatingStoreError(
            f"The ratings database {path} has schema version {version}, newer than this mdiff "
            f"reads ({SCHEMA_VERSION}); open it with the newer mdiff.")
    if version in _SCHEMAS and layout == _layout(version):
        return version
    named = next((v for v in _SCHEMAS if layout == _layout(v)), None)
    if named is not None:
        raise InvalidRatingsError(
            f"The ratings database {path} names schema version {version} but has the tables of "
            f"version {named}; it was relabelled outside mdiff: restore it from a backup (or set "
            f"its PRAGMA user_version back to {named}).")
    if version not in _SCHEMAS or not set(_layout(version)) <= set(layout):
        raise RatingStoreError(f"{path} is not an mdiff ratings database; move it out of the "
                               "study's ratings folder.")
    raise InvalidRatingsError(
        f"The ratings database {path} has {_layout_difference(layout, _layout(version))}, "
        f"which its schema version {version} does not have; it was edited outside mdiff: "
        "restore it from a backup.")


def _layout_of(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    """Table -> its column names, for every table of a database but SQLite's own."""
    tables = [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    return {table: tuple(row[0] for row in conn.execute(
        "SELECT name FROM pragma_table_info(?)", (table,))) for table in tables}


@functools.cache
def _layout(version: int) -> dict[str, tuple[str, ...]]:
    """The tables and columns of schema `version`, as its statements make them."""
    conn = sqlite3.connect(":memory:")
    try:
        for step in range(1, version + 1):
            for statement in _SCHEMAS[step]:
                conn.execute(statement)
        return _layout_of(conn)
    finally:
        conn.close()


def _layout_difference(found: dict[str, tuple[str, ...]],
                       expected: dict[str, tuple[str, ...]]) -> str:
    """What `found` has beyond `expected` ("the table x and the columns a, b in answers")."""
    parts = [f"the table {table}" for table in sorted(set(found) - set(expected))]
    parts += [f"the columns {', '.join(found[table])} in {table}" for table in sorted(expected)
              if found.get(table, expected[table]) != expected[table]]
    return " and ".join(parts)


def read_reader_ratings(path: Path, study: Study | None = None) -> ReaderRatings:
    """Read and check a whole ratings database without writing to it; RatingStoreError when
    unusable, InvalidRatingsError when it holds what mdiff never writes (module docstring).
    With `study`, the database must be that study's and its answers those of its questions."""
    conn = _connect(path)
    try:
        version = _check_schema(conn, path)
        if not version:
            raise RatingStoreError(f"The ratings database {path} is empty; move it out of the "
                                   "study's ratings folder.")
        return _read_all(conn, path, version, study)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    finally:
        conn.close()


class _Checks:
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

    def history_value(self, case_id: str, item: Any, value: Any) -> None:
        """A history entry's value: an answer, a comment or a flag "1"/"0"."""
        if item == COMMENT:
            self.comment(value, case_id, "answer_history")
        elif item == NOT_ASSESSABLE:
            if value not in ("0", "1"):
                raise self.fail(f"the flag {value!r} for case {case_id} in answer_history, not "
                                "'0' or '1'")
        else:
            self.answer(case_id, item, value, "answer_history")


def _check_belongs(path: Path, study: Study, study_id: str, order: list[str]) -> None:
    """RatingStoreError unless the database is of `study` and lists its cases."""
    if study_id != study.study_id:
        raise RatingStoreError(f"The ratings database {path} belongs to study {study_id}, not "
                               f"{study.study_id}; move it out of the ratings folder.")
    if sorted(order) != sorted(study.case_ids):
        raise RatingStoreError(f"The ratings database {path} lists other cases than the study; "
                               "it does not belong to this study's version.")


def _read_all(conn: sqlite3.Connection, path: Path, version: int,
              study: Study | None = None) -> ReaderRatings:
    """Every table of an open database of schema `version`, each value checked (`_Checks`) and
    the history replayed against the current state (`history_disagrees`)."""
    meta = conn.execute("SELECT study_id, reader FROM meta").fetchall()
    if len(meta) != 1:
        raise RatingStoreError(f"The ratings database {path} has {len(meta)} meta rows instead "
                               "of one; restore it from a backup.")
    order = [r[0] for r in conn.execute("SELECT case_id FROM case_order ORDER BY position")]
    check = _Checks(path, order, study)
    if not all(isinstance(text, str) for text in (*meta[0], *order)):
        raise check.fail("a study id, reader name or case id that is not text")
    if study is not None:
        _check_belongs(path, study, meta[0][0], order)
    ratings = ReaderRatings(path, meta[0][0], meta[0][1], order)
    current: dict[str, dict[str, tuple[str, str, float]]] = {}  # case -> question -> answer
    tables = (("answers", ratings.answers), ("practice_answers", ratings.practice_answers))
    for table, answers in tables[:1 if version == 1 else 2]:
        marked = table == "practice_answers" and version >= 3
        rows = conn.execute("SELECT case_id, question, value, answered_at, seconds_on_case, "
                            f"{'after_truth' if marked else '0'} FROM {table}")
        for case_id, question, value, answered_at, seconds, after in rows:
            check.case(case_id, table, table == "practice_answers")
            check.answer(case_id, question, value, table)
            check.stamp(answered_at, case_id, table)
            seconds = check.seconds(seconds, case_id, table)
            if check.flag(after, case_id, f"{table}.after_truth"):
                ratings.after_truth.setdefault(case_id, set()).add(question)
            answers.setdefault(case_id, {})[question] = value
            current.setdefault(case_id, {})[question] = (value, answered_at, seconds)
            ratings.answered_at[case_id] = max(answered_at, ratings.answered_at.get(case_id, ""))
            ratings.answer_seconds[case_id] = max(seconds,
                                                  ratings.answer_seconds.get(case_id, 0.0))
    for case_id, seconds in conn.execute("SELECT case_id, seconds FROM case_time"):
        check.case(case_id, "case_time", None)
        ratings.case_time[case_id] = check.seconds(seconds, case_id, "case_time")
    if version < 2:
        return ratings  # no notes and no history yet
    for case_id, comment, flag, noted_at in conn.execute(
            "SELECT case_id, comment, not_assessable, noted_at FROM case_notes"):
        check.case(case_id, "case_notes", None)
        check.stamp(noted_at, case_id, "case_notes")
        ratings.notes[case_id] = CaseNote(check.comment(comment, case_id, "case_notes"),
                                          check.flag(flag, case_id, "case_notes"))
    history = conn.execute("SELECT seq, case_id, item, value, changed_at, seconds_on_case "
                           "FROM answer_history ORDER BY seq").fetchall()
    for _, case_id, item, value, changed_at, seconds in history:
        check.case(case_id, "answer_history", None)
        check.history_value(case_id, item, value)
        check.stamp(changed_at, case_id, "answer_history")
        check.seconds(seconds, case_id, "answer_history")
    shown_after: dict[str, int] = {}  # practice case -> the last history entry before its truth
    if version >= 3:
        for case_id, shown_at, seq in conn.execute(
                "SELECT case_id, shown_at, history_seq FROM truth_shown"):
            check.case(case_id, "truth_shown", True)
            ratings.truth_shown[case_id] = check.stamp(shown_at, case_id, "truth_shown")
            if type(seq) is not int:
                raise check.fail(f"the history position {seq!r} for case {case_id} in "
                                 "truth_shown, not a whole number")
            shown_after[case_id] = seq
    ratings.history_disagrees = _history_disagrees(current, ratings.notes, ratings.after_truth,
                                                   history, shown_after)
    return ratings


def _history_disagrees(current: dict[str, dict[str, tuple[str, str, float]]],
                       notes: dict[str, CaseNote], after_truth: dict[str, set[str]],
                       history: Iterable[tuple], shown_after: dict[str, int]) -> list[str]:
    """The cases whose current answers (value, time, seconds), comment, flag or after-truth
    marks are not what replaying the (checked) history gives, in id order."""
    answers: dict[str, dict[str, tuple[str, str, float]]] = {}
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


def refuse_edited(readers: Iterable[ReaderRatings], remedy: str) -> None:
    """EditedRatingsError naming each database whose history does not explain some cases (and
    those cases); `remedy` ends the sentence ("restore them from a backup")."""
    edited = [ratings for ratings in readers if ratings.history_disagrees]
    if not edited:
        return
    named = "; ".join(f"{ratings.path} (case{'s' if len(ratings.history_disagrees) > 1 else ''} "
                      f"{case_list(ratings.history_disagrees)})" for ratings in edited)
    databases = "these ratings databases" if len(edited) > 1 else "the ratings database"
    raise EditedRatingsError(
        f"The answers, comments or flags in {databases} disagree with their history, so they "
        f"were edited outside mdiff: {named}; {remedy}.")


def case_list(case_ids: list[str]) -> str:
    """Case ids for a message: at most `_LISTED_CASES`, then how many more."""
    shown = ", ".join(case_ids[:_LISTED_CASES])
    more = len(case_ids) - _LISTED_CASES
    return shown + (f" and {more} more" if more > 0 else "")


class ReaderLock:
    """An exclusive, non-blocking `flock` on `ratings/<reader>.lock`, dropped by the OS on exit."""

    def __init__(self, study: Study, reader: str) -> None:
        """Take the lock now; ReaderLockedError when another process holds it.

        One lock per reader whatever the case of the name, so two spellings of a new reader
        cannot start two databases at once.
        """
        self.path = study.ratings_dir / f"{reader_key(reader)}{LOCK_SUFFIX}"
        try:
            study.ratings_dir.mkdir(exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RatingStoreError(f"Cannot create the lock file {self.path} ({err.strerror}); "
                                   "make the study folder writable.") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ReaderLockedError(f"Reader '{reader}' already has this study open in another "
                                    "window or process.") from None

    def release(self) -> None:
        """Drop the lock; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class RatingStore:
    """A reader's ratings database, opened for writing and locked for this process."""

    def __init__(self, study: Study, reader: str, path: Path, conn: sqlite3.Connection,
                 lock: ReaderLock, case_order: list[str]) -> None:
        self.study = study
        self.reader = reader
        self.path = path
        self.case_order = case_order
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._questions: dict[str, Question] = {q.key: q for q in study.questions}
        with _database_errors(path):
            # The practice cases whose truth was shown: their later answers are marked.
            self._truth_shown = {row[0] for row in conn.execute("SELECT case_id FROM truth_shown")}

    @classmethod
    def open(cls, study: Study, reader: str) -> RatingStore:
        """Open (creating if needed) the reader's database and take the reader's lock.

        An existing reader matched by `existing_reader` is opened under its own name.
        """
        lock = ReaderLock(study, validate_reader(reader))
        try:
            reader = existing_reader(study, reader) or validate_reader(reader)
        except RatingStoreError:
            lock.release()
            raise
        path = database_path(study, reader)
        try:
            conn = _connect(path)
        except RatingStoreError:
            lock.release()
            raise
        try:
            with _database_errors(path):
                order = _initialise_or_load(conn, path, study, reader)
        except BaseException:
            conn.close()
            lock.release()
            raise
        return cls(study, reader, path, conn, lock, order)

    def __enter__(self) -> RatingStore:
        """The store itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store (and release the lock)."""
        self.close()

    def close(self) -> None:
        """Close the database and release the reader's lock."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._lock.release()

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection; RatingStoreError after close()."""
        if self._conn is None:
            raise RatingStoreError(f"The ratings of reader '{self.reader}' were closed; open "
                                   "them again.")
        return self._conn

    @property
    def practice_order(self) -> list[str]:
        """The practice case ids, in the order they are shown (before `case_order`)."""
        return self.study.practice_ids

    # --- reading ---------------------------------------------------------------------------

    def answers(self, case_id: str) -> dict[str, str]:
        """Question key -> value given so far for one case or practice case."""
        table = self._answer_table(case_id)
        with _database_errors(self.path):
            rows = self.conn.execute(f"SELECT question, value FROM {table} WHERE case_id = ?",
                                     (case_id,))
            return dict(rows.fetchall())

    def note(self, case_id: str) -> CaseNote:
        """The comment and the "not assessable" flag of a case or practice case."""
        self._answer_table(case_id)
        with _database_errors(self.path):
            row = self.conn.execute("SELECT comment, not_assessable FROM case_notes "
                                    "WHERE case_id = ?", (case_id,)).fetchone()
        return CaseNote() if row is None else CaseNote(row[0], bool(row[1]))

    def current(self, case_id: str) -> CaseRecord:
        """Everything given for a case as it stands now: answers, comment, flag, time."""
        table = self._answer_table(case_id)
        with _database_errors(self.path):
            latest = self.conn.execute(f"SELECT MAX(answered_at) FROM {table} WHERE case_id = ?",
                                       (case_id,)).fetchone()[0]
        answers, note = self.answers(case_id), self.note(case_id)
        done = self._done(answers, note)
        return CaseRecord(case_id, self.study.is_practice(case_id), answers, note, latest or "",
                          self.seconds_on_case(case_id), done,
                          self.study.answers_editable or not done)

    def review_list(self, include_practice: bool = False) -> list[CaseRecord]:
        """The reader's cases with anything given (an answer, comment or flag), in the order
        they are shown: the practice cases first when `include_practice`."""
        shown = (self.practice_order if include_practice else []) + self.case_order
        with _database_errors(self.path):
            given = {row[0] for row in self.conn.execute(
                "SELECT case_id FROM answers UNION SELECT case_id FROM practice_answers "
                "UNION SELECT case_id FROM case_notes WHERE comment != '' OR not_assessable")}
        return [self.current(case_id) for case_id in shown if case_id in given]

    def history(self, case_id: str) -> list[AnswerChange]:
        """Every answer, comment and flag given for a case, oldest first."""
        self._answer_table(case_id)
        with _database_errors(self.path):
            rows = self.conn.execute("SELECT item, value, changed_at, seconds_on_case FROM "
                                     "answer_history WHERE case_id = ? ORDER BY seq", (case_id,))
            return [AnswerChange(*row) for row in rows.fetchall()]

    def is_complete(self, case_id: str) -> bool:
        """Whether every question of the study has an answer for this case."""
        return all(key in self.answers(case_id) for key in self._questions)

    def is_done(self, case_id: str) -> bool:
        """Whether the case is complete or flagged not assessable."""
        return self._done(self.answers(case_id), self.note(case_id))

    def can_change(self, case_id: str) -> bool:
        """Whether the case's answers and flag may still change: always in a study whose answers
        are editable, else only until the case is done."""
        return self.study.answers_editable or not self.is_done(case_id)

    def practice_done(self) -> bool:
        """Whether every practice case is done (True for a study without practice cases)."""
        return all(self.is_done(case_id) for case_id in self.practice_order)

    def practice_truth(self, case_id: str) -> str:
        """Show a practice case's truth, "real" or "synthetic": once every question is answered,
        or once it is flagged not assessable when the study's `practice_truth_when_flagged` says
        so. The first time, the moment is recorded: answers given after it are marked
        `after_truth`.

        TruthNotShownError before that; RatingStoreError for a study case, whose truth is only
        in the key outside the study.
        """
        if not self.study.is_practice(case_id):
            raise RatingStoreError(f"Case {case_id!r} is no practice case of study "
                                   f"{self.study.study_id}; only practice cases have their "
                                   "truth shown.")
        if not self.is_complete(case_id):
            if not self.note(case_id).not_assessable:
                raise TruthNotShownError(f"Practice case {case_id} is not answered yet; its "
                                         "truth is shown once every question is answered.")
            if not truth_when_flagged(self.study):
                raise TruthNotShownError(f"Practice case {case_id} is flagged not assessable; "
                                         f"study {self.study.study_id} shows a practice case's "
                                         "truth only once every question is answered.")
        if case_id not in self._truth_shown:
            with _database_errors(self.path), self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO truth_shown (case_id, shown_at, history_seq) "
                    "SELECT ?, ?, COALESCE(MAX(seq), 0) FROM answer_history", (case_id, utc_now()))
            self._truth_shown.add(case_id)
        return self.study.practice[case_id]

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case (or, without any, the time given with its answers)."""
        table = self._answer_table(case_id)
        with _database_errors(self.path):
            row = self.conn.execute("SELECT seconds FROM case_time WHERE case_id = ?",
                                    (case_id,)).fetchone()
            if row is not None:
                return float(row[0])
            row = self.conn.execute(f"SELECT MAX(seconds_on_case) FROM {table} "
                                    "WHERE case_id = ?", (case_id,)).fetchone()
        return float(row[0]) if row[0] is not None else 0.0

    def first_unrated_index(self) -> int:
        """Index in case_order of the first case not done; len(case_order) when all are done."""
        with _database_errors(self.path):
            counts = dict(self.conn.execute(
                "SELECT case_id, COUNT(*) FROM answers GROUP BY case_id").fetchall())
            flagged = {row[0] for row in self.conn.execute(
                "SELECT case_id FROM case_notes WHERE not_assessable")}
        for index, case_id in enumerate(self.case_order):
            if counts.get(case_id, 0) < len(self._questions) and case_id not in flagged:
                return index
        return len(self.case_order)

    # --- writing ---------------------------------------------------------------------------

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None:
        """Store an answer at once (committed), replacing an earlier one for the same question;
        the earlier one stays in the history. AnswersFinalError for a change the study does not
        allow."""
        table = self._answer_table(case_id)
        letter = self._check_value(question_key, value)
        seconds = _check_seconds(seconds_on_case)
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if self.answers(case_id).get(question_key) == letter:
                return
            self._check_may_change(case_id)
            now = utc_now()
            if table == "answers":
                self.conn.execute(
                    "INSERT INTO answers (case_id, question, value, answered_at, seconds_on_case) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id, question) DO UPDATE SET "
                    "value = excluded.value, answered_at = excluded.answered_at, "
                    "seconds_on_case = excluded.seconds_on_case",
                    (case_id, question_key, letter, now, seconds))
            else:
                self.conn.execute(
                    "INSERT INTO practice_answers (case_id, question, value, answered_at, "
                    "seconds_on_case, after_truth) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (case_id, question) DO UPDATE SET value = excluded.value, "
                    "answered_at = excluded.answered_at, "
                    "seconds_on_case = excluded.seconds_on_case, "
                    "after_truth = excluded.after_truth",
                    (case_id, question_key, letter, now, seconds,
                     int(case_id in self._truth_shown)))
            self._log_change(case_id, question_key, letter, now, seconds)

    def set_comment(self, case_id: str, comment: str) -> None:
        """Store the case's free-text comment at once (committed); it may always change, and
        each earlier text stays in the history."""
        self._answer_table(case_id)
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_LENGTH:
            raise RatingStoreError(f"A comment is text of at most {MAX_COMMENT_LENGTH} "
                                   "characters; shorten it.")
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            note = self.note(case_id)
            if note.comment == comment:
                return
            self._write_note(case_id, CaseNote(comment, note.not_assessable), COMMENT, comment)

    def set_not_assessable(self, case_id: str, flagged: bool) -> None:
        """Flag the case "image cannot be assessed" (or take the flag back) at once
        (committed). A flagged case is done; AnswersFinalError for a change the study does not
        allow."""
        self._answer_table(case_id)
        if not isinstance(flagged, bool):
            raise RatingStoreError(f"{flagged!r} is not a flag; give True or False.")
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            note = self.note(case_id)
            if note.not_assessable == flagged:
                return
            self._check_may_change(case_id)
            self._write_note(case_id, CaseNote(note.comment, flagged), NOT_ASSESSABLE,
                             "1" if flagged else "0")

    def add_time(self, case_id: str, seconds: float) -> None:
        """Add time spent on a case to its total (committed)."""
        self._answer_table(case_id)
        seconds = _check_seconds(seconds)
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO case_time (case_id, seconds) VALUES (?, ?) ON CONFLICT (case_id) "
                "DO UPDATE SET seconds = seconds + excluded.seconds", (case_id, seconds))

    # --- internals -------------------------------------------------------------------------

    def _done(self, answers: dict[str, str], note: CaseNote) -> bool:
        """Whether answers and note make a case done."""
        return note.not_assessable or all(key in answers for key in self._questions)

    def _check_may_change(self, case_id: str) -> None:
        """AnswersFinalError when the case is done and the study's answers are final."""
        if not self.can_change(case_id):
            raise AnswersFinalError(f"The answers of this case are final: study "
                                    f"{self.study.study_id} does not let a done case's answers "
                                    "change.")

    def _write_note(self, case_id: str, note: CaseNote, item: str, value: str) -> None:
        """Store a case's note and log the changed item (inside the caller's transaction)."""
        now = utc_now()
        self.conn.execute(
            "INSERT INTO case_notes (case_id, comment, not_assessable, noted_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET "
            "comment = excluded.comment, not_assessable = excluded.not_assessable, "
            "noted_at = excluded.noted_at",
            (case_id, note.comment, int(note.not_assessable), now))
        self._log_change(case_id, item, value, now, self.seconds_on_case(case_id))

    def _log_change(self, case_id: str, item: str, value: str, changed_at: str,
                    seconds: float) -> None:
        """Append one entry to the answer history (inside the caller's transaction)."""
        self.conn.execute("INSERT INTO answer_history (case_id, item, value, changed_at, "
                          "seconds_on_case) VALUES (?, ?, ?, ?, ?)",
                          (case_id, item, value, changed_at, seconds))

    def _answer_table(self, case_id: str) -> Literal["answers", "practice_answers"]:
        """The table holding the case's answers; RatingStoreError for an id the study lacks."""
        if self.study.is_practice(case_id):
            return "practice_answers"
        if case_id not in self.case_order:
            raise RatingStoreError(f"Case {case_id!r} is not part of study "
                                   f"{self.study.study_id}.")
        return "answers"

    def _check_value(self, question_key: str, value: str) -> str:
        """The option letter for `value` (a letter, or an option's text)."""
        question = self._questions.get(question_key)
        if question is None:
            raise RatingStoreError(f"The study does not ask the question {question_key!r}; it "
                                   f"asks {', '.join(self._questions)}.")
        for option in question.options:
            if value in (option.letter, option.text):
                return option.letter
        raise RatingStoreError(f"{value!r} is no answer to {question_key!r}; give one of "
                               f"{', '.join(question.letters)}.")


def truth_when_flagged(study: Study) -> bool:
    """Whether a practice case flagged not assessable shows its truth without every answer:
    study.json's `practice_truth_when_flagged`, false unless it is true."""
    return study.manifest.get(TRUTH_WHEN_FLAGGED, False) is True


def _check_seconds(seconds: float) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise RatingStoreError(f"{seconds!r} is not a valid time in seconds; give a number >= 0.")
    return value


def _initialise_or_load(conn: sqlite3.Connection, path: Path, study: Study,
                        reader: str) -> list[str]:
    """Create the schema and the reader's order in a new database, or check and load an old one
    (bringing an older version to the current one); InvalidRatingsError or EditedRatingsError
    for a database edited outside mdiff (nothing is migrated then)."""
    version = _check_schema(conn, path)
    if not version:
        seed = order_seed(study.study_id, reader)
        order = shuffled_case_order(study.case_ids, seed)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for step in range(1, SCHEMA_VERSION + 1):
                for statement in _SCHEMAS[step]:
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES (?, ?, ?, ?)",
                         (study.study_id, reader, seed, utc_now()))
            conn.executemany("INSERT INTO case_order VALUES (?, ?)", enumerate(order))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return order
    try:
        stored = _read_all(conn, path, version, study)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    if stored.reader != reader:
        raise RatingStoreError(f"The ratings database {path} belongs to reader "
                               f"'{stored.reader}'; open it under that name.")
    refuse_edited([stored], "restore it from a backup before rating on")
    if version < SCHEMA_VERSION:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _SCHEMAS[step]:
                    conn.execute(statement)
                if step == 3:
                    _mark_truth_shown(conn, study)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return stored.case_order


def _mark_truth_shown(conn: sqlite3.Connection, study: Study) -> None:
    """Bring a version 2 database's practice cases to version 3: version 2 showed a practice
    case's truth the moment the case became done (every question answered, or flagged), so
    that history entry is when the truth was shown, and the answers given after it are marked."""
    keys = set(study.question_keys)
    answered: dict[str, set[str]] = {}
    flagged: dict[str, bool] = {}
    shown: dict[str, tuple[str, int]] = {}  # case -> (time, seq) of the entry that made it done
    given_at: dict[tuple[str, str], int] = {}  # (case, question) -> seq of the current answer
    rows = conn.execute("SELECT seq, case_id, item, value, changed_at FROM answer_history "
                        "ORDER BY seq").fetchall()
    for seq, case_id, item, value, changed_at in rows:
        if not study.is_practice(case_id):
            continue
        if item == NOT_ASSESSABLE:
            flagged[case_id] = value == "1"
        elif item in keys:
            answered.setdefault(case_id, set()).add(item)
            given_at[(case_id, item)] = seq
        if case_id not in shown and (flagged.get(case_id) or answered.get(case_id) == keys):
            shown[case_id] = (changed_at, seq)
    conn.executemany("INSERT INTO truth_shown (case_id, shown_at, history_seq) VALUES (?, ?, ?)",
                     [(case_id, at, seq) for case_id, (at, seq) in shown.items()])
    conn.executemany("UPDATE practice_answers SET after_truth = 1 WHERE case_id = ? AND "
                     "question = ?", [key for key, seq in given_at.items()
                                      if key[0] in shown and seq > shown[key[0]][1]])


def read_study_ratings(study: Study) -> list[ReaderRatings]:
    """Every reader database of a study, checked (`read_reader_ratings`) and sorted by reader;
    RatingStoreError for a foreign one."""
    if not study.ratings_dir.is_dir():
        return []
    found = [read_reader_ratings(path, study)
             for path in sorted(study.ratings_dir.glob(f"*{DATABASE_SUFFIX}"))]
    return sorted(found, key=lambda r: r.reader)
