"""Build the downstream demo's labelled brain-extraction data from whole-head T1 scans in packages.

    .venv/bin/python demo/downstream/make_labelled_data.py OUT [--train 20] [--test 10]

The task: segment the brain on a whole-head T1 scan (brain extraction). Two whole-head T1 scans
with a real brain mask ship in Debian packages:

- ITK's example T1 `KmeansTest_T1UCharRaw` with its brain mask `KmeansTest_T1RawSkullStrip`
  (insighttoolkit5-examples): the training subject, in OUT/labelled/;
- Colin27 `ch2` with its brain-extracted `ch2bet` (mricron-data): the test subject, in OUT/test/
  (the subject the bundled demo model never saw).

nilearn's MNI152 2009a T1 cannot serve: it is already brain-extracted (zero outside the brain),
so it has no skull to remove.

Each copy is its scan moved as the demo's data are (`demo/make_demo_data.py`: a rigid rotation
up to 8 degrees per axis, scaling 0.92-1.08, a shift up to 8 mm, a left-right flip with p = 0.5),
the mask with exactly the same move, then the image's contrast changed as there (gamma 0.8-1.25,
a smooth +-10 % bias field); resampled to the demo preset's 3 x 3 x 4.5 mm on its (32, 64, 64)
grid centred on the brain, uint8 NIfTI. Files are named SUBJECT_NNN.nii.gz under images/ and
masks/, so `mdiff-eval downstream` counts each scan's copies as one subject.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

COLIN = Path("/usr/share/mricron/templates")
ITK_DATA = Path("/usr/share/doc/insighttoolkit5-examples/examples/Data")
SUBJECTS = {  # name: (image, brain mask or brain-extracted image)
    "itk_t1": (ITK_DATA / "KmeansTest_T1UCharRaw.nii.gz",
               ITK_DATA / "KmeansTest_T1RawSkullStrip.nii.gz"),
    "colin27": (COLIN / "ch2.nii.gz", COLIN / "ch2bet.nii.gz"),
}
PACKAGES = {"itk_t1": "insighttoolkit5-examples", "colin27": "mricron-data"}
OUT_SPACING = np.array([3.0, 3.0, 4.5])  # RAS x, y, z: the demo preset's
OUT_SHAPE = np.array([64, 64, 32])  # RAS x, y, z: the demo preset's (D, H, W) = (32, 64, 64)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    image = nib.as_closest_canonical(nib.load(path))  # RAS
    return np.asarray(image.dataobj, dtype=np.float32), image.affine


def _brain_mask(path: Path) -> np.ndarray:
    """The brain: the file's voxels above 0 (a label map or a brain-extracted image), holes
    filled."""
    data, _ = _load(path)
    return ndimage.binary_fill_holes(data > 0)


def _rotation(rng: np.random.Generator) -> np.ndarray:
    rotation = np.eye(3)
    for axis, angle in enumerate(np.deg2rad(rng.uniform(-8, 8, 3))):
        c, s = np.cos(angle), np.sin(angle)
        i, j = [a for a in range(3) if a != axis]
        r = np.eye(3)
        r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
        rotation = rotation @ r
    return rotation


def augment(image: np.ndarray, mask: np.ndarray, affine: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A moved, flipped, re-contrasted copy of the image and the same move of the mask."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    matrix = _rotation(rng) * rng.uniform(0.92, 1.08) * OUT_SPACING / spacing[:, None]
    centre_in = np.array(ndimage.center_of_mass(mask))  # the brain's centre, input voxels
    centre_out = (OUT_SHAPE - 1) / 2
    offset = centre_in - matrix @ centre_out - rng.uniform(-8, 8, 3) / spacing
    moves = {"output_shape": tuple(OUT_SHAPE), "offset": offset, "mode": "constant"}
    moved = ndimage.affine_transform(image, matrix, order=1, cval=0.0, **moves)
    brain = ndimage.affine_transform(mask.astype(np.float32), matrix, order=1, **moves) > 0.5
    if rng.random() < 0.5:
        moved, brain = moved[::-1], brain[::-1]  # RAS axis 0: patient left-right
    moved = np.clip(moved, 0, None)
    moved /= max(float(np.percentile(moved, 99.5)), 1e-6)
    moved = np.clip(moved, 0, None) ** rng.uniform(0.8, 1.25)
    field = ndimage.zoom(rng.uniform(0.9, 1.1, (3, 3, 3)), np.array(moved.shape) / 3,
                         order=3)[tuple(slice(0, s) for s in moved.shape)]
    out_affine = np.diag([*OUT_SPACING, 1.0])
    out_affine[:3, 3] = -centre_out * OUT_SPACING
    return (np.clip(np.rint(moved * field * 200), 0, 255).astype(np.uint8),
            np.ascontiguousarray(brain).astype(np.uint8), out_affine)


def write_subject(folder: Path, name: str, count: int, seed: int) -> None:
    """`count` augmented copies of one subject into folder/images and folder/masks."""
    image_path, mask_path = SUBJECTS[name]
    image, affine = _load(image_path)
    mask = _brain_mask(mask_path)
    rng = np.random.default_rng(seed)
    for part in ("images", "masks"):
        (folder / part).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        moved, brain, out_affine = augment(image, mask, affine, rng)
        for part, array in (("images", moved), ("masks", brain)):
            nib.save(nib.Nifti1Image(array, out_affine), folder / part / f"{name}_{i:03d}.nii.gz")


def main() -> int:
    """Write OUT/labelled (ITK's T1) and OUT/test (Colin27)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write labelled/ and test/ into")
    parser.add_argument("--train", type=int, default=20, help="copies of the training subject")
    parser.add_argument("--test", type=int, default=10, help="copies of the test subject")
    args = parser.parse_args()
    missing = sorted({PACKAGES[n] for n, paths in SUBJECTS.items()
                      for p in paths if not p.is_file()})
    if missing:
        print(f"the whole-head T1 scans are missing: install the Debian packages "
              f"{' and '.join(missing)} (sudo apt-get install {' '.join(missing)}).",
              file=sys.stderr)
        return 2
    write_subject(args.out / "labelled", "itk_t1", args.train, seed=11)
    write_subject(args.out / "test", "colin27", args.test, seed=12)
    print(f"wrote {args.train} labelled copies of itk_t1 to {args.out / 'labelled'} and "
          f"{args.test} test copies of colin27 to {args.out / 'test'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
