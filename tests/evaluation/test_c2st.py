"""`mdiff-eval c2st`: twins sit at 0.5, planted differences are found and named, folds keep a
scan's augmented copies together, JSON and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from evaluation.c2st import Settings, c2st_report, read_pair
from evaluation.volume_features import grouped_folds

SHAPE = (16, 16, 16)
FAST = Settings(folds=4, seeds=1, epochs=30, bootstrap=400, permutations=400)
PLANTED = {
    "blur": (lambda v, rng: gaussian_filter(v, 1.0), "sharpness or noise"),
    "noise": (lambda v, rng: v + 0.05 * rng.standard_normal(v.shape), "sharpness or noise"),
    "shift": (lambda v, rng: v + 0.15, "intensity"),
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks are overhead-bound; on a shared machine a second thread slows them."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_volumes(smooth_volumes):
    """32 volumes of one 'anatomy' with a fine texture of their own, values in about [0, 1]."""
    rng = np.random.default_rng(5)
    base = smooth_volumes(32, SHAPE, seed=11, own=0.6)
    texture = np.stack([gaussian_filter(rng.standard_normal(SHAPE), 0.7) for _ in range(32)])
    return (base + 0.15 * texture).astype(np.float32)


def test_twins_cover_one_half(real_volumes, tmp_path, write_nifti_volumes):
    first = write_nifti_volumes(tmp_path / "a", real_volumes[:16])
    second = write_nifti_volumes(tmp_path / "b", real_volumes[16:])
    report = c2st_report(first, second, settings=FAST, device="cpu", progress=False)
    for key in ("cnn", "features"):
        assert report[key]["ci_low"] <= 0.5 <= report[key]["ci_high"], (key, report[key])
        assert report[key]["p_value"] > 0.05
    assert report["calibration"] is not None
    assert report["calibration"]["n_volumes"] == [8, 8]
    assert "no evidence" in report["verdict"]


@pytest.mark.parametrize("change", sorted(PLANTED))
def test_planted_differences_are_found_and_named(change, real_volumes, tmp_path,
                                                 write_nifti_volumes):
    planting, family = PLANTED[change]
    rng = np.random.default_rng(3)
    real = write_nifti_volumes(tmp_path / "real", real_volumes[:16])
    changed = np.stack([planting(v, rng) for v in real_volumes[16:]]).astype(np.float32)
    synthetic = write_nifti_volumes(tmp_path / "synthetic", changed)
    report = c2st_report(real, synthetic, settings=FAST, device="cpu", progress=False)
    assert report["cnn"]["auc"] > 0.9 and report["features"]["auc"] > 0.9, report["cnn"]
    assert report["cnn"]["p_value"] < 0.01
    top = report["features"]["features"][0]
    assert top["separates"] and top["family"] == family, top
    assert "tells the folders apart" in report["verdict"]


def test_augmented_copies_of_one_scan_never_split_across_folds(tmp_path, smooth_volumes):
    """A PREP_DIR whose manifest gives 4 scans 3 arrays each: every fold holds all 3 or none."""
    from diffusion_core.prepared import Manifest, PreparedScan
    from diffusion_core.presets import get_preset

    prep = tmp_path / "prep"
    prep.mkdir()
    manifest = Manifest.for_preset(get_preset("tiny"), tmp_path / "raw", None)
    manifest.shape = list(SHAPE)
    volumes = 2 * smooth_volumes(12, SHAPE, seed=2) - 1
    for scan in range(4):
        names = [f"scan{scan}_aug{k}.npy" for k in range(3)]
        for k, name in enumerate(names):
            np.save(prep / name, volumes[3 * scan + k])
        manifest.scans.append(PreparedScan(source=f"scan{scan}.nii.gz", arrays=names))
    manifest.save(prep)
    real, synthetic, _ = read_pair(prep, prep, progress=False)
    assert len(set(real.groups)) == 4 and len(real.names) == 12
    groups = real.groups + synthetic.groups
    labels = np.repeat([0, 1], 12)
    for seed in range(20):
        folds = grouped_folds(groups, labels, 4, np.random.default_rng(seed))
        for group in set(groups):
            assert len({int(f) for f, g in zip(folds, groups, strict=True) if g == group}) == 1
        for fold in range(4):  # every fold holds both classes
            assert set(labels[folds == fold]) == {0, 1}


def test_the_test_itself_trains_on_folds_that_keep_a_scan_together(tmp_path, smooth_volumes,
                                                                     monkeypatch):
    """The folds `run_test` trains both classifiers on, spied on: no scan's copies split."""
    import evaluation.c2st as c2st

    volumes = 2 * smooth_volumes(24, SHAPE, seed=6) - 1
    labels = np.repeat([0, 1], 12)
    groups = [f"{'real' if i < 12 else 'synthetic'}:scan{i // 3}" for i in range(24)]
    seen = []
    original = c2st.feature_scores

    def spy(table, labels, folds):
        seen.append(folds.copy())
        return original(table, labels, folds)

    monkeypatch.setattr(c2st, "feature_scores", spy)
    settings = Settings(folds=4, seeds=3, epochs=1, bootstrap=10, permutations=10)
    c2st.run_test(volumes, labels, groups, settings)
    assert len(seen) == 3 and not all((seen[0] == f).all() for f in seen[1:])
    for folds in seen:
        for group in set(groups):
            assert len({int(f) for f, g in zip(folds, groups, strict=True) if g == group}) == 1


def test_cli_json_and_figure(real_volumes, tmp_path, write_nifti_volumes, run_eval):
    real = write_nifti_volumes(tmp_path / "real", real_volumes[:8])
    synthetic = write_nifti_volumes(tmp_path / "synthetic",
                                    [gaussian_filter(v, 1.0) for v in real_volumes[8:16]])
    figure = tmp_path / "c2st.png"
    status, out, err = run_eval(["c2st", real, synthetic, "--folds", "3", "--seeds", "1",
                                 "--epochs", "4", "--device", "cpu", "--figure", figure,
                                 "--json"])
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {"inputs", "values", "shape", "network_input", "settings", "cnn",
                           "features", "calibration", "verdict", "figure", "seconds"}
    assert report["inputs"]["real"] == {"dir": str(real), "n_volumes": 8, "n_groups": 8}
    assert report["cnn"]["folds"] == 3 and len(report["cnn"]["auc_per_seed"]) == 1
    assert report["figure"] == str(figure) and figure.stat().st_size > 10_000
    assert "training classifiers" in err
    status, out, err = run_eval(["c2st", real, synthetic, "--folds", "3", "--seeds", "1",
                                 "--epochs", "2", "--device", "cpu"])
    assert status == 0 and "real half vs half" in out and "feature classifier" in out


@pytest.mark.parametrize(("count", "expected"), [(1, "at least 2 source scans")])
def test_too_few_volumes_is_one_sentence(count, expected, tmp_path, write_nifti_volumes,
                                         real_volumes, run_eval):
    real = write_nifti_volumes(tmp_path / "real", real_volumes[:count])
    synthetic = write_nifti_volumes(tmp_path / "synthetic", real_volumes[8:12])
    status, out, err = run_eval(["c2st", real, synthetic, "--device", "cpu"])
    assert status == 2 and out == "" and "Traceback" not in err
    assert expected in err.strip().splitlines()[-1]
