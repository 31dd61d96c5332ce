"""Where and how to compute: the device, the precision, the share of the cores, and stopping
cleanly on a signal."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import os
import platform
import signal
import threading
import time
from pathlib import Path

import torch

from regulab.errors import RegulabError
from regulab.files import atomic_write, cache_dir


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (taskset, a container's cpuset, a
    pinned test worker), not every core the machine has."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RegulabError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        # fp32 means IEEE fp32 on a GPU as on a CPU: PyTorch lets cuDNN run fp32 convolutions in
        # TF32 (a 10-bit mantissa) by default on Ampere and later, so an "fp32" run would not be
        # one. bf16 runs are unaffected (autocast computes their convolutions in bf16).
        torch.backends.cudnn.conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The hardware by name (a CPU's model, a GPU's product), to quote beside every timing: this
    project's machines have changed CPU model under the same name, and speed with it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


def machine(device: torch.device) -> dict:
    """Where and with what a run trains: the CPU (its model name, vendor, family, model and
    stepping, and the instruction set PyTorch's kernels use), threads, the GPU's name and memory,
    CUDA and cuDNN, PyTorch and regulab (and regulab's commit where it runs from a checkout).
    Two runs form a pair only on the same machine: the CPU model's name alone does not tell a
    Zen 3 from a Zen 4 under a hypervisor, nor AMX from AVX-512."""
    from regulab import __version__

    info = _cpuinfo()
    record = {"cpu": device_name(torch.device("cpu")), "cpu_id": "/".join(info.get(k, "?") for k in (
                  "vendor_id", "cpu family", "model", "stepping")),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
              "gpu": None, "gpu_memory_gb": None, "cuda": torch.version.cuda, "cudnn": None,
              "torch": str(torch.__version__), "regulab": __version__, "commit": source_commit()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        record.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1),
                      cudnn=torch.backends.cudnn.version())
    return record


def machine_id(record: dict | None) -> str | None:
    """What must match for two runs to pair: the CPU (vendor/family/model/stepping and kernel
    set) on the CPU, the GPU's product on a GPU; None for a run that recorded no machine."""
    if not record:
        return None
    return record["gpu"] or f"{record['cpu']} [{record['cpu_id']}, {record['cpu_capability']}]"


def machine_of(metrics: dict, provenance: dict | None = None) -> str:
    """The machine a finished run trained on, as pairing compares it: each session's machine
    (`machines` in its metrics, in order: a run resumed elsewhere names both); for a run from
    before regulab recorded machines, what its provenance record (provenance.json) says; else
    its device, marked as not recorded."""
    sessions = metrics.get("machines")
    if sessions:
        return " then ".join(dict.fromkeys(machine_id(m) for m in sessions))
    if provenance and provenance.get("machine"):
        return provenance["machine"]
    return f"{metrics['device']} (machine not recorded)" if metrics.get("device") else "unrecorded"


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit regulab's source is at, where it runs from a checkout (pip install -e)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix work runs in hardware: AVX-512 BF16 or AMX on a CPU, Ampere+ on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(name: str, device: torch.device) -> tuple[str, str | None]:
    """The precision to train in, and a note for the user when the choice costs speed."""
    native = native_bf16(device)
    if name == "auto":
        name = "bf16" if native else "fp32"
        slower = f"no native bf16 on this {device.type}: training in fp32, about 2x slower than on a bf16 CPU"
        return name, None if native else slower
    if name == "bf16" and not native:
        return name, f"bf16 was asked for but this {device.type} has no native bf16: it will be emulated and slow"
    return name, None


# glibc's mallopt parameters and their defaults (malloc.h), to put back when a run ends.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEPT_BYTES = 2**30  # freed memory at the heap's top beyond this still goes back to the system
_heap_keepers, _heap_lock = 0, threading.Lock()  # the settings are the process's: the last to leave puts them back


@contextlib.contextmanager
def heap_kept():
    """Within it, memory a CPU step frees stays in the process for the next step's tensors.

    glibc serves each allocation over 32 MB from a fresh mapping and unmaps it when freed, and
    gives the heap's freed top back beyond 128 KB, so a step whose activations are that large
    faults in every 4 KB page of them again on every step: fast-net at batch 2,000 in bf16 on the
    2-core Xeon took 780,000 page faults and 1.5 s of kernel time in a 2.6 s step, and 1.7 s with
    the heap kept. Afterwards glibc's default limits return (its threshold for a fresh mapping,
    which adapts by default, then stays where it was) and the freed memory goes back to the system.
    Elsewhere than glibc (macOS, musl) it does nothing. Nested, or in two threads' trainings at
    once, the defaults return when the last one ends.
    """
    global _heap_keepers
    libc = _glibc()
    if libc is None:
        yield
        return
    with _heap_lock:
        _heap_keepers += 1
        if _heap_keepers == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, KEPT_BYTES)
    try:
        yield
    finally:
        with _heap_lock:
            _heap_keepers -= 1
            if _heap_keepers == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


@functools.cache
def _glibc():
    if platform.libc_ver()[0] != "glibc":
        return None
    return ctypes.CDLL(None)


class StopOnSignal:
    """Turn the first Ctrl-C or SIGTERM into a request to stop at the next step; a second one
    falls through to Python's default and ends the process at once."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = {s: signal.signal(s, self._request) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _request(self, signum, frame):
        self.signal = signal.Signals(signum).name
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


# ---------------------------------------------------------------------------------------------
# Sharing the cores between trainings

class CoreShare:
    """This process's entry in a registry of the regulab trainings running on this machine, and
    its share of the cores.

    Two trainings whose threads together outnumber the cores run many times slower than the two
    one after the other (OpenMP threads spin at barriers waiting for descheduled partners), so
    each training registers itself (a file named by its process id, under a lock, in the cache
    folder) and takes an equal share of the cores left by trainings with a fixed `--threads`.
    `adjust()` looks again every few seconds and resizes PyTorch's thread pool when trainings
    come or go. Entries of processes that have died are ignored and removed.
    """

    LOOK_EVERY = 5.0  # seconds between looks at the registry: cheap, and soon enough

    def __init__(self, fixed_threads: int = 0, cores: int | None = None, folder: Path | None = None):
        self.fixed, self.cores = fixed_threads, cores or usable_cores()
        self.folder = Path(folder) if folder else cache_dir() / "running"
        self.me = self.folder / f"{os.getpid()}.json"
        self.threads, self._looked = 0, 0.0

    def __enter__(self) -> "CoreShare":
        with self._locked():
            atomic_write(self.me, json.dumps({"threads": self.fixed}).encode())
        return self

    def __exit__(self, *exc) -> None:
        self.me.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _locked(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def others(self) -> list[int]:
        """The fixed thread counts of the other live trainings (0 for those that share)."""
        found = []
        with self._locked():
            for entry in self.folder.glob("*.json"):
                if entry == self.me:
                    continue
                try:
                    pid, threads = int(entry.stem), json.loads(entry.read_text())["threads"]
                    os.kill(pid, 0)  # raises if no such process: a training that died without cleaning up
                except ProcessLookupError:
                    entry.unlink(missing_ok=True)
                    continue
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # being written, or not ours to judge
                found.append(int(threads))
        return found

    def share(self) -> tuple[int, str]:
        """The threads this training should use now, and why."""
        if self.fixed:
            return self.fixed, f"{self.fixed} (--threads)"
        others = self.others()
        if not others:
            every = f"all {self.cores} cores" if self.cores > 1 else "the one core"
            return self.cores, f"{self.cores} ({every}; no other regulab training is running)"
        free = max(self.cores - sum(others), 1)
        sharing = 1 + sum(1 for t in others if t == 0)
        threads = max(free // sharing, 1)
        return threads, (f"{threads} of {self.cores} cores ({len(others)} other regulab training"
                         f"{'s' * (len(others) > 1)} running; --threads overrides)")

    def adjust(self, log=print) -> None:
        """Resize PyTorch's thread pool to this training's share, looking at most every LOOK_EVERY s."""
        now = time.monotonic()
        if now - self._looked < self.LOOK_EVERY:
            return
        self._looked = now
        threads, why = self.share()
        if threads != self.threads:
            torch.set_num_threads(threads)
            log(f"threads: {why}" if not self.threads else f"threads: now {why}")
            self.threads = threads
