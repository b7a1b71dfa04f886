"""Memorisation check speed: 1000 samples against 1000 training volumes at 64^3 on the CPU.

    .venv/bin/python benchmarks/bench_memorization.py [--samples 1000] [--train 1000] [--size 64]
        [--holdout 100] [--threads 2] [--copies 200]

Writes a PREP_DIR of `--train` smooth random 64^3 arrays (the adni preset's shape), a folder of
`--samples` NIfTI samples (.nii.gz, as mdiff-sample writes them) of which `--planted` are
shifted, mirrored, noised copies of training volumes, and `--holdout` fresh volumes, into a
temporary folder; then times
- `search`: the coarse search alone on the pooled 16^3 volumes (samples x training, 125 shifts x
  2 mirrors, keeping 3 candidates per sample), in memory;
- `align`: the fine comparison alone: each sample's 3 candidates aligned again at full
  resolution (a 32^3 then a 64^3 step, 27 shifts each), in memory;
- `command`: the whole `memorization_report` as `mdiff-eval memorization` runs it (reading and
  pooling every file, augmented copies, held-out volumes, samples, both stages, thresholds,
  power);
and checks that the planted copies are flagged and the fresh samples are not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from diffusion_core.io import Volume, canonical_affine, write_nifti  # noqa: E402
from diffusion_core.prepared import Manifest, PreparedScan  # noqa: E402
from diffusion_core.presets import get_preset  # noqa: E402
from evaluation.copy_search import downsample, nearest_neighbours, refine  # noqa: E402
from evaluation.memorization import CheckOptions, memorization_report  # noqa: E402


def smooth_volumes(n: int, size: int, generator: torch.Generator) -> np.ndarray:
    """(n, size, size, size) float32 in [-1, 1]: coarse noise upsampled, so volumes are smooth."""
    coarse = torch.randn((n, 1, 8, 8, 8), generator=generator)
    volumes = F.interpolate(coarse, size=(size,) * 3, mode="trilinear", align_corners=False)[:, 0]
    low = volumes.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = volumes.flatten(1).max(1).values.view(-1, 1, 1, 1)
    return (2 * (volumes - low) / (high - low) - 1).numpy().astype(np.float32)


def write_data(root: Path, args: argparse.Namespace) -> tuple[Path, Path, Path, set[str]]:
    """The PREP_DIR, samples folder and held-out folder; also the planted copies' file names."""
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    preset = get_preset("adni")
    prep, samples, holdout = root / "prep", root / "samples", root / "holdout"
    for folder in (prep, samples, holdout):
        folder.mkdir()
    manifest = Manifest.for_preset(preset, root / "raw", None)
    manifest.shape = [args.size] * 3
    train = smooth_volumes(args.train, args.size, generator)
    for i, array in enumerate(train):
        np.save(prep / f"train{i:04d}.npy", array)
        manifest.scans.append(PreparedScan(source=f"train{i:04d}", arrays=[f"train{i:04d}.npy"]))
    manifest.save(prep)
    affine = canonical_affine(preset.spacing)
    fresh = smooth_volumes(args.samples + args.holdout, args.size, generator)
    planted = set()
    for i in range(args.samples):
        name = f"case_{i + 1:04d}.nii.gz"
        if i < args.planted:
            source = train[int(rng.integers(len(train)))]
            shift = tuple(int(v) for v in rng.integers(-4, 5, 3))
            array = np.roll(source, shift, axis=(0, 1, 2))[..., ::-1]
            array = array + 0.1 * array.std() * rng.standard_normal(array.shape)
            planted.add(name)
        else:
            array = fresh[i]
        intensity = ((np.asarray(array, dtype=np.float32) + 1) / 2).astype(np.float32)
        write_nifti(Volume(intensity, preset.spacing, affine, "MR"), samples / name)
    for i in range(args.holdout):
        write_nifti(Volume(fresh[args.samples + i], preset.spacing, affine, "MR"),
                    holdout / f"held{i:04d}.nii.gz")
    return prep, samples, holdout, planted


def main() -> None:
    """Write the data, time the search and the command, print one JSON line per row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        started = time.perf_counter()
        prep, samples, holdout, planted = write_data(root, args)
        print(json.dumps({"row": "write data", "seconds": round(time.perf_counter() - started,
                                                                  1)}), flush=True)

        generator = torch.Generator().manual_seed(1)
        full_queries = torch.from_numpy(smooth_volumes(args.samples, args.size, generator))
        full_references = torch.from_numpy(smooth_volumes(args.train, args.size, generator))
        queries, references = downsample(full_queries), downsample(full_references)
        started, cpu = time.perf_counter(), time.process_time()
        coarse = nearest_neighbours(queries, references, candidates=3, progress=False)
        print(json.dumps({"row": "search", "samples": args.samples, "train": args.train,
                          "grid": list(queries.shape[1:]), "threads": args.threads,
                          "seconds": round(time.perf_counter() - started, 1),
                          "cpu_seconds": round(time.process_time() - cpu, 1)}), flush=True)
        started, cpu = time.perf_counter(), time.process_time()
        refine(full_queries, full_references, coarse, tuple(queries.shape[1:]),
               progress=False)
        print(json.dumps({"row": "align", "samples": args.samples, "candidates": 3,
                          "fine_grid": [args.size] * 3, "threads": args.threads,
                          "seconds": round(time.perf_counter() - started, 1),
                          "cpu_seconds": round(time.process_time() - cpu, 1)}), flush=True)
        del full_queries, full_references

        started, cpu = time.perf_counter(), time.process_time()
        report = memorization_report(prep, samples, holdout=holdout,
                                     options=CheckOptions(train_split="all", copies=args.copies),
                                     progress=False)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        flagged = {r["file"] for r in report["results"] if r["class"] == "copy"}
        print(json.dumps({
            "row": "command", "samples": args.samples, "train": args.train,
            "holdout": args.holdout, "copies": args.copies, "size": args.size,
            "threads": args.threads, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
            "load_average": [round(v, 1) for v in os.getloadavg()],
            "copy_threshold": round(report["calibration"]["copy_threshold"], 4),
            "novel_threshold": round(report["calibration"]["novel_threshold"], 4),
            "power": round(report["calibration"]["power"], 4),
            "planted_flagged": f"{len(planted & flagged)}/{len(planted)}",
            "fresh_flagged": len(flagged - planted), "counts": report["counts"]}), flush=True)


if __name__ == "__main__":
    main()
