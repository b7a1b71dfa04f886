"""`mdiff-eval memorization`: copy detection on generated volumes, its power, off-distribution
samples, figure, JSON and errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from evaluation.copy_search import move
from evaluation.errors import EvalError
from evaluation.memorization import CheckOptions, memorization_report
from evaluation.memorization_figure import draw_closest_pairs

SHAPE = (32, 32, 32)  # pooled to 16^3: two voxels per coarse voxel; the fine grid is 32^3
COPY_SHIFT = (2, -2, 2)  # full-size voxels; (1, -1, 1) on the coarse grid
TOP_KEYS = {"inputs", "similarity", "calibration", "counts", "fractions", "results", "figure",
            "seconds"}
RESULT_KEYS = {"file", "nearest", "score", "shift", "flipped", "class"}
CALIBRATION_KEYS = {"rule", "copy_threshold", "novel_threshold", "novel_from", "overlap",
                    "augmented", "holdout", "notes", "off_distribution_threshold", "power",
                    "power_needed", "powered"}


@pytest.fixture(scope="module")
def memorization_data(tmp_path_factory, smooth_volumes, write_prepared, write_nifti_volumes):
    """Volumes of one 'anatomy': 14 training arrays, 6 held-out and 2 fresh real volumes, and
    samples: a moved, mirrored, noised copy of a training array, a fresh volume of another
    pattern, a real one (another subject) and pure noise."""
    tmp_path = tmp_path_factory.mktemp("memorization")
    volumes = 2 * smooth_volumes(22, SHAPE, seed=4, own=0.6) - 1
    train = write_prepared(tmp_path / "prep", volumes[:14])
    holdout = write_nifti_volumes(tmp_path / "holdout", volumes[14:20],
                                  names=[f"held{k}.nii.gz" for k in range(6)])
    from diffusion_core.data import PreparedDataset

    names = PreparedDataset(train, "train").names
    source = names[2]
    original = np.load(train / source)
    rng = np.random.default_rng(7)
    copy = move(original, COPY_SHIFT)[..., ::-1]
    copy = copy + 0.1 * original.std() * rng.standard_normal(SHAPE)
    fresh = 2 * smooth_volumes(1, SHAPE, seed=99, own=0.6)[0] - 1
    # Samples are in intensities ([0, 1] for MR), training arrays in [-1, 1]: NCC ignores that.
    noise = rng.uniform(0.0, 1.0, SHAPE)
    samples = write_nifti_volumes(tmp_path / "samples",
                                  [(copy + 1) / 2, (fresh + 1) / 2, (volumes[20] + 1) / 2, noise])
    return {"train": train, "holdout": holdout, "samples": samples, "source": source,
            "names": names}


def test_the_copy_is_flagged_another_subject_is_not_and_noise_is_off_distribution(
        memorization_data, run_eval, tmp_path):
    data = memorization_data
    figure = tmp_path / "pairs.png"
    status, out, err = run_eval(["memorization", "--train", data["train"], "--samples",
                                 data["samples"], "--holdout", data["holdout"], "--copies", "10",
                                 "--figure", figure, "--pairs", "2", "--json"])
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == TOP_KEYS and set(report["calibration"]) == CALIBRATION_KEYS
    results = {r["file"]: r for r in report["results"]}
    assert all(set(r) == RESULT_KEYS for r in results.values())
    copy, fresh, real, noise = (results[f"case_{k:04d}.nii.gz"] for k in (1, 2, 3, 4))
    assert copy["class"] == "copy" and copy["nearest"] == data["source"] and copy["flipped"]
    assert copy["shift"] == list(COPY_SHIFT)  # on the fine grid, here the full resolution
    # Another subject of the same anatomy is not a copy; a volume of another pattern
    # altogether (the fresh one) and noise resemble no training volume at all.
    assert real["class"] in ("novel", "close")
    assert fresh["class"] == "off-distribution" and noise["class"] == "off-distribution"
    calibration = report["calibration"]
    assert calibration["power"] >= 0.95 and calibration["powered"]
    assert noise["score"] <= calibration["off_distribution_threshold"] < real["score"]
    assert calibration["novel_from"] == "holdout" and calibration["notes"] == []
    assert calibration["augmented"]["source_found"] == 1.0
    assert calibration["holdout"]["flagged_as_copy"] == 0.0
    assert len(calibration["augmented"]["scores"]) == 10
    assert len(calibration["holdout"]["scores"]) == 6
    assert calibration["holdout"]["max"] < calibration["copy_threshold"] <= copy["score"]
    assert report["counts"]["copy"] == 1 and sum(report["counts"].values()) == 4
    assert sum(report["fractions"].values()) == pytest.approx(1.0)
    assert report["inputs"]["train"]["n_volumes"] == len(data["names"])
    assert report["similarity"]["grid"] == [16, 16, 16]
    assert report["similarity"]["fine_grid"] == [32, 32, 32]
    assert report["figure"] == str(figure) and figure.stat().st_size > 10_000
    assert "augmented copies" in err  # progress goes to stderr


def test_the_closest_pair_panels_show_the_copy_and_its_source(memorization_data, tmp_path,
                                                              panel_pixels):
    data = memorization_data
    report = memorization_report(data["train"], data["samples"], holdout=data["holdout"],
                                 options=CheckOptions(copies=10, max_shift=1), progress=False)
    from diffusion_core.data import PreparedDataset
    from diffusion_core.presets import get_preset
    from diffusion_core.sources import open_source
    from evaluation.copy_search import calibrate as thresholds_of
    from evaluation.slice_panels import save_png

    calibration = report["calibration"]
    thresholds = thresholds_of(np.array(calibration["augmented"]["scores"]),
                               np.array(calibration["holdout"]["scores"]))
    figure = draw_closest_pairs(report, open_source(data["samples"], option="--samples",
                                                          preset=get_preset("tiny")),
                                PreparedDataset(data["train"], "train", flip=False), 3,
                                thresholds, np.array(calibration["augmented"]["scores"]),
                                np.array(calibration["holdout"]["scores"]))
    png = tmp_path / "pairs.png"
    save_png(figure, png)
    # Pair 0 is the copy: its training panel, mirrored and moved back, looks like the sample.
    panels = [panel_pixels(figure, png, label).mean(axis=2) for label in (
        "pair 0 sample", "pair 0 training", "pair 1 training", "pair 2 training")]
    # Panels may differ by a pixel from rounding; the border the move uncovers is left out.
    rows, cols = (min(p.shape[axis] for p in panels) for axis in (0, 1))
    inner = [p[10:rows - 10, 10:cols - 10].ravel() for p in panels]
    alike = np.corrcoef(inner[0], inner[1])[0, 1]
    unlike = max(np.corrcoef(inner[0], other)[0, 1] for other in inner[2:])
    assert alike > 0.9 and unlike < alike - 0.2


def test_without_holdout_it_cannot_tell_and_the_training_dir_means_its_validation_split(
        memorization_data):
    data = memorization_data
    options = CheckOptions(copies=10, max_shift=1)
    alone = memorization_report(data["train"], data["samples"], options=options, progress=False)
    assert alone["inputs"]["holdout"] is None and alone["calibration"]["holdout"] is None
    assert alone["calibration"]["novel_from"] == "augmented copies only"
    assert alone["calibration"]["power"] is None and not alone["calibration"]["powered"]
    assert "--holdout" in alone["calibration"]["notes"][0]
    assert {r["class"] for r in alone["results"]} == {"cannot tell"}
    own = memorization_report(data["train"], data["samples"], holdout=data["train"],
                              options=options, progress=False)
    held = own["inputs"]["holdout"]
    assert held["split"] == "val" and held["n_volumes"] == 14 - len(data["names"]) > 0


def test_text_report_names_thresholds_and_classes(memorization_data, run_eval):
    data = memorization_data
    status, out, _ = run_eval(["memorization", "--train", data["train"], "--samples",
                               data["samples"], "--copies", "8", "--max-shift", "1"])
    assert status == 0
    assert "copy threshold" in out and "augmented copies only" in out
    assert "CANNOT TELL copies" in out
    (row,) = [line for line in out.splitlines() if line.startswith("case_0001.nii.gz")]
    assert row.endswith("cannot tell  (mirrored)")


@pytest.mark.parametrize(("change", "expected"), [
    ({"--train": "missing"}, "--train"),
    ({"--samples": "missing"}, "is not a folder"),
    ({"--figure": "pairs.pdf"}, "must be a .png file"),
    ({"--max-shift": "-1"}, "--max-shift must be 0 or more"),
    ({"--max-shift": "16"}, "leaves no overlap"),
    ({"--fine-grid": "8"}, "--fine-grid must be at least --grid"),
    ({"--holdout": "TRAIN", "--train-split": "all"}, "uses all of it for training"),
])
def test_errors_are_one_sentence(memorization_data, run_eval, tmp_path, change, expected):
    data = memorization_data
    options = {"--train": data["train"], "--samples": data["samples"], "--copies": "4"}
    for key, value in change.items():
        options[key] = data["train"] if value == "TRAIN" else (
            value if key in ("--max-shift", "--train-split", "--fine-grid") else tmp_path / value)
    status, out, err = run_eval(["memorization", *itertools.chain(*options.items())])
    assert status == 2 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("mdiff-eval memorization: ") and expected in line


def test_samples_of_another_shape_are_refused(memorization_data, run_eval, tmp_path,
                                              write_nifti_volumes):
    other = write_nifti_volumes(tmp_path / "other", [np.zeros((16, 32, 32)) + 0.5])
    status, _, err = run_eval(["memorization", "--train", memorization_data["train"],
                               "--samples", other])
    assert status == 2
    assert "has shape (16, 32, 32), not the (32, 32, 32) of the training volumes" in err


def test_a_too_small_training_split_is_refused(tmp_path, write_prepared, write_nifti_volumes):
    train = write_prepared(tmp_path / "prep", [np.zeros((8, 8, 8))])
    samples = write_nifti_volumes(tmp_path / "s", [np.zeros((8, 8, 8))])
    with pytest.raises(EvalError, match="needs at least 2"):
        memorization_report(train, samples, options=CheckOptions(train_split="all"),
                            progress=False)


def test_damaged_prep_dir_arrays_are_one_sentence(tmp_path, smooth_volumes, write_prepared,
                                                  write_nifti_volumes, run_eval):
    """A NaN in the training PREP_DIR gave NCC -2 and called every sample a copy; a samples
    PREP_DIR scaled to +-1000 was clipped to [-1, 1] unseen. Both name the file."""
    volumes = 2 * smooth_volumes(5, (8, 8, 8), seed=3) - 1
    train = write_prepared(tmp_path / "train", volumes[:4])
    broken = np.load(train / "vol01.npy")
    broken[1, 2, 3] = np.nan
    np.save(train / "vol01.npy", broken)
    samples = write_nifti_volumes(tmp_path / "samples", [(volumes[4] + 1) / 2])
    status, out, err = run_eval(["memorization", "--train", train, "--samples", samples,
                                 "--train-split", "all", "--copies", "2"])
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"mdiff-eval memorization: {train / 'vol01.npy'} "
                                            "holds NaN or infinite values; run mdiff-prepare "
                                            "again.")
    np.save(train / "vol01.npy", volumes[1])
    scaled = write_prepared(tmp_path / "scaled", [1000 * volumes[4]])
    status, out, err = run_eval(["memorization", "--train", train, "--samples", scaled,
                                 "--train-split", "all", "--copies", "2"])
    assert status == 2 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert str(scaled / "vol00.npy") in line and "outside the prepared range [-1, 1]" in line
