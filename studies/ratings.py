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
  meta       (study_id, reader, order_seed, created_at)   one row
  case_order (position, case_id)                          this reader's shuffled order
  answers    (case_id, question, value, answered_at, seconds_on_case), key (case_id, question)
  case_time  (case_id, seconds)                           time spent on a case, accumulated
`value` is the option's letter (A-D, R/S, 1-4).

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

from studies.questions import Question
from studies.study import Study, StudyError, utc_now

SCHEMA_VERSION = 1
DATABASE_SUFFIX = ".sqlite"
LOCK_SUFFIX = ".lock"
MAX_READER_LENGTH = 64
_READER_PUNCTUATION = " -_."

_SCHEMA = (
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
_TABLES = {"meta", "case_order", "answers", "case_time"}


class RatingStoreError(StudyError):
    """A ratings database that cannot be used (corrupt, foreign, locked) or a bad answer."""


class ReaderLockedError(RatingStoreError):
    """Another window or process already has this reader's database open."""


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

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case, or the time given with its latest answer if none was."""
        if case_id in self.case_time:
            return self.case_time[case_id]
        return self.answer_seconds.get(case_id, 0.0)

    def is_complete(self, case_id: str, question_keys: tuple[str, ...]) -> bool:
        """Whether every question was answered for the case."""
        given = self.answers.get(case_id, {})
        return all(key in given for key in question_keys)


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


def _check_schema(conn: sqlite3.Connection, path: Path) -> bool:
    """True when the database holds our schema, False when it is empty; raise otherwise."""
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    if version == 0 and not tables:
        return False
    if version > SCHEMA_VERSION:
        raise RatingStoreError(
            f"The ratings database {path} has schema version {version}, newer than this mdiff "
            f"reads ({SCHEMA_VERSION}); open it with the newer mdiff.")
    if version != SCHEMA_VERSION or not _TABLES <= tables:
        raise RatingStoreError(f"{path} is not an mdiff ratings database; move it out of the "
                               "study's ratings folder.")
    return True


def read_reader_ratings(path: Path) -> ReaderRatings:
    """Read a whole ratings database without writing to it; RatingStoreError when unusable."""
    conn = _connect(path)
    try:
        if not _check_schema(conn, path):
            raise RatingStoreError(f"The ratings database {path} is empty; move it out of the "
                                   "study's ratings folder.")
        return _read_all(conn, path)
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, err) from None
    finally:
        conn.close()


def _read_all(conn: sqlite3.Connection, path: Path) -> ReaderRatings:
    """Every table of an open, checked database."""
    meta = conn.execute("SELECT study_id, reader FROM meta").fetchall()
    if len(meta) != 1:
        raise RatingStoreError(f"The ratings database {path} has {len(meta)} meta rows instead "
                               "of one; restore it from a backup.")
    order = [r[0] for r in conn.execute("SELECT case_id FROM case_order ORDER BY position")]
    ratings = ReaderRatings(path, meta[0][0], meta[0][1], order)
    rows = conn.execute("SELECT case_id, question, value, answered_at, seconds_on_case "
                        "FROM answers")
    for case_id, question, value, answered_at, seconds in rows:
        ratings.answers.setdefault(case_id, {})[question] = value
        ratings.answered_at[case_id] = max(answered_at, ratings.answered_at.get(case_id, ""))
        ratings.answer_seconds[case_id] = max(seconds, ratings.answer_seconds.get(case_id, 0.0))
    ratings.case_time = dict(conn.execute("SELECT case_id, seconds FROM case_time"))
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

    def answers(self, case_id: str) -> dict[str, str]:
        """Question key -> value given so far for one case."""
        self._check_case(case_id)
        with _database_errors(self.path):
            rows = self.conn.execute("SELECT question, value FROM answers WHERE case_id = ?",
                                     (case_id,))
            return dict(rows.fetchall())

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None:
        """Store an answer at once (committed), replacing an earlier one for the same question."""
        self._check_case(case_id)
        letter = self._check_value(question_key, value)
        seconds = _check_seconds(seconds_on_case)
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO answers (case_id, question, value, answered_at, seconds_on_case) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id, question) DO UPDATE SET "
                "value = excluded.value, answered_at = excluded.answered_at, "
                "seconds_on_case = excluded.seconds_on_case",
                (case_id, question_key, letter, utc_now(), seconds))

    def add_time(self, case_id: str, seconds: float) -> None:
        """Add time spent on a case to its total (committed)."""
        self._check_case(case_id)
        seconds = _check_seconds(seconds)
        with _database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO case_time (case_id, seconds) VALUES (?, ?) ON CONFLICT (case_id) "
                "DO UPDATE SET seconds = seconds + excluded.seconds", (case_id, seconds))

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case (or, without any, the time given with its answers)."""
        self._check_case(case_id)
        with _database_errors(self.path):
            row = self.conn.execute("SELECT seconds FROM case_time WHERE case_id = ?",
                                    (case_id,)).fetchone()
            if row is not None:
                return float(row[0])
            row = self.conn.execute("SELECT MAX(seconds_on_case) FROM answers WHERE case_id = ?",
                                    (case_id,)).fetchone()
        return float(row[0]) if row[0] is not None else 0.0

    def is_complete(self, case_id: str) -> bool:
        """Whether every question of the study has an answer for this case."""
        return all(key in self.answers(case_id) for key in self._questions)

    def first_unrated_index(self) -> int:
        """Index in case_order of the first incomplete case; len(case_order) when all are done."""
        with _database_errors(self.path):
            counts = dict(self.conn.execute(
                "SELECT case_id, COUNT(*) FROM answers GROUP BY case_id").fetchall())
        for index, case_id in enumerate(self.case_order):
            if counts.get(case_id, 0) < len(self._questions):
                return index
        return len(self.case_order)

    def _check_case(self, case_id: str) -> None:
        """RatingStoreError for an id that is not one of the study's cases."""
        if case_id not in self.case_order:
            raise RatingStoreError(f"Case {case_id!r} is not part of study "
                                   f"{self.study.study_id}.")

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
    """Create the schema and the reader's order in a new database, or check and load an old one."""
    if not _check_schema(conn, path):
        seed = order_seed(study.study_id, reader)
        order = shuffled_case_order(study.case_ids, seed)
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES (?, ?, ?, ?)",
                         (study.study_id, reader, seed, utc_now()))
            conn.executemany("INSERT INTO case_order VALUES (?, ?)", enumerate(order))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return order
    try:
        stored = _read_all(conn, path)
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
