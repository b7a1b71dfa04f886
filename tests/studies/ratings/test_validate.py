"""A reader database edited outside mdiff: impossible values, a history that does not explain
the answers, another study's database; refused in one sentence, or exported when accepted."""

from __future__ import annotations

import json
import shutil

import pytest

from studies.cli.study import main
from studies.export import export_study
from studies.ratings import (
    EditedRatingsError,
    InvalidRatingsError,
    RatingStore,
    RatingStoreError,
    read_reader_ratings,
)
from studies.study import Study


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
def test_impossible_values_are_refused_in_one_sentence(rated, tmp_path, edit_database,
                                                        one_sentence, sql, said):
    """Read, opened by the app, status and export: one sentence naming the file and the value;
    nothing is written, the database stays as it was."""
    study, path, ids = rated
    edit_database(path, sql, ids)
    edited = path.read_bytes()
    with pytest.raises(InvalidRatingsError, match=said.replace("(", r"\(")) as caught:
        read_reader_ratings(path, study)
    assert str(path) in str(caught.value) and "edited outside mdiff" in str(caught.value)
    with pytest.raises(InvalidRatingsError):
        RatingStore.open(study, "anna")
    assert main(["status", str(study.folder)]) == 2
    assert said in one_sentence()
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out)]) == 2
    err = one_sentence()
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
def test_export_names_the_cases_the_history_does_not_explain(rated, tmp_path, capsys,
                                                             edit_database, one_sentence, sql,
                                                             role):
    """Export refuses (one sentence naming file and case) unless the edits are accepted; status
    lists the case; the app does not rate on in such a database."""
    study, path, ids = rated
    edit_database(path, sql, ids)
    assert read_reader_ratings(path, study).history_disagrees == [ids[role]]
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice"]) == 2
    err = one_sentence()
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


def test_an_edit_the_history_records_is_accepted(rated, tmp_path, edit_database):
    """Changing an answer and appending the change to the history, as the store does, keeps
    the database valid: the check is that the history explains the answers."""
    study, path, ids = rated
    where = "WHERE case_id = :case AND question = 'slice_consistency'"
    edit_database(path, "UPDATE answers SET value = 'A', "
                        f"answered_at = '2030-01-01T00:00:00+00:00' {where}", ids)
    edit_database(path, "INSERT INTO answer_history (case_id, item, value, changed_at, "
                        "seconds_on_case) SELECT case_id, question, value, answered_at, "
                        f"seconds_on_case FROM answers {where}", ids)
    assert read_reader_ratings(path, study).history_disagrees == []
    assert main(["export", str(study.folder), "--out", str(tmp_path / "r.csv")]) == 0


def test_export_accept_edits_writes_an_edited_database_and_says_so(rated, tmp_path, capsys,
                                                                   edit_database):
    """The refusal's advice works: --accept-edits exports, and the summary counts the cases."""
    study, path, ids = rated
    edit_database(path, UNEXPLAINED[0][0], ids)
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice",
                 "--accept-edits", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["edited"] == 1 and out.exists()


def test_database_of_another_study_is_refused(study_folder, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(study_folder, other)
    manifest = json.loads((other / "study.json").read_text())
    manifest["study_id"] = "0123456789abcdef"
    (other / "study.json").write_text(json.dumps(manifest))
    RatingStore.open(Study.open(other), "anna").close()
    shutil.copy(other / "ratings" / "anna.sqlite", study_folder / "ratings" / "anna.sqlite")
    with pytest.raises(RatingStoreError, match="belongs to study 0123456789abcdef"):
        RatingStore.open(Study.open(study_folder), "anna")
