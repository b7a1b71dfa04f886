"""`mdiff-eval figure`: neighbouring slices, the viewer's windows, orientation letters, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusion_core.samples import SamplesPlan, write_samples
from evaluation.errors import EvalError
from evaluation.sample_figure import draw_grid, neighbour_slices, read_grid
from evaluation.slice_panels import save_png

FIGURE_KEYS = {"figure", "dir", "kind", "preset", "modality", "volumes", "n_available", "slices",
               "plane", "edges", "windows"}


def _square_volumes(n: int, background: float, inside: float, shape=(12, 24, 24)) -> list:
    """Volumes whose anterior-right quarter (top-left of an axial slice) holds `inside`."""
    volumes = []
    for _ in range(n):
        volume = np.full(shape, background, dtype=np.float32)
        volume[:, : shape[1] // 2, : shape[2] // 2] = inside
        volumes.append(volume)
    return volumes


def test_neighbour_slices_are_centred():
    assert neighbour_slices(12, 5) == [4, 5, 6, 7, 8]
    assert neighbour_slices(12, 4) == [4, 5, 6, 7]
    assert neighbour_slices(3, 3) == [0, 1, 2]
    with pytest.raises(EvalError, match="at most 3"):
        neighbour_slices(3, 4)


def test_mr_grid_shows_the_anterior_right_quarter_bright(tmp_path, write_prepared, panel_pixels):
    prep = write_prepared(tmp_path / "prep", [2 * v - 1 for v in _square_volumes(3, 0.0, 1.0)])
    grid = read_grid(prep, n_volumes=2, n_slices=3)
    assert grid.names == ["vol00.npy", "vol01.npy"] and grid.slices == [5, 6, 7]
    assert grid.source.kind == "prepared" and grid.modality == "MR"
    # PREP_DIR arrays are mapped back to MR intensities [0, 1], then windowed by percentiles.
    assert (grid.windows[0].low, grid.windows[0].high) == pytest.approx((0.0, 1.0))
    figure = draw_grid(grid)
    png = tmp_path / "grid.png"
    save_png(figure, png)
    for label in ("volume 0 slice 5", "volume 1 slice 7"):
        pixels = panel_pixels(figure, png, label).mean(axis=2)
        rows, cols = pixels.shape
        top_left = pixels[: rows // 2 - 2, : cols // 2 - 2]
        bottom_right = pixels[rows // 2 + 2 :, cols // 2 + 2 :]
        # Letters are drawn over the image near the edges; the quarters' medians ignore them.
        assert np.median(top_left) > 0.95 and np.median(bottom_right) < 0.05
    (ax,) = [a for a in figure.axes if a.get_label() == "volume 0 slice 5"]
    assert sorted(t.get_text() for t in ax.texts) == ["A", "L", "P", "R"]


def test_ct_is_shown_in_the_soft_tissue_window_unless_another_is_asked(
        tmp_path, run_eval, write_nifti_volumes, panel_pixels):
    folder = write_nifti_volumes(tmp_path / "ct", _square_volumes(2, -1000.0, 40.0),
                                 modality="CT")
    out = tmp_path / "ct.png"
    status, stdout, err = run_eval(["figure", folder, "--out", out, "--volumes", "1",
                                    "--slices", "2", "--json"])
    assert status == 0, err
    report = json.loads(stdout)
    assert set(report) == FIGURE_KEYS
    assert report["modality"] == "CT" and report["kind"] == "scans"
    assert report["volumes"] == ["case_0001.nii.gz"] and report["n_available"] == 2
    assert report["slices"] == [5, 6] and report["plane"] == "axial"
    assert report["edges"] == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    window = report["windows"][0]
    assert (window["low"], window["high"]) == (-160.0, 240.0) and "soft tissue" in window["rule"]
    assert out.stat().st_size > 2_000

    grid = read_grid(folder, n_volumes=1, n_slices=1)
    figure = draw_grid(grid)
    save_png(figure, out)
    pixels = panel_pixels(figure, out, "volume 0 slice 6").mean(axis=2)
    rows, cols = pixels.shape
    # 40 HU is the soft-tissue window's level: mid grey; air is black.
    assert np.median(pixels[: rows // 2 - 2, : cols // 2 - 2]) == pytest.approx(0.5, abs=0.03)
    assert np.median(pixels[rows // 2 + 2 :, cols // 2 + 2 :]) < 0.02
    lung = read_grid(folder, n_volumes=1, n_slices=1, ct_name="lung")
    assert (lung.windows[0].low, lung.windows[0].high) == (-1350.0, 150.0)


def test_a_samples_folder_follows_its_plan_and_its_preset_plane(tmp_path, run_eval,
                                                                 write_nifti_volumes):
    folder = write_nifti_volumes(tmp_path / "samples", _square_volumes(2, 0.0, 1.0, (6, 16, 16)))
    write_samples(folder, SamplesPlan(
        model="m", preset="mrnet", vqgan={}, ddpm={}, sampler="ddim", steps=10, eta=0.0,
        files=[{"file": "case_0002.nii.gz", "seed": 1}, {"file": "case_0001.nii.gz", "seed": 0},
               {"file": "case_0003.nii.gz", "seed": 2}]))  # the third is not sampled yet
    status, stdout, err = run_eval(["figure", folder, "--out", tmp_path / "s.png", "--slices",
                                    "6", "--json"])
    assert status == 0, err
    report = json.loads(stdout)
    assert report["kind"] == "samples" and report["preset"] == "mrnet"
    assert report["volumes"] == ["case_0002.nii.gz", "case_0001.nii.gz"]
    assert report["plane"] == "sagittal" and report["edges"] is None
    assert report["slices"] == list(range(6))
    status, _, err = run_eval(["figure", folder, "--out", tmp_path / "s.png"])
    assert status == 2 and "exists; pass --force" in err  # never written over unasked
    status, text, _ = run_eval(["figure", folder, "--out", tmp_path / "s.png", "--force"])
    assert status == 0 and "2 of 2 volumes" in text and "sagittal slices 2-6" in text


@pytest.mark.parametrize(("argv", "expected"), [
    (lambda mr, tmp: [mr, "--out", tmp / "grid.png", "--slices", "13"], "give at most 12"),
    (lambda mr, tmp: [mr, "--out", tmp / "grid.jpg"], "must be a .png file"),
    (lambda mr, tmp: [mr, "--out", tmp / "missing" / "grid.png"], "create it first"),
    (lambda mr, tmp: [tmp / "missing", "--out", tmp / "grid.png"], "is not a folder"),
])
def test_errors_are_one_sentence(tmp_path, run_eval, write_nifti_volumes, argv, expected):
    folder = write_nifti_volumes(tmp_path / "mr", _square_volumes(1, 0.0, 1.0))
    status, out, err = run_eval(["figure", *argv(folder, tmp_path)])
    assert status == 2 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("mdiff-eval figure: ") and expected in line


def test_volumes_of_different_shapes_are_refused(tmp_path, write_nifti_volumes):
    folder = write_nifti_volumes(tmp_path / "mixed", [np.zeros((4, 8, 8)), np.zeros((4, 8, 9))])
    with pytest.raises(EvalError, match=r"case_0002.nii.gz has shape \(4, 8, 9\)"):
        read_grid(folder)
