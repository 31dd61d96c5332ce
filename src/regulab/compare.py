"""`regulab compare`: presets x seeds, on the same split and data order, side by side.

Each run is a `regulab train` child process writing `FOLDER/<preset>/seed-<n>/`. Runs already
finished are skipped and interrupted ones resumed, so a comparison stopped at any point
continues where it was. Several runs go at once when there are cores for them, each pinned to
its share of the cores: two trainings contending for the same cores are many times slower
than the two run one after the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regulab.config import PRESETS
from regulab.errors import RegulabError, unknown_name
from regulab.rundir import CHECKPOINT, METRICS, RunDir


def run_dir(folder: Path, preset: str, seed: int) -> Path:
    return folder / preset / f"seed-{seed}"


def compare(presets: list[str], seeds: int, folder: Path, jobs: int = 0, overrides: list[str] = (),
            log=print) -> list[Path]:
    """Train every preset with seeds 0..seeds-1 (skipping finished runs), then return their folders."""
    for preset in presets:
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    if seeds < 1:
        raise RegulabError(f"--seeds must be at least 1, not {seeds}")
    runs = [(p, s, run_dir(folder, p, s)) for p in presets for s in range(seeds)]
    cores = os.cpu_count() or 1
    jobs = min(jobs or len(runs), cores)  # never more trainings than cores
    threads = max(1, cores // jobs)
    todo = [r for r in runs if not RunDir(r[2]).finished()]
    log(f"compare: {len(runs)} runs, {len(runs) - len(todo)} already finished; {min(jobs, max(len(todo), 1))} at a time, "
        f"{threads} thread{'s' * (threads > 1)} each; output in {folder}")

    failures: list[str] = []
    lock = threading.Lock()

    def train_one(preset: str, seed: int, out: Path) -> None:
        resume = (out / CHECKPOINT).is_file()
        args = ["--resume", str(out)] if resume else ["--preset", preset, "--seed", str(seed), "--out", str(out), *overrides]
        out.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        with open(out / "train.log", "a") as logfile:
            result = subprocess.run([sys.executable, "-m", "regulab", "train", *args, "--threads", str(threads)],
                                    stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        with lock:
            if result.returncode == 0:
                metrics = RunDir(out).read_json(METRICS)
                log(f"  {preset} seed {seed}: best val_acc {metrics['best_val_acc']:.4f} at epoch {metrics['best_epoch']}, "
                    f"test_acc {metrics['test_acc']:.4f} ({time.perf_counter() - started:.0f}s{', resumed' if resume else ''})")
            else:
                last = (out / "train.log").read_text().strip().splitlines()[-1:] or ["no output"]
                failures.append(f"{preset} seed {seed}: {last[0]}")
                log(f"  {preset} seed {seed}: FAILED: {last[0]}")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(train_one, *r) for r in todo]:
            future.result()
    if failures:
        raise RegulabError(f"{len(failures)} of {len(runs)} runs failed ({failures[0]}); see their train.log, "
                           "fix the cause and run the same command again to continue")
    return [r[2] for r in runs]
