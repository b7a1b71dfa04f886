#!/usr/bin/env bash
# Train the bundled demo model on the CPU from the committed demo data, then bundle it.
#
#   bash demo/train_demo.sh [RUNS_DIR]        (default: build/demo_runs; about 71 minutes)
#
# 1. prepare demo/data/train with the demo preset;
# 2. the VQ-GAN (2,000 steps, GAN from 1,400; model.safetensors = the best validation step)
#    -> RUNS/vqgan_base;
# 3. its decoder fine-tuned on the fixed latent space (encoder and codebook frozen) for 300
#    steps, L1 with the background learned 0.15 below the floor and decoded volumes clamped
#    there, so that background comes out exact, as in the scans -> RUNS/vqgan_floor;
# 4. that decoder fine-tuned 600 steps more with the 3D critic from the first step, encoder and
#    codebook still frozen (model.safetensors = the last step) -> RUNS/vqgan. The L1-trained
#    decoder draws an average's blur: more voxels at intermediate grey levels than a scan has,
#    which `mdiff-study audit` tells apart; the critic takes them away again (README);
# 5. the latent DDPM on RUNS/vqgan's cached latents, predicting v (the velocity) rather than the
#    noise: the preset's 6,000 steps at 3e-4, then resumed for 2,500 more at 1e-4 -> RUNS/ddpm.
#    The decoder fine-tunes leave the latents as they were, so this DDPM comes out the same
#    whichever decoder stage 4 left (2026-12-01: byte-identical weights on stage 3's and 4's).
#    With the same recipe predicting the noise, samples came out blotchier, some of them frayed
#    patches, and their intensity histograms further from a scan's (README);
# 6. copy both runs' run.json, weights and logs into diffusion_core/bundled/demo/, where the
#    registry finds them as the model "demo".
# Two threads (OMP_NUM_THREADS, default 2) on an otherwise idle 2-core machine: 71 minutes
# (2026-12-02, one run from scratch: VQ-GAN 15.6, floor fine-tune 1.3, critic fine-tune 5.9,
# DDPM 48.3), which reproduced the bundled weights byte for byte. Other jobs on the cores
# stretch it: an earlier run beside them, one thread, took about two hours.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-build/demo_runs}
BIN=.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$RUNS"
$BIN/mdiff-prepare --preset demo --data demo/data/train --out "$RUNS/prep"
$BIN/mdiff-train vqgan --preset demo --data "$RUNS/prep" --out "$RUNS/vqgan_base" --device cpu \
    --steps 2000 --gan-start 1400 --val-every 250 --checkpoint-every 250 --log-every 25 \
    $( [ -f "$RUNS/vqgan_base/run.json" ] && echo --resume )
$BIN/mdiff-train vqgan --preset demo --data "$RUNS/prep" --out "$RUNS/vqgan_floor" --device cpu \
    --init "$RUNS/vqgan_base" --freeze-encoder --floor-margin 0.15 --steps 300 \
    --gan-start 100000 --val-every 100 --checkpoint-every 100 --log-every 25 \
    $( [ -f "$RUNS/vqgan_floor/run.json" ] && echo --resume )
$BIN/mdiff-train vqgan --preset demo --data "$RUNS/prep" --out "$RUNS/vqgan" --device cpu \
    --init "$RUNS/vqgan_floor" --freeze-encoder --floor-margin 0.15 --steps 600 \
    --gan-start 0 --weights latest --val-every 100 --checkpoint-every 100 --log-every 25 \
    $( [ -f "$RUNS/vqgan/run.json" ] && echo --resume )
steps_done() {  # how far a run folder's training got (0 for none)
    $BIN/python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("steps_done", 0))' \
        "$1/run.json" 2>/dev/null || echo 0
}
DDPM=(ddpm --preset demo --vqgan "$RUNS/vqgan" --data "$RUNS/prep" --out "$RUNS/ddpm"
      --device cpu --val-every 250 --checkpoint-every 250 --log-every 25 --prediction v)
if [ "$(steps_done "$RUNS/ddpm")" -lt 6000 ]; then
    $BIN/mdiff-train "${DDPM[@]}" $( [ -f "$RUNS/ddpm/run.json" ] && echo --resume )
fi
$BIN/mdiff-train "${DDPM[@]}" --resume --steps 8500 --lr 1e-4
$BIN/python demo/bundle_demo.py "$RUNS"
