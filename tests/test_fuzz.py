"""Fuzzing the loaders: whatever the bytes, the only failure allowed is a clear RegulabError.

CI runs a short pass; a long campaign is the same tests with more examples:
    REGULAB_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz.py
"""

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from regulab.data import BATCH_DIR, TEST_BATCH, TRAIN_BATCHES, _unpickle_batch, read_archive
from regulab.errors import RegulabError
from regulab.rundir import CHECKPOINT, RunDir
from regulab.training import TrainState

fuzz = settings(max_examples=int(os.environ.get("REGULAB_FUZZ_EXAMPLES", "120")), deadline=5000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

BATCH = pickle.dumps({b"batch_label": b"x", b"labels": [3, 7], b"data": np.arange(6144, dtype=np.uint8).reshape(2, 3072)},
                     protocol=2)


def tar_bytes() -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name in (*TRAIN_BATCHES, TEST_BATCH):
            info = tarfile.TarInfo(f"{BATCH_DIR}/{name}")
            info.size = len(BATCH)
            tar.addfile(info, io.BytesIO(BATCH))
    return raw.getvalue()


def checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "model": {"w": torch.ones(4, 3)}, "optimizer": {"state": {}, "param_groups": []},
                "shuffle_rng": torch.Generator().get_state(), "torch_rng": torch.get_rng_state(),
                "history": [{"epoch": 1, "loss": 1.0}], "best_score": 0.5, "best_epoch": 1}, buffer)
    return buffer.getvalue()


TAR, CHECKPOINT_BYTES = tar_bytes(), checkpoint_bytes()


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """The base with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["set", "insert", "delete", "cut"]))
        if action == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif action == "delete":
            del data[pos:pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


@fuzz
@given(st.one_of(mutated(BATCH), st.binary(max_size=512)))
def test_batch_unpickler(blob):
    try:
        _unpickle_batch(blob, "data_batch_1")
    except RegulabError:
        pass


@fuzz
@given(mutated(TAR), st.booleans())
def test_archive_reader(tmp_path, blob, compress):
    path = tmp_path / "fuzz.tar.gz"
    path.write_bytes(gzip.compress(blob, compresslevel=1) if compress else blob)
    try:
        read_archive(path)
    except RegulabError:
        pass


@fuzz
@given(mutated(CHECKPOINT_BYTES))
def test_checkpoint_loader(tmp_path, blob):
    (tmp_path / CHECKPOINT).write_bytes(blob)
    (tmp_path / "config.json").write_text("{}")  # a started run
    try:
        checkpoint = TrainState.read(RunDir(tmp_path))
    except RegulabError:
        return
    assert isinstance(checkpoint, dict)
