"""Slow: a few hundred VQ-GAN steps on crops of a real head MRI lower validation L1 clearly."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.cli.prepare import main as prepare
from diffusion_core.cli.train import main as train

MNI = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


def _mni() -> nib.Nifti1Image:
    import nilearn

    return nib.load(Path(nilearn.__file__).parent / "datasets" / "data" / MNI)


@pytest.mark.slow
def test_three_hundred_steps_on_real_crops_lower_validation_l1(tmp_path):
    image = _mni()
    data = np.asarray(image.dataobj, dtype=np.float32)
    rng = np.random.default_rng(0)
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(24):
        corner = [int(rng.integers(0, s - 96)) for s in data.shape]
        crop = data[tuple(slice(c, c + 96) for c in corner)]
        affine = image.affine.copy()
        affine[:3, 3] += image.affine[:3, :3] @ np.array(corner)
        nib.save(nib.Nifti1Image(crop, affine), raw / f"crop{i:02d}.nii.gz")
    assert prepare(["--preset", "tiny", "--data", str(raw), "--out", str(tmp_path / "prep")]) == 0
    run = tmp_path / "run"
    assert train(["vqgan", "--preset", "tiny", "--data", str(tmp_path / "prep"), "--out",
                  str(run), "--steps", "300", "--val-every", "10", "--checkpoint-every", "100",
                  "--gan-start", "200", "--device", "cpu"]) == 0
    with open(run / "log.csv") as handle:
        val = [float(r["val_l1"]) for r in csv.DictReader(handle) if r["val_l1"]]
    first, last = val[0], min(val[-3:])
    print(f"validation L1 after 10 steps {first:.4f}, after 300 steps {last:.4f}")
    assert last < 0.5 * first
