"""Starting a sweep's runs: a failure names its cause, a run killed by a signal is tried again
from its checkpoint, and the progress line counts what is finished, running and left."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from regulab import launch as launch_module
from regulab.config import make_config
from regulab.launch import Job, Progress, cause, launch
from regulab.rundir import RunDir


def test_a_failure_names_the_signal_or_the_exit_status_and_error(tmp_path):
    assert cause(-signal.SIGKILL, tmp_path) == "killed by SIGKILL"
    (tmp_path / "train.log").write_text("Epoch 3/5 - 14.3s - loss: 1.2\nregulab: error: --lr must be positive, not 0\n")
    assert cause(1, tmp_path) == "exit status 1: regulab: error: --lr must be positive, not 0"
    (tmp_path / "train.log").write_text("Epoch 3/5 - 14.3s - loss: 1.2\n")
    assert cause(2, tmp_path) == "exit status 2"  # never the last line of the log as if it were the cause


def test_the_progress_line_counts_runs_and_epochs_and_estimates_what_is_left(tmp_path):
    cfg = make_config("seed", epochs=4)
    jobs = [Job(cfg, tmp_path / name, name) for name in ("a", "b", "c")]
    for job, done in zip(jobs, (4, 1, 0)):
        job.out.mkdir()
        (job.out / "history.json").write_text(json.dumps([{"seconds": 30.0}] * done))
    progress = Progress(jobs, at_once=2, log=print, every=3600)
    progress.done, progress.running = {"a"}, {"b"}
    # 5 epochs measured at 30 s; 3 + 4 epochs left over 2 at a time: 7 * 30 / 2 = 105 s, 2 min
    assert progress.line() == "runs: 1 finished, 1 running (b 1/4), 1 left; ETA 2 min (at 30 s an epoch)"


# A stand-in for a second sweep's training: holds the run folder as a training does, then leaves
# it finished or not, and lets go of it when it ends.
HOLDER = """
import fcntl, json, os, sys, time
handle = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(handle, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(1.0)
if sys.argv[2] == "finish":
    with open(os.path.join(sys.argv[1], "metrics.json"), "w") as f:
        json.dump({"best_val_acc": 0.5, "best_epoch": 1, "test_acc": 0.4}, f)
"""


@pytest.mark.parametrize("here", [False, True])
@pytest.mark.parametrize("other_finishes", [True, False])
def test_a_run_another_process_trains_is_waited_for_not_trained_twice(tmp_path, monkeypatch, here, other_finishes):
    out = tmp_path / "run"
    out.mkdir()
    other = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), "finish" if other_finishes else "stop"],
                             stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline() == "held\n"
    trained = []

    def training(*args):  # stands in for both ways of training: a child process, or in this one
        assert RunDir(out).holder() is None, "trained while the other process still held the run"
        trained.append(args)
        (out / "metrics.json").write_text(json.dumps({"best_val_acc": 0.6, "best_epoch": 1, "test_acc": 0.5}))
        return 0

    monkeypatch.setattr(launch_module, "train_here" if here else "run_training", training)
    said = []
    failures = launch([Job(make_config("seed", epochs=1), out, "a")], at_once=1, threads=1, ray=False, here=here,
                      retries=0, log=said.append)
    other.communicate()  # reaps it and closes its pipe
    assert failures == []
    assert said[0] == f"  a: another regulab process is training it (pid {other.pid}); waiting for it"
    if other_finishes:  # its result is used: nothing is trained again
        assert trained == []
        assert said[1] == "  a: best val_acc 0.5000 at epoch 1, test_acc 0.4000 (trained by another regulab process)"
    else:  # it stopped part-way: this sweep trains the run
        assert len(trained) == 1
        assert said[1].startswith("  a: best val_acc 0.6000 at epoch 1, test_acc 0.5000 (")


def test_a_run_another_process_finished_since_the_plan_is_used_as_it_is(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"best_val_acc": 0.5, "best_epoch": 1, "test_acc": 0.4}))
    monkeypatch.setattr(launch_module, "run_training", lambda *args: pytest.fail("trained a finished run again"))
    said = []
    assert launch([Job(make_config("seed", epochs=1), out, "a")], at_once=1, threads=1, ray=False, here=False,
                  retries=0, log=said.append) == []
    assert said == ["  a: best val_acc 0.5000 at epoch 1, test_acc 0.4000 (trained by another regulab process)"]


@pytest.mark.slow
def test_a_run_killed_by_a_signal_is_retried_from_its_checkpoint(cifar_sample, tmp_path):
    out = tmp_path / "cmp"
    sweep = subprocess.Popen([sys.executable, "-m", "regulab", "compare", "seed-noreg", "--seeds", "1", "--epochs", "6",
                              "--data", str(cifar_sample), "--out", str(out)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not list(out.glob("runs/*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.2)
    (run,) = [p.parent for p in out.glob("runs/*/checkpoint.pt")]
    child = subprocess.run(["pgrep", "-f", f"regulab train --config {run}"], capture_output=True, text=True).stdout.split()
    os.kill(int(child[0]), signal.SIGKILL)  # mid-run, as a lost node or the OOM killer would
    output = sweep.communicate(timeout=300)[0]
    assert sweep.returncode == 0, output
    assert "killed by SIGKILL; trying again from its checkpoint (1 of 1 retries)" in output
    assert "after 2 tries" in output and "resuming after epoch" in (run / "train.log").read_text()
    assert len(json.loads((run / "history.json").read_text())) == 6
