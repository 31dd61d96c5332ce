"""Your own images: a folder of class folders, decoded once, on every core, and cached as uint8.

Layouts (class names are the folder names, in sorted order):
  DATA/<class>/<image>                       the test split is held out by `data.load_data`
  DATA/train/<class>/... and DATA/test/<class>/...   the split is yours
Images may lie at any depth below their class folder. Every image is converted to RGB (grey
replicated to three channels; transparency composited on white, as a viewer shows it), turned
upright by its EXIF orientation, centre-cropped to a square and resized to SIZE x SIZE with a
Lanczos filter. Nothing here trusts the folder: a symlink that leads outside it is not followed,
an image whose header claims more pixels than Pillow's bomb limit is refused before it is
decoded, and a data set that would not fit in memory is refused before anything is decoded.

Within a split, images are ordered by their path below the class folder, then by class, so a
data set written out as <class>/<number>.png loads in its original order.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from regulab.errors import RegulabError
from regulab.runtime import usable_cores

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
                  ".pnm", ".ico")
SPLITS = ("train", "test")
CACHE_FORMAT = 1        # bump when the decoding changes, so old caches are not reused
PARALLEL_FROM = 500     # fewer images decode faster in this process than a pool starts
MEMORY_FACTOR = 9       # bytes held per uint8 pixel value: the uint8 images, their float32 copy, the split copies


class BadImage(Exception):
    """A file that is not an image Pillow reads in full; the message says why."""


# ---------------------------------------------------------------------------------------------
# One image

def to_rgb_square(image, size: int) -> np.ndarray:
    """A PIL image as uint8 (3, size, size): upright, RGB, its centred square resized with Lanczos.

    The one conversion for training images and for the images `predict` is given."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit and float grey: scale to 8 bits
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F" and (image.mode != "I" or values.max() > 255):
            values = values / 257
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    image = image.convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    # box= crops and resizes in one pass; an image already SIZE x SIZE comes back unchanged.
    image = image.resize((size, size), Image.Resampling.LANCZOS, box=(left, top, left + side, top + side))
    return np.asarray(image).transpose(2, 0, 1).copy()


def read_image(path: str | os.PathLike, size: int) -> tuple[np.ndarray, tuple[int, int], str]:
    """An image file as `to_rgb_square` makes it, with its original (width, height) and mode.
    Raises BadImage for anything that is not a whole image, or that claims a bomb's size."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size check below decides
            with Image.open(path) as image:
                width, height = image.size
                if width * height > Image.MAX_IMAGE_PIXELS:
                    raise BadImage(f"its header claims {width}x{height} pixels, over the {Image.MAX_IMAGE_PIXELS:,}-pixel "
                                   "limit (a decompression bomb?)")
                mode = image.mode
                if image.format == "JPEG":
                    image.draft("RGB", (size, size))  # let the decoder downscale by up to 8x: much faster
                return to_rgb_square(image, size), (width, height), mode
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage(f"{exc} (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise BadImage("not an image format Pillow reads") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or garbled files fail in several ways
        raise BadImage(f"truncated or corrupt: {exc or type(exc).__name__}") from None


def _read_many(paths: list[str], size: int) -> list[tuple]:
    """Worker: each path's (pixels, size, mode), or (None, reason, None) for a bad file."""
    out = []
    for path in paths:
        try:
            out.append(read_image(path, size))
        except BadImage as exc:
            out.append((None, str(exc), None))
    return out


# ---------------------------------------------------------------------------------------------
# The folder

@dataclass
class FolderImages:
    """Every image of a class-folder tree, decoded: pixels uint8 (N, 3, S, S), labels, and
    `split` 0 (train) or 1 (test) per image, or -1 everywhere when the layout gives no split."""

    pixels: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    classes: tuple[str, ...]
    files: list[str]                                   # paths below the data folder
    sizes: Counter = field(default_factory=Counter)    # (width, height) -> images, as found
    modes: Counter = field(default_factory=Counter)    # Pillow mode -> images, as found
    skipped: list[str] = field(default_factory=list)   # "path: reason" of files --skip-bad left out
    notes: list[str] = field(default_factory=list)


def is_image_folder(path: Path) -> bool:
    """True for a folder that holds class folders rather than a CIFAR archive's files."""
    return path.is_dir() and not any((path / name).exists() for name in
                                     ("cifar-10-batches-py", "data_batch_1", "cifar-100-python", "meta"))


def list_images(root: Path) -> tuple[list[tuple[Path, int, int]], tuple[str, ...], list[str]]:
    """(file, label, split) of every image file under `root`, the class names, and notes."""
    root_real = root.resolve()
    notes: list[str] = []
    counts = Counter()
    split_dirs = [root / s for s in SPLITS]
    if all(d.is_dir() and not _loose_images(d) for d in split_dirs):
        parts = {s: _class_folders(root / s, root_real, counts) for s in SPLITS}
        train_names, test_names = set(parts["train"]), set(parts["test"])
        for name in sorted(train_names ^ test_names):
            has, lacks = ("train", "test") if name in train_names else ("test", "train")
            raise RegulabError(f"class {name!r} is in {root / has} but not in {root / lacks}; add {root / lacks / name} with "
                               f"its images, or remove {root / has / name}")
        classes = tuple(sorted(train_names))
        found = [(f, classes.index(c), i) for i, s in enumerate(SPLITS) for c, files in parts[s].items() for f in files]
    else:
        if any(d.is_dir() for d in split_dirs) and not any(d.is_dir() and _loose_images(d) for d in split_dirs):
            have, lack = (SPLITS if split_dirs[0].is_dir() else SPLITS[::-1])
            raise RegulabError(f"{root} has {have}/ but no {lack}/; add {root / lack}/<class>/... for a split of your own, "
                               f"or move the class folders of {root / have} up into {root}")
        folders = _class_folders(root, root_real, counts)
        classes = tuple(sorted(folders))
        found = [(f, classes.index(c), -1) for c, files in folders.items() for f in files]
    if len(classes) == 1:
        raise RegulabError(f"{root} has one class folder ({classes[0]}); a classifier needs two or more, as "
                           f"{root}/<class>/<image>")
    if loose := _loose_images(root):
        notes.append(f"{loose} image files directly in {root} belong to no class folder and are not used")
    if counts["outside"]:
        notes.append(f"{counts['outside']} symlinks lead outside {root} and were not followed")
    if counts["other"]:
        notes.append(f"{counts['other']} files are not images by their name ({', '.join(IMAGE_SUFFIXES[:6])}, ...) "
                     "and were left out")
    # By the path below the class folder, then the class: numbered files keep their data set's order.
    found.sort(key=lambda item: (item[2], _below_class(item[0], root), item[1]))
    return found, classes, notes


def _loose_images(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _below_class(path: Path, root: Path) -> str:
    parts = path.relative_to(root).parts
    return "/".join(parts[2 if parts[0] in SPLITS and len(parts) > 2 else 1:])


def _class_folders(folder: Path, root_real: Path, counts: Counter) -> dict[str, list[Path]]:
    """{class name: its image files} for the class folders of `folder`; a class without images is an error."""
    if not folder.is_dir():
        raise RegulabError(f"{folder} is not a folder; pass a folder of class folders (DATA/<class>/<image>)")
    classes = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not _inside(entry, root_real, counts) or not entry.is_dir():
            continue
        files = _images_under(entry, root_real, counts)
        if not files:
            raise RegulabError(f"class folder {entry} has no images ({', '.join(IMAGE_SUFFIXES[:6])}, ...); add images "
                               "or remove the folder")
        classes[entry.name] = files
    if not classes:
        raise RegulabError(f"{folder} has no class folders; lay the images out as {folder}/<class>/<image>, one folder "
                           "per class")
    return classes


def _inside(path: Path, root_real: Path, counts: Counter) -> bool:
    """False (and counted) for a symlink whose target lies outside the data folder."""
    if path.is_symlink() and not path.resolve().is_relative_to(root_real):
        counts["outside"] += 1
        return False
    return True


def _images_under(folder: Path, root_real: Path, counts: Counter) -> list[Path]:
    found, pending, seen = [], [folder], set()
    while pending:
        current = pending.pop()
        if current.resolve() in seen:  # a symlink loop inside the folder
            continue
        seen.add(current.resolve())
        for entry in current.iterdir():
            if entry.name.startswith(".") or not _inside(entry, root_real, counts):
                continue
            if entry.is_dir():
                pending.append(entry)
            elif entry.suffix.lower() in IMAGE_SUFFIXES:
                found.append(entry)
            else:
                counts["other"] += 1
    return found


def available_memory() -> int:
    """Bytes the system can give without swapping (MemAvailable), or the physical memory."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _check_memory(n: int, size: int) -> None:
    need, have = n * 3 * size * size * MEMORY_FACTOR, available_memory()
    if need > have:
        fits = int((have / (n * 3 * MEMORY_FACTOR)) ** 0.5)
        raise RegulabError(f"{n:,} images at {size}x{size} need about {need / 2**30:.2g} GiB in memory (decoded and "
                           f"normalized), more than the {have / 2**30:.2g} GiB available; pass --image-size {fits} or less")


def load_folder(root: str | os.PathLike, size: int, cache: Path, skip_bad: bool = False) -> FolderImages:
    """Every image under `root` at SIZE x SIZE, from the cache when the files are unchanged."""
    root = Path(root).expanduser()
    found, classes, notes = list_images(root)
    _check_memory(len(found), size)
    key = hashlib.sha256(f"{CACHE_FORMAT}|{size}|{root.resolve()}".encode())
    for path, label, split in found:
        stat = path.stat()
        key.update(f"|{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}|{split}".encode())
    cache_file = cache / f"folder-{root.resolve().name}-{key.hexdigest()[:16]}.npz"
    images = _load_cached(cache_file, classes, notes)
    if images is None:
        images = _decode(root, found, classes, size, notes)
        _save_cached(images, cache_file)
    if images.skipped and not skip_bad:
        raise RegulabError(f"{root}{os.sep}{images.skipped[0]}; fix or remove it, or pass --skip-bad to leave such files out"
                           + (f" ({len(images.skipped) - 1} more)" if len(images.skipped) > 1 else ""))
    if images.skipped:
        images.notes.append(f"--skip-bad left out {len(images.skipped)} unreadable files, first {images.skipped[0]}")
        for i, name in enumerate(classes):
            if not (images.labels == i).any():
                raise RegulabError(f"class folder {name!r} has no readable images once bad files are skipped; add "
                                   "images or remove the folder")
    return images


def _decode(root: Path, found: list, classes: tuple[str, ...], size: int, notes: list[str]) -> FolderImages:
    paths = [str(path) for path, _, _ in found]
    workers = usable_cores()
    if len(paths) >= PARALLEL_FROM and workers > 1:
        chunks = [paths[i:i + 256] for i in range(0, len(paths), 256)]
        # Forked workers, as PyTorch's DataLoader uses for the same job: they touch only Pillow and
        # numpy, and spawned ones would re-run a user's unguarded script.
        context = get_context("fork" if sys.platform == "linux" else None)
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            results = [r for chunk in pool.map(_read_many, chunks, [size] * len(chunks)) for r in chunk]
    else:
        results = _read_many(paths, size)
    good = [i for i, (pixels, _, _) in enumerate(results) if pixels is not None]
    relative = [str(Path(p).relative_to(root)) for p in paths]
    return FolderImages(
        pixels=np.stack([results[i][0] for i in good]) if good else np.zeros((0, 3, size, size), np.uint8),
        labels=np.array([found[i][1] for i in good], np.int64), split=np.array([found[i][2] for i in good], np.int8),
        classes=classes, files=[relative[i] for i in good],
        sizes=Counter(results[i][1] for i in good), modes=Counter(results[i][2] for i in good),
        skipped=[f"{relative[i]} is not a readable image ({reason})" for i, (pixels, reason, _) in enumerate(results)
                 if pixels is None],
        notes=notes)


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache file through a temp file renamed into place, so a reader never sees half of
    one; a full or read-only disk is no error, the cache being only a shortcut."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _save_cached(images: FolderImages, cache_file: Path) -> None:
    sizes = np.array([[w, h, n] for (w, h), n in images.sizes.items()], np.int64).reshape(-1, 3)
    save_npz(cache_file, pixels=images.pixels, labels=images.labels, split=images.split, files=np.array(images.files, str),
             sizes=sizes, modes=np.array([f"{m}|{n}" for m, n in images.modes.items()], str),
             skipped=np.array(images.skipped, str))


def _load_cached(cache_file: Path, classes: tuple[str, ...], notes: list[str]) -> FolderImages | None:
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            modes = Counter({m: int(n) for m, n in (item.rsplit("|", 1) for item in z["modes"])})
            return FolderImages(z["pixels"], z["labels"], z["split"], classes, list(z["files"]),
                                Counter({(int(w), int(h)): int(n) for w, h, n in z["sizes"]}), modes,
                                list(z["skipped"]), notes)
    except Exception:
        return None  # absent or unreadable: decode again
