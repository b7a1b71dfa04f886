"""Build the demo's real data from head MRI that ships inside packages (the source of truth).

    .venv/bin/python demo/make_demo_data.py [--train 48] [--heldout 10]

All skull-stripped brain T1 (as the paper's ADNI). Training subjects (two): the MNI152 2009a T1
template (nilearn; an average of 152 adults, so one smooth "subject") and ITK's example T1
`KmeansTest_T1UCharRaw` inside its brain mask `KmeansTest_T1RawSkullStrip` (Debian's
insighttoolkit5-examples). Held-out subject (a different person): Colin27 (`ch2bet.nii.gz`,
one adult, brain-extracted; Debian's mricron-data). Held out because it lies between the two
in what `mdiff-study audit` measures: with ITK's T1 held out instead, the audit told its scans
from real MNI152 and Colin27 scans, so no generator of the training subjects could pass it.

Each output volume is its source with a random rigid rotation (up to 8 degrees per axis),
scaling (0.92-1.08), shift (up to 8 mm), a left-right flip with p = 0.5, a gamma change
(0.8-1.25) and a smooth multiplicative bias field (+-10 %), resampled to the demo preset's
3 x 3 x 4.5 mm and stored as uint8 NIfTI (the 99.5th percentile at 200): a few MB in all.
Held-out volumes are made the same way, from their own subject: the study's real cases should
vary as the scans the model learned from do. (With milder moves and no contrast change, as
before 2026-12-02, the held-out scans' white matter was more uniform than nearly every
training scan's, and `mdiff-study audit` told them from samples by the share of voxels at the
maximum, a difference of the data's making, not the model's; README.)

Writes demo/data/train/ and diffusion_core/bundled/demo/heldout/, and copies
demo/data/SOURCES.md (each source's licence notice) beside the held-out set. Few subjects: a
model trained on this learns two brains; see the memorisation check in the README.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
MNI = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
COLIN = Path("/usr/share/mricron/templates/ch2bet.nii.gz")
ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
ITK_T1, ITK_BRAIN = "KmeansTest_T1UCharRaw.nii.gz", "KmeansTest_T1RawSkullStrip.nii.gz"
# RAS x, y, z: the demo preset's 3 x 3 mm in-plane and 4.5 mm slices
OUT_SPACING = np.array([3.0, 3.0, 4.5])

SOURCES = ROOT / "demo" / "data" / "SOURCES.md"  # licence notices, copied beside the held-out set


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))  # RAS
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def _mni_path() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent / "datasets" / "data" / MNI


def _augment(data: np.ndarray, affine: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A randomly moved, flipped and re-contrasted copy on a 2 mm RAS grid around the head."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    angles = np.deg2rad(rng.uniform(-8, 8, 3))
    rotation = np.eye(3)
    for axis, angle in enumerate(angles):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = rotation @ r
    scale = rng.uniform(0.92, 1.08)
    shift_mm = rng.uniform(-8, 8, 3)
    out_shape = np.ceil(np.array(data.shape) * spacing / OUT_SPACING).astype(int)
    # output voxel -> input voxel: centre, rotate and scale about the centre, shift
    centre_in = (np.array(data.shape) - 1) / 2
    centre_out = (out_shape - 1) / 2
    matrix = rotation * scale * OUT_SPACING / spacing[:, None]
    offset = centre_in - matrix @ centre_out - shift_mm / spacing
    moved = ndimage.affine_transform(data, matrix, offset=offset, output_shape=tuple(out_shape),
                                     order=1, mode="constant", cval=0.0)
    if rng.random() < 0.5:
        moved = moved[::-1]  # RAS axis 0: patient left-right
    moved = np.clip(moved, 0, None)
    moved /= max(float(np.percentile(moved, 99.5)), 1e-6)
    moved = np.clip(moved, 0, None) ** rng.uniform(0.8, 1.25)
    field = ndimage.zoom(rng.uniform(0.9, 1.1, (3, 3, 3)), np.array(moved.shape) / 3,
                         order=3)[tuple(slice(0, s) for s in moved.shape)]
    moved = moved * field
    out_affine = np.diag([*OUT_SPACING, 1.0])
    out_affine[:3, 3] = -centre_out * OUT_SPACING
    return np.clip(np.rint(moved * 200), 0, 255).astype(np.uint8), out_affine


def _write(folder: Path, prefix: str, data: np.ndarray, affine: np.ndarray, count: int,
           seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        volume, out_affine = _augment(data, affine, rng)
        nib.save(nib.Nifti1Image(volume, out_affine), folder / f"{prefix}{i:03d}.nii.gz")


def main() -> None:
    """Write the training and held-out folders."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=48, help="training volumes (half each)")
    parser.add_argument("--heldout", type=int, default=10, help="held-out volumes")
    args = parser.parse_args()
    train = ROOT / "demo" / "data" / "train"
    heldout = ROOT / "diffusion_core" / "bundled" / "demo" / "heldout"
    for folder in (train, heldout):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.nii.gz"):
            old.unlink()
    mni, mni_affine = _load(_mni_path())
    colin, colin_affine = _load(COLIN)
    itk, itk_affine = _load(ITK_DATA / ITK_T1)
    itk = itk * (_load(ITK_DATA / ITK_BRAIN)[0] > 0)  # its skull-strip file is a brain mask
    _write(train, "mni152_", mni, mni_affine, args.train // 2, seed=1)
    _write(train, "itk_t1_", itk, itk_affine, args.train - args.train // 2, seed=2)
    _write(heldout, "colin27_", colin, colin_affine, args.heldout, seed=3)
    (heldout / "SOURCES.md").write_text(SOURCES.read_text())
    print(f"wrote {args.train} training volumes to {train} and {args.heldout} held-out volumes "
          f"to {heldout}")


if __name__ == "__main__":
    main()
