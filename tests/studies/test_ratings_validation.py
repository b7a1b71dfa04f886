"""A reader database edited outside mdiff: impossible values, a history that does not explain
the answers, a schema relabelled; the truth of practice cases and the answers given after it."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from studies.cli.study import main
from studies.export import export_study
from studies.ratings import (
    SCHEMA_VERSION,
    EditedRatingsError,
    InvalidRatingsError,
    RatingStore,
    TruthNotShownError,
    read_reader_ratings,
)
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
PRACTICE = {"P01": "synthetic", "P02": "real"}
V2_STUDY = Path(__file__).parent / "data" / "v2_study"


def _answer(store: RatingStore, case_id: str, letters: str = "CDB", seconds: float = 4.0) -> None:
    for question, letter in zip(TABLE1, letters, strict=True):
        store.record_answer(case_id, question, letter, seconds)


def _edit(path: Path, sql: str, params: dict[str, str] | None = None) -> None:
    """Change a database as someone with the sqlite3 shell would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql, params or {})
        conn.commit()
    finally:
        conn.close()


def _one_sentence(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def rated(tmp_path, study_folder_with):
    """A 6-case study with two practice cases; reader anna answered P01, saw its truth and
    changed one answer after it, answered her first case (C D B), flagged and commented her
    second and spent time on both. Returns the study, the database and the ids by role."""
    study = Study.open(study_folder_with(tmp_path / "study", n_cases=6, practice=PRACTICE))
    with RatingStore.open(study, "anna") as store:
        _answer(store, "P01")
        assert store.practice_truth("P01") == "synthetic"
        store.record_answer("P01", "slice_consistency", "A", 6.0)  # after the truth
        case, flagged = store.case_order[:2]
        _answer(store, case)
        store.add_time(case, 12.0)
        store.set_comment(flagged, "only noise")
        store.set_not_assessable(flagged, True)
        path = store.path
    return study, path, {"case": case, "flagged": flagged, "practice": "P01"}


def test_an_unedited_database_reads_back_with_its_marks(rated):
    study, path, ids = rated
    ratings = read_reader_ratings(path, study)
    assert ratings.history_disagrees == []
    assert ratings.after_truth == {"P01": {"slice_consistency"}}
    assert list(ratings.truth_shown) == ["P01"]


# Each: an edit, then what the one sentence says of the value.
IMPOSSIBLE = [
    ("UPDATE answers SET value = 'Z' WHERE question = 'realistic_appearance'",
     "the answer 'Z' to realistic_appearance"),
    ("UPDATE practice_answers SET value = 'R' WHERE question = 'slice_consistency'",
     "the answer 'R' to slice_consistency"),
    ("UPDATE answers SET seconds_on_case = -3", "the time -3.0"),
    ("UPDATE case_time SET seconds = 'soon'", "the time 'soon'"),
    ("UPDATE case_time SET seconds = 9e999", "the time inf"),
    ("UPDATE answer_history SET seconds_on_case = -9e999 WHERE seq = 1", "the time -inf"),
    ("UPDATE answers SET answered_at = 'yesterday'", "the time stamp 'yesterday'"),
    ("UPDATE case_notes SET comment = X'6869'", "a comment for case"),
    ("UPDATE case_notes SET not_assessable = 2", "the value 2 "),
    ("UPDATE practice_answers SET after_truth = 'yes'", "the value 'yes' "),
    ("UPDATE answer_history SET item = 'overall' WHERE seq = 1", "an answer to 'overall'"),
    ("UPDATE answer_history SET value = 'maybe' WHERE item = 'not_assessable'",
     "the flag 'maybe'"),
    ("INSERT INTO answers SELECT 'deadbeef', question, value, answered_at, seconds_on_case "
     "FROM answers", "the case id 'deadbeef' in answers"),
    ("UPDATE practice_answers SET case_id = :case", "in practice_answers, not a practice case"),
    ("UPDATE truth_shown SET history_seq = 'late'", "the history position 'late'"),
]


@pytest.mark.parametrize(("sql", "said"), IMPOSSIBLE, ids=[s for _, s in IMPOSSIBLE])
def test_impossible_values_are_refused_in_one_sentence(rated, tmp_path, capsys, sql, said):
    """Read, opened by the app, status and export: one sentence naming the file and the value;
    nothing is written, the database stays as it was."""
    study, path, ids = rated
    _edit(path, sql, ids)
    edited = path.read_bytes()
    with pytest.raises(InvalidRatingsError, match=said.replace("(", r"\(")) as caught:
        read_reader_ratings(path, study)
    assert str(path) in str(caught.value) and "edited outside mdiff" in str(caught.value)
    with pytest.raises(InvalidRatingsError):
        RatingStore.open(study, "anna")
    assert main(["status", str(study.folder)]) == 2
    assert said in _one_sentence(capsys)
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out)]) == 2
    err = _one_sentence(capsys)
    assert said in err and str(path) in err
    assert not out.exists()
    assert path.read_bytes() == edited


# Each: an edit the history does not explain, and the role of the case it touches.
UNEXPLAINED = [
    ("DELETE FROM answer_history WHERE case_id = :case AND item = 'slice_consistency'", "case"),
    ("UPDATE answers SET value = 'A' WHERE case_id = :case AND question = 'slice_consistency'",
     "case"),
    ("DELETE FROM answers WHERE case_id = :case AND question = 'anatomical_correctness'",
     "case"),
    ("UPDATE answers SET seconds_on_case = 1 WHERE case_id = :case", "case"),
    ("UPDATE case_notes SET comment = 'edited' WHERE case_id = :flagged", "flagged"),
    ("UPDATE case_notes SET not_assessable = 0 WHERE case_id = :flagged", "flagged"),
    ("DELETE FROM case_notes WHERE case_id = :flagged", "flagged"),
    ("UPDATE practice_answers SET after_truth = 0", "practice"),
    ("DELETE FROM truth_shown", "practice"),
    ("UPDATE truth_shown SET history_seq = 1000", "practice"),
]


@pytest.mark.parametrize(("sql", "role"), UNEXPLAINED, ids=[s for s, _ in UNEXPLAINED])
def test_export_names_the_cases_the_history_does_not_explain(rated, tmp_path, capsys, sql, role):
    """Export refuses (one sentence naming file and case) unless the edits are accepted; status
    lists the case; the app does not rate on in such a database."""
    study, path, ids = rated
    _edit(path, sql, ids)
    assert read_reader_ratings(path, study).history_disagrees == [ids[role]]
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice"]) == 2
    err = _one_sentence(capsys)
    assert f"{path} (case {ids[role]})" in err and "--accept-edits" in err
    assert not out.exists()
    summary = export_study(study.folder, out, include_practice=True, include_partial=True,
                           accept_edits=True)
    assert summary.edited == 1 and out.exists()
    assert main(["status", str(study.folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["readers"][0]["edited_cases"] == [ids[role]]
    assert main(["status", str(study.folder)]) == 0
    assert f"anna: the history does not explain cases {ids[role]}" in capsys.readouterr().out
    with pytest.raises(EditedRatingsError, match=ids[role]):
        RatingStore.open(study, "anna")


def test_an_edit_the_history_records_is_accepted(rated, tmp_path):
    """Changing an answer and appending the change to the history, as the store does, keeps
    the database valid: the check is that the history explains the answers."""
    study, path, ids = rated
    _edit(path, "UPDATE answers SET value = 'A', answered_at = '2030-01-01T00:00:00+00:00' "
                "WHERE case_id = :case AND question = 'slice_consistency'", ids)
    _edit(path, "INSERT INTO answer_history (case_id, item, value, changed_at, seconds_on_case) "
                "SELECT case_id, question, value, answered_at, seconds_on_case FROM answers "
                "WHERE case_id = :case AND question = 'slice_consistency'", ids)
    assert read_reader_ratings(path, study).history_disagrees == []
    assert main(["export", str(study.folder), "--out", str(tmp_path / "r.csv")]) == 0


def test_a_newer_database_relabelled_older_is_refused_not_migrated(rated, capsys):
    """A version 3 database labelled 1 would lose its practice answers, comments and flags to
    a reader of version 1 and fail its migration: refused, and left as it is."""
    study, path, _ = rated
    _edit(path, "PRAGMA user_version = 1")
    edited = path.read_bytes()
    message = f"names schema version 1 but has the tables of version {SCHEMA_VERSION}"
    with pytest.raises(InvalidRatingsError, match=message):
        read_reader_ratings(path)
    with pytest.raises(InvalidRatingsError, match=message):
        RatingStore.open(study, "anna")
    assert main(["status", str(study.folder)]) == 2
    assert message in _one_sentence(capsys)
    assert path.read_bytes() == edited


@pytest.mark.parametrize(("sql", "said"), [
    ("ALTER TABLE answers ADD COLUMN reviewer TEXT", "the columns case_id, question, value, "
     "answered_at, seconds_on_case, reviewer in answers"),
    ("CREATE TABLE answers_backup (x)", "the table answers_backup"),
])
def test_tables_and_columns_the_version_lacks_are_refused(rated, sql, said):
    study, path, _ = rated
    _edit(path, sql)
    with pytest.raises(InvalidRatingsError, match=f"has {said}, which its schema version"):
        read_reader_ratings(path, study)


def test_a_version_2_database_relabelled_1_keeps_its_notes(tmp_path):
    path = tmp_path / "Anna.sqlite"
    shutil.copy(V2_STUDY / "ratings" / "Anna.sqlite", path)
    _edit(path, "PRAGMA user_version = 1")
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
    rows = {r["case_id"]: r for r in _read_csv(out)}
    assert (rows["P01"]["after_truth"], rows["P02"]["after_truth"], rows[first]["after_truth"]) \
        == ("1", "1", "0")


def _truth_when_flagged(study: Study) -> Study:
    manifest = json.loads((study.folder / "study.json").read_text())
    manifest["practice_truth_when_flagged"] = True
    (study.folder / "study.json").write_text(json.dumps(manifest))
    return Study.open(study.folder)


@pytest.mark.parametrize("shown", [False, True])
def test_a_flagged_practice_case_shows_its_truth_only_where_the_study_says_so(rated, tmp_path,
                                                                             shown):
    """Flagged to see the truth, then unflagged and answered: where the study shows the truth
    of a flagged case, those answers are marked (store, export); by default nothing is shown."""
    study, path, _ = rated
    if shown:
        study = _truth_when_flagged(study)
    with RatingStore.open(study, "anna") as store:
        store.set_not_assessable("P02", True)
        if shown:
            assert store.practice_truth("P02") == "real"
        else:
            with pytest.raises(TruthNotShownError, match="flagged not assessable"):
                store.practice_truth("P02")
        store.set_not_assessable("P02", False)
        _answer(store, "P02")
        assert store.practice_truth("P02") == "real"  # answered: shown either way
    ratings = read_reader_ratings(path, study)
    assert ratings.answered_after_truth("P02") is shown
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice"]) == 0
    rows = {r["case_id"]: r["after_truth"] for r in _read_csv(out)}
    assert (rows["P01"], rows["P02"]) == ("1", "1" if shown else "0")


def test_export_accept_edits_writes_an_edited_database_and_says_so(rated, tmp_path, capsys):
    """The refusal's advice works: --accept-edits exports, and the summary counts the cases."""
    study, path, ids = rated
    _edit(path, UNEXPLAINED[0][0], ids)
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice",
                 "--accept-edits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["edited"] == 1 and out.exists()


@pytest.mark.parametrize("shown", [False, True])
def test_the_preview_store_follows_the_studys_rule_for_flagged_practice(rated, shown):
    """Screenshots (no reader file) show a flagged practice case's truth only where the study
    says so, as the reader's own store does."""
    from reader_app.preview_store import PreviewStore

    study, _, _ = rated
    if shown:
        study = _truth_when_flagged(study)
    store = PreviewStore(study)
    store.set_not_assessable("P02", True)
    if shown:
        assert store.practice_truth("P02") == "real"
    else:
        with pytest.raises(TruthNotShownError):
            store.practice_truth("P02")


def test_a_truth_setting_that_is_not_true_or_false_is_refused(rated):
    from studies.study import StudyError

    study, _, _ = rated
    manifest = json.loads((study.folder / "study.json").read_text())
    manifest["practice_truth_when_flagged"] = "yes"
    (study.folder / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="practice_truth_when_flagged"):
        Study.open(study.folder)
