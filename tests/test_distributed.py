"""Growing past one process: torchrun data parallelism (gloo, 2 CPU processes) and Ray."""

import json
import os
import subprocess
import sys

import pytest
import torch

from regulab.cli import main
from regulab.study import load_study


# The seed network has no batch norm, so two workers with half a batch each compute the very
# gradient one process computes on the whole batch; only the order of float sums differs. Few,
# large steps (2 epochs of 2) keep that rounding from growing: over hundreds of steps any two
# runs that differ in rounding drift apart (one process at 1 and 2 threads does too).
@pytest.fixture
def run_args(cifar_sample):
    # 210 training images: 2 steps an epoch of 105, shared 53 and 52 between the workers
    return ["--preset", "seed", "--data", str(cifar_sample), "--epochs", "2", "--batch-size", "105", "--precision", "fp32"]


pytestmark = pytest.mark.slow  # torchrun and Ray start processes


def test_torchrun_two_processes_match_one(run_args, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "regulab", "train", *run_args, "--threads", "1",
                             "--out", str(tmp_path / "one")], capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "regulab", "train", *run_args, "--threads", "1", "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "data-parallel: 2 workers (gloo)" in ddp.stdout
    assert ddp.stdout.count("Epoch 1/2") == 1  # only the main worker speaks

    one, two = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    # Losses agree to float rounding; an accuracy may differ by an image whose two top logits
    # are that close. Adam moves a weight by up to about lr a step whatever the gradient's size,
    # so a near-zero gradient whose sign rounding flipped leaves at most lr x steps (4e-4) apart; the bound is twice that.
    for a, b in zip(one, two):
        for key in ("loss", "val_loss", "penalty"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
        for key in ("acc", "val_acc"):
            assert b[key] == pytest.approx(a[key], abs=1e-3), key
    w1, w2 = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("one", "two"))
    assert max((w1[k] - w2[k]).abs().max().item() for k in w1) < 8e-4
    tests = [json.loads((tmp_path / d / "metrics.json").read_text())["test_acc"] for d in ("one", "two")]
    assert tests[1] == pytest.approx(tests[0], abs=2e-3)


def test_compare_on_a_local_ray_instance(cifar_sample, tmp_path, capsys):
    pytest.importorskip("ray", reason="install regulab[ray] to test compare --ray")
    folder = tmp_path / "cmp"
    assert main(["compare", "seed-noreg", "seed", "--out", str(folder), "--ray", "local",
                 "--data", str(cifar_sample), "--epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "on Ray (local: 1 node" in printed
    _, runs = load_study(folder)
    assert sorted(r["preset"] for r in runs) == ["seed", "seed-noreg"]
    assert all(r["metrics"]["epochs_run"] == 1 for r in runs) and (folder / "report.html").is_file()
