"""Build the bundled `cifar10-mini` subset from the full CIFAR-10 archive.

    python scripts/make_mini.py PATH/TO/cifar-10-python.tar.gz

Takes the first 400 training and first 100 test images of each class, in the official order,
and stores them as two lossless WebP grids (about 1.7 KB an image, so 5,000 images stay well
under 10 MB) plus a JSON file with their labels and official indices. Real images, so that the
tests and the quick-start run see the real data's statistics.
"""

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from regulab.data import CLASSES, image_grid, read_archive

ASSETS = Path(__file__).resolve().parents[1] / "src" / "regulab" / "assets"
PER_CLASS = {"train": 400, "test": 100}
GRID_COLUMNS = 100  # WebP pictures are limited to 16,383 pixels a side


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("archive", help="cifar-10-python.tar.gz or its extracted folder")
    args = parser.parse_args()
    full = read_archive(args.archive)
    meta = {"source": "CIFAR-10 python version, official order", "classes": CLASSES}
    for split, x, y in (("train", full.x_train, full.y_train), ("test", full.x_test, full.y_test)):
        picked = np.concatenate([np.flatnonzero(y == c)[: PER_CLASS[split]] for c in range(10)])
        webp = io.BytesIO()
        Image.fromarray(image_grid(x[picked], GRID_COLUMNS)).save(webp, "WEBP", lossless=True, quality=100, method=6)
        (ASSETS / f"cifar10-mini-{split}.webp").write_bytes(webp.getvalue())
        meta[split] = {"labels": y[picked].tolist(), "official_indices": picked.tolist()}
        print(f"{split}: {len(picked)} images, {len(webp.getvalue()) / 1e6:.2f} MB")
    (ASSETS / "cifar10-mini.json").write_text(json.dumps(meta) + "\n")


if __name__ == "__main__":
    main()
