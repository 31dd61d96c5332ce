"""The lab's error rates and coverage measured on real trainings, not on normal draws: a cheap real
configuration (seed-noreg on cifar10-mini, a few epochs, fp32) trained with many seeds, and the
same with one epoch more (a small, real effect); then studies drawn from those runs, judged by the
same code the reports use (analysis.judge), for three designs: 3 seeds, 10 seeds, and 3 seeds
then one a round to 6 (Pocock over the looks), margin ±0.005.

- No true difference: a *placebo* pair is two runs of the same configuration with different
  seeds, so every paired difference has mean 0 exactly. The rate of *better*/*worse* should be at
  most 5%, and the verdict's interval should cover 0 in 95% of studies (97% to 98% at adaptive
  looks, where it is wider).
- One epoch more: the pair is one seed with E and with E + 1 epochs (the same split, initial
  weights and data order). Its true effect is taken as the mean difference over every seed
  trained; power is the share of *better*, coverage the share of intervals holding that mean.

Studies are drawn at random from the pool, `--studies` of each kind. Studies drawn from one pool
share runs, so they are not independent: beside each rate's exact (Clopper-Pearson) binomial
interval over the draws, the table gives the one over the disjoint studies the pool holds (runs
// runs per study), the honest count of independent studies.

    python bench/real_error_rates.py --runs 200 --epochs 3 --pool /somewhere/pool   # trains 2 x 200 runs (resumable)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from regulab.analysis import Design, judge
from regulab.figures import save_figure
from regulab.files import between_markers
from regulab.study import load_study
from regulab.sweeps import sweep

RESULTS = Path(__file__).parent / "results"
FIGURE = Path(__file__).parent.parent / "docs" / "real-error-rates.png"
PAGE = Path(__file__).parent.parent / "docs" / "statistics.md"
MARKERS = ("<!-- real error rates: written by bench/real_error_rates.py", "<!-- end of real error rates -->")
DESIGNS = {"3 seeds": Design(seeds=3, margin=0.005), "10 seeds": Design(seeds=10, margin=0.005),
           "3 to 6 seeds, Pocock": Design(seeds=3, max_seeds=6, seeds_per_round=1, margin=0.005)}


def train(pool: Path, runs: int, epochs: int, jobs: int, precision: str) -> tuple[dict[int, dict[int, float]], list[str]]:
    """Train (or find) seeds 0..runs-1 at `epochs` and `epochs + 1`; test accuracy by epochs, by
    seed, and the machines the runs trained on."""
    folder = pool / "plan"
    sweep(["seed-noreg"], folder, {"epochs": [epochs, epochs + 1]}, runs,
          {"data": "cifar10-mini", "precision": precision}, jobs=jobs, threads=1 if jobs else 0, runs_dir=pool / "runs")
    _, finished = load_study(folder)
    out: dict[int, dict[int, float]] = {}
    for r in finished:
        out.setdefault(r["config"]["epochs"], {})[r["seed"]] = r["metrics"]["test_acc"]
    return out, sorted({r["metrics"]["machine"] for r in finished})


def rate(hits: int, draws: int, independent: int) -> dict:
    """A share with its exact binomial intervals over the draws and over the independent studies."""
    share = hits / draws
    over_draws = stats.binomtest(hits, draws).proportion_ci(method="exact")
    over_independent = stats.binomtest(round(share * independent), independent).proportion_ci(method="exact")
    return {"rate": share, "ci_draws": [over_draws.low, over_draws.high],
            "ci_independent": [over_independent.low, over_independent.high], "independent": independent}


def studies(base: dict[int, float], other: dict[int, float] | None, most: int, draws: int,
            rng: np.random.Generator) -> np.ndarray:
    """Paired differences, draws x most: with `other`, one seed's other minus base; without, a
    placebo pair of two different seeds of base (mean 0 by construction)."""
    seeds = np.array(sorted(base.keys() & (other.keys() if other else base.keys())))
    take = 2 * most if other is None else most
    rows = []
    for _ in range(draws):
        picked = rng.choice(seeds, size=take, replace=False)
        if other is None:
            rows.append([base[a] - base[b] for a, b in zip(picked[:most], picked[most:])])
        else:
            rows.append([other[s] - base[s] for s in picked])
    return np.array(rows)


def measure(accs: dict[int, dict[int, float]], epochs: int, draws: int, seed: int) -> list[dict]:
    base, more = accs[epochs], accs[epochs + 1]
    effect = float(np.mean([more[s] - base[s] for s in base.keys() & more.keys()]))
    rng = np.random.default_rng(seed)
    rows = []
    for name, design in DESIGNS.items():
        most = max(design.seeds, design.max_seeds)
        for kind, other, truth in (("no difference (placebo pairs)", None, 0.0), ("one epoch more", more, effect)):
            judged = judge(studies(base, other, most, draws, rng), design)
            independent = len(base) // (2 * most if other is None else most)
            decided = sum(w in ("better", "worse") for w, _ in judged)
            better = sum(w == "better" for w, _ in judged)
            covered = sum(c["low"] <= truth <= c["high"] for _, c in judged if c["low"] is not None)
            rows.append({"design": name, "truth": kind, "true_effect": truth, "draws": draws,
                         "mean_seeds": float(np.mean([c["n"] for _, c in judged])),
                         "better_or_worse" if other is None else "better": rate(decided if other is None else better,
                                                                                 draws, independent),
                         "coverage": rate(covered, draws, independent)})
    return rows


def table(rows: list[dict], runs: int, epochs: int, precision: str) -> str:
    """The rates as a markdown table: each with its exact interval over the draws and over the
    independent studies the pool holds (the honest one)."""
    lines = [f"{runs} runs per arm, seed-noreg on cifar10-mini, {epochs} and {epochs + 1} epochs, {precision}; "
             f"{rows[0]['draws']} studies drawn per row.", "",
             "| design | truth | true effect | rate of better/worse (placebo) or better (effect) | 95%, draws | "
             "95%, independent studies | coverage of the truth [95%, independent] | mean seeds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        hit, cover = r.get("better_or_worse") or r["better"], r["coverage"]
        lines.append(f"| {r['design']} | {r['truth']} | {100 * r['true_effect']:+.2f} points | {hit['rate']:.3f} | "
                     f"[{hit['ci_draws'][0]:.3f}, {hit['ci_draws'][1]:.3f}] | [{hit['ci_independent'][0]:.3f}, "
                     f"{hit['ci_independent'][1]:.3f}] (n={hit['independent']}) | {cover['rate']:.3f} "
                     f"[{cover['ci_independent'][0]:.3f}, {cover['ci_independent'][1]:.3f}] | {r['mean_seeds']:.1f} |")
    return "\n".join(lines) + "\n"


def figure(rows: list[dict], runs: int) -> Figure:
    """Each design's rate of false verdicts (placebo), its power (one epoch more) and the coverage of
    its intervals, with the exact binomial intervals over the independent studies (thick) and
    over the draws (thin)."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    panels = fig.subplots(1, 3, sharey=True)
    names = list(DESIGNS)
    for ax, (title, truth, key, target) in zip(panels, (
            ("false better/worse, no difference", "no difference (placebo pairs)", "better_or_worse", 0.05),
            ("power: better, one epoch more", "one epoch more", "better", None),
            ("coverage of the truth, no difference", "no difference (placebo pairs)", "coverage", 0.95))):
        for i, name in enumerate(names):
            r = next(r for r in rows if r["design"] == name and r["truth"] == truth)[key]
            ax.plot([r["ci_independent"][0], r["ci_independent"][1]], [i, i], color="C0", linewidth=5, alpha=0.35)
            ax.plot([r["ci_draws"][0], r["ci_draws"][1]], [i, i], color="C0", linewidth=1.5)
            ax.plot(r["rate"], i, "o", color="C0")
        if target is not None:
            ax.axvline(target, color="black", linestyle="--", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_title(title, fontsize="medium")
    panels[0].set_yticks(range(len(names)), names)
    fig.suptitle(f"Measured on {runs} real runs per arm (seed-noreg, cifar10-mini)", fontsize="medium")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="seeds per arm (default 200)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the base arm (default 3; the other has one more)")
    parser.add_argument("--pool", type=Path, default=Path("runs/real-error-rates"), help="where the runs go")
    parser.add_argument("--studies", type=int, default=2000, help="studies drawn per design and truth (default 2000)")
    parser.add_argument("--jobs", type=int, default=0, help="trainings at once (default: one per core)")
    parser.add_argument("--precision", default="fp32", help="the runs' precision (default fp32)")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_error_rates.json")
    args = parser.parse_args()
    accs, machines = train(args.pool, args.runs, args.epochs, args.jobs, args.precision)
    rows = measure(accs, args.epochs, args.studies, seed=20261203)
    section = table(rows, args.runs, args.epochs, args.precision)
    print(section)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs_per_arm": args.runs, "epochs": args.epochs, "precision": args.precision,
                                    "machines": machines, "rows": rows}, indent=2) + "\n")
    save_figure(figure(rows, args.runs), FIGURE)
    PAGE.write_text(between_markers(PAGE.read_text(), *MARKERS, f"\nThe runs trained on {'; '.join(machines)}.\n\n{section}\n"
                                    "![Rates of false verdicts, power and coverage measured on real runs, with their "
                                    "exact binomial intervals](real-error-rates.png)\n\n"))
    print(f"\nwritten to {args.out} and {FIGURE}")


if __name__ == "__main__":
    main()
