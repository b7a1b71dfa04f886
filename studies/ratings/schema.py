"""The tables of a ratings database, their versions, opening the file and migrating it.

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
  trial_layout     (mirrored)   in a paired (2AFC) study, one row: 1 when this reader sees every
                   trial with its sides swapped (the mirror of study.json's layout A), else 0;
                   empty in a single-reading study
In a paired study every `case_id` above is a trial id (or practice trial id).
`value` is the option's letter (A-D, R/S, 1-4). Older versions are read as they are and brought
to the current one when a store opens them, their tables kept as they were: version 1 (before
practice cases, notes and the history) gets the history with each current answer as its first
entry; version 2 (before `truth_shown`) gets, for each practice case, the moment version 2 showed
its truth (the history entry that made the case done) and the mark on the answers given later;
version 3 (before paired studies) gets the empty `trial_layout` table, and nothing else changes.

A database whose tables and columns are not exactly those of the version it names is refused (a
newer database relabelled older is refused, not migrated and cut).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from studies.ratings import done
from studies.ratings.errors import InvalidRatingsError, RatingStoreError
from studies.ratings.records import NOT_ASSESSABLE
from studies.study import Study, utc_now

SCHEMA_VERSION = 4

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
# What version 4 adds to version 3: a paired study's per-reader layout (one row, or none).
_SCHEMA_4 = (
    """CREATE TABLE trial_layout (mirrored INTEGER NOT NULL)""",
)
# Version -> the statements that make it from the version before (version 1: from nothing).
_SCHEMAS = {1: _SCHEMA_1, 2: _SCHEMA_2, 3: _SCHEMA_3, 4: _SCHEMA_4}


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with durable commits: a
    rollback journal and `synchronous=FULL`, so a crash loses nothing already committed."""
    try:
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as err:
        raise corrupt(path, err) from None
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as err:
        conn.close()
        raise corrupt(path, err) from None
    return conn


def corrupt(path: Path, err: Exception) -> RatingStoreError:
    """The error for a database that cannot be read; the file is left as it is."""
    return RatingStoreError(
        f"The ratings database {path} is unreadable ({err}); it was left untouched: restore it "
        "from a backup or move it away to start this reader afresh.")


@contextmanager
def database_errors(path: Path) -> Iterator[None]:
    """Inside the block, an sqlite3 error becomes a RatingStoreError naming the database."""
    try:
        yield
    except sqlite3.Error as err:
        raise RatingStoreError(
            f"The ratings database {path} failed ({err}); check that the disk is not full and "
            "that the study folder is writable.") from None


def check_schema(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version the database holds, 0 when it is empty; raise when its tables and
    columns are not exactly those of the version it names."""
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("integrity check failed")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        layout = _layout_of(conn)
    except sqlite3.DatabaseError as err:
        raise corrupt(path, err) from None
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


def create(conn: sqlite3.Connection, study_id: str, reader: str, seed: str,
           order: list[str], mirrored: bool | None = None) -> None:
    """Make an empty database one of the current version, holding the reader's meta row, case
    order and, in a paired study, whether the reader sees the mirror of layout A (one
    transaction)."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for step in range(1, SCHEMA_VERSION + 1):
            for statement in _SCHEMAS[step]:
                conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES (?, ?, ?, ?)", (study_id, reader, seed, utc_now()))
        conn.executemany("INSERT INTO case_order VALUES (?, ?)", enumerate(order))
        if mirrored is not None:
            conn.execute("INSERT INTO trial_layout (mirrored) VALUES (?)", (int(mirrored),))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection, version: int, study: Study) -> None:
    """Bring a checked database of an older schema `version` to the current one (one
    transaction), its tables kept as they were."""
    with conn:
        conn.execute("BEGIN IMMEDIATE")
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in _SCHEMAS[step]:
                conn.execute(statement)
            if step == 3:
                _mark_truth_shown(conn, study)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _mark_truth_shown(conn: sqlite3.Connection, study: Study) -> None:
    """Bring a version 2 database's practice cases to version 3: version 2 showed a practice
    case's truth the moment the case became done (every question answered, or flagged), so
    that history entry is when the truth was shown, and the answers given after it are marked."""
    keys = study.question_keys
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
        if case_id not in shown and done.is_done(answered.get(case_id, set()),
                                                 flagged.get(case_id, False), keys):
            shown[case_id] = (changed_at, seq)
    conn.executemany("INSERT INTO truth_shown (case_id, shown_at, history_seq) VALUES (?, ?, ?)",
                     [(case_id, at, seq) for case_id, (at, seq) in shown.items()])
    conn.executemany("UPDATE practice_answers SET after_truth = 1 WHERE case_id = ? AND "
                     "question = ?", [key for key, seq in given_at.items()
                                      if key[0] in shown and seq > shown[key[0]][1]])
