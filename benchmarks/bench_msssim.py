"""Speed of `evaluation.msssim` against MONAI's `MultiScaleSSIMMetric`, on the CPU.

    .venv/bin/python benchmarks/bench_msssim.py [--threads 2] [--pairs 200] [--monai-pairs 20]

Rows: 64^3 pairs with 3 scales (the paper's ADNI size; MONAI accepts 3 scales from 44 voxels),
ours and MONAI in the same run, with the largest difference of their values; 64^3 with the 5
standard scales and the paper's 256x256x32 (our D, H, W = 32, 256, 256), which MONAI rejects, ours
only; and the authors' protocol (`paper_ms_ssim`, scipy) at 64^3 for reference.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from monai.metrics import MultiScaleSSIMMetric
from scipy.ndimage import gaussian_filter

from evaluation.msssim import MSSSIM_WEIGHTS, ms_ssim, paper_ms_ssim


def similar_volumes(n: int, shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """(n, 1, *shape) float32 volumes in [0, 1]: a shared smooth pattern plus one of their own."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.standard_normal(shape), 2.0)
    stack = np.stack([base + 0.5 * gaussian_filter(rng.standard_normal(shape), 2.0)
                      for _ in range(n)])
    stack = (stack - stack.min()) / (stack.max() - stack.min())
    return torch.from_numpy(stack.astype(np.float32)).unsqueeze(1)


def time_pairs(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor, y: torch.Tensor, batch: int,
) -> tuple[float, np.ndarray]:
    """Seconds to score every pair (x[n], y[n]) `batch` pairs at a time, and the scores."""
    score(x[:batch], y[:batch])  # warm-up: allocator, thread pool
    values = []
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        values.append(score(x[i : i + batch], y[i : i + batch]).flatten())
    return time.perf_counter() - start, torch.cat(values).double().numpy()


def main() -> None:
    """Time every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=200, help="pairs timed for ours")
    parser.add_argument("--monai-pairs", type=int, default=20, help="pairs timed for MONAI")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    w3 = MSSSIM_WEIGHTS[:3]
    rows = []

    def row(case: str, method: str, n: int, seconds: float, diff: float | None = None) -> None:
        rows.append((case, method, n, seconds, n / seconds, diff))

    with torch.inference_mode():
        vols = similar_volumes(2 * args.pairs, (64, 64, 64))
        x, y = vols[: args.pairs], vols[args.pairs :]
        data_range = float(vols.max() - vols.min())
        monai = MultiScaleSSIMMetric(spatial_dims=3, data_range=data_range, weights=w3,
                                     reduction="none")
        m = args.monai_pairs
        t_monai, v_monai = time_pairs(monai, x[:m], y[:m], 1)
        row("64^3, 3 scales", "MONAI MultiScaleSSIMMetric", m, t_monai)
        for batch in (1, 8):
            t_ours, v_ours = time_pairs(
                lambda a, b: ms_ssim(a, b, data_range, weights=w3), x, y, batch)
            diff = float(np.abs(v_ours[:m] - v_monai).max())
            row("64^3, 3 scales", f"ours, batch {batch}", len(x), t_ours, diff)
        t5, _ = time_pairs(lambda a, b: ms_ssim(a, b, data_range), x, y, 1)
        row("64^3, 5 scales", "ours, batch 1 (MONAI rejects)", len(x), t5)
        n_paper = max(1, args.pairs // 10)
        # the authors' volumes spanned [-1, 1]
        xs = 2 * x[:n_paper, 0].double().numpy() - 1
        ys = 2 * y[:n_paper, 0].double().numpy() - 1
        start = time.perf_counter()
        for a, b in zip(xs, ys, strict=True):
            paper_ms_ssim(a, b)
        row("64^3, 5 scales", "paper protocol (scipy)", n_paper, time.perf_counter() - start)

        n_big = max(2, args.pairs // 10)
        big = similar_volumes(2 * n_big, (32, 256, 256), seed=1)
        t_big, _ = time_pairs(lambda a, b: ms_ssim(a, b, 1.0), big[:n_big], big[n_big:], 1)
        row("32x256x256, 5 scales", "ours, batch 1 (MONAI rejects)", n_big, t_big)

    print(f"CPU, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'case':<22} {'method':<32} {'pairs':>6} {'seconds':>8} {'pairs/s':>8}  "
          "max|ours-MONAI|")
    for case, method, n, seconds, rate, diff in rows:
        shown = "" if diff is None else f"{diff:.1e}"
        print(f"{case:<22} {method:<32} {n:>6} {seconds:>8.2f} {rate:>8.1f}  {shown}")
    ours = max(r[4] for r in rows if r[1].startswith("ours") and r[0] == "64^3, 3 scales")
    print(f"ours / MONAI at 64^3, 3 scales: {ours / rows[0][4]:.0f}x")


if __name__ == "__main__":
    main()
