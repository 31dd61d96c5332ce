"""Write a data set as a folder of class folders of PNGs, the layout `--data FOLDER` reads.

    python scripts/export_folder.py digits OUT          # scikit-learn's bundled 8x8 digits (1,797 images)
    python scripts/export_folder.py cifar10-mini OUT    # or anything --data takes: an archive, cifar10, ...

Archives keep their split as OUT/train/<class>/ and OUT/test/<class>/; digits have none, so
regulab holds out a stratified test set itself. Files are numbered in the source's order
(<class>/00000.png, ...), so regulab reads them back in that order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def digits() -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """scikit-learn's digits: 8x8 grey values 0-16, scaled to 0-255; no split of their own."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255 / 16)).astype(np.uint8)[:, None]  # (N, 1, 8, 8): grey
    return {"": (pixels, bunch.target)}, tuple(str(d) for d in bunch.target_names)


def regulab_data(name: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    from regulab.data import load_data

    raw = load_data(name)
    return {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}, raw.classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="digits, or anything regulab's --data takes")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    splits, classes = digits() if args.source == "digits" else regulab_data(args.source)
    written = 0
    for split, (images, labels) in splits.items():
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = args.out / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            mode_image = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
            Image.fromarray(mode_image).save(folder / f"{index:05d}.png")
            written += 1
    print(f"wrote {written:,} images of {len(classes)} classes to {args.out}")


if __name__ == "__main__":
    main()
