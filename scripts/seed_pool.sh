#!/usr/bin/env bash
# Start a study's pool of runs for one device from the committed runs, so that nothing is trained
# twice: the first study's runs on that device (docs/study/runs; fp32 by their metrics) and any
# further RUN folders, copied in under their fp32 keys (scripts/pin_precision.py), and the runs the
# pool finished on other machines, committed under docs/study/ by the pool's name.
# Usage: scripts/seed_pool.sh cpu|cuda POOL [RUN...]   (PYTHON: a Python that imports regulab)
set -eu
device=${1:?usage: scripts/seed_pool.sh cpu|cuda POOL [RUN...]}
pool=${2:?usage: scripts/seed_pool.sh cpu|cuda POOL [RUN...]}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$pool"
first=$(grep -l "\"device\": \"$device\"" "$here"/docs/study/runs/*/metrics.json | xargs -n1 dirname)
"${PYTHON:-python3}" "$here/scripts/pin_precision.py" fp32 "$pool" $first "$@"
for run in "$here/docs/study/$(basename "$pool")"/*/; do
  if [ -d "$run" ] && [ ! -e "$pool/$(basename "$run")" ]; then cp -rL "$run" "$pool/"; fi
done
