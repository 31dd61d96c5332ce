#!/usr/bin/env bash
# Part 12's optional stage (docs/results.md, part (b)): the L2 strengths whose test-accuracy verdict
# is open, in the CPU pool in fp32, 3 seeds, then one seed a round to 6 while undecided. It runs
# after part 14's study (scripts/studies_cpu.sh): the issue asks for it "if time allows".
# Finished runs are skipped and interrupted ones resumed: run the same command again to continue.
# Usage: scripts/study_l2.sh STUDY_DIR   (regulab on PATH, or REGULAB=/path/to/regulab)
set -eu
study=${1:?usage: scripts/study_l2.sh STUDY_DIR}
. "$(dirname "$0")/study_cpu_options.sh"
"$regulab" sweep seed-noreg --grid l2=0,1e-4,3e-4,1e-3,3e-3,1e-2 --seeds 3 --max-seeds 6 --seeds-per-round 1 \
  --baseline l2=0 --out "$study/l2-cpu" "${common[@]}"
