"""What test-time augmentation buys, by the share of unsure test images it re-scores.

    python bench/tta_share.py RUN_DIR [--data PATH] [--shares 0.1 0.25 0.5 1]

Scores a finished run's weights on its test set as training's final test does (fp32): plain,
then with test-time augmentation on the given shares of the images whose plain prediction is
least confident (1: every image), timing each from scratch (the plain pass included). Prints a
table and writes bench/results/tta_share.json.
"""

import argparse
import json
import time
from pathlib import Path

import torch

from regulab.evaluation import predict, scores
from regulab.trained import TrainedRun

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default=None, help="the run's test data, if not where it was trained from")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    args = parser.parse_args()

    run = TrainedRun.load(args.run)
    raw = run.test_data(args.data)
    x, y = run.normalize(raw.x_test), torch.from_numpy(raw.y_test)
    level, batch_size = run.config.tta or 2, run.config.eval_batch_size
    started = time.perf_counter()
    plain = predict(run.model, x, batch_size, "fp32")
    plain_seconds = time.perf_counter() - started
    rows = [{"share": 0.0, "test_acc": scores(plain, y).acc, "seconds": plain_seconds}]
    for share in args.shares:
        started = time.perf_counter()
        logits = predict(run.model, x, batch_size, "fp32", level, share, plain=plain if share < 1 else None)
        seconds = time.perf_counter() - started + (plain_seconds if share < 1 else 0.0)
        rows.append({"share": share, "test_acc": scores(logits, y).acc, "seconds": seconds})

    lines = [f"| TTA level {level} on | test acc | seconds |", "|---|---|---|"]
    for r in rows:
        where = "no image (plain)" if r["share"] == 0 else f"the {r['share']:.0%} least sure"
        lines.append(f"| {where} | {r['test_acc']:.4f} | {r['seconds']:.1f} |")
    print("\n".join(lines))
    out = HERE / "results" / "tta_share.json"
    out.write_text(json.dumps({"run": str(args.run), "threads": torch.get_num_threads(), "rows": rows, "table": lines},
                              indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
