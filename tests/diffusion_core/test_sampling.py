"""Sampling a trained tiny model: seeds fix volumes whatever the batch, mdiff-sample's folder."""

from __future__ import annotations

import json

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
