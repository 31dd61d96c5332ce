"""Starting a sweep's runs: a failure names its cause, a run killed by a signal is tried again
from its checkpoint, and the progress line counts what is finished, running and left."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from regulab.config import make_config
from regulab.launch import Job, Progress, cause


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
