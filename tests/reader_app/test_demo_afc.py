"""`mdiff-demo --design 2afc` headless: a paired study from the bundled model and the held-out
scans, beside the single-reading demo, with a screenshot of the app."""

from __future__ import annotations

import csv
import os

from reader_app.cli.demo import main
from studies.cli.study import main as study_main
from studies.study import Study

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_the_paired_demo_builds_trials_of_a_held_out_scan_and_a_sample(tmp_path, monkeypatch,
                                                                         capsys):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--design", "2afc", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    png = out / "screenshot-2afc.png"
    assert "no display" in said and str(png) in said
    assert png.is_file() and png.stat().st_size > 10_000
    study = Study.open(out / "study-2afc")
    assert study.design == "2afc" and len(study.trial_ids) == 9 and len(study.case_ids) == 18
    assert study.practice_ids == ["P01"] and study.practice_file_ids == ["P01a", "P01b"]
    with open(out / "study-2afc.key.csv", newline="") as handle:
        rows = {r["case_id"]: r for r in csv.DictReader(handle)}
    for trial in study.trials.values():
        sources = sorted(rows[c]["source"] for c in (trial.left, trial.right))
        assert sources == ["real", "synthetic"]
        assert {rows[c]["model"] for c in (trial.left, trial.right)} == {"", "demo"}
    assert sorted(rows[c]["source"] for c in ("P01a", "P01b")) == ["real", "synthetic"]
    assert not (out / "study").exists()  # the single-reading demo's folder is its own
    assert len(list((out / "samples-2afc").glob("*.nii.gz"))) == 10
    # The blinding bar of the single-reading demo, and the trials' own checks.
    code = study_main(["audit", str(out / "study-2afc"), "--key",
                       str(out / "study-2afc.key.csv")])
    said = capsys.readouterr().out
    assert "9 real and 9 synthetic cases (and 2 practice cases)" in said
    assert "PASS  trial pairs" in said and "PASS  side balance" in said
    assert code == 0, said
    before = (out / "study-2afc" / "study.json").read_text()
    assert main(["--out", str(out), "--design", "2afc", "--device", "cpu"]) == 0
    assert (out / "study-2afc" / "study.json").read_text() == before
