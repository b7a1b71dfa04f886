"""`mdiff-study audit`: passes on a created study and catches each planted leak, one per check."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from studies.audit import audit_folder
from studies.case_file import encode_case, padding_member, read_case
from studies.cli.study import main
from studies.normalise import Grid
from studies.study import Study


@pytest.fixture
def created(mr_inputs, tmp_path) -> tuple[Path, Path]:
    """A fresh study of 6 real and 6 synthetic MR cases, and its key."""
    out = tmp_path / "study"
    assert main(["create", "--out", str(out), "--synthetic", str(mr_inputs["synthetic"]),
                 "--real", str(mr_inputs["real"]), "--modality", "MR"]) == 0
    return out, Path(str(out) + ".key.csv")


def _sources(key: Path) -> dict[str, str]:
    with open(key, newline="") as handle:
        return {row["case_id"]: row["source"] for row in csv.DictReader(handle)}


def _reals(created) -> list[Path]:
    study, key = created
    sources = _sources(key)
    return [study / "cases" / f"{c}.nii.gz" for c, s in sources.items() if s == "real"]


def _check(created, name: str):
    results = {r.name: r for r in audit_folder(*created)}
    return results[name]


def _rewrite(path: Path, data: bytes, same_size: bool = True) -> None:
    """Replace a case file's bytes in place (same inode), keeping its times and, if asked, size."""
    stat = path.stat()
    if same_size:
        assert len(data) + 21 <= stat.st_size
        data += padding_member(stat.st_size - len(data))
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _grid(created) -> Grid:
    study = Study.open(created[0])
    return Grid(study.shape, study.spacing)


def test_audit_passes_on_a_created_study(created, capsys):
    results = audit_folder(*created)
    assert [r.name for r in results] == [
        "file names", "list order", "file order", "modification times", "header fields",
        "dtype", "distinct values", "value range", "compressed size"]
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert main(["audit", str(created[0]), "--key", str(created[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_file_names_that_sort_by_source_fail(created):
    study, key = created
    sources = _sources(key)
    renamed, counters = {}, {"real": 0, "synthetic": 0}
    for case_id, source in sources.items():
        prefix = "0000000" if source == "real" else "fffffff"
        renamed[case_id] = f"{prefix}{counters[source]:x}"
        counters[source] += 1
        os.rename(study / "cases" / f"{case_id}.nii.gz",
                  study / "cases" / f"{renamed[case_id]}.nii.gz")
    manifest = json.loads((study / "study.json").read_text())
    manifest["cases"] = [renamed[c] for c in manifest["cases"]]
    (study / "study.json").write_text(json.dumps(manifest))
    text = key.read_text()
    for old, new in renamed.items():
        text = text.replace(old, new)
    key.write_text(text)
    result = _check(created, "file names")
    assert not result.passed and "alphabetical order" in result.reason


def test_list_order_by_source_fails(created):
    study, key = created
    sources = _sources(key)
    manifest = json.loads((study / "study.json").read_text())
    manifest["cases"] = sorted(manifest["cases"], key=lambda c: sources[c] != "real")
    (study / "study.json").write_text(json.dumps(manifest))
    result = _check(created, "list order")
    assert not result.passed and "every synthetic case is above every real one" in result.reason


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
    result = _check(created, "file order")
    assert not result.passed and "inode" in result.reason


def test_one_modification_time_off_fails(created):
    real = _reals(created)[0]
    os.utime(real, (real.stat().st_mtime + 60, real.stat().st_mtime + 60))
    result = _check(created, "modification times")
    assert not result.passed and "2 different modification times" in result.reason


def test_change_times_in_source_order_fail(created):
    study, key = created
    sources = _sources(key)
    stamp = next((study / "cases").iterdir()).stat().st_mtime
    for wanted in ("real", "synthetic"):
        for case_id, source in sources.items():
            if source == wanted:
                os.utime(study / "cases" / f"{case_id}.nii.gz", (stamp, stamp))
        time.sleep(0.05)  # let the ctime clock tick between the groups
    result = _check(created, "modification times")
    assert not result.passed and "change time" in result.reason


def test_a_changed_nifti_header_field_fails(created):
    real = _reals(created)[0]
    image = nib.Nifti1Image.from_bytes(gzip.decompress(real.read_bytes()))
    image.header["descrip"] = b"Siemens Avanto"
    _rewrite(real, gzip.compress(image.to_bytes(), compresslevel=6, mtime=0))
    result = _check(created, "header fields")
    assert not result.passed
    assert result.reason == "the NIfTI header of 1 case differs from the others in descrip"


def test_a_gzip_header_with_a_file_name_fails(created):
    real = _reals(created)[0]
    raw = gzip.decompress(real.read_bytes())
    buffer = io.BytesIO()
    with gzip.GzipFile("patient_07.nii", "wb", 6, fileobj=buffer, mtime=0) as handle:
        handle.write(raw)
    _rewrite(real, buffer.getvalue())
    result = _check(created, "header fields")
    assert not result.passed and result.reason.startswith("the gzip header (file name")


def test_another_dtype_fails(created):
    for real in _reals(created):
        stored = read_case(real)
        image = nib.Nifti1Image(stored.array.astype(np.float32), _grid(created).affine)
        _rewrite(real, gzip.compress(image.to_bytes(), mtime=0), same_size=False)
    result = _check(created, "dtype")
    assert not result.passed and "float32 (6 cases)" in result.reason


def test_few_distinct_values_fail(created):
    for real in _reals(created):
        coarse = (read_case(real).array // 64 * 64).astype(np.int16)  # 64 levels, same range
        _rewrite(real, encode_case(coarse, _grid(created), "MR"))
    results = {r.name: r for r in audit_folder(*created)}
    assert not results["distinct values"].passed
    assert results["header fields"].passed and results["value range"].passed


def test_another_value_range_fails(created):
    for real in _reals(created):
        halved = (read_case(real).array // 2).astype(np.int16)
        _rewrite(real, encode_case(halved, _grid(created), "MR"))
    result = _check(created, "value range")
    assert not result.passed and "maximum" in result.reason


def test_larger_files_fail_compressed_size(created):
    for real in _reals(created):
        stat = real.stat()
        with open(real, "ab") as handle:
            handle.write(padding_member(8192))
        os.utime(real, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    result = _check(created, "compressed size")
    assert not result.passed and "file size" in result.reason


def test_audit_cli_fails_with_exit_1_and_a_wrong_key_exits_2(created, capsys, tmp_path):
    study, key = created
    os.utime(_reals(created)[0], (0, 0))
    assert main(["audit", str(study), "--key", str(key)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  modification times" in out and "Audit failed: 1 of 9 checks" in out
    other = tmp_path / "other.csv"
    other.write_text("case_id,source,origin,model,seed\n0123abcd,real,x,,\n")
    assert main(["audit", str(study), "--key", str(other)]) == 2
    err = capsys.readouterr().err
    assert "does not belong to the study" in err and err.count("\n") == 1


def test_an_unreadable_case_file_is_one_sentence_naming_it(created, capsys):
    real = _reals(created)[0]
    real.write_bytes(b"\x1f\x8b not a case any more")
    assert main(["audit", str(created[0]), "--key", str(created[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(real) in err and "restore the case file" in err
