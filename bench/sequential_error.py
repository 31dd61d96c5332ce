"""The error rates of adaptive seeds, by simulation: how often the study's procedure says
*better*/*worse* when the true effect is 0, *equivalent* when it equals the margin, and *better*
at an effect of one point; beside them, the same looks each judged at a plain 5% (what peeking
without a boundary gives). Paired differences are normal with the standard deviation measured here
(`--sd`, default 0.005: paired test-accuracy differences between neighbouring L2 strengths of the
first study, 3 seeds on one GPU each, root mean square of six standard deviations 0.0047; the
seed's question measured 0.0062 on the GPU and 0.0039 on the CPU). The boundary holds the rate of
*better*/*worse* at effect 0 to 5% whatever the sd (the t statistic does not depend on it); a
smaller sd against the margin lowers it further (more null studies stop early as *equivalent*),
and the power and the seeds spent depend on it too.

    python bench/sequential_error.py [--studies 5000] [--sd 0.005]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from regulab.analysis import Design, simulate_design

RESULTS = Path(__file__).parent / "results"


def peeking(design: Design, effect: float, sd: float, studies: int, rng: np.random.Generator) -> float:
    """Share of studies that a two-sided t test at 5%, taken at every look with no boundary, ever
    calls different from 0."""
    looks = design.sequential.looks
    diffs = rng.normal(effect, sd, size=(studies, looks[-1]))
    hit = np.zeros(studies, dtype=bool)
    for n in looks:
        hit |= stats.ttest_1samp(diffs[:, :n], 0.0, axis=1).pvalue < 0.05
    return float(hit.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=5000)
    parser.add_argument("--sd", type=float, default=0.005, help="standard deviation of the paired differences")
    parser.add_argument("--margin", type=float, default=0.005)
    args = parser.parse_args()
    design = Design(seeds=10, max_seeds=16, seeds_per_round=2, margin=args.margin)
    cases = [("true effect 0", 0.0, "better+worse"), ("true effect = margin", args.margin, "equivalent"),
             ("true effect 1 point", 0.01, "better")]
    rows = []
    for i, (name, effect, watched) in enumerate(cases):
        out = simulate_design(design, effect, args.sd, args.studies, np.random.default_rng(100 + i))
        share = sum(out.get(word, 0.0) for word in watched.split("+"))
        # A 95% Clopper-Pearson interval for the simulated share.
        k = round(share * args.studies)
        low, high = stats.binomtest(k, args.studies).proportion_ci(0.95)
        rows.append({"case": name, "effect": effect, "rate_of": watched, "rate": share, "rate_low": low, "rate_high": high,
                     "mean_seeds": out["mean_seeds"], "verdicts": {w: v for w, v in out.items() if w not in
                                                                   ("studies", "effect", "sd", "mean_seeds")},
                     "peeking_at_5pct": peeking(design, effect, args.sd, args.studies, np.random.default_rng(200 + i))
                     if effect == 0 else None})
    print(f"adaptive seeds: looks at {design.sequential.looks} seeds, margin {args.margin}, sd {args.sd}, "
          f"{args.studies} simulated studies per case; nominal level per look {design.sequential.nominal_level():.4f}")
    print(f"{'case':<22} {'rate of':<14} {'rate':>7} {'95% interval':>17} {'mean seeds':>11} {'peeking at 5%':>14}")
    for r in rows:
        peek = "" if r["peeking_at_5pct"] is None else f"{r['peeking_at_5pct']:.4f}"
        print(f"{r['case']:<22} {r['rate_of']:<14} {r['rate']:7.4f} [{r['rate_low']:.4f}, {r['rate_high']:.4f}] "
              f"{r['mean_seeds']:11.2f} {peek:>14}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "sequential_error.json"
    out.write_text(json.dumps({"design": design.record(), "looks": design.sequential.looks, "sd": args.sd,
                               "studies": args.studies, "rows": rows}, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
