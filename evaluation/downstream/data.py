"""Reading the folders: unlabelled volumes to pre-train on, labelled image + mask pairs.

Unlabelled volumes come through `diffusion_core.sources` (a samples folder, a PREP_DIR or a
folder of scans). A labelled folder holds `images/` and `masks/`, NIfTI (or any scan
`diffusion_core.io` reads) matched by file name: `images/case_001.nii.gz` with
`masks/case_001.nii.gz`; a mask's voxels above 0 are the foreground.

Every volume is scaled to [0, 1] on its own (its minimum to 0, its 99.5th percentile to 1,
clipped), so synthetic volumes in model space and scans in their own intensities meet on one
scale, and zero-padded, centred, to sizes MONAI's SwinUNETR takes (multiples of 32, one axis
at least 64).

A case's subject is its name without the extension and a trailing run of digits after `_` or
`-` (`itk_t1_007` -> `itk_t1`), or the first group of a pattern the user gives: augmented
copies of one scan share a subject, and the training and test sets must not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.io import VolumeError, read_volume, search_scans
from diffusion_core.io.volume import brief_error
from diffusion_core.sources import SourceError, open_source
from evaluation.downstream.config import SIZE_MULTIPLE
from evaluation.errors import EvalError

IMAGES, MASKS = "images", "masks"
DEFAULT_SUBJECT = r"^(.+?)(?:[_-]\d+)?$"
UPPER_PERCENTILE = 99.5


@dataclass(frozen=True)
class Case:
    """One labelled volume: image in [0, 1] and boolean mask, both (D, H, W), unpadded."""

    name: str
    subject: str
    image: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]


def normalise(array: np.ndarray) -> np.ndarray:
    """The volume's minimum at 0 and its 99.5th percentile at 1, clipped to [0, 1]; float32."""
    array = np.asarray(array, dtype=np.float32)
    low = float(array.min())
    high = float(np.percentile(array, UPPER_PERCENTILE))
    if not high > low:
        return np.zeros_like(array)
    return np.clip((array - low) / (high - low), 0.0, 1.0).astype(np.float32)


def padded_shape(shape: tuple[int, ...], square: bool = False) -> tuple[int, ...]:
    """Each axis rounded up to a multiple of 32, W to at least 64 when no axis reaches 64 (the
    encoder's last stage then holds two tokens, as instance norm and the SSL heads need); with
    `square`, H and W made equal too."""
    out = [-(-size // SIZE_MULTIPLE) * SIZE_MULTIPLE for size in shape]
    if max(out) < 2 * SIZE_MULTIPLE:
        out[-1] = 2 * SIZE_MULTIPLE
    if square:
        out[-1] = out[-2] = max(out[-2:])
    return tuple(out)


def pad_to(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`array` zero-padded, centred, to `shape` (every axis at least as long)."""
    before = [(target - size) // 2 for size, target in zip(array.shape, shape, strict=True)]
    widths = [(b, target - size - b)
              for b, size, target in zip(before, array.shape, shape, strict=True)]
    return np.pad(array, widths)


def crop_from(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The centred region of `shape` that `pad_to` padded out to `array.shape`."""
    before = [(size - target) // 2 for size, target in zip(array.shape, shape, strict=True)]
    return array[tuple(slice(b, b + t) for b, t in zip(before, shape, strict=True))]


def read_unlabelled(folder: Path, option: str = "--pretrain") -> tuple[np.ndarray, list[str]]:
    """Every volume of `folder` in [0, 1], padded to one shape with square (H, W); their names.

    (n, D, H, W) float32; EvalError when the folder cannot be read or its volumes differ in shape.
    """
    try:
        source = open_source(folder, option=option)
        volumes = [normalise(v.array) for v in source]
    except SourceError as err:
        raise EvalError(str(err)) from None
    if not volumes:
        raise EvalError(f"{option} {folder} holds no volumes; give a folder of volumes to "
                        "pre-train on.")
    shapes = {v.shape for v in volumes}
    if len(shapes) > 1:
        raise EvalError(f"the volumes of {option} {folder} differ in shape ({sorted(shapes)[:2]})"
                        "; give volumes of one shape, e.g. the samples of one model.")
    shape = padded_shape(volumes[0].shape, square=True)
    return np.stack([pad_to(v, shape) for v in volumes]), source.names


def subject_of(name: str, pattern: str = DEFAULT_SUBJECT) -> str:
    """The subject a case belongs to (module docstring): the pattern's first group."""
    stem = re.sub(r"(\.nii\.gz|\.nii|\.npy)$", "", Path(name).name, flags=re.IGNORECASE)
    match = re.match(pattern, stem)
    if match is None or not match.groups() or not match.group(1):
        raise EvalError(f"the subject pattern {pattern!r} does not match the case {name!r}; give "
                        "a pattern whose first group is the subject.")
    return match.group(1)


def _names(folder: Path, option: str) -> dict[str, Path]:
    """The scans under one part of a labelled folder, by path relative to it."""
    if not folder.is_dir():
        raise EvalError(f"{option} {folder.parent} has no {folder.name}/ folder; a labelled "
                        f"folder holds {IMAGES}/ and {MASKS}/ with files of the same names.")
    try:
        paths, _ = search_scans(folder)
    except VolumeError as err:
        raise EvalError(f"{option} {brief_error(err)}.") from None
    return {str(path.relative_to(folder)): path for path in paths}


def read_labelled(folder: Path, option: str, pattern: str = DEFAULT_SUBJECT) -> list[Case]:
    """The image + mask pairs of a labelled folder, sorted by name (module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EvalError(f"{option} {folder} is not a folder; give a folder holding {IMAGES}/ "
                        f"and {MASKS}/.")
    images, masks = _names(folder / IMAGES, option), _names(folder / MASKS, option)
    unmatched = sorted(set(images) ^ set(masks))
    if unmatched:
        where = MASKS if unmatched[0] in images else IMAGES
        raise EvalError(f"{option} {folder}: {unmatched[0]} has no file of that name in "
                        f"{where}/; every image needs its mask, named alike.")
    if not images:
        raise EvalError(f"{option} {folder}/{IMAGES} holds no scans; add image and mask pairs.")
    return [_read_pair(name, images[name], masks[name], option, pattern)
            for name in sorted(images)]


def _read_pair(name: str, image_path: Path, mask_path: Path, option: str,
               pattern: str) -> Case:
    """One case, checked: readable, finite, image and mask of one shape, a non-empty mask."""
    try:
        image, mask = read_volume(image_path), read_volume(mask_path)
    except VolumeError as err:
        raise EvalError(f"{option}: cannot read {brief_error(err)}; fix or remove that pair.") \
            from None
    if image.array.shape != mask.array.shape:
        raise EvalError(f"{option}: the mask {mask_path} is {mask.array.shape} but its image is "
                        f"{image.array.shape}; give each image a mask of its own grid.")
    values = np.asarray(image.array, dtype=np.float32)
    if not np.isfinite(values).all() or not np.isfinite(np.asarray(mask.array, float)).all():
        raise EvalError(f"{option}: {image_path} or its mask holds NaN or infinite values; fix "
                        "or remove that pair.")
    foreground = np.asarray(mask.array) > 0
    if not foreground.any():
        raise EvalError(f"{option}: the mask {mask_path} is empty; every case needs a "
                        "foreground to segment.")
    return Case(name, subject_of(name, pattern), normalise(values), foreground, image.spacing)


def common_shape(*groups: list[Case]) -> tuple[int, ...]:
    """The padded shape every case of the groups fits in (multiples of 32)."""
    shapes = np.array([case.image.shape for group in groups for case in group])
    return padded_shape(tuple(int(s) for s in shapes.max(axis=0)))
