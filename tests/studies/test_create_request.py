"""`StudyRequest`: every option of a create, checked in one place before any volume is read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from studies.create import create_study
from studies.request import StudyRequest
from studies.study import StudyError

# Each mistake that the options alone show, with the start of its one sentence. The folders
# need not exist: the request refuses before any folder is listed.
MISTAKES = [
    ({}, "No volumes were given"),
    ({"real": "r", "n_real": -1}, "--n-real must be 0 or more, not -1."),
    ({"synthetic": "s", "n": -2}, "--n must be 0 or more, not -2."),
    ({"real": "r", "n": 3}, "--n 3 asks for synthetic cases but no --synthetic folder"),
    ({"synthetic": "s", "n_real": 2}, "--n-real 2 asks for real cases but no --real folder"),
    ({"synthetic": "s", "n": 0}, "No volumes were chosen (--n and --n-real are 0)"),
    ({"real": "r", "practice": 0}, "--practice must be 1 or more, not 0."),
    ({"real": "r", "modality": "PET"}, "The modality 'PET' is not CT or MR"),
    ({"real": "r", "preset": "tiny", "modality": "CT"}, "Preset 'tiny' is MR, not CT"),
    ({"real": "r", "preset": "no-such-preset"}, "unknown preset 'no-such-preset'"),
    ({"real": "r", "synthetic": "r"}, "--real and --synthetic are the same folder"),
    ({"real": "r", "practice_real": "r/p"}, "The --practice-real folder"),
]


@pytest.mark.parametrize(("options", "message"), MISTAKES)
def test_each_mistake_is_one_sentence_when_the_request_is_made(tmp_path, options, message,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError) as caught:
        StudyRequest(tmp_path / "study", **options)
    text = str(caught.value)
    assert text.startswith(message)
    assert text.endswith(".") and "\n" not in text
    assert not (tmp_path / "study").exists()


def test_an_existing_study_or_key_is_refused(tmp_path):
    (tmp_path / "old").mkdir()
    with pytest.raises(StudyError, match="already exists; choose a new --out folder"):
        StudyRequest(tmp_path / "old", real=tmp_path)
    (tmp_path / "study.key.csv").write_text("case_id\n")
    with pytest.raises(StudyError, match="The key .* already exists"):
        StudyRequest(tmp_path / "study", real=tmp_path / "r")


def test_a_request_holds_paths_its_key_path_and_its_preset(tmp_path):
    request = StudyRequest(str(tmp_path / "study"), real=str(tmp_path / "real"), n_real=2,
                           preset="tiny")
    assert request.out == tmp_path / "study" and request.real == tmp_path / "real"
    assert request.key_path == tmp_path / "study.key.csv"
    assert request.loaded_preset.name == "tiny"
    assert request.folders == {"--real": tmp_path / "real", "--synthetic": None,
                               "--practice-real": None, "--practice-synthetic": None}
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.n = 3
    # A copy with one option changed is checked again.
    with pytest.raises(StudyError, match="--n-real must be 0 or more"):
        dataclasses.replace(request, n_real=-1)


def test_create_study_takes_exactly_the_requests_options(tmp_path):
    with pytest.raises(TypeError, match="n_synthetic"):
        create_study(tmp_path / "study", real=tmp_path, n_synthetic=2)
    assert not list(Path(tmp_path).iterdir())
