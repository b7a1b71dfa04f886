"""Presets: the paper's four data sets and the small ones, their geometry and pipeline hash."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffusion_core.preprocess import CentreCropOrPad, ClipHU, MinMax, Resample, Resize
from diffusion_core.presets import PRESETS, Preset, PresetError, get_preset


def test_the_papers_presets_and_the_small_ones_exist():
    """mrnet, adni, duke, lidc (Supplementary Table 1) plus demo and tiny."""
    assert set(PRESETS) == {"mrnet", "adni", "duke", "lidc", "demo", "tiny"}
    assert [get_preset(name).name for name in ("mrnet", "lidc", "tiny")] == [
        "mrnet", "lidc", "tiny"]


@pytest.mark.parametrize(("name", "shape", "paper_size", "modality"), [
    ("mrnet", (32, 256, 256), "256x256x32", "MR"),
    ("adni", (64, 64, 64), "64x64x64", "MR"),
    ("duke", (32, 256, 256), "256x256x32", "MR"),
    ("lidc", (128, 128, 128), "128x128x128", "CT"),
    ("demo", (32, 64, 64), "64x64x32", "MR"),
    ("tiny", (8, 16, 16), "16x16x8", "MR"),
])
def test_paper_presets_match_supplementary_table_1(name, shape, paper_size, modality):
    """Output shape in (D, H, W); paper_size writes it the paper's way, height x width x depth."""
    preset = get_preset(name)
    assert preset.shape == shape
    assert preset.paper_size == paper_size
    assert preset.modality == modality


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_spacing_is_three_positive_values_and_depth_axis_a_plane(name):
    """A nominal spacing for every output axis and a named plane for the depth slices."""
    preset = get_preset(name)
    assert len(preset.spacing) == 3 and min(preset.spacing) > 0
    assert preset.depth_axis in ("axial", "sagittal")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_pipelines_end_in_the_preset_shape_and_min_max(name):
    """The last resizing step gives preset.shape and the last step scales to [-1, 1]."""
    preset = get_preset(name)
    shaped = [s for s in preset.steps if isinstance(s, Resize | CentreCropOrPad)]
    assert shaped[-1].shape == preset.shape
    assert isinstance(preset.steps[-1], MinMax)


def test_ct_window_is_the_papers_and_mr_has_none():
    """LIDC clips and scales by [-1000, 400] HU; MR presets have no HU window."""
    lidc = get_preset("lidc")
    assert lidc.hu_window == (-1000.0, 400.0)
    clip = next(s for s in lidc.steps if isinstance(s, ClipHU))
    assert (clip.low, clip.high) == (-1000.0, 400.0)
    assert lidc.steps[-1].window == (-1000.0, 400.0)
    assert "[-1000, 400]" in lidc.description
    for preset in PRESETS.values():
        if preset.modality == "MR":
            assert preset.hu_window is None
            assert preset.steps[-1].window is None


def test_lidc_pads_with_air_and_duke_resamples_to_the_papers_spacing():
    """LIDC crops/pads 320^3 with -1000 HU at 1 mm; DUKE resamples to 3 x 0.66 x 0.66 mm."""
    lidc = get_preset("lidc")
    crop = next(s for s in lidc.steps if isinstance(s, CentreCropOrPad))
    assert crop.shape == (320, 320, 320) and crop.pad_value == -1000.0
    assert next(s for s in lidc.steps if isinstance(s, Resample)).spacing == (1.0, 1.0, 1.0)
    duke = get_preset("duke")
    assert next(s for s in duke.steps if isinstance(s, Resample)).spacing == (3.0, 0.66, 0.66)
    assert duke.uses_masks and duke.outputs_per_scan == 2
    assert not lidc.uses_masks and lidc.outputs_per_scan == 1


def test_unknown_preset_lists_the_known_names():
    """A typo gives a PresetError naming every preset."""
    with pytest.raises(PresetError) as caught:
        get_preset("lidcc")
    for name in PRESETS:
        assert name in str(caught.value)


def test_pipeline_hash_is_stable_and_follows_the_parameters():
    """Same parameters (1 or 1.0) -> same hash; any changed parameter -> another hash."""
    lidc = get_preset("lidc")
    rebuilt = dataclasses.replace(lidc, steps=tuple(dataclasses.replace(s) for s in lidc.steps))
    assert rebuilt.steps[0] is not lidc.steps[0]
    assert rebuilt.pipeline_hash == PINNED_PIPELINE_HASHES["lidc"]
    as_ints = dataclasses.replace(lidc, steps=(ClipHU(-1000, 400),) + lidc.steps[1:])
    assert as_ints.pipeline_hash == lidc.pipeline_hash
    other_window = dataclasses.replace(lidc, steps=(ClipHU(-1000, 500),) + lidc.steps[1:])
    assert other_window.pipeline_hash != lidc.pipeline_hash
    other_spacing = dataclasses.replace(
        lidc, steps=lidc.steps[:1] + (Resample((1.0, 1.0, 1.5)),) + lidc.steps[2:])
    assert other_spacing.pipeline_hash != lidc.pipeline_hash
    hashes = {preset.pipeline_hash for preset in PRESETS.values()}
    assert len(hashes) == len(PRESETS)


# The hashes every existing PREP_DIR records. A change to a preset's steps or to
# `Step.describe()` changes one of them and would orphan those PREP_DIRs: it must be deliberate
# (update this table, and bump PIPELINE_VERSION when behaviour changed without the parameters).
PINNED_PIPELINE_HASHES = {
    "mrnet": "4acdee03cb661c41da06b87b81072aacd1b7bb0b0c0f8b1ccc05e5b79d581b89",
    "adni": "635de0578ab400478aba9cdf9b4e4eef60025fa5af2a8df1c55c890b8ed1a1b7",
    "duke": "77612d7dab0f26a1a5ed68242369e934e76ca10cde8a76073cabc71527d1dc2a",
    "lidc": "95c50801c731133a90e48a7528cf4c844a084d96a97fb465518bb1ca38c0416e",
    "demo": "6c0f8dba9f984721a6eda5c1204dbd0a19ed8883a9cb15bf7ad1bcf1727020dd",
    "tiny": "ea7c89ab9bfd61f5d64555e6604045a0f81d6e106dd3862f565c814cb6aac0a6",
}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_pipeline_hash_is_pinned(name):
    """Each preset's pipeline hash is the hex value its PREP_DIRs were written with."""
    assert get_preset(name).pipeline_hash == PINNED_PIPELINE_HASHES[name]


def test_every_preset_has_a_pinned_hash():
    """A new preset gets its hash written down too."""
    assert set(PINNED_PIPELINE_HASHES) == set(PRESETS)


def test_pipeline_description_is_json_data():
    """pipeline() names each step with its parameters, as the manifest stores them."""
    described = get_preset("lidc").pipeline()
    assert described[0] == {"step": "ClipHU", "low": -1000.0, "high": 400.0}
    assert described[2] == {"step": "CentreCropOrPad", "shape": [320, 320, 320],
                            "pad_value": -1000.0}
    assert [d["step"] for d in get_preset("duke").pipeline()] == [
        "Resample", "CropToBreastRegion", "SplitLeftRight", "Resize", "MinMax"]


def test_presets_are_frozen():
    """A preset cannot be changed in place (its hash would lie)."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_preset("tiny").shape = (1, 1, 1)
    assert get_preset("tiny").shape == (8, 16, 16)


def test_a_pipeline_must_end_in_min_max():
    """to_intensity inverts the last step, so a preset whose steps end elsewhere is refused."""
    tiny = get_preset("tiny")
    with pytest.raises(ValueError, match="must end in MinMax"):
        dataclasses.replace(tiny, steps=(MinMax(), Resize((8, 16, 16))))
    with pytest.raises(ValueError, match="must end in MinMax"):
        Preset(name="empty", description="", modality="MR", shape=(8, 16, 16),
               spacing=(1.0, 1.0, 1.0), depth_axis="axial", steps=())


def test_a_preset_names_a_known_modality():
    """Only CT and MR presets exist; a typo in the modality is refused when the preset is made."""
    with pytest.raises(ValueError, match="modality is one of CT, MR"):
        dataclasses.replace(get_preset("tiny"), modality="PET")


def test_to_intensity_inverts_the_final_min_max():
    """CT: [-1, 1] back to the HU window; MR (per-volume scaling): back to [0, 1]."""
    values = np.array([-1.5, -1.0, 0.0, 0.5, 1.0, 1.2], np.float32)
    hu = get_preset("lidc").to_intensity(values)
    assert hu.dtype == np.float32
    assert hu.tolist() == [-1000.0, -1000.0, -300.0, 50.0, 400.0, 400.0]
    assert get_preset("mrnet").to_intensity(values).tolist() == [0.0, 0.0, 0.5, 0.75, 1.0, 1.0]


def test_each_preset_says_its_shapes_steps_prediction_and_measured_cpu_time():
    from diffusion_core.presets import CPU_SECONDS_PER_STEP, ddpm_settings, preset_rows

    rows = {row["preset"]: row for row in preset_rows()}
    assert set(rows) == set(PRESETS)
    assert rows["mrnet"]["paper_size_hxwxd"] == "256x256x32"
    assert rows["mrnet"]["shape_dhw"] == [32, 256, 256]
    assert rows["demo"]["spacing_mm_dhw"] == [4.5, 3.0, 3.0]
    # Measured on the CPU for the small presets, not for the paper's.
    for name in ("tiny", "demo"):
        assert all(None not in pair for pair in vars(CPU_SECONDS_PER_STEP[name]).values())
    assert rows["lidc"]["cpu_seconds_per_step"]["ddpm"] == [None, None]
    # The demo was made for (and its bundled model trained with) v prediction.
    assert rows["demo"]["prediction"] == "v"
    assert ddpm_settings("demo").scheduler.prediction_type == "v_prediction"
    assert rows["adni"]["prediction"] == "epsilon"
