"""Bring real and synthetic volumes to one grid and one value scale, so only the image differs.

Every input, real or synthetic, takes the same road:

1. **Dequantise** (`dequantise`): add uniform noise of +-half the input's own value step (the
   smallest gap between its distinct values). An integer scan (a uint8 MRNet exam, int16 HU) then
   becomes as continuous as a decoder's float output; a float volume's step is tiny, so it is left
   practically unchanged. Without this, a real uint8 scan keeps at most 256 distinct values after
   any rescaling that does not interpolate, and the distinct-value count alone would tell it from
   a synthetic case. The noise is below the input's own precision, so it invents no detail.
   (Resampling every case through a shifted trilinear grid would also break the value set, but it
   blurs every image; the dither costs nothing visible.)
2. **Grid**: with a preset, the preset's pipeline (`preprocess`, then `to_intensity`); a volume
   already of the preset's shape with values in [-1, 1] (e.g. a sampler's NIfTI output) is taken
   as preprocessed and only goes through `to_intensity`. Without a preset every input must share
   one shape, and is assumed to be in HU (CT) or any intensity unit (MR).
3. **Final quantisation**, the same for every case: CT in Hounsfield units rounded, clipped to the
   preset's HU window (or [-1024, 3071]) as int16; MR min-max scaled between its 0.5th and 99.5th
   percentiles to [0, 4095], rounded, as int16.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from diffusion_core.io import Volume, canonical_affine
from diffusion_core.modality import CT_SOFT_TISSUE, MR_PERCENTILES
from diffusion_core.presets import Preset
from studies.study import StudyError

DEFAULT_HU_WINDOW = (-1024.0, 3071.0)  # the 12-bit range CT scanners store
MR_LEVELS = 4095
# How far outside [-1, 1] a volume of the preset's shape may go and still count as a sampler's
# output (VQ-GAN decoders have no output tanh, so they overshoot a little).
PREPROCESSED_MARGIN = 0.1
# Viewer defaults written to study.json: soft-tissue CT window (level, width) in HU, and the MR
# auto-window percentiles (both as FACTS.md's viewer conventions).
CT_VIEWER = {"window": list(CT_SOFT_TISSUE)}
MR_VIEWER = {"percentile": list(MR_PERCENTILES)}


@dataclass(frozen=True)
class Grid:
    """The one shape, spacing and affine every case of a study is written on."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        """The canonical affine: D inferior->superior, H anterior->posterior, W right->left.

        In RAS+ world coordinates these are +z, -y and -x; the volume's centre sits at the origin,
        so no case carries its source's scanner position.
        """
        affine = canonical_affine(self.spacing)
        centre = (np.array(self.shape, dtype=float) - 1.0) / 2.0
        affine[:3, 3] = -affine[:3, :3] @ centre
        return affine


def value_step(array: np.ndarray) -> float:
    """The smallest gap between two distinct values of `array` (0 for a constant array)."""
    if np.issubdtype(array.dtype, np.integer):
        return 1.0 if array.size and array.min() != array.max() else 0.0
    values = np.unique(array)
    return float(np.diff(values).min()) if values.size > 1 else 0.0


def dequantise(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`array` as float32 plus uniform noise of +-half its own value step."""
    step = value_step(array)
    noise = rng.uniform(-step / 2.0, step / 2.0, size=array.shape) if step > 0 else 0.0
    return (np.asarray(array, dtype=np.float64) + noise).astype(np.float32)


def is_preprocessed(array: np.ndarray, preset: Preset) -> bool:
    """Whether a volume already has the preset's shape and values in [-1, 1] (give or take
    `PREPROCESSED_MARGIN`: a decoder's output overshoots slightly; it is clipped afterwards)."""
    low, high = -1.0 - PREPROCESSED_MARGIN, 1.0 + PREPROCESSED_MARGIN
    return tuple(array.shape) == tuple(preset.shape) and float(array.min()) >= low \
        and float(array.max()) <= high


def hu_window(preset: Preset | None) -> tuple[float, float]:
    """The HU range CT cases are clipped to."""
    if preset is not None and preset.hu_window is not None:
        return tuple(float(v) for v in preset.hu_window)
    return DEFAULT_HU_WINDOW


def quantise_ct(hounsfield: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Hounsfield units rounded and clipped to `window`, as int16."""
    return np.clip(np.rint(hounsfield), window[0], window[1]).astype(np.int16)


def quantise_mr(intensity: np.ndarray) -> np.ndarray:
    """Robust min-max (0.5th-99.5th percentile) to [0, 4095], rounded, as int16."""
    low, high = np.percentile(intensity, MR_PERCENTILES)
    if high <= low:
        return np.zeros(intensity.shape, dtype=np.int16)
    scaled = (intensity.astype(np.float64) - low) * (MR_LEVELS / (high - low))
    return np.clip(np.rint(scaled), 0, MR_LEVELS).astype(np.int16)


def quantise(intensity: np.ndarray, modality: str, preset: Preset | None) -> np.ndarray:
    """The final quantisation every case goes through, real or synthetic."""
    if modality == "CT":
        return quantise_ct(intensity, hu_window(preset))
    return quantise_mr(intensity)


def to_study_values(volume: Volume, modality: str, preset: Preset | None,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """The int16 case arrays one input gives, by the steps in this module's docstring.

    A list because a preset may split a scan (DUKE: right and left breast).
    """
    raw = np.asarray(volume.array)
    if preset is None:
        if modality == "CT" and float(raw.min()) >= -1.0 and float(raw.max()) <= 1.0:
            raise StudyError(f"{volume.source} holds values in [-1, 1], not Hounsfield units; "
                             "pass the --preset it was made with so it can be mapped back to HU.")
        return [quantise(dequantise(raw, rng), modality, None)]
    if is_preprocessed(raw, preset):
        arrays = [np.clip(dequantise(raw, rng), -1.0, 1.0)]
    else:
        arrays = preset.preprocess(dataclasses.replace(volume, array=dequantise(raw, rng)))
    return [quantise(preset.to_intensity(a), modality, preset) for a in arrays]
