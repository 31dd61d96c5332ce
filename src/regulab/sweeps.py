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
import hashlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from regulab.config import PRESETS, SWEEP_OWN, Config, config_fields, make_config
from regulab.errors import RegulabError, TrainingStopped, unknown_name
from regulab.models import MODELS, registered_here
from regulab.rundir import CHECKPOINT, METRICS, RunDir, atomic_write
from regulab.runtime import usable_cores

MANIFEST = "sweep.json"
# Settings that change where a run is written or how fast it goes, never what it computes; and the
# preset's name, which only records where the values came from.
NOT_IDENTITY = {"out", "preset", "threads", "eval_batch_size", "tensorboard", "mlflow"}


def run_key(cfg: Config) -> str:
    """The folder name of the run `cfg` describes: readable parts, and a hash of everything it
    computes. Only values that differ from `Config`'s defaults enter the hash, so a setting
    added to regulab later (at its default) leaves the names of earlier runs as they were."""
    defaults = Config()
    identity = {k: v for k, v in sorted(vars(cfg).items()) if k not in NOT_IDENTITY and v != getattr(defaults, k)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.model}-seed{cfg.seed}-{digest}"


def parse_grid(specs: list[str]) -> dict[str, list]:
    """`["l2=0,1e-4", "dropout_head=0,0.5"]` as {setting: [values]}, each value of the setting's type."""
    fields = {f.name: f for f in config_fields() if f.name not in SWEEP_OWN}
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep:
            raise RegulabError(f"--grid {spec!r} needs the form SETTING=V1,V2,... (for example --grid l2=0,1e-4,1e-3)")
        if name in SWEEP_OWN:
            raise RegulabError(f"--grid cannot vary {name}: use {'--seeds' if name == 'seed' else 'the PRESET arguments'}")
        if name not in fields:
            raise unknown_name("setting", name, fields, "--grid takes any `regulab train` option, with _ or -")
        if name in grid:
            raise RegulabError(f"--grid names {name} twice; give all its values in one --grid {name}=V1,V2")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise RegulabError(f"--grid {name}= has no values; give at least one, as in --grid {name}=V1,V2")
        grid[name] = [_typed(fields[name], v) for v in items]
        if len(set(map(str, grid[name]))) < len(grid[name]):
            raise RegulabError(f"--grid {name} repeats a value; give each value once")
    return grid


def _typed(field: dataclasses.Field, text: str):
    kind = type(field.default) if field.default is not None else str
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}[text.lower()]
        return kind(text)
    except (KeyError, ValueError):
        expected = "true or false" if kind is bool else {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
        raise RegulabError(f"--grid {field.name}: {text!r} is not {expected}") from None


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Group:
    """The runs that differ only in their seed: one preset at one point of the grid."""

    label: str
    preset: str
    point: dict
    runs: dict[int, str]  # seed: run key

    def config(self, overrides: dict, seed: int) -> Config:
        return make_config(self.preset, **overrides, **self.point, seed=seed)

    def same_as(self, overrides: dict) -> str | None:
        """The other preset whose trainings this group's runs are (`l2=1e-3` of seed-noreg is the
        seed preset), for a report to say so; None when there is none."""
        for name in PRESETS:
            if name == self.preset:
                continue
            try:
                if all(run_key(make_config(name, **overrides, seed=int(s))) == key for s, key in self.runs.items()):
                    return name
            except RegulabError:  # the sweep's fixed settings do not apply to that preset (say, fast has no validation set)
                continue
        return None


def plan(presets: list[str], grid: dict[str, list], seeds: int, overrides: dict) -> list[Group]:
    """Every group's resolved runs, checked before anything runs: a bad value fails here, in one line."""
    for preset in presets:
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    if seeds < 1:
        raise RegulabError(f"--seeds must be at least 1, not {seeds}")
    if len(set(presets)) < len(presets):
        raise RegulabError("a preset is named twice; name each once")
    shared = sorted(set(grid) & set(overrides))
    if shared:
        raise RegulabError(f"{shared[0]} is both a --grid axis and a fixed option; give it one way")
    groups = []
    for preset in presets:
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values))
            words = ([preset] if len(presets) > 1 or not grid else []) + [f"{k}={_text(v)}" for k, v in point.items()]
            group = Group(" ".join(words), preset, point, {})
            try:
                group.runs = {s: run_key(group.config(overrides, s)) for s in range(seeds)}
            except RegulabError as exc:
                raise RegulabError(f"{group.label}: {exc}") from None
            groups.append(group)
    return groups


def baseline_of(groups: list[Group], baseline: str) -> dict[str, Group]:
    """For each group, the group it is compared with: `baseline` names a preset (the same grid
    point of that preset) or a grid value such as `l2=0` (the same preset at that value)."""
    name, sep, value = baseline.partition("=")
    by_key = {(g.preset, json.dumps(g.point, sort_keys=True)): g for g in groups}
    matched = {}
    for g in groups:
        if sep:
            axis = name.replace("-", "_")
            if axis not in g.point:
                raise RegulabError(f"--baseline {baseline}: {axis} is not a --grid axis of this sweep")
            point = {**g.point, axis: _typed(next(f for f in config_fields() if f.name == axis), value)}
            base = by_key.get((g.preset, json.dumps(point, sort_keys=True)))
        else:
            base = by_key.get((name, json.dumps(g.point, sort_keys=True)))
        if base is None:
            choices = "a preset of this sweep" if not sep else f"one of the values of its --grid {name}"
            raise RegulabError(f"--baseline {baseline} is not part of this sweep; name {choices}")
        matched[g.label] = base
    return matched


def read_manifest(folder: Path) -> dict | None:
    file = Path(folder) / MANIFEST
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise RegulabError(f"{file} is unreadable ({exc}); delete it and run the sweep again") from None


def sweep(presets: list[str], folder: Path, grid: dict[str, list] | None = None, seeds: int = 1,
          overrides: dict | None = None, jobs: int = 0, threads: int = 0, runs_dir: Path | None = None,
          baseline: str | None = None, ray: str | None = None, overwrite: bool = False, log=print) -> list[Group]:
    """Train every preset at every grid point with seeds 0..seeds-1 (skipping finished runs,
    resuming interrupted ones) and write the plan; the groups, for the report. A folder that
    holds a plan of other settings is refused unless `overwrite` replaces it.

    `ray` ('local', or a cluster address such as 'auto' or 'ray://head:10001') spreads the runs
    over a Ray cluster instead of local processes; its nodes must share the runs' file system.
    """
    folder, grid, overrides = Path(folder), grid or {}, overrides or {}
    groups = plan(presets, grid, seeds, overrides)
    old = read_manifest(folder)
    baseline = baseline or (old or {}).get("baseline")  # the same command without it keeps the sweep's
    if baseline:
        baseline_of(groups, baseline)
    runs_dir = Path(runs_dir) if runs_dir else folder / "runs"
    identity = {"presets": presets, "grid": grid, "settings": overrides}
    if old is not None and not overwrite and {k: old.get(k) for k in identity} != json.loads(json.dumps(identity)):
        changed = [k for k in identity if old.get(k) != json.loads(json.dumps(identity[k]))]
        raise RegulabError(f"{folder} holds a sweep with other {' and '.join(changed)} ({_describe(old)}); "
                           "choose another --out, or pass --overwrite to replace its plan (finished runs stay in the pool)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegulabError(f"cannot create {folder} ({exc.strerror}); choose another --out") from None
    held = RunDir(folder).lock()  # one sweep at a time in a folder; each run's own folder is held by its training
    try:
        return _run_plan(folder, groups, identity, seeds, baseline, runs_dir, overrides, jobs, threads, ray, log)
    finally:
        held.unlock()


def _run_plan(folder: Path, groups: list[Group], identity: dict, seeds: int, baseline: str | None, runs_dir: Path,
              overrides: dict, jobs: int, threads: int, ray: str | None, log) -> list[Group]:
    """Write the plan, then train what is not finished yet, in the folder `sweep` holds."""
    manifest = {**identity, "seeds": seeds, "baseline": baseline, "runs_dir": os.path.relpath(runs_dir, folder),
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
    log(f"{len(groups)} group{'s' * (len(groups) > 1)} x {seeds} seed{'s' * (seeds > 1)}: {len(wanted)} runs, "
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


def _describe(manifest: dict) -> str:
    parts = [" ".join(manifest.get("presets") or [])]
    parts += [f"--grid {k}={','.join(map(str, v))}" for k, v in (manifest.get("grid") or {}).items()]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in (manifest.get("settings") or {}).items()]
    return " ".join(parts)


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
