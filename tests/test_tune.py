"""`regulab tune`: the race against independent computations (scipy's paired t test, a simulation
of its error), the space's parsing, the budget, and a tuning end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

import regulab
from regulab.errors import RegulabError
from regulab.racing import RacePlan, race
from regulab.stats import SequentialDesign
from regulab.tuning import TunePlan, parse_space

EXAMPLE = Path(__file__).parent.parent / "examples" / "random_erasing.py"


def test_a_candidate_leaves_when_scipys_one_sided_paired_test_is_below_the_level():
    rng = np.random.default_rng(0)
    shared = rng.normal(0.6, 0.02, 8)  # a seed's luck, which pairing takes out
    scores = {"a": list(shared + 0.010 + rng.normal(0, 0.002, 8)),
              "b": list(shared + 0.008 + rng.normal(0, 0.002, 8)),
              "c": list(shared - 0.030 + rng.normal(0, 0.002, 8))}
    plan = RacePlan(3, first_look=3, max_seeds=8)
    # Bonferroni over the two comparisons a candidate can lose, Pocock over looks 3..8
    assert plan.nominal_level() == SequentialDesign(tuple(range(3, 9))).nominal_level(0.025, sided=1)
    result = race(scores, plan)
    first = result.looks[0]
    for c in "bc":
        p = sps.ttest_rel(scores[first.best][:3], scores[c][:3], alternative="greater").pvalue
        assert (c in first.left) == (p < plan.nominal_level())
    assert result.left_at["c"] == 3 and "a" in result.alive and result.chosen in result.alive
    assert result.seeds == 8 and result.ended  # a and b could not be told apart in 8 seeds


def test_the_best_candidate_is_dropped_at_most_alpha_of_the_time():
    """Five candidates, the first best by a little, raced on normal scores: the rate at which it
    leaves the race, over 2,000 races, stays under alpha."""
    rng = np.random.default_rng(1)
    plan = RacePlan(5, first_look=3, max_seeds=8, alpha=0.05)
    dropped = 0
    for _ in range(2000):
        seeds = rng.normal(0, 1, 8)
        scores = {f"c{i}": list(seeds + (0.2 if i == 0 else 0.0) + rng.normal(0, 0.5, 8)) for i in range(5)}
        dropped += "c0" not in race(scores, plan).alive
    assert dropped / 2000 < 0.05


def test_a_race_replays_only_the_seeds_every_candidate_has():
    scores = {"a": [0.5, 0.6, 0.7, 0.8], "b": [0.5, 0.6], "c": [0.45, 0.62, 0.6, 0.7]}
    result = race(scores, RacePlan(3, first_look=2, max_seeds=5))
    assert result.seeds == 2 and not result.ended and result.left_at == {}


def test_the_space_parses_grids_and_ranges_and_refuses_one_point():
    assert parse_space(["label_smoothing=0,0.05,0.1"]) == {"label_smoothing": [0.0, 0.05, 0.1]}
    assert parse_space(["l2=1e-5:1e-2:log"], points=4) == {"l2": [1e-5, 1e-4, 1e-3, 1e-2]}
    assert parse_space(["dropout-head=0:0.5"], points=3) == {"dropout_head": [0.0, 0.25, 0.5]}
    for specs, message in ((["l2=1e-3"], "one candidate only"), (["l9=0,1"], "unknown setting 'l9'"),
                           (["l2=0:1e-3:log"], "LOW > 0 on a log scale"), (["l2=0,1", "l1=0,1", "ema=0,0.9"], "not 3"),
                           (["l2"], "needs the form SETTING=V1,V2")):
        with pytest.raises(RegulabError, match=message):
            parse_space(specs)


def test_a_budget_too_small_for_one_look_and_a_race_on_the_test_set_are_refused(tmp_path):
    with pytest.raises(RegulabError, match=r"--max-runs 10 cannot pay for one look: 3 settings x 3 seeds and 2 x 3 fresh"):
        regulab.tune("seed-noreg", {"label_smoothing": [0, 0.1, 0.2]}, out=tmp_path / "t", max_runs=10)
    with pytest.raises(RegulabError, match="would choose on the test set"):
        TunePlan(primary="test_acc")


@pytest.mark.slow
def test_tune_races_and_measures_the_choice_on_fresh_seeds(cifar_sample, tmp_path):
    out = tmp_path / "tune"
    done = subprocess.run([sys.executable, "-m", "regulab", "tune", "seed-noreg", "--regularizer-file", str(EXAMPLE),
                           "--space", "erasing=0,0.5", "--first-look", "2", "--max-seeds", "3", "--fresh-seeds", "2",
                           "--data", str(cifar_sample), "--epochs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    result = json.loads((out / "tune.json").read_text())
    assert result["ended"] and result["chosen"] in result["confidence_set"] and (out / "race.png").is_file()
    assert result["scores"]["test_acc"]["fresh"]["n"] == 2 and result["baseline"] == "erasing=0"
    # a gain over the baseline where the choice is another candidate; none where it is the baseline
    assert bool(result["gains"]) == (result["chosen"] != "erasing=0")
    seeds = {json.loads(p.read_text())["seed"] for p in (out / "runs").glob("*/config.json")}
    assert seeds == {0, 1, 2, 3, 4}  # the race's seeds 0-2 (or fewer), then fresh seeds 3 and 4
    assert "Chosen:" in done.stdout
    again = regulab.Tuning(out)
    assert again.chosen == result["chosen"] and again.figure.is_file()
