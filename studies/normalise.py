"""One road from any input, real or synthetic, to a case: the same content becomes the same case.

Nothing but the image may separate real from synthetic cases (docs/study-format.md), so every input
takes the same three steps, with the dither and the clipping in one place after the pipeline:

1. **To [-1, 1]** (`to_unit`), the array the preset's pipeline leaves:
   - a raw scan goes through the preset's pipeline (`Preset.preprocess`);
   - an array already of the preset's shape with values in [-1, 1] (a PREP_DIR array, a
     sampler's output) is taken as it is;
   - an array on the preset's grid (shape and spacing) in the preset's intensities (a sampler's
     output in Hounsfield units) goes through the pipeline's last step only, the value mapping
     every folder reader uses for scans (`diffusion_core.sources.scan_to_model`);
   - without a preset, the last step is the whole pipeline: CT's 12-bit HU window, MR's own range.
   Every array then ends with the last step's rule (`settle`): CT clipped to [-1, 1] (its HU
   window), MR min-max scaled onto [-1, 1], so a sampler's overshoot is treated like a scan's
   range. A scan dithered before its pipeline and a sampler's output clipped after it would
   leave different value sets (the share of voxels at the minimum told them apart).
2. **Dither** (`dither`): uniform noise of +-half the array's own value step (the smallest gap
   between its distinct values), then clipped to [-1, 1]. A uint8 scan through a pipeline that
   does not interpolate (MRNet's crop and min-max) keeps its 256 levels, which the final scale
   would spread into a comb of values with empty gaps between them; the dither fills the gaps,
   below the scan's own precision. An interpolated or float array has a tiny step and is left
   practically unchanged. The noise is drawn from a generator keyed by the study's seed and by
   the array's bytes: the same content gets the same noise (so it becomes the very same case),
   and different contents get independent noise (no pattern shared between cases).
3. **Quantise** (`quantise`) after the last step's inverse (`MinMax.invert`): CT in Hounsfield
   units rounded, clipped to the window, as int16; MR min-max between its 0.5th and 99.5th
   percentiles to [0, 4095], rounded, as int16.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffusion_core.io import Volume, canonical_affine
from diffusion_core.modality import CT_SOFT_TISSUE, MR_PERCENTILES
from diffusion_core.preprocess import MinMax, Part
from diffusion_core.presets import Preset
from diffusion_core.sources import scan_to_model
from studies.study import StudyError

DEFAULT_HU_WINDOW = (-1024.0, 3071.0)  # the 12-bit range CT scanners store
MR_LEVELS = 4095
# How far outside [-1, 1] a volume of the preset's shape may go and still count as a sampler's
# output (VQ-GAN decoders have no output tanh, so they overshoot a little).
PREPROCESSED_MARGIN = 0.1
SPACING_TOLERANCE = 1e-3  # relative: NIfTI stores spacings as float32
# Viewer defaults written to study.json: the soft-tissue CT window (level, width) in HU and the
# robust MR percentiles, the same conventions the reader app's windowing uses.
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


def hu_window(preset: Preset | None) -> tuple[float, float]:
    """The HU range CT cases are clipped to."""
    if preset is not None and preset.hu_window is not None:
        return tuple(float(v) for v in preset.hu_window)
    return DEFAULT_HU_WINDOW


def last_step(modality: str, preset: Preset | None) -> MinMax:
    """The road's last step to [-1, 1]: the preset's, or CT's 12-bit window, or MR's own range."""
    if preset is not None:
        return preset.steps[-1]
    return MinMax(window=DEFAULT_HU_WINDOW) if modality == "CT" else MinMax()


def _apply(step: MinMax, array: np.ndarray) -> np.ndarray:
    """One MinMax step over an array (float32 out)."""
    return step(Part(array=np.asarray(array, dtype=np.float32), spacing=(1.0, 1.0, 1.0)))[0].array


def settle(unit: np.ndarray, last: MinMax) -> np.ndarray:
    """The last step's rule on an array near [-1, 1]: a window clips, per-volume scaling scales.

    An array that already spans exactly [-1, 1] (a pipeline's output) is left bit for bit as it
    is, so settling twice changes nothing and twins stay twins.
    """
    unit = np.asarray(unit, dtype=np.float32)
    if last.window is not None:
        return np.clip(unit, -1.0, 1.0)
    if float(unit.min()) == -1.0 and float(unit.max()) == 1.0:
        return unit
    return _apply(last, unit)


def _to_window(raw: np.ndarray, last: MinMax) -> np.ndarray:
    """Intensities towards [-1, 1]: through a window (CT's HU) now; per-volume scaling is
    `settle`'s."""
    return _apply(last, raw) if last.window is not None else np.asarray(raw, dtype=np.float32)


def is_preprocessed(array: np.ndarray, preset: Preset) -> bool:
    """Whether a volume already has the preset's shape and values in [-1, 1] (give or take
    `PREPROCESSED_MARGIN`: a decoder's output overshoots slightly)."""
    low, high = -1.0 - PREPROCESSED_MARGIN, 1.0 + PREPROCESSED_MARGIN
    return tuple(array.shape) == tuple(preset.shape) and float(array.min()) >= low \
        and float(array.max()) <= high


def is_on_grid(volume: Volume, preset: Preset) -> bool:
    """Whether a volume has the preset's output shape and nominal spacing (a sampler's output)."""
    return tuple(volume.array.shape) == tuple(preset.shape) and np.allclose(
        volume.spacing, preset.spacing, rtol=SPACING_TOLERANCE, atol=0.0)


def to_unit(volume: Volume, modality: str, preset: Preset | None, *,
            prepared: bool = False) -> list[np.ndarray]:
    """Step 1 of the road (module docstring): the input's arrays in [-1, 1], settled.

    `prepared`: the array is a PREP_DIR's, already made by the preset's pipeline. A list because
    a preset may split a scan (DUKE: right and left breast).
    """
    raw = np.asarray(volume.array)
    last = last_step(modality, preset)
    if preset is None:
        if modality == "CT" and float(raw.min()) >= -1.0 and float(raw.max()) <= 1.0:
            raise StudyError(f"{volume.source} holds values in [-1, 1], not Hounsfield units; "
                             "pass the --preset it was made with so it can be mapped back to HU.")
        units = [_to_window(raw, last)]
    elif prepared or is_preprocessed(raw, preset):
        units = [raw]
    elif is_on_grid(volume, preset):
        units = [scan_to_model(volume, preset)]
    else:
        units = preset.preprocess(volume)
    return [settle(unit, last) for unit in units]


def content_rng(unit: np.ndarray, key: Sequence[int]) -> np.random.Generator:
    """A generator keyed by `key` (the study's) and by the array's shape and bytes."""
    digest = hashlib.sha256(repr((unit.shape, unit.dtype.str)).encode("ascii"))
    digest.update(np.ascontiguousarray(unit).tobytes())
    words = [int.from_bytes(digest.digest()[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([*key, *words])


def dither(unit: np.ndarray, key: Sequence[int]) -> np.ndarray:
    """Step 2: `unit` plus uniform noise of +-half its own value step, inside [-1, 1].

    Voxels at exactly -1 or 1 are saturated: the source was clipped there (a scanner's 0, a
    sampler's output clipped to -1), and such a pile stays a pile whichever road it came by. A
    quantised source's end level also holds the voxels whose true value lay within half a level
    of the end, which a continuous source spreads over that half level: that many are spread
    over it, the rest stay at the end. Their number is half the density at a quarter level from
    the end, extrapolated linearly from the counts of the next two levels (n1, n2):
    0.5 * (n1 - 0.75 * (n2 - n1)). Dithering the whole pile instead would move half of it off
    the end in an integer scan but none of it in a float one: the share of voxels at the
    minimum would tell them apart.
    """
    unit = np.asarray(unit, dtype=np.float32)
    step = value_step(unit)
    if step == 0.0:
        return unit.copy()
    rng = content_rng(unit, key)
    noise = rng.random(unit.shape, dtype=np.float32)
    noise -= np.float32(0.5)
    noise *= np.float32(step)
    dithered = unit + noise
    for end, inward in ((-1.0, 1.0), (1.0, -1.0)):
        at_end = np.flatnonzero(unit.ravel() == end)
        if at_end.size == 0:
            continue
        distance = (unit.ravel() - end) * inward
        first = int(np.count_nonzero((distance > 0) & (distance < 1.5 * step)))
        second = int(np.count_nonzero((distance >= 1.5 * step) & (distance < 2.5 * step)))
        share = int(round(0.5 * (first - 0.75 * (second - first))))
        spread = rng.choice(at_end, size=min(at_end.size, max(share, 0)), replace=False)
        flat = dithered.reshape(-1)
        flat[at_end] = end
        flat[spread] = end + inward * np.abs(noise.reshape(-1)[spread])
    return np.clip(dithered, -1.0, 1.0, out=dithered)


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


def case_values(unit: np.ndarray, modality: str, preset: Preset | None,
                key: Sequence[int]) -> np.ndarray:
    """Steps 2 and 3: a settled [-1, 1] array as the int16 values of its case."""
    intensity = last_step(modality, preset).invert(dither(unit, key))
    return quantise(intensity, modality, preset)


def to_study_values(volume: Volume, modality: str, preset: Preset | None, key: Sequence[int],
                    *, prepared: bool = False) -> list[np.ndarray]:
    """The int16 case arrays one input gives, by the whole road."""
    return [case_values(unit, modality, preset, key)
            for unit in to_unit(volume, modality, preset, prepared=prepared)]
