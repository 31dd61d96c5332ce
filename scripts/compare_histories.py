"""Two runs of the same settings, compared value by value: every history column both have (less
the timings) and the test metrics. For checking that a change to the code leaves what a
training computes as it was (train both with --deterministic --precision fp32 --threads 1).

    python scripts/compare_histories.py RUN_BEFORE RUN_AFTER
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TIMING = {"seconds", "train_seconds", "images_per_s"}


def main(before: str, after: str) -> int:
    a, b = (json.loads((Path(p) / "history.json").read_text()) for p in (before, after))
    if len(a) != len(b):
        print(f"different lengths: {len(a)} and {len(b)} epochs")
        return 1
    compared = differing = 0
    for row_a, row_b in zip(a, b):
        for key in row_a.keys() & row_b.keys() - TIMING:
            compared += 1
            if row_a[key] != row_b[key]:
                differing += 1
                print(f"epoch {row_a['epoch']}: {key} {row_a[key]!r} -> {row_b[key]!r}")
    ma, mb = (json.loads((Path(p) / "metrics.json").read_text()) for p in (before, after))
    tests = [k for k in ma if k.startswith(("test_", "best_", "final_")) and k != "test_seconds" and k in mb]
    differing_metrics = [k for k in tests if ma[k] != mb[k]]
    new = sorted(set(b[0]) - set(a[0]))
    print(f"history: {compared - differing} of {compared} values equal over {len(a)} epochs"
          + (f" (columns only the second has: {', '.join(new)})" if new else "")
          + f"; metrics: {len(tests) - len(differing_metrics)} of {len(tests)} equal {differing_metrics or ''}")
    return 1 if differing or differing_metrics else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
