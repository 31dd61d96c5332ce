"""Nothing lost: checkpoints, resume after a kill, determinism, and faults while training."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from regulab import data as data_lib
from regulab import rundir as rundir_lib
from regulab import training as train_lib
from regulab.cli import main
from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.models import create_model
from regulab.rundir import RunDir
from regulab.training import TrainState

TIMING = {"seconds", "train_seconds", "images_per_s"}
STEPS_PER_EPOCH = 7  # 210 training images of the sample in batches of 32


@pytest.fixture(scope="module")
def args(cifar_sample):
    """Small and quick, in fp32 with deterministic kernels: bit-identical results are the claim."""
    return ["--data", str(cifar_sample), "--epochs", "3", "--batch-size", "32", "--precision", "fp32", "--deterministic"]


def without_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_same_run(a, b):
    assert without_timing(json.loads((a / "history.json").read_text())) == \
        without_timing(json.loads((b / "history.json").read_text()))
    for name in ("best.pt", "last.pt"):
        wa, wb = (torch.load(d / name, weights_only=True) for d in (a, b))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "regulab", "train", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_epochs(run_dir, epochs, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = run_dir / "history.json"
        if history.exists() and len(json.loads(history.read_text())) >= epochs:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise TimeoutError


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, args):
    out = tmp_path_factory.mktemp("whole") / "run"
    assert main(["train", *args, "--out", str(out)]) == 0
    return out


def test_same_seed_gives_bit_identical_runs(uninterrupted, args, tmp_path):
    assert main(["train", *args, "--out", str(tmp_path / "again")]) == 0
    assert_same_run(uninterrupted, tmp_path / "again")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(uninterrupted, args, tmp_path):
    out = tmp_path / "killed"
    proc = start(*args, "--out", str(out))
    wait_for_epochs(out, 1, proc)
    time.sleep(0.3)  # into the second epoch
    proc.kill()
    proc.wait()
    assert not (out / "metrics.json").exists()
    saved = len(json.loads((out / "history.json").read_text()))
    assert saved in (1, 2)

    resumed = subprocess.run([sys.executable, "-m", "regulab", "train", "--resume", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {saved} of 3" in resumed.stdout
    assert_same_run(uninterrupted, out)
    # Its timing is this session's: the epochs the killed process ran are not in its wall time.
    metrics, history = (json.loads((out / name).read_text()) for name in ("metrics.json", "history.json"))
    assert metrics["train_seconds"] == pytest.approx(sum(r["train_seconds"] for r in history[saved:]))
    assert metrics["seconds"] == pytest.approx(sum(r["seconds"] for r in history))


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_and_prints_the_resume_command(signum, args, tmp_path):
    out = tmp_path / "stopped"
    proc = start(*args, "--out", str(out))
    wait_for_epochs(out, 1, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"resume with: regulab train --resume {out}" in err and "Traceback" not in err
    assert TrainState.read(RunDir(out))["epoch"] >= 1


def test_nan_loss_stops_at_its_step_and_keeps_the_last_good_epoch(cifar_sample, tmp_path, monkeypatch):
    splits = data_lib.prepare(data_lib.load_data(cifar_sample))
    real = train_lib.F.cross_entropy
    calls = {"n": 0}

    def poisoned(logits, target, **kw):
        training = kw.get("reduction") == "sum"  # the training step sums over the batch; evaluation takes the mean
        calls["n"] += training
        loss = real(logits, target, **kw)
        return loss * float("nan") if training and calls["n"] == STEPS_PER_EPOCH + 5 else loss  # epoch 2, step 5

    monkeypatch.setattr(train_lib.F, "cross_entropy", poisoned)
    cfg = make_config("seed", epochs=3, batch_size=32, out=str(tmp_path / "r"))
    with pytest.raises(RegulabError, match=r"the loss became nan at epoch 2, step 5; lower --lr"):
        train_lib.train(cfg, splits=splits, log=lambda *_: None, progress=False)
    run = RunDir(tmp_path / "r")
    assert TrainState.read(run)["epoch"] == 1 and len(run.read_json("history.json")) == 1
    state = run.load_weights("last.pt", create_model("seed-cnn"))
    assert all(torch.isfinite(t).all() for t in state.values())


def test_full_disk_while_saving_leaves_the_old_file(tmp_path, monkeypatch):
    run = RunDir.create(tmp_path / "r")
    run.write_json("metrics.json", {"kept": True})

    def full(_fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(rundir_lib.os, "fsync", full)
    with pytest.raises(RegulabError, match=r"\(No space left on device\); free some space"):
        run.write_json("metrics.json", {"kept": False})
    assert run.read_json("metrics.json") == {"kept": True}
    assert sorted(p.name for p in run.path.iterdir()) == ["metrics.json"]  # no temp file left


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RegulabError, match="cannot create .*choose another --out"):
        RunDir.create(blocker / "run")


class RunsCode:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("content, message", [
    (b"\x00garbage", "corrupt or truncated"),
    (None, "holds code or objects that are not plain tensors"),
])
def test_bad_checkpoint_is_refused(uninterrupted, tmp_path, content, message):
    out = tmp_path / "bad"
    out.mkdir()
    (out / "config.json").write_text((uninterrupted / "config.json").read_text())
    if content is None:
        torch.save({"model": RunsCode()}, out / "checkpoint.pt")
    else:
        (out / "checkpoint.pt").write_bytes(content)
    with pytest.raises(RegulabError, match=message):
        TrainState.read(RunDir(out))


def test_weights_of_another_model_are_refused(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.save("best.pt", {"weight": torch.zeros(3)})
    with pytest.raises(RegulabError, match="holds weights for a different model"):
        run.load_weights("best.pt", create_model("seed-cnn"))


def test_resume_refuses_what_it_cannot_do(uninterrupted, tmp_path, capsys):
    assert main(["train", "--resume", str(uninterrupted)]) == 1
    assert "already holds a finished run; there is nothing to resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(uninterrupted), "--lr", "0.1"]) == 1
    assert "--lr cannot change when resuming" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    assert main(["train", "--resume", str(broken)]) == 1
    assert "config.json is unreadable" in capsys.readouterr().err


@pytest.mark.slow
def test_a_scheduled_run_resumes_on_its_schedule(args, tmp_path):
    """The learning rate after a resume follows the run's schedule from the config's base rate,
    not from the last scheduled rate the optimizer held."""
    args = [*args, "--schedule", "cosine", "--warmup-epochs", "1", "--lr", "1e-3"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["train", *args, "--out", str(whole)]) == 0
    proc = start(*args, "--out", str(parts))
    wait_for_epochs(parts, 1, proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert len(json.loads((parts / "history.json").read_text())) < 3
    assert main(["train", "--resume", str(parts)]) == 0
    assert_same_run(whole, parts)


def flip_middle(path, count=64):
    """`count` bytes in the middle of a file inverted, as a failing disk or a bad copy would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


@pytest.fixture
def interrupted(uninterrupted, tmp_path):
    """A copy of a finished run with its end taken away: a checkpoint to resume from."""
    out = tmp_path / "half"
    subprocess.run(["cp", "-r", str(uninterrupted), str(out)], check=True)
    (out / "metrics.json").unlink()
    return out


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_checkpoint_is_refused_in_one_line_and_kept(interrupted, capsys, damage):
    checkpoint = interrupted / "checkpoint.pt"
    if damage == "flip":
        flip_middle(checkpoint)
    else:
        checkpoint.write_bytes(checkpoint.read_bytes()[:len(checkpoint.read_bytes()) // 3])
    before = checkpoint.read_bytes()
    assert main(["train", "--resume", str(interrupted)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(checkpoint) in err and "not match the SHA-256 written with it" in err and "was not loaded" in err
    assert f"start the run over with regulab train --config {interrupted / 'config.toml'} --out {interrupted} --overwrite" in err
    assert checkpoint.read_bytes() == before and not (interrupted / "metrics.json").exists()


def test_damaged_best_weights_are_refused_by_evaluate_predict_export_and_init_from(uninterrupted, tmp_path, capsys, args):
    run = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(uninterrupted), str(run)], check=True)
    flip_middle(run / "best.pt")
    for command in (["evaluate", str(run)], ["predict", str(run), str(tmp_path)], ["export", str(run)],
                    ["train", *args, "--init-from", str(run), "--out", str(tmp_path / "tuned")]):
        assert main(command) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"{run / 'best.pt'} has changed since regulab wrote it" in err, command
        assert ("start from another run's weights" if command[0] == "train" else "restore it from a copy") in err


def test_a_crash_between_the_checksum_and_the_file_leaves_a_file_that_loads(tmp_path):
    """The checksum is written first and keeps the one before it: the old file still matches."""
    run = RunDir.create(tmp_path / "r")
    run.save("best.pt", {"weight": torch.ones(3)})
    old = (run.path / "best.pt").read_bytes()
    run.save("best.pt", {"weight": torch.zeros(3)})
    (run.path / "best.pt").write_bytes(old)  # as if the process died after writing best.pt.sha256
    assert torch.equal(run.load("best.pt")["weight"], torch.ones(3))
    (run.path / "best.pt.sha256").unlink()  # a run from before checksums: loaded as it is
    assert torch.equal(run.load("best.pt")["weight"], torch.ones(3))


def test_a_resumed_run_records_each_session_s_machine(interrupted):
    assert main(["train", "--resume", str(interrupted)]) == 0
    first, second = json.loads((interrupted / "metrics.json").read_text())["machines"]
    assert (first["from_epoch"], second["from_epoch"]) == (1, 4)  # the resume found all 3 epochs done
    for record in (first, second):
        assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and record["threads"] >= 1
        assert record["torch"] == torch.__version__ and record["cpu_id"].count("/") == 3
