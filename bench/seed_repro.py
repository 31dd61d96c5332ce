"""The full seed reproduction on the real CIFAR-10, judged against the notebook's own numbers.

    python bench/seed_repro.py [--data PATH] [--precision auto|bf16|fp32] [--seed 0]

Trains `--preset seed` for 30 epochs, then writes into bench/results/:
  seed_repro.md    per-epoch table, ours beside the notebook's (bench/seed_keras_history.csv)
  seed_repro.json  the same numbers, the checks and the timing
  seed_repro.png   both runs' curves in one figure (notebook dashed)
  seed_repro_curves.png  the run's own curves.png
and prints the checks. The reproduction holds when the best val_acc is within 2 points of the
seed's 0.7332, train acc at epoch 30 is at least 0.95, the lowest val_loss falls in epochs 7-16,
and the whole run (validation included) takes at most 15 minutes.
"""

import argparse
import csv
import io
import json
import time
from pathlib import Path

from matplotlib.figure import Figure

from regulab.config import make_config
from regulab.training import train

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEYS = ("loss", "acc", "val_loss", "val_acc")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()

    seed_rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(HERE / "seed_keras_history.csv"))]
    run_dir = HERE / "out" / f"seed_repro_{args.precision}_{args.seed}"  # weights stay out of git
    started = time.perf_counter()
    metrics = train(make_config("seed", data=args.data, precision=args.precision, seed=args.seed,
                                epochs=args.epochs, out=str(run_dir)), overwrite=True)
    wall = time.perf_counter() - started
    ours = json.loads((run_dir / "history.json").read_text())

    min_loss_epoch = metrics["min_val_loss_epoch"]
    checks = {
        "best val_acc within 2 points of 0.7332": abs(metrics["best_val_acc"] - 0.7332) <= 0.02,
        "train acc at the last epoch >= 0.95": ours[-1]["acc"] >= 0.95,
        "lowest val_loss in epochs 7-16": 7 <= min_loss_epoch <= 16,
        "whole run <= 15 minutes": wall <= 15 * 60,
    }

    lines = ["| epoch | loss (seed / ours) | acc | val_loss | val_acc | s |", "|---|---|---|---|---|---|"]
    for seed_row, row in zip(seed_rows, ours):
        cells = [f"{seed_row[k]:.4f} / {row[k]:.4f}" for k in KEYS]
        lines.append(f"| {row['epoch']} | " + " | ".join(cells) + f" | {row['seconds']:.1f} |")
    summary = (f"best epoch {metrics['best_epoch']} (seed 12), best val_acc {metrics['best_val_acc']:.4f} (seed 0.7332), "
               f"lowest val_loss at epoch {min_loss_epoch} (seed 11), test_acc {metrics['test_acc']:.4f} (best weights) / "
               f"{metrics['test_acc_last']:.4f} (last); {wall:.0f} s wall, {metrics['precision']}, "
               f"median {metrics['median_images_per_s']:,.0f} train images/s")
    md = "\n".join([f"# Seed reproduction ({metrics['precision']}, seed {args.seed})", "", summary, "",
                    *[f"- {'PASS' if ok else 'FAIL'}: {name}" for name, ok in checks.items()], "", *lines, ""])
    stem = f"seed_repro_{metrics['precision']}"
    (RESULTS / f"{stem}.md").write_text(md)
    (RESULTS / f"{stem}.json").write_text(json.dumps(
        {"wall_seconds": wall, "checks": checks, "metrics": metrics, "history": ours, "seed_history": seed_rows},
        indent=2) + "\n")
    plot_against_seed(seed_rows, ours, RESULTS / f"{stem}.png")
    (RESULTS / f"{stem}_curves.png").write_bytes((run_dir / "curves.png").read_bytes())
    print(md)


def plot_against_seed(seed_rows, ours, path):
    fig = Figure(figsize=(10, 5), layout="constrained")
    for ax, key, label in zip(fig.subplots(1, 2), ("loss", "acc"), ("loss", "accuracy")):
        for rows, style, who in ((seed_rows, "--", "seed (Keras, GPU)"), (ours, "-", "regulab")):
            epochs = [r["epoch"] for r in rows]
            ax.plot(epochs, [r[key] for r in rows], style, color="blue", label=f"train, {who}")
            ax.plot(epochs, [r[f"val_{key}"] for r in rows], style, color="orange", label=f"val, {who}")
        ax.set(title=f"train and val {label}", xlabel="epochs", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=80)
    path.write_bytes(png.getvalue())


if __name__ == "__main__":
    main()
