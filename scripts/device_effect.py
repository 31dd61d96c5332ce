"""The device's own effect: runs of the same settings and seed trained on two devices, each in its
device's pool, paired by their settings (less the precision asked for: `auto` and the fp32 it
resolved to are one training); per measure, the mean difference (first pool minus second) with
its 95% Student-t interval over the pairs.

    python scripts/device_effect.py docs/study/runs-cpu docs/study/runs
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from regulab.analysis import MEASURES
from regulab.config import Config
from regulab.report import interval_text
from regulab.stats import t_interval
from regulab.study import run_key


def finished(pool: Path) -> dict[str, dict]:
    """The pool's finished runs' metrics, by the key of their settings with the precision left out."""
    out = {}
    for metrics in sorted(pool.glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        m["gap"] = None if m.get("final_val_acc") is None else m["final_acc"] - m["final_val_acc"]
        config = json.loads((metrics.parent / "config.json").read_text())
        cfg = Config(**{**{k: v for k, v in config.items() if k != "out"}, "precision": "auto"})
        out[run_key(cfg)] = m
    return out


def device_effect(first: str | Path, second: str | Path) -> dict:
    """The runs of the same settings and seed in both pools on different devices, and per
    measure the first minus the second, with its interval over those runs."""
    a, b = finished(Path(first)), finished(Path(second))
    keys = sorted(k for k in a.keys() & b.keys() if (a[k]["device"], a[k]["precision"]) != (b[k]["device"], b[k]["precision"]))
    if not keys:
        sys.exit(f"no run key is in both {first} and {second} on different devices")
    return {"keys": keys, "devices": f"{a[keys[0]]['device']} minus {b[keys[0]]['device']}",
            "measures": {m.key: t_interval([a[k][m.key] - b[k][m.key] for k in keys
                                            if a[k].get(m.key) is not None and b[k].get(m.key) is not None])
                         for m in MEASURES}}


def main(first: str, second: str) -> None:
    found = device_effect(first, second)
    print(f"{len(found['keys'])} runs trained on both devices ({found['devices']}): {', '.join(found['keys'])}")
    for m in MEASURES:
        cell = found["measures"][m.key]
        if cell["n"]:
            print(f"  Δ {m.heading}: {interval_text(cell, signed=True)} (n={cell['n']})")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(f"usage: python scripts/device_effect.py FIRST_POOL SECOND_POOL\n{__doc__}")
    main(*sys.argv[1:3])
