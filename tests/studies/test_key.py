"""studies.key: the key CSV written and read back, and the refusals of a key that does not fit."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from studies.key import (
    KeyEntry,
    check_key_matches,
    default_key_path,
    is_inside,
    read_key,
    write_key,
)
from studies.study import StudyError

ENTRIES = [
    KeyEntry("ffff0001", "synthetic", "/samples/s1.nii.gz", "knee-ddpm", "101"),
    KeyEntry("0000aaaa", "real", "/scans/p1.nii.gz"),
    KeyEntry("7777beef", "synthetic", "/samples/s2.nii.gz", "knee-ddpm", ""),
]


def test_key_is_written_sorted_by_case_id_and_read_back(tmp_path):
    path = tmp_path / "study.key.csv"
    write_key(path, ENTRIES)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        ["case_id", "source", "origin", "model", "seed"],
        ["0000aaaa", "real", "/scans/p1.nii.gz", "", ""],
        ["7777beef", "synthetic", "/samples/s2.nii.gz", "knee-ddpm", ""],
        ["ffff0001", "synthetic", "/samples/s1.nii.gz", "knee-ddpm", "101"],
    ]
    assert read_key(path) == {e.case_id: e for e in ENTRIES}
    assert not list(tmp_path.glob("*.tmp"))


def test_default_key_lies_beside_the_study():
    assert default_key_path(Path("sites/knee_study")) == Path("sites/knee_study.key.csv")
    assert default_key_path("knee_study/") == Path("knee_study.key.csv")


def test_is_inside(tmp_path):
    study = tmp_path / "study"
    assert is_inside(study / "key.csv", study)
    assert is_inside(study / "a" / ".." / "key.csv", study)
    assert not is_inside(tmp_path / "study.key.csv", study)
    assert not is_inside(tmp_path / "study2" / "key.csv", study)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("case_id,source,origin\n", "does not have the columns case_id, source, origin, model, seed"),
    ("case_id,source,origin,model,seed\n0000aaaa,fake,x,,\n", "bad or repeated row at line 2"),
    ("case_id,source,origin,model,seed\n0000aaaa,real,x,,\n0000aaaa,real,y,,\n",
     "bad or repeated row at line 3"),
    ("case_id,source,origin,model,seed\n,real,x,,\n", "bad or repeated row at line 2"),
])
def test_a_file_that_is_no_key_is_refused(tmp_path, text, message):
    path = _write(tmp_path / "key.csv", text)
    with pytest.raises(StudyError, match=message) as error:
        read_key(path)
    assert str(path) in str(error.value)


def test_a_missing_key_is_refused(tmp_path):
    with pytest.raises(StudyError, match="nowhere.csv does not exist"):
        read_key(tmp_path / "nowhere.csv")


@pytest.mark.parametrize("case_ids", [["0000aaaa", "7777beef"],
                                      ["0000aaaa", "7777beef", "ffff0001", "12345678"]])
def test_a_key_of_other_cases_does_not_belong_to_the_study(tmp_path, case_ids):
    key = {e.case_id: e for e in ENTRIES}
    with pytest.raises(StudyError, match="does not belong to the study"):
        check_key_matches(key, case_ids, tmp_path / "key.csv", tmp_path / "study")
    check_key_matches(key, ["ffff0001", "0000aaaa", "7777beef"], tmp_path / "key.csv",
                      tmp_path / "study")
