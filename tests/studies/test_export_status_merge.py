"""`mdiff-study export`, `status` and `merge` over hand-made studies with real ratings."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime

import pytest

from studies.cli.study import main
from studies.key import KeyEntry, write_key
from studies.ratings import RatingStore
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
BASE_COLUMNS = ["study_id", "dataset", "reader", "case_id", *TABLE1]
NOTE_AND_TIME = ["not_assessable", "comment", "seconds_on_case", "rated_at"]


def _rate(study: Study, reader: str, cases: int, answers=("C", "D", "B"), seconds=10.0,
          turing=None) -> list[str]:
    """Let `reader` fully rate the first `cases` cases of their order; return those ids."""
    with RatingStore.open(study, reader) as store:
        rated = store.case_order[:cases]
        for case_id in rated:
            for key, value in zip(TABLE1, answers, strict=True):
                store.record_answer(case_id, key, value, seconds)
            for key, value in (turing or {}).items():
                store.record_answer(case_id, key, value, seconds)
            store.add_time(case_id, seconds)
    return rated


def _read_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_export_of_a_study_without_ratings_writes_the_header(study_folder, tmp_path, capsys):
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study_folder), "--out", str(out)]) == 0
    assert out.read_text().strip() == ",".join(BASE_COLUMNS + NOTE_AND_TIME)
    assert "Wrote 0 rating rows" in capsys.readouterr().out


def test_export_columns_and_values(study_folder, tmp_path):
    study = Study.open(study_folder)
    anna = _rate(study, "anna", 3, seconds=12.0)
    ben = _rate(study, "ben", 2, answers=("A", "B", "D"), seconds=40.0)
    with RatingStore.open(study, "ben") as store:  # a half-rated case: left out by default
        store.record_answer(store.case_order[2], "realistic_appearance", "B", 7.0)
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study_folder), "--out", str(out)]) == 0
    columns, rows = _read_csv(out)
    assert columns == BASE_COLUMNS + NOTE_AND_TIME
    assert [(r["reader"], r["case_id"]) for r in rows] == \
        [("anna", c) for c in anna] + [("ben", c) for c in ben]
    first = rows[0]
    assert (first["study_id"], first["dataset"]) == (study.study_id, "tiny")
    assert [first[k] for k in TABLE1] == ["C", "D", "B"]
    assert [rows[3][k] for k in TABLE1] == ["A", "B", "D"]
    assert first["seconds_on_case"] == "12.0" and rows[3]["seconds_on_case"] == "40.0"
    assert (first["not_assessable"], first["comment"]) == ("0", "")
    assert datetime.fromisoformat(first["rated_at"]).tzinfo is not None


def test_export_partial_cases_with_flag(study_folder, tmp_path):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        case_id = store.case_order[0]
        store.record_answer(case_id, "slice_consistency", "A", 3.0)
    out = tmp_path / "partial.csv"
    assert main(["export", str(study_folder), "--out", str(out), "--include-partial"]) == 0
    _, rows = _read_csv(out)
    assert len(rows) == 1
    assert rows[0]["case_id"] == case_id
    assert (rows[0]["realistic_appearance"], rows[0]["slice_consistency"],
            rows[0]["anatomical_correctness"]) == ("", "A", "")
    assert rows[0]["seconds_on_case"] == "3.0"
    assert main(["export", str(study_folder), "--out", str(out)]) == 2  # exists: needs --force
    assert len(_read_csv(out)[1]) == 1
    assert main(["export", str(study_folder), "--out", str(out), "--force"]) == 0
    assert _read_csv(out)[1] == []


def test_export_turing_study_with_key(turing_study_folder, tmp_path):
    study = Study.open(turing_study_folder)
    rated = _rate(study, "anna", 2, turing={"real_or_synthetic": "R", "confidence": "3"})
    key = tmp_path / "study.key.csv"
    write_key(key, [KeyEntry(c, "real" if i % 2 else "synthetic", f"/data/{i}.nii.gz")
                    for i, c in enumerate(study.case_ids)])
    sources = {c: ("real" if i % 2 else "synthetic", f"/data/{i}.nii.gz")
               for i, c in enumerate(study.case_ids)}
    out = tmp_path / "unblinded.csv"
    assert main(["export", str(turing_study_folder), "--out", str(out), "--key", str(key)]) == 0
    columns, rows = _read_csv(out)
    assert columns == BASE_COLUMNS + ["real_or_synthetic", "confidence", "not_assessable",
                                      "comment", "seconds_on_case",
                                      "rated_at", "source", "origin"]
    assert [r["case_id"] for r in rows] == rated
    for row in rows:
        assert (row["real_or_synthetic"], row["confidence"]) == ("real", "3")
        assert (row["source"], row["origin"]) == sources[row["case_id"]]


def test_export_refuses_a_key_export_inside_the_study_and_a_wrong_key(study_folder, tmp_path,
                                                                      capsys):
    study = Study.open(study_folder)
    key = tmp_path / "k.csv"
    write_key(key, [KeyEntry(c, "synthetic", "x") for c in study.case_ids])
    inside = study_folder / "ratings.csv"
    assert main(["export", str(study_folder), "--out", str(inside), "--key", str(key)]) == 2
    assert "inside the study" in capsys.readouterr().err
    assert not inside.exists()
    write_key(key, [KeyEntry(c, "synthetic", "x") for c in study.case_ids[1:]])
    assert main(["export", str(study_folder), "--out", str(tmp_path / "o.csv"),
                 "--key", str(key)]) == 2
    err = capsys.readouterr().err
    assert "does not belong to the study" in err and err.count("\n") == 1


def test_status_counts_and_times(study_folder, capsys):
    study = Study.open(study_folder)
    _rate(study, "anna", 3, seconds=10.0)
    with RatingStore.open(study, "anna") as store:
        store.add_time(store.case_order[1], 20.0)       # case 2 now took 30 s
        store.record_answer(store.case_order[3], "realistic_appearance", "C", 5.0)  # partial
        store.add_time(store.case_order[3], 5.0)
    with RatingStore.open(study, "ben"):
        pass
    assert main(["status", str(study_folder), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == 12 and report["study_id"] == study.study_id
    anna, ben = report["readers"]
    assert anna == {"reader": "anna", "done": 3, "total": 12, "seconds_total": 55.0,
                    "seconds_median": 10.0, "practice": None, "practice_done": None,
                    "edited_cases": []}
    assert ben == {"reader": "ben", "done": 0, "total": 12, "seconds_total": 0.0,
                   "seconds_median": None, "practice": None, "practice_done": None,
                   "edited_cases": []}
    assert main(["status", str(study_folder)]) == 0
    text = capsys.readouterr().out
    assert "anna" in text and "3 / 12" in text and "0:00:55" in text


def test_status_of_corrupt_database_is_one_sentence(study_folder, capsys):
    (study_folder / "ratings" / "anna.sqlite").write_bytes(b"garbage" * 100)
    assert main(["status", str(study_folder)]) == 2
    err = capsys.readouterr().err
    assert "anna.sqlite is unreadable" in err and err.count("\n") == 1


def test_status_of_a_missing_study(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["status", str(tmp_path / "empty")]) == 2
    assert "is not a study" in capsys.readouterr().err


@pytest.fixture
def two_sites(study_folder, tmp_path):
    """The study and a copy of it (another site), both rated by 'anna' identically."""
    _rate(Study.open(study_folder), "anna", 2)
    copy = tmp_path / "site_b"
    shutil.copytree(study_folder, copy)
    return study_folder, copy


def test_merge_brings_in_new_readers(two_sites, capsys):
    here, there = two_sites
    ben = _rate(Study.open(there), "ben", 4, answers=("B", "B", "A"))
    assert main(["merge", str(here), str(there)]) == 0
    assert "Merged readers: ben; already present with the same answers: anna." in \
        capsys.readouterr().out
    study = Study.open(here)
    with RatingStore.open(study, "ben") as store:
        assert store.first_unrated_index() == 4
        assert store.case_order[:4] == ben
        assert store.answers(ben[0]) == dict(zip(TABLE1, ("B", "B", "A"), strict=True))
    assert not list((here / "ratings").glob("*.tmp"))
    assert "merged readers ben" in (here / "log.txt").read_text()
    # Merging again changes nothing: both readers are now identical.
    assert main(["merge", str(here), str(there)]) == 0
    assert "Merged readers: none; already present with the same answers: anna, ben." in \
        capsys.readouterr().out


def test_merge_refuses_a_conflicting_reader(two_sites, capsys):
    here, there = two_sites
    _rate(Study.open(there), "ben", 1)
    with RatingStore.open(Study.open(there), "anna") as store:
        store.record_answer(store.case_order[0], "realistic_appearance", "A", 1.0)
    assert main(["merge", str(here), str(there)]) == 2
    err = capsys.readouterr().err
    assert "Reader 'anna' has different answers" in err and err.count("\n") == 1
    assert not (here / "ratings" / "ben.sqlite").exists()  # nothing copied


def test_merge_refuses_another_study(study_folder, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(study_folder, other)
    manifest = json.loads((other / "study.json").read_text())
    manifest["study_id"] = "ffffffffffffffff"
    (other / "study.json").write_text(json.dumps(manifest))
    _rate(Study.open(other), "ben", 1)
    assert main(["merge", str(study_folder), str(other)]) == 2
    assert "is study ffffffffffffffff" in capsys.readouterr().err
    assert not (study_folder / "ratings" / "ben.sqlite").exists()
