"""The data: CIFAR-10, CIFAR-100 or a folder of your own images; found, read safely, cached,
then split and normalized as the seed does.

What `--data` may be:
  - a python-version CIFAR-10 or CIFAR-100 archive (`.tar.gz`) or its extracted folder; the two
    are told apart by their files. CIFAR-100 has `--labels fine` (100 classes) or `coarse` (20);
  - a folder of class folders of images (see `regulab.folders`);
  - `cifar10-mini` (the subset bundled with the package), or `cifar10` / `cifar100`: the archive in
    the cache folder, else a download from the official URL, checked against the official md5.
Without `--data`: $REGULAB_DATA, read the same way; else CIFAR-10 from the cache folder
($XDG_CACHE_HOME/regulab, else ~/.cache/regulab): the archive a download left there, else the
arrays of the archive parsed most recently; else a download.
Whatever the source, the decoded uint8 arrays are cached so that later runs start in a second.
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

from regulab import folders
from regulab.errors import RegulabError
from regulab.files import cache_dir

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MINI = "cifar10-mini"
ENV_VAR = "REGULAB_DATA"
ARRAYS = "<arrays>"  # what a run trained on arrays given in Python records as its data
CIFAR_SIZE = 32
IMAGES_PER_BATCH = 10_000


@dataclass(frozen=True)
class CifarKind:
    """What tells one python-version CIFAR archive from another, and where it is published."""

    name: str
    folder: str                 # the folder inside the archive
    train_files: tuple[str, ...]
    test_file: str
    url: str
    md5: str

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file) + (("meta",) if self.name == "cifar100" else ())


CIFAR10 = CifarKind("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
                    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR100 = CifarKind("cifar100", "cifar-100-python", ("train",), "test",
                     "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85")
KINDS = {kind.name: kind for kind in (CIFAR10, CIFAR100)}
# Names the tests and scripts use for CIFAR-10's layout.
BATCH_DIR, TRAIN_BATCHES, TEST_BATCH = CIFAR10.folder, CIFAR10.train_files, CIFAR10.test_file
ARCHIVE_NAME, OFFICIAL_URL, OFFICIAL_MD5 = CIFAR10.archive, CIFAR10.url, CIFAR10.md5


@dataclass
class ImageData:
    """Raw images as uint8 (N, 3, S, S), labels as int64 (N,), in the source's order; the class
    names; and what the loader decided on the user's behalf (`notes`, printed by every command)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    classes: tuple[str, ...] = CLASSES
    notes: tuple[str, ...] = ()
    found: folders.FolderImages | None = None  # a folder's sizes, modes and skipped files, for `regulab data`
    train_files: list[str] | None = None       # a folder's file of each image, below the folder
    test_files: list[str] | None = None

    @property
    def image_size(self) -> int:
        return self.x_train.shape[-1]


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


def _unpickle(raw: bytes, name: str, kind: str) -> dict:
    """One pickled file of a CIFAR archive, as a dict, through the allow-listed unpickler."""
    try:
        _check_memo_indices(raw)
        with warnings.catch_warnings():  # a garbled dtype makes numpy warn before it fails
            warnings.simplefilter("ignore")
            content = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise RegulabError(f"{name} is not a plain {kind} file ({exc}); use an official copy of the archive") from None
    except Exception as exc:  # truncated or garbled pickles fail in many ways
        raise RegulabError(f"{name} is corrupt ({type(exc).__name__}); re-download the archive") from None
    if not isinstance(content, dict):
        raise RegulabError(f"{name} holds a {type(content).__name__}, not a {kind} file; use an official copy of the archive")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in content.items()}


def _images_and_labels(content: dict, name: str, images: int, label_key: str, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch holds `images` 32x32 RGB images and as many labels in 0..classes-1."""
    data, labels = content.get("data"), content.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (images, 3072):
        raise RegulabError(f"{name} does not hold {images:,} uint8 images of 3,072 values; re-download the archive")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise RegulabError(f"{name} has labels that are not integers; re-download the archive") from None
    if labels.shape != (images,) or labels.min() < 0 or labels.max() >= classes:
        raise RegulabError(f"{name} does not hold {images:,} labels in 0-{classes - 1}; re-download the archive")
    return data.reshape(-1, 3, CIFAR_SIZE, CIFAR_SIZE), labels


def _unpickle_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR-10 batch file: 10,000 images with labels 0-9."""
    return _images_and_labels(_unpickle(raw, name, "CIFAR-10 batch"), name, IMAGES_PER_BATCH, "labels", 10)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse the whole archive if any member could escape or alias the extraction folder."""
    name = member.name
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or (len(name) > 1 and name[1] == ":"):
        raise RegulabError(f"{archive} has a member with an unsafe path ({name!r}); use an official copy of the archive")
    if not (member.isfile() or member.isdir()):
        raise RegulabError(f"{archive} has a link or special file ({name!r}); use an official copy of the archive")


def _read_tar(path: Path) -> dict[str, dict[str, bytes]]:
    """The files of either CIFAR layout, by kind, straight from the archive in one streaming pass;
    nothing touches disk."""
    wanted = {f"{kind.folder}/{f}": (kind.name, f) for kind in KINDS.values() for f in kind.files}
    files: dict[str, dict[str, bytes]] = {name: {} for name in KINDS}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                _check_member(member, path)
                if member.isfile() and member.name in wanted:
                    kind, name = wanted[member.name]
                    files[kind][name] = tar.extractfile(member).read()
    except PermissionError:
        raise RegulabError(f"cannot read {path} (permission denied); check its permissions") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise RegulabError(f"{path} is truncated or corrupt ({exc or type(exc).__name__}); re-download it") from None
    return files


def _read_folder(path: Path) -> dict[str, dict[str, bytes]]:
    files = {}
    for kind in KINDS.values():
        folder = path / kind.folder if (path / kind.folder).is_dir() else path
        files[kind.name] = {f.name: f.read_bytes() for f in (folder / b for b in kind.files) if f.is_file()}
    return files


def read_archive(path: str | os.PathLike, labels: str = "fine") -> ImageData:
    """Parse a python-version CIFAR-10 or CIFAR-100 archive (.tar.gz or extracted folder) and
    validate it; CIFAR-100's `labels` are its 100 fine or 20 coarse classes."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RegulabError(f"no CIFAR data at {path}; pass --data with the path of cifar-10-python.tar.gz, "
                           "cifar-100-python.tar.gz or an extracted folder")
    found = _read_folder(path) if path.is_dir() else _read_tar(path)
    kind = max(KINDS.values(), key=lambda k: len(found[k.name]))  # the layout with the most of its files present
    files = found[kind.name]
    missing = [f for f in kind.files if f not in files]
    if missing:
        what = "a complete python-version CIFAR-10 or CIFAR-100 archive" if not files else \
            f"a complete python-version {kind.name.upper().replace('CIFAR', 'CIFAR-')} archive"
        raise RegulabError(f"{path} lacks {', '.join(missing)}; it is not {what}")
    if kind is CIFAR10:
        if labels != "fine":
            raise RegulabError(f"--labels {labels} applies to CIFAR-100 only; CIFAR-10 has one set of 10 classes")
        train = [_unpickle_batch(files[b], b) for b in CIFAR10.train_files]
        x_test, y_test = _unpickle_batch(files[CIFAR10.test_file], CIFAR10.test_file)
        return ImageData(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]),
                         x_test, y_test, source=str(path))
    meta = _unpickle(files["meta"], "meta", "CIFAR-100 meta")
    names = meta.get(f"{labels}_label_names")
    if not isinstance(names, list) or not all(isinstance(n, bytes) for n in names):
        raise RegulabError(f"meta lacks the {labels} class names; re-download the archive")
    classes = tuple(n.decode("utf-8", "replace") for n in names)
    split = {}
    for name, images in (("train", 50_000), ("test", 10_000)):
        content = _unpickle(files[name], name, "CIFAR-100")
        split[name] = _images_and_labels(content, name, images, f"{labels}_labels", len(classes))
    return ImageData(*split["train"], *split["test"], source=str(path), classes=classes)


# ---------------------------------------------------------------------------------------------
# The cache and the download

def _cache_file(source: Path, labels: str) -> Path:
    # Keyed by where the archive is and its size and age, so a replaced archive is parsed again.
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    # CIFAR-10 keeps its old names (no label set): an earlier version's cache stays valid.
    return cache_dir() / (f"cifar10-{key}.npz" if labels == "fine" else f"cifar-{labels}-{key}.npz")


def _load_cached(cache: Path) -> ImageData | None:
    try:
        with np.load(cache, allow_pickle=False) as z:
            classes = tuple(z["classes"]) if "classes" in z else CLASSES
            return ImageData(**{k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}, source=str(cache),
                             classes=classes)
    except Exception:
        return None  # an unreadable cache is only a lost shortcut: parse the archive again


def _save_cached(data: ImageData, cache: Path) -> None:
    folders.save_npz(cache, x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test,
                     classes=np.array(data.classes, str))


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


def load_data(data: str | os.PathLike | None = None, *, image_size: int = CIFAR_SIZE, labels: str = "fine",
              test_fraction: float = 0.2, split_seed: int = 777, skip_bad: bool = False,
              progress: bool = True) -> ImageData:
    """The images `data` names (see the module docstring), with a train/test split: the source's,
    or for a folder without one, a stratified `test_fraction` of each class drawn by `split_seed`."""
    data = data if data is not None else os.environ.get(ENV_VAR) or None
    if data == ARRAYS:
        raise RegulabError("this run trained on arrays given in Python; pass the data again (regulab.train(data=(x, y)) "
                           "in Python, or --data with a folder or archive of the same classes)")
    source = Path(data).expanduser() if data is not None and str(data) not in (MINI, *KINDS) else None
    if source is not None and folders.is_image_folder(source):
        return _from_folder(source, image_size, test_fraction, split_seed, skip_bad)
    if image_size != CIFAR_SIZE:
        raise RegulabError(f"--image-size {image_size}: CIFAR's images are 32x32 and are used as they are; "
                           "--image-size applies to folders of images")
    if str(data) == MINI:
        if labels != "fine":
            raise RegulabError(f"--labels {labels} applies to CIFAR-100 only; {MINI} has CIFAR-10's 10 classes")
        return load_mini()
    if source is not None and not source.exists():
        raise RegulabError(f"no data at {source}; pass --data (or set {ENV_VAR}) to a CIFAR-10 or CIFAR-100 archive "
                           f"(.tar.gz or its folder), a folder of class folders of images, or {MINI}")
    if source is None:
        kind = KINDS[str(data)] if data is not None else CIFAR10
        source = cache_dir() / kind.archive
        if not source.exists():
            if kind is CIFAR10:  # the arrays an earlier --data or REGULAB_DATA run parsed, newest first
                for parsed in sorted(cache_dir().glob("cifar10-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True):
                    if (cached := _load_cached(parsed)) is not None:
                        return cached
            download(kind.url, source, kind.md5, progress)
    cache = _cache_file(source, labels)
    cached = _load_cached(cache) if cache.exists() else None
    if cached is not None:
        cached.source = str(source)
        return cached
    parsed = read_archive(source, labels)
    _save_cached(parsed, cache)
    return parsed


def _from_folder(root: Path, image_size: int, test_fraction: float, split_seed: int, skip_bad: bool) -> ImageData:
    found = folders.load_folder(root, image_size, cache_dir() / "folders", skip_bad)
    x, y, notes = found.pixels, found.labels, list(found.notes)
    if (found.split < 0).any():  # no split of the user's own: hold one out, the same for every run
        in_test = np.zeros(len(y), bool)
        in_test[stratified_subset(y, test_fraction, split_seed)] = True
        notes.append(f"no {root}/train and {root}/test folders: held out {test_fraction:.0%} of each class as the test set "
                     f"(stratified, split seed {split_seed}): {(~in_test).sum():,} train, {in_test.sum():,} test images")
    else:
        in_test = found.split == 1
    for i, name in enumerate(found.classes):
        for where, mask in (("training", ~in_test), ("test", in_test)):
            if not (y[mask] == i).any():
                raise RegulabError(f"class {name!r} has no {where} images ({(y == i).sum()} in all); add images to "
                                   f"{root}/{name}" + (" or lower --test-fraction" if where == "training" else ""))
    files = np.array(found.files, dtype=object)
    return ImageData(x[~in_test], y[~in_test], x[in_test], y[in_test], source=str(root), classes=found.classes,
                     notes=tuple(notes), found=found, train_files=list(files[~in_test]), test_files=list(files[in_test]))


def from_arrays(x_train, y_train, x_test=None, y_test=None, test_fraction: float = 0.2,
                split_seed: int = 777) -> ImageData:
    """Images given as arrays, as Keras's `cifar10.load_data()` returns them: uint8 images NHWC
    (or NCHW), integer labels of shape (N,) or (N, 1). Checked as a folder is; without a test set,
    a stratified `test_fraction` of each class is held out by `split_seed`, as for a folder."""
    def images(x, name: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.uint8:
            raise RegulabError(f"{name} is {x.dtype}; pass uint8 images (0-255) as keras.datasets.cifar10.load_data() "
                               "returns them (for floats in [0, 1]: (x * 255).round().astype('uint8'))")
        if x.ndim != 4 or 3 not in (x.shape[1], x.shape[3]):
            raise RegulabError(f"{name} has shape {x.shape}; pass colour images as (N, H, W, 3) or (N, 3, H, W)")
        x = x if x.shape[1] == 3 and x.shape[3] != 3 else x.transpose(0, 3, 1, 2)
        if x.shape[2] != x.shape[3] or not 8 <= x.shape[2] <= 512:
            raise RegulabError(f"{name} holds {x.shape[2]}x{x.shape[3]} images; pass square images of 8 to 512 pixels")
        return np.ascontiguousarray(x)

    def labels(y, name: str, n: int) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or len(y) != n:
            raise RegulabError(f"{name} has shape {y.shape} and type {y.dtype}; pass {n:,} integer class indices, "
                               "shape (N,) or (N, 1)")
        if len(y) and y.min() < 0:
            raise RegulabError(f"{name} holds the label {y.min()}; class indices start at 0")
        return y.astype(np.int64)

    x, y = images(x_train, "the training images"), None
    y = labels(y_train, "the training labels", len(x))
    notes = []
    if x_test is None:
        in_test = np.zeros(len(y), bool)
        in_test[stratified_subset(y, test_fraction, split_seed)] = True
        notes.append(f"no test arrays: held out {test_fraction:.0%} of each class as the test set (stratified, split "
                     f"seed {split_seed}): {(~in_test).sum():,} train, {in_test.sum():,} test images")
        x, y, x_test, y_test = x[~in_test], y[~in_test], x[in_test], y[in_test]
    else:
        x_test = images(x_test, "the test images")
        y_test = labels(y_test, "the test labels", len(x_test))
        if x_test.shape[1:] != x.shape[1:]:
            raise RegulabError(f"the test images are {x_test.shape[2]}x{x_test.shape[3]}, the training images "
                               f"{x.shape[2]}x{x.shape[3]}; pass images of one size")
    count = int(max(y.max(initial=0), y_test.max(initial=0))) + 1
    classes = CLASSES if count == len(CLASSES) and x.shape[2] == CIFAR_SIZE else tuple(str(i) for i in range(count))
    for i, name in enumerate(classes):
        for where, labels_of in (("training", y), ("test", y_test)):
            if not (labels_of == i).any():
                raise RegulabError(f"class {name} has no {where} images; every class index up to {count - 1} needs some")
    return ImageData(x, y, x_test, y_test, source=f"{ARRAYS}: {len(y) + len(y_test):,} images given in Python",
                     classes=classes, notes=tuple(notes))


def load_for(cfg, data: str | None = None, progress: bool = True) -> ImageData:
    """The images a run's settings (a `Config`) name; `data` replaces its `data`."""
    return load_data(data or cfg.data, image_size=cfg.image_size, labels=cfg.labels, test_fraction=cfg.test_fraction,
                     split_seed=cfg.split_seed, skip_bad=cfg.skip_bad, progress=progress)


# ---------------------------------------------------------------------------------------------
# The bundled subset: real CIFAR-10 images stored as lossless WebP grids (scripts/make_mini.py)

def load_mini() -> ImageData:
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
    return ImageData(x_train, y_train, x_test, y_test, source=MINI)


def image_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """Tile uint8 (N, 3, S, S) images row by row into one (H, W, 3) picture, padding with black."""
    rows, size = math.ceil(len(images) / cols), images.shape[-1]
    padded = np.zeros((rows * cols, 3, size, size), np.uint8)
    padded[: len(images)] = images
    return padded.reshape(rows, cols, 3, size, size).transpose(0, 3, 1, 4, 2).reshape(rows * size, cols * size, 3)


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
    """uint8 (N, 3, S, S) to float32, (x - mean) / std per channel."""
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
    classes: tuple[str, ...] = CLASSES
    notes: tuple[str, ...] = ()
    noisy: torch.Tensor | None = None  # with label noise: the training examples whose label was replaced

    @property
    def image_size(self) -> int:
        return self.train[0].shape[-1]


def noisy_labels(labels: np.ndarray, num_classes: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric label noise: exactly round(share * N) labels replaced by another class, chosen
    uniformly among the wrong ones; the labels and the mask of those replaced. One order of the
    examples and one wrong class per example are drawn from `seed` whatever the share, so a
    smaller share's replaced labels are among a larger one's, with the same wrong classes."""
    rng = np.random.default_rng([seed, 0x4E015E])
    order = rng.permutation(len(labels))
    offsets = rng.integers(1, num_classes, len(labels))  # never 0: never the true class
    replaced = np.zeros(len(labels), bool)
    replaced[order[:round(share * len(labels))]] = True
    return np.where(replaced, (labels + offsets) % num_classes, labels), replaced


def prepare(raw: ImageData, val_fraction: float = 0.3, split_seed: int = 777, train_fraction: float = 1.0,
            label_noise: float = 0.0) -> Splits:
    """The seed's pipeline: statistics over all training images, then the train/validation split;
    then, for a data-size study, a stratified `train_fraction` of the training part (the
    validation and test sets, and the normalization, stay as they are); then, for a
    memorization study, `label_noise` of the training labels replaced (`noisy_labels`)."""
    mean, std = channel_stats(raw.x_train)
    x_all, y_all = normalize(raw.x_train, mean, std), torch.from_numpy(raw.y_train)
    test = (normalize(raw.x_test, mean, std), torch.from_numpy(raw.y_test))
    if val_fraction == 0:
        train_idx, val = np.arange(len(y_all)), None
    else:
        train_idx, val_idx = split_indices(len(y_all), val_fraction, split_seed)
        val = (x_all[val_idx], y_all[val_idx])
    train_idx = torch.from_numpy(train_idx[stratified_subset(raw.y_train[train_idx], train_fraction, split_seed)])
    y_train, noisy, notes = y_all[train_idx], None, raw.notes
    if label_noise:
        given, replaced = noisy_labels(y_train.numpy(), len(raw.classes), label_noise, split_seed)
        y_train, noisy = torch.from_numpy(given), torch.from_numpy(np.flatnonzero(replaced))
        notes += (f"label noise: {len(noisy):,} of {len(given):,} training labels ({label_noise:.0%}) replaced by a "
                  f"wrong class, drawn by split seed {split_seed}; validation and test labels are clean",)
    return Splits((x_all[train_idx], y_train), val, test, mean, std, raw.source, raw.classes, notes, noisy)


def splits_for(cfg) -> Splits:
    """The normalized train, validation and test tensors of a run's settings (a `Config`)."""
    return prepare(load_for(cfg), cfg.val_fraction, split_seed_of(cfg), cfg.train_fraction, cfg.label_noise)


def split_seed_of(cfg) -> int:
    """The seed that draws a run's train/validation split: its own seed under --split-by-seed."""
    return cfg.seed if cfg.split_by_seed else cfg.split_seed
