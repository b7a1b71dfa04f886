#!/usr/bin/env bash
# Train the bundled demo model on the CPU from the committed demo data, then bundle it.
#
#   bash demo/train_demo.sh [RUNS_DIR]        (default: build/demo_runs; about an hour)
#
# 1. prepare demo/data/train with the demo preset; 2. the VQ-GAN (2,000 steps, GAN from 1,400;
#    model.safetensors = the best validation step);
# 3. the latent DDPM on its cached latents (3,500 steps); 4. copy both runs' run.json, weights and logs into
# diffusion_core/bundled/demo/, where the registry finds them as the model "demo".
# One thread per process: on a shared 2-core machine it is faster than two contended ones.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-build/demo_runs}
BIN=.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$RUNS"
$BIN/mdiff-prepare --preset demo --data demo/data/train --out "$RUNS/prep"
$BIN/mdiff-train vqgan --preset demo --data "$RUNS/prep" --out "$RUNS/vqgan" --device cpu \
    --steps 2000 --gan-start 1400 --val-every 250 --checkpoint-every 250 --log-every 25 \
    $( [ -f "$RUNS/vqgan/run.json" ] && echo --resume )
$BIN/mdiff-train ddpm --preset demo --vqgan "$RUNS/vqgan" --data "$RUNS/prep" \
    --out "$RUNS/ddpm" --device cpu --val-every 250 --checkpoint-every 250 --log-every 25 \
    $( [ -f "$RUNS/ddpm/run.json" ] && echo --resume )
$BIN/python demo/bundle_demo.py "$RUNS"
