#!/usr/bin/env bash
# The CPU studies (docs/results.md): part 12's, then part 14's, every pair on this CPU in fp32, the
# stages of study_stages.sh in their order, or only the ones named. The first study's CPU runs
# (fp32 by their metrics; docs/study/runs, and the CPU cross-check of seed-noreg seed 2) and the
# pool's runs committed from earlier sessions are copied in first, so nothing is trained twice.
# Finished runs are skipped and interrupted ones resumed: run the same command again to continue.
# Usage: scripts/studies_cpu.sh STUDY_DIR [STAGE...]   (regulab on PATH, or REGULAB=/path/to/regulab)
set -eu
study=${1:?usage: scripts/studies_cpu.sh STUDY_DIR [STAGE...]}
shift
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/study_stages.sh"
for stage in "$@"; do
  listed "$stage" "${stages[@]}" || { echo "unknown stage '$stage'; the stages: ${stages[*]}" >&2; exit 2; }
done
python=${PYTHON:-$(dirname "$(command -v "$regulab")")/python}
PYTHON=$python "$here/scripts/seed_pool.sh" cpu "$pool" "$here/docs/study/gpu/cpu-crosscheck"
for stage in "${@:-${stages[@]}}"; do
  run_stage "$stage"
done
