"""Every `origin` in a study's key is a file that outlives the create, whatever the inputs: a
folder of scans, a PREP_DIR, a samples folder, or volumes sampled by `create --model`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.registry import Registry
from studies.cli.study import main
from studies.key import is_inside, read_key


def _origins_exist(report: dict) -> list[Path]:
    """The key's origin files, checked to exist outside the study; returned for more checks."""
    key = read_key(report["key"])
    assert len(key) == report["n_cases"] + report["n_practice"]
    paths = [entry.origin_path for entry in key.values()]
    for path in paths:
        assert path.is_absolute() and path.exists(), path
        assert not is_inside(path, Path(report["study"])), path
    return paths


def _create(capsys, out: Path, *args: str) -> dict:
    code = main(["create", "--out", str(out), *args, "--seed", "5", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_origins_of_scan_folders_exist(mr_inputs, tmp_path, capsys):
    report = _create(capsys, tmp_path / "study", "--real", str(mr_inputs["real"]),
                     "--synthetic", str(mr_inputs["synthetic"]), "--n", "3", "--n-real", "3",
                     "--modality", "MR", "--practice", "2")
    paths = _origins_exist(report)
    assert {p.parent for p in paths} == {mr_inputs["real"].resolve(),
                                         mr_inputs["synthetic"].resolve()}


def test_origins_of_a_prep_dir_and_a_samples_folder_exist(make_blob_prep_dir, make_samples_folder,
                                                          tmp_path, capsys):
    prep = make_blob_prep_dir(tmp_path / "prep", n=3, preset="tiny")
    rng = np.random.default_rng(0)
    samples = make_samples_folder(tmp_path / "samples", "tiny",
                                  [rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
                                   for _ in range(3)])
    report = _create(capsys, tmp_path / "study", "--real", str(prep), "--synthetic",
                     str(samples), "--preset", "tiny")
    paths = _origins_exist(report)
    assert {p.parent for p in paths} == {prep.resolve(), samples.resolve()}


@pytest.mark.parametrize("key_name", [None, "keys/k.key.csv"])
def test_origins_of_sampled_cases_exist_in_the_samples_folder_beside_the_key(
        key_name, tiny_model, make_blob_prep_dir, tmp_path, monkeypatch, capsys):
    vq, dd = tiny_model
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    Registry().add("tinymodel", vq, dd)
    prep = make_blob_prep_dir(tmp_path / "prep", n=3, preset="tiny")
    key_args = []
    if key_name is not None:
        (tmp_path / "keys").mkdir()
        key_args = ["--key", str(tmp_path / key_name)]
    report = _create(capsys, tmp_path / "study", "--model", "tinymodel", "--n", "2", "--real",
                     str(prep), "--n-real", "2", "--practice", "2", "--sampler", "ddim",
                     "--steps", "3", "--device", "cpu", *key_args)
    kept = Path(report["key"]).with_name("study.samples" if key_name is None else "k.samples")
    paths = _origins_exist(report)
    synthetic = [p for p in paths if p.parent != prep.resolve()]
    assert len(synthetic) == 3 and all(p.parent == kept.resolve() for p in synthetic)
    assert (kept / "samples.json").is_file()  # the sampling's settings and seeds, to rerun it
    assert any(str(kept) in note for note in report["notes"])
    assert not list((tmp_path / "study").rglob("*.samples"))  # nothing of them in the study
