"""The schema: a corrupt, newer, relabelled or extended database is refused and left as it is;
a version 2 database is migrated with the truth version 2 showed."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from studies.cli.study import main
from studies.ratings import (
    SCHEMA_VERSION,
    InvalidRatingsError,
    RatingStore,
    RatingStoreError,
    ReaderLockedError,
    read_reader_ratings,
)
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
V2_STUDY = Path(__file__).resolve().parents[1] / "data" / "v2_study"


def test_corrupt_database_is_reported_and_left_untouched(study_folder):
    study = Study.open(study_folder)
    path = study_folder / "ratings" / "anna.sqlite"
    garbage = b"this is not a database, just some bytes " * 200
    path.write_bytes(garbage)
    for _ in range(2):  # the failed open released the lock: the second try fails the same way
        with pytest.raises(RatingStoreError) as caught:
            RatingStore.open(study, "anna")
        assert not isinstance(caught.value, ReaderLockedError)
        assert str(path) in str(caught.value) and "left untouched" in str(caught.value)
    assert path.read_bytes() == garbage


def test_newer_schema_is_refused(study_folder):
    study = Study.open(study_folder)
    RatingStore.open(study, "anna").close()
    conn = sqlite3.connect(study_folder / "ratings" / "anna.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RatingStoreError, match="newer than this mdiff reads"):
        RatingStore.open(study, "anna")


def test_a_newer_database_relabelled_older_is_refused_not_migrated(rated, edit_database,
                                                                   one_sentence):
    """A version 3 database labelled 1 would lose its practice answers, comments and flags to
    a reader of version 1 and fail its migration: refused, and left as it is."""
    study, path, _ = rated
    edit_database(path, "PRAGMA user_version = 1")
    edited = path.read_bytes()
    message = f"names schema version 1 but has the tables of version {SCHEMA_VERSION}"
    with pytest.raises(InvalidRatingsError, match=message):
        read_reader_ratings(path)
    with pytest.raises(InvalidRatingsError, match=message):
        RatingStore.open(study, "anna")
    assert main(["status", str(study.folder)]) == 2
    assert message in one_sentence()
    assert path.read_bytes() == edited


@pytest.mark.parametrize(("sql", "said"), [
    ("ALTER TABLE answers ADD COLUMN reviewer TEXT", "the columns case_id, question, value, "
     "answered_at, seconds_on_case, reviewer in answers"),
    ("CREATE TABLE answers_backup (x)", "the table answers_backup"),
])
def test_tables_and_columns_the_version_lacks_are_refused(rated, edit_database, sql, said):
    study, path, _ = rated
    edit_database(path, sql)
    with pytest.raises(InvalidRatingsError, match=f"has {said}, which its schema version"):
        read_reader_ratings(path, study)


def test_a_version_2_database_relabelled_1_keeps_its_notes(tmp_path, edit_database):
    path = tmp_path / "Anna.sqlite"
    shutil.copy(V2_STUDY / "ratings" / "Anna.sqlite", path)
    edit_database(path, "PRAGMA user_version = 1")
    with pytest.raises(InvalidRatingsError, match="names schema version 1 but has the tables of "
                                                  "version 2; it was relabelled"):
        read_reader_ratings(path)


def _v2_study(tmp_path: Path) -> Study:
    """A copy of tests/studies/data/v2_study with (empty) case files."""
    folder = tmp_path / "v2_study"
    shutil.copytree(V2_STUDY, folder)
    manifest = json.loads((folder / "study.json").read_text())
    for kind, ids in (("cases", manifest["cases"]),
                      ("practice", [p["case_id"] for p in manifest["practice"]])):
        (folder / kind).mkdir()
        for case_id in ids:
            (folder / kind / f"{case_id}.nii.gz").write_bytes(b"")
    return Study.open(folder)


def test_a_version_2_database_gets_the_truth_version_2_showed(tmp_path):
    # tests/studies/data/v2_study was written by the schema 2 RatingStore of main at 0269032:
    # reader Anna answered P01 (C C C), was shown its truth, changed realistic_appearance to D;
    # flagged P02 (version 2 showed its truth then), took the flag back and answered it (A B A);
    # answered her first case (B C D, 21.5 s) and commented and flagged her second.
    study = _v2_study(tmp_path)
    path = study.ratings_dir / "Anna.sqlite"
    before = read_reader_ratings(path, study)  # read as version 2, without writing
    assert before.after_truth == {} and before.history_disagrees == []
    first, second = before.case_order[:2]
    with RatingStore.open(study, "anna") as store:  # opening migrates it
        assert store.answers("P01")["realistic_appearance"] == "D"
        store.set_comment(first, "after the migration")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT case_id, history_seq FROM truth_shown ORDER BY case_id"
                            ).fetchall() == [("P01", 3), ("P02", 5)]
    after = read_reader_ratings(path, study)
    assert after.history_disagrees == []
    assert after.after_truth == {"P01": {"realistic_appearance"}, "P02": set(TABLE1)}
    assert (after.answers, after.practice_answers) == (before.answers, before.practice_answers)
    assert after.note(second).not_assessable and after.note(first).comment == \
        "after the migration"
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice"]) == 0
    rows = {r["case_id"]: r for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())}
    assert (rows["P01"]["after_truth"], rows["P02"]["after_truth"], rows[first]["after_truth"]) \
        == ("1", "1", "0")


