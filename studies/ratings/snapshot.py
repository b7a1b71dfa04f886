"""A reader's database read whole and checked, without writing to it: status, export and merge.

Every read checks the database (`studies.ratings.validate`): one holding what mdiff never writes
is refused with an `InvalidRatingsError`; the cases whose history does not explain them are listed
in `ReaderRatings.history_disagrees`, and `refuse_edited` refuses those databases.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from studies.ratings import done
from studies.ratings.errors import EditedRatingsError, RatingStoreError, case_list
from studies.ratings.readers import DATABASE_SUFFIX
from studies.ratings.records import CaseNote
from studies.ratings.schema import check_schema, connect, corrupt
from studies.ratings.validate import Answers, ValueChecks, check_belongs, history_disagrees
from studies.study import Study


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
    # A paired study's reader: True when every trial is shown with its sides swapped (the
    # mirror of layout A); None for a single-reading study's.
    mirrored: bool | None = None

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case, or the most seconds given with its answers if none was."""
        return done.seconds_on_case(self.case_time.get(case_id), self.answer_seconds.get(case_id))

    def given(self, case_id: str) -> dict[str, str]:
        """Question -> value given for a case or practice case."""
        return self.practice_answers.get(case_id) or self.answers.get(case_id, {})

    def note(self, case_id: str) -> CaseNote:
        """The comment and flag of a case (empty and unflagged when none was given)."""
        return self.notes.get(case_id, CaseNote())

    def is_complete(self, case_id: str, question_keys: tuple[str, ...]) -> bool:
        """Whether every question was answered for the case."""
        return done.is_complete(self.given(case_id), question_keys)

    def is_done(self, case_id: str, question_keys: tuple[str, ...]) -> bool:
        """Whether the case is complete or flagged not assessable."""
        return done.is_done(self.given(case_id), self.note(case_id).not_assessable,
                            question_keys)

    def answered_after_truth(self, case_id: str) -> bool:
        """Whether any current answer of a practice case was given after its truth was shown."""
        return bool(self.after_truth.get(case_id))

    def same_ratings(self, other: ReaderRatings) -> bool:
        """Whether two copies of a reader's database hold the same answers, comments and flags
        (in a paired study, given on the same sides)."""
        return (self.answers, self.practice_answers, self.notes, self.after_truth,
                self.mirrored) == (other.answers, other.practice_answers, other.notes,
                                   other.after_truth, other.mirrored)


def read_reader_ratings(path: Path, study: Study | None = None) -> ReaderRatings:
    """Read and check a whole ratings database without writing to it; RatingStoreError when
    unusable, InvalidRatingsError when it holds what mdiff never writes (`validate`).
    With `study`, the database must be that study's and its answers those of its questions."""
    conn = connect(path)
    try:
        version = check_schema(conn, path)
        if not version:
            raise RatingStoreError(f"The ratings database {path} is empty; move it out of the "
                                   "study's ratings folder.")
        return read_all(conn, path, version, study)
    except sqlite3.DatabaseError as err:
        raise corrupt(path, err) from None
    finally:
        conn.close()


def read_study_ratings(study: Study) -> list[ReaderRatings]:
    """Every reader database of a study, checked (`read_reader_ratings`) and sorted by reader;
    RatingStoreError for a foreign one."""
    if not study.ratings_dir.is_dir():
        return []
    found = [read_reader_ratings(path, study)
             for path in sorted(study.ratings_dir.glob(f"*{DATABASE_SUFFIX}"))]
    return sorted(found, key=lambda r: r.reader)


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


def read_all(conn: sqlite3.Connection, path: Path, version: int,
             study: Study | None = None) -> ReaderRatings:
    """Every table of an open database of schema `version`, each value checked (`ValueChecks`)
    and the history replayed against the current state (`history_disagrees`)."""
    ratings, check = _read_meta(conn, path, study)
    current = _read_answers(conn, ratings, check, version)
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
        check.history_entry(case_id, item, value, changed_at, seconds)
    shown_after = _read_truth_shown(conn, ratings, check) if version >= 3 else {}
    if version >= 4:
        ratings.mirrored = _read_layout(conn, check, study)
    ratings.history_disagrees = history_disagrees(current, ratings.notes, ratings.after_truth,
                                                  history, shown_after)
    return ratings


def _read_meta(conn: sqlite3.Connection, path: Path,
               study: Study | None) -> tuple[ReaderRatings, ValueChecks]:
    """The database's study, reader and case order (checked), and the checks of its values."""
    meta = conn.execute("SELECT study_id, reader FROM meta").fetchall()
    if len(meta) != 1:
        raise RatingStoreError(f"The ratings database {path} has {len(meta)} meta rows instead "
                               "of one; restore it from a backup.")
    order = [r[0] for r in conn.execute("SELECT case_id FROM case_order ORDER BY position")]
    check = ValueChecks(path, order, study)
    if not all(isinstance(text, str) for text in (*meta[0], *order)):
        raise check.fail("a study id, reader name or case id that is not text")
    if study is not None:
        check_belongs(path, study, meta[0][0], order)
    return ReaderRatings(path, meta[0][0], meta[0][1], order), check


def _read_answers(conn: sqlite3.Connection, ratings: ReaderRatings, check: ValueChecks,
                  version: int) -> Answers:
    """Read the answers and practice answers into `ratings`, each checked; the answers with
    their times, to compare with the history."""
    current: Answers = {}
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
    return current


def read_mirrored(conn: sqlite3.Connection) -> bool | None:
    """The `trial_layout` row of an open (current) database: whether its reader sees the mirror
    of layout A; None without one (a single-reading study)."""
    rows = conn.execute("SELECT mirrored FROM trial_layout").fetchall()
    return bool(rows[0][0]) if rows else None


def other_layouts(ratings_dir: Path, path: Path) -> list[bool]:
    """Whether each reader database in `ratings_dir` but `path` sees the mirror of layout A,
    read without writing; a database that cannot be read, or has no layout, is left out."""
    layouts = []
    for other in sorted(ratings_dir.glob(f"*{DATABASE_SUFFIX}")):
        if other.name == path.name:
            continue
        try:
            conn = sqlite3.connect(f"{other.resolve().as_uri()}?mode=ro", uri=True)
            try:
                mirrored = read_mirrored(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            continue
        if mirrored is not None:
            layouts.append(mirrored)
    return layouts


def _read_layout(conn: sqlite3.Connection, check: ValueChecks,
                 study: Study | None) -> bool | None:
    """The checked `trial_layout`: one row of 0 or 1 in a paired study's database, none in a
    single-reading study's (either, without the study)."""
    rows = [row[0] for row in conn.execute("SELECT mirrored FROM trial_layout")]
    paired = None if study is None else study.design == "2afc"
    expected = {None: (0, 1), True: (1,), False: (0,)}[paired]
    if len(rows) not in expected:
        raise check.fail(f"{len(rows)} rows in trial_layout, where a "
                         f"{'paired' if paired else 'single-reading'} study's database has "
                         f"{expected[0]}")
    if rows and (type(rows[0]) is not int or rows[0] not in (0, 1)):
        raise check.fail(f"the value {rows[0]!r} in trial_layout, not 0 or 1")
    return bool(rows[0]) if rows else None


def _read_truth_shown(conn: sqlite3.Connection, ratings: ReaderRatings,
                      check: ValueChecks) -> dict[str, int]:
    """Read when each practice case's truth was shown into `ratings`, checked; practice case ->
    the last history entry before its truth."""
    shown_after: dict[str, int] = {}
    for case_id, shown_at, seq in conn.execute(
            "SELECT case_id, shown_at, history_seq FROM truth_shown"):
        check.case(case_id, "truth_shown", True)
        ratings.truth_shown[case_id] = check.stamp(shown_at, case_id, "truth_shown")
        if type(seq) is not int:
            raise check.fail(f"the history position {seq!r} for case {case_id} in "
                             "truth_shown, not a whole number")
        shown_after[case_id] = seq
    return shown_after
