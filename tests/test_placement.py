"""How many runs at once, and where: one per core on CPUs; on GPUs from free memory and a run's
measured peak, with MPS or without, over several GPUs; the plan line says what it chose. The
GPUs here are made up: the figures a CUDA machine would report."""

import json

import pytest

from regulab import sweeps
from regulab.placement import CONTEXT_MB, HEADROOM, WITHOUT_MPS, Gpu, place

GB = 1024
SIXTEEN = [Gpu(0, "NVIDIA T4-class 16 GB", 15.5 * GB, 16 * GB)]
EIGHTY = [Gpu(0, "NVIDIA H100 80GB HBM3", 79 * GB, 80 * GB)]
PEAK = 1300  # MB: one seed run at batch 32 (a made-up measurement, of the size such runs have)


def test_on_cpus_one_run_per_core_and_the_cores_split():
    assert place(10, 2, []) == place(10, 2, [], jobs=0)
    p = place(10, 2, [])
    assert (p.jobs, p.threads, p.gpus) == (2, 1, ()) and p.why == "2 at a time on local processes, 1 thread each"
    assert (place(1, 8, []).jobs, place(1, 8, []).threads) == (1, 8)
    assert place(27, 64, [], node_cores=16, where="Ray").threads == 2  # the cores split, within a node's


@pytest.mark.parametrize("gpus, mps, jobs, threads", [
    (SIXTEEN, True, 7, 2),    # floor(15.5 GB x 0.9 / (1,300 + 500) MB) = 7 runs on the 16 GB GPU
    (SIXTEEN, False, WITHOUT_MPS, 4),
    (EIGHTY, True, 16, 1),    # 40 would fit: one per core of the 16 is the limit
    (EIGHTY, False, WITHOUT_MPS, 4),
])
def test_a_16_core_machine_with_one_gpu(gpus, mps, jobs, threads):
    p = place(27, 16, gpus, PEAK, mps)
    assert (p.jobs, p.threads, p.gpus) == (jobs, threads, (0,) * jobs)
    fit = int(gpus[0].free_mb * HEADROOM // (PEAK + CONTEXT_MB))
    assert f"{fit} fit in" in p.why and f"measured peak of {PEAK} MB" in p.why
    assert ("MPS is running" in p.why) == mps
    if not mps:
        assert f"start it (nvidia-cuda-mps-control -d) and run the same command for up to {fit}" in p.why


def test_runs_spread_over_several_gpus_and_jobs_overrides():
    two = [Gpu(0, "A", 40 * GB, 40 * GB), Gpu(1, "A", 20 * GB, 40 * GB)]  # the fuller GPU decides the fit
    p = place(30, 32, two, PEAK, mps=True)
    assert p.jobs == 2 * int(20 * GB * HEADROOM // (PEAK + CONTEXT_MB)) and p.gpus[:4] == (0, 1, 0, 1)
    assert place(30, 32, two, PEAK, mps=True, jobs=3).gpus == (0, 1, 0)
    unmeasured = place(30, 32, two, None, mps=True)
    assert unmeasured.jobs == 2 and "no run of these settings has a measured peak" in unmeasured.why


def test_a_sweep_measures_one_run_per_gpu_then_fills_the_gpu(cifar_sample, tmp_path, monkeypatch):
    """With no peak measured, the first run goes alone on the one GPU; its peak then decides."""
    monkeypatch.setattr(sweeps, "visible_gpus", lambda: SIXTEEN)
    monkeypatch.setattr(sweeps, "mps_running", lambda: True)
    monkeypatch.setattr(sweeps, "usable_cores", lambda: 16)
    batches = []

    def fake_launch(jobs, at_once, threads, ray, here, retries, log, gpus=()):
        batches.append((len(jobs), at_once, threads, gpus))
        for job in jobs:  # as if each trained on the GPU and measured its peak
            job.out.mkdir(parents=True, exist_ok=True)
            (job.out / "metrics.json").write_text(json.dumps({"peak_gpu_memory_mb": PEAK, "test_acc": 0.5}))
        return []

    monkeypatch.setattr(sweeps, "launch", fake_launch)
    lines = []
    sweeps.sweep(["seed-noreg"], tmp_path / "s", seeds=8, overrides={"data": str(cifar_sample)}, log=lines.append)
    assert batches == [(1, 1, 4, (0,)), (7, 7, 2, (0,) * 7)]
    assert "no run of these settings has a measured peak GPU memory yet" in lines[0]
    assert "7 at a time on 1 GPU (NVIDIA T4-class 16 GB), 2 CPU threads each" in lines[1]
    assert lines[1].startswith("1 group x 8 seeds: 8 runs, 1 already finished;")
