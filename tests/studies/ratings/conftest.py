"""Fixtures for the ratings tests: a rated study, and editing a database as the sqlite3 shell
would."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from studies.ratings import RatingStore
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
PRACTICE = {"P01": "synthetic", "P02": "real"}


def answer_all(store: RatingStore, case_id: str, letters: str = "CDB",
               seconds: float = 4.0) -> None:
    """Answer the three Table 1 questions of a case."""
    for question, letter in zip(TABLE1, letters, strict=True):
        store.record_answer(case_id, question, letter, seconds)


def edit(path: Path, sql: str, params: dict[str, str] | None = None) -> None:
    """Change a database as someone with the sqlite3 shell would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql, params or {})
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def edit_database() -> Callable[..., None]:
    """`edit(path, sql, params=None)`: change a database outside mdiff (a function)."""
    return edit


@pytest.fixture
def answer_case() -> Callable[..., None]:
    """`answer_all(store, case_id, letters="CDB", seconds=4.0)`: answer a case's three Table 1
    questions (a function)."""
    return answer_all


@pytest.fixture
def one_sentence(capsys) -> Callable[[], str]:
    """A function returning what the command wrote on stderr, checked to be one line and no
    traceback."""
    def read() -> str:
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        return err
    return read


@pytest.fixture
def rated(tmp_path, study_folder_with):
    """A 6-case study with two practice cases; reader anna answered P01, saw its truth and
    changed one answer after it, answered her first case (C D B), flagged and commented her
    second and spent time on both. Returns the study, the database and the ids by role."""
    study = Study.open(study_folder_with(tmp_path / "study", n_cases=6, practice=PRACTICE))
    with RatingStore.open(study, "anna") as store:
        answer_all(store, "P01")
        assert store.practice_truth("P01") == "synthetic"
        store.record_answer("P01", "slice_consistency", "A", 6.0)  # after the truth
        case, flagged = store.case_order[:2]
        answer_all(store, case)
        store.add_time(case, 12.0)
        store.set_comment(flagged, "only noise")
        store.set_not_assessable(flagged, True)
        path = store.path
    return study, path, {"case": case, "flagged": flagged, "practice": "P01"}
