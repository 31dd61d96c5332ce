"""`regulab tune` judged against ground truth, by replaying races over a database of real runs.

The database: one regularizer at 8 strengths x 20 seeds, trained by `regulab sweep` (the runs are
small; their summaries are committed in bench/results/tune_replay_runs.json). The truth is the
strength with the best mean over all 20 seeds on the race's measure (best_val_acc), and each
strength's true gain is its 20-seed mean less the baseline's (strength 0).

A replay draws an order of the 20 seeds at random, races the 8 strengths over the first
`max_seeds` of them with regulab's own code (`racing.race`, the rules `regulab tune` uses), and
takes the next `fresh_seeds` as the fresh seeds that chose nothing. Per replay: whether the
confidence set holds the true best (coverage, with its Clopper-Pearson interval), the regret of
the choice (the truth's mean less the chosen one's, over all 20 seeds), the runs spent against the
full grid, and the bias of the race's estimate of the chosen gain (and of the chosen candidate's own
score) and of the fresh seeds', each against the same quantity on the seeds that race never saw
(the 20-seed mean holds the race's own seeds, which the choice favoured).

Replays drawn from 20 seeds share them, so they are not independent: the binomial interval over
the replays is narrower than the evidence; the database holds 20 // (max_seeds + fresh_seeds)
disjoint races. The truth itself is a 20-seed mean, known to within its own interval.

    python bench/tune_replay.py collect /work/replay/sweep     # the sweep's runs into the committed summaries
    python bench/tune_replay.py --replays 1000                 # the table, results/tune_replay.json, docs/tune-replay.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from statsmodels.stats.proportion import proportion_confint

from regulab import stats
from regulab.figures import save_figure
from regulab.files import between_markers
from regulab.racing import RacePlan, race
from regulab.study import load_study

RESULTS = Path(__file__).parent / "results"
DATABASE = RESULTS / "tune_replay_runs.json"
FIGURE = Path(__file__).parent.parent / "docs" / "tune-replay.png"
PAGE = Path(__file__).parent.parent / "docs" / "tune.md"
START, END = "<!-- replay: written by bench/tune_replay.py", "<!-- end of replay -->"
MEASURES = ("best_val_acc", "test_acc")
BIASES = ("regret", "race_bias", "fresh_bias", "race_score_bias", "fresh_score_bias")


def collect(folder: Path) -> None:
    """The finished runs of a sweep folder as {candidate: {seed: {measure: value}}}, with their settings."""
    manifest, runs = load_study(folder)
    table: dict = {}
    for r in runs:
        table.setdefault(r["group"], {})[str(r["seed"])] = {k: r["metrics"][k] for k in MEASURES}
    machines = sorted({r["metrics"]["machine"] for r in runs})
    config = runs[0]["config"]
    summary = {"command": "regulab sweep " + " ".join(manifest["presets"]) + " " + " ".join(
                   f"--grid {k}={','.join(map(str, v))}" for k, v in manifest["grid"].items()) + " " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in manifest["settings"].items()) + f" --seeds {manifest['seeds']}",
               "machines": machines, "precision": runs[0]["metrics"]["precision"],
               "epochs": config["epochs"], "data": runs[0]["metrics"]["data"], "runs": table}
    DATABASE.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{len(runs)} runs of {len(table)} candidates into {DATABASE}")


def replay(database: dict, replays: int, first_look: int, max_seeds: int, fresh_seeds: int, seed: int) -> dict:
    runs = database["runs"]
    names = list(runs)
    seeds = sorted({int(s) for c in runs.values() for s in c})
    values = {m: np.array([[runs[c][str(s)][m] for s in seeds] for c in names]) for m in MEASURES}  # candidate x seed
    base = names.index(next(c for c in names if float(c.split("=")[1]) == 0))
    truth = {m: values[m].mean(axis=1) for m in MEASURES}
    best = int(np.argmax(truth["best_val_acc"]))
    plan = RacePlan(len(names), first_look, max_seeds)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(replays):
        order = rng.permutation(len(seeds))
        raced, fresh = order[:max_seeds], order[max_seeds:max_seeds + fresh_seeds]
        result = race({c: list(values["best_val_acc"][i, raced]) for i, c in enumerate(names)}, plan)
        chosen = names.index(result.chosen)
        # Every candidate ran to the look it left at, the rest to the end; the baseline ran every round.
        spent = sum(result.left_at.get(c, result.seeds) for c in names)
        spent += result.seeds - result.left_at.get(names[base], result.seeds)
        row = {"covered": names[best] in result.alive, "set_size": len(result.alive), "chosen": names[chosen],
               "seeds": result.seeds, "runs": spent, "grid_runs": len(names) * max_seeds}
        race_seeds, held_out = raced[:result.seeds], order[max_seeds:]
        for m in MEASURES:
            # Biases are measured against the seeds this race never saw: the 20-seed mean holds the
            # race's own seeds, which the choice favoured, so it would lean toward the race's estimate.
            own, gain = values[m][chosen], values[m][chosen] - values[m][base]
            row[m] = {"regret": truth[m][best] - truth[m][chosen],
                      "race_bias": gain[race_seeds].mean() - gain[held_out].mean(),
                      "fresh_bias": gain[fresh].mean() - gain[held_out].mean(),
                      # the chosen candidate's own score: the winner's curse shows here even when the
                      # choice is the baseline (whose gain over itself is 0 by definition)
                      "race_score_bias": own[race_seeds].mean() - own[held_out].mean(),
                      "fresh_score_bias": own[fresh].mean() - own[held_out].mean()}
        rows.append(row)
    covered = sum(r["covered"] for r in rows)
    low, high = proportion_confint(covered, replays, alpha=0.05, method="beta")
    out = {"database": {k: v for k, v in database.items() if k != "runs"}, "candidates": names,
           "true_means": {m: dict(zip(names, truth[m].round(5).tolist())) for m in MEASURES},
           "true_best": names[best], "replays": replays, "first_look": first_look, "max_seeds": max_seeds,
           "fresh_seeds": fresh_seeds, "nominal_level": plan.nominal_level(),
           "disjoint_races": len(seeds) // (max_seeds + fresh_seeds),
           "coverage": {"covered": covered, "share": covered / replays, "low": low, "high": high},
           "set_size": stats.t_interval([r["set_size"] for r in rows]),
           "runs": stats.t_interval([r["runs"] for r in rows]), "grid_runs": len(names) * max_seeds,
           "chosen": {c: sum(r["chosen"] == c for r in rows) for c in names}}
    for m in MEASURES:
        out[m] = {key: stats.t_interval([r[m][key] for r in rows]) for key in BIASES}
    out["rows"] = rows
    return out


def figure(out: dict) -> Figure:
    rows = out["rows"]
    fig = Figure(figsize=(11, 7), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    names = out["candidates"]
    truth = out["true_means"]["best_val_acc"]
    a.bar(range(len(names)), [100 * truth[n] for n in names], color=["C2" if n == out["true_best"] else "C0" for n in names])
    a.set_xticks(range(len(names)), [n.split("=")[1] for n in names])
    a.set_ylim(100 * min(truth.values()) - 2, 100 * max(truth.values()) + 2)
    share = [100 * out["chosen"][n] / out["replays"] for n in names]
    for i, s in enumerate(share):
        a.text(i, 100 * truth[names[i]] + 0.3, f"{s:.0f}%", ha="center", fontsize="small")
    cov = out["coverage"]
    a.set_title(f"20-seed means (truth: {out['true_best']}); % of races choosing each\n"
                f"the set held the truth in {100 * cov['share']:.1f}% [{100 * cov['low']:.1f}, {100 * cov['high']:.1f}]")
    a.set_xlabel(names[0].split("=")[0])
    a.set_ylabel("best val acc (%)")
    b.hist([100 * r["best_val_acc"]["regret"] for r in rows], bins=20)
    b.set_xlabel("regret: the truth's 20-seed mean less the choice's (points of val acc)")
    b.set_title("Regret of the choice")
    c.hist([r["runs"] for r in rows], bins=range(0, out["grid_runs"] + 2, 2))
    c.axvline(out["grid_runs"], color="black", linestyle="--", label=f"every candidate, {out['max_seeds']} seeds")
    c.set_xlabel("runs the race spent (fresh seeds not counted)")
    c.legend(fontsize="small")
    c.set_title("Runs spent against the full grid")
    for key, label in (("race_score_bias", "on the race's seeds"), ("fresh_score_bias", "on fresh seeds")):
        d.hist([100 * r["best_val_acc"][key] for r in rows], bins=25, alpha=0.6, label=label)
    d.axvline(0, color="black")
    d.set_xlabel("the chosen candidate's mean less its 20-seed mean (points of val acc, the measure raced on)")
    d.set_title("The winner's curse: the choice estimated where it was chosen, and afresh")
    d.legend(fontsize="small")
    return fig


def page_section(out: dict) -> str:
    """The replay's numbers in words and a table, for docs/tune.md."""
    db, cov = out["database"], out["coverage"]
    means = ", ".join(f"{name.split('=')[1]}: {100 * value:.2f}" for name, value in out["true_means"]["best_val_acc"].items())
    rows = [("coverage: the confidence set holds the true best", f"{100 * cov['share']:.1f}%",
             f"[{100 * cov['low']:.1f}, {100 * cov['high']:.1f}] (Clopper-Pearson over the replays)"),
            ("size of the confidence set (of 8)", f"{out['set_size']['mean']:.2f}", interval(out["set_size"], digits=2)),
            (f"runs the race spent (every candidate on every seed: {out['grid_runs']})", f"{out['runs']['mean']:.1f}",
             interval(out["runs"], digits=1))]
    for m, label in (("best_val_acc", "val acc"), ("test_acc", "test acc")):
        t = out[m]
        rows += [(f"regret on {label} (points; the truth's 20-seed mean less the choice's)",
                  f"{100 * t['regret']['mean']:.2f}", interval(t["regret"], 100, 2)),
                 (f"bias of the race's estimate of the chosen gain over the baseline, {label} (points)",
                  f"{100 * t['race_bias']['mean']:+.2f}",
                  interval(t["race_bias"], 100, 2)),
                 (f"bias of the fresh seeds' estimate, {label} (points)", f"{100 * t['fresh_bias']['mean']:+.2f}",
                  interval(t["fresh_bias"], 100, 2)),
                 (f"bias of the chosen candidate's own mean on the race's seeds, {label} (points)",
                  f"{100 * t['race_score_bias']['mean']:+.2f}", interval(t["race_score_bias"], 100, 2)),
                 (f"bias of the chosen candidate's own mean on fresh seeds, {label} (points)",
                  f"{100 * t['fresh_score_bias']['mean']:+.2f}", interval(t["fresh_score_bias"], 100, 2))]
    table = "| quantity | mean | 95% interval |\n|---|---|---|\n" + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)
    return (f"The database: `{db['command']}`, {db['epochs']} epochs, {db['precision']}, trained on "
            f"{'; '.join(db['machines'])}. The 20-seed means of best val acc by strength (%): {means}; the "
            f"truth is {out['true_best']}. {out['replays']} replays, looks from {out['first_look']} to "
            f"{out['max_seeds']} seeds, {out['fresh_seeds']} fresh seeds, a nominal one-sided level of "
            f"{out['nominal_level']:.4f} per comparison.\n\n{table}\n"
            f"The replays share the database's 20 seeds, so they are not independent: it holds "
            f"{out['disjoint_races']} disjoint race(s) of {out['max_seeds'] + out['fresh_seeds']} seeds, and the "
            "interval over the replays is narrower than the evidence. The means and intervals of the other rows "
            "are over the replays, with the same caveat. The truth is itself a 20-seed mean. A bias is an "
            "estimate less the same quantity on the seeds that race never saw (its last "
            f"{20 - out['max_seeds']}): the 20-seed mean holds the race's own seeds, which the choice favoured.\n")


def interval(t: dict, scale: float = 1, digits: int = 3) -> str:
    return f"[{scale * t['low']:.{digits}f}, {scale * t['high']:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("collect", nargs="*", help="collect FOLDER: read a finished sweep into the database")
    parser.add_argument("--replays", type=int, default=1000)
    parser.add_argument("--first-look", type=int, default=3)
    parser.add_argument("--max-seeds", type=int, default=10)
    parser.add_argument("--fresh-seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    if args.collect:
        collect(Path(args.collect[1]))
        return
    out = replay(json.loads(DATABASE.read_text()), args.replays, args.first_look, args.max_seeds, args.fresh_seeds,
                 args.seed)
    save_figure(figure(out), FIGURE)
    rows = out.pop("rows")
    PAGE.write_text(between_markers(PAGE.read_text(), START, END, page_section(out)))
    (RESULTS / "tune_replay.json").write_text(json.dumps(out, indent=1) + "\n")
    cov = out["coverage"]
    print(f"{out['replays']} races of {len(out['candidates'])} candidates over {out['database']['command']}")
    print(f"truth: {out['true_best']}; nominal level {out['nominal_level']:.4f}; {out['disjoint_races']} disjoint races")
    print(f"{'quantity':44s} {'mean':>8s} {'95% interval':>20s}")
    print(f"{'coverage of the confidence set':44s} {cov['share']:8.3f} {interval(cov):>20s}")
    for name, t in (("confidence set size", out["set_size"]), (f"runs spent (grid {out['grid_runs']})", out["runs"])):
        print(f"{name:44s} {t['mean']:8.2f} {interval(t, digits=2):>20s}")
    for m in MEASURES:
        for key in BIASES:
            t = out[m][key]
            print(f"{m + ' ' + key + ' (points)':44s} {100 * t['mean']:8.3f} {interval(t, 100):>20s}")
    print(f"figure: {FIGURE}; replays: {len(rows)}")


if __name__ == "__main__":
    main()
