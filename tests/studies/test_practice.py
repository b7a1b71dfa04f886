"""The practice block: `create --practice K` or practice folders of their own, and study.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from studies.case_file import read_case
from studies.cli.study import main
from studies.study import Study, StudyError


def _create(capsys, out: Path, *options: str) -> dict:
    """Run create with `options` and return its JSON report (the test fails on an error)."""
    code = main(["create", "--out", str(out), "--modality", "MR", "--seed", "5", "--json",
                 *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _key(report: dict) -> dict[str, dict[str, str]]:
    with open(report["key"], newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle)}


def _error(capsys, out: Path, *options: str) -> str:
    """Run create, expect a one-sentence refusal, and return it."""
    code = main(["create", "--out", str(out), "--modality", "MR", *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert not out.exists()
    return err


@pytest.fixture
def practice_study(mr_inputs, tmp_path, capsys) -> tuple[Path, dict]:
    """A study of 4 real and 4 synthetic cases with 4 practice cases from the same folders."""
    out = tmp_path / "study"
    report = _create(capsys, out, "--real", str(mr_inputs["real"]), "--synthetic",
                     str(mr_inputs["synthetic"]), "--n", "4", "--n-real", "4",
                     "--practice", "4")
    return out, report


def test_practice_cases_come_from_the_same_folders_but_are_never_study_cases(practice_study):
    out, report = practice_study
    study = Study.open(out)
    assert (report["n_real"], report["n_synthetic"], report["n_practice"]) == (4, 4, 4)
    assert study.practice_ids == ["P01", "P02", "P03", "P04"]
    assert sorted(study.practice.values()) == ["real", "real", "synthetic", "synthetic"]
    assert len(study.case_ids) == 8 and not set(study.case_ids) & set(study.practice_ids)
    key = _key(report)
    # The key holds the practice cases too, with the truth study.json gives them.
    assert set(key) == set(study.case_ids) | set(study.practice_ids)
    assert {c: key[c]["source"] for c in study.practice_ids} == study.practice
    practice_origins = {key[c]["origin"] for c in study.practice_ids}
    study_origins = {key[c]["origin"] for c in study.case_ids}
    assert len(practice_origins) == 4 and not practice_origins & study_origins
    # Their files lie apart from the study's cases and take the same road (int16, one grid).
    assert sorted(p.name for p in (out / "practice").iterdir()) == \
        [f"P0{i}.nii" for i in range(1, 5)]
    assert len(list((out / "cases").iterdir())) == 8
    practice_case = read_case(study.case_path("P01"))
    assert practice_case.array.dtype == np.int16 and practice_case.array.shape == study.shape
    assert practice_case.nifti_header == read_case(study.case_path(study.case_ids[0])).nifti_header


def test_the_practice_truth_is_the_only_truth_in_the_study(practice_study):
    out, _ = practice_study
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["practice"] == [{"case_id": c, "source": s}
                                    for c, s in Study.open(out).practice.items()]
    del manifest["practice"], manifest["questions"]
    text = json.dumps(manifest) + (out / "log.txt").read_text()
    assert "real" not in text and "synthetic" not in text


def test_an_odd_practice_block_without_counts_leaves_the_rest_to_the_study(mr_inputs, tmp_path,
                                                                          capsys):
    report = _create(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]),
                     "--synthetic", str(mr_inputs["synthetic"]), "--practice", "3")
    study = Study.open(tmp_path / "study")
    sources = sorted(study.practice.values())
    assert sources in (["real", "real", "synthetic"], ["real", "synthetic", "synthetic"])
    # 6 + 6 inputs: 3 to practice, every other one to the study.
    assert report["n_real"] + report["n_synthetic"] == 9
    assert report["n_real"] == 6 - sources.count("real")


def test_practice_folders_of_their_own(mr_inputs, float_volumes, tmp_path, capsys):
    real = float_volumes(tmp_path / "practice_real", 3, seed=11, shape=(32, 32, 8))
    synthetic = float_volumes(tmp_path / "practice_synthetic", 2, seed=12, shape=(32, 32, 8))
    report = _create(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]), "--synthetic",
                     str(mr_inputs["synthetic"]), "--practice-real", str(real),
                     "--practice-synthetic", str(synthetic))
    study = Study.open(tmp_path / "study")
    assert (report["n_real"], report["n_synthetic"], report["n_practice"]) == (6, 6, 5)
    assert sorted(study.practice.values()) == ["real"] * 3 + ["synthetic"] * 2
    key = _key(report)
    assert {Path(key[c]["origin"]).parent for c in study.practice_ids} == \
        {real.resolve(), synthetic.resolve()}
    # With a count, that many of them, as evenly as they allow.
    report = _create(capsys, tmp_path / "two", "--real", str(mr_inputs["real"]), "--practice",
                     "2", "--practice-real", str(real), "--practice-synthetic", str(synthetic))
    assert sorted(Study.open(tmp_path / "two").practice.values()) == ["real", "synthetic"]


def test_answers_final_is_written_to_the_manifest(mr_inputs, tmp_path, capsys):
    _create(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]), "--answers-final")
    study = Study.open(tmp_path / "study")
    assert study.answers_editable is False and study.practice == {}


@pytest.mark.parametrize("options, expected", [
    (("--practice", "0"), "--practice must be 1 or more"),
    (("--n-real", "5", "--practice", "2"), "more practice cases than the 1 volumes"),
    (("--practice", "7"), "more practice cases than the 5 volumes"),
])
def test_practice_count_mistakes(mr_inputs, tmp_path, capsys, options, expected):
    assert expected in _error(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]),
                              *options)


def test_a_practice_folder_may_not_be_a_study_folder(mr_inputs, tmp_path, capsys):
    err = _error(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]),
                 "--practice-real", str(mr_inputs["real"]))
    assert "--real and --practice-real are the same folder" in err
    assert "practice cases must come from other scans" in err
    inner = mr_inputs["real"].parent
    err = _error(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]),
                 "--practice-synthetic", str(inner))
    assert "lies inside the --practice-synthetic folder" in err


@pytest.mark.parametrize("practice, problem", [
    ([{"case_id": "p01", "source": "real"}], "is not a practice id"),
    ([{"case_id": "P01", "source": "fake"}], "not real or synthetic"),
    ([{"case_id": "P01", "source": "real"}, {"case_id": "P01", "source": "real"}], "twice"),
    ([{"case_id": "P01"}], "that is not"),
    ({"P01": "real"}, "that is not a list"),
])
def test_study_open_refuses_a_bad_practice_list(practice_study, practice, problem):
    out, _ = practice_study
    manifest = json.loads((out / "study.json").read_text())
    manifest["practice"] = practice
    (out / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match=problem):
        Study.open(out)


def test_study_open_refuses_a_study_case_listed_as_practice(practice_study):
    out, _ = practice_study
    manifest = json.loads((out / "study.json").read_text())
    manifest["practice"].append({"case_id": manifest["cases"][0], "source": "real"})
    (out / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="is not a practice id"):
        Study.open(out)


def test_a_missing_practice_file_is_named(practice_study):
    out, _ = practice_study
    (out / "practice" / "P02.nii").unlink()
    with pytest.raises(StudyError, match=r"P02\.nii is missing \(1 of 4 practice"):
        Study.open(out)
