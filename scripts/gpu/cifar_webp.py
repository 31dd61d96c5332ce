"""CIFAR-10 to a GPU machine and back to its official layout, pixel for pixel.

The device machine reaches nothing outside it, and each call carries at most 64 MiB of working
tree. Lossless WebP mosaics (100 x 100 images of 32 x 32 a batch) take the six batches to 98 MiB,
so they travel in three parts of two batches, one part a call. The sha256 over every batch's
pixels and labels, written beside the parts here, is checked there after unpacking.

    python scripts/gpu/cifar_webp.py pack ARCHIVE DEST        # DEST/a, DEST/b, DEST/c, DEST/sha256
    python scripts/gpu/cifar_webp.py unpack OUT PART...       # OUT/cifar-10-batches-py
    python scripts/gpu/cifar_webp.py checksum FOLDER          # a cifar-10-batches-py folder
"""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

BATCHES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
PARTS = {"a": BATCHES[0:2], "b": BATCHES[2:4], "c": BATCHES[4:6]}  # about 33 MiB each
SIDE = 100  # images per mosaic row: 100 x 100 = one batch of 10,000


def checksum(batches: dict[str, dict]) -> str:
    digest = hashlib.sha256()
    for name in BATCHES:
        digest.update(np.asarray(batches[name][b"data"], dtype=np.uint8).tobytes())
        digest.update(bytes(batches[name][b"labels"]))
    return digest.hexdigest()


def pack(archive: str, dest: str) -> None:
    with tarfile.open(archive) as tar:
        files = {m.name.rsplit("/", 1)[-1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    batches = {name: pickle.loads(files[name], encoding="bytes") for name in BATCHES}
    meta = pickle.loads(files["batches.meta"], encoding="bytes")
    for part, names in PARTS.items():
        folder = Path(dest) / part
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            x = np.asarray(batches[name][b"data"], dtype=np.uint8)  # (10000, 3072): channel planes per image
            mosaic = x.reshape(SIDE, SIDE, 3, 32, 32).transpose(0, 3, 1, 4, 2).reshape(SIDE * 32, SIDE * 32, 3)
            Image.fromarray(mosaic).save(folder / f"{name}.webp", lossless=True, quality=100, method=6)
            (folder / f"{name}.json").write_text(json.dumps([int(v) for v in batches[name][b"labels"]]))
    (Path(dest) / "c" / "label_names.json").write_text(json.dumps([n.decode() for n in meta[b"label_names"]]))
    (Path(dest) / "c" / "sha256").write_text(checksum(batches) + "\n")
    print(f"packed {archive} into {dest}/a, b, c")


def unpack(out: str, parts: list[str]) -> None:
    folder = Path(out) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for part in map(Path, parts):
        for image in part.glob("*.webp"):
            mosaic = np.asarray(Image.open(image).convert("RGB"))
            x = mosaic.reshape(SIDE, 32, SIDE, 32, 3).transpose(0, 2, 4, 1, 3).reshape(SIDE * SIDE, 3072)
            labels = json.loads(image.with_suffix(".json").read_text())
            batch = {b"data": np.ascontiguousarray(x), b"labels": labels, b"batch_label": image.stem.encode()}
            (folder / image.stem).write_bytes(pickle.dumps(batch, protocol=2))
        if (part / "label_names.json").exists():
            names = json.loads((part / "label_names.json").read_text())
            (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [n.encode() for n in names]}, protocol=2))
    print(f"unpacked into {folder}")


def folder_checksum(folder: str) -> str:
    return checksum({name: pickle.loads((Path(folder) / name).read_bytes(), encoding="bytes") for name in BATCHES})


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "pack":
        pack(*args)
    elif command == "unpack":
        unpack(args[0], args[1:])
    elif command == "checksum":
        print(folder_checksum(args[0]))
    else:
        sys.exit(__doc__)
