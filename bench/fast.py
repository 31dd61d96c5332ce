"""`--preset fast` over several seeds on the real CIFAR-10: the 94% goal, measured.

    python bench/fast.py [--seeds 3] [--epochs 10 ...] [--data PATH] [--device auto]

Trains the preset on all 50,000 training images once per seed (and per --epochs value, to
trace accuracy against time), evaluates on the official 10,000 test images after training
only, and prints a table: per run, the wall seconds of training and of evaluation, the test
accuracy without and with test-time augmentation; then per epoch count the mean and standard
deviation over seeds. Writes bench/results/fast[_<device>].json. The goal holds when the mean
TTA accuracy over at least 3 seeds is >= 0.94 and the mean wall time is <= 15 minutes.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from regulab.config import make_config
from regulab.runtime import resolve_device
from regulab.training import train

HERE = Path(__file__).resolve().parent


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs="+", default=[10], help="one or more run lengths")
    parser.add_argument("--data", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=None, help="default bench/results/fast[_cuda].json")
    args = parser.parse_args()

    device = resolve_device(args.device)
    runs = []
    for epochs in args.epochs:
        for seed in range(args.seeds):
            out = HERE / "out" / f"fast_{device.type}_e{epochs}_s{seed}"  # weights stay out of git
            started = time.perf_counter()
            cfg = make_config("fast", data=args.data, device=args.device, seed=seed, epochs=epochs, out=str(out))
            m = train(cfg, overwrite=True, progress=False)
            runs.append({"epochs": epochs, "seed": seed, "wall_seconds": time.perf_counter() - started,
                         "train_seconds": m["train_seconds"], "eval_seconds": m["eval_seconds"],
                         "test_acc": m["test_acc"], "test_acc_tta": m["test_acc_tta"],
                         "median_images_per_s": m["median_images_per_s"], "precision": m["precision"],
                         "config": {k: v for k, v in vars(cfg).items() if k not in ("data", "out")}})

    lines = ["| epochs | seed | train s | eval s | wall s | test acc | test acc (TTA) |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['epochs']} | {r['seed']} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} | {r['wall_seconds']:.0f} | "
              f"{r['test_acc']:.4f} | {r['test_acc_tta']:.4f} |" for r in runs]
    summary = []
    for epochs in args.epochs:
        group = [r for r in runs if r["epochs"] == epochs]
        stats = {k: mean_std([r[k] for r in group]) for k in ("wall_seconds", "train_seconds", "test_acc", "test_acc_tta")}
        stats = {k: {"mean": m, "std": s} for k, (m, s) in stats.items()}
        summary.append({"epochs": epochs, "seeds": len(group), **stats,
                        "goal_met": len(group) >= 3 and stats["test_acc_tta"]["mean"] >= 0.94
                        and stats["wall_seconds"]["mean"] <= 15 * 60})
        lines.append(f"| {epochs} | mean ± std (n={len(group)}) | {stats['train_seconds']['mean']:.0f} | | "
                     f"{stats['wall_seconds']['mean']:.0f} ± {stats['wall_seconds']['std']:.0f} | "
                     f"{stats['test_acc']['mean']:.4f} ± {stats['test_acc']['std']:.4f} | "
                     f"{stats['test_acc_tta']['mean']:.4f} ± {stats['test_acc_tta']['std']:.4f} |")
    print("\n".join(lines))
    for s in summary:
        print(f"{s['epochs']} epochs: mean TTA test accuracy {s['test_acc_tta']['mean']:.4f} in "
              f"{s['wall_seconds']['mean'] / 60:.1f} min; 94% in <= 15 min over >= 3 seeds: "
              f"{'MET' if s['goal_met'] else 'NOT MET'}")

    machine = {"device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    path = args.json or HERE / "results" / f"fast{'_cuda' if device.type == 'cuda' else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": runs, "summary": summary, "table": lines}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
