"""diffusion_core.sources: what a folder is, its volumes listed lazily, read in one convention."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import Volume, VolumeError, canonical_affine, read_volume, write_nifti
from diffusion_core.prepared import MANIFEST_NAME, Manifest, PreparedScan
from diffusion_core.presets import get_preset
from diffusion_core.sources import (
    INTENSITIES,
    MODEL_SPACE,
    SourceError,
    from_intensities,
    open_source,
    open_sources,
    scan_to_model,
)


def _prep_dir(folder: Path, preset_name: str, arrays: dict[str, np.ndarray]) -> Path:
    """A PREP_DIR as mdiff-prepare writes it: the arrays and a manifest naming them."""
    folder.mkdir(parents=True)
    manifest = Manifest.for_preset(get_preset(preset_name), folder.parent / "raw", None)
    for name, array in arrays.items():
        np.save(folder / name, array)
        manifest.scans.append(PreparedScan(source=name.replace(".npy", ".nii.gz"),
                                           arrays=[name]))
    manifest.save(folder)
    return folder


def _tiny_arrays(count: int) -> dict[str, np.ndarray]:
    """`count` arrays of the tiny preset's shape in [-1, 1], named b0.npy, a1.npy, ..."""
    rng = np.random.default_rng(8)
    return {f"{'ba'[i % 2]}{i}.npy": rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
            for i in range(count)}


# --------------------------------------------------------------------------- a PREP_DIR


def test_a_prep_dir_lists_its_arrays_as_preprocessed_by_its_preset(tmp_path):
    """The manifest's arrays, sorted, read with the preset's modality and nominal spacing; the
    manifest itself and a stray .npy are no volumes of it."""
    arrays = _tiny_arrays(3)
    prep = _prep_dir(tmp_path / "prep", "tiny", arrays)
    np.save(prep / "stray.npy", np.zeros((8, 16, 16), np.float32))
    source = open_source(prep)
    assert source.kind == "prepared" and source.preset.name == "tiny"
    assert [item.path for item in source.items] == sorted(prep / name for name in arrays)
    assert all(item.is_preprocessed for item in source.items)
    assert source.items[0].prepared_from == "a1.nii.gz"
    volume = source.read_stored(0)
    np.testing.assert_array_equal(volume.array, arrays[source.items[0].name])
    assert (volume.modality, volume.spacing) == ("MR", (4.0, 4.0, 4.0))
    np.testing.assert_array_equal(volume.affine, canonical_affine((4.0, 4.0, 4.0)))
    model = source.read(0)
    assert model.convention == MODEL_SPACE
    np.testing.assert_array_equal(model.array, arrays[source.items[0].name])
    intensities = source.read_intensities(0)
    assert intensities.convention == INTENSITIES
    np.testing.assert_allclose(intensities.array, (arrays[source.items[0].name] + 1) / 2)
    # Read on its own, the same file is an MRNet exam: 1 mm voxels.
    assert read_volume(source.items[0].path).spacing == (1.0, 1.0, 1.0)


def test_a_prep_dir_array_is_checked_as_training_checks_it(tmp_path):
    """Values beyond [-1, 1] (which the inverse pipeline would silently clip), NaN or another
    shape than the manifest's are an error naming the file."""
    arrays = _tiny_arrays(3)
    arrays["b0.npy"] = arrays["b0.npy"] * 1000
    arrays["a1.npy"][0, 0, 0] = np.nan
    arrays["b2.npy"] = arrays["b2.npy"][:, :8]
    prep = _prep_dir(tmp_path / "prep", "tiny", arrays)
    problems = {"b0.npy": "outside the prepared range [-1, 1]; run mdiff-prepare again",
                "a1.npy": "holds NaN or infinite values; run mdiff-prepare again",
                "b2.npy": "has shape (8, 8, 16), not the (8, 16, 16)"}
    source = open_source(prep)
    for index, item in enumerate(source.items):
        with pytest.raises(VolumeError, match=re.escape(problems[item.name])):
            source.read_stored(index)
        with pytest.raises(SourceError, match=re.escape(problems[item.name])) as caught:
            source.read(index)
        assert str(item.path) in str(caught.value) and "\n" not in str(caught.value)


def test_a_ct_prep_dir_reads_as_ct(tmp_path):
    """lidc arrays are CT at 2.5 mm, not MRNet's MR; asking for MR is refused; their
    intensities are Hounsfield units."""
    prep = _prep_dir(tmp_path / "prep", "lidc",
                     {"chest.npy": np.full((128, 128, 128), -1.0, np.float32)})
    source = open_source(prep)
    volume = source.read_stored(0)
    assert (volume.modality, volume.spacing) == ("CT", (2.5, 2.5, 2.5))
    assert source.read_stored(0, modality="CT").modality == "CT"
    with pytest.raises(VolumeError, match="is CT, not the MR"):
        source.read_stored(0, modality="MR")
    assert float(source.read_intensities(0).array.max()) == -1000.0


@pytest.mark.parametrize(("damage", "problem"), [
    ("pipeline", "another version of the 'tiny' pipeline"),
    ("preset", "preset 'gone', which this mdiff does not know"),
    ("json", "cannot be read as JSON"),
    ("version", "manifest version 99"),
    ("empty", "without arrays"),
])
def test_a_prep_dir_that_cannot_be_trusted_is_refused(damage, problem, tmp_path):
    """Another pipeline version, an unknown preset or a damaged manifest: one sentence."""
    prep = _prep_dir(tmp_path / "prep", "tiny", {} if damage == "empty" else _tiny_arrays(1))
    path = prep / MANIFEST_NAME
    data = json.loads(path.read_text())
    if damage == "pipeline":
        data["pipeline_hash"] = "0" * 64
    elif damage == "preset":
        data["preset"] = "gone"
    elif damage == "version":
        data["format_version"] = 99
    path.write_text(json.dumps(data) if damage != "json" else "{ not json")
    with pytest.raises(SourceError, match=problem) as caught:
        open_source(prep)
    assert str(prep) in str(caught.value) and "\n" not in str(caught.value)


def test_an_array_the_manifest_lists_but_the_folder_lost_is_named(tmp_path):
    """Reading a listed array that was deleted says which file and why."""
    source = open_source(_prep_dir(tmp_path / "prep", "tiny", _tiny_arrays(2)))
    source.items[0].path.unlink()
    with pytest.raises(VolumeError, match="does not exist") as caught:
        source.read_stored(0)
    assert str(source.items[0].path) in str(caught.value)


# --------------------------------------------------------------------------- a folder of scans


def test_a_folder_of_scans_lists_what_search_scans_finds(ct_phantom, tmp_path):
    """Without a manifest or samples.json every file is a raw scan, read as it is stored."""
    write_nifti(ct_phantom, tmp_path / "raw" / "b.nii.gz")
    np.save(tmp_path / "raw" / "a.npy", np.zeros((3, 8, 8), np.uint8))
    source = open_source(tmp_path / "raw")
    assert source.kind == "scans" and source.preset is None
    assert source.names == ["a.npy", "b.nii.gz"]
    assert not any(item.is_preprocessed for item in source.items)
    first, second = source.read(0), source.read(1)
    assert first.convention == INTENSITIES and (first.modality, second.modality) == ("MR", "CT")
    np.testing.assert_array_equal(second.array, ct_phantom.array.astype(np.float32))


def test_another_tools_manifest_leaves_a_folder_of_scans(tmp_path):
    """A manifest.json that is not mdiff-prepare's says nothing: its .npy are MRNet exams."""
    folder = tmp_path / "mrnet"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"files": ["0001.npy"]}))
    np.save(folder / "0001.npy", np.zeros((3, 8, 8), np.uint8))
    source = open_source(folder)
    assert source.kind == "scans" and source.read_stored(0).spacing == (1.0, 1.0, 1.0)


def test_scans_read_with_a_preset_go_through_its_value_mapping(ct_phantom, tmp_path):
    """CT through the preset's HU window (an array already in [-1, 1] stays), MR by min-max;
    the geometry is left as stored."""
    lidc = get_preset("lidc")
    model = scan_to_model(ct_phantom, lidc)
    expected = np.clip((ct_phantom.array + 1000.0) / 1400.0 * 2 - 1, -1, 1)
    np.testing.assert_allclose(model, expected, atol=1e-6)
    assert model.shape == ct_phantom.array.shape
    unit = Volume(np.full((4, 4, 4), 0.5, np.float32), (1.0,) * 3, canonical_affine((1.0,) * 3),
                  "CT")
    np.testing.assert_array_equal(scan_to_model(unit, lidc), unit.array)
    mr = Volume(np.arange(64, dtype=np.float32).reshape(4, 4, 4) * 3, (1.0,) * 3,
                canonical_affine((1.0,) * 3), "MR")
    scaled = scan_to_model(mr, get_preset("tiny"))
    assert (float(scaled.min()), float(scaled.max())) == (-1.0, 1.0)


# --------------------------------------------------------------------------- a samples folder


def test_a_samples_folder_lists_its_plan_with_model_and_seed(tmp_path, make_samples_folder):
    """The planned files that exist, in the plan's order, each with its model and seed; read
    back into model space exactly, or as the intensities they hold."""
    arrays = list(_tiny_arrays(3).values())
    folder = make_samples_folder(tmp_path / "samples", "tiny", arrays[:2], planned=3,
                                 complete=False)
    source = open_source(folder)
    assert source.kind == "samples" and source.preset.name == "tiny" and len(source) == 2
    assert [(i.name, i.model, i.seed) for i in source.items] == [
        ("case_0001.nii.gz", "m1", "40"), ("case_0002.nii.gz", "m1", "41")]
    volume = source.read(1)
    assert volume.convention == MODEL_SPACE and volume.modality == "MR"
    np.testing.assert_allclose(volume.array, arrays[1], atol=1e-6)
    np.testing.assert_allclose(source.read_intensities(1).array, (arrays[1] + 1) / 2, atol=1e-7)
    with pytest.raises(SourceError, match="interrupted while it was being sampled"):
        open_source(folder, finished=True)


def test_ct_samples_map_back_through_the_hu_window():
    """from_intensities inverts Preset.to_intensity."""
    lidc = get_preset("lidc")
    model = np.linspace(-1, 1, 64, dtype=np.float32).reshape(4, 4, 4)
    np.testing.assert_allclose(from_intensities(lidc.to_intensity(model), lidc), model,
                               atol=1e-6)


def test_a_samples_folder_without_any_volume_is_refused(tmp_path, make_samples_folder):
    folder = make_samples_folder(tmp_path / "samples", "tiny", [], planned=2, complete=False)
    with pytest.raises(SourceError, match="without any sampled volume yet; run mdiff-sample"):
        open_source(folder, option="--samples")


# --------------------------------------------------------------------------- several folders


def test_several_folders_share_one_convention(tmp_path, make_samples_folder):
    """A folder of scans beside a PREP_DIR is read with its preset; two presets are refused."""
    prep = _prep_dir(tmp_path / "prep", "tiny", _tiny_arrays(2))
    raw = tmp_path / "raw"
    raw.mkdir()
    np.save(raw / "a.npy", np.arange(8 * 16 * 16, dtype=np.float32).reshape(8, 16, 16))
    sources = open_sources([("DIR", prep), ("DIR", raw)])
    assert [s.convention for s in sources] == [MODEL_SPACE, MODEL_SPACE]
    scaled = sources[1].read(0).array
    assert (float(scaled.min()), float(scaled.max())) == (-1.0, 1.0)
    assert open_sources([("DIR", raw)])[0].convention == INTENSITIES
    ct = tmp_path / "ct"
    write_nifti(Volume(np.full((8, 16, 16), -1000.0, np.float32), (1.0,) * 3,
                       canonical_affine((1.0,) * 3), "CT"), ct / "chest.nii.gz")
    with pytest.raises(SourceError, match="chest.nii.gz is CT but preset 'tiny' is MR"):
        open_sources([("DIR", prep), ("DIR", ct)])[1].read(0)
    other = make_samples_folder(tmp_path / "samples", "mrnet",
                                [np.zeros((32, 256, 256), np.float32)])
    with pytest.raises(SourceError, match="preset 'mrnet' but .* with 'tiny'; compare folders "
                                          "of one preset"):
        open_sources([("DIR", prep), ("DIR", other)])
    with pytest.raises(SourceError, match="was made with preset 'tiny', not 'mrnet'"):
        open_source(prep, preset=get_preset("mrnet"))


# --------------------------------------------------------------------------- errors, laziness


def test_empty_missing_and_unreadable_folders_are_one_sentence(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("x")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.nii.gz").write_bytes(b"not a NIfTI file")
    np.save(bad / "nan.npy", np.full((3, 4, 4), np.nan, np.float32))
    for folder, problem in ((tmp_path / "empty", "holds no scans"),
                            (tmp_path / "nowhere", "is not a folder: it does not exist"),
                            (tmp_path / "file", "is not a folder")):
        with pytest.raises(SourceError, match=problem) as caught:
            open_source(folder, option="--real")
        assert str(caught.value).startswith("--real ") and "\n" not in str(caught.value)
    source = open_source(bad)
    for index, name in enumerate(["broken.nii.gz", "nan.npy"]):
        with pytest.raises(SourceError, match=r"cannot read .*; fix or remove that file\.$") \
                as caught:
            source.read(index)
        assert str(bad / name) in str(caught.value)
    with pytest.raises(SourceError, match="NaN"):
        source.read(1)


def test_volumes_are_read_one_at_a_time(tmp_path, monkeypatch, make_samples_folder):
    """Listing reads no volume; iterating reads each only when it is reached."""
    import diffusion_core.sources as sources

    folder = make_samples_folder(tmp_path / "samples", "tiny", list(_tiny_arrays(4).values()))
    reads = []
    real = sources.read_volume
    monkeypatch.setattr(sources, "read_volume", lambda path, **kw: reads.append(path) or
                        real(path, **kw))
    source = open_source(folder)
    assert reads == []
    volumes = iter(source)
    next(volumes)
    assert len(reads) == 1
    assert len(list(volumes)) == 3 and len(reads) == 4
