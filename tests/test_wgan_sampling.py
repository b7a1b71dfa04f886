"""The GAN baseline after training: registry, mdiff-sample, sources, studies and mdiff-eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusion_core.cli.models import main as models_main
from diffusion_core.cli.sample import main as sample_main
from diffusion_core.registry import Registry, RegistryError
from diffusion_core.samples import read_samples
from diffusion_core.sampling import sample_folder


@pytest.fixture
def gan_run(tmp_path, make_blob_prep_dir):
    """(PREP_DIR, GAN run) of the tiny preset, trained two steps: the plumbing, not quality."""
    from diffusion_core.presets import wgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.wgan import train_wgan

    root = tmp_path / "trained"
    prep = make_blob_prep_dir(root / "prep")
    train_wgan("tiny", prep, root / "gan", settings=wgan_settings("tiny"), device="cpu",
               trainer=TrainerConfig(steps=2, batch_size=2, learning_rate=1e-4, val_every=2),
               progress=False)
    return prep, root / "gan"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_gan_samples_folder_says_which_kind_and_volumes_follow_their_seeds(gan_run, tmp_path,
                                                                             home):
    from diffusion_core.io import read_volume
    from diffusion_core.presets import get_preset

    _, run = gan_run
    assert sample_main(["--model", str(run), "--n", "3", "--out", str(tmp_path / "a"),
                        "--seed", "7", "--batch-size", "3"]) == 0
    assert sample_main(["--model", str(run), "--n", "3", "--out", str(tmp_path / "b"),
                        "--seed", "7", "--batch-size", "1"]) == 0
    plan = read_samples(tmp_path / "a", finished=True)
    assert (plan.kind, plan.sampler, plan.steps, plan.vqgan, plan.ddpm) == (
        "wgan", "generator", 1, {}, {})
    assert plan.gan["path"] == str(run.resolve()) and len(plan.gan["hash"]) == 64
    assert [f["seed"] for f in plan.files] == [7, 8, 9]
    spec = get_preset("tiny")
    arrays = []
    for name in ("case_0001.nii.gz", "case_0002.nii.gz"):
        a, b = (read_volume(tmp_path / folder / name) for folder in ("a", "b"))
        assert a.array.shape == spec.shape and 0 <= a.array.min() and a.array.max() <= 1
        # The batch does not change a volume (beyond float rounding in the matrix products).
        np.testing.assert_allclose(a.array, b.array, atol=1e-5)
        arrays.append(a.array)
    assert not np.array_equal(*arrays)


def test_diffusion_options_are_refused_for_a_gan(gan_run, tmp_path, home, capsys):
    _, run = gan_run
    assert sample_main(["--model", str(run), "--n", "1", "--out", str(tmp_path / "s"),
                        "--sampler", "ddim", "--steps", "5"]) == 2
    err = capsys.readouterr().err
    assert "is a GAN, which makes each volume in one pass: leave out --sampler, --steps" in err
    assert err.count("\n") == 1 and not (tmp_path / "s").exists()


def test_the_registry_takes_a_gan_run_by_name(gan_run, tiny_model, tmp_path, home, capsys):
    _, run = gan_run
    vqgan, ddpm = tiny_model
    assert models_main(["add", "tinygan", "--wgan", str(run), "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert (entry["kind"], entry["gan"], entry["preset"]) == ("wgan", str(run.resolve()), "tiny")
    stored = json.loads((home / "models.json").read_text())["models"]["tinygan"]
    assert set(stored) == {"kind", "preset", "gan", "added"}
    registry = Registry()
    assert registry.resolve("tinygan").kind == "wgan"
    assert registry.resolve(str(run)).gan == str(run.resolve())
    assert models_main(["list"]) == 0
    assert "tinygan: GAN baseline, preset tiny" in capsys.readouterr().out
    summary = sample_folder("tinygan", 2, tmp_path / "s", progress=False)
    assert summary["kind"] == "wgan" and read_samples(tmp_path / "s").model == "tinygan"
    # A diffusion run given as a GAN and the reverse: one sentence each.
    assert models_main(["add", "x", "--wgan", str(vqgan)]) == 2
    assert "is a VQ-GAN run, not a GAN baseline (WGAN-GP) run" in capsys.readouterr().err
    assert models_main(["add", "x", "--vqgan", str(run), "--ddpm", str(ddpm)]) == 2
    assert "is a GAN baseline (WGAN-GP) run, not a vqgan run" in capsys.readouterr().err
    assert models_main(["add", "x", "--wgan", str(run), "--ddpm", str(ddpm)]) == 2
    assert "--wgan registers a GAN run on its own" in capsys.readouterr().err
    assert models_main(["add", "x"]) == 2
    assert "give --vqgan RUN and --ddpm RUN for a diffusion model, or --wgan RUN" in (
        capsys.readouterr().err)


def test_bundled_names_are_reserved_for_gans_too(gan_run, home):
    _, run = gan_run
    bundled = Registry().entries()
    assert bundled["demo-gan"].kind == "wgan" and bundled["demo-gan"].bundled
    assert bundled["demo-gan"].preset == "demo" and bundled["demo"].kind == "diffusion"
    with pytest.raises(RegistryError, match="'demo-gan' is the name of the model bundled"):
        Registry().add_gan("demo-gan", run)


def test_the_bundled_gan_samples_the_demo_shape(tmp_path, home):
    from diffusion_core.sources import open_sources

    summary = sample_folder("demo-gan", 2, tmp_path / "s", device="cpu", progress=False)
    assert summary["kind"] == "wgan" and summary["written"] == 2
    (source,) = open_sources([("DIR", tmp_path / "s")])
    volume = source.read(0).array
    assert volume.shape == (32, 64, 64) and -1 <= volume.min() < volume.max() <= 1


def test_a_gan_samples_folder_is_read_by_sources_and_a_study(gan_run, tmp_path, home, capsys):
    from diffusion_core.sources import open_sources
    from studies.cli.study import main as study_main

    prep, run = gan_run
    samples = tmp_path / "samples"
    sample_folder(str(run), 3, samples, seed=40, progress=False)
    (source,) = open_sources([("--synthetic", samples)])
    assert source.kind == "samples" and source.preset.name == "tiny"
    assert [item.seed for item in source.items] == ["40", "41", "42"]
    assert {item.model for item in source.items} == {"gan"}
    volume = source.read(0)
    assert volume.array.shape == (8, 16, 16)
    # mdiff-study create --model samples the synthetic cases from the GAN.
    real = tmp_path / "real"
    sample_folder(str(run), 3, real, seed=1000, progress=False)
    (real / "samples.json").unlink()  # stands in for a folder of real scans of the preset
    assert study_main(["create", "--out", str(tmp_path / "study"), "--model", str(run), "--n",
                       "3", "--real", str(real), "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_synthetic"] == 3 and report["dataset"] == "tiny"
    assert read_samples(report["samples"]).kind == "wgan"


def test_msssim_compares_real_diffusion_and_gan_folders(gan_run, tmp_path, home,
                                                        make_samples_folder):
    from evaluation.cli.eval import main as eval_main

    prep, run = gan_run
    rng = np.random.default_rng(0)
    diffusion = make_samples_folder(tmp_path / "diffusion", "tiny",
                                    [rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
                                     for _ in range(4)])
    gan = tmp_path / "gan_samples"
    sample_folder(str(run), 4, gan, progress=False)
    figure = tmp_path / "msssim.png"
    args = ["msssim", str(prep), str(diffusion), str(gan), "--pairs", "6", "--device", "cpu",
            "--figure", str(figure)]
    assert eval_main([*args, "--json"]) == 0
    assert figure.stat().st_size > 10_000
    # An existing figure is replaced only with --force.
    assert eval_main(args) == 2
    assert eval_main([*args, "--force"]) == 0
    # A figure inside an input folder is refused before anything is computed.
    assert eval_main([*args[:-1], str(gan / "f.png"), "--force"]) == 2
    assert not (gan / "f.png").exists()


def test_msssim_rows_are_labelled_by_what_each_folder_holds(gan_run, tmp_path, home,
                                                            make_samples_folder, capsys):
    from evaluation.cli.eval import main as eval_main

    prep, run = gan_run
    rng = np.random.default_rng(0)
    diffusion = make_samples_folder(tmp_path / "diffusion", "tiny",
                                    [rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
                                     for _ in range(3)])
    gan = tmp_path / "gan_samples"
    sample_folder(str(run), 3, gan, progress=False)
    capsys.readouterr()
    assert eval_main(["msssim", str(prep), str(diffusion), str(gan), "--pairs", "3",
                      "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["results"]
    assert [r["label"] for r in rows] == ["PREP_DIR", "diffusion 'm1'", "GAN 'gan'"]
    assert all(r["ci_low"] <= r["mean"] <= r["ci_high"] for r in rows)
    assert report["figure"] is None
