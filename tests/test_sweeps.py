"""regulab sweep and compare: one engine, runs identified by their settings, resumable; and the
statistics every report prints (Student-t intervals, paired differences), checked by hand."""

import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from regulab import data as data_lib
from regulab.analysis import Design, summarize
from regulab.cli import main
from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.report import margin_figure, setting_figure, summary_tables, verdict_lines, write_report
from regulab.stats import t_interval
from regulab.study import Group, load_study, parse_grid, plan, run_key


@pytest.fixture(scope="module")
def quick(cifar_sample):
    return ["--data", str(cifar_sample), "--epochs", "2"]


@pytest.fixture(scope="module")
def l2_sweep(tmp_path_factory, quick):
    """seed-noreg at three L2 strengths x 2 seeds, into a shared pool of runs."""
    top = tmp_path_factory.mktemp("sweep")
    assert main(["sweep", "seed-noreg", "--grid", "l2=0,1e-3,1e-2", "--seeds", "2", "--out", str(top / "l2"),
                 "--runs-dir", str(top / "runs"), "--baseline", "l2=0", *quick]) == 0
    return top


@pytest.mark.slow
def test_sweep_trains_every_value_and_seed_on_the_same_split(l2_sweep):
    manifest, runs = load_study(l2_sweep / "l2")
    assert [g["label"] for g in manifest["groups"]] == ["l2=0", "l2=0.001", "l2=0.01"]
    assert sorted((r["group"], r["seed"]) for r in runs) == [(g, s) for g in ("l2=0", "l2=0.001", "l2=0.01") for s in (0, 1)]
    for r in runs:
        assert r["config"]["split_seed"] == 777 and r["config"]["epochs"] == 2 and len(r["history"]) == 2
        assert r["config"]["l2"] == float(r["group"].split("=")[1])
        assert 0 <= r["metrics"]["test_ece"] <= 1 and r["history"][0]["val_ece"] is not None
    # Matched seeds: the same initial weights and data order, so the first epoch of l2=0 and l2=1e-2
    # differ only through the penalty.
    by = {(r["group"], r["seed"]): r for r in runs}
    assert by[("l2=0", 0)]["history"][0]["penalty"] == 0 < by[("l2=0.01", 0)]["history"][0]["penalty"]


@pytest.mark.slow
def test_the_same_training_under_another_name_is_not_run_again(l2_sweep, quick, capsys):
    """The seed preset is seed-noreg with l2=1e-3: compare finds it in the shared pool."""
    capsys.readouterr()
    assert main(["compare", "seed-noreg", "seed", "--seeds", "2", "--out", str(l2_sweep / "presets"),
                 "--runs-dir", str(l2_sweep / "runs"), "--baseline", "seed-noreg", *quick]) == 0
    assert "4 runs, 4 already finished" in capsys.readouterr().out
    manifest, runs = load_study(l2_sweep / "presets")
    sweep_manifest, _ = load_study(l2_sweep / "l2")
    assert manifest["groups"][1]["runs"] == sweep_manifest["groups"][1]["runs"]  # seed == l2=0.001
    assert len(list((l2_sweep / "runs").iterdir())) == 6


@pytest.mark.slow
def test_more_seeds_adds_only_the_new_ones_and_changed_settings_are_refused(l2_sweep, quick, capsys):
    folder = l2_sweep / "grow"
    args = ["compare", "seed-noreg", "--out", str(folder), "--runs-dir", str(l2_sweep / "runs"), *quick]
    assert main([*args, "--seeds", "3"]) == 0
    assert "3 runs, 2 already finished" in capsys.readouterr().out
    stale = ["compare", "seed-noreg", "--out", str(folder), *quick, "--epochs", "3"]
    assert main(stale) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a sweep with other settings" in err and "--epochs 2" in err


@pytest.mark.slow
def test_an_interrupted_run_is_resumed(l2_sweep, quick, capsys):
    manifest, _ = load_study(l2_sweep / "l2")
    run = l2_sweep / "runs" / manifest["groups"][2]["runs"]["1"]
    (run / "metrics.json").unlink()  # as if killed after its last checkpoint
    assert main(["sweep", "seed-noreg", "--grid", "l2=0,1e-3,1e-2", "--seeds", "2", "--out", str(l2_sweep / "l2"),
                 "--runs-dir", str(l2_sweep / "runs"), *quick]) == 0
    out = capsys.readouterr().out
    assert "6 runs, 5 already finished" in out and "l2=0.01 [random seed 1]" in out and "resumed" in out
    assert "resuming after epoch 2 of 2" in (run / "train.log").read_text()


@pytest.mark.slow
def test_report_tables_carry_n_intervals_and_paired_differences(l2_sweep):
    report = write_report(l2_sweep / "l2")
    md = (l2_sweep / "l2" / "summary.md").read_text()
    assert md.startswith("| group | n | ran on | best val acc | test acc | gap (train - val acc) | test ECE | test NLL |")
    assert "| l2=0.01 | 2/2 |" in md and "Paired differences" in md and "| l2=0.01 | l2=0 | 2 |" in md
    assert "| l2=0.001 (= seed) | 2/2 |" in md and "| l2=0 | 2/2 |" in md  # the grid point that is the seed preset
    rows = list(__import__("csv").DictReader((l2_sweep / "l2" / "summary.csv").open()))
    assert {"test_acc_n", "test_acc_low", "test_acc_high", "test_ece_mean", "diff_test_acc_low"} <= set(rows[0])
    page = report.read_text()
    # curves, gap, kernel norms, against l2, the paired differences
    assert page.count("data:image/png;base64,") == 5 and "http" not in page and "Kernel norms" in page
    assert "The decision" in page and "Holm" in page and (l2_sweep / "l2" / "differences.png").is_file()
    assert page.count("<details>") == 6 and "Student t" in page
    assert Image.open(l2_sweep / "l2" / "by_setting.png").size[0] > 1000


# ---------------------------------------------------------------------------------------------
# The statistics, against numbers worked by hand

def test_t_interval_matches_the_textbook():
    # mean 0.72, s = 0.02, t(0.975, 2) = 4.302653: half-width 4.302653 * 0.02 / sqrt(3) = 0.049683
    ci = t_interval([0.70, 0.72, 0.74])
    assert (ci["n"], ci["mean"], ci["std"]) == (3, pytest.approx(0.72), pytest.approx(0.02))
    assert ci["low"] == pytest.approx(0.72 - 0.049683, abs=1e-6) and ci["high"] == pytest.approx(0.72 + 0.049683, abs=1e-6)
    # two values: t(0.975, 1) = 12.706205; s = 0.0141421; half-width 12.706205 * 0.01 = 0.127062
    ci = t_interval([0.5, 0.52])
    assert ci["high"] - ci["mean"] == pytest.approx(0.127062, abs=1e-6)
    assert t_interval([0.5])["low"] is None and t_interval([])["mean"] is None


def _fake(groups: dict[str, list[float]], baseline="a") -> tuple[dict, list[dict]]:
    manifest = {"baseline": baseline, "groups": [{"label": g, "preset": g, "point": {}, "runs": {str(s): f"{g}{s}" for s in
                                                                                              range(len(v))}}
                                                 for g, v in groups.items()]}
    runs = [{"group": g, "seed": s, "metrics": {"best_val_acc": acc, "test_acc": acc, "gap": 0.1, "test_ece": 0.05,
                                                "test_loss": 1.0, "best_epoch": 3, "seconds": 60, "precision": "fp32"}}
            for g, values in groups.items() for s, acc in enumerate(values)]
    return manifest, runs


def test_paired_difference_is_over_matched_seeds():
    # Seed effects dominate, the treatment adds a steady 0.01: unpaired intervals overlap, the paired one excludes 0.
    manifest, runs = _fake({"a": [0.60, 0.70, 0.80], "b": [0.612, 0.708, 0.811]})
    rows = summarize(manifest, runs)
    assert rows[0]["test_acc"]["low"] < rows[1]["test_acc"]["mean"] < rows[0]["test_acc"]["high"]
    diff = rows[1]["paired"]["test_acc"]
    # differences 0.012, 0.008, 0.011: mean 0.010333, s = 0.0020817, half-width 4.302653 * s / sqrt(3) = 0.0051713
    assert diff["mean"] == pytest.approx(0.0103333, abs=1e-6) and diff["low"] == pytest.approx(0.0103333 - 0.0051713, abs=1e-6)
    assert diff["verdict"] == "better" and diff["p_difference"] == pytest.approx(0.013259, abs=1e-6)  # t = 8.5979 on 2 df
    assert rows[1]["paired"]["test_ece"]["verdict"] == "no clear difference"  # identical ECE: a zero difference
    assert "paired" not in rows[0]  # the baseline is not compared with itself
    assert verdict_lines(rows, Design(seeds=3)) == ["b vs a: Δ test acc +0.0103 [+0.0052, +0.0155], 3 pairs: better"]


def test_a_group_with_no_finished_run_is_shown_not_hidden():
    manifest, runs = _fake({"a": [0.6, 0.7], "b": [0.65, 0.71]})
    manifest["groups"].append({"label": "c", "preset": "c", "point": {}, "runs": {"0": "c0", "1": "c1"}})
    rows = summarize(manifest, runs)
    assert [r["group"] for r in rows] == ["a", "b", "c"] and rows[2]["n"] == 0 and rows[2]["test_acc"]["mean"] is None


def test_minutes_are_kept_apart_by_device_when_cpu_and_gpu_runs_are_pooled(tmp_path):
    manifest, runs = _fake({"a": [0.6, 0.7, 0.8], "b": [0.61, 0.72, 0.79]})
    for run, (device, seconds) in zip(runs, [("cpu", 6000), ("cpu", 6600), ("cuda", 240)] * 2):
        run["metrics"].update(device=device, seconds=seconds)
    rows = summarize(manifest, runs)
    assert rows[0]["minutes"] == {"cpu": pytest.approx(105.0), "cuda": pytest.approx(4.0)}  # not one mean of 71
    assert rows[0]["devices"] == {"cpu": 2, "cuda": 1}
    head, body, _, _ = summary_tables(rows)
    assert body[0][head.index("minutes")] == "105.0 cpu (n=2), 4.0 cuda (n=1)"
    for run in runs:
        run["metrics"]["device"] = "cpu"
    head, body, _, _ = summary_tables(summarize(manifest, runs))
    assert body[0][head.index("minutes")] == f"{(6000 + 6600 + 240) / 180:.1f}"  # one device: no label


def test_a_grid_point_is_named_after_the_preset_it_is_and_only_then():
    def group(l2: float, **settings) -> Group:
        return Group(f"l2={l2}", "seed-noreg", {"l2": l2},
                     {str(s): run_key(make_config("seed-noreg", l2=l2, **settings, seed=s)) for s in (0, 1)})
    assert group(1e-3).same_as({}) == "seed"
    assert group(1e-3, epochs=2).same_as({"epochs": 2}) == "seed"  # under the sweep's own fixed settings
    assert group(2e-3).same_as({}) is None
    # A fixed setting that some presets refuse (fast holds out no validation set) is no error here.
    assert group(2e-3, monitor="val_loss").same_as({"monitor": "val_loss"}) is None


def test_the_figure_against_a_setting_is_ticked_at_its_values_and_keeps_bands_in_range():
    manifest, runs = _fake({"l2=0": [0.5, 0.52], "l2=0.001": [0.6, 0.9], "l2=0.01": [0.55, 0.56]}, baseline=None)
    for group, l2 in zip(manifest["groups"], (0, 1e-3, 1e-2)):
        group.update(preset="seed-noreg", point={"l2": l2}, runs={str(s): run_key(make_config("seed-noreg", l2=l2, seed=s))
                                                                  for s in (0, 1)})
    test_acc = setting_figure(summarize(manifest, runs), "l2").axes[1]
    assert [t.get_text() for t in test_acc.texts] == ["= seed"]  # l2=1e-3 of seed-noreg is the seed preset, marked
    assert test_acc.get_title() == "test acc" and test_acc.get_xscale() == "symlog"  # 0 is among the values
    assert [label.get_text() for label in test_acc.get_xticklabels()] == ["0", "0.001", "0.01"]
    # l2=0.001's two seeds, 0.6 and 0.9, give 0.75 +- 1.91: the band stops at 0 and 1, where accuracy does.
    band = test_acc.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 0 and band.max() == 1


def test_the_differences_figure_names_a_baseline_only_where_every_row_has_it():
    manifest, runs = _fake({"a x=1": [0.5, 0.6], "a x=2": [0.6, 0.7], "b x=1": [0.55, 0.66], "b x=2": [0.62, 0.71]})
    for group in manifest["groups"]:
        preset, point = group["label"].split()
        group.update(preset=preset, point={"x": int(point[2:])})
    axis = margin_figure(summarize(manifest, runs), Design(seeds=2, margin=0.005)).axes[0]
    assert axis.get_xlabel() == "Δ test acc (group minus its baseline)"  # a x=1 for one row, a x=2 for the other
    one = _fake({"a": [0.5, 0.6], "b": [0.55, 0.66], "c": [0.52, 0.61]})
    assert margin_figure(summarize(*one), Design(seeds=2)).axes[0].get_xlabel() == "Δ test acc (group minus a)"

# ---------------------------------------------------------------------------------------------
# Bad grids: one line, before anything runs

@pytest.mark.parametrize("grid, message", [
    ("l3=0,1", "unknown setting 'l3'"),
    ("l2=0,lots", "--grid l2: 'lots' is not a number"),
    ("epochs=1.5", "--grid epochs: '1.5' is not a whole number"),
    ("l2=", "--grid l2= has no values"),
    ("l2", "needs the form SETTING=V1,V2"),
    ("seed=1,2", "use --seeds"),
    ("dropout_head=0.2,1.5", "dropout_head=1.5: --dropout-head must be in [0, 1)"),
])
def test_a_bad_grid_is_one_line_before_anything_runs(quick, tmp_path, capsys, grid, message):
    assert main(["sweep", "seed-noreg", "--grid", grid, "--out", str(tmp_path / "s"), *quick]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "s").exists()


def test_grid_values_take_the_settings_types():
    assert parse_grid(["l2=0,1e-4", "batch-norm=true,false", "augment=crop,flip"]) == \
        {"l2": [0.0, 1e-4], "batch_norm": [True, False], "augment": ["crop", "flip"]}
    with pytest.raises(RegulabError, match="names l2 twice"):
        parse_grid(["l2=0", "l2=1"])
    groups = plan(["seed-noreg", "seed-all"], {"train_fraction": [0.5, 1.0]}, 1, {})
    assert [g.label for g in groups] == ["seed-noreg train_fraction=0.5", "seed-noreg train_fraction=1",
                                         "seed-all train_fraction=0.5", "seed-all train_fraction=1"]
    # train_fraction=1 is the preset itself: the same run key.
    assert groups[1].runs == plan(["seed-noreg"], {}, 1, {})[0].runs


# ---------------------------------------------------------------------------------------------
# The stratified training subset

def test_train_fraction_is_stratified_nested_and_the_same_for_every_run():
    raw = data_lib.load_mini()
    full = data_lib.prepare(raw, 0.3, 777)
    subsets = {f: data_lib.prepare(raw, 0.3, 777, train_fraction=f) for f in (0.1, 0.25, 1.0)}
    counts = np.bincount(full.train[1].numpy(), minlength=10)
    for fraction in (0.1, 0.25):
        got = np.bincount(subsets[fraction].train[1].numpy(), minlength=10)
        assert np.abs(got - counts * fraction).max() <= 0.5 + 1e-9  # each class's own share, rounded
        assert torch_equal(subsets[fraction].val[0], full.val[0]) and torch_equal(subsets[fraction].test[0], full.test[0])
    assert torch_equal(subsets[1.0].train[0], full.train[0])  # the whole split, in the seed's order

    def rows(splits):
        return {bytes(x.numpy().tobytes()) for x in splits.train[0]}
    assert rows(subsets[0.1]) <= rows(subsets[0.25]) <= rows(subsets[1.0])  # nested
    # The subset depends on the split seed alone, not on the preset or the training seed.
    assert rows(data_lib.prepare(raw, 0.3, 777, train_fraction=0.1)) == rows(subsets[0.1])
    assert rows(data_lib.prepare(raw, 0.3, 778, train_fraction=0.1)) != rows(subsets[0.1])


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_train_fraction_through_the_cli(cifar_sample, quick, tmp_path):
    assert main(["train", "--preset", "seed-noreg", "--train-fraction", "0.25", "--out", str(tmp_path / "r"), *quick]) == 0
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    full = data_lib.prepare(data_lib.load_data(cifar_sample), 0.3, 777)
    assert metrics["train_size"] == pytest.approx(len(full.train[1]) * 0.25, abs=5)  # each class's share, rounded
    assert metrics["val_size"] == len(full.val[1])


# ---------------------------------------------------------------------------------------------
# The page in a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (.ci/run installs it)")
@pytest.mark.slow
def test_report_renders_in_a_browser(l2_sweep, tmp_path):
    report = write_report(l2_sweep / "l2")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1300,3200", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    # Rows per table: the summary (header and 3 groups), then the paired differences and the decision
    # (header and the 2 groups beside the baseline each).
    assert [table.count("<tr") for table in dom.split("<table")[1:]] == [4, 3, 3] and "l2=0.01" in dom
    figures = {"val_curves.png", "gap.png", "weights.png", "by_setting.png", "differences.png"}
    assert {p.name for p in (l2_sweep / "l2").glob("*.png")} == figures and dom.count("<img") == len(figures)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # Matplotlib's first two line colours, C0 blue and C1 orange, appear only if the figures rendered.
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - rgb).sum(axis=2) < 40).sum() > 200, rgb


def _run_folder(path, config: dict, history: list[dict], metrics: dict):
    path.mkdir(parents=True)
    for name, obj in (("config.json", config), ("history.json", history), ("metrics.json", metrics)):
        (path / name).write_text(json.dumps(obj))


def test_a_comparison_with_a_run_that_holds_out_no_validation_set(tmp_path):
    """fast trains on all 50,000 images: its validation numbers are n/a, the table ranks by what exists."""
    common = {"final_acc": 0.9, "test_acc": 0.8, "test_ece": 0.05, "test_loss": 0.6, "best_epoch": 2, "seconds": 60,
              "precision": "fp32"}
    with_val = {**common, "best_val_acc": 0.7, "final_val_acc": 0.7}
    no_val = {**common, "best_val_acc": None, "final_val_acc": None, "test_acc": 0.9}
    row = {"epoch": 1, "acc": 0.5, "loss": 1.0, "val_acc": 0.5, "val_data_loss": 1.0}
    _run_folder(tmp_path / "runs" / "a", {"preset": "seed"}, [row, {**row, "epoch": 2}], with_val)
    _run_folder(tmp_path / "runs" / "b", {"preset": "fast"}, [{**row, "val_acc": None, "val_data_loss": None}] * 2, no_val)
    manifest = {"presets": ["seed", "fast"], "grid": {}, "settings": {}, "seeds": 1, "baseline": None, "runs_dir": "runs",
                "groups": [{"label": "seed", "preset": "seed", "point": {}, "runs": {"0": "a"}},
                           {"label": "fast", "preset": "fast", "point": {}, "runs": {"0": "b"}}]}
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    assert main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "summary.md").read_text()
    assert "| fast | 1/1 | unrecorded ×1 fp32 | n/a | 0.9000 | n/a |" in md
    page = (tmp_path / "report.html").read_text()
    assert "Best by best val acc: <b>seed</b>" in page



def test_the_weights_overlay_compares_groups_on_the_seeds_they_all_recorded(tmp_path):
    """A group's seeds 0 and 1 ran before regulab recorded kernel norms: the overlay leaves them
    out for every group, so both lines are the mean over the same seeds (2 and 3)."""
    metrics = {"final_acc": 0.9, "final_val_acc": 0.7, "best_val_acc": 0.7, "test_acc": 0.7, "test_ece": 0.1,
               "test_loss": 1.0, "best_epoch": 2, "seconds": 60, "device": "cpu", "precision": "fp32"}
    groups = []
    for label, l2 in (("seed-noreg", 0.0), ("seed", 1e-3)):
        runs = {}
        for seed in range(4):
            row = {"epoch": 1, "acc": 0.9, "loss": 0.3, "val_acc": 0.7, "val_data_loss": 1.0}
            if label == "seed" or seed >= 2:  # seed-noreg's seeds 0 and 1: no norms
                row |= {"norm_conv1": 1.0 + seed + (label == "seed") * 10, "norm_dense1": 2.0}
            key = f"{label}-{seed}"
            _run_folder(tmp_path / "runs" / key, {"preset": label, "l2": l2, "seed": seed}, [row, {**row, "epoch": 2}],
                        metrics)
            runs[str(seed)] = key
        groups.append({"label": label, "preset": label, "point": {}, "runs": runs})
    manifest = {"presets": ["seed-noreg", "seed"], "grid": {}, "settings": {}, "seeds": 4, "baseline": None,
                "runs_dir": "runs", "groups": groups}
    (tmp_path / "sweep.json").write_text(json.dumps(manifest))
    assert main(["report", str(tmp_path)]) == 0
    assert "Kernel norms, seeds 2, 3" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "weights.png").stat().st_size > 10_000

@pytest.mark.slow
def test_adaptive_seeds_go_only_to_undecided_groups_and_the_command_resumes(l2_sweep, quick, capsys):
    folder = l2_sweep / "adaptive"
    args = ["compare", "seed-noreg", "seed", "--seeds", "2", "--max-seeds", "3", "--seeds-per-round", "1",
            "--baseline", "seed-noreg", "--out", str(folder), "--runs-dir", str(l2_sweep / "runs"), *quick]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    manifest, runs = load_study(folder)
    base, treated = (len(g["runs"]) for g in manifest["groups"])
    assert base == treated and manifest["design"]["max_seeds"] == 3  # the baseline has every seed its group has
    row = summarize(manifest, runs)[1]
    verdict = row["paired"]["test_acc"]["verdict"]
    if treated == 2:  # decided at the first look: no round was run
        assert verdict in ("better", "worse") and row["stopped"] == f"decided at look 1 of 2 (2 pairs): {verdict}"
        assert "undecided on test acc" not in out
    else:
        assert "undecided on test acc: seed; a round of 1 more seeds each" in out
        assert row["stopped"] in (f"decided at look 2 of 2 (3 pairs): {verdict}",
                                  "reached --max-seeds 3: still undecided at look 2 of 2 (3 pairs)")
    assert "every comparison is decided on test acc or has --max-seeds 3" in out
    assert "| seeds, and why |" in (folder / "summary.md").read_text()
    assert main(args) == 0  # the same command replays the rounds from the finished runs and trains nothing
    again = capsys.readouterr().out
    assert "[random seed" not in again and load_study(folder)[0]["groups"] == manifest["groups"]


def test_adaptive_seeds_need_a_baseline(tmp_path, quick, capsys):
    assert main(["compare", "seed-noreg", "seed", "--seeds", "2", "--max-seeds", "4", "--out", str(tmp_path), *quick]) == 1
    assert "name the baseline with --baseline" in capsys.readouterr().err
    assert main(["compare", "seed-noreg", "--seeds", "3", "--max-seeds", "2", "--baseline", "seed-noreg",
                 "--out", str(tmp_path), *quick]) == 1
    assert "--max-seeds (2) must be at least --seeds (3)" in capsys.readouterr().err
    assert main(["compare", "seed-noreg", "seed", "--seeds", "1", "--max-seeds", "4", "--baseline", "seed-noreg",
                 "--out", str(tmp_path), *quick]) == 1
    assert "--max-seeds needs --seeds of at least 2" in capsys.readouterr().err
