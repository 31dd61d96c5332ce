#!/usr/bin/env bash
# Part 14's study (docs/results.md), after part 12's (two studies at once on two cores halve both):
# in the same CPU pool, fp32, so every new run pairs with the committed ones on one device.
#   1. the new presets against seed-noreg, 3 seeds (seed-noreg's runs are part 12's)
#   2. what each regularizer does to the weights: seed-noreg, seed and seed-wd on seeds whose runs
#      recorded kernel norms (regulab records them from part 14 on: part 12's later seeds do)
#   3. label noise 0, 0.2, 0.4 for seed-noreg and seed-all on 25% of the training split, 2 seeds
#      (P = 0 is part 12's data-size runs at 25%, trained in the same pool)
# Usage: scripts/study_part14.sh STUDY_DIR   (regulab on PATH, or REGULAB=/path/to/regulab)
set -eu
study=${1:?usage: scripts/study_part14.sh STUDY_DIR}
. "$(dirname "$0")/study_cpu_options.sh"
"$regulab" compare seed-noreg seed-sam seed-trivial --seeds 3 --baseline seed-noreg --out "$study/presets14" "${common[@]}"
"$regulab" compare seed-noreg seed seed-wd --seeds 6 --baseline seed-noreg --out "$study/weights" "${common[@]}"
"$regulab" sweep seed-noreg seed-all --grid label_noise=0,0.2,0.4 --train-fraction 0.25 --seeds 2 \
  --baseline label_noise=0 --out "$study/noise" "${common[@]}"
