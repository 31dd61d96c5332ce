"""A folder of your own photos, loaded the first time (decoded on every core) and the second
(from the uint8 cache): seconds each, and their ratio.

The photos are real CIFAR-10 images enlarged to 128x128 and saved as JPEG (quality 90), a
class folder each, so decoding costs what a folder of small photos costs. Each load is a fresh
`regulab data` process, the command a user would run first; the cache folder starts empty.

    python bench/folder_cache.py --images 10000 [--data cifar10-mini] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from regulab.data import load_data

RESULTS = Path(__file__).parent / "results"


def write_photos(root: Path, n: int, data: str | None) -> None:
    raw = load_data(data)
    x, y = np.concatenate([raw.x_train, raw.x_test]), np.concatenate([raw.y_train, raw.y_test])
    for i in range(n):  # the source repeats when it has fewer than n images
        image = Image.fromarray(x[i % len(x)].transpose(1, 2, 0)).resize((128, 128), Image.Resampling.BICUBIC)
        folder = root / raw.classes[y[i % len(y)]]
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{i:05d}.jpg", quality=90)


LOAD = ("import sys, time; from regulab.data import load_data; started = time.perf_counter(); "
        "load_data(sys.argv[1]); print(time.perf_counter() - started)")


def timed_load(root: Path, cache: Path) -> tuple[float, float]:
    """Seconds of `load_data` alone, and of a whole `regulab data` process (what a user waits for)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    load = float(subprocess.run([sys.executable, "-c", LOAD, str(root)], env=env, check=True, capture_output=True,
                                text=True).stdout)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "regulab", "data", str(root), "--out", str(cache / "report")], env=env,
                   check=True, capture_output=True)
    return load, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--data", help="where the pictures come from (default: $REGULAB_DATA, else CIFAR-10's cache)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "photos"
        write_photos(root, args.images, args.data)
        first, second = [], []
        for repeat in range(args.repeats):
            cache = Path(tmp) / f"cache{repeat}"  # empty: the first load decodes (and the command after it reads the cache)
            first.append(timed_load(root, cache))
            second.append(timed_load(root, cache))
    row = {"images": args.images, "photo_size": "128x128 JPEG", "image_size": 32, "cores": os.cpu_count(),
           "first_load_s": statistics.median(f[0] for f in first), "second_load_s": statistics.median(s[0] for s in second),
           "data_command_cached_s": statistics.median([f[1] for f in first] + [s[1] for s in second])}
    row["ratio"] = row["first_load_s"] / row["second_load_s"]
    print(f"{'images':>7} {'first load (decode) s':>22} {'second load (cache) s':>22} {'ratio':>6} {'regulab data s':>15}")
    print(f"{row['images']:>7,} {row['first_load_s']:>22.2f} {row['second_load_s']:>22.2f} {row['ratio']:>6.1f} "
          f"{row['data_command_cached_s']:>15.1f}")
    print(f"(load_data alone in a fresh process, median of {args.repeats}; the last column: a whole `regulab data` "
          "process on the cached folder, report and samples.png included)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "folder_cache.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
