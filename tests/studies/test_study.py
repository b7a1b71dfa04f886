"""study.json as `StudyManifest`: every version on disk read, what create writes, and one
sentence naming the file for a missing, unknown or mistyped field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studies.cli.study import main
from studies.study import (
    MANIFEST_NAME,
    PracticeEntry,
    Study,
    StudyError,
    StudyManifest,
    read_manifest,
)

DATA = Path(__file__).parent / "data"
TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
TURING = ("real_or_synthetic", "confidence")


def _valid() -> dict:
    """A version 2 study.json with every field, as create writes it."""
    return {
        "format": "mdiff-study", "version": 2, "study_id": "0123456789abcdef", "title": "Knee",
        "dataset": "mrnet", "modality": "MR", "questions": list(TABLE1), "turing": False,
        "cases": ["0a1b2c3d", "4e5f6a7b"], "shape": [8, 16, 16], "spacing": [3.0, 1.4, 1.4],
        "viewer": {"percentile": [0.5, 99.5]}, "created_at": "2026-01-01T00:00:00+00:00",
        "answers_editable": False, "practice": [{"case_id": "P01", "source": "real"}],
    }


def test_version_1_without_the_later_fields_reads_with_their_defaults():
    """tests/studies/data/v1_study: a version 1 study.json from before practice cases and
    `answers_editable` (the Turing questions asked)."""
    path = DATA / "v1_study" / MANIFEST_NAME
    manifest = read_manifest(path)
    assert manifest == StudyManifest(
        version=1, study_id="00c0ffee00c0ffee", title="Schema 1 study", dataset="tiny",
        modality="MR", questions=TABLE1 + TURING, turing=True,
        cases=("0a1b2c3d", "4e5f6a7b", "8c9d0e1f", "2a3b4c5d"), shape=(8, 16, 16),
        spacing=(4.0, 4.0, 4.0), viewer={"percentile": [0.5, 99.5]},
        created_at="2024-01-01T00:00:00+00:00")
    assert (manifest.answers_editable, manifest.practice,
            manifest.practice_truth_when_flagged) == (True, (), False)
    # to_dict writes the later fields with the defaults the file went without.
    assert manifest.to_dict() == {**json.loads(path.read_text()), "answers_editable": True,
                                  "practice": []}


def test_version_1_with_practice_cases_reads_them_in_order():
    """tests/studies/data/v2_study: a version 1 study.json with a practice block."""
    manifest = read_manifest(DATA / "v2_study" / MANIFEST_NAME)
    assert (manifest.version, manifest.turing, manifest.questions) == (1, False, TABLE1)
    assert manifest.practice == (PracticeEntry("P01", "synthetic"), PracticeEntry("P02", "real"))


def _create(inputs: tuple[Path, Path], out: Path, *args: str) -> Path:
    real, synthetic = inputs
    assert main(["create", "--out", str(out), "--real", str(real), "--synthetic",
                 str(synthetic), "--n", "3", "--n-real", "3", "--modality", "MR", *args]) == 0
    return out


def test_what_create_writes_reads_back_and_writes_the_same_json(phantom_inputs, tmp_path):
    """A version 2 study made by the current create: to_dict gives back study.json exactly."""
    out = _create(phantom_inputs(tmp_path / "in", 4), tmp_path / "study", "--practice", "2",
                  "--answers-final")
    text = (out / MANIFEST_NAME).read_text(encoding="utf-8")
    manifest = read_manifest(out / MANIFEST_NAME)
    assert json.dumps(manifest.to_dict(), indent=2) + "\n" == text
    assert (manifest.version, manifest.answers_editable, len(manifest.cases)) == (2, False, 6)
    assert [p.case_id for p in manifest.practice] == ["P01", "P02"]
    study = Study.open(out)
    assert study.manifest == manifest
    assert (study.case_suffix, study.practice_ids, study.answers_editable) == \
        (".nii", ["P01", "P02"], False)


def test_a_version_1_study_opens_with_gzipped_cases(phantom_inputs, version_1, tmp_path):
    """Study.open of a version 1 folder (a created study turned back) finds its `.nii.gz`."""
    out = _create(phantom_inputs(tmp_path / "in", 3), tmp_path / "study")
    study = Study.open(version_1.to_version_1(out))
    assert study.manifest.version == 1 and study.case_suffix == ".nii.gz"
    assert all(study.case_path(c).is_file() for c in study.case_ids)


@pytest.mark.parametrize("version", [1, 2])
def test_the_later_optional_fields_default_in_either_version(version):
    """Studies made before `answers_editable`, `practice` and `practice_truth_when_flagged`
    existed lack them: editable answers, no practice block, no truth for a flagged case."""
    data = _changed(version=version, answers_editable=..., practice=...)
    manifest = StudyManifest.from_dict(data, Path("study.json"))
    assert (manifest.version, manifest.answers_editable, manifest.practice,
            manifest.practice_truth_when_flagged) == (version, True, (), False)


def test_round_trip_keeps_every_field():
    data = {**_valid(), "practice_truth_when_flagged": True}
    manifest = StudyManifest.from_dict(data, Path("study.json"))
    assert manifest.to_dict() == data
    assert StudyManifest.from_dict(manifest.to_dict(), Path("study.json")) == manifest
    # The setting is written only where a study sets it, as create leaves it out.
    assert "practice_truth_when_flagged" not in StudyManifest.from_dict(
        _valid(), Path("study.json")).to_dict()


def _changed(**changes) -> dict:
    """The valid manifest with fields replaced; a value of `...` removes the field."""
    data = _valid()
    for name, value in changes.items():
        if value is ...:
            del data[name]
        else:
            data[name] = value
    return data


@pytest.mark.parametrize("changes, message", [
    ({"format": "other"}, "is not an mdiff-study manifest"),
    ({"version": 3}, "has format version 3, but this mdiff reads versions 1 and 2; use the "
                     "mdiff version that made the study"),
    ({"version": 3, "layout": "x"}, "has format version 3"),
    ({"title": ...}, "lacks the field 'title'"),
    ({"cases": ..., "viewer": ...}, "lacks the fields 'cases' and 'viewer'"),
    ({"preset": "mrnet"}, "has the unknown field 'preset', which no study of format version 2"),
    ({"version": True}, "has a field 'version' that is not a whole number"),
    ({"version": "2"}, "has a field 'version' that is not a whole number"),
    ({"turing": 1}, "has a field 'turing' that is not true or false"),
    ({"cases": "0a1b2c3d"}, "has a field 'cases' that is not a list"),
    ({"viewer": []}, "has a field 'viewer' that is not an object"),
    ({"title": None}, "has a field 'title' that is not text"),
    ({"answers_editable": "no"}, "has a field 'answers_editable' that is not true or false"),
    ({"practice_truth_when_flagged": 1},
     "has a field 'practice_truth_when_flagged' that is not true or false"),
    ({"practice": {}}, "has a field 'practice' that is not a list"),
    ({"modality": "PET"}, "names the modality 'PET', not CT or MR"),
    ({"questions": [*TABLE1, "beauty"]}, "names the unknown question 'beauty'"),
    ({"questions": [[1]]}, "names the unknown question [1]"),
    ({"turing": True}, "but a study with the 2 Turing questions asks"),
    ({"cases": []}, "lists no cases"),
    ({"cases": ["../etc"]}, "lists a case id that is not a hexadecimal name"),
    ({"cases": ["0a1b2c3d", "0a1b2c3d"]}, "lists a case twice"),
    ({"shape": [8, 16]}, "has a shape or spacing without three values"),
    ({"shape": [8, 16, 16.0]}, "has a shape that is not three positive whole numbers"),
    ({"shape": [0, 16, 16]}, "has a shape that is not three positive whole numbers"),
    ({"spacing": [3.0, "1", 1.4]}, "has a spacing that is not three positive numbers"),
    ({"practice": [{"case_id": "P01"}]}, "lists a practice case that is not"),
    ({"practice": [{"case_id": "0a1b2c3d", "source": "real"}]},
     "lists the practice case '0a1b2c3d', which is not a practice id"),
    ({"practice": [{"case_id": "P01", "source": "real"}] * 2},
     "lists the practice case P01 twice"),
    ({"practice": [{"case_id": "P01", "source": "fake"}]},
     "gives the practice case P01 the source 'fake', not real or synthetic"),
])
def test_a_bad_field_is_one_sentence_naming_the_file(changes, message):
    path = Path("some") / "study" / MANIFEST_NAME
    with pytest.raises(StudyError) as error:
        StudyManifest.from_dict(_changed(**changes), path)
    text = str(error.value)
    assert text.startswith(f"{path} ") and message in text
    assert text.endswith(".") and text.count(". ") == 0 and "\n" not in text


def test_ints_are_numbers_for_spacing():
    """A spacing written as whole numbers is still a spacing (JSON does not tell 4 from 4.0)."""
    manifest = StudyManifest.from_dict(_changed(spacing=[4, 1, 1]), Path("study.json"))
    assert manifest.spacing == (4.0, 1.0, 1.0)


@pytest.mark.parametrize("content, message", [
    ("{", "cannot be read as JSON"),
    ("[]", "is not an mdiff-study manifest"),
])
def test_a_file_that_is_no_manifest_is_refused(tmp_path, content, message):
    path = tmp_path / MANIFEST_NAME
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StudyError, match=message):
        read_manifest(path)
