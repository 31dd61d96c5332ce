#!/usr/bin/env bash
# The study behind docs/results.md, on the real CIFAR-10 (REGULAB_DATA), the seed's split, 30 epochs:
#   size:    seed-noreg and seed-all at train_fraction 0.1, 0.25, 0.5, 1; 2 seeds
#   presets: the seven presets, paired against seed-noreg; 2 seeds, then 3
#   l2:      L2 strength 0 ... 1e-2 on the seed network alone; 2 seeds, then 3
# All three share one pool of runs, so a training they have in common (seed-noreg at 100% is
# also l2=0; the seed preset is also l2=1e-3) runs once. Finished runs are skipped and
# interrupted ones resumed: run the same command again to continue. Two runs at a time, one
# thread each (two one-thread trainings give more images/s than one two-thread training here).
# Usage: scripts/study.sh STUDY_DIR   (regulab on PATH, or REGULAB=/path/to/regulab)
set -u
study=${1:?usage: scripts/study.sh STUDY_DIR}
regulab=${REGULAB:-regulab}
common=(--runs-dir "$study/runs" --jobs 2 --threads 1)
presets=(seed-noreg seed seed-dropout seed-bn seed-augment seed-wd seed-all)
l2_grid=l2=0,1e-4,3e-4,1e-3,3e-3,1e-2

"$regulab" sweep seed-noreg seed-all --grid train_fraction=0.1,0.25,0.5,1 --seeds 2 --out "$study/size" \
  --baseline seed-noreg "${common[@]}"
for seeds in 2 3; do
  "$regulab" compare "${presets[@]}" --seeds "$seeds" --out "$study/presets" --baseline seed-noreg "${common[@]}"
  "$regulab" sweep seed-noreg --grid "$l2_grid" --seeds "$seeds" --out "$study/l2" --baseline l2=0 "${common[@]}"
done
