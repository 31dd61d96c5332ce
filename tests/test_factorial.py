"""regulab factorial: the designs against published tables, the effects and their intervals
against a hand computation, the gain and the out-of-fraction check on a known model, the
pooled Pocock boundary, each bad input's one line, and a reused run not trained again."""

import json

import numpy as np
import pytest
from scipy import stats as scipy_stats

from regulab.analysis import Design
from regulab.cli import main
from regulab.designs import Factor, FractionalDesign, factors_between
from regulab.effects import analyze, estimate
from regulab.effects_report import notes
from regulab.stats import SequentialDesign


def factors(names: str) -> list[Factor]:
    return [Factor(n, {"l2": 0.0}, {"l2": 1.0}) for n in names]


def test_the_half_fraction_of_five_factors_is_e_equals_abcd_of_the_published_table():
    """Box, Hunter & Hunter and Montgomery (Example 8.2): the 2^(5-1) of resolution V, I = ABCDE,
    whose principal fraction has these 16 treatment combinations."""
    design = FractionalDesign.choose(factors("abcde"))
    assert design.generators == ["E = ABCD"] and design.defining_relation == ["ABCDE"]
    assert design.resolution == 5 and design.resolution_name == "V"
    published = {"e", "a", "b", "abe", "c", "ace", "bce", "abc", "d", "ade", "bde", "abd", "cde", "acd", "bcd", "abcde"}
    assert {design.cell_label(row) for row in design.matrix} == published
    assert len(design.effects) == 15  # every main effect and every two-factor interaction, each alone
    assert all(len(w) >= 3 for e in design.effects for w in design.alias(e))
    assert [design.cell_label(c) for c in design.corners()] == ["(1)"]  # seed-noreg's corner lies outside


def test_the_quarter_fraction_of_six_factors_has_the_published_resolution_iv_structure():
    """Montgomery's table of fractions (2^(6-2)_IV: E = ABC, F = BCD, I = ABCE = BCDF = ADEF): the
    design chosen has its resolution and word lengths, and the published generators give its
    defining relation and its seven chains of aliased two-factor interactions."""
    chosen = FractionalDesign.choose(factors("abcdef"), fraction=2)
    published = FractionalDesign(tuple(factors("abcdef")), "a b c d abc bcd", np.zeros((16, 6)))
    assert published.defining_relation == ["ABCE", "ADEF", "BCDF"]
    assert chosen.resolution == published.resolution == 4 and len(chosen.matrix) == 16
    assert sorted(map(len, chosen.defining_relation)) == sorted(map(len, published.defining_relation)) == [4, 4, 4]
    assert len(published.effects) == 6 + 7
    assert "AE = BC = DF" in published.effect_name("AE").replace("a", "A").replace("b", "B").replace("c", "C") \
        .replace("d", "D").replace("e", "E").replace("f", "F").replace(" x ", "")


def test_effects_and_intervals_match_a_hand_computation_on_a_constructed_two_cubed():
    """A 2^3 in 3 blocks with known effects (A +2, B -1, C 0, AB +0.5), block offsets and noise:
    each effect is the mean at + minus the mean at -, the residual what the block means and the
    half-effects leave, on 3 x 8 - 3 - 6 = 15 degrees of freedom."""
    design = FractionalDesign.choose(factors("abc"))
    x = design.matrix
    rng = np.random.default_rng(7)
    truth = 10 + x[:, 0] * 1.0 - x[:, 1] * 0.5 + x[:, 0] * x[:, 1] * 0.25
    table = np.stack([truth + offset + rng.normal(0, 0.2, 8) for offset in (0.0, 1.0, -1.0)])
    rows = estimate(design, table, margin=0.3)

    fitted = table.mean(1, keepdims=True) + 0  # block means, then each half-effect times its column
    by_hand = {}
    for effect in design.effects:
        column = np.prod(x[:, [design.letters.index(c) for c in effect]], axis=1)
        by_hand[effect] = table[:, column > 0].mean() - table[:, column < 0].mean()
        fitted = fitted + by_hand[effect] / 2 * column
    df = 3 * 8 - 3 - 6
    se = 2 * np.sqrt(((table - fitted) ** 2).sum() / df / 24)
    half = scipy_stats.t.ppf(0.975, df) * se
    for effect, row in zip(design.effects, rows):
        assert row["df"] == df
        assert row["effect"] == pytest.approx(by_hand[effect], abs=1e-12)
        assert row["se"] == pytest.approx(se, rel=1e-9)
        assert (row["low"], row["high"]) == pytest.approx((by_hand[effect] - half, by_hand[effect] + half), abs=1e-9)
        assert row["p_difference"] == pytest.approx(2 * scipy_stats.t.sf(abs(by_hand[effect]) / se, df), rel=1e-6)
    known = dict(zip(design.effects, (2.0, -1.0, 0.0, 0.5, 0.0, 0.0)))
    assert all(abs(row["effect"] - known[e]) < 4 * row["se"] for e, row in zip(design.effects, rows))


def synthetic_runs(design: FractionalDesign, mains: list[float], seeds: int, noise: float, rng) -> list[dict]:
    """Runs of an additive truth (y = 0.5 + sum of half-effects times the levels), every cell and
    the corners outside the fraction, one block per seed."""
    runs = []
    for seed in range(seeds):
        offset = rng.normal(0, 0.01)
        for row in [*design.matrix, *design.corners()]:
            value = 0.5 + offset + float(np.dot(row, mains)) / 2 + rng.normal(0, noise)
            metrics = {"test_acc": value, "gap": 0.1 - value / 10, "best_val_acc": value, "test_ece": 0.05,
                       "test_loss": 1.0 - value}
            runs.append({"group": design.cell_label(row), "seed": seed, "metrics": metrics})
    return runs


def test_an_additive_truth_explains_the_whole_gain_and_predicts_the_corner_outside():
    design = FractionalDesign.choose(factors("abcde"))
    mains = [0.02, 0.06, 0.03, 0.005, 0.04]
    runs = synthetic_runs(design, mains, seeds=3, noise=1e-4, rng=np.random.default_rng(1))
    result = analyze(design, runs, Design(seeds=3, margin=0.005), planned_blocks=3)["measures"]["test_acc"]
    gain = result["gain"]
    assert gain["whole"]["n"] == 3 and gain["whole"]["mean"] == pytest.approx(sum(mains), abs=1e-3)
    assert gain["main_effects"]["mean"] == pytest.approx(sum(mains), abs=1e-3) and gain["share"] == pytest.approx(1, abs=0.02)
    [check] = result["check"]
    assert check["label"] == "(1)" and abs(check["difference"]["mean"]) < 1e-3
    verdicts = {e: r["verdict"] for e, r in zip(design.effects, result["effects"])}
    assert [verdicts[c] for c in "ABCE"] == ["better"] * 4 and verdicts["D"] == "better"  # 0.005 is measured exactly
    assert all(verdicts[e] == "equivalent" for e in design.effects if len(e) == 2)


def test_blocks_short_of_the_plan_give_no_verdict():
    design = FractionalDesign.choose(factors("abc"))
    runs = synthetic_runs(design, [0.05, 0.0, 0.0], seeds=3, noise=0.002, rng=np.random.default_rng(2))
    runs = [r for r in runs if not (r["seed"] == 2 and r["group"] == "abc")]  # block 2 incomplete
    result = analyze(design, runs, Design(seeds=3, margin=0.005), planned_blocks=3)["measures"]["test_acc"]
    assert result["blocks"] == [0, 1] and not result["complete"]
    assert {r["verdict"] for r in result["effects"]} == {"interim"}


def test_a_cell_from_another_machine_is_named_and_moves_every_effect_by_its_share(tmp_path):
    """The notes name each machine's cells; an offset in one cell of a 16-cell fraction moves all
    15 effects by an eighth of it, as the notes say."""
    design = FractionalDesign.choose(factors("abcde"))
    runs = synthetic_runs(design, [0.02, 0.06, 0.03, 0.005, 0.04], seeds=3, noise=0.003, rng=np.random.default_rng(3))
    plan = Design(seeds=3, margin=0.005)
    before = analyze(design, runs, plan, planned_blocks=3)["measures"]["test_acc"]["effects"]
    for r in runs:
        elsewhere = r["group"] in ("abcde", "(1)")
        r["metrics"].update(machine="AMD EPYC" if elsewhere else "Intel Xeon", precision="fp32")
        r["metrics"]["test_acc"] += 0.016 if r["group"] == "abcde" else 0
    result = analyze(design, runs, plan, planned_blocks=3)
    moved = [a["effect"] - b["effect"] for a, b in zip(result["measures"]["test_acc"]["effects"], before)]
    assert moved == pytest.approx([0.016 / 8] * 15)
    machines = sorted({(r["metrics"]["machine"], "fp32") for r in runs})
    [_, _, _, _, said] = notes({**result, "plan": plan, "design": design, "runs": runs, "machines": machines})
    assert said.startswith("Runs trained on: AMD EPYC (fp32): (1), abcde; Intel Xeon (fp32): a, abc,")
    assert said.endswith("moves every effect by 1/8 of it.")


def test_the_pooled_boundary_is_the_paired_one_when_the_residual_is_the_pairs_own():
    """With n - 1 residual degrees of freedom the pooled statistic is the paired t: Pocock's level
    for looks at 3, 4, 5, 6 is the published 0.0186 (a separate calibration, to its Monte Carlo error)."""
    pooled = SequentialDesign((3, 4, 5, 6), (2, 3, 4, 5)).nominal_level()
    assert pooled == pytest.approx(0.0186, abs=0.001)
    # More residual degrees of freedom: nearer the normal Pocock constant for these looks, above the paired one.
    assert SequentialDesign((3, 4, 5, 6), (30, 45, 60, 75)).nominal_level() > pooled


def test_the_factors_between_seed_noreg_and_seed_all_keep_settings_that_act_together():
    found = factors_between("seed-noreg", "seed-all")
    assert [f.name for f in found] == ["batch_norm", "dropout", "augment", "label_smoothing", "lr"]
    assert found[1].high == {"dropout_blocks": 0.1, "dropout_head": 0.3}
    assert found[4].high == {"lr": 1e-3, "schedule": "cosine", "warmup_epochs": 1.0}


def one_line_error(capsys, args) -> str:
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


FIVE = [f"--factor=f{i}=l2:0/0.{i + 1}" if i == 0 else f"--factor=f{i}=dropout_head:0/0.{i}" for i in range(2)] + \
    ["--factor=f2=batch_norm:false/true", "--factor=f3=label_smoothing:0/0.1", "--factor=f4=augment:/flip"]


@pytest.mark.parametrize("args, words", [
    (["seed-noreg", "--factor", "bn=batchnorm:false/true", "--factor", "ls=label_smoothing:0/0.1"],
     ["unknown setting 'batchnorm'", "batch_norm"]),
    (["seed-noreg", "--factor", "bn=batch_norm:true/true", "--factor", "ls=label_smoothing:0/0.1"], ["two levels are equal"]),
    (["seed-noreg", "--factor", "bn=batch_norm", "--factor", "ls=label_smoothing:0/0.1"], ["NAME=SETTING:LOW/HIGH"]),
    (["seed-noreg", *FIVE, "--fraction", "1/8"], ["too few", "main effects apart", "--fraction 1/4"]),
    (["seed-noreg", *FIVE, "--fraction", "1/4"], ["resolution III", "--allow-resolution III"]),
    (["seed-noreg", *FIVE, "--fraction", "1/3"], ["--fraction takes full, 1/2, 1/4"]),
    (["seed-noreg", "seed-noreg"], ["same settings"]),
    (["seed-noreg", "seed-all", "--factor", "bn=batch_norm:false/true"], ["two presets", "or one preset"]),
    (["seed-noreg", "--factor", "bn=batch_norm:false/true", "--batch-norm"], ["both a --factor setting and a fixed option"]),
    (["seed-noreg", "seed-all", "--max-runs", "10"], ["17 new runs", "--max-runs 10", "--yes"]),
])
def test_bad_input_is_one_line(tmp_path, capsys, args, words):
    err = one_line_error(capsys, ["factorial", *args, "--out", str(tmp_path / "f"), "--data", "cifar10-mini"])
    assert all(w in err for w in words), err
    assert not (tmp_path / "f").exists()  # refused before anything was written


def test_resolution_iii_is_accepted_when_asked_and_the_dry_run_trains_nothing(tmp_path, capsys):
    assert main(["factorial", "seed-noreg", *FIVE, "--fraction", "1/4", "--allow-resolution", "III", "--dry-run",
                 "--out", str(tmp_path / "f"), "--data", "cifar10-mini"]) == 0
    out = capsys.readouterr().out
    assert "2^(5-2), of resolution III: 8 cells" in out
    assert "8 cells + 1 corner outside the fraction x 1 seed blocks: 9 runs" in out
    assert not (tmp_path / "f").exists()


@pytest.mark.slow
def test_a_run_in_the_pool_is_a_cell_and_is_not_trained_again(tmp_path, cifar_sample, capsys):
    """seed-noreg trained by compare is the all-low cell; the factorial reuses it, then the API
    reads the study back, and the same command trains nothing."""
    quick = ["--data", str(cifar_sample), "--epochs", "1", "--runs-dir", str(tmp_path / "pool")]
    assert main(["compare", "seed-noreg", "--out", str(tmp_path / "c"), *quick]) == 0
    [before] = [p for p in (tmp_path / "pool").iterdir()]
    stamp = (before / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    args = ["factorial", "seed-noreg", "--factor", "bn=batch_norm:false/true", "--factor", "ls=label_smoothing:0/0.1",
            "--seeds", "2", "--margin", "0.005", "--out", str(tmp_path / "f"), *quick]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "8 runs, 1 already finished" in out and "report:" in out
    assert (before / "metrics.json").stat().st_mtime_ns == stamp
    for name in ("report.html", "summary.md", "effects.csv", "effects.png"):
        assert (tmp_path / "f" / name).is_file()
    assert main(args) == 0
    assert "8 runs, 8 already finished in" in capsys.readouterr().out

    import regulab

    study = regulab.Factorial(tmp_path / "f")
    assert [e["letters"] for e in study.effects()] == ["A", "B", "AB"] and study.effects()[0]["df"] == 2 * 4 - 2 - 3
    assert "test acc" in study.words() and json.loads((tmp_path / "f" / "sweep.json").read_text())["factorial"]


@pytest.mark.slow
def test_the_python_api_takes_factors_by_hand(tmp_path, cifar_sample):
    import regulab

    parts = regulab.factorial("seed-noreg", factors={"bn": {"batch_norm": (False, True)},
                                                     "ls": {"label_smoothing": (0.0, 0.1)}},
                              seeds=1, data=str(cifar_sample), epochs=1, out=tmp_path / "f", jobs=1)
    assert parts.design.generators == [] and [e["name"] for e in parts.effects()] == ["bn", "ls", "bn x ls"]
    assert "too few for intervals" in parts.words()  # one block of a model with as many effects as cells
    with pytest.raises(regulab.RegulabError, match="two levels are equal"):
        regulab.factorial("seed-noreg", factors={"bn": {"batch_norm": (True, True)}, "ls": {"label_smoothing": (0.0, 0.1)}},
                          data=str(cifar_sample), out=tmp_path / "g")
    with pytest.raises(regulab.RegulabError, match="unknown option 'batchnorm'"):
        regulab.factorial("seed-noreg", factors={"bn": {"batchnorm": (False, True)}, "ls": {"label_smoothing": (0.0, 0.1)}},
                          data=str(cifar_sample), out=tmp_path / "h")
