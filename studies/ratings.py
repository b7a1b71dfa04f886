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
                   `answers` (status, export, merge) ever counts them
  case_notes       (case_id, comment, not_assessable, noted_at): the free-text comment and the
                   "image cannot be assessed" flag of a case or practice case
  answer_history   (seq, case_id, item, value, changed_at, seconds_on_case): every answer,
                   comment and flag as it was given, in order; item is a question key,
                   `comment` or `not_assessable` (value "1"/"0"); never updated or deleted
  case_time        (case_id, seconds)                           time spent on a case, accumulated
`value` is the option's letter (A-D, R/S, 1-4). Version 1 (before practice cases, notes and the
history) is read as it is and brought to version 2 when a store opens it: its tables stay as they
were, and each current answer becomes the first entry of the history.

A case is **done** when every question has an answer or it is flagged not assessable. When the
study's `answers_editable` is false, a done case's answers and flag are final (`can_change`);
comments can always change.

Every failure of the database surfaces as a `RatingStoreError`, never as a raw `sqlite3.Error`, so
callers (the reader app) need not know the storage.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import random
import re
import sqlite3
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from studies.questions import Question
from studies.study import Study, StudyError, utc_now

SCHEMA_VERSION = 2
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
_TABLES = {1: {"meta", "case_order", "answers", "case_time"}}
_TABLES[2] = _TABLES[1] | {"practice_answers", "case_notes", "answer_history"}


class RatingStoreError(StudyError):
    """A ratings database that cannot be used (corrupt, foreign, locked) or a bad answer."""


class ReaderLockedError(RatingStoreError):
    """Another window or process already has this reader's database open."""


class AnswersFinalError(RatingStoreError):
    """A change to a done case's answers in a study whose answers are final."""


class TruthNotShownError(RatingStoreError):
    """The truth of a practice case asked before the case was answered."""


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

    def same_ratings(self, other: ReaderRatings) -> bool:
        """Whether two copies of a reader's database hold the same answers, comments and flags."""
        return (self.answers, self.practice_answers, self.notes) == \
            (other.answers, other.practice_answers, other.notes)


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
    """The schema version the database holds (1 or 2), 0 when it is empty; raise otherwise."""
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    if version == 0 and not tables:
        return 0
    if version > SCHEMA_VERSION:
        raise RatingStoreError(
            f"The ratings database {path} has schema version {version}, newer than this mdiff "
            f"reads ({SCHEMA_VERSION}); open it with the newer mdiff.")
    if version not in _TABLES or not _TABLES[version] <= tables:
        raise RatingStoreError(f"{path} is not an mdiff ratings database; move it out of the "
                               "study's ratings folder.")
    return version


def read_reader_ratings(path: Path) -> ReaderRatings:
    """Read a whole ratings database without writing to it; RatingStoreError when unusable."""
    conn = _connect(path)
    try:
        version = _check_schema(conn, path)
        if not version:
            raise RatingStoreError(f"The ratings database {path} is empty; move it out of the "
                                   "study's ratings folder.")
        return _read_all(conn, path, version)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    finally:
        conn.close()


def _read_all(conn: sqlite3.Connection, path: Path, version: int) -> ReaderRatings:
    """Every table of an open, checked database of schema `version`."""
    meta = conn.execute("SELECT study_id, reader FROM meta").fetchall()
    if len(meta) != 1:
        raise RatingStoreError(f"The ratings database {path} has {len(meta)} meta rows instead "
                               "of one; restore it from a backup.")
    order = [r[0] for r in conn.execute("SELECT case_id FROM case_order ORDER BY position")]
    ratings = ReaderRatings(path, meta[0][0], meta[0][1], order)
    tables = (("answers", ratings.answers), ("practice_answers", ratings.practice_answers))
    for table, answers in tables[:1 if version == 1 else 2]:
        rows = conn.execute("SELECT case_id, question, value, answered_at, seconds_on_case "
                            f"FROM {table}")
        for case_id, question, value, answered_at, seconds in rows:
            answers.setdefault(case_id, {})[question] = value
            ratings.answered_at[case_id] = max(answered_at, ratings.answered_at.get(case_id, ""))
            ratings.answer_seconds[case_id] = max(seconds,
                                                  ratings.answer_seconds.get(case_id, 0.0))
    ratings.case_time = dict(conn.execute("SELECT case_id, seconds FROM case_time"))
    if version >= 2:
        ratings.notes = {case_id: CaseNote(comment, bool(flag)) for case_id, comment, flag
                         in conn.execute("SELECT case_id, comment, not_assessable "
                                         "FROM case_notes")}
    return ratings


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
        """A practice case's truth, "real" or "synthetic", once the case is done.

        TruthNotShownError before that; RatingStoreError for a study case, whose truth is only
        in the key outside the study.
        """
        if not self.study.is_practice(case_id):
            raise RatingStoreError(f"Case {case_id!r} is no practice case of study "
                                   f"{self.study.study_id}; only practice cases have their "
                                   "truth shown.")
        if not self.is_done(case_id):
            raise TruthNotShownError(f"Practice case {case_id} is not answered yet; its truth "
                                     "is shown once every question is answered.")
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
            self.conn.execute(
                f"INSERT INTO {table} (case_id, question, value, answered_at, seconds_on_case) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id, question) DO UPDATE SET "
                "value = excluded.value, answered_at = excluded.answered_at, "
                "seconds_on_case = excluded.seconds_on_case",
                (case_id, question_key, letter, now, seconds))
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
    (bringing a version 1 database to version 2)."""
    version = _check_schema(conn, path)
    if not version:
        seed = order_seed(study.study_id, reader)
        order = shuffled_case_order(study.case_ids, seed)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA_1 + _SCHEMA_2:
                conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES (?, ?, ?, ?)",
                         (study.study_id, reader, seed, utc_now()))
            conn.executemany("INSERT INTO case_order VALUES (?, ?)", enumerate(order))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return order
    try:
        stored = _read_all(conn, path, version)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    if stored.study_id != study.study_id:
        raise RatingStoreError(f"The ratings database {path} belongs to study {stored.study_id}, "
                               f"not {study.study_id}; move it out of the ratings folder.")
    if stored.reader != reader:
        raise RatingStoreError(f"The ratings database {path} belongs to reader "
                               f"'{stored.reader}'; open it under that name.")
    if sorted(stored.case_order) != sorted(study.case_ids):
        raise RatingStoreError(f"The ratings database {path} lists other cases than the study; "
                               "it does not belong to this study's version.")
    if version == 1:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA_2:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return stored.case_order


def read_study_ratings(study: Study) -> list[ReaderRatings]:
    """Every reader database of a study, sorted by reader; RatingStoreError for a foreign one."""
    if not study.ratings_dir.is_dir():
        return []
    found = []
    for path in sorted(study.ratings_dir.glob(f"*{DATABASE_SUFFIX}")):
        ratings = read_reader_ratings(path)
        if ratings.study_id != study.study_id:
            raise RatingStoreError(f"The ratings database {path} belongs to study "
                                   f"{ratings.study_id}, not {study.study_id}; move it out of "
                                   "the ratings folder.")
        if sorted(ratings.case_order) != sorted(study.case_ids):
            raise RatingStoreError(f"The ratings database {path} lists other cases than the "
                                   "study; it does not belong to this study's version.")
        found.append(ratings)
    return sorted(found, key=lambda r: r.reader)
