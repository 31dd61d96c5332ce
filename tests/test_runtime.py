"""Sharing the machine: a run folder held by one process, and the cores split between trainings."""

import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from regulab.cli import main
from regulab.errors import RegulabError
from regulab.rundir import RunDir
from regulab.runtime import CoreShare, device_name, heap_kept, resolve_device, usable_cores


@pytest.fixture
def quick(cifar_sample):
    return ["--data", str(cifar_sample), "--precision", "fp32"]


def test_a_run_folder_in_use_is_refused_naming_the_holder(quick, tmp_path, capsys):
    folder = tmp_path / "run"
    held = RunDir.create(folder)  # held by this process, as a training in another terminal would hold it
    holder = subprocess.run([sys.executable, "-m", "regulab", "train", *quick, "--epochs", "1", "--out", str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert holder.returncode == 1 and len(holder.stderr.strip().splitlines()) == 1
    assert f"{folder} is in use by another regulab process (pid {os.getpid()})" in holder.stderr
    assert list(folder.iterdir()) == []  # the second one wrote nothing
    held.unlock()


def test_the_lock_dies_with_its_process(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", f"from regulab.rundir import RunDir; held = RunDir({str(folder)!r}).lock(); "
                               "import time; print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RegulabError, match=f"pid {holder.pid}"):
        RunDir(folder).lock()
    holder.kill()  # kill -9: no chance to clean up
    holder.communicate()  # reaps it and closes its pipe
    RunDir(folder).lock().unlock()  # the kernel released it


def test_resume_and_sweep_respect_the_lock(quick, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *quick, "--epochs", "1", "--out", str(run)]) == 0
    (run / "metrics.json").unlink()  # as if interrupted
    held = [RunDir(run).lock()]
    assert main(["train", "--resume", str(run)]) == 1
    assert "is in use by another regulab process" in capsys.readouterr().err
    sweep_folder = tmp_path / "sweep"
    sweep_folder.mkdir()
    held.append(RunDir(sweep_folder).lock())
    assert main(["compare", "seed", "--out", str(sweep_folder), *quick]) == 1
    assert "is in use by another regulab process" in capsys.readouterr().err
    assert not (sweep_folder / "sweep.json").exists()
    for folder in held:
        folder.unlock()


def register(folder, pid: int, threads: int):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{pid}.json").write_text(json.dumps({"threads": threads}))


def test_trainings_take_equal_shares_of_the_cores_left(tmp_path):
    folder = tmp_path / "running"
    with CoreShare(cores=8, folder=folder) as me:
        assert me.share()[0] == 8  # alone
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            register(folder, sleeper.pid, 0)  # another sharing training
            assert me.share()[0] == 4
            register(folder, os.getppid(), 2)  # and one with a fixed --threads 2
            threads, why = me.share()
            assert threads == 3 and "2 other regulab trainings running" in why
        finally:
            sleeper.kill()
            sleeper.wait()
        register(folder, 2**22 + 12345, 0)  # a process that no longer exists counts for nothing
        assert me.share()[0] == 6 and not (folder / f"{2**22 + 12345}.json").exists()
    assert not (folder / f"{os.getpid()}.json").exists()  # unregistered on the way out
    assert CoreShare(fixed_threads=1, cores=8, folder=folder).share() == (1, "1 (--threads)")


def test_the_cores_are_those_this_process_may_run_on(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3}, raising=False)  # as under `taskset -c 3`
    assert usable_cores() == 1
    assert CoreShare(folder=tmp_path).share() == (1, "1 (the one core; no other regulab training is running)")


def test_adjust_resizes_the_thread_pool_when_a_training_arrives(tmp_path, monkeypatch):
    folder, before = tmp_path / "running", torch.get_num_threads()
    monkeypatch.setattr(CoreShare, "LOOK_EVERY", 0.0)
    said = []
    try:
        with CoreShare(cores=2, folder=folder) as me:
            me.adjust(said.append)
            assert torch.get_num_threads() == 2 and said[-1].startswith("threads: 2 (all 2 cores")
            register(folder, os.getppid(), 0)
            me.adjust(said.append)
            assert torch.get_num_threads() == 1 and said[-1].startswith("threads: now 1 of 2 cores")
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_two_trainings_started_together_split_the_cores(quick, tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "regulab", "train", *quick, "--epochs", "3",
                               "--out", str(tmp_path / f"r{i}")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    # The later one saw the earlier one (on one core too: a pinned test worker gives both the same one).
    assert any(f"of {usable_cores()} cores (1 other regulab training running" in out for out in outputs), outputs



def test_fp32_on_a_gpu_is_ieee_not_tf32(monkeypatch):
    """PyTorch's default lets cuDNN compute fp32 convolutions in TF32; a GPU run of regulab must not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    backends = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [b.fp32_precision for b in backends]
    try:
        for b in backends:
            b.fp32_precision = "tf32"
        assert resolve_device("cuda") == torch.device("cuda")
        assert [b.fp32_precision for b in backends] == ["ieee", "ieee"]
    finally:
        for b, value in zip(backends, before):
            b.fp32_precision = value


def test_the_hardware_is_named_by_its_model(monkeypatch):
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():  # Linux: the model the kernel reports, not the architecture's name
        models = {line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")}
        assert device_name(torch.device("cpu")) in (models or {platform.processor() or platform.machine()})
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert device_name(torch.device("cuda", 0)) == "NVIDIA H200"


def faults_of_ten_tensors() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        torch.ones(64 * 2**20 // 4)  # 64 MB written through: over glibc's largest mapping threshold
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap's settings are glibc's")
def test_within_heap_kept_a_freed_large_tensor_is_reused_and_outside_it_is_mapped_afresh():
    outside = faults_of_ten_tensors()
    with heap_kept():
        faults_of_ten_tensors()  # the first grows the heap
        inside = faults_of_ten_tensors()
    after = faults_of_ten_tensors()
    assert inside * 10 < outside and inside * 10 < after  # and glibc's defaults are back afterwards


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the heap's settings are glibc's")
def test_a_nested_heap_kept_leaves_the_outer_one_in_force():
    outside = faults_of_ten_tensors()
    with heap_kept():
        with heap_kept():  # a run's evaluation within a notebook's training, say
            faults_of_ten_tensors()
        still_kept = faults_of_ten_tensors()
    assert still_kept * 10 < outside
