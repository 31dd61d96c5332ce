"""How many runs train at once, and where: on CPUs, one run per core at most, the cores split
between them; on CUDA GPUs, as many runs per GPU as fit its free memory at one run's measured
peak, spread over every visible GPU, with MPS where its daemon runs (else two per GPU, and how to
start it), and a few CPU threads each. `--jobs` and `--threads` override. `place` is pure: the
launcher gives it the machine's figures (a test gives it made-up ones)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

HEADROOM = 0.9  # of a GPU's free memory, planned for: the rest absorbs the allocator's fragmentation
CONTEXT_MB = 500  # each process's CUDA context and cuDNN workspace, beside its tensors
# Without MPS, processes on one GPU take turns (time-slicing): beyond two, each adds a context and
# little speed. With MPS their kernels run side by side (measured on an H200: 16 seed runs at
# once gave 2,288 steps/s with MPS, 803 without).
WITHOUT_MPS = 2
MOST_THREADS_PER_GPU_RUN = 4  # a GPU run's host work is its Python loop and the test's batches


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    free_mb: float
    total_mb: float


@dataclass(frozen=True)
class Placement:
    """Runs at once, CPU threads each, the GPU of each concurrent slot (empty on CPUs), and why."""

    jobs: int
    threads: int
    gpus: tuple[int, ...]
    why: str


def visible_gpus() -> list[Gpu]:
    """The CUDA GPUs this process sees, with their free memory now (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(Gpu(i, torch.cuda.get_device_name(i), free / 2**20, total / 2**20))
    return out


def mps_running() -> bool:
    """Whether NVIDIA's MPS control daemon is up: its control pipe exists."""
    return (Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")) / "control").exists()


def place(todo: int, cores: int, gpus: list[Gpu], peak_mb: float | None = None, mps: bool = False, jobs: int = 0,
          threads: int = 0, node_cores: int | None = None, where: str = "local processes") -> Placement:
    """Where `todo` runs go. On CPUs (`where`: local processes, or a Ray cluster of `cores` whose
    largest node has `node_cores`), never more runs than cores, the cores split between them.
    `peak_mb`: one run's measured peak GPU memory (None: not measured yet, so one run per GPU, to
    measure it)."""
    todo = max(todo, 1)
    if not gpus:
        at_once = max(1, min(jobs or todo, cores))  # two trainings on one core are many times slower than in turn
        each = threads or max(1, min(cores // at_once, node_cores or cores))
        return Placement(at_once, each, (), f"{min(at_once, todo)} at a time on {where}, {each} thread{'s' * (each > 1)} each")
    if peak_mb is None:
        fit, memory = 1, "no run of these settings has a measured peak GPU memory yet: one per GPU until one has"
    else:
        fit = max(1, min(math.floor(g.free_mb * HEADROOM / (peak_mb + CONTEXT_MB)) for g in gpus))
        least = min(gpus, key=lambda g: g.free_mb)
        memory = (f"{fit} fit in {least.free_mb / 1024:.0f} GB free at a measured peak of {peak_mb:.0f} MB a run "
                  f"(+{CONTEXT_MB} MB context, {HEADROOM:.0%} of the free memory)")
    per_gpu = fit if mps else min(fit, WITHOUT_MPS)
    if mps:
        sharing = "MPS is running, so they run side by side"
    else:
        sharing = (f"MPS is not running, so at most {WITHOUT_MPS} share a GPU by time-slicing; start it "
                   f"(nvidia-cuda-mps-control -d) and run the same command for up to {fit}" if fit > WITHOUT_MPS
                   else "MPS is not running")
    at_once = jobs or min(todo, per_gpu * len(gpus), cores)  # each run's host loop needs a core
    each = threads or max(1, min(MOST_THREADS_PER_GPU_RUN, cores // at_once))
    slots = tuple(gpus[i % len(gpus)].index for i in range(at_once))  # round-robin: the GPUs fill evenly
    names = ", ".join(sorted({g.name for g in gpus}))
    why = (f"{at_once} at a time on {len(gpus)} GPU{'s' * (len(gpus) > 1)} ({names}), {each} CPU thread"
           f"{'s' * (each > 1)} each: {memory}; {sharing}" + ("; --jobs given" if jobs else ""))
    return Placement(at_once, each, slots, why)
