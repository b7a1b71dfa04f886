"""samples.json as a SamplesPlan: one strict reading, with its format version; no torch."""

from __future__ import annotations

import json

import pytest

from diffusion_core.samples import (
    SAMPLES_NAME,
    SamplesError,
    SamplesPlan,
    planned_files,
    read_samples,
    write_samples,
)

REF = {"path": "/runs/x", "hash": "ab" * 32}


def _plan() -> SamplesPlan:
    return SamplesPlan("m", "tiny", REF, {**REF, "path": "/runs/y"}, "dpm", 5, 0.0,
                       planned_files(2, 7))


def test_a_plan_round_trips_through_samples_json(tmp_path):
    plan = _plan()
    write_samples(tmp_path, plan)
    data = json.loads((tmp_path / SAMPLES_NAME).read_text())
    assert data["format"] == "mdiff-samples" and data["version"] == 1
    assert data == plan.to_dict() and read_samples(tmp_path) == plan
    assert SamplesPlan.from_dict(data) == plan


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(colour="blue"), r"unknown samples.json settings \['colour'\]"),
    (lambda d: d.pop("sampler"), r"the samples.json settings lack \['sampler'\]"),
    (lambda d: d.update(files=[{"file": "case_0001.nii.gz"}]), "a file entry has the keys"),
    (lambda d: d.update(files=[{"file": "case_0001.nii.gz", "seed": "x"}]), "invalid literal"),
    (lambda d: d.update(vqgan="x"), "its vqgan, ddpm and gan are not objects"),
    (lambda d: d.update(kind="gan"), "its kind 'gan' is not one of diffusion, wgan"),
    (lambda d: d.update(model=5), "its model is not text"),
])
def test_unknown_missing_or_unusable_keys_are_one_sentence_naming_the_file(tmp_path, change,
                                                                          message):
    data = _plan().to_dict()
    change(data)
    (tmp_path / SAMPLES_NAME).write_text(json.dumps(data))
    with pytest.raises(SamplesError, match=rf"is damaged or from another version of mdiff "
                                           rf"\(.*{message}") as err:
        read_samples(tmp_path)
    assert str(err.value).startswith(str(tmp_path / SAMPLES_NAME)) and "\n" not in str(err.value)


def test_another_format_or_version_is_refused(tmp_path):
    data = _plan().to_dict()
    with pytest.raises(SamplesError, match="is samples.json version 2, which this mdiff cannot "
                                           "read .*; update mdiff"):
        SamplesPlan.from_dict({**data, "version": 2}, tmp_path / SAMPLES_NAME)
    with pytest.raises(SamplesError, match="is not an mdiff samples.json"):
        SamplesPlan.from_dict({**data, "format": "other"})
    (tmp_path / SAMPLES_NAME).write_text("[1]")
    with pytest.raises(SamplesError, match="does not hold a JSON object"):
        read_samples(tmp_path)
