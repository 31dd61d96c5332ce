"""The statistics of a study, on plain numbers: intervals, the four verdicts, Holm's adjustment
for a table of comparisons, sequential looks, seeds needed, and the paired bootstrap.

Nothing here reads a run folder or draws a figure; `analysis` applies these to a study's runs.

- Intervals: Student t over seeds (`t_interval`).
- Verdicts (`verdict`): *better*/*worse* where the two-sided paired t test rejects "no
  difference" at 5%; *equivalent* where two one-sided tests (TOST; Schuirmann 1987) reject
  "the difference is at least the margin" at 5% each, i.e. the 90% interval lies inside
  [-margin, +margin]; *undecided* otherwise. Without a margin the last two are one: *no clear
  difference*.
- A table's rows are a family: `holm` (Holm 1979, "A simple sequentially rejective multiple test
  procedure") adjusts their p-values, each kind (difference, equivalence) as its own family.
- Adaptive seeds look at the data several times. `SequentialDesign` turns the p-values of all
  looks so far into one p-value that stays valid under repeated looks: Pocock's group-sequential
  boundary (Pocock 1977, "Group sequential methods in the design and analysis of clinical
  trials"), the same nominal level at every look, with that level found for the t statistic
  by simulation (the null distribution of the t statistics at the looks does not depend on the
  unknown variance, so one simulation serves every study of that schedule).
- Seeds needed (`seeds_for_difference`, `seeds_for_equivalence`): exact power of the paired
  t test (noncentral t) and of TOST (integrating over the sample standard deviation).
- `paired_bootstrap`: an interval that resamples test images as well as seeds (Bouthillier et
  al. 2021, "Accounting for Variance in Machine Learning Benchmarks"), and the probability that a
  run of A beats its paired run of B.
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np
from scipy import integrate, stats

ALPHA = 0.05  # every test's level: 95% intervals for differences, 90% for equivalence (TOST)
NO_INTERVAL = "n < 2: no interval"
INTERIM = "interim"  # a comparison whose planned seeds have not all finished: the numbers so far, no verdict
SHORT = "short of a look"  # an adaptive comparison whose pairs (some left out) reach no planned look: no verdict
WORDS = {  # what each verdict means, for the reports
    "better": "the paired difference is in the better direction and its adjusted p-value is below 5% "
              "(the 95% interval excludes zero)",
    "worse": "as better, in the worse direction",
    "equivalent": "two one-sided tests (TOST) at 5% put the difference inside ±margin (the 90% interval lies "
                  "within [-margin, +margin]), after the same adjustment",
    "undecided": "neither: more seeds may decide it",
    "no clear difference": "no margin was given and the 95% interval includes zero",
    INTERIM: "the group or its baseline has not finished the seeds planned for it: the numbers so far, and no "
             "verdict until they have (a verdict at an unplanned look would raise the error rate the plan keeps)",
    SHORT: "every planned seed finished, but with the pairs left out across machines the pairs reach none of the "
           "design's planned looks (moved down by the pairs left out): the numbers, and no verdict",
}


def t_interval(values: list[float], confidence: float = 1 - ALPHA) -> dict:
    """n, mean, standard deviation (n - 1) and the Student-t interval of the mean; with one value
    there is no spread and no interval (None)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "low": None, "high": None}
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / n ** 0.5
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def difference_p(diffs: np.ndarray) -> float:
    """Two-sided p-value of the paired t test of "mean difference 0"."""
    if len(diffs) < 2:
        return 1.0
    if np.ptp(diffs) == 0:  # no spread: a difference other than zero is certain
        return 0.0 if diffs[0] != 0 else 1.0
    return float(stats.ttest_1samp(diffs, 0.0).pvalue)


def tost_p(diffs: np.ndarray, margin: float) -> float:
    """p-value of TOST, the larger of the two one-sided t tests of "difference <= -margin" and
    "difference >= +margin"; below 5% exactly where the 90% interval lies inside the margins."""
    if len(diffs) < 2:
        return 1.0
    if np.ptp(diffs) == 0:  # no spread: inside the margins or not, with certainty
        return 0.0 if abs(diffs[0]) < margin else 1.0
    lower = stats.ttest_1samp(diffs, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(diffs, margin, alternative="less").pvalue
    return float(max(lower, upper))


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None passes through and does not count): the i-th
    smallest of m times (m - i + 1), made non-decreasing in that order, at most 1. A row is
    rejected at level alpha where its adjusted p-value is at most alpha."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, running, adjusted = len(present), 0.0, list(pvalues)
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def verdict(p_difference: float | None, p_equivalence: float | None, mean: float | None,
            higher_is_better: bool) -> str:
    """The word for a paired row from its (adjusted) p-values; `p_equivalence` None means no margin."""
    if p_difference is None or mean is None:
        return NO_INTERVAL
    if p_equivalence is not None and p_equivalence <= ALPHA:
        return "equivalent"  # even where the difference is also non-zero: then it is real but inside the margin
    if p_difference <= ALPHA:
        return "better" if (mean > 0) == higher_is_better else "worse"
    return "undecided" if p_equivalence is not None else "no clear difference"


class SequentialDesign:
    """Looks at the paired differences after `looks[0]`, `looks[1]`, ... seeds. `p_value` turns
    the nominal p-values of the looks taken into one p-value that is valid however many of the
    planned looks are taken: the probability, under the null hypothesis, that the smallest
    nominal p-value over all the planned looks is at most the smallest one seen. Rejecting where
    it is at most alpha is Pocock's boundary; with one look it is the nominal p-value itself."""

    SIMULATIONS = 200_000  # the Monte Carlo error of an adjusted 5% is about 0.1 points

    def __init__(self, looks: tuple[int, ...], residual_df: tuple[int, ...] | None = None):
        """`residual_df`: the degrees of freedom of the variance estimate at each look, where it
        is pooled from more than the looks' own differences (a factorial's residual over its
        blocks); None for the paired t test, n - 1."""
        first = 1 if residual_df else 2
        if list(looks) != sorted(set(looks)) or looks[0] < first:
            raise ValueError(f"looks must rise from at least {first} seeds, not {looks}")
        if residual_df is not None and (len(residual_df) != len(looks) or list(residual_df) != sorted(set(residual_df))
                                        or residual_df[0] < 1):
            raise ValueError(f"residual_df must rise from at least 1, one per look, not {residual_df}")
        self.looks = tuple(looks)
        self.residual_df = tuple(residual_df) if residual_df is not None else None

    @classmethod
    def rounds(cls, first: int, most: int, step: int) -> "SequentialDesign":
        """Looks at `first`, `first + step`, ..., and at `most`."""
        return cls(tuple(sorted({*range(first, most, step), most})))

    def p_value(self, nominal: list[float], sided: int) -> float:
        """One p-value from the nominal p-values of the looks taken so far (two-sided t tests
        for `sided` 2, one-sided for 1)."""
        smallest = min(nominal)
        if len(self.looks) == 1:
            return smallest
        null = _null(self, sided)
        return float(np.searchsorted(null, smallest, side="right") / len(null))

    def nominal_level(self, alpha: float = ALPHA, sided: int = 2) -> float:
        """The nominal p-value each look must reach for an overall `alpha` (Pocock's constant level)."""
        if len(self.looks) == 1:
            return alpha
        return float(np.quantile(_null(self, sided), alpha))


def _null(design: SequentialDesign, sided: int) -> np.ndarray:
    """The simulated null distribution of a design's smallest nominal p-value over its looks."""
    if design.residual_df is None:
        return _smallest_null_p(design.looks, sided)
    return _smallest_null_p_pooled(design.looks, design.residual_df, sided)


@functools.lru_cache(maxsize=32)
def _smallest_null_p(looks: tuple[int, ...], sided: int) -> np.ndarray:
    """Sorted smallest nominal p-values over the looks, in studies simulated under the null
    hypothesis (normal differences of mean 0; for `sided` 1 the one-sided test of "mean <= 0").
    A fixed generator, so a report reads the same every time."""
    rng = np.random.default_rng(20261130)
    x = rng.standard_normal((SequentialDesign.SIMULATIONS, looks[-1]))
    cumsum, cumsq = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    smallest = np.ones(len(x))
    for n in looks:
        mean = cumsum[:, n - 1] / n
        sd = np.sqrt((cumsq[:, n - 1] - n * mean * mean) / (n - 1))
        t = mean / (sd / math.sqrt(n))
        p = 2 * stats.t.sf(np.abs(t), n - 1) if sided == 2 else stats.t.sf(t, n - 1)
        np.minimum(smallest, p, out=smallest)
    return np.sort(smallest)


@functools.lru_cache(maxsize=32)
def _smallest_null_p_pooled(looks: tuple[int, ...], residual_df: tuple[int, ...], sided: int) -> np.ndarray:
    """As `_smallest_null_p`, for an effect estimated as the mean of one normal contrast per
    block (a factorial's effect over its seed blocks) over a residual pooled with
    `residual_df` degrees of freedom at each look. That residual holds the effect's own spread
    over the blocks (n - 1 degrees of freedom, as in the paired t test: it moves with the
    effect's running mean) and the rest (other effects' spread over the blocks, higher
    interactions), which is independent of the effect: chi-square increments as blocks arrive."""
    rng = np.random.default_rng(20261203)
    x = rng.standard_normal((SequentialDesign.SIMULATIONS, looks[-1]))
    cumsum, cumsq = np.cumsum(x, axis=1), np.cumsum(x * x, axis=1)
    other = np.diff((0, *(df - (n - 1) for n, df in zip(looks, residual_df))))
    if (other < 0).any():
        raise ValueError(f"residual_df {residual_df} must include each look's own n - 1")
    rest = np.cumsum(np.stack([rng.chisquare(d, len(x)) if d else np.zeros(len(x)) for d in other], axis=1), axis=1)
    smallest = np.ones(len(x))
    for i, (n, df) in enumerate(zip(looks, residual_df)):
        mean = cumsum[:, n - 1] / n
        own = cumsq[:, n - 1] - n * mean * mean
        t = mean / np.sqrt((own + rest[:, i]) / df / n)
        p = 2 * stats.t.sf(np.abs(t), df) if sided == 2 else stats.t.sf(t, df)
        np.minimum(smallest, p, out=smallest)
    return np.sort(smallest)


def power_difference(n: int, sd: float, effect: float, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t test with n pairs to find a true mean difference `effect`
    when the differences' standard deviation is `sd` (noncentral t)."""
    df, critical = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    shift = effect / sd * math.sqrt(n)
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def power_equivalence(n: int, sd: float, margin: float, effect: float = 0.0, alpha: float = ALPHA) -> float:
    """Power of TOST with n pairs to show equivalence within ±margin when the true difference is
    `effect`: the probability that -margin + t s/sqrt(n) < mean < margin - t s/sqrt(n), with
    the mean normal and (n - 1) s^2 / sd^2 chi-square, integrated over s."""
    df, critical = n - 1, stats.t.ppf(1 - alpha, n - 1)
    spread = sd / math.sqrt(n)

    def given(chi2: float) -> float:
        half = margin - critical * sd * math.sqrt(chi2 / df) / math.sqrt(n)
        if half <= 0:
            return 0.0
        inside = stats.norm.cdf((half - effect) / spread) - stats.norm.cdf((-half - effect) / spread)
        return inside * stats.chi2.pdf(chi2, df)

    # Equivalence is possible only while the interval's half-width is under the margin.
    most = df * (margin * math.sqrt(n) / (critical * sd)) ** 2
    return float(integrate.quad(given, 0, most, limit=200)[0])


def seeds_needed(power_at, target: float = 0.8, most: int = 10_000) -> int | None:
    """The fewest seeds (pairs) n >= 2 with power_at(n) >= target; None beyond `most`."""
    low, high = 2, 2
    while power_at(high) < target:
        if high >= most:
            return None
        low, high = high + 1, min(most, high * 2)
    while low < high:  # power rises with n: bisect
        middle = (low + high) // 2
        if power_at(middle) >= target:
            high = middle
        else:
            low = middle + 1
    return high


def seeds_for_difference(sd: float, effect: float, power: float = 0.8, alpha: float = ALPHA) -> int | None:
    return seeds_needed(lambda n: power_difference(n, sd, effect, alpha), power)


def seeds_for_equivalence(sd: float, margin: float, effect: float = 0.0, power: float = 0.8,
                          alpha: float = ALPHA) -> int | None:
    if abs(effect) >= margin:
        return None  # a true difference at or beyond the margin is never shown equivalent
    return seeds_needed(lambda n: power_equivalence(n, sd, margin, effect, alpha), power)


def paired_bootstrap(correct_a: np.ndarray, correct_b: np.ndarray, replicates: int = 2000,
                     rng: np.random.Generator | None = None, confidence: float = 1 - ALPHA) -> dict:
    """A's accuracy minus B's over paired runs (rows: seeds; columns: the same test images),
    resampling both the seeds and the test images (each replicate draws n seeds and N images with
    replacement, the same images for every run): the mean difference with its percentile
    interval, and the probability that a run of A beats its paired run of B (ties count half)
    with its interval."""
    correct_a, correct_b = np.asarray(correct_a, dtype=np.float32), np.asarray(correct_b, dtype=np.float32)
    n, images = correct_a.shape
    rng = rng or np.random.default_rng(0)
    seed_draws = rng.integers(n, size=(replicates, n))
    image_draws = rng.integers(images, size=(replicates, images))
    diffs, wins = np.empty(replicates), np.empty(replicates)
    for start in range(0, replicates, 250):  # 250 replicates of image weights at a time: 10 MB for CIFAR's test set
        rows = slice(start, min(start + 250, replicates))
        weights = np.zeros((rows.stop - start, images), dtype=np.float32)
        np.add.at(weights, (np.arange(rows.stop - start)[:, None], image_draws[rows]), 1.0 / images)
        acc_a, acc_b = correct_a @ weights.T, correct_b @ weights.T  # (seeds, replicates)
        picked = seed_draws[rows].T, np.arange(rows.stop - start)
        delta = acc_a[picked] - acc_b[picked]  # (n, replicates): each replicate's resampled pairs
        diffs[rows] = delta.mean(0)
        wins[rows] = ((delta > 0) + 0.5 * (delta == 0)).mean(0)
    tails = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    observed = correct_a.mean(1) - correct_b.mean(1)
    return {"n": n, "images": images, "replicates": replicates,
            "mean": float(observed.mean()), "low": float(np.percentile(diffs, tails[0])),
            "high": float(np.percentile(diffs, tails[1])),
            "p_beats": float(((observed > 0) + 0.5 * (observed == 0)).mean()),
            "p_beats_low": float(np.percentile(wins, tails[0])), "p_beats_high": float(np.percentile(wins, tails[1]))}
