import hashlib
import io
import json
import os
import pickle
import tarfile
from importlib import resources

import numpy as np
import pytest
import torch

from regulab import data as data_lib
from regulab.errors import RegulabError
from tests.conftest import FULL_DATA, batch_bytes, needs_full_data, synthetic_batch, write_archive

# --- reading archives ---------------------------------------------------------------------------

def check_synthetic(raw: data_lib.ImageData):
    assert raw.x_train.shape == (50_000, 3, 32, 32) and raw.x_test.shape == (10_000, 3, 32, 32)
    assert raw.x_train.dtype == np.uint8 and raw.y_train.dtype == np.int64
    ids = np.arange(50_000)
    assert np.array_equal(raw.x_train[:, 0, 0, 0], ids % 251)  # official order kept
    assert np.array_equal(raw.y_train, ids * 7 % 10)
    assert (raw.x_train[:, 1, 0, 0] == 200).all()  # the planar layout maps to channels
    assert np.array_equal(raw.y_test, np.arange(50_000, 60_000) * 7 % 10)


def test_reads_tar_gz(synthetic_archive):
    check_synthetic(data_lib.read_archive(synthetic_archive))


def test_reads_extracted_folder(synthetic_archive, tmp_path):
    with tarfile.open(synthetic_archive) as tar:
        tar.extractall(tmp_path, filter="data")
    check_synthetic(data_lib.read_archive(tmp_path))  # the parent of cifar-10-batches-py/
    check_synthetic(data_lib.read_archive(tmp_path / data_lib.BATCH_DIR))


class RunsCode:
    """A pickle payload that would create a file if it were ever unpickled naively."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_pickle_that_runs_code(batch_files, tmp_path):
    marker = tmp_path / "pwned"
    evil = dict(batch_files, data_batch_3=pickle.dumps({b"data": RunsCode(marker)}, protocol=2))
    archive = write_archive(tmp_path / "evil.tar.gz", evil)
    with pytest.raises(RegulabError, match="data_batch_3 is not a plain CIFAR-10 batch.*refusing to load"):
        data_lib.read_archive(archive)
    assert not marker.exists()


def test_refuses_a_memo_index_that_would_allocate_gigabytes():
    # Found by the fuzzer: LONG_BINPUT 0x1337f1de made the unpickler size its memo to match.
    crafted = b"\x80\x02}q\x00r\xde\xf17\x13."
    with pytest.raises(RegulabError, match="refusing memo index 322433502"):
        data_lib._unpickle_batch(crafted, "data_batch_1")


def test_refuses_other_codecs_inside_pickles():
    crafted = b"\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00abcq\x01X\x05\x00\x00\x00rot13q\x02\x86q\x03Rq\x04."
    with pytest.raises(RegulabError, match="refusing codec"):
        data_lib._unpickle_batch(crafted, "data_batch_1")


@pytest.mark.parametrize("name, kind", [
    ("/etc/evil", tarfile.REGTYPE),
    ("cifar-10-batches-py/../../evil", tarfile.REGTYPE),
    ("cifar-10-batches-py/link", tarfile.SYMTYPE),
    ("cifar-10-batches-py/hard", tarfile.LNKTYPE),
])
def test_refuses_unsafe_tar_members(batch_files, tmp_path, name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind != tarfile.REGTYPE else ""
    payload = b"x" if kind == tarfile.REGTYPE else None
    info.size = len(payload or b"")
    archive = write_archive(tmp_path / "unsafe.tar.gz", batch_files, extra=[(info, payload)])
    with pytest.raises(RegulabError, match="unsafe path|link or special file"):
        data_lib.read_archive(archive)


def test_missing_archive_names_the_fix(tmp_path):
    with pytest.raises(RegulabError, match="no data at .*pass --data"):
        data_lib.load_data(tmp_path / "nope.tar.gz")


def test_truncated_archive(synthetic_archive, tmp_path):
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(synthetic_archive.read_bytes()[: synthetic_archive.stat().st_size // 2])
    with pytest.raises(RegulabError, match="truncated or corrupt.*re-download"):
        data_lib.read_archive(cut)


def test_garbage_archive(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(os.urandom(5000))
    with pytest.raises(RegulabError, match="truncated or corrupt"):
        data_lib.read_archive(junk)


def test_archive_missing_a_batch(batch_files, tmp_path):
    partial = {k: v for k, v in batch_files.items() if k != "test_batch"}
    with pytest.raises(RegulabError, match="lacks test_batch"):
        data_lib.read_archive(write_archive(tmp_path / "partial.tar.gz", partial))


@pytest.mark.parametrize("change, message", [
    (lambda b: b.update({b"data": b[b"data"][:5000]}), "does not hold 10,000 uint8 images"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.float32)}), "does not hold 10,000 uint8 images"),
    (lambda b: b.update({b"labels": [11] * 10_000}), "labels in 0-9"),
    (lambda b: b.update({b"labels": [b"x"] * 10_000}), "not integers"),
])
def test_validates_batch_contents(change, message):
    batch = synthetic_batch(0)
    change(batch)
    with pytest.raises(RegulabError, match=message):
        data_lib._unpickle_batch(batch_bytes(batch), "data_batch_1")


def test_truncated_pickle_is_reported_as_corrupt():
    with pytest.raises(RegulabError, match="data_batch_1 is corrupt"):
        data_lib._unpickle_batch(batch_bytes(synthetic_batch(0))[:1000], "data_batch_1")


# --- finding, caching, downloading ------------------------------------------------------------

def test_parses_once_then_reads_the_cache(synthetic_archive, monkeypatch):
    first = data_lib.load_data(synthetic_archive)
    assert len(list(data_lib.cache_dir().glob("cifar10-*.npz"))) == 1

    def fail(_):
        raise AssertionError("the archive was parsed again")
    monkeypatch.setattr(data_lib, "read_archive", fail)
    again = data_lib.load_data(synthetic_archive)
    assert np.array_equal(first.x_train, again.x_train) and np.array_equal(first.y_test, again.y_test)


def test_corrupt_cache_is_rebuilt(synthetic_archive):
    data_lib.load_data(synthetic_archive)
    (cache,) = data_lib.cache_dir().glob("cifar10-*.npz")
    cache.write_bytes(b"garbage")
    check_synthetic(data_lib.load_data(synthetic_archive))


def test_a_run_without_data_finds_the_arrays_an_earlier_run_parsed(synthetic_archive, monkeypatch):
    data_lib.load_data(synthetic_archive)

    def no_download(*_):
        raise AssertionError("tried to download although the cache holds parsed arrays")
    monkeypatch.setattr(data_lib, "download", no_download)
    found = data_lib.load_data()
    check_synthetic(found)
    assert found.source.startswith(str(data_lib.cache_dir()))  # the output says where it came from


def test_environment_variable_is_used(synthetic_archive, monkeypatch):
    monkeypatch.setenv(data_lib.ENV_VAR, str(synthetic_archive))
    assert data_lib.load_data().source == str(synthetic_archive)


def test_download_checks_md5_and_renames_only_when_verified(synthetic_archive, tmp_path):
    url = synthetic_archive.as_uri()
    good = hashlib.md5(synthetic_archive.read_bytes()).hexdigest()
    dest = tmp_path / "dl" / "cifar-10-python.tar.gz"
    with pytest.raises(RegulabError, match="failed its md5 check"):
        data_lib.download(url, dest, "0" * 32, progress=False)
    assert list(dest.parent.iterdir()) == []  # neither the file nor a partial one is left
    data_lib.download(url, dest, good, progress=False)
    assert dest.read_bytes() == synthetic_archive.read_bytes()


def test_failed_download_names_the_fix(tmp_path):
    with pytest.raises(RegulabError, match="cannot download .*pass --data"):
        data_lib.download((tmp_path / "absent").as_uri(), tmp_path / "x.tar.gz", "0" * 32, progress=False)


# --- the bundled subset -------------------------------------------------------------------------

def test_mini_subset_is_small_stratified_and_real():
    assets = resources.files("regulab") / "assets"
    size = sum(f.stat().st_size for f in (assets / n for n in os.listdir(assets)))
    assert size <= 10 * 2**20
    mini = data_lib.load_data(data_lib.MINI)
    assert mini.x_train.shape == (4000, 3, 32, 32) and mini.x_test.shape == (1000, 3, 32, 32)
    assert (np.bincount(mini.y_train) == 400).all() and (np.bincount(mini.y_test) == 100).all()
    # Real photographs, not noise: neighbouring pixels agree far more than chance.
    x = mini.x_train.astype(np.float32)
    assert np.corrcoef(x[..., :-1].ravel(), x[..., 1:].ravel())[0, 1] > 0.8


# --- split and normalization ----------------------------------------------------------------------

@pytest.mark.parametrize("n", [50_000, 4_000, 7])
def test_split_matches_scikit_learn(n):
    from sklearn.model_selection import train_test_split

    ids = np.arange(n)
    sk_train, sk_val = train_test_split(ids, test_size=0.3, random_state=777)
    ours_train, ours_val = data_lib.split_indices(n, 0.3, 777)
    assert np.array_equal(ours_train, sk_train) and np.array_equal(ours_val, sk_val)


def test_statistics_and_normalization_match_the_seed():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (500, 3, 32, 32), dtype=np.uint8)
    nhwc = x.transpose(0, 2, 3, 1)
    mean, std = data_lib.channel_stats(x)
    assert np.allclose(mean, np.mean(nhwc, axis=(0, 1, 2)), rtol=0, atol=1e-9)
    assert np.allclose(std, np.std(nhwc, axis=(0, 1, 2)), rtol=0, atol=1e-9)
    seed_way = ((nhwc - np.mean(nhwc, axis=(0, 1, 2))) / np.std(nhwc, axis=(0, 1, 2))).transpose(0, 3, 1, 2)
    assert np.allclose(data_lib.normalize(x, mean, std).numpy(), seed_way, atol=1e-5)


def test_prepare_splits_after_normalizing_over_all_training_images():
    mini = data_lib.load_mini()
    splits = data_lib.prepare(mini, 0.3, 777)
    assert len(splits.train[1]) == 2800 and len(splits.val[1]) == 1200 and len(splits.test[1]) == 1000
    everything = torch.cat([splits.train[0], splits.val[0]])
    assert everything.mean(dim=(0, 2, 3)).abs().max() < 1e-4  # stats came from train + validation
    train_idx, _ = data_lib.split_indices(4000, 0.3, 777)
    assert torch.equal(splits.train[1], torch.from_numpy(mini.y_train[train_idx]))
    no_val = data_lib.prepare(mini, 0.0)
    assert no_val.val is None and len(no_val.train[1]) == 4000


def test_split_by_seed_draws_seed_k_s_split_and_keeps_the_test_set():
    from regulab.config import make_config
    from regulab.study import run_key

    mini = data_lib.load_mini()
    shared = data_lib.splits_for(make_config("seed", data="cifar10-mini", seed=3))
    own = data_lib.splits_for(make_config("seed", data="cifar10-mini", seed=3, split_by_seed=True))
    _, val_3 = data_lib.split_indices(4000, 0.3, 3)
    assert torch.equal(shared.val[1], data_lib.prepare(mini, 0.3, 777).val[1])  # off: the notebook's split for every seed
    assert torch.equal(own.val[1], torch.from_numpy(mini.y_train[val_3]))
    assert not torch.equal(own.val[0], shared.val[0]) and torch.equal(own.test[1], shared.test[1])
    # A setting off by default leaves the names of earlier runs as they were; on, it names other runs.
    assert run_key(make_config("seed", seed=3)) != run_key(make_config("seed", seed=3, split_by_seed=True))


# --- the real data, where the environment provides it -----------------------------------------------

@needs_full_data
def test_full_archive_matches_published_content_hashes():
    raw = data_lib.load_data(FULL_DATA)
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()  # noqa: E731
    assert digest(raw.x_train.reshape(50_000, 3072)) == "9d5c2eddadb0deff02c14c350c0385aab7b1d5ff1edfeb4997c8dc8644960111"
    assert digest(raw.x_test.reshape(10_000, 3072)) == "177777c33ba79825320efa646ad04a94bdc3c80e4ebe3bd21724f8cdfd4b9d56"
    assert digest(raw.y_train.astype(np.uint8)) == "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253"
    mean, std = data_lib.channel_stats(raw.x_train)
    assert np.allclose(mean, (125.3069, 122.9504, 113.8654), atol=1e-3)
    assert np.allclose(std, (62.9932, 62.0887, 66.7049), atol=1e-3)
    # The bundled subset is exactly the images it says it took from the full set.
    meta = json.loads((resources.files("regulab") / "assets" / "cifar10-mini.json").read_text())
    mini = data_lib.load_mini()
    assert np.array_equal(raw.x_train[meta["train"]["official_indices"]], mini.x_train)
    assert np.array_equal(raw.x_test[meta["test"]["official_indices"]], mini.x_test)


# --- CIFAR-100 ------------------------------------------------------------------------------------

def cifar100_archive(path, corrupt_meta=False):
    """The official layout: cifar-100-python/{train,test,meta}; image i has fine label i % 100
    and coarse label i % 20, and its pixel 0 holds i % 251."""
    def split(first, n):
        ids = np.arange(first, first + n)
        data = np.zeros((n, 3072), np.uint8)
        data[:, 0] = ids % 251
        return {b"data": data, b"fine_labels": [int(i % 100) for i in ids], b"coarse_labels": [int(i % 20) for i in ids],
                b"filenames": [b"x.png"] * n, b"batch_label": b"synthetic"}
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    if corrupt_meta:
        meta = {b"fine_label_names": 3}
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, obj in (("train", split(0, 50_000)), ("test", split(50_000, 10_000)), ("meta", meta)):
            payload = pickle.dumps(obj, protocol=2)
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.mark.slow
def test_cifar100_fine_and_coarse_labels_with_their_names(tmp_path):
    archive = cifar100_archive(tmp_path / "cifar-100-python.tar.gz")
    fine = data_lib.load_data(archive)
    assert fine.classes == tuple(f"fine{i}" for i in range(100))
    assert fine.x_train.shape == (50_000, 3, 32, 32) and fine.x_test.shape == (10_000, 3, 32, 32)
    assert np.array_equal(fine.y_train, np.arange(50_000) % 100)
    assert np.array_equal(fine.x_train[:, 0, 0, 0], np.arange(50_000) % 251)
    coarse = data_lib.load_data(archive, labels="coarse")
    assert coarse.classes == tuple(f"coarse{i}" for i in range(20))
    assert np.array_equal(coarse.y_test, np.arange(50_000, 60_000) % 20)
    assert data_lib.load_data(archive, labels="coarse").classes == coarse.classes  # and again from the cache
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    assert data_lib.read_archive(tmp_path / "x", "fine").classes == fine.classes  # the extracted folder too


def test_cifar100_problems_are_one_line(tmp_path, synthetic_archive):
    with pytest.raises(RegulabError, match="meta lacks the fine class names"):
        data_lib.read_archive(cifar100_archive(tmp_path / "bad.tar.gz", corrupt_meta=True))
    with pytest.raises(RegulabError, match="--labels coarse applies to CIFAR-100 only"):
        data_lib.read_archive(synthetic_archive, labels="coarse")
    with pytest.raises(RegulabError, match="--image-size 64: CIFAR's images are 32x32"):
        data_lib.load_data(synthetic_archive, image_size=64)


def test_cifar100_is_downloaded_from_its_official_address(monkeypatch):
    fetched = []
    monkeypatch.setattr(data_lib, "download", lambda url, dest, md5, progress: fetched.append((url, md5)) or
                        (_ for _ in ()).throw(RegulabError("offline")))
    with pytest.raises(RegulabError, match="offline"):
        data_lib.load_data("cifar100")
    assert fetched == [("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")]
