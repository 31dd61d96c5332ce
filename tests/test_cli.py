import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from regulab.cli import main


def regulab(*args, env=None):
    """Run the real command in a child process, as a user would."""
    return subprocess.run([sys.executable, "-m", "regulab", *args], capture_output=True, text=True, env=env, timeout=300)


def test_train_end_to_end_into_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "cifar10-mini", "--epochs", "2", "--out", str(out), "--batch-size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed and "val_acc:" in printed
    assert {p.name for p in out.iterdir()} >= {"config.json", "history.csv", "history.json", "metrics.json",
                                               "best.pt", "last.pt", "curves.png"}
    config = json.loads((out / "config.json").read_text())
    assert config["batch_size"] == 64 and config["epochs"] == 2 and config["lr"] == 1e-4  # option over preset
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert len(rows) == 2 and {"loss", "acc", "val_loss", "val_acc", "data_loss", "penalty", "lr", "seconds"} <= set(rows[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["test_size"] == 1000
    with Image.open(out / "curves.png") as png:
        assert png.size == (1000, 500)  # the seed's 10x5 inch figure, two panels

    # A finished run is never overwritten by accident.
    assert main(["train", "--data", "cifar10-mini", "--epochs", "1", "--out", str(out)]) == 1
    assert "already holds a finished run" in capsys.readouterr().err
    assert len(json.loads((out / "history.json").read_text())) == 2

    # `plot` redraws the figure from the history alone.
    (out / "curves.png").unlink()
    assert main(["plot", str(out)]) == 0
    assert (out / "curves.png").stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/nowhere/cifar.tar.gz"], "no CIFAR-10 data at /nowhere/cifar.tar.gz"),
    (["train", "--preset", "sead"], "unknown preset 'sead'; did you mean 'seed'?"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--lr", "-1"], "--lr must be positive"),
    (["train", "--dropout-head", "1.5"], "--dropout-head must be in [0, 1)"),
    (["train", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["train", "--augment", "crop,flop"], "unknown augmentation 'flop'; did you mean 'flip'?"),
    (["train", "--data", "cifar10-mini", "--model", "seed-cnm", "--out", "/tmp/regulab-unused"], "did you mean 'seed-cnn'?"),
    (["plot", "/nowhere"], "is missing; is /nowhere a regulab run folder?"),
])
def test_bad_input_gets_one_line_and_exit_1(args, message):
    result = regulab(*args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"regulab: error: {result.stderr.split('error: ', 1)[1].strip()}"]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_corrupt_archive_from_the_command_line(tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"\x1f\x8b" + b"not really gzip" * 100)
    result = regulab("train", "--data", str(bad), "--out", str(tmp_path / "run"))
    assert result.returncode == 1 and "truncated or corrupt" in result.stderr and "Traceback" not in result.stderr


def test_unknown_option_is_a_usage_error():
    result = regulab("train", "--epocs", "3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "regulab: error: unrecognized arguments: --epocs 3; did you mean --epochs?; see `regulab --help`"]


def test_presets_are_listed_with_a_description(capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("seed ") and "Adam 1e-4" in listing


def test_ci_runs_the_readmes_test_command():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    test_command = readme.split("Set up and run the tests")[1].split("```bash\n")[1].split("\n```")[0]
    assert test_command.strip() in (root / ".ci" / "run").read_text()
