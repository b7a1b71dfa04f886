"""`mdiff-demo` headless: samples from the bundled model, builds the study, writes a screenshot."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from diffusion_core.registry import BUNDLED_DIR
from reader_app.cli.demo import main
from studies.cli.study import main as study_main
from studies.study import Study

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_the_demo_builds_a_blinded_study_and_a_screenshot(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))  # the bundled model needs no registry
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--n", "2", "--device", "cpu"]) == 0
    said = capsys.readouterr().out
    assert "no display" in said and "screenshot.png" in said
    png = out / "screenshot.png"
    assert png.is_file() and png.stat().st_size > 10_000
    with open(out / "study.key.csv") as handle:
        rows = list(csv.DictReader(handle))
    # The screenshot shows a synthetic study case: the model's work is what the demo is for.
    shown = re.search(r"showing a synthetic case \(study case (\w+) in the key\)", said)[1]
    assert {r["case_id"]: r["source"] for r in rows}[shown] == "synthetic"
    assert not shown.startswith("P")
    study_rows = [r for r in rows if not r["case_id"].startswith("P")]
    assert sorted(r["source"] for r in study_rows) == ["real", "real", "synthetic", "synthetic"]
    assert {r["model"] for r in rows if r["source"] == "synthetic"} == {"demo"}
    # The practice block: one real and one synthetic case, shown first, apart from the study's.
    study = Study.open(out / "study")
    assert study.practice_ids == ["P01", "P02"] and len(study.case_ids) == 4
    assert sorted(study.practice.values()) == ["real", "synthetic"]
    assert sorted((r["case_id"], r["source"]) for r in rows if r not in study_rows) == \
        sorted(study.practice.items())
    assert len(list((out / "samples").glob("*.nii.gz"))) == 3  # n + the practice block's one
    # The audit runs on it (exit 0 passes, 1 reports a leak): two cases a source are too few for
    # it to pass or fail on the images; the full demo study's audit is the test below.
    assert study_main(["audit", str(out / "study"), "--key", str(out / "study.key.csv")]) in (0, 1)
    capsys.readouterr()
    # Running it again reuses the samples and the study.
    before = (out / "study" / "study.json").read_text()
    assert main(["--out", str(out), "--n", "2", "--device", "cpu"]) == 0
    assert (out / "study" / "study.json").read_text() == before


def test_the_demo_refuses_more_cases_than_its_held_out_scans_allow(tmp_path, capsys):
    """Nine per source at most: the tenth held-out scan is the practice block's real case."""
    assert main(["--out", str(tmp_path / "demo"), "--n", "10", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "--n 10 is outside 1 to 9" in err and err.count("\n") == 1
    assert not (tmp_path / "demo").exists()  # refused before sampling anything


def test_the_default_demo_study_passes_the_blinding_audit(tmp_path, monkeypatch, capsys):
    """The blinding bar: nothing in the default demo study's files or value sets tells the real
    cases from the synthetic ones (README: the controls behind it)."""
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--device", "cpu"]) == 0
    capsys.readouterr()
    code = study_main(["audit", str(out / "study"), "--key", str(out / "study.key.csv")])
    report = capsys.readouterr().out
    assert "9 real and 9 synthetic cases" in report
    assert code == 0, report


def test_a_user_model_named_demo_is_ignored_with_a_warning(tmp_path, monkeypatch, capsys):
    """A `demo` in the user's models.json (here a damaged one) does not shadow the
    bundled model; the demo says it is ignored and runs on the bundled one."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.json").write_text(json.dumps({"format": "mdiff-models", "version": 1,
                                                  "models": {"demo": {
                                                      "name": "demo", "preset": "tiny",
                                                      "vqgan": None, "ddpm": None}}}))
    monkeypatch.setenv("MDIFF_HOME", str(home))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    out = tmp_path / "demo"
    assert main(["--out", str(out), "--n", "1", "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "mdiff-demo: warning: the model 'demo' in" in err and "is ignored" in err
    sidecar = json.loads((out / "samples" / "samples.json").read_text())
    assert sidecar["model"] == "demo" and sidecar["preset"] == "demo"
    assert Path(sidecar["ddpm"]["path"]) == BUNDLED_DIR / "demo" / "ddpm"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_says_what_each_install_step_does():
    """`make demo` on a fresh clone spends minutes installing: every pip step is announced."""
    root = Path(__file__).resolve().parents[2]
    plan = subprocess.run(["make", "-n", "-B", "-C", str(root), ".venv/.installed"], check=True,
                          capture_output=True, text=True).stdout.splitlines()
    installs = [i for i, line in enumerate(plan) if "pip install" in line]
    assert len(installs) == 3
    for i in installs:
        said = plan[i - 1]
        assert said.startswith("echo"), f"{plan[i]} is not announced"
    assert "torch" in plan[installs[1] - 1] and "mdiff[dev]" in plan[installs[2] - 1]
    demo = subprocess.run(["make", "-n", "-C", str(root), "demo"], check=True,
                          capture_output=True, text=True).stdout
    assert "echo" in demo and "mdiff-demo --out build/demo" in demo
