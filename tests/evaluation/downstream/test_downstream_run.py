"""`mdiff-eval downstream` end to end on tiny generated volumes: table, figures, resume, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from diffusion_core.checkpoints import load_weights
from evaluation.cli.eval import main
from evaluation.downstream import sweep as sweep_module
from evaluation.downstream.sweep import COLUMNS

TINY = ["--fractions", "0.5,1", "--seeds", "1", "--pretrain-steps", "1", "--finetune-steps", "1",
        "--device", "cpu", "--threads", "2"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory, write_unlabelled, write_labelled) -> dict[str, Path]:
    """Unlabelled blobs (64 x 32 x 32), 4 labelled and 2 test subjects (32^3 ellipsoids)."""
    root = tmp_path_factory.mktemp("downstream")
    return {"pretrain": write_unlabelled(root / "pre"),
            "labelled": write_labelled(root / "lab", ["a", "b", "c", "d"]),
            "test": write_labelled(root / "test", ["x", "y"], seed=1),
            "root": root}


def _args(folders, out: Path, *extra: str) -> list[str]:
    return ["downstream", "--pretrain", str(folders["pretrain"]), "--labelled",
            str(folders["labelled"]), "--test", str(folders["test"]), "--out", str(out),
            *TINY, *extra]


@pytest.fixture(scope="module")
def finished(folders) -> tuple[Path, dict]:
    """One tiny run, its report."""
    out = folders["root"] / "run"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(_args(folders, out, "--json")) == 0
    return out, json.loads(buffer.getvalue())


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_writes_the_table_and_both_figures(finished):
    out, report = finished
    rows = _rows(out)
    assert tuple(rows[0]) == COLUMNS
    assert {(r["fraction"], r["pretrained"], r["seed"]) for r in rows} == {
        ("0.5", "0", "0"), ("0.5", "1", "0"), ("1", "0", "0"), ("1", "1", "0")}
    assert all(0.0 <= float(r["dice"]) <= 1.0 for r in rows)
    assert {r["n_train"] for r in rows if r["fraction"] == "0.5"} == {"2"}  # 2 of 4 subjects
    for name in ("figure4_dice.png", "figure5_overlays.png"):
        assert (out / name).stat().st_size > 5_000
        assert str(out / name) in report["figures"]
    assert report["unit"] == "subject" and report["network_input"] == [32, 32, 64]
    assert (out / "pretrain" / "encoder.safetensors").is_file()
    assert not list((out / "cells").iterdir())  # finished cells leave no checkpoints behind
    assert len(report["summary"]) == 4


def test_a_rerun_skips_finished_cells_and_redoes_only_missing_ones(finished, folders,
                                                                   monkeypatch, capsys):
    out, _ = finished
    rows = _rows(out)
    kept = [r for r in rows if not (r["fraction"] == "1" and r["pretrained"] == "1")]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(kept)
    trained, starts = [], {}
    real = sweep_module.finetune

    def counting(net, cases, shape, config, seed, run_dir, **kw):
        trained.append(run_dir.name)
        starts[run_dir.name] = {k: v.clone() for k, v in net.swinViT.state_dict().items()}
        return real(net, cases, shape, config, seed, run_dir, **kw)

    monkeypatch.setattr(sweep_module, "finetune", counting)
    assert main(_args(folders, out)) == 0
    assert trained == ["f1_s0_pretrained"]
    encoder = load_weights(out / "pretrain" / "encoder.safetensors")  # the cell started from it
    assert all(torch.equal(starts["f1_s0_pretrained"][k], encoder[k]) for k in encoder)
    again = _rows(out)
    assert len(again) == 4
    for row in kept:  # the finished rows are kept as they were
        assert row in again
    trained.clear()
    assert main(_args(folders, out)) == 0
    assert trained == []
    assert "fraction" in capsys.readouterr().out
    # another grid with every other setting the same: only its new cells train, and the report
    # holds just the cells asked for
    assert main(_args(folders, out, "--fractions", "1", "--seeds", "2", "--json")) == 0
    assert trained == ["f1_s1_scratch", "f1_s1_pretrained"]
    report = json.loads(capsys.readouterr().out)
    assert {(r["fraction"], r["seed"]) for r in report["results"]} == {(1.0, 0), (1.0, 1)}
    assert len(_rows(out)) == 6


def test_other_settings_in_the_same_folder_are_refused(finished, folders, capsys):
    out, _ = finished
    assert main(_args(folders, out, "--finetune-lr", "0.001")) == 2
    assert "other config settings" in capsys.readouterr().err


def test_a_test_subject_among_the_labelled_is_refused(folders, tmp_path, capsys,
                                                       write_labelled):
    test = write_labelled(tmp_path / "test", ["a"], seed=3)
    args = _args(folders, tmp_path / "out")
    args[args.index("--test") + 1] = str(test)
    assert main(args) == 2
    assert "subject 'a' has cases in both --labelled and --test" in capsys.readouterr().err


def test_bad_options_are_one_sentence(folders, tmp_path, capsys):
    assert main(_args(folders, tmp_path / "o1", "--feature-size", "16")) == 2
    assert "multiple of 12" in capsys.readouterr().err
    assert main(_args(folders, tmp_path / "o2", "--subject-pattern", "(")) == 2
    assert "no regular expression" in capsys.readouterr().err
    assert main(_args(folders, folders["labelled"] / "inside")) == 2
    assert "inside the input folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_args(folders, tmp_path / "o3", "--fractions", "0,0.5"))


@pytest.mark.slow
def test_pretraining_resumes_where_it_stopped(tmp_path, write_unlabelled):

    from diffusion_core.checkpoints import load_weights
    from evaluation.downstream.config import PretrainConfig, SwinConfig
    from evaluation.downstream.data import read_unlabelled
    from evaluation.downstream.pretrain import pretrain

    volumes, _ = read_unlabelled(write_unlabelled(tmp_path / "pre"))
    two, one = PretrainConfig(steps=2, contrastive_dim=16), PretrainConfig(steps=1,
                                                                           contrastive_dim=16)
    whole = pretrain(volumes, tmp_path / "a", SwinConfig(12), two, device="cpu", progress=False)
    pretrain(volumes, tmp_path / "b", SwinConfig(12), one, device="cpu", progress=False)
    resumed = pretrain(volumes, tmp_path / "b", SwinConfig(12), two, device="cpu",
                       progress=False)
    a, b = load_weights(whole), load_weights(resumed)
    assert a.keys() == b.keys()
    # Equal up to the CPU's run-to-run float noise (two fresh runs differ by about 1.4e-5 here:
    # threaded reductions); a step lost or taken twice moves some weight by about 4e-4.
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 5e-5
