"""`regulab sweep` and `regulab compare`: presets x a grid of settings x seeds, on the same split.

A comparison is a sweep without a grid. Every run is identified by its full resolved settings
(less where and how fast it runs), so the same training reached from two sweeps, or under two
names (`l2=0` of seed-noreg is seed-noreg; `train_fraction=1` is the preset itself), is
trained once. Runs live in a pool, `FOLDER/runs/` unless `--runs-dir` names one that several
sweeps share, each in a folder named by its identity; the sweep's own folder holds `sweep.json`
(its plan: groups and the runs of each) and the report. Finished runs are skipped and
interrupted ones resumed, so the same command continues a stopped sweep, and asking for more
seeds adds only the new ones.

Several runs go at once when there are cores for them, each with its share of the cores: two
trainings contending for the same cores are many times slower than the two one after the other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from regulab.analysis import Design, measure, summarize, undecided
from regulab.errors import RegulabError, TrainingStopped
from regulab.models import MODELS, registered_here
from regulab.rundir import CHECKPOINT, METRICS, RunDir, atomic_write
from regulab.runtime import usable_cores
from regulab.study import MANIFEST, Group, baseline_of, describe, load_study, plan, read_manifest, run_key


def sweep(presets: list[str], folder: Path, grid: dict[str, list] | None = None, seeds: int = 1,
          overrides: dict | None = None, jobs: int = 0, threads: int = 0, runs_dir: Path | None = None,
          baseline: str | None = None, ray: str | None = None, overwrite: bool = False, design: Design | None = None,
          log=print) -> list[Group]:
    """Train every preset at every grid point with seeds 0..seeds-1 (skipping finished runs,
    resuming interrupted ones) and write the plan; the groups, for the report. A folder that
    holds a plan of other settings is refused unless `overwrite` replaces it.

    An adaptive `design` (max_seeds above seeds) then adds seeds in rounds to the groups whose
    verdict on its primary measure against the baseline is still undecided (see `analysis`),
    until each is decided or has max_seeds. Each round follows from the finished runs alone, so
    the same command replays the rounds already run and continues.

    `ray` ('local', or a cluster address such as 'auto' or 'ray://head:10001') spreads the runs
    over a Ray cluster instead of local processes; its nodes must share the runs' file system.
    """
    folder, grid, overrides = Path(folder), grid or {}, overrides or {}
    design = dataclasses.replace(design or Design(), seeds=seeds)
    groups = plan(presets, grid, seeds, overrides)
    old = read_manifest(folder)
    baseline = baseline or (old or {}).get("baseline")  # the same command without it keeps the sweep's
    if baseline:
        baseline_of(groups, baseline)
    elif design.adaptive:
        raise RegulabError("--max-seeds adds seeds where a group's comparison with its baseline is undecided; "
                           "name the baseline with --baseline")
    runs_dir = Path(runs_dir) if runs_dir else folder / "runs"
    identity = {"presets": presets, "grid": grid, "settings": overrides}
    if old is not None and not overwrite and {k: old.get(k) for k in identity} != json.loads(json.dumps(identity)):
        changed = [k for k in identity if old.get(k) != json.loads(json.dumps(identity[k]))]
        raise RegulabError(f"{folder} holds a sweep with other {' and '.join(changed)} ({describe(old)}); "
                           "choose another --out, or pass --overwrite to replace its plan (finished runs stay in the pool)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegulabError(f"cannot create {folder} ({exc.strerror}); choose another --out") from None
    held = RunDir(folder).lock()  # one sweep at a time in a folder; each run's own folder is held by its training
    try:
        while True:
            _run_plan(folder, groups, identity, design, baseline, runs_dir, overrides, jobs, threads, ray, log)
            if not design.adaptive or not _next_round(folder, groups, design, baseline, overrides, log):
                return groups
    finally:
        held.unlock()


def _next_round(folder: Path, groups: list[Group], design: Design, baseline: str, overrides: dict, log) -> bool:
    """Add a round of seeds to the groups still undecided (and their baselines); False when none is."""
    manifest, runs = load_study(folder)
    rows = summarize(manifest, runs, baseline, design, bootstrap=0)
    grow = {r["group"] for r in undecided(rows, design)}
    heading = measure(design.primary).heading
    if not grow:
        log(f"every comparison is decided on {heading} or has --max-seeds {design.max_seeds}: "
            + "; ".join(f"{r['group']}: {r['stopped']}" for r in rows if r.get("stopped")))
        return False
    bases = baseline_of(groups, baseline)
    for group in groups:
        if group.label in grow:
            for seed in range(len(group.runs), min(len(group.runs) + design.seeds_per_round, design.max_seeds)):
                group.runs[seed] = run_key(group.config(overrides, seed))
    for group in groups:  # a baseline gets every seed its groups have, for the pairs
        base = bases[group.label]
        for seed in group.runs.keys() - base.runs.keys():
            base.runs[seed] = run_key(base.config(overrides, seed))
    log(f"undecided on {heading}: {', '.join(sorted(grow))}; a round of {design.seeds_per_round} more seeds each")
    return True


def _run_plan(folder: Path, groups: list[Group], identity: dict, design: Design, baseline: str | None, runs_dir: Path,
              overrides: dict, jobs: int, threads: int, ray: str | None, log) -> list[Group]:
    """Write the plan, then train what is not finished yet, in the folder `sweep` holds."""
    manifest = {**identity, "seeds": design.seeds, "design": design.record(), "baseline": baseline,
                "runs_dir": os.path.relpath(runs_dir, folder),
                "groups": [{"label": g.label, "preset": g.preset, "point": g.point, "runs": g.runs} for g in groups]}
    atomic_write(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())

    # The same run may belong to two groups of one sweep (l2=1e-3 of seed-noreg and the seed preset).
    wanted = {key: (g, s) for g in groups for s, key in g.runs.items()}
    # Seed by seed, so that a sweep stopped part-way leaves whole pairs (every group at seed k) to compare.
    todo = sorted(((key, g, s) for key, (g, s) in wanted.items() if not RunDir(runs_dir / key).finished()),
                  key=lambda item: item[2])
    cores = node_cores = usable_cores()
    where = "local processes"
    here = sorted({g.config(overrides, 0).model for g in groups} & {name for name in MODELS if registered_here(name)})
    if here:  # a model defined in this process (a notebook, say) cannot be rebuilt in a child
        jobs, ray, where = 1, None, f"this process ({', '.join(here)} is registered here, not in a --model-file)"
    if ray and todo:
        cores, node_cores, where = _join_ray(ray)
    jobs = max(1, min(jobs or len(todo), cores))  # never more trainings than cores
    threads = threads or max(1, min(cores // jobs, node_cores))
    counts = sorted({len(g.runs) for g in groups})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    log(f"{len(groups)} group{'s' * (len(groups) > 1)} x {seeds} seed{'s' * (counts[-1] > 1)}: {len(wanted)} runs, "
        f"{len(wanted) - len(todo)} already finished; {min(jobs, max(len(todo), 1))} at a time on {where}, "
        f"{threads} thread{'s' * (threads > 1)} each; runs in {runs_dir}")

    failures: list[str] = []

    def report(key: str, group: Group, seed: int, returncode: int, seconds: float, resumed: bool) -> None:
        out, name = runs_dir / key, f"{group.label} [random seed {seed}]"
        if returncode == 0:
            m = RunDir(out).read_json(METRICS)
            val = f"best val_acc {m['best_val_acc']:.4f} at epoch {m['best_epoch']}, " if m["best_val_acc"] is not None else ""
            log(f"  {name}: {val}test_acc {m['test_acc']:.4f} ({seconds:.0f}s{', resumed' if resumed else ''})")
        else:
            last = (out / "train.log").read_text().strip().splitlines()[-1:] or ["no output"]
            failures.append(f"{name}: {last[0]}")
            log(f"  {name}: FAILED: {last[0]}")

    commands = [(key, g, s, (runs_dir / key / CHECKPOINT).is_file()) for key, g, s in todo]

    def arguments(key: str, group: Group, seed: int, resumed: bool) -> list[str]:
        out = runs_dir / key
        run = ["--resume", str(out)] if resumed else \
            ["--preset", group.preset, "--seed", str(seed), "--out", str(out), *as_arguments({**overrides, **group.point})]
        return [*run, "--threads", str(threads)]

    if ray and todo:
        import ray as ray_lib

        remote = ray_lib.remote(num_cpus=threads)(run_training)
        started = time.perf_counter()
        pending = {remote.remote(arguments(*c), str(runs_dir / c[0])): c for c in commands}
        while pending:  # report each run as it ends, as the local pool does
            done, _ = ray_lib.wait(list(pending), num_returns=1)
            key, g, s, resumed = pending.pop(done[0])
            report(key, g, s, ray_lib.get(done[0]), time.perf_counter() - started, resumed)
    else:
        lock = threading.Lock()

        def train_one(key, group, seed, resumed):
            started = time.perf_counter()
            returncode = run_training(arguments(key, group, seed, resumed), str(runs_dir / key), in_process=bool(here))
            if returncode == 130:  # stopped by the user: the sweep stops too, its finished runs kept
                raise TrainingStopped(f"stopped in {group.label} [random seed {seed}]; run the same sweep again to "
                                      "continue it", run_dir=runs_dir / key)
            with lock:
                report(key, group, seed, returncode, time.perf_counter() - started, resumed)

        if here:  # in the main thread, where a Ctrl-C (or a notebook's interrupt) reaches the training
            for command in commands:
                train_one(*command)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(train_one, *c) for c in commands]:
                    future.result()
    if failures:
        raise RegulabError(f"{len(failures)} of {len(wanted)} runs failed ({failures[0]}); see their train.log, "
                           "fix the cause and run the same command again to continue")
    return groups


def as_arguments(values: dict) -> list[str]:
    """Settings written back as `regulab train` options (booleans as --x / --no-x)."""
    out = []
    for name, value in values.items():
        option = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            out.append(option if value else f"--no-{name.replace('_', '-')}")
        else:
            out += [option, str(value)]
    return out


def run_training(arguments: list[str], out: str, in_process: bool = False) -> int:
    """One `regulab train` child, its output appended to OUT/train.log; its exit status. Runs
    here, or in a Ray worker on whichever node Ray chose (hence plain arguments, and a path);
    `in_process` runs the same command in this process instead."""
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "train.log", "a") as logfile:
        if in_process:
            from regulab.cli import main

            with contextlib.redirect_stdout(logfile), contextlib.redirect_stderr(logfile):
                return main(["train", *arguments])
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
            ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RegulabError(f"cannot reach a Ray cluster at {address!r} ({str(exc).splitlines()[0]}); "
                           "start one (`ray start --head`) or pass --ray local") from None
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    where = f"Ray ({address}: {len(nodes)} node{'s' * (len(nodes) > 1)}, {int(sum(nodes))} CPUs)"
    return int(sum(nodes)), int(max(nodes, default=1)), where
