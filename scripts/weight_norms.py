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


def norm_ratios(folder: str | Path, group: str, baseline: str) -> dict:
    """Per kernel, the group's and the baseline's mean norm after the last epoch and the paired
    ratio's interval, over the seeds both recorded norms on one machine; the penalty's share of
    the group's training loss in its first and last epoch (None without a penalty)."""
    _, runs = load_study(Path(folder))
    by_seed = {label: {r["seed"]: r for r in runs if r["group"] == label and norm_columns(r["history"])}
               for label in (group, baseline)}
    metrics = {label: {seed: r["metrics"] for seed, r in seeds.items()} for label, seeds in by_seed.items()}
    seeds, _ = pairs(metrics[group], metrics[baseline])
    if len(seeds) < 2:
        sys.exit(f"{folder}: {len(seeds)} seed(s) of {group} and {baseline} on one machine recorded kernel norms; "
                 "an interval needs 2")
    mine, theirs = ([by_seed[label][s]["history"][-1] for s in seeds] for label in (group, baseline))
    kernels = {key.removeprefix("norm_"): {"group": sum(a[key] for a in mine) / len(mine),
                                           "baseline": sum(b[key] for b in theirs) / len(theirs),
                                           "ratio": t_interval([a[key] / b[key] for a, b in zip(mine, theirs)])}
               for key in norm_columns([mine[0]])}
    histories = [by_seed[group][s]["history"] for s in seeds]
    share = None
    if histories[0][0].get("penalty_share") is not None:
        share = {"first": t_interval([h[0]["penalty_share"] for h in histories]),
                 "last": t_interval([h[-1]["penalty_share"] for h in histories]), "epochs": len(histories[0])}
    return {"seeds": seeds, "kernels": kernels, "penalty_share": share}


def main(folder: str, group: str, baseline: str) -> None:
    found = norm_ratios(folder, group, baseline)
    seeds = found["seeds"]
    print(f"{group} over {baseline}, last epoch, {len(seeds)} pairs (seeds {', '.join(map(str, seeds))}):\n")
    print(f"| kernel | {group} | {baseline} | ratio [95% interval] |\n|---|---|---|---|")
    for name, k in found["kernels"].items():
        print(f"| {name} | {k['group']:.2f} | {k['baseline']:.2f} | {interval_text(k['ratio'])} |")
    share = found["penalty_share"]
    if share:
        print(f"\n{group}: the penalty's share of the training loss, epoch 1 {interval_text(share['first'])}, "
              f"epoch {share['epochs']} {interval_text(share['last'])}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(f"usage: python scripts/weight_norms.py STUDY_FOLDER GROUP BASELINE\n{__doc__}")
    main(*sys.argv[1:4])
