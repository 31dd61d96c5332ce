#!/usr/bin/env bash
# Parts 12 and 14's studies on one GPU (docs/results.md), in fp32 (IEEE: no TF32), every pair on
# the GPU. One pool, STUDY_DIR/runs-gpu, starts from the first study's 29 GPU runs (fp32 by their
# metrics, copied in under their fp32 keys) and the GPU runs committed since (docs/study/runs-gpu),
# so nothing is trained twice. Two streams at once keep the GPU full (10 and 4 processes: the
# seed question's 16 first runs in two waves); they share no run, so neither waits on the other:
#   A. seed vs seed-noreg: 10 paired seeds, then rounds of 2 while undecided on test accuracy, to 16
#      (first: seed-noreg seeds 0 and 1, which make every first-study GPU run one of a GPU pair);
#      then part (a)'s presets and part (b)'s L2 strengths from 3 seeds to 6 while undecided;
#      then the weight norms of seed-noreg, seed and seed-wd on 6 seeds
#   B. label noise 0, 0.2, 0.4 for seed-noreg and seed-all on 25% of the training split, 2 seeds;
#      the new presets (seed-sam, seed-trivial), 3 seeds; then their comparison with seed-noreg
#      (seeds 0-2, which stream A trains first)
# Part (c)'s data sizes stay on the CPU, where all their runs are.
# Usage: scripts/study_gpu.sh STUDY_DIR   (regulab on PATH or REGULAB=...; JOBS_A, JOBS_B: processes;
#        STUDY_ARGS: options added to every command, e.g. "--data cifar10-mini --epochs 1" for a dry run)
set -u
study=${1:?usage: scripts/study_gpu.sh STUDY_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/study_stages.sh"  # the stages' designs, the same as the CPU's
pool="$study/runs-gpu"
"$here/scripts/seed_pool.sh" cuda "$pool" >/dev/null

common=(--runs-dir "$pool" --threads 1 --margin 0.005 --precision fp32 ${STUDY_ARGS:-})
stream_a() {
  local jobs=(--jobs "${JOBS_A:-10}")
  run_stage seed-question "$study/seed-question-gpu" "${jobs[@]}" &&
  run_stage presets-all "$study/presets-gpu" "${jobs[@]}" &&
  run_stage l2-cpu "$study/l2-gpu" "${jobs[@]}" &&
  run_stage weights "$study/weights-gpu" "${jobs[@]}"
}
stream_b() {
  local jobs=(--jobs "${JOBS_B:-4}")
  run_stage noise "$study/noise-gpu" "${jobs[@]}" &&
  run_stage presets14-runs "$study/presets14-runs-gpu" "${jobs[@]}" &&
  run_stage presets14 "$study/presets14-gpu" "${jobs[@]}"
}
# Under `timeout`, a TERM reaches every process of the group: each training saves its checkpoint
# and stops, and the same command continues them on a machine that still holds the folder.
stream_a > "$study/stream_a.log" 2>&1 &
stream_b > "$study/stream_b.log" 2>&1 &
wait
