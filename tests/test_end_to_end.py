"""The whole road a team takes, through the real command-line entry points: scans -> blinded
study -> two readers' answers -> export with the key -> agreement and Turing statistics.

Each package has its own tests; this one catches drift between them (column names, the
real/synthetic answer as stored and as exported, the key's sources)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from diffusion_core.io import Volume, canonical_affine, write_nifti
from evaluation.cli.eval import main as eval_main
from studies.cli.study import main as study_main
from studies.ratings import RatingStore
from studies.study import Study


def _volumes(folder: Path, n: int, rng: np.random.Generator, *, uint8: bool) -> None:
    """n small MR-like volumes: real ones as uint8, synthetic ones as float32 in [-1, 1]."""
    folder.mkdir()
    d, h, w = np.mgrid[:8, :24, :24]
    for i in range(n):
        blob = np.exp(-((h - 12 - i % 3) ** 2 + (w - 12) ** 2) / 40.0) * (1 + 0 * d)
        noisy = blob + rng.normal(0, 0.05, blob.shape)
        array = (np.clip(noisy, 0, 1) * 255).astype(np.uint8) if uint8 else \
            np.clip(noisy * 2 - 1, -1, 1).astype(np.float32)
        write_nifti(Volume(array, (3.0, 1.0, 1.0), canonical_affine((3.0, 1.0, 1.0)), "MR"),
                    folder / f"vol{i}.nii.gz")


def test_scans_to_statistics(tmp_path, capsys):
    """Create, rate (two readers, a rule that depends on the truth), export, evaluate."""
    rng = np.random.default_rng(0)
    _volumes(tmp_path / "real", 4, rng, uint8=True)
    _volumes(tmp_path / "synthetic", 4, rng, uint8=False)
    study_dir, key = tmp_path / "study", tmp_path / "study.key.csv"
    assert study_main(["create", "--out", str(study_dir), "--real", str(tmp_path / "real"),
                       "--synthetic", str(tmp_path / "synthetic"), "--n", "4", "--n-real", "4",
                       "--turing", "--dataset", "demo", "--title", "e2e"]) == 0
    assert study_main(["audit", str(study_dir), "--key", str(key)]) == 0
    truth = {row["case_id"]: row["source"] for row in csv.DictReader(key.open())}

    study = Study.open(study_dir)
    for reader, realism in (("alice", {"real": "D", "synthetic": "C"}),
                            ("bob", {"real": "D", "synthetic": "B"})):
        with RatingStore.open(study, reader) as store:
            for case_id in store.case_order:
                source = truth[case_id]
                for question in ("realistic_appearance", "slice_consistency",
                                 "anatomical_correctness"):
                    store.record_answer(case_id, question, realism[source], 12.0)
                # alice spots every synthetic case; bob calls everything real.
                call = source if reader == "alice" else "real"
                store.record_answer(case_id, "real_or_synthetic", call, 12.0)
                store.record_answer(case_id, "confidence", "3", 12.0)

    ratings = tmp_path / "ratings.csv"
    assert study_main(["export", str(study_dir), "--out", str(ratings), "--key", str(key)]) == 0
    rows = list(csv.DictReader(ratings.open()))
    assert len(rows) == 16
    assert {r["real_or_synthetic"] for r in rows} == {"real", "synthetic"}
    assert all(r["source"] == truth[r["case_id"]] for r in rows)
    capsys.readouterr()

    assert eval_main(["turing", str(ratings), "--json"]) == 0
    turing = json.loads(capsys.readouterr().out)
    text = json.dumps(turing)
    assert "NaN" not in text
    assert eval_main(["agreement", str(ratings), "--json"]) == 0
    agreement = json.loads(capsys.readouterr().out)
    # Over the synthetic cases only: alice rated all 4 C (C or better), bob all 4 B.
    counts = json.dumps(agreement)
    assert '"c_or_better": 4' in counts and '"c_or_better": 0' in counts
    # alice tells every case right; bob, calling everything real, is right half the time.
    readers = turing["datasets"]["demo"]["readers"]
    assert readers["alice"]["accuracy"]["value"] == 1.0
    assert readers["bob"]["accuracy"]["value"] == 0.5
    assert readers["bob"]["specificity"]["value"] == 1.0
    assert readers["bob"]["sensitivity"]["value"] == 0.0
