"""The PREP_DIR format and the prepare run: manifest, deterministic split, output names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine, write_nifti
from diffusion_core.prepared import (
    MANIFEST_NAME,
    Manifest,
    PreparedError,
    PrepareSummary,
    SkippedScan,
    check_array,
    content_hash,
    find_manifest,
    load_array,
    load_manifest,
    output_stem,
    prepare_folder,
    scan_stem,
    split_arrays,
)
from diffusion_core.presets import get_preset


def _names(folder: Path, split: str, **kwargs) -> list[str]:
    """The array names of one split."""
    return [name for name, _ in split_arrays(load_manifest(folder), split, **kwargs)]


# --------------------------------------------------------------------------- manifest


def test_a_manifest_records_the_preset_and_reads_back_the_same(tmp_path, make_prep_dir):
    """Preset name, pipeline and hash, geometry, scans and skipped files survive save/load."""
    folder = make_prep_dir(tmp_path / "prep", ["a", "b"], halves=True)
    manifest = load_manifest(folder)
    manifest.skipped.append(SkippedScan(source="c.nii.gz", reason="c.nii.gz is truncated"))
    manifest.save(folder)
    again = load_manifest(folder)
    assert again == manifest
    assert (again.preset, again.modality, again.shape, again.spacing, again.hu_window) == (
        "tiny", "MR", [8, 16, 16], [4.0, 4.0, 4.0], None)
    assert again.pipeline_hash == get_preset("tiny").pipeline_hash
    assert [step["step"] for step in again.pipeline] == ["Resize", "MinMax"]
    assert again.array_sources() == [("a_right.npy", "a"), ("a_left.npy", "a"),
                                     ("b_right.npy", "b"), ("b_left.npy", "b")]
    data = json.loads((folder / MANIFEST_NAME).read_text())
    assert (data["format"], data["format_version"]) == ("mdiff-prepared", 1)
    assert not list(folder.glob("*.tmp"))


def test_the_lidc_manifest_records_its_hu_window(tmp_path):
    """A CT preset's manifest says which HU window [-1, 1] stands for."""
    manifest = Manifest.for_preset(get_preset("lidc"), tmp_path / "raw", None)
    assert (manifest.modality, manifest.hu_window) == ("CT", [-1000.0, 400.0])


@pytest.mark.parametrize(("content", "problem"), [
    (None, "has no manifest.json; prepare the data first"),
    ("{ not json", "cannot be read as JSON"),
    ('{"format": "something-else"}', "is not an mdiff-prepare manifest"),
    ('{"format": "mdiff-prepared", "format_version": 2}', "manifest version 2"),
    ('{"format": "mdiff-prepared", "format_version": 1, "preset": "tiny"}', "damaged manifest"),
])
def test_load_manifest_refuses_what_is_not_a_readable_manifest(content, problem, tmp_path):
    """Missing, not JSON, another tool's, another version, fields missing: one PreparedError."""
    if content is not None:
        (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(PreparedError, match=problem):
        load_manifest(tmp_path)


def test_find_manifest_tells_a_prep_dir_from_other_folders(tmp_path, make_prep_dir):
    """A PREP_DIR gives its manifest; no manifest or another tool's gives None; a damaged one
    of ours is an error."""
    folder = make_prep_dir(tmp_path / "prep", ["a"])
    assert find_manifest(folder) == load_manifest(folder)
    assert find_manifest(tmp_path) is None
    (tmp_path / MANIFEST_NAME).write_text('{"files": ["a.npy"]}')
    assert find_manifest(tmp_path) is None
    (tmp_path / MANIFEST_NAME).write_text('{"format": "mdiff-prepared", "format_version": 7}')
    with pytest.raises(PreparedError, match="manifest version 7"):
        find_manifest(tmp_path)


# --------------------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_covers_everything(tmp_path, make_prep_dir):
    """Same arguments, same split; train and val share nothing and together are all."""
    folder = make_prep_dir(tmp_path / "prep", [f"case{i:03d}" for i in range(200)])
    train, val = _names(folder, "train"), _names(folder, "val")
    assert train == _names(folder, "train") and val == _names(folder, "val")
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(_names(folder, "all"))
    assert 8 <= len(val) <= 34  # about val_fraction = 0.1 of 200
    assert _names(folder, "val", seed=1) != val


def test_adding_scans_moves_none_of_the_others(tmp_path, make_prep_dir):
    """The split hashes each source, so new scans leave the old assignments alone."""
    before = _names(make_prep_dir(tmp_path / "a", [f"case{i:03d}" for i in range(100)]), "val")
    after = _names(make_prep_dir(tmp_path / "b", [f"case{i:03d}" for i in range(150)]), "val")
    assert set(before) <= set(after)
    assert not {name for name in after if int(name[4:7]) < 100} - set(before)


def test_both_halves_of_a_scan_share_a_split(tmp_path, make_prep_dir):
    """DUKE's right and left breast of one patient never straddle train and validation."""
    folder = make_prep_dir(tmp_path / "prep", [f"case{i:02d}" for i in range(60)], halves=True)
    val = _names(folder, "val")
    assert val and len(val) % 2 == 0
    for name in val:
        partner = name.replace("_right", "_left") if "_right" in name else name.replace(
            "_left", "_right")
        assert partner in val


def test_a_small_prep_dir_still_gets_a_validation_scan(tmp_path, make_prep_dir):
    """Three scans at 10 %: the hash would often pick none, so one is held out."""
    folder = make_prep_dir(tmp_path / "prep", ["a", "b", "c"])
    assert len(_names(folder, "val")) == 1
    assert len(_names(folder, "train")) == 2
    assert _names(folder, "val", val_fraction=0.0) == []


def test_a_bad_split_request_is_refused(tmp_path, make_prep_dir):
    """An unknown split name or a fraction outside [0, 1) is a ValueError."""
    manifest = load_manifest(make_prep_dir(tmp_path / "prep", ["a", "b"]))
    with pytest.raises(ValueError, match="split is one of"):
        split_arrays(manifest, "test")
    with pytest.raises(ValueError, match="val_fraction"):
        split_arrays(manifest, "val", val_fraction=1.0)


# --------------------------------------------------------------------------- the prepare run


def test_output_names_come_from_the_relative_path(tmp_path):
    """a/b c.nii.gz -> a__b_c; a series folder keeps its name; stems drop scan suffixes."""
    raw = tmp_path / "raw"
    assert output_stem(raw / "a" / "b c.nii.gz", raw) == "a__b_c"
    assert output_stem(raw / "series1", raw) == "series1"
    assert output_stem(raw, raw) == "raw"
    assert scan_stem(Path("x.NII.GZ")) == "x" and scan_stem(Path("exam.npy")) == "exam"


def test_prepare_folder_writes_the_preset_arrays_and_resumes(tmp_path):
    """Each scan becomes preset.preprocess's array; a second run only counts them as done;
    two sources with one stem get distinct names."""
    raw, out = tmp_path / "raw", tmp_path / "prep"
    rng = np.random.default_rng(2)
    volumes = {}
    for name in ("a.nii.gz", "a.nii", "sub/b.nii.gz"):
        volume = Volume(rng.uniform(0, 100, (10, 20, 18)).astype(np.float32), (2.0, 2.0, 2.0),
                        canonical_affine((2.0, 2.0, 2.0)), "MR")
        write_nifti(volume, raw / name)
        volumes[name] = volume
    done = prepare_folder(get_preset("tiny"), raw, out, progress=False)
    assert (done.prepared, done.skipped, done.already_done, done.arrays) == (3, 0, 0, 3)
    names = {source: name for name, source in load_manifest(out).array_sources()}
    assert names["sub/b.nii.gz"] == "sub__b.npy"
    assert len({names["a.nii"], names["a.nii.gz"]}) == 2
    for source, volume in volumes.items():
        expected = get_preset("tiny").preprocess(volume)[0]
        np.testing.assert_array_equal(np.load(out / names[source]), expected)
    again = prepare_folder(get_preset("tiny"), raw, out, progress=False)
    assert (again.prepared, again.already_done, again.arrays) == (0, 3, 3)


def test_a_summary_line_points_at_the_skipped_reasons():
    """The line names the manifest only when something was skipped."""
    clean = PrepareSummary(preset="tiny", out_dir="prep", prepared=2, arrays=2)
    assert clean.line() == "prepared 2, skipped 0, already done 0; 2 arrays in prep"
    skipped = PrepareSummary(preset="tiny", out_dir="prep", prepared=1, skipped=1, arrays=1)
    assert f"skipped 1 (see {Path('prep') / MANIFEST_NAME})" in skipped.line()


# --------------------------------------------------------------------------- arrays and content


@pytest.mark.parametrize(("array", "problem"), [
    (np.full((8, 16, 16), np.nan, np.float32), "holds NaN or infinite values"),
    (np.full((8, 16, 16), -np.inf, np.float32), "holds NaN or infinite values"),
    (np.linspace(-1000, 1000, 8 * 16 * 16, dtype=np.float32).reshape(8, 16, 16),
     "holds values from -1000 to 1000, outside the prepared range [-1, 1]"),
    (np.zeros((16, 16, 8), np.float32), "has shape (16, 16, 8), not the (8, 16, 16)"),
    (np.zeros((8, 16, 16), np.complex64), "holds complex64 values"),
])
def test_a_bad_prep_dir_array_is_one_sentence_naming_the_file(array, problem, tmp_path):
    path = tmp_path / "scan.npy"
    np.save(path, array)
    with pytest.raises(PreparedError) as caught:
        load_array(path, (8, 16, 16))
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message
    assert message.endswith("run mdiff-prepare again") and message.count(";") == 1


def test_prepared_arrays_pass_within_rounding_and_come_back_as_float32(tmp_path):
    """The range allows float rounding (1e-3) beyond [-1, 1]; nothing more."""
    array = np.linspace(-1.0005, 1.0005, 8 * 16 * 16).reshape(8, 16, 16)
    checked = check_array(array, "a.npy", [8, 16, 16])
    assert checked.dtype == np.float32 and np.array_equal(checked, array.astype(np.float32))
    with pytest.raises(PreparedError, match="from -1.0005 to 1.002, outside"):
        check_array(np.where(array > 1, 1.002, array), "a.npy", (8, 16, 16))
    np.save(tmp_path / "cut.npy", np.zeros((8, 16, 16), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:200])
    with pytest.raises(PreparedError, match="cut.npy .listed in manifest.json. cannot be read"):
        load_array(tmp_path / "cut.npy", (8, 16, 16))


def test_what_mdiff_prepare_writes_passes_the_check(tmp_path, ct_phantom):
    """The pipeline ends in an exact [-1, 1] clip, so its arrays never trip the range check."""
    raw = tmp_path / "raw"
    write_nifti(ct_phantom, raw / "phantom.nii.gz")
    prepare_folder(get_preset("lidc"), raw, tmp_path / "prep", progress=False)
    manifest = load_manifest(tmp_path / "prep")
    for name, _source in manifest.array_sources():
        array = load_array(tmp_path / "prep" / name, manifest.shape)
        assert -1.0 <= array.min() < array.max() <= 1.0
    assert len(content_hash(tmp_path / "prep")) == 64


def test_the_content_hash_follows_the_data_not_the_folder(tmp_path, make_prep_dir):
    """Equal for a copy elsewhere and for another manifest order; different for one changed
    value, a renamed array or another source; PreparedError for a bad array."""
    import shutil

    original = make_prep_dir(tmp_path / "a", ["s1", "s2", "s3"])
    digest = content_hash(original)
    copy = shutil.copytree(original, tmp_path / "elsewhere" / "copy")
    assert content_hash(copy) == digest
    manifest = load_manifest(copy)
    manifest.scans.reverse()
    manifest.save(copy)
    assert content_hash(copy) == digest
    changed = shutil.copytree(original, tmp_path / "changed")
    array = np.load(changed / "s2.npy")
    array[3, 4, 5] = np.nextafter(array[3, 4, 5], np.float32(2))
    np.save(changed / "s2.npy", array)
    assert content_hash(changed) != digest
    renamed = shutil.copytree(original, tmp_path / "renamed")
    manifest = load_manifest(renamed)
    manifest.scans[0].source = "other.nii.gz"
    manifest.save(renamed)
    assert content_hash(renamed) != digest
    array[0, 0, 0] = np.nan
    np.save(changed / "s2.npy", array)
    with pytest.raises(PreparedError, match="s2.npy holds NaN"):
        content_hash(changed)
    (changed / "s2.npy").unlink()
    with pytest.raises(PreparedError, match="s2.npy .listed in manifest.json. cannot be read"):
        content_hash(changed)
