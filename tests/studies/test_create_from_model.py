"""`mdiff-study create --model NAME --n N`: sampled cases end to end, through the audit."""

from __future__ import annotations

import csv
import json

import pytest

from diffusion_core.registry import Registry
from diffusion_core.sampling import sample_folder
from studies.cli.study import main


def test_create_with_a_registered_model_passes_the_audit(tiny_model, tmp_path, monkeypatch,
                                                         capsys):
    vq, dd = tiny_model
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    Registry().add("tinymodel", vq, dd)
    real = tmp_path / "real"
    sample_folder("tinymodel", 6, real, sampler="dpm", steps=4, seed=1000, progress=False)
    (real / "samples.json").unlink()  # stands in for a folder of real scans of the preset
    out = tmp_path / "study"
    code = main(["create", "--out", str(out), "--model", "tinymodel", "--n", "6", "--real",
                 str(real), "--sampler", "ddim", "--steps", "5", "--seed", "3",
                 "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["n_synthetic"] == 6 and report["n_real"] == 6 and report["dataset"] == "tiny"
    with open(report["key"]) as handle:
        rows = [r for r in csv.DictReader(handle) if r["source"] == "synthetic"]
    assert {r["model"] for r in rows} == {"tinymodel"}
    assert sorted(int(r["seed"]) for r in rows) == [3, 4, 5, 6, 7, 8]
    assert not list(tmp_path.glob(".study.samples-*"))  # the temporary samples are gone
    assert main(["audit", str(out), "--key", report["key"]]) == 0, capsys.readouterr().out


def test_a_samples_folder_as_synthetic_gives_the_key_its_seeds(tiny_model, tmp_path,
                                                               monkeypatch, capsys):
    vq, dd = tiny_model
    samples = tmp_path / "samples"
    sample_folder(str(dd), 3, samples, sampler="dpm", steps=4, seed=40, progress=False)
    code = main(["create", "--out", str(tmp_path / "study"), "--synthetic", str(samples),
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    with open(json.loads(captured.out)["key"]) as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(int(r["seed"]) for r in rows) == [40, 41, 42]
    assert {r["model"] for r in rows} == {dd.name}


def test_model_mistakes_are_one_sentence(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    code = main(["create", "--out", str(tmp_path / "s"), "--model", "duke", "--n", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "no model named 'duke'" in err and err.count("\n") == 1
    code = main(["create", "--out", str(tmp_path / "s"), "--model", "duke"])
    assert code == 2 and "give --n N" in capsys.readouterr().err


def test_a_practice_block_samples_its_synthetic_cases_beside_the_study(tiny_model, tmp_path,
                                                                       monkeypatch, capsys):
    vq, dd = tiny_model
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    Registry().add("tinymodel", vq, dd)
    real = tmp_path / "real"
    sample_folder("tinymodel", 3, real, sampler="dpm", steps=4, seed=500, progress=False)
    (real / "samples.json").unlink()
    code = main(["create", "--out", str(tmp_path / "study"), "--model", "tinymodel", "--n", "2",
                 "--real", str(real), "--n-real", "2", "--practice", "2", "--sampler", "ddim",
                 "--steps", "3", "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert (report["n_synthetic"], report["n_real"], report["n_practice"]) == (2, 2, 2)
    assert report["samples"] == str(tmp_path / "study.samples")
    assert (tmp_path / "study.samples" / "samples.json").is_file()
    with open(report["key"]) as handle:
        practice = {r["case_id"]: r for r in csv.DictReader(handle) if r["case_id"][0] == "P"}
    assert sorted(r["source"] for r in practice.values()) == ["real", "synthetic"]
    assert {r["model"] for r in practice.values() if r["source"] == "synthetic"} == {"tinymodel"}


def _registered(tiny_model, tmp_path, monkeypatch):
    vq, dd = tiny_model
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    Registry().add("tinymodel", vq, dd)
    return ["--model", "tinymodel", "--n", "2", "--sampler", "ddim", "--steps", "3",
            "--device", "cpu"]


def test_an_existing_samples_folder_beside_the_key_is_refused(tiny_model, tmp_path, monkeypatch,
                                                              capsys):
    model = _registered(tiny_model, tmp_path, monkeypatch)
    kept = tmp_path / "study.samples"
    kept.mkdir()
    (kept / "mine.txt").write_text("someone's")
    code = main(["create", "--out", str(tmp_path / "study"), *model])
    err = capsys.readouterr().err
    assert code == 2 and "study.samples" in err and "already exists" in err
    assert err.count("\n") == 1
    assert (kept / "mine.txt").read_text() == "someone's" and len(list(kept.iterdir())) == 1
    assert not (tmp_path / "study").exists() and not (tmp_path / "study.key.csv").exists()


def test_a_samples_folder_that_would_be_the_study_is_refused(tiny_model, tmp_path, monkeypatch,
                                                             capsys):
    model = _registered(tiny_model, tmp_path, monkeypatch)
    code = main(["create", "--out", str(tmp_path / "x.samples"), "--key",
                 str(tmp_path / "x.key.csv"), *model])
    err = capsys.readouterr().err
    assert code == 2 and "give a --key path apart from the study" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_create_that_fails_after_sampling_removes_its_samples(tiny_model, tmp_path,
                                                                monkeypatch, capsys):
    model = _registered(tiny_model, tmp_path, monkeypatch)
    real = tmp_path / "real"
    real.mkdir()
    (real / "broken.nii.gz").write_bytes(b"not a volume")
    code = main(["create", "--out", str(tmp_path / "study"), *model, "--real", str(real)])
    err = capsys.readouterr().err
    assert code == 2 and "broken.nii.gz" in err, err  # found when the folders are read
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "real"]


def test_samples_path_sits_beside_the_key(tmp_path):
    from studies.key import samples_path

    assert samples_path(tmp_path / "s.key.csv") == tmp_path / "s.samples"
    assert samples_path(tmp_path / "k.csv") == tmp_path / "k.samples"
    assert samples_path(tmp_path / "k.samples") == tmp_path / "k.samples.samples"
    assert samples_path(tmp_path / ".key.csv") == tmp_path / ".key.samples"


def test_a_paired_study_from_a_model_samples_one_volume_per_trial(tiny_model, tmp_path,
                                                                  monkeypatch, capsys):
    vq, dd = tiny_model
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    Registry().add("tinymodel", vq, dd)
    real = tmp_path / "real"
    sample_folder("tinymodel", 3, real, sampler="dpm", steps=4, seed=1000, progress=False)
    (real / "samples.json").unlink()
    out = tmp_path / "study"
    code = main(["create", "--out", str(out), "--model", "tinymodel", "--real", str(real),
                 "--design", "2afc", "--pairs", "3", "--steps", "4", "--seed", "3",
                 "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["design"] == "2afc" and report["n_trials"] == 3
    assert report["n_synthetic"] == 3 and report["n_real"] == 3  # --n defaulted to --pairs
    with open(report["key"]) as handle:
        rows = list(csv.DictReader(handle))
    assert all(r["trials"] for r in rows)
    assert {r["model"] for r in rows if r["source"] == "synthetic"} == {"tinymodel"}


@pytest.mark.parametrize("design", [[], ["--design", "2afc", "--pairs", "4"]])
def test_a_real_folder_too_small_is_refused_before_sampling(design, tiny_model, tmp_path,
                                                            monkeypatch, capsys):
    """Sampling may take hours: a request the --real folder cannot meet is refused first."""
    import diffusion_core.sampling

    model = _registered(tiny_model, tmp_path, monkeypatch)
    real = tmp_path / "real"
    sample_folder("tinymodel", 3, real, sampler="dpm", steps=4, seed=1000, progress=False)
    (real / "samples.json").unlink()
    sampled = []
    monkeypatch.setattr(diffusion_core.sampling, "sample_folder",
                        lambda *args, **kwargs: sampled.append(args))
    count = [] if design else ["--n-real", "5"]
    code = main(["create", "--out", str(tmp_path / "study"), *model, "--real", str(real),
                 *count, *design])
    err = capsys.readouterr().err
    assert code == 2 and "holds 3" in err and err.count("\n") == 1, err
    assert sampled == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "real"]
