"""The study statistics against numbers worked independently: by hand, from scipy's distribution
functions directly, from published tables (G*Power, Pocock 1977), or by a plain loop."""

import dataclasses
import math
import statistics

import numpy as np
import pytest
from scipy import stats as sp

from regulab import stats
from regulab.analysis import Design, paired_measure, simulate_design, summarize, undecided

DIFFS = [0.004, -0.002, 0.001, 0.003, -0.001]  # mean 0.001, s 0.0025495, standard error 0.0011402


def test_tost_is_the_larger_one_sided_p_and_matches_the_90_percent_interval():
    n, mean, se = 5, 0.001, statistics.stdev(DIFFS) / math.sqrt(5)
    # by hand: t = (0.001 + 0.005) / 0.0011402 = 5.2623 and (0.005 - 0.001) / 0.0011402 = 3.5082 on 4 df
    assert sp.t.sf((mean + 0.005) / se, n - 1) == pytest.approx(0.0031223, abs=1e-7)
    assert stats.tost_p(np.array(DIFFS), 0.005) == pytest.approx(0.0123557, abs=1e-7)
    assert stats.difference_p(np.array(DIFFS)) == pytest.approx(0.4299734, abs=1e-7)
    cell = paired_measure(DIFFS, Design(seeds=5, margin=0.005), higher_is_better=True)
    half = sp.t.ppf(0.95, 4) * se  # the 90% interval: 2.131847 * 0.0011402
    assert (cell["low90"], cell["high90"]) == (pytest.approx(mean - half), pytest.approx(mean + half))
    assert cell["high90"] < 0.005 and cell["p_equivalence"] < 0.05  # inside the margin: equivalent
    assert paired_measure(DIFFS, Design(seeds=5, margin=0.003), True)["p_equivalence"] > 0.05  # 0.001 + half = 0.00343


def test_the_four_verdicts():
    assert stats.verdict(0.01, 0.2, +0.01, higher_is_better=True) == "better"
    assert stats.verdict(0.01, 0.2, +0.01, higher_is_better=False) == "worse"
    assert stats.verdict(0.40, 0.01, 0.001, True) == "equivalent"
    assert stats.verdict(0.001, 0.01, 0.002, True) == "equivalent"  # real, but inside the margin
    assert stats.verdict(0.40, 0.20, 0.001, True) == "undecided"
    assert stats.verdict(0.40, None, 0.001, True) == "no clear difference"  # no margin: three words, as before
    assert stats.verdict(None, None, None, True) == stats.NO_INTERVAL


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running maximum 0.02, 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]  # None does not count
    assert stats.holm([0.6, 0.7]) == [pytest.approx(1.0), pytest.approx(1.0)]  # capped at 1


def test_holm_is_applied_over_a_tables_rows():
    base = [0.70, 0.72, 0.74, 0.71]
    groups = {"a": base, "b": [v + d for v, d in zip(base, (0.010, 0.014, 0.008, 0.012))],
              "c": [v + d for v, d in zip(base, (0.004, -0.006, 0.010, -0.002))]}
    manifest = {"baseline": "a", "groups": [{"label": g, "preset": g, "point": {}, "runs": {str(s): f"{g}{s}" for s in range(4)}}
                                            for g in groups]}
    runs = [{"group": g, "seed": s, "metrics": {"best_val_acc": v, "test_acc": v, "gap": 0.1, "test_ece": 0.05, "test_loss": 1,
                                                "best_epoch": 3, "seconds": 60, "precision": "fp32"}}
            for g, values in groups.items() for s, v in enumerate(values)]
    rows = summarize(manifest, runs)
    raw = [rows[i]["paired"]["test_acc"]["p_difference"] for i in (1, 2)]
    adjusted = [rows[i]["paired"]["test_acc"]["p_difference_adjusted"] for i in (1, 2)]
    assert adjusted == pytest.approx(stats.holm(raw)) and adjusted[0] == pytest.approx(2 * raw[0])
    none = summarize(manifest, runs, design=Design(seeds=4, correction="none"))
    assert none[1]["paired"]["test_acc"]["p_difference_adjusted"] == pytest.approx(raw[0])


def test_no_verdict_before_the_planned_seeds_have_finished():
    """An adaptive study looked at before its first look (4 of 10 seeds here, as a report of a
    study still training is) shows its numbers but gives no verdict, however small p is."""
    base = [0.70, 0.72, 0.74, 0.71]
    treated = [v + d for v, d in zip(base, (0.010, 0.012, 0.011, 0.009))]  # p < 0.001 at 4 pairs
    manifest = {"baseline": "a", "groups": [{"label": g, "preset": g, "point": {}, "runs": {str(s): f"{g}{s}" for s in range(10)}}
                                            for g in ("a", "b")]}
    metrics = {"best_val_acc": 0.7, "gap": 0.1, "test_ece": 0.05, "test_loss": 1, "best_epoch": 3, "seconds": 60,
               "precision": "fp32"}
    runs = [{"group": g, "seed": s, "metrics": {**metrics, "test_acc": v}}
            for g, values in (("a", base), ("b", treated)) for s, v in enumerate(values)]
    design = Design(seeds=10, max_seeds=16, seeds_per_round=2, margin=0.005)
    row = summarize(manifest, runs, design=design, bootstrap=0)[1]
    cell = row["paired"]["test_acc"]
    assert cell["n"] == 4 and cell["p_difference"] < 0.001 and cell["low"] > 0  # the numbers are shown
    assert cell["verdict"] == stats.INTERIM and row["stopped"] == "in progress: 4 of 10 pairs finished"
    assert undecided([row], design) == []  # and no round is added before the plan's seeds have finished
    # The same differences over all ten planned seeds are judged, at the design's first look.
    base, treated = base * 3, treated * 3
    runs = [{"group": g, "seed": s, "metrics": {**metrics, "test_acc": v}}
            for g, values in (("a", base[:10]), ("b", treated[:10])) for s, v in enumerate(values)]
    row = summarize(manifest, runs, design=design, bootstrap=0)[1]
    assert row["paired"]["test_acc"]["verdict"] == "better" and row["stopped"] == "decided at look 1 of 4 (10 pairs): better"


def test_power_matches_g_power():
    # G*Power 3.1, t test of matched pairs, two-sided alpha 0.05: d = 0.5 needs 34 pairs (actual power
    # 0.8077775); d = 1 needs 10 (0.8030969).
    assert stats.power_difference(34, 1.0, 0.5) == pytest.approx(0.8077775, abs=1e-6)
    assert stats.power_difference(10, 1.0, 1.0) == pytest.approx(0.8030969, abs=1e-6)
    assert stats.seeds_for_difference(0.006, 0.003) == 34 and stats.seeds_for_difference(0.006, 0.006) == 10


def test_equivalence_power_matches_a_simulation():
    n, sd, margin = 12, 1.0, 0.9
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, sd, size=(40_000, n))
    mean, se = x.mean(1), x.std(1, ddof=1) / math.sqrt(n)
    critical = sp.t.ppf(0.95, n - 1)
    simulated = ((mean - critical * se > -margin) & (mean + critical * se < margin)).mean()
    assert stats.power_equivalence(n, sd, margin) == pytest.approx(simulated, abs=0.006)  # 3 standard errors
    needed = stats.seeds_for_equivalence(sd, margin)
    assert stats.power_equivalence(needed, sd, margin) >= 0.8 > stats.power_equivalence(needed - 1, sd, margin)
    assert stats.seeds_for_equivalence(sd, margin, effect=margin) is None


@pytest.mark.parametrize("looks, published", [((30, 60), 0.0294), ((20, 40, 60, 80, 100), 0.0158)])
def test_the_boundary_is_pocock_s(looks, published):
    # Pocock (1977), two-sided 5% over K equally spaced looks: nominal 0.0294 for K = 2 and 0.0158 for
    # K = 5 (normal theory; the t statistic at these sizes is close to it).
    assert stats.SequentialDesign(looks).nominal_level() == pytest.approx(published, abs=0.001)
    one = stats.SequentialDesign((looks[-1],))
    assert one.nominal_level() == 0.05 and one.p_value([0.03], sided=2) == 0.03  # one look: no adjustment


def test_a_sequential_p_value_is_its_smallest_look_judged_against_all_looks():
    design = stats.SequentialDesign((10, 12, 14, 16))
    level = design.nominal_level()
    assert 0.0125 < level < 0.05  # less strict than Bonferroni over 4 looks, stricter than none
    assert design.p_value([0.2, level * 0.99], 2) < 0.05 < design.p_value([0.2, level * 1.05], 2)
    assert design.p_value([0.01, 0.3], 2) == design.p_value([0.3, 0.01], 2)  # a look once passed stays passed


def test_paired_bootstrap_against_a_plain_loop():
    rng = np.random.default_rng(7)
    a = rng.random((4, 50)) < 0.75
    b = rng.random((4, 50)) < 0.70
    out = stats.paired_bootstrap(a, b, replicates=300, rng=np.random.default_rng(11))
    # The same draws, consumed as the function does: all seed draws, then all image draws.
    draws = np.random.default_rng(11)
    seeds, images = draws.integers(4, size=(300, 4)), draws.integers(50, size=(300, 50))
    diffs, wins = [], []
    for s, i in zip(seeds, images):
        delta = [a[k][i].mean() - b[k][i].mean() for k in s]
        diffs.append(sum(delta) / 4)
        wins.append(sum(1.0 if d > 0 else 0.5 if d == 0 else 0.0 for d in delta) / 4)
    assert out["low"] == pytest.approx(np.percentile(diffs, 2.5), abs=1e-6)
    assert out["high"] == pytest.approx(np.percentile(diffs, 97.5), abs=1e-6)
    assert out["p_beats_low"] == pytest.approx(np.percentile(wins, 2.5))
    observed = a.mean(1) - b.mean(1)
    assert out["mean"] == pytest.approx(observed.mean()) and out["p_beats"] == pytest.approx((observed > 0).mean())


# The spread measured here: paired differences in test accuracy between neighbouring L2 strengths
# (1e-4 to 3e-3) of the first study, 3 seeds on one GPU each, have a standard deviation of about
# 0.005 (root mean square of six: 0.0047). The error rates below do not depend on it (the t
# statistic is pivotal); the power does.
SD = 0.005
STUDY = Design(seeds=10, max_seeds=16, seeds_per_round=2, margin=0.005)


@pytest.mark.slow
def test_adaptive_seeds_keep_the_error_rates_at_5_percent():
    """2,000 simulated adaptive studies per case: false better/worse at a true effect of 0, false
    equivalent at a true effect equal to the margin, and the power at one point."""
    null = simulate_design(STUDY, 0.0, SD, 2000, np.random.default_rng(1))
    assert null.get("better", 0) + null.get("worse", 0) <= 0.05
    at_margin = simulate_design(STUDY, STUDY.margin, SD, 2000, np.random.default_rng(2))
    assert at_margin.get("equivalent", 0) <= 0.05
    one_point = simulate_design(STUDY, 0.01, SD, 2000, np.random.default_rng(3))
    assert one_point["better"] >= 0.8


def test_pairs_across_machines_are_left_out_and_the_looks_move_down_by_them():
    """Seeds 0-2 of the treated group trained on another CPU model: 7 pairs of 10 remain. The
    adaptive design (looks at 10, 12, 14, 16) is judged at its first look moved down by the 3
    pairs left out (7, 9, 11, 13), under Pocock's level for those looks, never at a plain 5%."""
    manifest = {"baseline": "a", "groups": [{"label": g, "preset": g, "point": {}, "runs": {str(s): f"{g}{s}" for s in range(10)}}
                                            for g in ("a", "b")]}
    metrics = {"best_val_acc": 0.7, "gap": 0.1, "test_ece": 0.05, "test_loss": 1, "best_epoch": 3, "seconds": 60,
               "precision": "fp32", "device": "cpu"}
    base = [0.70, 0.72, 0.74, 0.71, 0.73, 0.72, 0.70, 0.71, 0.74, 0.72]
    treated = [v + d for v, d in zip(base, (0.01, 0.02, 0.0, 0.008, 0.004, 0.009, 0.012, 0.003, 0.010, 0.006))]
    runs = [{"group": g, "seed": s, "metrics": {**metrics, "test_acc": v,
                                                "machine": "zen4" if g == "b" and s < 3 else "zen3"}}
            for g, values in (("a", base), ("b", treated)) for s, v in enumerate(values)]
    design = Design(seeds=10, max_seeds=16, seeds_per_round=2, margin=0.005)
    row = summarize(manifest, runs, design=design, bootstrap=0)[1]
    cell = row["paired"]["test_acc"]
    assert row["cross_machine"] == 3 and row["pair_seeds"] == list(range(3, 10)) and cell["n"] == 7
    diffs = np.array(treated[3:]) - np.array(base[3:])
    moved = stats.SequentialDesign((7, 9, 11, 13))
    assert cell["planned"] == [7, 9, 11, 13] and cell["looks"] == [7]
    assert cell["p_difference"] == pytest.approx(moved.p_value([stats.difference_p(diffs)], sided=2))
    assert cell["p_difference"] > stats.difference_p(diffs)  # not the plain one-look p-value
    assert row["stopped"].startswith("decided at look 1 of 4 (7 pairs; the looks moved down by the 3 pairs left out)")
    # Paired on the device type alone (the rule before machines were recorded), all 10 pairs count.
    every = summarize(manifest, runs, design=dataclasses.replace(design, pair_on="device"), bootstrap=0)[1]
    assert every["cross_machine"] == 0 and every["paired"]["test_acc"]["n"] == 10


def test_a_run_names_each_machine_it_trained_on():
    from regulab.runtime import machine_id, machine_of

    zen3 = {"cpu": "AMD EPYC", "cpu_id": "AuthenticAMD/25/1/1", "cpu_capability": "AVX2", "gpu": None}
    zen4 = {**zen3, "cpu_id": "AuthenticAMD/25/17/1", "cpu_capability": "AVX512"}
    assert machine_id(zen3) != machine_id(zen4)  # one name, two CPUs
    assert machine_of({"machines": [zen3, zen3]}) == machine_id(zen3)
    assert machine_of({"machines": [zen3, zen4]}) == f"{machine_id(zen3)} then {machine_id(zen4)}"  # resumed elsewhere
    assert machine_of({"device": "cpu"}, {"machine": "the first study's CPU"}) == "the first study's CPU"
    assert machine_of({"device": "cpu"}) == "cpu (machine not recorded)"


def test_an_adaptive_row_shows_the_intervals_its_verdict_used():
    """At a look of an adaptive design the intervals are at Pocock's nominal level (repeated
    confidence intervals), so the interval excludes zero exactly where the look's test rejects."""
    design = Design(seeds=3, max_seeds=6, seeds_per_round=1, margin=0.005)
    diffs = [0.010, 0.004, 0.012]
    cell = paired_measure(diffs, design, higher_is_better=True)
    level = stats.SequentialDesign((3, 4, 5, 6)).nominal_level()
    plain = stats.t_interval(diffs)
    wide = stats.t_interval(diffs, 1 - level)
    assert cell["confidence"] == pytest.approx(1 - level) and (cell["low"], cell["high"]) == (wide["low"], wide["high"])
    assert cell["low"] < plain["low"] and cell["high"] > plain["high"]
    assert (cell["low"] > 0) == (stats.difference_p(np.array(diffs)) <= level)
