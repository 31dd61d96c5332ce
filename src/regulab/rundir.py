"""A run folder: config, history, metrics and weights, each written atomically.

Every file is written to a temporary name, flushed to disk and renamed over the old one, so a
process killed at any moment leaves either the previous version or the new one, never half.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from regulab.config import Config
from regulab.errors import DamagedFile, RegulabError
from regulab.files import atomic_write

# What may differ when a run is resumed: where it runs and logs, not what it computes. Not its
# length: the schedules (cosine, one-cycle, lookahead's ramp) are laid out over it from the start.
RESUMABLE = {"device", "precision", "threads", "eval_batch_size", "tensorboard", "mlflow"}
CONFIG, CONFIG_TOML = "config.json", "config.toml"  # the record resume reads; the file a person repeats runs from
HISTORY_CSV, HISTORY_JSON, METRICS = "history.csv", "history.json", "metrics.json"
BEST_WEIGHTS, LAST_WEIGHTS, CHECKPOINT, CURVES = "best.pt", "last.pt", "checkpoint.pt", "curves.png"
# Where a run from before regulab recorded machines trained, as far as is known (its study, its CPU
# or GPU, and the evidence): written beside its files afterwards (scripts/provenance.py), read by pairing.
PROVENANCE = "provenance.json"
CHECKSUM = ".sha256"  # beside each weights and checkpoint file: its SHA-256 (and the one before it)
WEIGHTS_FIGURE = "weights.png"  # the kernels' norms per epoch
# Per test image, in the test set's order: the label, the predicted class, the probability of the
# true class and of the predicted one. Enough to recompute accuracy, NLL and ECE on any resample of
# the test images (the paired bootstrap), at about 100 KB a run.
TEST_PREDICTIONS = "test_predictions.npz"


def _lock_holder(path: Path) -> str:
    """'pid N' of the process holding a flock on `path`, from the kernel's table of locks."""
    try:
        inode, locks = path.stat().st_ino, Path("/proc/locks").read_text().splitlines()
    except OSError:
        return "pid unknown"
    for line in locks:  # "1: FLOCK  ADVISORY  WRITE 12345 08:01:67890 0 EOF"
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return f"pid {fields[4]}"
    return "pid unknown"


def matching_state(state, model: torch.nn.Module, source: Path) -> dict:
    """`state` if it is a state_dict with exactly the model's tensor names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = None
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise RegulabError(f"{source} holds weights for a different model; use the run folder it was trained in")
    return state


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    @classmethod
    def create(cls, path: str | os.PathLike, overwrite: bool = False) -> "RunDir":
        """The folder for a new run, made if need be and held by this process (`lock`)."""
        run = cls(path)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegulabError(f"cannot create {run.path} ({exc.strerror}); choose another --out") from None
        if not os.access(run.path, os.W_OK):
            raise RegulabError(f"{run.path} is not writable; choose another --out")
        run.lock()
        if run.finished() and not overwrite:
            raise RegulabError(f"{run.path} already holds a finished run; pass --overwrite or choose another --out")
        return run

    def lock(self) -> "RunDir":
        """Hold the folder for this process until it ends (or `unlock`): a second training,
        resume or sweep on it is refused, naming the holder. An advisory lock on the folder
        itself, which the kernel releases with the process, so even a kill -9 leaves no stale
        lock behind, and no lock file is left in the folder."""
        try:
            handle = self._flock(wait=False)
        except OSError as exc:
            raise RegulabError(f"cannot open {self.path} ({exc.strerror}); pass a run folder") from None
        if handle is None:
            raise RegulabError(f"{self.path} is in use by another regulab process ({_lock_holder(self.path)}); wait for "
                               "it to end, or choose another folder")
        self._lock = handle
        return self

    def holder(self) -> str | None:
        """'pid N' of another process that holds the folder (a training in it), or None."""
        return None if self._take_lock(wait=False) else _lock_holder(self.path)

    def wait_until_free(self) -> None:
        """Block until no other process holds the folder; this one does not hold it on return."""
        self._take_lock(wait=True)

    def _take_lock(self, wait: bool) -> bool:
        """Take the folder's lock and let it go at once: False if another process holds it and
        `wait` is False. A folder not made yet is free."""
        try:
            handle = self._flock(wait)
        except OSError:
            return True
        if handle is None:
            return False
        os.close(handle)  # which lets the lock go
        return True

    def _flock(self, wait: bool) -> int | None:
        """An open handle on the folder that holds its lock; None if another process holds it
        and `wait` is False. OSError if the folder cannot be opened."""
        handle = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            return None
        return handle

    def unlock(self) -> None:
        if getattr(self, "_lock", None) is not None:
            os.close(self._lock)
            self._lock = None

    def finished(self) -> bool:
        return (self.path / METRICS).is_file()

    def require_started(self) -> None:
        """A one-line answer for a folder that is no run folder, or where no training ever started."""
        if not self.path.is_dir():
            raise RegulabError(f"{self.path} is not a folder; pass a run folder that `regulab train` wrote")
        if not (self.path / CONFIG).is_file():
            raise RegulabError(f"{self.path} holds no regulab run: no training ever started there (no {CONFIG}); "
                               f"start one with: regulab train --out {self.path}")

    def write_json(self, name: str, obj) -> None:
        atomic_write(self.path / name, (json.dumps(obj, indent=2) + "\n").encode())

    def read_json(self, name: str):
        file = self.path / name
        try:
            return json.loads(file.read_text())
        except FileNotFoundError:
            raise RegulabError(f"{file} is missing; is {self.path} a regulab run folder?") from None
        except (OSError, ValueError) as exc:
            raise RegulabError(f"{file} is unreadable ({exc}); re-run the training") from None

    def read_config(self) -> Config:
        """The run's settings; fields added to regulab since the run was made take their defaults."""
        self.require_started()
        try:
            return Config(**self.read_json(CONFIG)).validate()
        except TypeError as exc:
            raise RegulabError(f"{self.path / CONFIG} is not a regulab config ({exc}); start a new run") from None

    def resumed_config(self, overrides: dict) -> Config:
        """The run's own settings, with those of `overrides` that a resume may change."""
        fixed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE | {"out"})
        if fixed == ["epochs"]:
            raise RegulabError(f"--epochs cannot change when resuming: the run's schedule is laid out over its length "
                               f"from the start; to train longer, start a new run from its weights: regulab train "
                               f"--init-from {self.path} --epochs N")
        if fixed:
            raise RegulabError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; start a new run to change it")
        saved = self.read_config()
        return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if v is not None},
                                   out=str(self.path)).validate()

    def write_history(self, rows: list[dict]) -> None:
        self.write_json(HISTORY_JSON, rows)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.path / HISTORY_CSV, text.getvalue().encode())

    def write_arrays(self, name: str, **arrays) -> None:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write(self.path / name, buffer.getvalue())

    def read_arrays(self, name: str) -> dict:
        """The arrays of an .npz the run wrote; no pickled objects are read."""
        file = self.path / name
        try:
            with np.load(file, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except FileNotFoundError:
            raise RegulabError(f"{file} is missing; the run was trained before regulab kept test predictions") from None
        except (OSError, ValueError) as exc:
            raise RegulabError(f"{file} is unreadable ({exc}); re-run the training") from None

    def save(self, name: str, obj) -> None:
        """`obj` in NAME (torch.save), with its SHA-256 in NAME.sha256. The checksum is written
        first and keeps the one before it, so a crash between the two writes leaves the old file
        matching the "previous" checksum: nothing a crash leaves is taken for damage."""
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        data = buffer.getvalue()
        sums = self.path / f"{name}{CHECKSUM}"
        earlier = self._checksums(name)
        atomic_write(sums, json.dumps({"sha256": hashlib.sha256(data).hexdigest(),
                                       "previous": earlier["sha256"] if earlier else None}).encode())
        atomic_write(self.path / name, data)

    def _checksums(self, name: str) -> dict | None:
        """NAME.sha256, where the run wrote one (runs from before regulab wrote checksums have none)."""
        try:
            return json.loads((self.path / f"{name}{CHECKSUM}").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            raise DamagedFile(f"{self.path / name}{CHECKSUM} is unreadable, so {name} cannot be checked",
                              self.path / name) from None

    def load(self, name: str):
        """A saved object, checked against the checksum written with it (DamagedFile where it no
        longer matches), read with weights_only so a crafted file cannot run code."""
        file = self.path / name
        if not file.is_file():
            raise RegulabError(f"{file} is missing; is {self.path} a regulab run folder?")
        data = file.read_bytes()
        sums = self._checksums(name)
        if sums is not None and hashlib.sha256(data).hexdigest() not in (sums["sha256"], sums["previous"]):
            raise DamagedFile(f"{file} has changed since regulab wrote it ({len(data):,} bytes that do not match the "
                              f"SHA-256 written with it): it is damaged, and was not loaded", file)
        try:
            with warnings.catch_warnings():  # a damaged file makes torch warn before it fails: one line is enough
                warnings.simplefilter("ignore")
                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds for a bad file; all mean the same here
            # weights_only names the GLOBAL it refused; anything else is a damaged file.
            if "GLOBAL" in str(exc):
                raise RegulabError(f"cannot load {file}: it holds code or objects that are not plain tensors; use a "
                                   "checkpoint that regulab wrote, or train again") from None
            raise DamagedFile(f"cannot load {file}: it is corrupt or truncated", file) from None

    def load_weights(self, name: str, model: torch.nn.Module) -> dict:
        """A state_dict from the folder, checked against the model it is meant for."""
        return matching_state(self.load(name), model, self.path / name)

