"""Two trainings started together on one machine: images/s of each, against one training alone.

Each training is a real `regulab train` process with default threads (as a user with two
terminals would start them); its speed is the median training images/s of its epochs after the
first, from its own history. Alternates alone and together, `--repeats` times, and reports the
medians and their ratio. `--pythonpath DIR` runs another checkout's regulab (DIR/src), so the
same sitting can time the code before a change beside the code after it.

    python bench/two_trainings.py --repeats 2 [--pythonpath /tmp/old-checkout/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# The seed network at the seed's batch 32 on the bundled subset: 2,800 images an epoch, no download.
TRAIN = ["--preset", "seed", "--data", "cifar10-mini", "--epochs", "4", "--precision", "fp32"]


def start(out: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "regulab", "train", *TRAIN, "--out", str(out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def speed(out: Path) -> float:
    history = json.loads((out / "history.json").read_text())
    return statistics.median(row["images_per_s"] for row in history[1:])


def finish(procs: list[subprocess.Popen]) -> list[str]:
    outputs = [p.communicate()[0] for p in procs]
    for p, output in zip(procs, outputs):
        if p.returncode != 0:
            sys.exit(f"a training failed:\n{output}")
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--pythonpath", help="run the regulab found here instead of the installed one")
    parser.add_argument("--name", default="two_trainings", help="results/NAME.json")
    args = parser.parse_args()
    env = {**os.environ, **({"PYTHONPATH": args.pythonpath} if args.pythonpath else {})}
    alone, together, notes = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            out = Path(tmp) / f"alone{repeat}"
            finish([start(out, env)])
            alone.append(speed(out))
            outs = [Path(tmp) / f"pair{repeat}-{i}" for i in range(2)]
            started = time.perf_counter()
            outputs = finish([start(o, env) for o in outs])
            together.append([speed(o) for o in outs])
            notes += [line for output in outputs for line in output.splitlines() if line.startswith("threads:")]
            print(f"repeat {repeat}: alone {alone[-1]:,.0f} img/s; together {together[-1][0]:,.0f} and "
                  f"{together[-1][1]:,.0f} img/s ({time.perf_counter() - started:.0f} s for the pair)", flush=True)
    lone = statistics.median(alone)
    each = statistics.median(s for pair in together for s in pair)
    result = {"cores": os.cpu_count(), "command": TRAIN, "pythonpath": args.pythonpath, "alone_images_per_s": alone,
              "together_images_per_s": together, "median_alone": lone, "median_each_together": each,
              "each_together_over_alone": each / lone, "thread_choices": notes}
    print(f"\n| | images/s |\n|---|---|\n| one training alone (median) | {lone:,.0f} |\n"
          f"| each of two together (median) | {each:,.0f} ({each / lone:.0%} of alone) |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
