"""`mdiff-train vqgan`: a tiny run end to end and the one-sentence errors."""

from __future__ import annotations

import json

from diffusion_core.cli.train import main

FAST = ["--steps", "3", "--log-every", "1", "--val-every", "3", "--checkpoint-every", "3",
        "--device", "cpu"]


def test_a_tiny_run_end_to_end(tiny_prep_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["vqgan", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out", str(out),
                 "--json", *FAST])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    row = json.loads(captured.out)
    assert row["step"] == 3 and "val_psnr" in row
    assert "perceptual loss is off" in captured.err
    assert {"run.json", "model.safetensors", "log.csv", "checkpoint_latest"} <= {
        p.name for p in out.iterdir()}


def test_a_prep_dir_of_another_preset_is_refused(make_blob_prep_dir, tmp_path, capsys):
    demo = make_blob_prep_dir(tmp_path / "demo_prep", n=2, preset="demo")
    code = main(["vqgan", "--preset", "tiny", "--data", str(demo), "--out",
                 str(tmp_path / "run"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "prepared with preset 'demo'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_user_mistakes_exit_2_with_one_sentence(tiny_prep_dir, tmp_path, capsys):
    cases = [
        (["--preset", "nope", "--data", str(tiny_prep_dir)], "unknown preset"),
        (["--preset", "tiny", "--data", str(tmp_path / "missing")], "no manifest.json"),
        (["--preset", "tiny", "--data", str(tiny_prep_dir), "--resume"], "no run to resume"),
        (["--preset", "tiny", "--data", str(tiny_prep_dir), "--perceptual-weights",
          str(tmp_path / "vgg.pth")], "vgg.pth"),
        (["--preset", "tiny", "--data", str(tiny_prep_dir), "--freeze-encoder"],
         "needs a trained one to start from (--init)"),
        (["--preset", "tiny", "--data", str(tiny_prep_dir), "--init", str(tmp_path / "none")],
         "none"),
        (["--preset", "tiny", "--data", str(tiny_prep_dir), "--floor-margin", "0"],
         "floor margin must be positive"),
    ]
    for argv, message in cases:
        code = main(["vqgan", *argv, "--out", str(tmp_path / "run"), *FAST])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert message in err and len(err.strip().splitlines()) == 1, err


def test_bad_arrays_and_other_data_are_one_sentence(tiny_prep_dir, make_blob_prep_dir, tmp_path,
                                                    capsys):
    """A NaN in the PREP_DIR is refused before a run folder exists; a resume on other data
    exits 2 unless --new-data says it is meant."""
    import numpy as np

    damaged = make_blob_prep_dir(tmp_path / "damaged", n=2)
    array = np.load(damaged / "scan01.npy")
    array[0, 0, 0] = np.nan
    np.save(damaged / "scan01.npy", array)
    out = tmp_path / "run"
    code = main(["vqgan", "--preset", "tiny", "--data", str(damaged), "--out", str(out), *FAST])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert line == (f"mdiff-train: {damaged / 'scan01.npy'} holds NaN or infinite values; run "
                    "mdiff-prepare again")
    assert main(["vqgan", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out", str(out),
                 *FAST]) == 0
    other = make_blob_prep_dir(tmp_path / "other", seed=5)
    resume = ["vqgan", "--preset", "tiny", "--data", str(other), "--out", str(out), *FAST,
              "--steps", "4", "--resume"]
    capsys.readouterr()
    assert main(resume) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "was trained on other data than" in line and "add --new-data" in line
    assert main([*resume, "--new-data"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["prep_dir"] == str(other.resolve()) and len(run["data_history"]) == 1


def test_a_finished_run_says_what_its_validation_figures_mean(tiny_prep_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["vqgan", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out", str(out),
                 *FAST]) == 0
    text = capsys.readouterr().out
    assert "held-out volumes" in text and "PSNR" in text and "SSIM" in text
    assert "model.safetensors holds step 3" in text
    ddpm = tmp_path / "ddpm"
    assert main(["ddpm", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out", str(ddpm),
                 "--vqgan", str(out), *FAST, "--prediction", "v"]) == 0
    text = capsys.readouterr().out
    assert "velocity (v) prediction" in text and "does not measure how realistic" in text
    # A resume without --prediction keeps the run's own (the tiny preset's is epsilon).
    assert main(["ddpm", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out", str(ddpm),
                 "--vqgan", str(out), *FAST, "--steps", "4", "--resume"]) == 0, \
        capsys.readouterr().err
    assert json.loads((ddpm / "run.json").read_text())["scheduler"]["prediction_type"] == \
        "v_prediction"


def test_help_shows_every_presets_shapes_steps_and_cpu_time(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "H x W x D" in text and "(D, H, W)" in text and "CPU s/step" in text
    assert "256 x 256 x 32" in text and "(32, 256, 256)" in text and "not measured" in text
    assert "2026-12-08" in text


def test_ctrl_c_before_the_first_checkpoint_says_nothing_was_kept(tiny_prep_dir, tmp_path,
                                                                  capsys, monkeypatch):
    import diffusion_core.training.vqgan as vqgan

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vqgan, "train_vqgan", interrupted)
    code = main(["vqgan", "--preset", "tiny", "--data", str(tiny_prep_dir), "--out",
                 str(tmp_path / "run"), *FAST])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and "nothing was kept" in line and "without --resume" in line
