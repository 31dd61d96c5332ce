"""Shared fixtures: a private cache folder, and small archives in the python-version layout."""

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from regulab.data import BATCH_DIR, IMAGES_PER_BATCH, TEST_BATCH, TRAIN_BATCHES, load_mini
from regulab.runtime import usable_cores

# The real archive, only where the environment names it; tests that need it skip otherwise.
FULL_DATA = os.environ.get("REGULAB_DATA")
needs_full_data = pytest.mark.skipif(
    not (FULL_DATA and Path(FULL_DATA).exists()),
    reason="set REGULAB_DATA to the real cifar-10-python.tar.gz to run this test",
)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: a worker per core this process may use, at most four (each holds its own torch);
    one where the system cannot pin a process to cores (macOS), as the workers would oversubscribe."""
    return min(usable_cores(), 4) if hasattr(os, "sched_setaffinity") else 1


def pytest_configure(config):
    """Give each test worker cores of its own. Trainings take the cores they may run on
    (regulab.runtime.usable_cores), so workers never oversubscribe the machine, which makes
    OpenMP threads spin for descheduled partners and run many times slower."""
    worker = getattr(config, "workerinput", None)
    if worker is not None and hasattr(os, "sched_setaffinity"):
        index, count = int(worker["workerid"].removeprefix("gw")), worker["workercount"]
        cores = sorted(os.sched_getaffinity(0))
        mine = set(cores[index % len(cores)::count])  # with more workers than cores, some share one
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's cache and data settings."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("REGULAB_DATA", raising=False)


def synthetic_batch(index: int) -> dict:
    """A batch like the official ones; image i of the whole set has the value i % 251 in pixel 0
    and label (i * 7) % 10, so order and labels can be checked after loading."""
    first = index * IMAGES_PER_BATCH
    ids = np.arange(first, first + IMAGES_PER_BATCH)
    data = np.zeros((IMAGES_PER_BATCH, 3072), np.uint8)
    data[:, 0] = ids % 251
    data[:, 1024] = 200  # green plane
    return {b"batch_label": b"synthetic", b"labels": [int(i * 7 % 10) for i in ids],
            b"data": data, b"filenames": [b"x.png"] * IMAGES_PER_BATCH}


def batch_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=2)


def write_archive(path: Path, members: dict[str, bytes], extra=()) -> Path:
    """A .tar.gz with the given files under cifar-10-batches-py/, plus raw TarInfo extras."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        for info, payload in extra:
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)
    return path


@pytest.fixture(scope="session")
def batch_files() -> dict[str, bytes]:
    names = (*TRAIN_BATCHES, TEST_BATCH)
    return {name: batch_bytes(synthetic_batch(i)) for i, name in enumerate(names)}


@pytest.fixture(scope="session")
def synthetic_archive(tmp_path_factory, batch_files) -> Path:
    """A complete synthetic archive (60,000 mostly-black images), built once per session."""
    return write_archive(tmp_path_factory.mktemp("archive") / "cifar-10-python.tar.gz", batch_files)


# --- folders of images ------------------------------------------------------------------------

def write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture(scope="session")
def cifar_sample(tmp_path_factory) -> Path:
    """A folder of real CIFAR-10 images from the bundled subset, 30 per class to train on (210 train
    and 90 validation after the seed's split) and 15 per class to test: the real network at its
    real size, a tenth of the bundled subset's cost. For tests of what happens around a training
    (checkpoints, signals, trackers, sweeps), where the number of images changes nothing."""
    root, mini = tmp_path_factory.mktemp("cifar-sample"), load_mini()
    for split, x, y, per_class in (("train", mini.x_train, mini.y_train, 30), ("test", mini.x_test, mini.y_test, 15)):
        for label, name in enumerate(mini.classes):
            for i in np.flatnonzero(y == label)[:per_class]:
                write(root / split / name / f"{i:05d}.png", x[i].transpose(1, 2, 0))
    return root


def colour_folder(root, classes=("blue", "green", "red"), per_class=10, size=12, split=""):
    """Each class a noisy square of its own colour, numbered files."""
    rng = np.random.default_rng(len(split))
    for c, name in enumerate(classes):
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            image[..., 2 - c] += 180
            write(root / split / name / f"{i:03d}.png", image)
    return root
