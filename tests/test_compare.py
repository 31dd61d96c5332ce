import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from regulab.cli import main
from regulab.compare import run_dir
from regulab.errors import RegulabError
from regulab.report import load_runs, write_report

QUICK = ["--data", "cifar10-mini", "--epochs", "2", "--batch-size", "256"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cmp") / "compare"
    assert main(["compare", "seed-noreg", "seed", "--seeds", "2", "--out", str(folder), *QUICK]) == 0
    return folder


def test_compare_runs_every_preset_and_seed_on_the_same_split(comparison):
    runs = load_runs(comparison)
    assert sorted((r["preset"], r["seed"]) for r in runs) == [("seed", 0), ("seed", 1), ("seed-noreg", 0), ("seed-noreg", 1)]
    for r in runs:
        assert r["config"]["epochs"] == 2 and r["config"]["split_seed"] == 777 and r["config"]["threads"] >= 1
        assert len(r["history"]) == 2
    by = {(r["preset"], r["seed"]): r for r in runs}
    assert by[("seed", 0)]["history"][0]["penalty"] > 0
    assert by[("seed-noreg", 0)]["history"][0]["penalty"] == 0


def test_compare_skips_finished_runs_and_resumes_unfinished_ones(comparison, capsys):
    finished = run_dir(comparison, "seed", 0)
    stamp = (finished / "metrics.json").stat().st_mtime_ns
    interrupted = run_dir(comparison, "seed", 1)
    (interrupted / "metrics.json").unlink()  # as if killed after its last checkpoint
    shutil.rmtree(run_dir(comparison, "seed-noreg", 1))  # as if never started
    assert main(["compare", "seed-noreg", "seed", "--seeds", "2", "--out", str(comparison), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "4 runs, 2 already finished" in out
    assert "seed seed 1" in out and "resumed" in out and "seed-noreg seed 1" in out
    assert (finished / "metrics.json").stat().st_mtime_ns == stamp
    assert "resuming after epoch 2 of 2" in (interrupted / "train.log").read_text()
    assert len(load_runs(comparison)) == 4


def test_report_table_and_figures(comparison):
    report = write_report(comparison)
    rows = (comparison / "summary.md").read_text().splitlines()
    assert rows[0].startswith("| preset | seeds | best val_acc") and len(rows) == 4
    assert any(r.startswith("| seed | 2 |") for r in rows)
    csv_lines = (comparison / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and "gap" in csv_lines[0]
    page = report.read_text()
    assert page.count("data:image/png;base64,") == 2 and "http" not in page  # self-contained
    assert page.count("<details>") == 4
    for name in ("val_curves.png", "gap.png"):
        assert Image.open(comparison / name).size[0] > 500


def test_report_command_and_empty_folder(comparison, tmp_path, capsys):
    assert main(["report", str(comparison)]) == 0
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(RegulabError, match="no finished runs"):
        load_runs(tmp_path)
    assert main(["compare", "seed-nope", "--out", str(tmp_path)]) == 1
    assert "unknown preset 'seed-nope'" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_a_browser(comparison, tmp_path):
    report = write_report(comparison)
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2200", report.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert dom.count("<tr") == 3 and "seed-noreg" in dom  # header and one row per preset
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # Matplotlib's first two line colours, C0 blue and C1 orange, appear only if the figures rendered.
    for rgb in ((31, 119, 180), (255, 127, 14)):
        assert (np.abs(pixels - rgb).sum(axis=2) < 40).sum() > 200, rgb
