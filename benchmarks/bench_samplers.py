"""Samplers side by side on a trained model: seconds per volume, diversity, distance to DDPM-300.

    .venv/bin/python benchmarks/bench_samplers.py [--model demo] [--n 8] [--threads 2]

All samplers start from the same seeds, so each volume has a DDPM-300 twin from the same initial
noise. Rows: DDPM (all trained steps, the paper's), DDIM-50, DDIM-25, DPM-Solver++ 2M at 20 and
10 steps. Columns: seconds per volume (batch of all seeds, CPU), MS-SSIM diversity (mean over all
pairs, 3 scales; lower = more diverse; the paper's metric), and the mean absolute voxel distance
of each volume to its DDPM twin in the pipeline's [-1, 1] scale. A last row times a
reference case with untrained weights: one 64^3-sized latent (8 x 16 x 16 x 16) through a
width-16 U-Net, DPM-Solver++ 20 steps, against the authors' 29.8 s for 300 ancestral steps.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from diffusion_core.registry import Registry
from diffusion_core.sampling import LatentDiffusionPipeline
from evaluation.msssim import ms_ssim

ROWS = [("ddpm", None), ("ddim", 50), ("ddim", 25), ("dpm", 20), ("dpm", 10)]


def diversity(volumes: list[np.ndarray]) -> float:
    """Mean MS-SSIM over all pairs (3 scales), on [-1, 1] volumes."""
    stack = torch.from_numpy(np.stack(volumes)).float().unsqueeze(1) + 1.0
    pairs = list(itertools.combinations(range(len(volumes)), 2))
    a = stack[[i for i, _ in pairs]]
    b = stack[[j for _, j in pairs]]
    weights = (0.0448, 0.2856, 0.3001)
    return float(ms_ssim(a, b, data_range=2.0, weights=weights, window=(3, 7, 7)).mean())


def reference_case(threads: int) -> float:
    """Seconds for DPM-Solver++ 20 steps on an (8, 16, 16, 16) latent, width-16 U-Net."""
    from diffusion_core.nn.config import UNetConfig
    from diffusion_core.nn.unet import UNet
    from diffusion_core.schedulers import make_scheduler
    from diffusion_core.schedulers.config import SchedulerConfig

    unet = UNet(UNetConfig(channels=8, base_channels=16)).eval()
    scheduler = make_scheduler("dpm", SchedulerConfig(num_train_timesteps=300))
    scheduler.set_timesteps(20)
    x = torch.randn(1, 8, 16, 16, 16)
    start = time.perf_counter()
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t.view(1)), t, x).prev_sample
    return time.perf_counter() - start


def main() -> None:
    """Print one row per sampler."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    entry = Registry().resolve(args.model)
    pipeline = LatentDiffusionPipeline.from_runs(entry.vqgan, entry.ddpm, torch.device("cpu"))
    seeds = list(range(args.n))
    results = {}
    for sampler, steps in ROWS:
        start = time.perf_counter()
        volumes = pipeline.sample(seeds, sampler=sampler, steps=steps)
        seconds = (time.perf_counter() - start) / len(seeds)
        results[(sampler, steps)] = ([v.normalised for v in volumes], seconds)
    reference = results[ROWS[0]]
    base_seconds = reference[1]
    print(f"model {args.model}, {args.n} volumes, {args.threads} threads")
    print("sampler | steps | s/volume | speed-up | MS-SSIM diversity | mean |x - DDPM twin|")
    for (sampler, steps), (volumes, seconds) in results.items():
        distance = np.mean([np.abs(a - b).mean() for a, b in zip(volumes, reference[0],
                                                                 strict=True)])
        shown = steps or pipeline.scheduler_config.num_train_timesteps
        print(f"{sampler} | {shown} | {seconds:.2f} | {base_seconds / seconds:.1f}x | "
              f"{diversity(volumes):.4f} | {distance:.4f}")
    print(f"reference: DPM-Solver++ 20 steps, latent 8x16x16x16, width 16: "
          f"{reference_case(args.threads):.2f} s (authors' DDPM-300: 29.8 s)")


if __name__ == "__main__":
    main()
