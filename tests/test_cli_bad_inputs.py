"""Every console command over a table of bad inputs: one sentence on stderr, exit 2, no traceback.

Each row is a mistake a user or a damaged file makes (README.md, "exit statuses"). The command
runs in this process, so an exception that escapes it is the traceback a user would have seen.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.cli.models import main as models_main
from diffusion_core.cli.prepare import main as prepare_main
from diffusion_core.cli.sample import main as sample_main
from diffusion_core.cli.train import main as train_main
from diffusion_core.io import Volume, canonical_affine, write_nifti
from evaluation.cli.eval import main as eval_main
from reader_app.cli.demo import main as demo_main
from reader_app.cli.reader import main as reader_main
from studies.cli.study import main as study_main

MAINS: dict[str, Callable] = {
    "mdiff-prepare": prepare_main, "mdiff-train": train_main, "mdiff-sample": sample_main,
    "mdiff-models": models_main, "mdiff-study": study_main, "mdiff-eval": eval_main,
    "mdiff-reader": reader_main, "mdiff-demo": demo_main,
}
TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


def _write_scans(folder: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        array = rng.uniform(0, 200, (8, 16, 16)).astype(np.float32)
        write_nifti(Volume(array, (2.0, 2.0, 2.0), canonical_affine((2.0, 2.0, 2.0)), "MR"),
                    folder / f"v{i}.nii.gz")


def _copy_prep(prep: Path, out: Path, edit: Callable[[np.ndarray], np.ndarray]) -> Path:
    """A copy of a PREP_DIR whose first array is edited."""
    shutil.copytree(prep, out)
    first = sorted(out.glob("*.npy"))[0]
    np.save(first, edit(np.load(first)))
    return out


def _study_with_seconds(study: Path, out: Path, value: object) -> Path:
    """A copy of `study` whose reader database holds `value` as the seconds of its answers."""
    shutil.copytree(study, out)
    database = next((out / "ratings").glob("*.sqlite"))
    with sqlite3.connect(database) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE "
                                               "type='table'")]
        for table in tables:
            columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
            for column in {"seconds", "seconds_on_case"} & set(columns):
                db.execute(f"UPDATE {table} SET {column} = ?", (value,))
    return out


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_model, make_rated_study) -> dict[str, Path]:
    """Good things to point commands at, and the broken ones of the table."""
    root = tmp_path_factory.mktemp("bad_inputs")
    vqgan, ddpm = tiny_model
    prep = vqgan.parent / "prep"
    a_file = root / "a_file.txt"
    a_file.write_text("not a folder\n")
    (root / "empty").mkdir()
    study, key = make_rated_study(root / "rated")
    export = root / "ratings.csv"
    assert study_main(["export", str(study), "--out", str(export), "--key", str(key)]) == 0
    # A samples folder that was interrupted: samples.json says it is not complete.
    samples = root / "samples"
    assert sample_main(["--model", str(ddpm), "--n", "2", "--out", str(samples)]) == 0
    plan = json.loads((samples / "samples.json").read_text())
    plan["complete"] = False
    (samples / "samples.json").write_text(json.dumps(plan))
    # A DDPM run folder without its run.json.
    no_run_json = root / "no_run_json"
    shutil.copytree(ddpm, no_run_json)
    (no_run_json / "run.json").unlink()
    # A registry whose entry has null paths, and one whose models.json is a folder.
    null_home, folder_home = root / "null_home", root / "folder_home"
    null_home.mkdir()
    (null_home / "models.json").write_text(json.dumps(
        {"format": "mdiff-models", "version": 1,
         "models": {"nulls": {"name": "nulls", "preset": "tiny", "vqgan": None, "ddpm": None}}}))
    (folder_home / "models.json").mkdir(parents=True)
    return {
        "root": root, "file": a_file, "empty": root / "empty", "vqgan": vqgan, "ddpm": ddpm,
        "prep": prep, "study": study, "key": key, "export": export,
        "samples": samples, "no_run_json": no_run_json, "null_home": null_home,
        "folder_home": folder_home, "demo_prep": _demo_prep(root / "demo_prep"),
        "nan_prep": _copy_prep(prep, root / "nan_prep", lambda a: np.where(a > 0, np.nan, a)),
        "huge_prep": _copy_prep(prep, root / "huge_prep", lambda a: a * 1000.0),
        "shape_prep": _copy_prep(prep, root / "shape_prep", lambda a: a[:-1]),
        "text_seconds": _study_with_seconds(study, root / "text_seconds", "soon"),
        "inf_seconds": _study_with_seconds(study, root / "inf_seconds", float("inf")),
    }


# (id, command, arguments with {name} for the paths above, environment, what is protected).
CASES = [
    # mdiff-sample
    ("sample-out-is-a-file", "mdiff-sample", ["--model", "{ddpm}", "--n", "1", "--out", "{file}"]),
    ("sample-out-in-proc", "mdiff-sample", ["--model", "{ddpm}", "--n", "1", "--out",
                                            "/proc/mdiff_x"]),
    ("sample-out-under-a-file", "mdiff-sample", ["--model", "{ddpm}", "--n", "1", "--out",
                                                 "{file}/samples"]),
    ("sample-seed-too-big", "mdiff-sample", ["--model", "{ddpm}", "--n", "1", "--out",
                                             "{root}/s1", "--seed", "18446744073709551615"]),
    ("sample-n-absurd", "mdiff-sample", ["--model", "{ddpm}", "--n", "100000000000", "--out",
                                         "{root}/s2"]),
    ("sample-no-run-json", "mdiff-sample", ["--model", "{no_run_json}", "--n", "1", "--out",
                                            "{root}/s3"]),
    ("sample-unknown-model", "mdiff-sample", ["--model", "nosuchmodel", "--n", "1", "--out",
                                              "{root}/s4"]),
    ("sample-null-registry-entry", "mdiff-sample", ["--model", "nulls", "--n", "1", "--out",
                                                    "{root}/s5"], {"MDIFF_HOME": "{null_home}"}),
    # mdiff-models
    ("models-home-is-a-file", "mdiff-models", ["add", "x", "--vqgan", "{vqgan}", "--ddpm",
                                               "{ddpm}"], {"MDIFF_HOME": "{file}"}),
    ("models-home-under-a-file", "mdiff-models", ["add", "x", "--vqgan", "{vqgan}", "--ddpm",
                                                  "{ddpm}"], {"MDIFF_HOME": "{file}/home"}),
    ("models-json-is-a-folder", "mdiff-models", ["add", "x", "--vqgan", "{vqgan}", "--ddpm",
                                                 "{ddpm}"], {"MDIFF_HOME": "{folder_home}"}),
    ("models-show-null-entry", "mdiff-models", ["show", "nulls"], {"MDIFF_HOME": "{null_home}"}),
    ("models-add-bundled-name", "mdiff-models", ["add", "demo", "--vqgan", "{vqgan}", "--ddpm",
                                                 "{ddpm}"], {"MDIFF_HOME": "{root}/home"}),
    # mdiff-prepare
    ("prepare-empty-folder", "mdiff-prepare", ["--preset", "tiny", "--data", "{empty}", "--out",
                                               "{root}/p1"]),
    ("prepare-missing-folder", "mdiff-prepare", ["--preset", "tiny", "--data", "{root}/nothing",
                                                 "--out", "{root}/p2"]),
    ("prepare-unknown-preset", "mdiff-prepare", ["--preset", "nope", "--data", "{empty}",
                                                 "--out", "{root}/p3"]),
    ("prepare-out-is-the-input", "mdiff-prepare", ["--preset", "tiny", "--data", "{prep}",
                                                   "--out", "{prep}"]),
    # mdiff-train
    ("train-nan-prep", "mdiff-train", ["vqgan", "--preset", "tiny", "--data", "{nan_prep}",
                                       "--out", "{root}/t1", "--steps", "1"]),
    ("train-huge-prep", "mdiff-train", ["vqgan", "--preset", "tiny", "--data", "{huge_prep}",
                                        "--out", "{root}/t2", "--steps", "1"]),
    ("train-wrong-preset", "mdiff-train", ["vqgan", "--preset", "demo", "--data", "{prep}",
                                           "--out", "{root}/t3", "--steps", "1"]),
    ("train-missing-data", "mdiff-train", ["vqgan", "--preset", "tiny", "--data",
                                           "{root}/nothing", "--out", "{root}/t4"]),
    ("train-resume-nothing", "mdiff-train", ["vqgan", "--preset", "tiny", "--data", "{prep}",
                                             "--out", "{empty}", "--resume"]),
    # mdiff-study
    ("study-export-over-its-key", "mdiff-study", ["export", "{study}", "--out", "{key}", "--key",
                                                  "{key}"]),
    ("study-export-into-the-study", "mdiff-study", ["export", "{study}", "--out",
                                                    "{study}/study.json"]),
    ("study-export-existing-file", "mdiff-study", ["export", "{study}", "--out", "{file}"]),
    ("study-status-text-seconds", "mdiff-study", ["status", "{text_seconds}"]),
    ("study-status-inf-seconds", "mdiff-study", ["status", "{inf_seconds}"]),
    ("study-export-text-seconds", "mdiff-study", ["export", "{text_seconds}", "--out",
                                                  "{root}/e1.csv"]),
    ("study-export-inf-seconds", "mdiff-study", ["export", "{inf_seconds}", "--out",
                                                 "{root}/e2.csv"]),
    ("study-create-incomplete-samples", "mdiff-study", ["create", "--out", "{root}/c1",
                                                        "--synthetic", "{samples}", "--preset",
                                                        "tiny"]),
    ("study-create-empty-input", "mdiff-study", ["create", "--out", "{root}/c2", "--real",
                                                 "{empty}", "--preset", "tiny"]),
    ("study-status-not-a-study", "mdiff-study", ["status", "{empty}"]),
    ("study-audit-missing-key", "mdiff-study", ["audit", "{study}", "--key", "{root}/no.csv"]),
    # mdiff-eval
    ("eval-recon-volumes-out-a-file", "mdiff-eval", ["recon", "--models", "{vqgan}", "--data",
                                                     "{prep}", "--volumes-out", "{file}"]),
    ("eval-recon-other-preset", "mdiff-eval", ["recon", "--models", "{vqgan}", "--data",
                                               "{demo_prep}"]),
    ("eval-recon-nan-prep", "mdiff-eval", ["recon", "--models", "{vqgan}", "--data",
                                           "{nan_prep}", "--split", "all", "--json"]),
    ("eval-recon-wrong-shape", "mdiff-eval", ["recon", "--models", "{vqgan}", "--data",
                                              "{shape_prep}", "--split", "all"]),
    ("eval-memorization-nan-train", "mdiff-eval", ["memorization", "--train", "{nan_prep}",
                                                   "--samples", "{prep}"]),
    ("eval-msssim-empty", "mdiff-eval", ["msssim", "{empty}"]),
    ("eval-agreement-not-a-csv", "mdiff-eval", ["agreement", "{file}"]),
    ("eval-turing-missing", "mdiff-eval", ["turing", "{root}/no.csv"]),
    ("eval-figure-over-its-input", "mdiff-eval", ["agreement", "{export}", "--figure",
                                                  "{export}"]),
    # mdiff-reader, mdiff-demo
    ("reader-not-a-study", "mdiff-reader", ["{empty}", "--reader", "x", "--screenshot",
                                            "{root}/r.png"]),
    ("demo-out-is-a-file", "mdiff-demo", ["--out", "{file}"]),
]


def _fill(text: str, paths: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in paths.items()})


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` by path, with its bytes, to prove nothing was written over."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and "/ratings/" not in str(p)}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_one_sentence_and_exit_2(case, bad, monkeypatch, capsys):
    name, command, args, *env = case
    for key, value in (env[0] if env else {}).items():
        monkeypatch.setenv(key, _fill(value, bad))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    argv = [_fill(a, bad) for a in args]
    protected = {k: _snapshot(bad[k]) for k in ("study", "prep", "vqgan", "ddpm")}
    protected["files"] = {str(bad[k]): bad[k].read_bytes() for k in ("key", "export", "file")}
    try:
        status = MAINS[command](argv)
    except SystemExit as stop:  # argparse's own refusals
        status = stop.code
    err = capsys.readouterr().err
    # A progress bar the mistake stopped may stand before the sentence; it is no sentence.
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and not re.search(r"\d+%\|", line)]
    assert status == 2, (name, status, err)
    assert "Traceback" not in err and lines, (name, err)
    assert len([line for line in lines if "warning" not in line]) == 1, (name, err)
    assert protected == ({k: _snapshot(bad[k]) for k in ("study", "prep", "vqgan", "ddpm")}
                         | {"files": {str(bad[k]): bad[k].read_bytes()
                                      for k in ("key", "export", "file")}}), name


def test_the_table_covers_every_console_command():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert set(project["project"]["scripts"]) == set(MAINS) == {c[1] for c in CASES}


def _demo_prep(folder: Path) -> Path:
    """A two-volume PREP_DIR of the demo preset (another shape than tiny's)."""
    from diffusion_core.prepared import Manifest, PreparedScan
    from diffusion_core.presets import get_preset

    spec = get_preset("demo")
    folder.mkdir(parents=True)
    manifest = Manifest.for_preset(spec, folder / "raw", None)
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(folder / f"d{i}.npy", rng.uniform(-1, 1, spec.shape).astype(np.float32))
        manifest.scans.append(PreparedScan(source=f"d{i}.nii.gz", arrays=[f"d{i}.npy"]))
    manifest.save(folder)
    return folder
