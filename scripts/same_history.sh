#!/usr/bin/env bash
# Two deterministic fp32 trainings on cifar10-mini, with this checkout's code and with COMMIT's,
# compared value by value by scripts/compare_histories.py: what a change to the engine must leave
# alone. One run is the seed preset (the L2 penalty); the other turns on mixup, cutmix, label
# smoothing, the moving average, L1 and augmentation together.
# Usage: scripts/same_history.sh COMMIT [EPOCHS]   (from the repository root, with .venv set up)
set -eu
commit=${1:?usage: scripts/same_history.sh COMMIT [EPOCHS]}
epochs=${2:-2}
here=$(pwd)
work=$(mktemp -d)
trap 'git -C "$here" worktree remove --force "$work/old" >/dev/null 2>&1; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/old" "$commit"
for side in old new; do
  src=$here/src
  [ "$side" = old ] && src=$work/old/src
  for run in "seed" "seed-noreg --mixup 0.2 --cutmix 1.0 --label-smoothing 0.1 --ema 0.9 --l1 1e-5 --penalty-scope all --augment crop,flip"; do
    name=$(echo "$run" | cut -d' ' -f1)
    # shellcheck disable=SC2086
    PYTHONPATH=$src "$here/.venv/bin/python" -m regulab train --preset $run --data cifar10-mini --epochs "$epochs" \
      --deterministic --precision fp32 --threads 1 --out "$work/$side/$name" --overwrite > "$work/$side-$name.log" 2>&1
  done
done
status=0
for name in seed seed-noreg; do
  echo "$name:"
  "$here/.venv/bin/python" "$here/scripts/compare_histories.py" "$work/old/$name" "$work/new/$name" || status=1
done
exit $status
