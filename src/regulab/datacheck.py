"""`regulab data`: what a person checks before training on a data set.

Images per class and split, the sizes and modes the files had, the normalization training will
use, exact duplicates between the training and test images, and a picture of a few images of
every class. Written as data.json and samples.png, and printed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from regulab import data as data_lib
from regulab.figures import plot_samples
from regulab.files import atomic_write

SUMMARY, SAMPLES = "data.json", "samples.png"


def _hashes(images: np.ndarray) -> list[bytes]:
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


def describe_data(raw: data_lib.ImageData, out: Path, per_class: int = 8) -> dict:
    """The facts of `raw` as a dict; also writes OUT/data.json and OUT/samples.png."""
    found = raw.found
    if found is not None:
        train_names, test_names = raw.train_files, raw.test_files
        sizes, modes = found.sizes, found.modes
    else:  # an archive: images are known by their split and position
        train_names = [f"train #{i}" for i in range(len(raw.y_train))]
        test_names = [f"test #{i}" for i in range(len(raw.y_test))]
        n = len(raw.y_train) + len(raw.y_test)
        sizes, modes = Counter({(raw.image_size, raw.image_size): n}), Counter({"RGB": n})
    # Exact duplicates of what the model sees: equal pixels at the chosen image size.
    train_hashes = _hashes(raw.x_train)
    first_in_train = {}
    for i, h in enumerate(train_hashes):
        first_in_train.setdefault(h, i)
    across = [(test_names[j], train_names[first_in_train[h]]) for j, h in enumerate(_hashes(raw.x_test))
              if h in first_in_train]
    mean, std = data_lib.channel_stats(raw.x_train)
    summary = {
        "source": raw.source, "classes": list(raw.classes), "image_size": raw.image_size, "notes": list(raw.notes),
        "images": {"train": len(raw.y_train), "test": len(raw.y_test)},
        "per_class": [{"class": name, "train": int((raw.y_train == i).sum()), "test": int((raw.y_test == i).sum())}
                      for i, name in enumerate(raw.classes)],
        "sizes_found": [{"width": w, "height": h, "images": n} for (w, h), n in sizes.most_common()],
        "modes_found": dict(modes.most_common()),
        "normalization": {"mean": mean, "std": std, "scale": "0-255", "over": "all training images"},
        "duplicates": {"test_images_also_in_train": len(across), "pairs": [{"test": t, "train": r} for t, r in across[:20]],
                       "within_train": len(train_hashes) - len(first_in_train)},
        "skipped": list(found.skipped) if found is not None else [],
    }
    out.mkdir(parents=True, exist_ok=True)
    summary["samples"] = str(plot_samples(raw.x_train, raw.y_train, list(raw.classes), out / SAMPLES, per_class,
                                          title=f"{Path(raw.source).name}: first {per_class} training images per class"))
    atomic_write(out / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    return summary


def data_text(summary: dict) -> str:
    """The summary as a person reads it."""
    width = max(len("class"), *(len(c["class"]) for c in summary["per_class"]))
    lines = [f"data: {summary['source']}: {len(summary['classes'])} classes, {summary['images']['train']:,} train and "
             f"{summary['images']['test']:,} test images at {summary['image_size']}x{summary['image_size']}"]
    lines += [f"note: {note}" for note in summary["notes"]]
    lines += ["", f"{'class':<{width}}  {'train':>7}  {'test':>6}"]
    lines += [f"{c['class']:<{width}}  {c['train']:>7,}  {c['test']:>6,}" for c in summary["per_class"]]
    sizes = summary["sizes_found"]
    shown = ", ".join(f"{s['width']}x{s['height']} ({s['images']:,})" for s in sizes[:5])
    lines += ["", f"sizes found: {shown}" + (f" and {len(sizes) - 5} other sizes" if len(sizes) > 5 else ""),
              "modes found: " + ", ".join(f"{m} ({n:,})" for m, n in summary["modes_found"].items())]
    norm = summary["normalization"]
    lines.append("normalization (all training images, 0-255): mean " + ", ".join(f"{v:.2f}" for v in norm["mean"])
                 + "; std " + ", ".join(f"{v:.2f}" for v in norm["std"]))
    dup = summary["duplicates"]
    if dup["test_images_also_in_train"]:
        pairs = "; ".join(f"{p['test']} = {p['train']}" for p in dup["pairs"][:3])
        lines.append(f"duplicates: {dup['test_images_also_in_train']:,} test images are exact copies of training images "
                     f"(equal pixels at this size), e.g. {pairs}: test accuracy counts them as seen")
    else:
        lines.append("duplicates: no test image is an exact copy of a training image")
    if dup["within_train"]:
        lines.append(f"            {dup['within_train']:,} training images repeat another training image")
    if summary["skipped"]:
        lines.append(f"skipped (--skip-bad): {len(summary['skipped'])} files, first {summary['skipped'][0]}")
    lines.append(f"samples: {summary['samples']}")
    return "\n".join(lines)
