"""Paired (2AFC) studies: study.json's trials, each reader's sides and order, answers, practice
trials, and schema version 4 (a version 3 database still opens)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from studies.questions import AFC_QUESTIONS
from studies.ratings import (
    SCHEMA_VERSION,
    InvalidRatingsError,
    RatingStore,
    RatingStoreError,
    TruthNotShownError,
    read_reader_ratings,
)
from studies.ratings import schema as ratings_schema
from studies.study import Study, StudyError
from studies.trials import Trial


def synthetic_left(store: RatingStore, truth: dict[str, str]) -> int:
    """How many of the reader's trials show the synthetic member on the left."""
    return sum(truth[store.trial(t).left] == "synthetic" for t in store.case_order)


@pytest.mark.parametrize("n_trials", [6, 7])
def test_sides_are_balanced_per_reader_and_mirrored_between_consecutive_readers(
        tmp_path, afc_study_folder_with, n_trials):
    folder, truth = afc_study_folder_with(tmp_path / "study", n_trials)
    study = Study.open(folder)
    layout = [study.trial(t) for t in study.trial_ids]
    assert sum(truth[t.left] == "synthetic" for t in layout) == n_trials // 2
    seen: dict[str, dict[str, Trial]] = {}
    for reader in ("anna", "ben", "carl"):
        with RatingStore.open(study, reader) as store:
            assert sorted(store.case_order) == sorted(study.trial_ids)
            left = synthetic_left(store, truth)
            assert left in (n_trials // 2, (n_trials + 1) // 2)
            assert abs(left - (n_trials - left)) <= 1
            seen[reader] = {t: store.trial(t) for t in store.case_order}
    for trial_id in study.trial_ids:
        anna, ben, carl = (seen[r][trial_id] for r in ("anna", "ben", "carl"))
        assert {anna.left, anna.right} == {ben.left, ben.right}
        assert (anna.left, anna.right) == (ben.right, ben.left)  # every pair on the other side
        assert anna == carl == study.trial(trial_id)  # 1st and 3rd see layout A


def test_trial_order_is_shuffled_per_reader_and_kept_on_reopen(tmp_path, afc_study_folder_with):
    folder, _ = afc_study_folder_with(tmp_path / "study", 12)
    study = Study.open(folder)
    with RatingStore.open(study, "anna") as store:
        anna = list(store.case_order)
        mirrored = store.mirrored
    with RatingStore.open(study, "ben") as store:
        assert store.case_order != anna
        assert store.mirrored != mirrored
    with RatingStore.open(study, "Anna") as store:  # the same reader: same order and sides
        assert store.case_order == anna and store.mirrored == mirrored


def test_answers_time_review_and_the_afc_questions(tmp_path, afc_study_folder_with):
    folder, _ = afc_study_folder_with(tmp_path / "study", 4)
    study = Study.open(folder)
    assert study.design == "2afc" and study.questions == AFC_QUESTIONS
    assert AFC_QUESTIONS[0].title == "Which one is synthetic?"
    assert [(o.letter, o.text) for o in AFC_QUESTIONS[0].options] == [("L", "Left"),
                                                                      ("R", "Right")]
    with RatingStore.open(study, "anna") as store:
        first = store.case_order[0]
        store.record_answer(first, "synthetic_side", "L", 3.0)
        assert not store.is_done(first)
        store.record_answer(first, "confidence", "3", 5.0)
        store.add_time(first, 6.5)
        assert store.is_done(first) and store.first_unrated_index() == 1
        assert [r.case_id for r in store.review_list()] == [first]
        assert store.seconds_on_case(first) == 6.5
        assert [c.item for c in store.history(first)] == ["synthetic_side", "confidence"]
        with pytest.raises(RatingStoreError, match="no answer to 'synthetic_side'"):
            store.record_answer(first, "synthetic_side", "S", 1.0)
        with pytest.raises(RatingStoreError, match="not part of study"):
            store.trial(study.case_ids[0])  # a case id is no trial id
    ratings = read_reader_ratings(folder / "ratings" / "anna.sqlite", study)
    assert ratings.answers[first] == {"synthetic_side": "L", "confidence": "3"}
    assert ratings.mirrored is False


def test_every_trial_member_has_a_file_and_practice_trials_show_their_side(
        tmp_path, afc_study_folder_with):
    folder, _ = afc_study_folder_with(tmp_path / "study", 4, practice=2)
    study = Study.open(folder)
    assert study.practice_ids == ["P01", "P02"]
    for trial_id in study.trial_ids + study.practice_ids:
        trial = study.trial(trial_id)
        assert study.case_path(trial.left).is_file() and study.case_path(trial.right).is_file()
    assert study.case_path("P01a") == folder / "practice" / "P01a.nii"
    with pytest.raises(StudyError):
        study.case_path("P01")  # a practice trial has no file of its own
    for reader, mirrored in (("anna", False), ("ben", True)):
        with RatingStore.open(study, reader) as store:
            assert store.practice_order == ["P01", "P02"] and store.mirrored is mirrored
            shown = store.trial("P01")
            assert (shown.left, shown.right) == (("P01b", "P01a") if mirrored
                                                 else ("P01a", "P01b"))
            with pytest.raises(TruthNotShownError):
                store.practice_truth("P01")
            store.record_answer("P01", "synthetic_side", "R", 2.0)
            store.record_answer("P01", "confidence", "2", 2.0)
            # P01's synthetic member is on the left of layout A: the mirror shows it right.
            assert store.practice_truth("P01") == ("right" if mirrored else "left")
            assert store.practice_done() is False
    ratings = read_reader_ratings(folder / "ratings" / "ben.sqlite", study)
    assert ratings.practice_answers["P01"]["synthetic_side"] == "R" and not ratings.answers


def _manifest(folder):
    return json.loads((folder / "study.json").read_text())


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(design="3afc"), "names the design '3afc'"),
    (lambda m: m.pop("trials"), "'trials' field without the design"),
    (lambda m: m.update(turing=True), "sets 'turing'"),
    (lambda m: m.update(questions=["real_or_synthetic", "confidence"]), "of design '2afc' asks"),
    (lambda m: m["trials"].pop(), "which no trial shows"),
    (lambda m: m["trials"][0].update(right=m["trials"][0]["left"]), "same case on both sides"),
    (lambda m: m["trials"][0].update(trial_id=m["cases"][0]), "twice (or as a case id too)"),
    (lambda m: m["trials"][0].update(left="0" * 8), "member that is not one of its cases"),
    (lambda m: m["trials"][0].update(extra=1), "a trial that is not"),
    (lambda m: m["practice"].append({"trial_id": "P01", "left": "P01a", "right": "P01c",
                                     "synthetic": "left"}), "not P01a and P01b"),
    (lambda m: m["practice"].append({"trial_id": "P01", "left": "P01a", "right": "P01b",
                                     "synthetic": "up"}), "not left or right"),
    (lambda m: m["practice"].append({"case_id": "P01", "source": "real"}),
     "practice trial that is not"),
])
def test_bad_paired_manifests_are_refused_in_one_sentence(tmp_path, afc_study_folder_with,
                                                          change, message):
    folder, _ = afc_study_folder_with(tmp_path / "study", 4)
    manifest = _manifest(folder)
    change(manifest)
    (folder / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="study.json") as error:
        Study.open(folder)
    assert message in str(error.value) and str(error.value).count(". ") == 0


def test_a_single_reading_manifest_is_written_as_before(study_folder):
    study = Study.open(study_folder)
    data = study.manifest.to_dict()
    assert "design" not in data and "trials" not in data
    assert study.design == "single" and study.rated_ids == study.case_ids
    assert study.trial_ids == []


def test_a_schema_3_database_opens_and_is_brought_to_4(study_folder, answer_case):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        answer_case(store, store.case_order[0])
        path, order = store.path, list(store.case_order)
    conn = sqlite3.connect(path)  # made as version 3 made it: no trial_layout
    conn.execute("DROP TABLE trial_layout")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    before = read_reader_ratings(path, study)
    assert before.mirrored is None and before.answers
    with RatingStore.open(study, "anna") as store:
        assert store.case_order == order and store.mirrored is False
        assert store.is_done(order[0])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert conn.execute("SELECT COUNT(*) FROM trial_layout").fetchone()[0] == 0
    conn.close()
    assert read_reader_ratings(path, study).same_ratings(before)


def test_a_paired_database_without_its_layout_is_refused(tmp_path, afc_study_folder_with,
                                                          edit_database):
    folder, _ = afc_study_folder_with(tmp_path / "study", 4)
    study = Study.open(folder)
    with RatingStore.open(study, "anna") as store:
        path = store.path
    edit_database(path, "DELETE FROM trial_layout")
    with pytest.raises(InvalidRatingsError, match="0 rows in trial_layout"):
        RatingStore.open(study, "anna")
    edit_database(path, "INSERT INTO trial_layout VALUES (7)")
    with pytest.raises(InvalidRatingsError, match="the value 7 in trial_layout"):
        read_reader_ratings(path, study)
    assert ratings_schema.SCHEMA_VERSION == 4


V3_STUDY = Path(__file__).resolve().parents[1] / "data" / "v3_study"


def test_a_schema_3_database_of_the_previous_mdiff_opens_as_schema_4(tmp_path):
    # tests/studies/data/v3_study was written by the schema 3 RatingStore of main at 4d15fb8:
    # reader Anna answered P01 (C C B, synthetic, 3), was shown its truth, changed her
    # confidence to 4; answered 1a2b3c4d (B C D, real, 2; 12.5 s, 14 s shown) and commented
    # and flagged 5e6f7a8b.
    folder = tmp_path / "v3_study"
    shutil.copytree(V3_STUDY, folder)
    manifest = json.loads((folder / "study.json").read_text())
    for kind, ids in (("cases", manifest["cases"]),
                      ("practice", [p["case_id"] for p in manifest["practice"]])):
        (folder / kind).mkdir()
        for case_id in ids:
            (folder / kind / f"{case_id}.nii").write_bytes(b"")
    study = Study.open(folder)
    path = study.ratings_dir / "Anna.sqlite"
    before = read_reader_ratings(path, study)  # read as version 3, without writing
    assert before.mirrored is None and before.history_disagrees == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    with RatingStore.open(study, "anna") as store:  # opening migrates it
        assert store.answers("1a2b3c4d")["real_or_synthetic"] == "R"
        assert store.seconds_on_case("1a2b3c4d") == 14.0
        assert store.practice_truth("P01") == "synthetic" and store.mirrored is False
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT COUNT(*) FROM trial_layout").fetchone()[0] == 0
    after = read_reader_ratings(path, study)
    assert after.same_ratings(before) and after.history_disagrees == []
    assert after.after_truth == {"P01": {"confidence"}}
    assert after.note("5e6f7a8b").not_assessable


def test_a_new_reader_takes_the_layout_fewer_other_readers_see(tmp_path, afc_study_folder_with):
    """Counting databases would give a third reader the mirror once the first one's database is
    gone (or a merged one joined): the sides are chosen from the layouts the others see."""
    folder, _ = afc_study_folder_with(tmp_path / "study", 4)
    study = Study.open(folder)
    for reader in ("anna", "ben"):
        RatingStore.open(study, reader).close()
    (study.ratings_dir / "anna.sqlite").unlink()  # only ben, who sees the mirror, is left
    with RatingStore.open(study, "carl") as store:
        assert store.mirrored is False
    with RatingStore.open(study, "dora") as store:  # one of each: layout A again, on the tie
        assert store.mirrored is False
    with RatingStore.open(study, "emil") as store:
        assert store.mirrored is True
