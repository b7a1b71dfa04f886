"""Sampling a trained tiny model: seeds fix volumes whatever the batch, mdiff-sample's folder."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from diffusion_core.cli.sample import main as sample_main
from diffusion_core.io import read_volume
from diffusion_core.presets import get_preset
from diffusion_core.samples import SamplesError, read_samples
from diffusion_core.sampling import LatentDiffusionPipeline


@pytest.mark.parametrize(("sampler", "steps"), [("ddpm", None), ("ddim", 5), ("dpm", 4)])
def test_a_seed_gives_the_same_volume_whatever_the_batch(tiny_model, sampler, steps):
    vq, dd = tiny_model
    pipeline = LatentDiffusionPipeline.from_runs(str(vq), str(dd), torch.device("cpu"))
    together = pipeline.sample([3, 4, 5], sampler=sampler, steps=steps, eta=1.0)
    alone = pipeline.sample([4], sampler=sampler, steps=steps, eta=1.0)
    assert together[1].seed == alone[0].seed == 4
    np.testing.assert_allclose(together[1].normalised, alone[0].normalised, atol=1e-4)
    assert not np.allclose(together[0].normalised, together[1].normalised)
    shape = get_preset("tiny").shape
    assert together[0].intensity.shape == shape and together[0].intensity.dtype == np.float32
    assert 0.0 <= together[0].intensity.min() and together[0].intensity.max() <= 1.0


def test_more_steps_than_trained_is_one_sentence(tiny_model, tmp_path, capsys):
    vq, dd = tiny_model
    code = sample_main(["--model", str(dd), "--n", "1", "--out", str(tmp_path / "s"),
                        "--sampler", "ddim", "--steps", "500", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "500" in err


def test_mdiff_sample_writes_a_samples_folder_and_resumes(tiny_model, tmp_path, capsys):
    vq, dd = tiny_model
    out = tmp_path / "samples"
    argv = ["--model", str(dd), "--n", "3", "--out", str(out), "--sampler", "dpm", "--steps",
            "5", "--seed", "10", "--batch-size", "2", "--device", "cpu", "--json"]
    assert sample_main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 3 and summary["kept"] == 0
    plan = read_samples(out)
    assert plan.complete and [f["seed"] for f in plan.files] == [10, 11, 12]
    assert plan.vqgan["hash"] and plan.ddpm["hash"] and plan.sampler == "dpm"
    volume = read_volume(out / plan.files[0]["file"])
    assert volume.array.shape == get_preset("tiny").shape and volume.modality == "MR"
    assert volume.spacing == pytest.approx(get_preset("tiny").spacing)
    # Interrupted: one file lost. Running again writes only that one, with the same volume.
    lost = out / plan.files[1]["file"]
    before = np.asarray(nib.load(lost).dataobj)
    lost.unlink()
    assert sample_main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["written"] == 1 and again["kept"] == 2
    np.testing.assert_allclose(np.asarray(nib.load(lost).dataobj), before, atol=1e-5)
    # Other settings into the same folder are refused.
    assert sample_main([*argv[:-1], "--seed", "99"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_a_foreign_folder_is_not_overwritten(tmp_path):
    from diffusion_core.samples import SamplesPlan, open_samples_folder

    (tmp_path / "notes.txt").write_text("mine")
    plan = SamplesPlan("m", "tiny", {}, {}, "dpm", 5, 0.0, [{"file": "case_0001.nii.gz",
                                                              "seed": 0}])
    with pytest.raises(SamplesError, match="not empty"):
        open_samples_folder(tmp_path, plan)


def _refused(capsys, code: int, *phrases: str) -> str:
    """The one sentence a refused mdiff-sample printed (exit 2, nothing on stdout)."""
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and err.startswith("mdiff-sample: "), err
    assert out == "" and "Traceback" not in err
    for phrase in phrases:
        assert phrase in err, err
    return err


def _argv(dd, out, *extra: str) -> list[str]:
    return ["--model", str(dd), "--out", str(out), "--device", "cpu", *extra]


def test_an_absurd_n_is_refused_before_anything_is_allocated(tiny_model, tmp_path, capsys,
                                                             monkeypatch):
    import diffusion_core.sampling as sampling

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for a plan that cannot fit")

    monkeypatch.setattr(sampling.LatentDiffusionPipeline, "from_runs", no_model)
    out = tmp_path / "s"
    code = sample_main(_argv(tiny_model[1], out, "--n", "100000000000"))
    _refused(capsys, code, "--n 100000000000 volumes need at least", "free")
    assert not out.exists()


def test_a_plan_beyond_the_free_disk_or_memory_is_one_sentence(tmp_path, monkeypatch):
    import shutil

    from diffusion_core import samples

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(samples.shutil, "disk_usage",
                        lambda path: usage._replace(free=10 * 1536 - 1))
    samples.check_room(tmp_path / "s", 9, 2048)  # the tiny preset: 1.5 KB a volume at least
    with pytest.raises(SamplesError, match=r"--n 10 volumes need at least 15.4 KB"):
        samples.check_room(tmp_path / "s", 10, 2048)
    monkeypatch.setattr(samples.shutil, "disk_usage", lambda path: usage)
    monkeypatch.setattr(samples, "available_memory", lambda: 1000 * samples.PLAN_BYTES_PER_FILE)
    samples.check_room(tmp_path / "s", 1000, 1)
    with pytest.raises(SamplesError, match="of memory just to plan"):
        samples.check_room(tmp_path / "s", 1001, 1)


def test_volumes_are_written_as_each_batch_is_done(tiny_model, tmp_path, monkeypatch):
    from diffusion_core.sampling import sample_folder

    original = LatentDiffusionPipeline.sample
    calls = []

    def sample_then_stop(self, seeds, *args, **kwargs):
        calls.append(list(seeds))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, seeds, *args, **kwargs)

    monkeypatch.setattr(LatentDiffusionPipeline, "sample", sample_then_stop)
    out = tmp_path / "s"
    with pytest.raises(KeyboardInterrupt):
        sample_folder(str(tiny_model[1]), 5, out, steps=3, batch_size=2, device="cpu",
                      progress=False)
    assert calls == [[0, 1], [2, 3]]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ["case_0001.nii.gz",
                                                            "case_0002.nii.gz"]
    assert read_samples(out).complete is False


@pytest.mark.parametrize(("seed", "n", "phrase"), [
    ("18446744073709551615", "1", "from 0 to 9223372036854775807"),
    ("-1", "1", "from 0 to 9223372036854775807"),
    ("9223372036854775807", "2", "give a --seed of at most 9223372036854775806"),
])
def test_a_seed_out_of_range_is_one_sentence(tiny_model, tmp_path, capsys, seed, n, phrase):
    out = tmp_path / "s"
    _refused(capsys, sample_main(_argv(tiny_model[1], out, "--seed", seed, "--n", n)), phrase)
    assert not out.exists()


def test_the_largest_seed_samples(tiny_model, tmp_path, capsys):
    out = tmp_path / "s"
    assert sample_main(_argv(tiny_model[1], out, "--seed", str(2 ** 63 - 1), "--n", "1",
                             "--steps", "2")) == 0
    assert read_samples(out).files[0]["seed"] == 2 ** 63 - 1


def test_an_unusable_out_is_one_sentence(tiny_model, tmp_path, capsys, monkeypatch):
    import os

    dd = tiny_model[1]
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    _refused(capsys, sample_main(_argv(dd, a_file, "--n", "1")), "is a file, not a folder")
    _refused(capsys, sample_main(_argv(dd, a_file / "sub", "--n", "1")),
             f"{a_file} is a file")
    assert a_file.read_text() == "mine"
    if Path("/proc/self").is_dir():
        _refused(capsys, sample_main(_argv(dd, "/proc/x", "--n", "1", "--steps", "2")),
                 "cannot write the samples folder /proc/x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.geteuid() == 0:  # root writes anywhere: stand in for the system's refusal
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
                False if Path(path) == locked else real_access(path, mode, **kw)))
        _refused(capsys, sample_main(_argv(dd, locked / "s", "--n", "1")),
                 f"cannot write the samples folder {locked / 's'}", "not writable")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


def test_a_folder_the_system_refuses_is_one_sentence(tmp_path, monkeypatch):
    from diffusion_core.samples import SamplesPlan, open_samples_folder

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    plan = SamplesPlan("m", "tiny", {}, {}, "dpm", 5, 0.0, [{"file": "case_0001.nii.gz",
                                                              "seed": 0}])
    with pytest.raises(SamplesError, match=r"cannot write the samples folder .*Permission denied"):
        open_samples_folder(tmp_path / "s", plan)


def test_the_default_steps_are_what_the_preset_allows(tiny_model, tmp_path, capsys):
    # The tiny preset's DPM-Solver has 19 usable steps, fewer than the default 20.
    out = tmp_path / "s"
    assert sample_main(_argv(tiny_model[1], out, "--n", "1", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 19 == read_samples(out).steps
    pipeline = LatentDiffusionPipeline.from_runs(str(tiny_model[0]), str(tiny_model[1]),
                                                 torch.device("cpu"))
    assert pipeline.scheduler("dpm", None).num_inference_steps == 19
    trained = pipeline.scheduler_config.num_train_timesteps
    assert pipeline.scheduler("ddim", None).num_inference_steps == min(50, trained)
    assert pipeline.scheduler("ddpm", None).num_inference_steps == trained


def test_a_folder_without_run_json_says_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    starting = tmp_path / "run"
    starting.mkdir()
    _refused(capsys, sample_main(_argv(starting, tmp_path / "s", "--n", "1")),
             f"{starting} is a folder but not a DDPM or GAN run folder: its run.json is "
             f"missing")
    # A name that is no folder is still an unknown model.
    _refused(capsys, sample_main(_argv("nosuch", tmp_path / "s", "--n", "1")),
             "no model named 'nosuch'")


def test_an_interrupted_folder_is_refused_where_finished_samples_are_wanted(tmp_path):
    from diffusion_core.samples import SamplesPlan, planned_files, write_samples

    plan = SamplesPlan("m", "tiny", {}, {}, "dpm", 5, 0.0, planned_files(3, 7))
    write_samples(tmp_path, plan)
    (tmp_path / "case_0001.nii.gz").write_bytes(b"")
    assert read_samples(tmp_path).files[2] == {"file": "case_0003.nii.gz", "seed": 9}
    with pytest.raises(SamplesError, match=r"was interrupted .*\(1 of 3 volumes written\); "
                                           r"finish it by running the same mdiff-sample"):
        read_samples(tmp_path, finished=True)
    plan.complete = True
    write_samples(tmp_path, plan)
    assert read_samples(tmp_path, finished=True).complete
