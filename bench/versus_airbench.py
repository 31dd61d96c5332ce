"""airbench94_muon and regulab's fast preset on one GPU, taking turns in blocks: time and accuracy.

    python bench/versus_airbench.py --airbench DIR --data ARCHIVE [--runs 10] [--block 5] [--compile default]

DIR holds airbench's own files (../shared/peers/airbench: airbench94_muon.py, make_pt.py, run.py),
run unmodified: each airbench block is one `run.py BLOCK MODE` process (a warm-up run that
compiles, then BLOCK runs), each regulab block BLOCK `--preset fast` trainings in this process
(the first of them pays CUDA's start-up outside its timed parts). The blocks alternate, airbench
first, so the machine's drift hits both alike. The times compared are each tool's own clock for
the same work, training and the final evaluation with test-time augmentation, start-up and
compilation excluded: airbench's `eval` row (CUDA events), regulab's train_seconds + eval_seconds
(wall clock around synchronized work). Accuracy is each one's test accuracy with TTA. airbench
compiles with max-autotune in its own file; that takes minutes a process, so the default mode is
used here unless --compile says otherwise (the choice is written to the JSON).

Prints per tool the mean time and accuracy, each with its 95% t interval over the runs, and the
ratio of mean times; writes bench/results/versus_airbench.json. Needs a CUDA GPU.
"""

import argparse
import json
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
from scipy import stats

from regulab.config import make_config
from regulab.runtime import device_name
from regulab.training import train

HERE = Path(__file__).resolve().parent
EVAL_ROW = re.compile(r"^\|\s*\S+\s*\|\s*eval\s*\|")  # airbench's final row: | run | eval | ... | time_seconds |


def airbench_block(airbench: Path, workdir: Path, runs: int, mode: str) -> list[dict]:
    """One airbench process of `runs` runs: each run's time by airbench's clock and its TTA test accuracy."""
    done = subprocess.run([sys.executable, str(airbench / "run.py"), str(runs), mode], cwd=workdir,
                          capture_output=True, text=True, check=True).stdout
    times = [float(line.strip().strip("|").split("|")[-1]) for line in done.splitlines() if EVAL_ROW.match(line)]
    accs = [json.loads(line)["tta_test_acc"] for line in done.splitlines() if line.startswith("{")]
    times = times[-len(accs):]  # the warm-up run prints an eval row too, and no JSON line
    return [{"tool": "airbench94_muon", "seconds": t, "test_acc_tta": a} for t, a in zip(times, accs)]


def regulab_block(seeds: range, data: str, out: Path) -> list[dict]:
    runs = []
    for seed in seeds:
        m = train(make_config("fast", data=data, device="cuda", seed=seed, out=str(out / f"fast_s{seed}")),
                  overwrite=True, progress=False)
        runs.append({"tool": "regulab fast", "seed": seed, "seconds": m["train_seconds"] + m["eval_seconds"],
                     "train_seconds": m["train_seconds"], "test_acc_tta": m["test_acc_tta"]})
    return runs


def interval(values: list[float]) -> dict:
    """The mean and its 95% t interval (Student's t over the runs)."""
    n, mean = len(values), sum(values) / len(values)
    half = stats.t.ppf(0.975, n - 1) * stats.tstd(values) / n**0.5 if n > 1 else float("nan")
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airbench", type=Path, required=True, help="folder with airbench94_muon.py, make_pt.py, run.py")
    parser.add_argument("--data", required=True, help="the CIFAR-10 python archive (.tar.gz) or its extracted folder")
    parser.add_argument("--runs", type=int, default=10, help="runs of each tool")
    parser.add_argument("--block", type=int, default=5, help="runs of one tool before the other takes its turn")
    parser.add_argument("--compile", default="default", choices=("max-autotune", "default", "none"),
                        help="airbench's torch.compile mode (its own file: max-autotune)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("versus_airbench.py: no CUDA GPU here; airbench needs one. Run it on a GPU machine")

    workdir = Path(tempfile.mkdtemp(prefix="airbench-"))
    archive = Path(args.data)
    if archive.is_dir():  # make_pt.py reads the archive; pack the folder as one
        packed = workdir / "cifar-10-python.tar.gz"
        with tarfile.open(packed, "w:gz") as tar:
            tar.add(archive, arcname="cifar-10-batches-py")
        archive = packed
    subprocess.run([sys.executable, str(args.airbench / "make_pt.py"), str(archive), str(workdir / "cifar10")], check=True)

    runs = []
    for start in range(0, args.runs, args.block):
        block = min(args.block, args.runs - start)
        runs += airbench_block(args.airbench, workdir, block, args.compile)
        runs += regulab_block(range(start, start + block), args.data, HERE / "out" / "versus_airbench")
        print(f"{start + block} of {args.runs} runs each", flush=True)

    summary = {}
    for tool in ("airbench94_muon", "regulab fast"):
        mine = [r for r in runs if r["tool"] == tool]
        summary[tool] = {"seconds": interval([r["seconds"] for r in mine]),
                         "test_acc_tta": interval([r["test_acc_tta"] for r in mine])}
    ratio = summary["regulab fast"]["seconds"]["mean"] / summary["airbench94_muon"]["seconds"]["mean"]
    print(f"{device_name(torch.device('cuda'))}, PyTorch {torch.__version__}, airbench compiled: {args.compile}")
    print("| tool | runs | seconds (own clock), mean [95%] | test accuracy with TTA, mean [95%] |\n|---|---|---|---|")
    for tool, s in summary.items():
        t, a = s["seconds"], s["test_acc_tta"]
        print(f"| {tool} | {t['n']} | {t['mean']:.2f} [{t['low']:.2f}, {t['high']:.2f}] | "
              f"{100 * a['mean']:.2f}% [{100 * a['low']:.2f}, {100 * a['high']:.2f}] |")
    print(f"regulab's time over airbench's: {ratio:.2f}")
    out = HERE / "results" / "versus_airbench.json"
    out.write_text(json.dumps({"gpu": device_name(torch.device("cuda")), "torch": torch.__version__,
                               "airbench_compile": args.compile, "block": args.block, "runs": runs,
                               "summary": summary, "regulab_over_airbench_seconds": ratio}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
