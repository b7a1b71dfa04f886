"""`mdiff-eval msssim`: JSON and table on generated folders, the data range, errors."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from evaluation.msssim import ms_ssim

RESULT_KEYS = {"dir", "label", "n_volumes", "n_pairs", "mean", "std", "ci_low", "ci_high",
               "distance"}


def _write(folder: Path, volumes: np.ndarray, ext: str = "npy") -> Path:
    """One file per volume: .npy arrays, or NIfTI files with an identity affine."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, volume in enumerate(volumes):
        if ext == "npy":
            np.save(folder / f"vol{k:02d}.npy", volume)
        else:
            nib.Nifti1Image(volume, np.eye(4)).to_filename(folder / f"vol{k:02d}.nii.gz")
    return folder


def _json(run_eval, argv: list) -> tuple[dict, str]:
    status, out, err = run_eval(["msssim", *argv, "--json", "--device", "cpu"])
    assert status == 0, err
    return json.loads(out), err


def _error(run_eval, argv: list) -> str:
    """The error sentence of a failing run (progress bars may precede it on stderr)."""
    status, out, err = run_eval(["msssim", *argv, "--device", "cpu"])
    assert status == 2 and out == "" and "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_json_holds_the_mean_over_every_pair(tmp_path, run_eval, smooth_volumes):
    volumes = 200 * smooth_volumes(6, (20, 22, 24)) - 100  # values -100..100
    folder = _write(tmp_path / "real", volumes)
    report, err = _json(run_eval, [folder])
    assert set(report) == {"results", "data_range", "protocol", "warnings", "figure"}
    assert report["figure"] is None and report["results"][0]["label"] == "scans"
    assert report["protocol"] == "standard"
    assert report["data_range"] == pytest.approx(200, rel=1e-6)
    (result,) = report["results"]
    assert set(result) == RESULT_KEYS
    assert result["dir"] == str(folder)
    assert (result["n_volumes"], result["n_pairs"]) == (6, 15)
    assert "only 15 distinct pairs" in err  # 1000 asked, fewer exist
    # The standard protocol shifts values by the run's minimum (-100) so that they start at 0.
    tensors = torch.from_numpy(volumes - volumes.min())[:, None, None]
    values = [float(ms_ssim(tensors[i], tensors[j], report["data_range"]))
              for i, j in combinations(range(6), 2)]
    assert result["mean"] == pytest.approx(np.mean(values), abs=1e-6)
    assert result["std"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    assert 0 < result["mean"] < 1
    assert result["ci_low"] <= result["mean"] <= result["ci_high"]
    assert result["ci_low"] < result["ci_high"]
    shifted, _ = _json(run_eval, [_write(tmp_path / "shifted", volumes + 1000)])
    assert shifted["results"][0]["mean"] == pytest.approx(result["mean"], abs=1e-5)


def test_one_data_range_for_all_folders_printed_in_the_table(tmp_path, run_eval, smooth_volumes):
    a = _write(tmp_path / "a", smooth_volumes(3, (16, 16, 16), seed=1))        # 0..1
    b = _write(tmp_path / "b", 3 * smooth_volumes(4, (12, 18, 20), seed=2))    # 0..3
    status, out, _ = run_eval(["msssim", a, b, "--device", "cpu"])
    assert status == 0
    lines = out.strip().splitlines()
    assert "data range 3 " in lines[0] and "maximum - minimum" in lines[0]
    table = [line for line in lines if not line.startswith("warning: ")]
    assert len(table) == 4 and lines[2].startswith(str(a)) and lines[3].startswith(str(b))
    assert "(reference)" in lines[2]
    report, _ = _json(run_eval, [a, b])
    assert report["data_range"] == pytest.approx(3.0, rel=1e-6)
    assert [r["n_volumes"] for r in report["results"]] == [3, 4]
    alone, _ = _json(run_eval, [a])  # folder a alone has range 1: smaller constants, lower score
    assert alone["results"][0]["mean"] < report["results"][0]["mean"]


def test_given_data_range_is_used(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(4, (16, 16, 16)))
    derived, _ = _json(run_eval, [folder])
    given, _ = _json(run_eval, [folder, "--data-range", "10"])
    assert given["data_range"] == 10
    assert given["results"][0]["mean"] > derived["results"][0]["mean"]
    status, out, _ = run_eval(["msssim", folder, "--data-range", "10", "--device", "cpu"])
    assert "data range 10 (given)" in out


def test_pair_count_and_seed(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(6, (16, 16, 16)))
    first, err = _json(run_eval, [folder, "--pairs", "5", "--seed", "1"])
    again, _ = _json(run_eval, [folder, "--pairs", "5", "--seed", "1"])
    other, _ = _json(run_eval, [folder, "--pairs", "5", "--seed", "2"])
    every, _ = _json(run_eval, [folder, "--pairs", "all"])
    assert first == again and "distinct pairs" not in err
    assert first["results"][0]["n_pairs"] == 5 and every["results"][0]["n_pairs"] == 15
    assert other["results"][0]["mean"] != first["results"][0]["mean"]


def test_paper_protocol(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(4, (20, 20, 20)), ext="nii.gz")
    report, _ = _json(run_eval, [folder, "--protocol", "paper"])
    assert report["protocol"] == "paper"
    result = report["results"][0]
    assert result["n_volumes"] == 4 and result["n_pairs"] == 6
    assert 0 < result["ci_low"] <= result["mean"] <= result["ci_high"] < 1


@pytest.mark.parametrize("preset_name", ["tiny", "lidc"])
@pytest.mark.parametrize("protocol", ["standard", "paper"])
def test_a_samples_folder_and_a_prep_dir_of_the_same_arrays_give_the_same_figure(
        tmp_path, run_eval, smooth_volumes, write_prepared, make_samples_folder, preset_name,
        protocol):
    """Samples are stored in intensities ([0, 1] for MR, HU for CT), PREP_DIR arrays in [-1, 1]:
    both are read in the preset's model space, so one data range serves both and each folder
    gives the same result, alone or side by side (values on a 1/256 grid map back exactly)."""
    volumes = np.round((2 * smooth_volumes(5, (16, 16, 16), seed=3) - 1) * 256) / 256
    volumes = list(volumes.astype(np.float32))
    prep = write_prepared(tmp_path / "prep", volumes, preset=preset_name)
    samples = make_samples_folder(tmp_path / "samples", preset_name, volumes)
    options = ["--protocol", protocol, "--pairs", "all"]
    together, _ = _json(run_eval, [samples, prep, *options])
    first, second = together["results"]
    assert (first["dir"], second["dir"]) == (str(samples), str(prep))
    # Side by side each folder has its own bootstrap stream, so only its interval differs.
    pairs = ("n_volumes", "n_pairs", "mean", "std")
    assert {k: first[k] for k in pairs} == {k: second[k] for k in pairs}
    alone = [_json(run_eval, [folder, *options])[0] for folder in (samples, prep)]
    assert alone[0]["data_range"] == alone[1]["data_range"] == together["data_range"]
    keys = RESULT_KEYS - {"dir", "distance", "label"}  # alone, a folder is its own reference
    assert (first["label"], second["label"]) == ("diffusion 'm1'", "PREP_DIR")
    assert {k: alone[0]["results"][0][k] for k in keys} == {k: first[k] for k in keys}
    assert {k: alone[1]["results"][0][k] for k in keys} == {k: first[k] for k in keys}
    status, out, _ = run_eval(["msssim", samples, prep, *options, "--device", "cpu"])
    assert status == 0 and f"values: model space [-1, 1] of preset '{preset_name}'" in out


def test_folders_of_different_presets_are_refused(tmp_path, run_eval, smooth_volumes,
                                                  write_prepared):
    volumes = (2 * smooth_volumes(3, (16, 16, 16)) - 1).astype(np.float32)
    tiny = write_prepared(tmp_path / "tiny", list(volumes), preset="tiny")
    lidc = write_prepared(tmp_path / "lidc", list(volumes), preset="lidc")
    message = _error(run_eval, [tiny, lidc])
    assert "preset 'lidc' but" in message and "compare folders of one preset" in message


def test_nan_of_the_paper_protocol_is_an_error(tmp_path, run_eval, smooth_volumes):
    (volume,) = smooth_volumes(1, (16, 16, 16), own=0.0)
    folder = _write(tmp_path / "v", np.stack([volume, 1 - volume]))  # anticorrelated
    message = _error(run_eval, [folder, "--protocol", "paper"])
    assert "vol00.npy and vol01.npy" in message and "not a number" in message


def test_missing_folder(tmp_path, run_eval):
    message = _error(run_eval, [tmp_path / "nowhere"])
    assert "nowhere is not a folder: it does not exist" in message


def test_folder_with_one_volume(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(1, (16, 16, 16)))
    message = _error(run_eval, [folder])
    assert "holds 1 volume(s)" in message and "at least 2" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no scans" in _error(run_eval, [empty])


def test_volumes_of_different_shapes_name_two_files(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(2, (16, 16, 16)))
    np.save(folder / "vol02.npy", np.zeros((16, 16, 12), dtype=np.float32))
    message = _error(run_eval, [folder])
    assert "vol00.npy is (16, 16, 16)" in message and "vol02.npy is (16, 16, 12)" in message


def test_unreadable_file_is_named(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(2, (16, 16, 16)))
    (folder / "broken.nii.gz").write_bytes(b"not a NIfTI file")
    assert "broken.nii.gz" in _error(run_eval, [folder])


def test_non_finite_values_are_named(tmp_path, run_eval, smooth_volumes):
    volumes = smooth_volumes(2, (16, 16, 16))
    volumes[1, 3, 3, 3] = np.nan
    folder = _write(tmp_path / "v", volumes)
    message = _error(run_eval, [folder])
    assert "vol01.npy" in message and "NaN" in message


def test_constant_volumes_need_a_data_range(tmp_path, run_eval):
    folder = _write(tmp_path / "v", np.ones((3, 16, 16, 16), dtype=np.float32))
    assert "--data-range" in _error(run_eval, [folder])
    report, _ = _json(run_eval, [folder, "--data-range", "1"])
    assert report["results"][0]["mean"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_asked_without_cuda(tmp_path, run_eval, smooth_volumes):
    folder = _write(tmp_path / "v", smooth_volumes(2, (16, 16, 16)))
    status, out, err = run_eval(["msssim", folder, "--device", "cuda"])
    assert status == 2 and out == "" and "--device cpu" in err


@pytest.mark.parametrize("bad", [["--pairs", "0"], ["--pairs", "many"], ["--batch-size", "0"]])
def test_bad_counts_are_usage_errors(tmp_path, run_eval, bad):
    with pytest.raises(SystemExit) as exit_info:
        run_eval(["msssim", tmp_path, *bad])
    assert exit_info.value.code == 2


def test_noise_more_diverse_than_real_is_warned_with_its_distance(tmp_path, run_eval,
                                                                  smooth_volumes):
    """Noise scores as 'more diverse' than real volumes; the report must say how far it is."""
    real = smooth_volumes(12, (16, 16, 16), seed=4)
    noise = np.random.default_rng(0).uniform(0, 1, (12, 16, 16, 16)).astype(np.float32)
    a, b = _write(tmp_path / "real", real), _write(tmp_path / "noise", noise)
    report, _ = _json(run_eval, [a, b, "--pairs", "10"])
    first, second = report["results"]
    assert first["distance"] is None
    assert second["mean"] < first["mean"] and second["ci_high"] < first["mean"]
    assert second["distance"]["auc"] > 0.9 and second["distance"]["reference"] == str(a)
    (warning,) = report["warnings"]
    assert str(b) in warning and "more diverse" in warning and "mdiff-eval c2st" in warning
    status, out, _ = run_eval(["msssim", a, b, "--pairs", "10", "--device", "cpu"])
    assert status == 0 and out.strip().splitlines()[-1].startswith("warning: ")
    twins, _ = _json(run_eval, [_write(tmp_path / "a", real[:6]), _write(tmp_path / "b", real[6:]),
                                "--pairs", "all"])
    assert twins["warnings"] == []
    assert twins["results"][1]["distance"]["ci_low"] <= 0.5 <= \
        twins["results"][1]["distance"]["ci_high"]
