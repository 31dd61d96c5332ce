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
            log=print, ray: str | None = None) -> list[Path]:
    """Train every preset with seeds 0..seeds-1 (skipping finished runs), then return their folders.

    `ray` ('local', or a cluster address such as 'auto' or 'ray://head:10001') spreads the runs
    over a Ray cluster instead of local processes; its nodes must share this folder's file system.
    """
    for preset in presets:
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    if seeds < 1:
        raise RegulabError(f"--seeds must be at least 1, not {seeds}")
    runs = [(p, s, run_dir(folder, p, s)) for p in presets for s in range(seeds)]
    todo = [r for r in runs if not RunDir(r[2]).finished()]
    cores, node_cores, where = (os.cpu_count() or 1), (os.cpu_count() or 1), "local processes"
    if ray and todo:
        cores, node_cores, where = _join_ray(ray)
    jobs = min(jobs or len(runs), cores)  # never more trainings than cores
    threads = max(1, min(cores // jobs, node_cores))
    log(f"compare: {len(runs)} runs, {len(runs) - len(todo)} already finished; {min(jobs, max(len(todo), 1))} at a time "
        f"on {where}, {threads} thread{'s' * (threads > 1)} each; output in {folder}")

    failures: list[str] = []

    def report(preset: str, seed: int, out: Path, returncode: int, seconds: float, resumed: bool) -> None:
        if returncode == 0:
            m = RunDir(out).read_json(METRICS)
            val = f"best val_acc {m['best_val_acc']:.4f} at epoch {m['best_epoch']}, " if m["best_val_acc"] else ""
            log(f"  {preset} seed {seed}: {val}test_acc {m['test_acc']:.4f} ({seconds:.0f}s{', resumed' if resumed else ''})")
        else:
            last = (out / "train.log").read_text().strip().splitlines()[-1:] or ["no output"]
            failures.append(f"{preset} seed {seed}: {last[0]}")
            log(f"  {preset} seed {seed}: FAILED: {last[0]}")

    commands = [(r, (r[2] / CHECKPOINT).is_file()) for r in todo]
    if ray and todo:
        import ray as ray_lib

        remote = ray_lib.remote(num_cpus=threads)(run_training)
        started = time.perf_counter()
        pending = {remote.remote(_arguments(p, s, out, resumed, overrides, threads), str(out)): (p, s, out, resumed)
                   for (p, s, out), resumed in commands}
        while pending:  # report each run as it ends, as the local pool does
            done, _ = ray_lib.wait(list(pending), num_returns=1)
            p, s, out, resumed = pending.pop(done[0])
            report(p, s, out, ray_lib.get(done[0]), time.perf_counter() - started, resumed)
    else:
        lock = threading.Lock()

        def train_one(preset, seed, out, resumed):
            started = time.perf_counter()
            returncode = run_training(_arguments(preset, seed, out, resumed, overrides, threads), str(out))
            with lock:
                report(preset, seed, out, returncode, time.perf_counter() - started, resumed)

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for future in [pool.submit(train_one, *r, resumed) for r, resumed in commands]:
                future.result()
    if failures:
        raise RegulabError(f"{len(failures)} of {len(runs)} runs failed ({failures[0]}); see their train.log, "
                           "fix the cause and run the same command again to continue")
    return [r[2] for r in runs]


def _arguments(preset: str, seed: int, out: Path, resumed: bool, overrides, threads: int) -> list[str]:
    run = ["--resume", str(out)] if resumed else ["--preset", preset, "--seed", str(seed), "--out", str(out), *overrides]
    return [*run, "--threads", str(threads)]


def run_training(arguments: list[str], out: str) -> int:
    """One `regulab train` child, its output appended to OUT/train.log; its exit status. Runs
    here, or in a Ray worker on whichever node Ray chose (hence plain arguments, and a path)."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "train.log", "a") as logfile:
        return subprocess.run([sys.executable, "-m", "regulab", "train", *arguments],
                              stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode


def _join_ray(address: str) -> tuple[int, int, str]:
    """Start or join Ray; the cluster's CPUs, the most on one node, and a description."""
    try:
        import ray
    except ImportError:
        raise RegulabError("--ray needs Ray; install it: pip install 'regulab[ray]'") from None
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RegulabError(f"cannot reach a Ray cluster at {address!r} ({str(exc).splitlines()[0]}); "
                           "start one (`ray start --head`) or pass --ray local") from None
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    where = f"Ray ({address}: {len(nodes)} node{'s' * (len(nodes) > 1)}, {int(sum(nodes))} CPUs)"
    return int(sum(nodes)), int(max(nodes, default=1)), where
