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
from scipy import stats

from regulab.analysis import Design, judge
from regulab.study import load_study
from regulab.sweeps import sweep

RESULTS = Path(__file__).parent / "results"
DESIGNS = {"3 seeds": Design(seeds=3, margin=0.005), "10 seeds": Design(seeds=10, margin=0.005),
           "3 to 6 seeds, Pocock": Design(seeds=3, max_seeds=6, seeds_per_round=1, margin=0.005)}


def train(pool: Path, runs: int, epochs: int, jobs: int) -> dict[int, dict[int, float]]:
    """Train (or find) seeds 0..runs-1 at `epochs` and `epochs + 1`; test accuracy by epochs, by seed."""
    folder = pool / "plan"
    sweep(["seed-noreg"], folder, {"epochs": [epochs, epochs + 1]}, runs,
          {"data": "cifar10-mini", "precision": "fp32"}, jobs=jobs, runs_dir=pool / "runs")
    _, finished = load_study(folder)
    out: dict[int, dict[int, float]] = {}
    for r in finished:
        out.setdefault(r["config"]["epochs"], {})[r["seed"]] = r["metrics"]["test_acc"]
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="seeds per arm (default 200)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the base arm (default 3; the other has one more)")
    parser.add_argument("--pool", type=Path, default=Path("runs/real-error-rates"), help="where the runs go")
    parser.add_argument("--studies", type=int, default=2000, help="studies drawn per design and truth (default 2000)")
    parser.add_argument("--jobs", type=int, default=0, help="trainings at once (default: one per core)")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_error_rates.json")
    args = parser.parse_args()
    accs = train(args.pool, args.runs, args.epochs, args.jobs)
    rows = measure(accs, args.epochs, args.studies, seed=20261203)
    print(f"\n{args.runs} runs per arm, seed-noreg on cifar10-mini, {args.epochs} and {args.epochs + 1} epochs, fp32\n")
    print("| design | truth | true effect | rate of better/worse (placebo) or better (effect) [95%, draws] "
          "[95%, independent studies] | coverage of the truth | mean seeds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        hit = r.get("better_or_worse") or r["better"]
        cover = r["coverage"]
        print(f"| {r['design']} | {r['truth']} | {r['true_effect']:+.4f} | {hit['rate']:.3f} "
              f"[{hit['ci_draws'][0]:.3f}, {hit['ci_draws'][1]:.3f}] [{hit['ci_independent'][0]:.3f}, "
              f"{hit['ci_independent'][1]:.3f}] (n={hit['independent']}) | {cover['rate']:.3f} "
              f"[{cover['ci_independent'][0]:.3f}, {cover['ci_independent'][1]:.3f}] | {r['mean_seeds']:.1f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"runs_per_arm": args.runs, "epochs": args.epochs, "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
