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

import dataclasses
import json
import os
from pathlib import Path

from regulab import stats
from regulab.analysis import Design, measure, summarize, undecided
from regulab.config import PRESETS
from regulab.designs import Factor, FractionalDesign, factors_between
from regulab.effects_report import write_factorial_report
from regulab.errors import RegulabError, unknown_name
from regulab.files import atomic_write
from regulab.launch import Job, join_ray, launch
from regulab.models import MODELS, registered_here
from regulab.placement import mps_running, place, visible_gpus
from regulab.regularizers import registered_here as regularizers_registered_here
from regulab.report import write_report
from regulab.rundir import METRICS, RunDir
from regulab.runtime import usable_cores
from regulab.study import MANIFEST, Group, baseline_of, describe, load_study, plan, read_manifest, run_key


def sweep(presets: list[str], folder: Path, grid: dict[str, list] | None = None, seeds: int = 1,
          overrides: dict | None = None, jobs: int = 0, threads: int = 0, runs_dir: Path | None = None,
          baseline: str | None = None, ray: str | None = None, overwrite: bool = False, design: Design | None = None,
          retries: int = 1, log=print) -> list[Group]:
    """Train every preset at every grid point with seeds 0..seeds-1 (skipping finished runs,
    resuming interrupted ones) and write the plan; the groups, for the report. A folder that
    holds a plan of other settings is refused unless `overwrite` replaces it.

    An adaptive `design` (max_seeds above seeds) then adds seeds in rounds to the groups whose
    verdict on its primary measure against the baseline is still undecided (see `analysis`),
    until each is decided or has max_seeds. Each round follows from the finished runs alone, so
    the same command replays the rounds already run and continues.

    `ray` ('local', or a cluster address such as 'auto' or 'ray://head:10001') spreads the runs
    over a Ray cluster instead of local processes; its nodes must share the runs' file system.
    A run killed by a signal or lost with its node is tried again from its checkpoint, `retries`
    times at most.
    """
    folder, grid, overrides = Path(folder), grid or {}, overrides or {}
    design = dataclasses.replace(design or Design(), seeds=seeds)
    groups = plan(presets, grid, seeds, overrides)
    baseline = baseline or (read_manifest(folder) or {}).get("baseline")  # the same command without it keeps the sweep's
    if baseline:
        baseline_of(groups, baseline)
    elif design.adaptive:
        raise RegulabError("--max-seeds adds seeds where a group's comparison with its baseline is undecided; "
                           "name the baseline with --baseline")
    identity = {"presets": presets, "grid": grid, "settings": overrides}

    def next_round() -> bool:
        return _next_round(folder, groups, design, baseline, overrides, log)

    train_groups(folder, groups, identity, design, baseline, runs_dir, overrides, next_round, jobs=jobs, threads=threads,
                 ray=ray, overwrite=overwrite, retries=retries, log=log)
    return groups


def train_groups(folder: Path, groups: list[Group], identity: dict, design: Design, baseline: str | None,
                 runs_dir: Path | None, overrides: dict, next_round, jobs: int = 0, threads: int = 0, ray: str | None = None,
                 overwrite: bool = False, retries: int = 1, log=print) -> None:
    """Write the plan of `groups` into `folder` (sweep.json, with `identity`: what the study is)
    and train what is not finished; with an adaptive `design`, then as long as `next_round()`
    adds seeds to the groups. One study at a time in a folder: a folder that holds a plan of
    another identity is refused unless `overwrite` replaces it."""
    runs_dir = Path(runs_dir) if runs_dir else folder / "runs"
    old = read_manifest(folder)
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
            _run_plan(folder, groups, identity, design, baseline, runs_dir, overrides, jobs, threads, ray, retries, log)
            if not design.adaptive or not next_round():
                return
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
              overrides: dict, jobs: int, threads: int, ray: str | None, retries: int, log) -> list[Group]:
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
    here = sorted({g.config(overrides, 0).model for g in groups} & {name for name in MODELS if registered_here(name)}
                  | {name for g in groups for name in regularizers_registered_here(g.config(overrides, 0))})
    if here:  # a model or regularizer defined in this process (a notebook, say) cannot be rebuilt in a child
        jobs, ray, where = 1, None, (f"this process ({', '.join(here)} registered here, not in a --model-file or "
                                     "--regularizer-file)")
    if ray and todo:
        cores, node_cores, where = join_ray(ray)
    counts = sorted({len(g.runs) for g in groups})
    seeds = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    jobs_todo = [Job(g.config(overrides, seed), runs_dir / key, f"{g.label} [random seed {seed}]") for key, g, seed in todo]
    gpus = visible_gpus() if todo and not (ray or here) and jobs_todo[0].cfg.device != "cpu" else []
    failures: list[str] = []
    while True:
        # On GPUs, a run's measured peak memory decides how many share each one; until a run of
        # these settings has one, the first runs go one per GPU and measure it.
        peak = _measured_peak(runs_dir, wanted) if gpus else None
        placement = place(len(jobs_todo), cores, gpus, peak, bool(gpus) and mps_running(), jobs, threads, node_cores, where)
        log(f"{len(groups)} group{'s' * (len(groups) > 1)} x {seeds} seed{'s' * (counts[-1] > 1)}: {len(wanted)} runs, "
            f"{len(wanted) - len(jobs_todo)} already finished; {placement.why}; runs in {runs_dir}")
        batch = jobs_todo if not gpus or peak is not None else jobs_todo[:placement.jobs]
        jobs_todo = jobs_todo[len(batch):]
        failures = launch(batch, placement.jobs, placement.threads, ray=bool(ray and todo), here=bool(here),
                          retries=retries, log=log, gpus=placement.gpus)
        if failures or not jobs_todo:
            break
    if failures:
        raise RegulabError(f"{len(failures)} of {len(wanted)} runs failed ({failures[0]}); see their train.log, "
                           "fix the cause and run the same command again to continue")
    return groups


def report_of(folder: Path, baseline: str | None = None, margin: float | None = None, correction: str | None = None,
              primary: str | None = None, effect: float | None = None, pair_on: str | None = None, log=None) -> Path:
    """The report of a study folder, whichever kind its plan is: a factorial's, or a comparison's or sweep's."""
    if "factorial" in (read_manifest(Path(folder)) or {}):
        if baseline or effect is not None or pair_on:
            raise RegulabError("--baseline, --effect and --pair-on are for comparisons; a factorial's effects need none")
        return write_factorial_report(folder, margin, correction, primary, log=log)
    return write_report(folder, baseline, margin, correction, primary, effect, pair_on=pair_on, log=log)


def _measured_peak(runs_dir: Path, wanted: dict) -> float | None:
    """The largest peak GPU memory among the plan's finished GPU runs (None: none measured yet)."""
    peaks = [RunDir(runs_dir / key).read_json(METRICS).get("peak_gpu_memory_mb") for key in wanted
             if RunDir(runs_dir / key).finished()]
    peaks = [p for p in peaks if p]
    return max(peaks) if peaks else None


def sweep_and_report(presets: list[str], folder: Path, grid: dict[str, list] | None = None, seeds: int = 1,
                     overrides: dict | None = None, **options) -> Path:
    """`sweep`, then the report of its folder (what `regulab compare`/`sweep` and their Python
    twins do); the report's path."""
    log = options.get("log", print)
    sweep(presets, folder, grid, seeds, overrides, **options)
    return write_report(folder, log=log)


# ---------------------------------------------------------------------------------------------
# Factorial designs: a combination taken apart into two-level factors (see `designs`, `effects`)

def factorial_plan(presets: list[str], factors: list[Factor] | None = None, fraction: int | None = None,
                   allow_resolution_iii: bool = False, overrides: dict | None = None) -> FractionalDesign:
    """The design of `regulab factorial`: the factors between two presets, or `factors` on one."""
    if len(presets) not in (1, 2) or (factors and len(presets) != 1) or (not factors and len(presets) != 2):
        raise RegulabError("factorial takes two presets (its factors are the settings in which they differ), or one "
                           "preset and --factor NAME=SETTING:LOW/HIGH for each factor")
    for preset in presets:
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    shared = sorted({k for f in factors or [] for k in f.low} & set(overrides or {}))
    if shared:
        raise RegulabError(f"{shared[0]} is both a --factor setting and a fixed option; give it one way")
    factors = factors or factors_between(presets[0], presets[1], overrides)
    return FractionalDesign.choose(factors, fraction, allow_resolution_iii)


def factorial(presets: list[str], folder: Path, fractional: FractionalDesign, seeds: int = 1, overrides: dict | None = None,
              max_runs: int = 64, confirmed: bool = False, dry_run: bool = False, jobs: int = 0, threads: int = 0,
              runs_dir: Path | None = None, ray: str | None = None, overwrite: bool = False, design: Design | None = None,
              retries: int = 1, log=print) -> list[Group]:
    """Train every cell of `fractional` (and the corners it leaves out) with seeds 0..seeds-1
    as blocks, skipping finished runs; with an adaptive `design`, then a block at a time while a
    main effect on its primary measure is undecided. `dry_run` prints the design and stops."""
    folder, overrides = Path(folder), overrides or {}
    design = dataclasses.replace(design or Design(), seeds=seeds)
    groups = fractional.cells(presets[0], seeds, overrides)
    runs_dir = Path(runs_dir) if runs_dir else folder / "runs"
    most = max(seeds, design.max_seeds)
    planned = [run_key(g.config(overrides, s)) for g in groups for s in range(most)]
    new = [key for key in dict.fromkeys(planned) if not RunDir(runs_dir / key).finished()]
    extra = len(groups) - len(fractional.matrix)
    for line in fractional.lines():
        log(line)
    log(f"{len(fractional.matrix)} cells{f' + {extra} corner' + 's' * (extra > 1) + ' outside the fraction' if extra else ''}"
        f" x {seeds}{f' to {most}' if most > seeds else ''} seed blocks: {len(planned)} runs, "
        f"{len(planned) - len(new)} already finished in {runs_dir}, {len(new)} to train")
    if dry_run:
        for g in groups:
            row = ["+" if c.lower() in g.label else "-" for c in fractional.letters]
            finished = sum(RunDir(runs_dir / key).finished() for key in g.runs.values())
            log(f"  {g.label:>8}  {' '.join(row)}  {finished}/{len(g.runs)} finished  "
                + ", ".join(f"{k}={v!r}" if v == "" else f"{k}={v}" for k, v in g.point.items()))
        return groups
    if len(new) > max_runs and not confirmed:
        raise RegulabError(f"this design trains {len(new)} new runs, more than --max-runs {max_runs}; check it with "
                           "--dry-run, then pass --yes (or a larger --max-runs) to train them")
    identity = {"presets": presets, "grid": {}, "settings": overrides, "factorial": fractional.record()}

    def next_block() -> bool:
        return _next_block(folder, groups, fractional, design, overrides, log)

    train_groups(folder, groups, identity, design, None, runs_dir, overrides, next_block, jobs=jobs, threads=threads,
                 ray=ray, overwrite=overwrite, retries=retries, log=log)
    return groups


def _next_block(folder: Path, groups: list[Group], fractional: FractionalDesign, design: Design, overrides: dict,
                log) -> bool:
    """Add a round of seed blocks to every cell while a main effect on the primary measure is
    undecided (and fewer than max_seeds blocks); False when none is."""
    from regulab.effects import analyze

    manifest, runs = load_study(folder)
    blocks = len(groups[0].runs)
    result = analyze(fractional, runs, design, blocks)["measures"].get(design.primary)
    mains = (result or {"effects": []})["effects"][:len(fractional.factors)]
    open_ = [fractional.factors[i].name for i, e in enumerate(mains) if e["verdict"] in ("undecided", "no clear difference",
                                                                                           stats.NO_INTERVAL)]
    heading = measure(design.primary).heading
    if not open_ or blocks >= design.max_seeds:
        log(f"main effects on {heading}: " + ("every one decided" if not open_ else
                                              f"{', '.join(open_)} still undecided at --max-seeds {design.max_seeds}"))
        return False
    for group in groups:
        for seed in range(blocks, min(blocks + design.seeds_per_round, design.max_seeds)):
            group.runs[seed] = run_key(group.config(overrides, seed))
    log(f"main effects undecided on {heading}: {', '.join(open_)}; a round of {design.seeds_per_round} more seed "
        f"block{'s' * (design.seeds_per_round > 1)}")
    return True


def factorial_and_report(presets: list[str], folder: Path, fractional: FractionalDesign, seeds: int = 1,
                         overrides: dict | None = None, **options) -> Path | None:
    """`factorial`, then its report (None after a dry run)."""
    log = options.get("log", print)
    factorial(presets, folder, fractional, seeds, overrides, **options)
    return None if options.get("dry_run") else write_factorial_report(folder, log=log)
