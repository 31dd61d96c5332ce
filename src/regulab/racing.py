"""Racing candidate settings over paired seeds, ending with the set that cannot be told from the best.

A race (Birattari et al.'s F-race; Lopez-Ibanez et al.'s irace) trains every candidate still in
it on the next seed, and looks at the paired differences from `first_look` seeds on. At a look,
a candidate leaves when the best so far is shown better than it: a one-sided paired t test of
(best - candidate) at a nominal level that holds the chance of ever dropping the truly best
candidate under `alpha`. That level is Bonferroni's over the k - 1 comparisons a candidate can
lose (Hsu's multiple comparisons with the best, 1984, take the same form with Dunnett's
constant, which this bound is at least as strict as), and Pocock's over the planned looks
(`stats.SequentialDesign`): the truly best candidate leaves only if some other one is shown
better than it at some look, and each of those k - 1 sequences of tests errs with probability
at most alpha / (k - 1). The candidates left at the end are the confidence set for the best.

Everything here works on plain numbers, so a race can be replayed over a table of finished runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from regulab.stats import ALPHA, SequentialDesign


@dataclass(frozen=True)
class RacePlan:
    """A race's rules: the candidates' number, the seeds at its first look and at most, its level."""

    candidates: int
    first_look: int = 3
    max_seeds: int = 10
    alpha: float = ALPHA

    def looks(self) -> tuple[int, ...]:
        return tuple(range(self.first_look, self.max_seeds + 1))

    def nominal_level(self) -> float:
        """The one-sided p-value below which a candidate leaves, at any look."""
        share = self.alpha / max(self.candidates - 1, 1)
        return SequentialDesign(self.looks()).nominal_level(share, sided=1)


@dataclass
class Look:
    """One look: its seeds, the best candidate then, and each candidate's mean paired difference
    to it (candidate - best) with the one-sided bound that would have to stay below 0 to drop it."""

    seeds: int
    best: str
    differences: dict[str, tuple[float, float]]  # candidate: (mean, upper bound)
    left: list[str]


@dataclass
class RaceResult:
    alive: list[str]                   # in the race after the seeds seen: the confidence set once it ended
    left_at: dict[str, int]            # a candidate that left: the seeds of the look it left at
    looks: list[Look] = field(default_factory=list)
    seeds: int = 0                     # the seeds every candidate still in has run
    ended: bool = False                # one candidate left, or max_seeds reached

    @property
    def chosen(self) -> str | None:
        """The best candidate of the confidence set by its mean over the race's seeds."""
        return self.looks[-1].best if self.looks else None


def race(scores: dict[str, list[float]], plan: RacePlan) -> RaceResult:
    """Replay a race over `scores` (each candidate's score by seed, 0, 1, ...; higher is better;
    a candidate that left may have fewer): the state after every look the scores allow."""
    alive = list(scores)
    if len(alive) != plan.candidates:
        raise ValueError(f"the plan is for {plan.candidates} candidates, the scores have {len(alive)}")
    level = plan.nominal_level()
    result = RaceResult(alive, {})
    for n in range(1, plan.max_seeds + 1):
        if any(len(scores[c]) < n for c in alive):
            break  # the next seed has not finished for every candidate still in
        result.seeds = n
        if n < plan.first_look:
            continue
        table = np.array([scores[c][:n] for c in alive])
        best = alive[int(np.argmax(table.mean(axis=1)))]
        top = table[alive.index(best)]
        differences, left = {}, []
        for c, row in zip(alive, table):
            diff = row - top  # candidate - best, by seed
            se = diff.std(ddof=1) / np.sqrt(n)
            bound = diff.mean() + sps.t.ppf(1 - level, n - 1) * se if se > 0 else diff.mean()
            differences[c] = (float(diff.mean()), float(bound))
            if c != best and bound < 0:  # the best is shown better than it at the race's level
                left.append(c)
        result.looks.append(Look(n, best, differences, left))
        alive = [c for c in alive if c not in left]
        result.left_at.update({c: n for c in left})
        result.alive = alive
        if len(alive) == 1:
            break
    result.ended = len(result.alive) == 1 or result.seeds == plan.max_seeds
    return result
