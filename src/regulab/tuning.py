"""`regulab tune`: the strength of a regularizer (one or two settings), chosen by racing
candidates over paired seeds (`racing`), and the choice measured again on fresh seeds.

Every candidate still in the race trains on the next seed, with the baseline (the preset with
the tuned settings off) beside it, so that every gain is paired. When the race ends (one
candidate left, `max_seeds` reached, or `max_runs` unable to pay for another round), the chosen
candidate and the baseline train on `fresh_seeds` seeds the race never used: the chosen gain
measured there chose nothing, while the race's own estimate of it is inflated by the choice
(the winner's curse); the report gives both. Each round follows from the finished runs alone,
so the same command replays the rounds run and continues, as an adaptive sweep does.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from regulab import stats
from regulab.analysis import Design, measure
from regulab.config import SWEEP_OWN, config_fields
from regulab.errors import RegulabError, unknown_name
from regulab.figures import png_bytes
from regulab.files import atomic_write
from regulab.racing import RacePlan, RaceResult, race
from regulab.report import _markdown
from regulab.study import Group, load_study, plan, run_key, setting_value, value_text
from regulab.sweeps import train_groups

TUNE_JSON, SUMMARY, FIGURE = "tune.json", "summary.md", "race.png"


def parse_space(specs: list[str], points: int = 6) -> dict[str, list]:
    """`--space NAME=V1,V2,...` (a grid) or `--space NAME=LOW:HIGH[:log]` (`points` values spread
    evenly, or evenly in the logarithm) as {setting: [values]}; one or two settings."""
    fields = {f.name: f for f in config_fields() if f.name not in SWEEP_OWN}
    space: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep or not values.strip():
            raise RegulabError(f"--space {spec!r} needs the form SETTING=V1,V2,... or SETTING=LOW:HIGH[:log] "
                               "(for example --space label_smoothing=0,0.05,0.1 or --space l2=1e-5:1e-2:log)")
        if name not in fields:
            raise unknown_name("setting", name, fields, "--space takes any `regulab train` option, with _ or -")
        if name in space:
            raise RegulabError(f"--space names {name} twice; give it once")
        if ":" in values:
            low, _, rest = values.partition(":")
            high, _, scale = rest.partition(":")
            low, high = (setting_value(fields[name], v.strip(), "--space") for v in (low, high))
            if scale not in ("", "log") or not low < high or (scale == "log" and low <= 0):
                raise RegulabError(f"--space {spec!r}: a range is LOW:HIGH or LOW:HIGH:log with LOW < HIGH "
                                   "(and LOW > 0 on a log scale)")
            spread = np.geomspace(low, high, points) if scale == "log" else np.linspace(low, high, points)
            space[name] = [float(f"{v:.3g}") for v in spread]
        else:
            space[name] = [setting_value(fields[name], v.strip(), "--space") for v in values.split(",") if v.strip()]
        if len(set(map(str, space[name]))) < len(space[name]):
            raise RegulabError(f"--space {name} repeats a value; give each value once")
    return check_space(space)


def check_space(space: dict[str, list]) -> dict[str, list]:
    """`space`, if it holds one or two settings and two candidates or more."""
    if not 1 <= len(space) <= 2:
        raise RegulabError(f"tune takes one or two settings (--space) to tune, not {len(space)}")
    if math.prod(len(v) for v in space.values()) < 2:
        raise RegulabError("the space to tune has one candidate only: there is nothing to choose; give two values or more")
    return space


@dataclass
class TunePlan:
    """How a tuning races and what it may spend."""

    first_look: int = 3      # seeds before the first look: two is the least a paired t test takes
    max_seeds: int = 10      # seeds at most in the race; the fresh seeds come after them
    fresh_seeds: int = 3     # seeds the chosen candidate and the baseline train on after the race
    max_runs: int = 0        # trainings at most, the fresh ones included; 0: as the race needs
    alpha: float = stats.ALPHA
    primary: str = "best_val_acc"  # what the race compares: never the test set, which judges the choice

    def __post_init__(self):
        measure(self.primary)
        if self.primary.startswith("test"):
            raise RegulabError(f"--primary {self.primary} would choose on the test set, which then could not judge the "
                               "choice; race on best_val_acc (the default)")
        if not 2 <= self.first_look <= self.max_seeds:
            raise RegulabError(f"--first-look must be at least 2 and at most --max-seeds ({self.max_seeds}), not "
                               f"{self.first_look}")
        if self.fresh_seeds < 2:
            raise RegulabError(f"--fresh-seeds must be at least 2 (an interval needs two pairs), not {self.fresh_seeds}")


def tune(preset: str, space: dict[str, list], folder: Path, overrides: dict | None = None, tune_plan: TunePlan | None = None,
         jobs: int = 0, threads: int = 0, runs_dir: Path | None = None, overwrite: bool = False, log=print) -> dict:
    """Race the candidates of `space` on `preset` (with `overrides`), then train the chosen one and
    the baseline on fresh seeds; write tune.json, summary.md and race.png into `folder`; the result."""
    folder, overrides, tune_plan = Path(folder), overrides or {}, tune_plan or TunePlan()
    candidates = plan([preset], space, tune_plan.first_look, overrides)
    off = {name: next(f.default for f in config_fields() if f.name == name) for name in space}
    baseline = next((g for g in candidates if g.point == off), None) or Group.planned(
        "baseline (" + ", ".join(f"{k}={value_text(v)}" for k, v in off.items()) + ")", preset, off,
        tune_plan.first_look, overrides)
    groups = candidates + ([baseline] if baseline not in candidates else [])
    first_cost = _cost(groups, range(tune_plan.first_look)) + 2 * tune_plan.fresh_seeds
    if tune_plan.max_runs and tune_plan.max_runs < first_cost:
        raise RegulabError(f"--max-runs {tune_plan.max_runs} cannot pay for one look: {len(groups)} settings x "
                           f"{tune_plan.first_look} seeds and 2 x {tune_plan.fresh_seeds} fresh runs take {first_cost}; "
                           "raise --max-runs, or give --space fewer values")
    racing = RacePlan(len(candidates), tune_plan.first_look, tune_plan.max_seeds, tune_plan.alpha)
    # What the tuning is; --max-runs is not: raising it continues the same race.
    identity = {"presets": [preset], "grid": space, "settings": overrides,
                "race": {k: v for k, v in asdict(tune_plan).items() if k != "max_runs"}}

    def next_round() -> bool:
        result = race(_scores(folder, candidates, tune_plan.primary), racing)
        alive = [g for g in candidates if g.label in result.alive]
        training = alive + ([baseline] if baseline not in alive else [])
        n = result.seeds
        affordable = _affordable(groups, len(training), tune_plan)
        if not result.ended and affordable:
            for g in training:
                g.runs.setdefault(n, _key(g, overrides, n))
            log(f"after {n} seeds: {len(alive)} of {len(candidates)} candidates in the race; seed {n} for them and the baseline")
            return True
        chosen = next(g for g in candidates if g.label == result.chosen)
        fresh = range(tune_plan.max_seeds, tune_plan.max_seeds + tune_plan.fresh_seeds)  # seeds no race uses
        pair = [chosen] + ([baseline] if baseline is not chosen else [])
        added = [s for s in fresh for g in pair if s not in g.runs]
        for s in fresh:
            for g in pair:
                g.runs.setdefault(s, _key(g, overrides, s))
        if added:
            log(f"the race ended after {n} seeds ({_why(result, affordable)}); {chosen.label} and the baseline on "
                f"{tune_plan.fresh_seeds} fresh seeds")
        return bool(added)

    # train_groups takes more rounds while the design is adaptive: the race decides when it ends.
    design = Design(seeds=tune_plan.first_look, max_seeds=tune_plan.max_seeds + tune_plan.fresh_seeds,
                    primary=tune_plan.primary)
    train_groups(folder, groups, identity, design, None, runs_dir, overrides, next_round, jobs=jobs, threads=threads,
                 overwrite=overwrite, log=log)
    return write_tune_report(folder, candidates, baseline, tune_plan)


def _key(group: Group, overrides: dict, seed: int) -> str:
    return run_key(group.config(overrides, seed))


def _cost(groups: list[Group], seeds) -> int:
    """The distinct trainings `groups` hold at `seeds` (a candidate may be the baseline's own runs)."""
    return len({key for g in groups for s, key in g.runs.items() if s in seeds})


def _affordable(groups: list[Group], round_runs: int, tune_plan: TunePlan) -> bool:
    """Whether --max-runs pays for a round of `round_runs` more, the fresh runs kept back."""
    spent = _cost(groups, range(tune_plan.max_seeds + tune_plan.fresh_seeds))
    return not tune_plan.max_runs or spent + round_runs + 2 * tune_plan.fresh_seeds <= tune_plan.max_runs


def _why(result: RaceResult, affordable: bool) -> str:
    if len(result.alive) == 1:
        return "one candidate left"
    return "--max-seeds reached" if affordable else "--max-runs cannot pay for another round"


def _scores(folder: Path, groups: list[Group], key: str) -> dict[str, list[float]]:
    """Each group's `key` by seed 0, 1, ... as far as its runs have finished without a gap
    (higher is better: a lower-is-better measure is negated)."""
    if not (folder / "sweep.json").is_file():
        return {g.label: [] for g in groups}
    _, runs = load_study(folder)
    sign = 1 if measure(key).higher_is_better else -1
    by = {(r["group"], r["seed"]): r["metrics"][key] for r in runs}
    scores = {}
    for g in groups:
        row = []
        while (g.label, len(row)) in by:
            row.append(sign * by[(g.label, len(row))])
        scores[g.label] = row
    return scores


def write_tune_report(folder: Path, candidates: list[Group], baseline: Group, tune_plan: TunePlan) -> dict:
    """tune.json, summary.md and race.png from the finished runs: the race, the choice, its score and
    its gains."""
    racing = RacePlan(len(candidates), tune_plan.first_look, tune_plan.max_seeds, tune_plan.alpha)
    result = race(_scores(folder, candidates, tune_plan.primary), racing)
    _, runs = load_study(folder)
    chosen = next((g for g in candidates if g.label == result.chosen), None)
    groups = candidates + ([baseline] if baseline not in candidates else [])
    training = len(result.alive) + (baseline.label not in result.alive)
    out = {"plan": asdict(tune_plan), "candidates": [g.label for g in candidates], "baseline": baseline.label,
           "nominal_level": racing.nominal_level(), "seeds_raced": result.seeds,
           "ended": result.ended or not _affordable(groups, training, tune_plan),
           "chosen": result.chosen, "chosen_point": chosen.point if chosen else None,
           "confidence_set": result.alive, "left_at": result.left_at,
           "looks": [asdict(look) for look in result.looks], "runs": len({r["key"] for r in runs}),
           "full_grid_runs": len(groups) * tune_plan.max_seeds + tune_plan.fresh_seeds * (1 + (chosen is not baseline)),
           "scores": {}, "gains": {}}
    if chosen is not None:
        race_seeds = range(result.seeds)
        fresh = range(tune_plan.max_seeds, tune_plan.max_seeds + tune_plan.fresh_seeds)
        metric = {(r["group"], r["seed"]): r["metrics"] for r in runs}
        for key in dict.fromkeys((tune_plan.primary, "test_acc")):
            # The chosen candidate's own score, and its gain over the baseline (none when it is the
            # baseline), each where the race chose it and on the fresh seeds.
            out["scores"][key] = {where: stats.t_interval([metric[(chosen.label, s)][key] for s in seeds
                                                            if (chosen.label, s) in metric])
                                  for where, seeds in (("race", race_seeds), ("fresh", fresh))}
            if chosen is not baseline:
                out["gains"][key] = {where: stats.t_interval([
                    metric[(chosen.label, s)][key] - metric[(baseline.label, s)][key] for s in seeds
                    if (chosen.label, s) in metric and (baseline.label, s) in metric])
                    for where, seeds in (("race", race_seeds), ("fresh", fresh))}
    atomic_write(folder / TUNE_JSON, (json.dumps(out, indent=2) + "\n").encode())
    if result.looks:
        atomic_write(folder / FIGURE, png_bytes(race_figure(result, measure(tune_plan.primary).heading)))
    atomic_write(folder / SUMMARY, summary(out).encode())
    return out


def race_figure(result: RaceResult, heading: str) -> Figure:
    """Each candidate's mean paired difference to the best at every look, with the bound that
    had to fall below zero to drop it; a cross where it left."""
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    for c in dict.fromkeys(c for look in result.looks for c in look.differences):
        seen = [(look.seeds, *look.differences[c]) for look in result.looks if c in look.differences]
        n, mean, bound = (np.array(v) for v in zip(*seen))
        line, = ax.plot(n, 100 * mean, marker="o", label=c)
        ax.fill_between(n, 100 * mean, 100 * bound, color=line.get_color(), alpha=0.12)
        if c in result.left_at:
            ax.plot(n[-1], 100 * mean[-1], marker="x", markersize=12, color=line.get_color())
    ax.axhline(0, color="black", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("seeds (looks)")
    ax.set_ylabel(f"{heading}: candidate - best (points)")
    ax.set_title("The race: a candidate leaves (x) when its shaded bound falls below 0")
    ax.legend(fontsize="small", ncols=2)
    return fig


def summary(out: dict) -> str:
    """The tuning in words and tables (summary.md)."""
    level = 1 - out["plan"]["alpha"]
    lines = [f"Candidates: {', '.join(out['candidates'])}; baseline: {out['baseline']}.",
             f"Raced on {measure(out['plan']['primary']).heading} over {out['seeds_raced']} paired seeds "
             f"(looks from {out['plan']['first_look']} seeds; a candidate left at a one-sided nominal p below "
             f"{out['nominal_level']:.4f}: Bonferroni over the candidates, Pocock over the looks).", ""]
    if not out["ended"]:
        lines.append("The race has not ended: run the same command to continue it.")
    if out["chosen"]:
        lines += [f"**Chosen: {out['chosen']}.** Cannot be told from the best at {level:.0%}: "
                  f"{', '.join(out['confidence_set'])}.", ""]
    left = ", ".join(f"{c} (at {n} seeds)" for c, n in out["left_at"].items())
    lines += [f"Left the race: {left or 'none'}.",
              f"Runs: {out['runs']}, against {out['full_grid_runs']} for every candidate on every seed.", ""]
    for name, table, signed in (("score", out["scores"], False), ("gain", out["gains"], True)):
        rows = []
        for key, estimates in table.items():
            for where, g in estimates.items():
                interval = (f"[{100 * g['low']:{'+' if signed else ''}.2f}, {100 * g['high']:{'+' if signed else ''}.2f}]"
                            if g["low"] is not None else "(one seed)")
                mean = f"{100 * g['mean']:{'+' if signed else ''}.2f}" if g["mean"] is not None else "-"
                rows.append([measure(key).heading, "the race's seeds (chose it)" if where == "race"
                             else "fresh seeds (chose nothing)", str(g["n"]), mean, interval])
        if rows and name == "score":
            lines += ["The chosen candidate's mean (%, 95% t interval): on the seeds that chose it, the mean leans "
                      "up with the choice (the winner's curse); on the fresh seeds it does not:", "",
                      _markdown(["measure", "seeds", "n", "mean", "95% interval"], rows)]
        elif rows:
            lines += ["Its gain over the baseline (points, paired by seed, 95% t interval), estimated the same two "
                      "ways:", "", _markdown(["measure", "seeds", "n", "mean", "95% interval"], rows)]
    if out["chosen"] and out["chosen"] == out["baseline"]:
        lines.append("The chosen candidate is the baseline (the best mean over the race's seeds); any other "
                     "in the confidence set cannot be told from it.")
    return "\n".join(lines) + "\n"
