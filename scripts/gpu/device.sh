#!/usr/bin/env bash
# The device side of scripts/gpu/README.md: run from the repository root on the GPU machine.
#   device.sh receive          keep the CIFAR-10 part this call carried (.dev/cifar/a, b or c)
#   device.sh train SECONDS    with part c: rebuild CIFAR-10, check it, then scripts/study_gpu.sh for
#                              SECONDS; the finished runs' small files and each part's plan to $OUT
#   device.sh part17 SECONDS   with part c and .dev/airbench: rebuild and check CIFAR-10, then part 17's
#                              two checks (airbench against fast; part (a) from one compare command)
set -u
store=/tmp/cifar-webp
mkdir -p "$store"
for part in .dev/cifar/*/; do cp -r "$part" "$store/"; done
ls "$store"
case "${1:-}" in train | part17) ;; *) exit 0 ;; esac
seconds=${2:?usage: device.sh train|part17 SECONDS}
started=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .dev/whl/*.whl || exit 1
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 REGULAB_DATA=/tmp/cifar/cifar-10-batches-py
python3 scripts/gpu/cifar_webp.py unpack /tmp/cifar "$store"/a "$store"/b "$store"/c || exit 1
sum=$(python3 scripts/gpu/cifar_webp.py checksum "$REGULAB_DATA")
[ "$sum" = "$(cat "$store/c/sha256")" ] || { echo "CIFAR-10 differs from the archive packed: $sum"; exit 1; }
echo "CIFAR-10 rebuilt, pixels and labels as packed ($sum)"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"
python3 -c "from regulab.data import load_data; load_data()"  # the cache, once, not once per process
# MPS runs the processes' kernels side by side: 2,288 steps/s in all at 14 processes, against 803
# without it (docs/study/gpu/README.md).
nvidia-cuda-mps-control -d && echo "MPS on" || echo "MPS unavailable"
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec python3 -m regulab "$@"\n' > /tmp/bin/regulab && chmod +x /tmp/bin/regulab
export PATH=/tmp/bin:$PATH
if [ "$1" = part17 ]; then
  # airbench first (about 3 minutes, its 10 runs and fast's 10 in blocks of 5), then part (a)'s 27
  # runs from one command, placed by regulab's launcher, until 45 s before the limit.
  python3 bench/versus_airbench.py --airbench .dev/airbench --data "$REGULAB_DATA" --runs 10 --block 5 2>&1 | tail -n 8
  left=$(( seconds - ($(date +%s) - started) - 45 ))
  mkdir -p /tmp/p17 && a_started=$(date +%s)
  timeout --kill-after=30 "$left" regulab compare seed-noreg seed seed-dropout seed-augment seed-bn seed-wd seed-all \
    seed-sam seed-trivial --seeds 3 --baseline seed-noreg --precision fp32 --out /tmp/p17/part-a \
    --runs-dir /tmp/p17/runs > /tmp/p17/part-a.log 2>&1
  echo "part (a) from one command: $(ls /tmp/p17/runs/*/metrics.json 2>/dev/null | wc -l) of 27 runs finished" \
    "in $(( $(date +%s) - a_started )) s" | tee /tmp/p17/part-a.time
  grep -m1 -i "plan\|at a time" /tmp/p17/part-a.log
  tar -czf "$OUT/part17.tgz" bench/results/versus_airbench.json -C /tmp/p17 part-a.log part-a.time part-a/summary.md part-a/sweep.json
  exit 0
fi
left=$(( seconds - ($(date +%s) - started) - 45 ))  # 45 s kept for the runs' last writes and the archive
echo "training for $left s"
timeout --kill-after=30 "$left" scripts/study_gpu.sh /tmp/study
tail -n 3 /tmp/study/stream_*.log
cd /tmp/study || exit 1
small=$(for run in runs-gpu/*/; do [ -f "$run/metrics.json" ] && ls "$run"{config.json,config.toml,history.json,history.csv,metrics.json,test_predictions.npz} 2>/dev/null; done)
tar -czf "$OUT/study-gpu.tgz" */sweep.json stream_*.log $small
echo "$(ls -d runs-gpu/*/ | wc -l) runs in the pool, $(ls runs-gpu/*/metrics.json | wc -l) finished; $(du -h "$OUT/study-gpu.tgz" | cut -f1) back"
