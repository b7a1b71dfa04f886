"""`mdiff-study create` and its inputs: what is skipped (with a note), what is refused, the
dataset name, `--json`, and what a killed create leaves and the next one clears."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

import studies.staging as staging
from diffusion_core.io import Volume, canonical_affine, write_dicom_series
from evaluation.cli.eval import main as eval_main
from studies.case_file import read_case
from studies.cli.study import main
from studies.create import create_study
from studies.ratings import RatingStore
from studies.study import Study

ROOT = Path(__file__).resolve().parents[2]


def _create(out: Path, *args: str) -> int:
    return main(["create", "--out", str(out), *args])


def _key_rows(out: Path) -> list[dict[str, str]]:
    with open(Path(str(out) + ".key.csv"), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- refused folders


@pytest.mark.parametrize("layout", ["same", "synthetic inside real", "real inside synthetic"])
def test_one_folder_as_real_and_synthetic_is_refused(tmp_path, capsys, layout, float_volumes):
    real = float_volumes(tmp_path / "scans", 3, seed=0)
    synthetic = {"same": real, "synthetic inside real": float_volumes(real / "fake", 2, seed=0),
                 "real inside synthetic": tmp_path}[layout]
    out = tmp_path / "study"
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic),
                   "--modality", "MR") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("same folder" in err[0] if layout == "same" else
                              "lies inside the" in err[0])
    assert not out.exists()


# ------------------------------------------------------------------------- skipped inputs


def test_a_constant_volume_is_skipped_and_the_next_candidate_takes_its_place(tmp_path,
                                                                            float_volumes):
    real = float_volumes(tmp_path / "real", 3, seed=0)
    synthetic = float_volumes(tmp_path / "synthetic", 3, seed=1)
    nib.save(nib.Nifti1Image(np.zeros((8, 32, 32), np.float32), np.eye(4)),
             real / "blank.nii.gz")
    notes: list[str] = []
    made = create_study(tmp_path / "study", real=real, synthetic=synthetic, n_real=3,
                        modality="MR", seed=0, note=notes.append)
    assert (made.n_real, made.n_synthetic) == (3, 3)
    assert {Path(r["origin"]).name for r in _key_rows(made.folder) if r["source"] == "real"} \
        == {"v0.nii.gz", "v1.nii.gz", "v2.nii.gz"}
    # Seed 0 picks blank.nii.gz among its first three real candidates: v2 takes its place.
    (note,) = notes
    assert note.endswith("blank.nii.gz: every voxel is 0, a constant volume with no image")
    notes.clear()
    made = create_study(tmp_path / "all", real=real, synthetic=synthetic, modality="MR",
                        note=notes.append)
    assert made.n_real == 3 and made.notes == tuple(notes) == (
        f"skipped {real / 'blank.nii.gz'}: every voxel is 0, a constant volume with no image",)


def test_too_few_usable_volumes_for_the_count_asked_is_one_sentence(tmp_path, capsys,
                                                                     float_volumes):
    real = float_volumes(tmp_path / "real", 2, seed=0)
    nib.save(nib.Nifti1Image(np.zeros((8, 32, 32), np.float32), np.eye(4)), real / "z.nii.gz")
    out = tmp_path / "study"
    assert _create(out, "--real", str(real), "--n-real", "3", "--modality", "MR") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith("a constant volume with no image")
    assert err[-1].startswith("mdiff-study: Only 2 of the 3 real volumes asked with --n-real "
                              "could be used")
    assert not out.exists() and not list(tmp_path.glob(".study.partial-*"))


def test_dicom_that_is_no_ct_or_mr_scan_never_becomes_a_case(tmp_path, ct_inputs, capsys):
    """A segmentation, an RT dose and a palette-colour ultrasound among real CT scans: each is
    skipped with its modality named, and the study holds only the CT scans."""
    real = tmp_path / "real"
    shutil.copytree(ct_inputs["real"], real)
    for name in ("liver.dcm", "rtdose.dcm", "examples_palette.dcm"):
        shutil.copy(get_testdata_file(name, download=False), real / name)
    out = tmp_path / "study"
    assert _create(out, "--real", str(real), "--synthetic", str(ct_inputs["synthetic"]),
                   "--modality", "CT", "--json") == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["n_real"] == 4 and report["n_synthetic"] == 4
    assert sorted(note.split(" is a DICOM ")[1] for note in report["notes"]) == [
        "RT Dose Storage (modality RTDOSE), not a CT or MR image",
        "Segmentation Storage (modality SEG), not a CT or MR image",
        "Ultrasound Image Storage (modality US), not a CT or MR image"]
    assert all(note in captured.err for note in report["notes"])
    assert not [r for r in _key_rows(out) if r["origin"].endswith(".dcm")]


# ---------------------------------------------------------------------- modality conflicts


def test_a_dicom_ct_under_an_mr_preset_is_refused(tmp_path, capsys):
    ct = Volume(np.full((6, 16, 16), -1000, np.int16), (2.0, 1.0, 1.0),
                canonical_affine((2.0, 1.0, 1.0)), "CT")
    ct.array[2:4, 4:12, 4:12] = 40
    write_dicom_series(ct, tmp_path / "real" / "series1")
    out = tmp_path / "study"
    assert _create(out, "--real", str(tmp_path / "real"), "--preset", "tiny") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "series1 is CT but preset 'tiny' is MR" in err[0]
    assert not out.exists()


def test_values_of_the_other_modality_are_noted(tmp_path, ct_inputs, mr_inputs):
    """Plain NIfTI records no modality: HU air under an MR preset, and uint8 MR read as CT, go
    in with a warning naming the file."""
    notes: list[str] = []
    create_study(tmp_path / "mr", real=ct_inputs["real"], preset="tiny", note=notes.append)
    assert len(notes) == 4 and all(n.startswith("warning: ") and "Hounsfield" in n
                                   for n in notes)
    notes.clear()
    create_study(tmp_path / "ct", real=mr_inputs["real"], modality="CT", note=notes.append)
    assert len(notes) == 6 and all("8-bit range" in n for n in notes)


# ---------------------------------------------------------------------------- the dataset


def test_a_study_always_has_a_dataset_name_and_its_export_can_be_evaluated(tmp_path, mr_inputs,
                                                                           capsys):
    """Without --preset and --dataset the title names the data set, without a title the study
    folder; `mdiff-eval turing` and `agreement` accept the export."""
    titled = tmp_path / "titled"
    assert _create(titled, "--real", str(mr_inputs["real"]), "--synthetic",
                   str(mr_inputs["synthetic"]), "--modality", "MR", "--title", "Knee MR",
                   "--turing") == 0
    assert Study.open(titled).dataset == "Knee MR"
    bare = tmp_path / "knee_2026"
    made = create_study(bare, real=mr_inputs["real"], modality="MR")
    assert made.dataset == Study.open(bare).dataset == "knee_2026"
    study = Study.open(titled)
    with RatingStore.open(study, "ann") as store:
        for case_id in store.case_order:
            for key, value in (("realistic_appearance", "C"), ("slice_consistency", "B"),
                               ("anatomical_correctness", "D"), ("real_or_synthetic", "R"),
                               ("confidence", "3")):
                store.record_answer(case_id, key, value, 4.0)
    export = tmp_path / "ratings.csv"
    assert main(["export", str(titled), "--out", str(export), "--key",
                 str(titled) + ".key.csv"]) == 0
    capsys.readouterr()
    assert eval_main(["turing", str(export), "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["datasets"]) == ["Knee MR"]
    assert eval_main(["agreement", str(export), "--json"]) == 0


def test_an_older_study_without_a_dataset_exports_its_title(tmp_path, study_folder):
    manifest = json.loads((study_folder / "study.json").read_text())
    manifest["dataset"] = ""
    (study_folder / "study.json").write_text(json.dumps(manifest))
    study = Study.open(study_folder)
    with RatingStore.open(study, "ann") as store:
        for key in ("realistic_appearance", "slice_consistency", "anatomical_correctness"):
            store.record_answer(store.case_order[0], key, "A", 1.0)
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study_folder), "--out", str(out)]) == 0
    with open(out, newline="") as handle:
        assert {row["dataset"] for row in csv.DictReader(handle)} == {"Test study"}


# ------------------------------------------------------------------------ a killed create


def test_a_killed_create_leaves_shuffled_staging_that_the_next_create_clears(tmp_path,
                                                                          mr_inputs, capsys):
    """SIGKILL mid-staging: the staging folder holds randomly named cases staged in a random
    order (nothing says which is real); the next create of that study removes it, and says so,
    while a build another create still holds is left alone."""
    out = tmp_path / "study"
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        import studies.create as create
        import studies.staging as staging
        staged = []
        encode = staging.encode_case
        def slow(values, grid, modality):
            staged.append(1)
            if len(staged) == 6:
                print("staged", flush=True)
                time.sleep(60)
            return encode(values, grid, modality)
        staging.encode_case = slow
        create.create_study({str(out)!r}, real={str(mr_inputs['real'])!r},
                            synthetic={str(mr_inputs['synthetic'])!r}, modality="MR")
    """)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        text=True)
    try:
        assert child.stdout.readline().strip() == "staged"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (stale,) = tmp_path.glob(".study.partial-*")
    staged = sorted((stale / ".staging").iterdir())
    assert len(staged) == 5 and all(len(p.name) == len("0123456789abcdef.nii") for p in staged)
    busy = tmp_path / ".study.partial-0000beef"
    busy.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, time
        descriptor = os.open({str(busy)!r}, os.O_RDONLY)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        print("held", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert _create(out, "--real", str(mr_inputs["real"]), "--synthetic",
                       str(mr_inputs["synthetic"]), "--modality", "MR") == 0
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert f"removed {stale}, the build folder of a create of this study that was stopped" in err
    assert not stale.exists() and busy.is_dir() and Study.open(out)


def test_inputs_are_staged_in_a_random_order(mr_inputs, tmp_path, monkeypatch):
    """Across creates the order in which real and synthetic inputs are staged changes."""
    orders = set()
    encode = staging.encode_case
    staged: list[float] = []
    monkeypatch.setattr(staging, "encode_case",
                        lambda values, grid, modality: staged.append(float(values.mean()))
                        or encode(values, grid, modality))
    for attempt in range(6):
        staged.clear()
        made = create_study(tmp_path / f"s{attempt}", real=mr_inputs["real"],
                            synthetic=mr_inputs["synthetic"], modality="MR", seed=1)
        study = Study.open(made.folder)
        means = {float(read_case(study.case_path(r["case_id"])).array.mean()): r["source"]
                 for r in _key_rows(made.folder)}
        orders.add(tuple(means[m] for m in staged))
    assert len(orders) > 1 and ("real",) * 6 + ("synthetic",) * 6 not in orders


def test_a_ct_that_the_value_scale_makes_constant_is_skipped(tmp_path):
    """Without a preset CT is clipped to [-1024, 3071] HU: a volume wholly above it is
    constant by then, and skipped with that reason."""
    folder = tmp_path / "ct"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        nib.save(nib.Nifti1Image(rng.uniform(-1000, 400, (8, 16, 16)).astype(np.float32),
                                 np.eye(4)), folder / f"ct{i}.nii.gz")
    nib.save(nib.Nifti1Image(rng.uniform(4000, 5000, (8, 16, 16)).astype(np.float32),
                             np.eye(4)), folder / "metal.nii.gz")
    made = create_study(tmp_path / "study", real=folder, modality="CT")
    assert made.n_real == 2
    assert made.notes == (f"skipped {folder / 'metal.nii.gz'}: the CT value scale makes it a "
                          "constant volume",)
