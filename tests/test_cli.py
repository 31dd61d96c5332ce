import csv
import json
import subprocess
import sys

import pytest
import torch
from PIL import Image

from regulab.cli import main
from regulab.runtime import device_name


def regulab(*args, env=None):
    """Run the real command in a child process, as a user would."""
    return subprocess.run([sys.executable, "-m", "regulab", *args], capture_output=True, text=True, env=env, timeout=300)


def test_train_end_to_end_into_a_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "cifar10-mini", "--epochs", "2", "--out", str(out), "--batch-size", "64",
                 "--train-fraction", "0.25"]) == 0
    printed = capsys.readouterr().out
    assert "Epoch 1/2" in printed and "Epoch 2/2" in printed and "val_acc:" in printed
    assert {p.name for p in out.iterdir()} >= {"config.json", "history.csv", "history.json", "metrics.json",
                                               "best.pt", "last.pt", "curves.png"}
    config = json.loads((out / "config.json").read_text())
    assert config["batch_size"] == 64 and config["epochs"] == 2 and config["lr"] == 1e-4  # option over preset
    rows = list(csv.DictReader((out / "history.csv").read_text().splitlines()))
    assert len(rows) == 2 and {"loss", "acc", "val_loss", "val_acc", "data_loss", "penalty", "lr", "seconds"} <= set(rows[0])
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_acc"] <= 1 and metrics["test_size"] == 1000
    assert metrics["device"] == "cpu" and metrics["hardware"] == device_name(torch.device("cpu"))  # timings' machine
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
    (["train", "--data", "/nowhere/cifar.tar.gz"], "no data at /nowhere/cifar.tar.gz"),
    (["train", "--preset", "sead"], "unknown preset 'sead'; did you mean 'seed'?"),
    (["train", "--epochs", "0"], "--epochs must be at least 1"),
    (["train", "--lr", "-1"], "--lr must be positive"),
    (["train", "--dropout-head", "1.5"], "--dropout-head must be in [0, 1)"),
    (["train", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["train", "--whiten-bias-epochs", "3"], "--whiten-bias-epochs needs --whiten"),
    (["train", "--augment", "crop,flop"], "unknown augmentation 'flop'; did you mean 'flip'?"),
    (["train", "--data", "cifar10-mini", "--model", "seed-cnm", "--out", "/tmp/regulab-unused"], "did you mean 'seed-cnn'?"),
    (["plot", "/nowhere"], "is missing; is /nowhere a regulab run folder?"),
])
def test_bad_input_gets_one_line_and_exit_1(args, message, capsys):
    assert main(args) == 1  # the command's own entry point; a child process is checked below
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"regulab: error: {err.split('error: ', 1)[1].strip()}"]
    assert message in err and "Traceback" not in err


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


# ---------------------------------------------------------------------------------------------
# A newcomer's first hour: what must not break or mislead

def test_a_failed_start_leaves_nothing_behind(tmp_path):
    result = subprocess.run([sys.executable, "-m", "regulab", "train", "--data", "/nonexistent"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "no data at /nonexistent" in result.stderr
    assert list(tmp_path.iterdir()) == []  # no empty runs/seed-<date>/ left to puzzle over
    assert main(["train", "--data", "/nonexistent", "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


def test_a_folder_where_no_training_started_says_exactly_that(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["evaluate", str(empty)], ["train", "--resume", str(empty)], ["predict", str(empty), str(tmp_path)]):
        assert main(args) == 1
        assert f"{empty} holds no regulab run: no training ever started there" in capsys.readouterr().err


def test_resume_keeps_the_runs_length_and_init_from_trains_on(cifar_sample, tmp_path, capsys):
    first = tmp_path / "first"
    quick = ["--data", str(cifar_sample)]
    assert main(["train", "--preset", "seed-noreg", "--epochs", "1", "--out", str(first), *quick]) == 0
    assert main(["train", "--resume", str(first), "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    assert "--epochs cannot change when resuming" in err and f"--init-from {first} --epochs N" in err
    assert main(["train", "--resume", str(first)]) == 1
    assert f"nothing to resume. To train on from its weights, start a new run: regulab train --init-from {first}" in \
        capsys.readouterr().err
    # A new run from the finished run's best weights: with a learning rate too small to move them,
    # its weights stay the ones it started from.
    second = tmp_path / "second"
    assert main(["train", "--preset", "seed-noreg", "--init-from", str(first), "--lr", "1e-30", "--epochs", "1",
                 "--out", str(second), *quick]) == 0
    assert f"starting from the weights of {first}" in capsys.readouterr().out
    start, end = (torch.load(path, weights_only=True) for path in (first / "best.pt", second / "last.pt"))
    assert all(torch.allclose(start[k], end[k]) for k in start)
    assert json.loads((second / "config.json").read_text())["init_from"] == str(first)
    assert main(["train", "--preset", "fast", "--init-from", str(first), "--out", str(tmp_path / "third"), *quick]) == 1
    assert "holds weights for a different model" in capsys.readouterr().err and not (tmp_path / "third").exists()


def test_version_preset_settings_and_dry_run(tmp_path, capsys):
    from regulab import __version__

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"regulab {__version__}"
    assert main(["presets", "seed-all"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# seed-all: BN") and "batch_norm = true" in shown and 'schedule = "cosine"' in shown
    assert main(["train", "--preset", "seed", "--dry-run", "--out", str(tmp_path / "never")]) == 0
    shown = capsys.readouterr().out
    assert "l2 = 0.001" in shown and "total params: 814,122" in shown and "16 (Linear)" in shown
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--debug"], "--debug is an option of regulab itself: put it before the command"),
    (["compare", "seed", "--seed", "3"], "unrecognized arguments: --seed 3; did you mean --seeds?"),  # no abbreviations
    (["sweep", "seed", "--grid", "l2=0", "--epoch", "3"], "did you mean --epochs?"),
])
def test_usage_mistakes_are_named_and_nothing_runs(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "regulab", *args], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--preset", "fast", "--batch-norm"], "the fast-net model does not take --batch-norm"),
    (["--model", "fast-net", "--dropout-head", "0.5"], "the fast-net model does not take --dropout-head"),
])
def test_an_option_the_model_cannot_take_is_refused(args, message, capsys, tmp_path):
    assert main(["train", *args, "--data", "cifar10-mini", "--out", str(tmp_path / "r")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_every_command_and_option_has_help_that_says_something():
    from regulab.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        assert len(command.description or "") > 40, name
        for action in command._actions:
            if action.dest == "help":
                continue
            assert action.help and len(action.help) > 12 and "unless the preset says otherwise" not in action.help, \
                (name, action.dest)
