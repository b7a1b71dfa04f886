#!/usr/bin/env bash
# Train the bundled GAN baseline "demo-gan" on the CPU from the committed demo data, then bundle it.
#
#   bash demo/train_demo_gan.sh [RUNS_DIR]        (default: build/demo_runs; about 20 minutes)
#
# 1. prepare demo/data/train with the demo preset (the same PREP_DIR the diffusion demo trains
#    on: demo/train_demo.sh);
# 2. the demo preset's 3D WGAN-GP (diffusion_core/presets.py, WGAN_SETTINGS["demo"]: generator
#    128 -> 64 -> 32 -> 16 channels from a 128-dim latent, critic 16 -> 32 -> 64 -> 128 with
#    layer norm), the WGAN-GP recipe unchanged: 5 critic updates per generator update, penalty
#    weight 10, Adam 1e-4 with betas (0.0, 0.9), batch 4, 900 generator iterations
#    (4,500 critic updates); model.safetensors = the last step's generator -> RUNS/gan;
# 3. copy its run.json, weights and log into diffusion_core/bundled/demo-gan/gan/, where the
#    registry finds it as the model "demo-gan".
# Two threads (OMP_NUM_THREADS, default 2) on an otherwise idle 2-core machine: about 1.3 s per
# step, 20 minutes in all; other jobs on the cores stretch it. Interrupted (Ctrl-C, SIGTERM), it
# keeps a checkpoint, and running it again resumes exactly where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-build/demo_runs}
BIN=.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$RUNS"
$BIN/mdiff-prepare --preset demo --data demo/data/train --out "$RUNS/prep"
$BIN/mdiff-train wgan --preset demo --data "$RUNS/prep" --out "$RUNS/gan" --device cpu \
    --steps 900 --val-every 100 --checkpoint-every 100 --log-every 10 --weights latest \
    $( [ -f "$RUNS/gan/run.json" ] && echo --resume )
$BIN/python demo/bundle_demo_gan.py "$RUNS"
