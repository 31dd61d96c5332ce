"""The fast presets over several seeds on the real CIFAR-10: the 94% goal, measured.

    python bench/fast.py [--presets fast:5 fast-sgd:3 fast+epochs=8:5] [--epochs N] [--data PATH] [--device auto] [--threads N]
                         [--json PATH [--resume]]

Trains each preset (NAME:SEEDS, seeds 0, 1, ...; NAME+SETTING=VALUE+... for a variant, any
`regulab train` option) on all 50,000 training images and tests it on
the official 10,000 test images after training only. The presets take turns, seed by seed
(fast seed 0, fast-sgd seed 0, fast seed 1, ...), so that the machine's drift hits them alike
and their ratio of times means something. Prints per run the wall seconds from the call to the
metrics (training, evaluation, and the rest: data, set-up, figures), and the test accuracy
without and with test-time augmentation; then per preset the mean and standard deviation, and
the ratio of mean wall times to the last preset named. Writes bench/results/fast[_cuda].json.
The goal: mean TTA accuracy >= 0.94 over at least 5 seeds, mean wall time <= 480 s.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from regulab.config import make_config
from regulab.runtime import device_name, resolve_device
from regulab.study import parse_grid
from regulab.training import train

HERE = Path(__file__).resolve().parent


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


GOAL_ACC, GOAL_SECONDS, GOAL_SEEDS = 0.94, 480, 5


def summarize(runs: list[dict], plan: dict[str, int]) -> tuple[list[str], list[dict]]:
    """The table's lines, and per preset the mean and spread of every timing and accuracy."""
    lines = ["| preset | seed | train s | eval s | other s | wall s | test acc | test acc (TTA) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['seed']} | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} | "
              f"{r['wall_seconds'] - r['train_seconds'] - r['eval_seconds']:.0f} | {r['wall_seconds']:.0f} | "
              f"{r['test_acc']:.4f} | {r['test_acc_tta']:.4f} |" for r in runs]
    summary = []
    for preset in plan:
        group = [r for r in runs if r["preset"] == preset]
        if not group:
            continue
        stats = {k: mean_std([r[k] for r in group])
                 for k in ("wall_seconds", "train_seconds", "eval_seconds", "test_acc", "test_acc_tta")}
        stats = {k: {"mean": m, "std": s} for k, (m, s) in stats.items()}
        summary.append({"preset": preset, "seeds": len(group), **stats,
                        "goal_met": len(group) >= GOAL_SEEDS and stats["test_acc_tta"]["mean"] >= GOAL_ACC
                        and stats["wall_seconds"]["mean"] <= GOAL_SECONDS})
        lines.append(f"| {preset} | mean ± std (n={len(group)}) | {stats['train_seconds']['mean']:.0f} | "
                     f"{stats['eval_seconds']['mean']:.0f} | | "
                     f"{stats['wall_seconds']['mean']:.0f} ± {stats['wall_seconds']['std']:.0f} | "
                     f"{stats['test_acc']['mean']:.4f} ± {stats['test_acc']['std']:.4f} | "
                     f"{stats['test_acc_tta']['mean']:.4f} ± {stats['test_acc_tta']['std']:.4f} |")
    return lines, summary


def write(path: Path, machine: dict, plan: dict[str, int], runs: list[dict]) -> None:
    lines, summary = summarize(runs, plan)
    path.write_text(json.dumps({"machine": machine, "plan": plan, "runs": runs, "summary": summary, "table": lines},
                               indent=2))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["fast:3"], help="NAME:SEEDS, taking turns seed by seed")
    parser.add_argument("--epochs", type=int, default=None, help="override every preset's epochs")
    parser.add_argument("--data", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (default: its share of the free cores; "
                        "give the core count where a paused study still counts as running)")
    parser.add_argument("--json", type=Path, default=None, help="default bench/results/fast[_cuda].json")
    parser.add_argument("--resume", action="store_true", help="keep the runs the JSON file has (from this machine) and "
                        "train only the seeds it lacks: a bench interrupted, or extended to more seeds")
    args = parser.parse_args()

    plan = {name: int(seeds) for name, _, seeds in (p.rpartition(":") for p in args.presets)}
    # NAME+SETTING=VALUE+...: the preset, and the overrides that make this variant of it
    variants = {label: (label.split("+")[0], {k: v[0] for k, v in parse_grid(label.split("+")[1:]).items()})
                for label in plan}
    device = resolve_device(args.device)
    machine = {"device": device_name(device),
               "threads": torch.get_num_threads(), "torch": torch.__version__}
    path = args.json or HERE / "results" / f"fast{'_cuda' if device.type == 'cuda' else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    runs = []
    if args.resume and path.exists():
        earlier = json.loads(path.read_text())
        if earlier["machine"] != machine:
            raise SystemExit(f"{path} holds runs from {earlier['machine']}, not this {machine}; pass another --json")
        runs = earlier["runs"]  # every one kept; the summary reads those of this plan's presets
    done = {(r["preset"], r["seed"]) for r in runs}
    for seed in range(max(plan.values())):
        for preset in [name for name, seeds in plan.items() if seed < seeds and (name, seed) not in done]:
            out = HERE / "out" / f"{preset}_{device.type}_s{seed}"  # weights stay out of git
            started = time.perf_counter()
            name, overrides = variants[preset]
            if args.epochs:
                overrides = {**overrides, "epochs": args.epochs}
            cfg = make_config(name, **overrides, data=args.data, device=args.device, seed=seed, out=str(out),
                              threads=args.threads)
            m = train(cfg, overwrite=True, progress=False)
            runs.append({"preset": preset, "seed": seed, "wall_seconds": time.perf_counter() - started,
                         "train_seconds": m["train_seconds"], "eval_seconds": m["eval_seconds"],
                         "test_acc": m["test_acc"], "test_acc_tta": m["test_acc_tta"],
                         "median_images_per_s": m["median_images_per_s"], "precision": m["precision"],
                         "config": {k: v for k, v in vars(cfg).items() if k not in ("data", "out")}})
            print(f"{preset} seed {seed}: {runs[-1]['wall_seconds']:.0f} s, test acc {m['test_acc_tta']:.4f}", flush=True)
            write(path, machine, plan, runs)  # after every run: an hours-long bench loses none

    lines, summary = summarize(runs, plan)
    print("\n".join(lines))
    reference = summary[-1]
    for s in summary:
        ratio = s["wall_seconds"]["mean"] / reference["wall_seconds"]["mean"]
        print(f"{s['preset']}: mean TTA test accuracy {s['test_acc_tta']['mean']:.4f} in {s['wall_seconds']['mean']:.0f} s "
              f"({ratio:.2f}x the time of {reference['preset']}); >= {GOAL_ACC:.0%} in <= {GOAL_SECONDS} s over >= "
              f"{GOAL_SEEDS} seeds: {'MET' if s['goal_met'] else 'NOT MET'}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
