"""CIFAR-10: find it, read it safely, cache it, then split and normalize it as the seed does.

Where the data comes from, first match wins:
  1. the `data` argument (`--data`): a python-version `.tar.gz`, an extracted
     `cifar-10-batches-py/` folder, or `cifar10-mini` (the subset bundled with the package);
  2. the REGULAB_DATA environment variable, read the same way;
  3. the cache folder ($XDG_CACHE_HOME/regulab, else ~/.cache/regulab): the archive a download
     left there, else the arrays of the archive parsed most recently through 1 or 2;
  4. a download from the official URL, checked against the official md5.
Whatever the source, the parsed uint8 arrays are cached so that later runs start in a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import pickletools
import tarfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from regulab.errors import RegulabError

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
MINI = "cifar10-mini"
ENV_VAR = "REGULAB_DATA"
IMAGES_PER_BATCH = 10_000


@dataclass
class Cifar10:
    """Raw images as uint8 (N, 3, 32, 32), labels as int64 (N,), in the official order."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


# ---------------------------------------------------------------------------------------------
# Reading the python-version archive without trusting it

class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches and refuses everything else, so a crafted file cannot run code.

    The official batches (Python 2 pickles) name numpy's array reconstructor, ndarray and dtype;
    copies written by Python 3 also name _codecs.encode for their byte strings.
    """

    _NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"),
              ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in self._NUMPY:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            # numpy moved this function in 2.0; look it up where this numpy keeps it.
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def _latin1_encode(text, encoding="utf-8"):
    # Python 3 pickles store bytes as latin-1 text; no other codec has any business here.
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refusing codec {encoding!r}")
    return text.encode("latin1")


# A real batch memoizes about 30,000 objects. An index far beyond that would make the
# unpickler allocate its memo table to match: gigabytes from a few crafted bytes.
MAX_MEMO_INDEX = 1_000_000


def _check_memo_indices(raw: bytes) -> None:
    for op, arg, _ in pickletools.genops(raw):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and int(arg) > MAX_MEMO_INDEX:
            raise pickle.UnpicklingError(f"refusing memo index {arg}")


def _unpickle_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one batch file and check it holds 10,000 32x32 RGB images with labels 0-9."""
    try:
        _check_memo_indices(raw)
        with warnings.catch_warnings():  # a garbled dtype makes numpy warn before it fails
            warnings.simplefilter("ignore")
            batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise RegulabError(f"{name} is not a plain CIFAR-10 batch ({exc}); use an official copy of the archive") from None
    except Exception as exc:  # truncated or garbled pickles fail in many ways
        raise RegulabError(f"{name} is corrupt ({type(exc).__name__}); re-download the archive") from None
    if not isinstance(batch, dict):
        raise RegulabError(f"{name} holds a {type(batch).__name__}, not a CIFAR-10 batch; use an official copy of the archive")
    images, labels = batch.get(b"data", batch.get("data")), batch.get(b"labels", batch.get("labels"))
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != (IMAGES_PER_BATCH, 3072):
        raise RegulabError(f"{name} does not hold 10,000 uint8 images of 3,072 values; re-download the archive")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise RegulabError(f"{name} has labels that are not integers; re-download the archive") from None
    if labels.shape != (IMAGES_PER_BATCH,) or labels.min() < 0 or labels.max() > 9:
        raise RegulabError(f"{name} does not hold 10,000 labels in 0-9; re-download the archive")
    return images.reshape(-1, 3, 32, 32), labels


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse the whole archive if any member could escape or alias the extraction folder."""
    name = member.name
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or (len(name) > 1 and name[1] == ":"):
        raise RegulabError(f"{archive} has a member with an unsafe path ({name!r}); use an official copy of the archive")
    if not (member.isfile() or member.isdir()):
        raise RegulabError(f"{archive} has a link or special file ({name!r}); use an official copy of the archive")


def _read_tar(path: Path) -> dict[str, bytes]:
    """Read the batch files straight from the archive in one streaming pass; nothing touches disk."""
    wanted = {f"{BATCH_DIR}/{b}" for b in (*TRAIN_BATCHES, TEST_BATCH)}
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                _check_member(member, path)
                if member.isfile() and member.name in wanted:
                    files[Path(member.name).name] = tar.extractfile(member).read()
    except PermissionError:
        raise RegulabError(f"cannot read {path} (permission denied); check its permissions") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise RegulabError(f"{path} is truncated or corrupt ({exc or type(exc).__name__}); re-download it") from None
    return files


def _read_folder(path: Path) -> dict[str, bytes]:
    folder = path / BATCH_DIR if (path / BATCH_DIR).is_dir() else path
    return {f.name: f.read_bytes() for f in (folder / b for b in (*TRAIN_BATCHES, TEST_BATCH)) if f.is_file()}


def read_archive(path: str | os.PathLike) -> Cifar10:
    """Parse a python-version CIFAR-10 archive (.tar.gz or extracted folder) and validate it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RegulabError(f"no CIFAR-10 data at {path}; pass --data with the path of "
                           "cifar-10-python.tar.gz or its extracted folder")
    files = _read_folder(path) if path.is_dir() else _read_tar(path)
    missing = [b for b in (*TRAIN_BATCHES, TEST_BATCH) if b not in files]
    if missing:
        raise RegulabError(f"{path} lacks {', '.join(missing)}; it is not a complete python-version CIFAR-10 archive")
    train = [_unpickle_batch(files[b], b) for b in TRAIN_BATCHES]
    x_test, y_test = _unpickle_batch(files[TEST_BATCH], TEST_BATCH)
    return Cifar10(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                   x_test, y_test, source=str(path))


# ---------------------------------------------------------------------------------------------
# The cache and the download

def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "regulab"


def _cache_file(source: Path) -> Path:
    # Keyed by where the archive is and its size and age, so a replaced archive is parsed again.
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / f"cifar10-{key}.npz"


def _load_cached(cache: Path) -> Cifar10 | None:
    try:
        with np.load(cache, allow_pickle=False) as z:
            return Cifar10(**{k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}, source=str(cache))
    except Exception:
        return None  # an unreadable cache is only a lost shortcut: parse the archive again


def _save_cached(data: Cifar10, cache: Path) -> None:
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
        os.replace(tmp, cache)
    except OSError:
        tmp.unlink(missing_ok=True)  # the cache is only a shortcut: a full or read-only disk is no error


def download(url: str, dest: Path, md5: str, progress: bool = True) -> Path:
    """Fetch url into dest through a temp file that is renamed only once complete and verified."""
    from tqdm.auto import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5()
    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}",
                      disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RegulabError(f"cannot download {url} ({exc}); download it by hand and pass --data PATH") from None
    if digest.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise RegulabError(f"download from {url} failed its md5 check (got {digest.hexdigest()}, expected {md5}); "
                           "try again, or download it by hand and pass --data PATH")
    os.replace(tmp, dest)
    return dest


def load_cifar10(data: str | os.PathLike | None = None, progress: bool = True) -> Cifar10:
    """Find CIFAR-10 (see the module docstring for the order), parse it once, cache the arrays."""
    data = data if data is not None else os.environ.get(ENV_VAR) or None
    if str(data) == MINI:
        return load_mini()
    if data is not None:
        source = Path(data).expanduser()
        if not source.exists():
            raise RegulabError(f"no CIFAR-10 data at {source}; pass --data (or set {ENV_VAR}) to "
                               f"cifar-10-python.tar.gz, its extracted folder, or {MINI}")
    else:
        source = cache_dir() / ARCHIVE_NAME
        if not source.exists():
            # The arrays an earlier --data or REGULAB_DATA run parsed, newest first, before any download.
            for parsed in sorted(cache_dir().glob("cifar10-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True):
                if (cached := _load_cached(parsed)) is not None:
                    return cached
            download(OFFICIAL_URL, source, OFFICIAL_MD5, progress)
    cache = _cache_file(source)
    cached = _load_cached(cache) if cache.exists() else None
    if cached is not None:
        cached.source = str(source)
        return cached
    parsed = read_archive(source)
    _save_cached(parsed, cache)
    return parsed


# ---------------------------------------------------------------------------------------------
# The bundled subset: real CIFAR-10 images stored as lossless WebP grids (scripts/make_mini.py)

def load_mini() -> Cifar10:
    assets = resources.files("regulab") / "assets"
    meta = json.loads((assets / "cifar10-mini.json").read_text())
    from PIL import Image

    def grid(split):
        with (assets / f"cifar10-mini-{split}.webp").open("rb") as f:
            pixels = np.asarray(Image.open(f).convert("RGB"))
        rows, cols = pixels.shape[0] // 32, pixels.shape[1] // 32
        images = pixels.reshape(rows, 32, cols, 32, 3).transpose(0, 2, 4, 1, 3).reshape(-1, 3, 32, 32)
        labels = np.asarray(meta[split]["labels"], dtype=np.int64)
        return np.ascontiguousarray(images[: len(labels)]), labels

    (x_train, y_train), (x_test, y_test) = grid("train"), grid("test")
    return Cifar10(x_train, y_train, x_test, y_test, source=MINI)


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """Tile uint8 (N, 3, 32, 32) images row by row into one (H, W, 3) picture, padding with black."""
    rows = math.ceil(len(images) / cols)
    padded = np.zeros((rows * cols, 3, 32, 32), np.uint8)
    padded[: len(images)] = images
    return padded.reshape(rows, cols, 3, 32, 32).transpose(0, 3, 1, 4, 2).reshape(rows * 32, cols * 32, 3)


# ---------------------------------------------------------------------------------------------
# Split and normalization, exactly as the seed

def split_indices(n: int, val_fraction: float = 0.3, seed: int = 777) -> tuple[np.ndarray, np.ndarray]:
    """Indices of sklearn's train_test_split(test_size=val_fraction, random_state=seed), numpy only.

    scikit-learn's ShuffleSplit draws one permutation from RandomState(seed) and takes the first
    ceil(val_fraction * n) as the held-out part, the rest (in permutation order) for training.
    """
    n_val = math.ceil(val_fraction * n)
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_val:], perm[:n_val]


def stratified_subset(labels: np.ndarray, fraction: float, seed: int = 777) -> np.ndarray:
    """Positions of `fraction` of each class's examples, in their original order.

    Each class's positions are shuffled once by `seed` and the first share taken, so every run
    with the same split seed trains on the same images, and a smaller fraction's subset lies
    inside every larger one's (10% inside 25% inside 50%): a data-size curve varies one thing.
    """
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.RandomState(seed)
    chosen = []
    for label in np.unique(labels):  # sorted, so the draws do not depend on the order classes appear
        members = np.flatnonzero(labels == label)
        chosen.append(members[rng.permutation(len(members))[: max(1, round(fraction * len(members)))]])
    return np.sort(np.concatenate(chosen))


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (ddof 0) in float64, as np.mean/np.std(x, axis=(0, 1, 2)) in the seed."""
    mean = tuple(float(x[:, c].mean(dtype=np.float64)) for c in range(3))
    std = tuple(float(x[:, c].std(dtype=np.float64)) for c in range(3))
    return mean, std


def normalize(x: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 (N, 3, 32, 32) to float32, (x - mean) / std per channel."""
    out = torch.from_numpy(x).float()
    out.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
    return out


@dataclass
class Splits:
    """Normalized tensors ready for training; `val` is None when nothing is held out."""

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor] | None
    test: tuple[torch.Tensor, torch.Tensor]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str


def prepare(raw: Cifar10, val_fraction: float = 0.3, split_seed: int = 777, train_fraction: float = 1.0) -> Splits:
    """The seed's pipeline: statistics over all training images, then the train/validation split;
    then, for a data-size study, a stratified `train_fraction` of the training part (the
    validation and test sets, and the normalization, stay as they are)."""
    mean, std = channel_stats(raw.x_train)
    x_all, y_all = normalize(raw.x_train, mean, std), torch.from_numpy(raw.y_train)
    test = (normalize(raw.x_test, mean, std), torch.from_numpy(raw.y_test))
    if val_fraction == 0:
        train_idx, val = np.arange(len(y_all)), None
    else:
        train_idx, val_idx = split_indices(len(y_all), val_fraction, split_seed)
        val = (x_all[val_idx], y_all[val_idx])
    train_idx = torch.from_numpy(train_idx[stratified_subset(raw.y_train[train_idx], train_fraction, split_seed)])
    return Splits((x_all[train_idx], y_all[train_idx]), val, test, mean, std, raw.source)
