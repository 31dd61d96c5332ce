"""Starting a sweep's runs and watching them: each run from its resolved settings, in this
process (a model registered in a notebook), as a local `regulab train --config` child, or on a
Ray cluster; a run killed by a signal, or lost with its Ray node, is started again from its
checkpoint (up to `retries` times); a failure names its cause; and one live progress line says
what is finished, running and left, with an ETA from the epoch times measured so far.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from regulab.config import Config, to_toml
from regulab.errors import RegulabError, TrainingStopped
from regulab.files import atomic_write
from regulab.rundir import CHECKPOINT, CONFIG_TOML, HISTORY_JSON, METRICS, RunDir
from regulab.runtime import usable_cores
from regulab.training import train

LOG = "train.log"
STOPPED = 130  # the exit status of a training stopped on request (Ctrl-C, SIGTERM): the sweep stops too


@dataclass
class Job:
    """One run to train: its settings, its folder, and what a person calls it."""

    cfg: Config
    out: Path
    name: str
    tries: int = 0
    started: float = 0.0  # when its first try began
    resumed: bool = False  # it began from an interrupted run's checkpoint
    elsewhere: bool = False  # another regulab process trained it after the sweep planned it

    def begin(self) -> None:
        """A try starts now."""
        self.tries += 1
        self.started = self.started or time.perf_counter()

    @property
    def resumable(self) -> bool:
        return (self.out / CHECKPOINT).is_file()


def run_training(out: str, threads: int, resume: bool, gpu: int | None = None) -> int:
    """A `regulab train` child for the run folder `out` (its settings in OUT/config.toml, written
    by the launcher, or its checkpoint with `resume`), output appended to OUT/train.log; its exit
    status, negative for a signal. Runs here, or in a Ray worker on whichever node Ray chose
    (hence plain arguments)."""
    start = ["--resume", out] if resume else ["--config", str(Path(out) / CONFIG_TOML), "--out", out]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu)} if gpu is not None else None  # `gpu`: the one it sees
    with open(Path(out) / LOG, "a") as logfile:
        return subprocess.run([sys.executable, "-m", "regulab", "train", *start, "--threads", str(threads)],
                              stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env).returncode


def train_here(job: Job, threads: int) -> int:
    """The same training in this process, its output appended to the run's train.log; an exit
    status as a child's would be."""
    with open(job.out / LOG, "a") as logfile, contextlib.redirect_stdout(logfile), contextlib.redirect_stderr(logfile):
        try:
            if job.resumable:
                train(RunDir(job.out).resumed_config({"threads": threads}), resume=True)
            else:
                train(dataclasses.replace(job.cfg, out=str(job.out), threads=threads))
            return 0
        except TrainingStopped as exc:
            print(f"regulab: {exc}", file=sys.stderr)
            return STOPPED
        except RegulabError as exc:
            print(f"regulab: error: {exc}", file=sys.stderr)
            return 1


def cause(returncode: int, out: Path) -> str:
    """Why a training ended badly, in words: the signal that killed it, or its exit status with the
    error it printed."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    lines = (out / LOG).read_text().strip().splitlines() if (out / LOG).is_file() else []
    said = next((line for line in reversed(lines) if line.startswith("regulab:")), None)
    return f"exit status {returncode}" + (f": {said}" if said else "")


class Progress:
    """One line on the runs of a sweep: finished, running (with their epochs) and left, and an ETA
    from the epoch times measured so far. On a terminal it is redrawn in place every few seconds;
    elsewhere (a log, a notebook) a line is printed every `every` seconds."""

    def __init__(self, jobs: list[Job], at_once: int, log, every: float | None = None):
        self.jobs, self.at_once, self.log = jobs, at_once, log
        self.tty = sys.stderr.isatty()
        self.every = every if every is not None else (2.0 if self.tty else 300.0)
        self.done: set[str] = set()
        self.running: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self.tty:
            print(file=sys.stderr)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            text = self.line()
            if self.tty:
                print(f"\r{text[:180]:<180}", end="", file=sys.stderr, flush=True)
            else:
                self.log(text)

    def line(self) -> str:
        epochs, seconds, left = [], [], 0.0
        for job in self.jobs:
            history = _history(job.out)
            seconds += [row["seconds"] for row in history]
            if job.name in self.running:
                epochs.append(f"{job.name} {len(history)}/{job.cfg.epochs}")
            if job.name not in self.done:
                left += job.cfg.epochs - len(history)
        pending = len(self.jobs) - len(self.done) - len(self.running)
        eta = ""
        if seconds:
            remaining = sum(seconds) / len(seconds) * left / max(1, min(self.at_once, len(self.jobs) - len(self.done)))
            eta = f"; ETA {_duration(remaining)} (at {sum(seconds) / len(seconds):.0f} s an epoch)"
        running = f" ({', '.join(epochs)})" if epochs else ""
        return f"runs: {len(self.done)} finished, {len(self.running)} running{running}, {pending} left{eta}"


def _history(out: Path) -> list[dict]:
    try:
        return json.loads((out / HISTORY_JSON).read_text())
    except (OSError, ValueError):
        return []


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def launch(jobs: list[Job], at_once: int, threads: int, ray: bool, here: bool, retries: int, log,
           gpus: tuple[int, ...] = ()) -> list[str]:
    """Train every job, `at_once` at a time, each with `threads` threads (local children: on the
    GPU of the slot it takes, where `gpus` names one per slot), and report each as it ends; the
    failures, each named with its cause. A run killed by a signal (or lost with its
    Ray node) is tried again from its checkpoint, at most `retries` times. A run stopped on
    request stops the sweep (TrainingStopped), its finished runs kept. A run that another
    regulab process is training (a second sweep on the same runs) is waited for, not trained
    twice (local runs; a Ray cluster's file system may not share locks)."""
    for job in jobs:
        job.out.mkdir(parents=True, exist_ok=True)
        job.resumed = job.resumable
        if not job.resumable:
            atomic_write(job.out / CONFIG_TOML, to_toml(job.cfg).encode())
    failures: list[str] = []
    lock = threading.Lock()

    def ended(job: Job, returncode: int, progress: Progress) -> bool:
        """Report the run; True when it should be tried again."""
        with lock:
            progress.running.discard(job.name)
            if returncode == 0:
                progress.done.add(job.name)
                m = RunDir(job.out).read_json(METRICS)
                val = f"best val_acc {m['best_val_acc']:.4f} at epoch {m['best_epoch']}, " if m["best_val_acc"] is not None \
                    else ""
                again = f", after {job.tries} tries" if job.tries > 1 else ""
                resumed = ", resumed" if job.resumed else ""
                how = "trained by another regulab process" if job.elsewhere else \
                    f"{time.perf_counter() - job.started:.0f}s{resumed}{again}"
                log(f"  {job.name}: {val}test_acc {m['test_acc']:.4f} ({how})")
                return False
            if returncode == STOPPED:
                raise TrainingStopped(f"stopped in {job.name}; run the same sweep again to continue it", run_dir=job.out)
            why = cause(returncode, job.out) if returncode is not None else "its Ray worker or node was lost"
            if (returncode is None or returncode < 0) and job.tries <= retries:
                log(f"  {job.name}: {why}; trying again from its checkpoint ({job.tries} of {retries} retries)")
                return True
            progress.done.add(job.name)
            failures.append(f"{job.name}: {why}")
            log(f"  {job.name}: FAILED: {why}")
            return False

    def trained_elsewhere(job: Job, progress: Progress) -> bool:
        """True when another regulab process (a second sweep on the same runs) has trained this
        run since the sweep planned it, after waiting for one that is training it now; the wait
        keeps one of this sweep's places while that process uses the cores. A run it left
        unfinished is resumed here."""
        run = RunDir(job.out)
        holder = run.holder()
        if holder is not None:
            log(f"  {job.name}: another regulab process is training it ({holder}); waiting for it")
            run.wait_until_free()
        if not run.finished():
            job.resumed = job.resumable
            return False
        job.elsewhere = True
        ended(job, 0, progress)
        return True

    with Progress(jobs, at_once, log) as progress:
        if ray:
            _launch_on_ray(jobs, threads, ended, progress)
        elif here:  # in the main thread, where a Ctrl-C (or a notebook's interrupt) reaches the training
            for job in jobs:
                while not trained_elsewhere(job, progress):
                    job.begin()
                    progress.running.add(job.name)
                    if not ended(job, train_here(job, threads), progress):
                        break
        else:
            slots: queue.SimpleQueue = queue.SimpleQueue()  # a GPU per concurrent run, taken and given back
            for gpu in gpus or (None,) * at_once:
                slots.put(gpu)

            def one(job: Job) -> None:
                while not trained_elsewhere(job, progress):
                    job.begin()
                    with lock:
                        progress.running.add(job.name)
                    gpu = slots.get()
                    try:
                        returncode = run_training(str(job.out), threads, job.resumable, gpu)
                    finally:
                        slots.put(gpu)
                    if not ended(job, returncode, progress):
                        return

            with ThreadPoolExecutor(max_workers=at_once) as pool:
                for future in [pool.submit(one, job) for job in jobs]:
                    future.result()
    return failures


def _launch_on_ray(jobs: list[Job], threads: int, ended, progress: Progress) -> None:
    import ray

    remote = ray.remote(num_cpus=threads)(run_training)

    def submit(job: Job):
        job.begin()
        progress.running.add(job.name)
        return remote.remote(str(job.out), threads, job.resumable)

    pending = {submit(job): job for job in jobs}
    while pending:  # report each run as it ends, as the local pool does
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            returncode = ray.get(done[0])
        except ray.exceptions.RayError:  # the worker or its node died under the run
            returncode = None
        if ended(job, returncode, progress):
            pending[submit(job)] = job


def join_ray(address: str) -> tuple[int, int, str]:
    """Start or join Ray, quietly; the cluster's CPUs, the most on one node, and a description."""
    try:
        import ray
    except ImportError:
        raise RegulabError("--ray needs Ray; install it: pip install 'regulab[ray]'") from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logging.getLogger("ray").setLevel(logging.ERROR)  # its notices (token authentication, usage stats) are not the user's
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            if address == "local":
                ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RegulabError(f"cannot reach a Ray cluster at {address!r} ({str(exc).splitlines()[0]}); "
                           "start one (`ray start --head`) or pass --ray local") from None
    nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    where = f"Ray ({address}: {len(nodes)} node{'s' * (len(nodes) > 1)}, {int(sum(nodes))} CPUs)"
    return int(sum(nodes)), int(max(nodes, default=1)), where
