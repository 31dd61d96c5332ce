#!/usr/bin/env bash
# Parts 12 and 14's studies on one GPU (docs/results.md), in fp32 (IEEE: no TF32), every pair on
# the GPU. One pool, STUDY_DIR/runs-gpu, starts from the first study's 29 GPU runs (fp32 by their
# metrics, copied in under their fp32 keys) and the GPU runs committed since (docs/study/runs-gpu),
# so nothing is trained twice. One call of about 8 minutes trains about 25 runs, 12 to 16 at once,
# so the work is ordered by what a call can finish, in three streams that never train the same run
# at the same time (a run's folder is held by its training: a second one would fail):
#   A. part (a)'s presets and part (b)'s L2 strengths at 3 seeds, as the first study planned them:
#      seed-noreg and seed-all seeds 0 and 1 (4 runs) make every first-study GPU run one side of a
#      GPU pair
#   B. the new presets seed-sam and seed-trivial, 3 seeds (SAM's two passes a step make its runs
#      the longest: they start first), then their comparison with seed-noreg
#   C. label noise 0, 0.2, 0.4 for seed-noreg and seed-all on 25% of the training split, 2 seeds;
#      then the weight norms of seed-noreg, seed and seed-wd, seeds 3 to 5
# B's comparison and C's weights need A's seed-noreg runs: they wait for them (a marker file).
# Part (c)'s data sizes stay on the CPU, where all their runs are. Not in one call: the adaptive
# rounds of A's stages (run_stage presets-all / l2-cpu without --max-seeds 3) and the seed question's
# replication (run_stage seed-question), for a later GPU session.
# Usage: scripts/study_gpu.sh STUDY_DIR   (regulab on PATH or REGULAB=...; JOBS: one number of
#        processes for every stage, e.g. 1 for a dry run; STUDY_ARGS: options added to every
#        command, e.g. "--data cifar10-mini --epochs 1" for a dry run)
set -u
study=${1:?usage: scripts/study_gpu.sh STUDY_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/study_stages.sh"  # the stages' designs, the same as the CPU's
pool="$study/runs-gpu"
"$here/scripts/seed_pool.sh" cuda "$pool" >/dev/null

common=(--runs-dir "$pool" --threads 1 --margin 0.005 --precision fp32 ${STUDY_ARGS:-})
jobs() { echo "--jobs ${JOBS:-$1}"; }
wait_for() { until [ -e "$study/.$1" ]; do sleep 5; done; }
# shellcheck disable=SC2046  # jobs prints two words on purpose
stream_a() {
  run_stage presets-all "$study/presets-gpu" $(jobs 4) --max-seeds 3; touch "$study/.baselines"
  run_stage l2-cpu "$study/l2-gpu" $(jobs 4) --max-seeds 3
}
# shellcheck disable=SC2046
stream_b() {
  run_stage presets14-runs "$study/presets14-runs-gpu" $(jobs 6)
  wait_for baselines
  run_stage presets14 "$study/presets14-gpu" $(jobs 6)
}
# shellcheck disable=SC2046
stream_c() {
  run_stage noise "$study/noise-gpu" $(jobs 6)
  wait_for baselines
  run_stage weights "$study/weights-gpu" $(jobs 9)
}
# Under `timeout`, a TERM reaches every process of the group: each training saves its checkpoint
# and stops, and the same command continues them on a machine that still holds the folder.
stream_a > "$study/stream_a.log" 2>&1 &
stream_b > "$study/stream_b.log" 2>&1 &
stream_c > "$study/stream_c.log" 2>&1 &
wait
