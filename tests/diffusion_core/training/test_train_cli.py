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
