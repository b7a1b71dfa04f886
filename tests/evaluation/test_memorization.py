"""`mdiff-eval memorization`: NCC search, copy detection, calibration, figure, JSON and errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from evaluation.errors import EvalError
from evaluation.memorization import (
    calibrate,
    classify,
    draw_closest_pairs,
    memorization_report,
    move,
    nearest_neighbours,
    shifts,
)

SHAPE = (32, 32, 32)  # pooled to 16^3: two voxels per coarse voxel
COPY_SHIFT = (2, -2, 2)  # full-size voxels; (1, -1, 1) on the coarse grid
TOP_KEYS = {"inputs", "similarity", "calibration", "counts", "fractions", "results", "figure",
            "seconds"}
RESULT_KEYS = {"file", "nearest", "score", "shift", "flipped", "class"}
CALIBRATION_KEYS = {"rule", "copy_threshold", "novel_threshold", "novel_from", "overlap",
                    "augmented", "holdout", "notes"}


def _brute_force(query: np.ndarray, reference: np.ndarray, max_shift: int) -> float:
    """Best Pearson correlation over overlapping crops, every shift and the W mirror."""
    best = -2.0
    for view in (query, query[..., ::-1]):
        for offset in itertools.product(range(-max_shift, max_shift + 1), repeat=3):
            pairs = list(zip(view.shape, offset, strict=True))
            q = view[tuple(slice(max(0, o), n + min(0, o)) for n, o in pairs)]
            r = reference[tuple(slice(max(0, -o), n + min(0, -o)) for n, o in pairs)]
            best = max(best, float(np.corrcoef(q.ravel(), r.ravel())[0, 1]))
    return best


def test_scores_are_the_best_correlation_over_shifts_and_mirror():
    rng = np.random.default_rng(0)
    queries, references = rng.standard_normal((3, 6, 7, 8)), rng.standard_normal((4, 6, 7, 8))
    matches = nearest_neighbours(torch.from_numpy(queries).float(),
                                 torch.from_numpy(references).float(), max_shift=1,
                                 progress=False)
    for i in range(3):
        expected = [_brute_force(queries[i], references[j], 1) for j in range(4)]
        assert matches.score[i] == pytest.approx(max(expected), abs=1e-5)
        assert matches.index[i] == int(np.argmax(expected))
    assert len(shifts(2)) == 125 and shifts(2)[0] == (0, 0, 0)


def test_a_moved_mirrored_copy_is_found_with_its_alignment():
    rng = np.random.default_rng(1)
    references = rng.standard_normal((5, 12, 12, 12))
    query = move(references[3], (1, -2, 1))[..., ::-1]
    matches = nearest_neighbours(torch.from_numpy(query[None].copy()).float(),
                                 torch.from_numpy(references).float(), max_shift=2,
                                 progress=False)
    assert matches.index[0] == 3 and matches.flipped[0]
    assert matches.score[0] == pytest.approx(1.0, abs=1e-5)
    # Mirrored back, the query's voxel z + s faces the reference's voxel z.
    assert tuple(matches.shift[0]) == (1, -2, 1)


def test_thresholds_follow_the_rule():
    augmented = np.linspace(0.90, 1.0, 101)
    holdout = np.linspace(0.50, 0.70, 101)
    thresholds = calibrate(augmented, holdout)
    assert thresholds.copy == pytest.approx(0.905) and thresholds.novel == pytest.approx(0.69)
    assert thresholds.novel_from == "holdout" and not thresholds.overlap
    assert classify(np.array([0.95, 0.8, 0.6, 0.905]), thresholds) == ["copy", "close", "novel",
                                                                        "copy"]
    alone = calibrate(augmented, None)
    assert alone.novel == pytest.approx(0.90) and alone.novel_from == "augmented copies only"


@pytest.fixture(scope="module")
def memorization_data(tmp_path_factory, smooth_volumes, write_prepared, write_nifti_volumes):
    """Volumes of one 'anatomy': 14 training arrays, 6 held-out and 2 fresh real volumes, and
    samples: a moved, mirrored, noised copy of a training array, a fresh one and a real one."""
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
    samples = write_nifti_volumes(tmp_path / "samples",
                                  [(copy + 1) / 2, (fresh + 1) / 2, (volumes[20] + 1) / 2])
    return {"train": train, "holdout": holdout, "samples": samples, "source": source,
            "names": names}


def test_the_copy_is_flagged_and_fresh_and_real_volumes_are_not(memorization_data, run_eval,
                                                                tmp_path):
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
    copy, fresh, real = (results[f"case_{k:04d}.nii.gz"] for k in (1, 2, 3))
    assert copy["class"] == "copy" and copy["nearest"] == data["source"] and copy["flipped"]
    assert copy["shift"] == [1, -1, 1]  # COPY_SHIFT on the coarse grid
    assert fresh["class"] != "copy" and real["class"] != "copy"
    calibration = report["calibration"]
    assert calibration["novel_from"] == "holdout" and calibration["notes"] == []
    assert calibration["augmented"]["source_found"] == 1.0
    assert calibration["holdout"]["flagged_as_copy"] == 0.0
    assert len(calibration["augmented"]["scores"]) == 10
    assert len(calibration["holdout"]["scores"]) == 6
    assert calibration["holdout"]["max"] < calibration["copy_threshold"] <= copy["score"]
    assert report["counts"]["copy"] == 1 and sum(report["counts"].values()) == 3
    assert sum(report["fractions"].values()) == pytest.approx(1.0)
    assert report["inputs"]["train"]["n_volumes"] == len(data["names"])
    assert report["similarity"]["grid"] == [16, 16, 16]
    assert report["figure"] == str(figure) and figure.stat().st_size > 10_000
    assert "augmented copies" in err  # progress goes to stderr


def test_the_closest_pair_panels_show_the_copy_and_its_source(memorization_data, tmp_path,
                                                              panel_pixels):
    data = memorization_data
    report = memorization_report(data["train"], data["samples"], holdout=data["holdout"],
                                 copies=10, max_shift=1, progress=False)
    from diffusion_core.data import PreparedDataset
    from evaluation.memorization import calibrate as thresholds_of
    from evaluation.slice_panels import save_png
    from evaluation.volume_sources import open_source

    calibration = report["calibration"]
    thresholds = thresholds_of(np.array(calibration["augmented"]["scores"]),
                               np.array(calibration["holdout"]["scores"]))
    figure = draw_closest_pairs(report, open_source(data["samples"], "--samples"),
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


def test_without_holdout_it_says_so_and_the_training_dir_means_its_validation_split(
        memorization_data):
    data = memorization_data
    alone = memorization_report(data["train"], data["samples"], copies=10, max_shift=1,
                                progress=False)
    assert alone["inputs"]["holdout"] is None and alone["calibration"]["holdout"] is None
    assert alone["calibration"]["novel_from"] == "augmented copies only"
    assert "augmented copies only" in alone["calibration"]["notes"][0]
    assert alone["results"][0]["class"] == "copy"
    own = memorization_report(data["train"], data["samples"], holdout=data["train"], copies=10,
                              max_shift=1, progress=False)
    held = own["inputs"]["holdout"]
    assert held["split"] == "val" and held["n_volumes"] == 14 - len(data["names"]) > 0


def test_text_report_names_thresholds_and_classes(memorization_data, run_eval):
    data = memorization_data
    status, out, _ = run_eval(["memorization", "--train", data["train"], "--samples",
                               data["samples"], "--copies", "8", "--max-shift", "1"])
    assert status == 0
    assert "copy threshold" in out and "augmented copies only" in out
    assert "case_0001.nii.gz" in out.splitlines()[-4] and "copy" in out.splitlines()[-4]


@pytest.mark.parametrize(("change", "expected"), [
    ({"--train": "missing"}, "--train"),
    ({"--samples": "missing"}, "is not a folder"),
    ({"--figure": "pairs.pdf"}, "must be a .png file"),
    ({"--max-shift": "-1"}, "--max-shift must be 0 or more"),
    ({"--max-shift": "16"}, "leaves no overlap"),
    ({"--holdout": "TRAIN", "--train-split": "all"}, "uses all of it for training"),
])
def test_errors_are_one_sentence(memorization_data, run_eval, tmp_path, change, expected):
    data = memorization_data
    options = {"--train": data["train"], "--samples": data["samples"], "--copies": "4"}
    for key, value in change.items():
        options[key] = data["train"] if value == "TRAIN" else (
            value if key in ("--max-shift", "--train-split") else tmp_path / value)
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
        memorization_report(train, samples, train_split="all", progress=False)


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
