#!/usr/bin/env bash
# Two deterministic fp32 trainings on cifar10-mini, with this checkout's code and with COMMIT's,
# compared value by value (every history column but the timings, and the test scores): what a
# change to the engine must leave alone. One run is the seed preset (the L2 penalty); the other
# turns on mixup, cutmix, label smoothing, the moving average, L1 and augmentation together.
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
"$here/.venv/bin/python" - "$work" <<'PY'
import json, sys
from pathlib import Path
work = Path(sys.argv[1])
timing = {"seconds", "train_seconds", "images_per_s"}
failed = False
for name in ("seed", "seed-noreg"):
    old, new = (json.loads((work / side / name / "history.json").read_text()) for side in ("old", "new"))
    pairs = [(f"epoch {a['epoch']} {k}", a[k], b.get(k)) for a, b in zip(old, new) for k in a if k not in timing]
    metrics = [json.loads((work / side / name / "metrics.json").read_text()) for side in ("old", "new")]
    pairs += [(k, metrics[0][k], metrics[1][k]) for k in ("test_acc", "test_loss", "test_ece")]
    differ = [p for p in pairs if p[1] != p[2]]
    print(f"{name}: {len(pairs) - len(differ)} of {len(pairs)} values equal" + "".join(f"\n  {p}" for p in differ))
    failed |= bool(differ) or len(old) != len(new)
sys.exit(1 if failed else 0)
PY
