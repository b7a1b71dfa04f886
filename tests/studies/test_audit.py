"""`mdiff-study audit`: a test per feature. A created study passes; each planted leak fails."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from studies.audit import audit_folder
from studies.audit_advice import CHECK_ADVICE, FEATURE_ADVICE, advice_for
from studies.case_file import encode_case, nifti_image, read_case
from studies.cli.study import main
from studies.normalise import Grid
from studies.practice_audit import PAIRING
from studies.study import Study

FILE_FEATURES = [
    "file size (bytes)", "NIfTI header (variant)", "stored data type (variant)",
    "modification time (s)", "list position in study.json", "file name (alphabetical order)",
    "inode number (creation order)", "directory listing order", "access time (s)",
    "change time (s)"]
VALUE_FEATURES = [
    "distinct values", "minimum", "maximum", "fraction at the minimum",
    "fraction at the maximum", "longest run of unused values", "fraction of even values",
    "background noise level"]


@pytest.fixture
def created(mr_inputs, tmp_path) -> tuple[Path, Path]:
    """A fresh study of 6 real (uint8) and 6 synthetic (float32) MR cases, and its key."""
    out = tmp_path / "study"
    assert main(["create", "--out", str(out), "--synthetic", str(mr_inputs["synthetic"]),
                 "--real", str(mr_inputs["real"]), "--modality", "MR", "--seed", "3"]) == 0
    return out, Path(str(out) + ".key.csv")


def _sources(key: Path) -> dict[str, str]:
    with open(key, newline="") as handle:
        return {row["case_id"]: row["source"] for row in csv.DictReader(handle)}


def _paths(created, source: str = "real") -> list[Path]:
    study = Study.open(created[0])
    return [study.case_path(c) for c, s in _sources(created[1]).items() if s == source]


def _grid(created) -> Grid:
    study = Study.open(created[0])
    return Grid(study.shape, study.spacing)


def _rewrite(path: Path, data: bytes) -> None:
    """Replace a case file's bytes in place (same inode), keeping its times."""
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _change_reals(created, change: Callable[[np.ndarray, np.random.Generator], np.ndarray]):
    """Rewrite every real case with `change(array, rng)` of its values, header untouched."""
    rng = np.random.default_rng(0)
    for path in _paths(created):
        array = change(read_case(path).array.astype(np.int64), rng)
        _rewrite(path, encode_case(np.clip(array, 0, 4095).astype(np.int16), _grid(created),
                                   "MR"))


def _failed(created, feature: str) -> str:
    """The audit's reason for failing `feature` (the test fails when it passed)."""
    audit = audit_folder(*created)
    result = audit.feature(feature)
    assert not result.passed and not audit.passed, f"{feature} passed: {result}"
    return result.reason


def test_audit_passes_on_a_created_study(created, capsys):
    audit = audit_folder(*created)
    assert [c.name for c in audit.checks] == ["file names"]
    assert [f.name for f in audit.features] == FILE_FEATURES + VALUE_FEATURES
    assert audit.passed, audit.failures
    assert (audit.n_real, audit.n_synthetic) == (6, 6)
    assert audit.feature("file size (bytes)").real == (352.0 + 2 * 8 * 32 * 32,) * 6
    assert main(["audit", str(created[0]), "--key", str(created[1]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and len(report["features"]) == 18
    first = report["features"][0]
    assert set(first) == {"name", "kind", "auc", "p_value", "real", "synthetic", "passed",
                          "reason", "advice"}
    assert first["advice"] is None and report["checks"][0]["advice"] is None
    assert (first["auc"], first["p_value"]) == (0.5, 1.0)


def test_the_table_prints_one_row_per_feature(created, capsys):
    assert main(["audit", str(created[0]), "--key", str(created[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if "feature" in line and "AUC" in line)
    assert "real: median [range]" in header and header.rstrip().endswith("p")
    rows = [re.split(r"\s{2,}", line) for line in lines if line.startswith(("PASS", "FAIL"))]
    assert [row[1] for row in rows[1:]] == FILE_FEATURES + VALUE_FEATURES
    assert all(row[0] == "PASS" for row in rows)
    # verdict, feature, kind, real, synthetic, AUC, p
    assert rows[1][2:] == ["file", "16736", "16736", "0.50", "1.000"]
    assert lines[-1].startswith("Audit passed")


# ----------------------------------------------------------------------------- file level


def test_larger_real_files_fail_file_size(created):
    for path in _paths(created):
        _rewrite(path, path.read_bytes() + b"\0" * 512)
    assert "every synthetic case is lower" in _failed(created, "file size (bytes)")


def test_a_changed_nifti_header_field_fails(created):
    path = _paths(created)[0]
    image = nib.Nifti1Image.from_bytes(path.read_bytes())
    image.header["descrip"] = b"Siemens Avanto"
    _rewrite(path, image.to_bytes())
    reason = _failed(created, "NIfTI header (variant)")
    assert reason == ("must be the same in every case, but has 2 variants: one in 1 real case, "
                      "one in 5 real and 6 synthetic cases")


def test_another_dtype_fails(created):
    for path in _paths(created):
        image = nib.Nifti1Image(read_case(path).array.astype(np.float32), _grid(created).affine)
        _rewrite(path, image.to_bytes())
    assert _failed(created, "stored data type (variant)").endswith(
        "has 2 variants: one in 6 real cases, one in 6 synthetic cases")


def test_one_modification_time_off_fails(created):
    path = _paths(created)[0]
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 60))
    assert _failed(created, "modification time (s)").endswith(
        "has 2 variants: one in 1 real case, one in 5 real and 6 synthetic cases")


def test_list_order_by_source_fails(created):
    study, key = created
    sources = _sources(key)
    manifest = json.loads((study / "study.json").read_text())
    manifest["cases"] = sorted(manifest["cases"], key=lambda c: sources[c] != "real")
    (study / "study.json").write_text(json.dumps(manifest))
    assert "every synthetic case is higher" in _failed(created, "list position in study.json")


def test_file_names_that_sort_by_source_fail(created):
    study, key = created
    sources = _sources(key)
    renamed, counters = {}, {"real": 0, "synthetic": 0}
    for case_id, source in sources.items():
        prefix = "0000000" if source == "real" else "fffffff"
        renamed[case_id] = f"{prefix}{counters[source]:x}"
        counters[source] += 1
        os.rename(study / "cases" / f"{case_id}.nii", study / "cases" / f"{renamed[case_id]}.nii")
    manifest = json.loads((study / "study.json").read_text())
    manifest["cases"] = [renamed[c] for c in manifest["cases"]]
    (study / "study.json").write_text(json.dumps(manifest))
    text = key.read_text()
    for old, new in renamed.items():
        text = text.replace(old, new)
    key.write_text(text)
    assert "every synthetic case is higher" in _failed(created, "file name (alphabetical order)")


def test_files_written_real_first_fail_file_order(created):
    study, key = created
    sources = _sources(key)
    paths = sorted((study / "cases").iterdir(), key=lambda p: sources[p.name[:8]] != "real")
    contents = {p: (p.read_bytes(), p.stat()) for p in paths}
    real = [p for p in paths if sources[p.name[:8]] == "real"]
    synthetic = [p for p in paths if sources[p.name[:8]] != "real"]
    for _ in range(10):
        for path in paths:
            path.unlink()
        for path in paths:  # new inodes, in source order, with the old times
            path.write_bytes(contents[path][0])
            os.utime(path, ns=(contents[path][1].st_atime_ns, contents[path][1].st_mtime_ns))
        # The file system usually numbers new inodes in creation order, but a file freed
        # meanwhile by another process can hand out a lower number: plant the leak again then.
        if max(p.stat().st_ino for p in real) < min(p.stat().st_ino for p in synthetic):
            break
    else:
        pytest.fail("could not plant an inode order that separates real from synthetic")
    assert "every synthetic case is higher" in _failed(created, "inode number (creation order)")


def test_a_directory_listing_in_source_order_fails(created, monkeypatch):
    """The order `ls -U` shows depends on the file system; here it is made real-first."""
    study, key = created
    sources = _sources(key)
    listdir = os.listdir

    def real_first(path="."):
        names = listdir(path)
        if Path(path) == study / "cases":
            names = sorted(names, key=lambda name: sources[name[:8]] != "real")
        return names

    monkeypatch.setattr(os, "listdir", real_first)
    assert "every synthetic case is higher" in _failed(created, "directory listing order")


def test_access_times_by_source_fail(created):
    for path in _paths(created, "synthetic"):
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns + 10**9, stat.st_mtime_ns))
    assert "every synthetic case is higher" in _failed(created, "access time (s)")


def test_change_times_in_source_order_fail(created):
    stamp = _paths(created)[0].stat().st_mtime
    for source in ("real", "synthetic"):
        for path in _paths(created, source):
            os.utime(path, (stamp, stamp))
        time.sleep(0.05)  # let the ctime clock tick between the groups
    assert "every synthetic case is higher" in _failed(created, "change time (s)")


def test_a_stray_file_in_the_cases_folder_fails_the_names_check(created):
    (created[0] / "cases" / "patient_01.nii").write_bytes(b"")
    audit = audit_folder(*created)
    assert not audit.passed
    assert audit.checks[0].reason.startswith("the cases folder and study.json disagree about 1")


# ------------------------------------------------------------------------------- value sets


def test_few_distinct_values_fail(created):
    _change_reals(created, lambda a, rng: a // 16 * 16)
    assert "synthetic cases higher" in _failed(created, "distinct values")


def test_a_higher_minimum_fails(created):
    _change_reals(created, lambda a, rng: np.maximum(a, 200))
    assert "synthetic cases lower" in _failed(created, "minimum")


def test_a_lower_maximum_fails(created):
    _change_reals(created, lambda a, rng: np.minimum(a, 3500))
    assert "synthetic cases higher" in _failed(created, "maximum")


@pytest.mark.parametrize("end", ["minimum", "maximum"])
def test_more_voxels_at_an_end_fail(created, end):
    """The leak of clipping in one road only: a pile of voxels at exactly the lowest (highest)
    value."""
    def pile(a, rng):
        a[rng.random(a.shape) < 0.2] = a.min() if end == "minimum" else a.max()
        return a
    _change_reals(created, pile)
    assert "synthetic cases lower" in _failed(created, f"fraction at the {end}")


def test_a_histogram_gap_fails(created):
    """A band of values no voxel takes: what an 8-bit source leaves when stretched."""
    def gap(a, rng):
        band = (a > 1500) & (a < 1900)
        a[band] = np.where(a[band] < 1700, 1500, 1900)
        return a
    _change_reals(created, gap)
    assert "synthetic cases lower" in _failed(created, "longest run of unused values")


def test_only_even_values_fail(created):
    _change_reals(created, lambda a, rng: a - a % 2)
    assert "synthetic cases lower" in _failed(created, "fraction of even values")


def test_a_smoothed_background_fails(created):
    """A background without noise in one source, as a denoised or clean road would leave it."""
    def flatten(a, rng):
        dark = a <= np.percentile(a, 25)
        a[dark] = int(np.median(a[dark]))
        return a
    _change_reals(created, flatten)
    assert "synthetic cases higher" in _failed(created, "background noise level")


# ------------------------------------------------------------------------ version 1 studies


@pytest.fixture
def version_1_study(created, version_1) -> tuple[Path, Path]:
    """The created study as a version 1 study: gzipped cases padded to one size."""
    version_1.to_version_1(created[0])
    return created


def _regzip(created, change: Callable[[np.ndarray], bytes], source: str = "real") -> None:
    """Rewrite the cases of one source as gzip bytes made by `change(array)`, padded to the
    file's size."""
    from studies.case_file import MAX_HEADER_BLOCK  # noqa: F401  (the format is still read)

    for path in _paths(created, source):
        data = change(read_case(path).array)
        size = path.stat().st_size
        assert len(data) + 21 <= size
        padding = gzip.compress(b"", mtime=0)
        pad = bytes(padding[:3]) + b"\x10" + bytes(padding[4:10]) + \
            b" " * (size - len(data) - 21) + b"\x00" + bytes(padding[10:])
        _rewrite(path, data + pad)


def test_a_version_1_study_is_audited_with_its_gzip_members(version_1_study):
    audit = audit_folder(*version_1_study)
    names = [f.name for f in audit.features]
    assert names[:5] == ["file size (bytes)", "first gzip member (bytes)", "gzip members",
                         "gzip header (variant)", "NIfTI header (variant)"]
    assert audit.feature("gzip members").real == (2.0,) * 6
    assert audit.checks[0].passed and audit.feature("gzip header (variant)").passed


def test_compressed_sizes_that_follow_the_source_fail(version_1_study):
    """The leak of version 1 studies: the padding hides the file size, not the first member's."""
    grid = _grid(version_1_study)
    noisy = lambda a: gzip.compress(nifti_image(  # noqa: E731
        a, grid, "MR").to_bytes(), compresslevel=1, mtime=0)
    smooth = lambda a: gzip.compress(nifti_image(  # noqa: E731
        a, grid, "MR").to_bytes(), compresslevel=9, mtime=0)
    _regzip(version_1_study, noisy, "real")
    _regzip(version_1_study, smooth, "synthetic")
    assert "every synthetic case is lower" in _failed(version_1_study,
                                                      "first gzip member (bytes)")
    assert audit_folder(*version_1_study).feature("file size (bytes)").passed


def test_an_extra_gzip_member_fails(version_1_study, version_1):
    for path in _paths(version_1_study):
        data = path.read_bytes()
        # Split the padding member in two: same size, one more member.
        first = len(gzip.compress(gzip.decompress(data), compresslevel=6, mtime=0))
        rest = len(data) - first
        _rewrite(path, data[:first] + version_1.padding_member(rest - 30)
                 + version_1.padding_member(30))
    assert "every synthetic case is lower" in _failed(version_1_study, "gzip members")


def test_a_gzip_header_with_a_file_name_fails(version_1_study):
    grid = _grid(version_1_study)

    def named(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        with gzip.GzipFile("patient_07.nii", "wb", 6, fileobj=buffer, mtime=0) as handle:
            handle.write(nifti_image(array, grid, "MR").to_bytes())
        return buffer.getvalue()

    _regzip(version_1_study, named)
    assert _failed(version_1_study, "gzip header (variant)").endswith(
        "has 2 variants: one in 6 real cases, one in 6 synthetic cases")


# ------------------------------------------------------------------------------ the command


def test_audit_cli_fails_with_exit_1_and_a_wrong_key_exits_2(created, capsys, tmp_path):
    study, key = created
    path = _paths(created)[0]
    os.utime(path, (0, 0))
    assert main(["audit", str(study), "--key", str(key)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  modification time (s)" in out and "Audit failed: " in out
    other = tmp_path / "other.csv"
    other.write_text("case_id,source,origin,model,seed\n0123abcd,real,x,,\n")
    assert main(["audit", str(study), "--key", str(other)]) == 2
    err = capsys.readouterr().err
    assert "does not belong to the study" in err and err.count("\n") == 1


def test_an_unreadable_case_file_is_one_sentence_naming_it(created, capsys):
    path = _paths(created)[0]
    path.write_bytes(b"not a case any more")
    assert main(["audit", str(created[0]), "--key", str(created[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "restore the case file" in err


# ------------------------------------------------------------------------------- the advice


def test_every_feature_and_check_has_advice(created, version_1):
    names = {f.name for f in audit_folder(*created).features}
    version_1.to_version_1(created[0])
    names |= {f.name for f in audit_folder(*created).features}
    assert names == set(FEATURE_ADVICE) - {PAIRING}
    assert {"file names", "practice files", "practice sources", "practice content",
            "trial pairs", "side balance", "side orders"} == set(CHECK_ADVICE)
    for name in [*FEATURE_ADVICE, *CHECK_ADVICE]:
        advice = advice_for(name)
        assert advice.measures and advice.cause, name
        assert re.fullmatch(r"docs/[a-z-]+\.md#[a-z0-9-]+", advice.read), advice.read
        page, anchor = advice.read.split("#")
        headings = Path(__file__).parents[2].joinpath(page).read_text(encoding="utf-8")
        slugs = {re.sub(r"[^a-z0-9 -]", "", line[3:].lower()).replace(" ", "-")
                 for line in headings.splitlines() if line.startswith("## ")}
        assert anchor in slugs, f"{name}: no section #{anchor} in {page}"


def test_a_failing_audit_says_what_to_do(created, capsys):
    _change_reals(created, lambda a, rng: a // 16 * 16)
    assert main(["audit", str(created[0]), "--key", str(created[1])]) == 1
    out = " ".join(capsys.readouterr().out.split())
    advice = FEATURE_ADVICE["distinct values"]
    assert "What to do:" in out
    assert advice.line("distinct values") in out and "autoencoder's blur" in out
    assert main(["audit", str(created[0]), "--key", str(created[1]), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    rows = {f["name"]: f for f in report["features"]}
    assert rows["distinct values"]["advice"] == advice.as_dict()
    assert all((row["advice"] is None) == row["passed"] for row in rows.values())
