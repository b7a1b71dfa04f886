"""VQ-GAN speed and memory: steps per second, peak memory, forward memory at the paper sizes.

    .venv/bin/python benchmarks/bench_vqgan.py [--threads 2] [--steps 8] [--skip-paper]

Each row runs in a fresh subprocess so that its peak resident memory (ru_maxrss, minus the
process's own after importing torch) belongs to that row alone:
- `train tiny` / `train demo`: seconds per training step (generator + discriminator, the GAN
  terms on) at the preset's batch size on the CPU;
- `forward PRESET`: one inference forward (encode, quantise, decode) at batch 1 at the paper's
  size with its 16384 x 8 codebook;
- `codebook search`: nearest codes for the mrnet latent of a batch of 2 (65,536 vectors x 16,384
  codes), chunked as the model does against one full distance matrix, in the same process kind.
On a CUDA machine pass `--device cuda` to add bf16 vs fp32 step times at the paper's sizes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from dataclasses import replace
import torch
torch.set_num_threads(int(sys.argv[2]))
kind, arg = sys.argv[1], json.loads(sys.argv[3])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
from diffusion_core.nn.vqgan import VQGAN
from diffusion_core.presets import get_preset, vqgan_settings
out = {}
if kind == "train":
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.trainer import StepContext, Trainer
    from diffusion_core.training.vqgan import VQGANTask
    settings = vqgan_settings(arg["preset"])
    loss = replace(settings.loss, gan_start_step=0)
    task = VQGANTask(VQGAN(settings.model), loss, settings.learning_rate)
    shape = get_preset(arg["preset"]).shape
    data = [torch.rand(1, *shape) * 2 - 1 for _ in range(4)]
    cfg = TrainerConfig(steps=10**6, batch_size=settings.batch_size,
                        learning_rate=settings.learning_rate)
    trainer = Trainer(task, cfg, "/tmp/unused", data, [], device=arg["device"], progress=False)
    def step(i):
        with trainer.autocast() if arg.get("bf16", True) else torch.autocast("cuda", enabled=False):
            task.train_step(trainer._batch(i), StepContext(trainer, i))
    step(0)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(1, arg["steps"] + 1):
        step(i)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
        out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    out["seconds_per_step"] = (time.perf_counter() - start) / arg["steps"]
    out["parameters_m"] = sum(p.numel() for p in task.model.parameters()) / 1e6
elif kind == "forward":
    settings = vqgan_settings(arg["preset"])
    model = VQGAN(settings.model).eval()
    x = torch.rand(1, 1, *get_preset(arg["preset"]).shape) * 2 - 1
    start = time.perf_counter()
    with torch.no_grad():
        model.decode(model.quantize(model.encode(x)))
    out["seconds"] = time.perf_counter() - start
elif kind == "search":
    from diffusion_core.nn.codebook import nearest_codes
    vectors, codes = torch.randn(65536, 8), torch.randn(16384, 8)
    start = time.perf_counter()
    nearest_codes(vectors, codes, **({"budget": 1 << 62} if arg["full"] else {}))
    out["seconds"] = time.perf_counter() - start
out["peak_rss_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(out))
"""


def _run(kind: str, threads: int, **arg) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, kind, str(threads), json.dumps(arg)],
                            cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        return {"error": result.stderr.strip().splitlines()[-1]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args()
    print(f"threads {args.threads}, device {args.device}")
    for preset in ("tiny", "demo"):
        r = _run("train", args.threads, preset=preset, steps=args.steps, device="cpu")
        print(f"train {preset:5s}: {r}")
    for full in (False, True):
        r = _run("search", args.threads, full=full)
        print(f"codebook search ({'one full matrix' if full else 'chunked'}): {r}")
    if not args.skip_paper:
        for preset in ("adni", "mrnet", "lidc"):
            print(f"forward {preset:5s}: {_run('forward', args.threads, preset=preset)}")
    if args.device == "cuda":
        for preset in ("adni", "mrnet", "lidc"):
            for bf16 in (False, True):
                r = _run("train", args.threads, preset=preset, steps=args.steps, device="cuda",
                         bf16=bf16)
                print(f"cuda train {preset} {'bf16' if bf16 else 'fp32'}: {r}")


if __name__ == "__main__":
    main()
