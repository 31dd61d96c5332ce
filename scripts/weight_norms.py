"""What a regularizer did to the weights, in numbers: each kernel's L2 norm after the last epoch,
a group's over its baseline's, paired by seed on one device (the runs that recorded norms), the
mean ratio with its 95% Student-t interval; and the penalty's share of the group's training loss
in its first and last epoch. The report's weights.png draws the same histories per epoch.

    python scripts/weight_norms.py docs/study/seed-question seed seed-noreg
"""

from __future__ import annotations

import sys
from pathlib import Path

from regulab.analysis import pairs
from regulab.figures import norm_columns
from regulab.report import interval_text
from regulab.stats import t_interval
from regulab.study import load_study


def main(folder: str, group: str, baseline: str) -> None:
    _, runs = load_study(Path(folder))
    by_seed = {label: {r["seed"]: r for r in runs if r["group"] == label and norm_columns(r["history"])}
               for label in (group, baseline)}
    metrics = {label: {seed: r["metrics"] for seed, r in seeds.items()} for label, seeds in by_seed.items()}
    seeds, _ = pairs(metrics[group], metrics[baseline])
    if len(seeds) < 2:
        sys.exit(f"{folder}: {len(seeds)} seed(s) of {group} and {baseline} on one device recorded kernel norms; "
                 "an interval needs 2")
    mine, theirs = ([by_seed[label][s]["history"][-1] for s in seeds] for label in (group, baseline))
    print(f"{group} over {baseline}, last epoch, {len(seeds)} pairs (seeds {', '.join(map(str, seeds))}):\n")
    print(f"| kernel | {group} | {baseline} | ratio [95% interval] |\n|---|---|---|---|")
    for key in norm_columns([mine[0]]):
        ratio = t_interval([a[key] / b[key] for a, b in zip(mine, theirs)])
        print(f"| {key.removeprefix('norm_')} | {sum(a[key] for a in mine) / len(mine):.2f} "
              f"| {sum(b[key] for b in theirs) / len(theirs):.2f} | {interval_text(ratio)} |")
    histories = [by_seed[group][s]["history"] for s in seeds]
    if histories[0][0].get("penalty_share") is not None:
        first, last = (t_interval([h[at]["penalty_share"] for h in histories]) for at in (0, -1))
        print(f"\n{group}: the penalty's share of the training loss, epoch 1 {interval_text(first)}, "
              f"epoch {len(histories[0])} {interval_text(last)}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: python scripts/weight_norms.py STUDY_FOLDER GROUP BASELINE\n{__doc__}")
    main(*sys.argv[1:4])
