#!/usr/bin/env bash
# Part 12's study (docs/results.md): the seed's own question, every pair on the CPU in fp32.
# The options every stage shares (the pool STUDY_DIR/runs-cpu, fp32, the margin) are in
# study_cpu_options.sh. The first study's CPU runs (fp32 by their metrics; docs/study/runs, and the CPU
# cross-check of seed-noreg seed 2) are copied in under their fp32 keys, so nothing is trained twice.
#   1. seed vs seed-noreg: 10 paired seeds, then rounds of 2 while undecided on test accuracy, to 16
#   2. part (c): a third seed at every data size
#   3. the other undecided rows of part (a): seed-bn and seed-wd, 3 seeds, then to 6 while undecided
# The issue's optional stage, the L2 strengths, is scripts/study_l2.sh: it runs after part 14's study
# (scripts/studies_cpu.sh gives the order), which the project needs more than strengths "if time allows".
# Finished runs are skipped and interrupted ones resumed: run the same command again to continue.
# Usage: scripts/study_cpu.sh STUDY_DIR   (regulab on PATH, or REGULAB=/path/to/regulab)
set -eu
study=${1:?usage: scripts/study_cpu.sh STUDY_DIR}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/study_cpu_options.sh"
python=${PYTHON:-$(dirname "$(command -v "$regulab")")/python}
PYTHON=$python "$here/scripts/seed_pool.sh" cpu "$pool" "$here/docs/study/gpu/cpu-crosscheck"

"$regulab" compare seed-noreg seed --seeds 10 --max-seeds 16 --seeds-per-round 2 --baseline seed-noreg \
  --out "$study/seed-question" "${common[@]}"
"$regulab" sweep seed-noreg seed-all --grid train_fraction=0.1,0.25,0.5,1 --seeds 3 --baseline seed-noreg \
  --out "$study/size-cpu" "${common[@]}"
"$regulab" compare seed-noreg seed-bn seed-wd --seeds 3 --max-seeds 6 --seeds-per-round 1 --baseline seed-noreg \
  --out "$study/presets-cpu" "${common[@]}"
