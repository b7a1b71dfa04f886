#!/usr/bin/env bash
# The paper's downstream experiment at demo scale, on the CPU: does self-supervised pre-training on
# the bundled demo model's synthetic brains help a SwinUNETR learn brain extraction from few
# labelled scans?
#
#   bash demo/downstream/run.sh [OUT]        (default build/downstream; see docs/downstream.md)
#
# 1. the labelled data: whole-head T1 scans with real brain masks from Debian packages, moved
#    and re-contrasted as the demo data are (demo/downstream/make_labelled_data.py): 20 copies
#    of ITK's example T1 to train on, 10 copies of Colin27 to test on;
# 2. 64 synthetic volumes from the bundled model `demo` (DPM-Solver++, 20 steps), (32, 64, 64),
#    already divisible by 32, so no padding;
# 3. mdiff-eval downstream: 150 pre-training steps (rotation + contrastive + inpainting, batch 2),
#    then 40 fine-tuning steps per cell (learning rate 5e-4) for 10 %, 25 % and 100 % of the 20
#    training copies (2, 5 and 20 volumes), 3 seeds, with and without the pre-trained encoder:
#    18 cells.
# Every step resumes: rerun the same command after an interruption and finished work is kept
# (the samples folder, the pre-training checkpoint, every finished cell's row in results.csv).
# Two threads (OMP_NUM_THREADS, default 2): 19 minutes on 2 nearly idle cores, 27 beside other
# jobs (2026-12-08, docs/downstream.md). Wrap it in `flock /tmp/mdiff-longrun.lock` on a shared
# machine, so long runs take turns.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-build/downstream}
BIN=.venv/bin
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
# Idle OpenMP threads sleep instead of spinning: beside another job, pre-training steps took 11 s
# before this was set and 2-3 s after (one observation, 2026-12-08).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT"
$BIN/python demo/downstream/make_labelled_data.py "$OUT/data" --train 20 --test 10
$BIN/mdiff-sample --model demo --n 64 --out "$OUT/samples" --seed 1000 --device cpu
ARGS=(--pretrain "$OUT/samples" --labelled "$OUT/data/labelled" --test "$OUT/data/test"
      --out "$OUT/run" --fractions 0.1,0.25,1 --seeds 3 --pretrain-steps 150 --finetune-steps 40
      --finetune-lr 5e-4 --batch-size 2 --feature-size 12 --device cpu)
$BIN/mdiff-eval downstream "${ARGS[@]}"
# the finished run again: nothing left to train, so it only reads the run and writes its report
$BIN/mdiff-eval downstream "${ARGS[@]}" --json > "$OUT/report.json"
