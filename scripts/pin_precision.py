"""Copy finished runs into a pool under the key of the precision they actually ran in.

A run asked for `--precision auto`, which resolves by machine (bf16 where the CPU has it, else
fp32), so its key does not say what it computed; its metrics.json does. A study that pins
`--precision fp32` (so that every machine it continues on computes the same thing) reuses such a
run only as what it was: this copies each run whose metrics say `PRECISION` into POOL, its
config's precision set to that value, under the key those settings give. Runs already there,
and runs that ran in another precision, are left alone.

    python scripts/pin_precision.py fp32 POOL RUN_DIR...
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from regulab.config import Config, to_toml
from regulab.rundir import CONFIG, CONFIG_TOML, METRICS
from regulab.study import run_key


def main(precision: str, pool: str, runs: list[str]) -> None:
    pool_dir = Path(pool)
    pool_dir.mkdir(parents=True, exist_ok=True)
    for run in map(Path, runs):
        metrics = json.loads((run / METRICS).read_text())
        if metrics.get("precision") != precision:
            continue
        config = {**json.loads((run / CONFIG).read_text()), "precision": precision}
        cfg = Config(**{k: v for k, v in config.items() if k != "out"})
        target = pool_dir / run_key(cfg)
        if target.exists():
            continue
        shutil.copytree(run, target, ignore=shutil.ignore_patterns("*.pt"))
        (target / CONFIG).write_text(json.dumps({**config, "out": str(target)}, indent=2) + "\n")
        (target / CONFIG_TOML).write_text(to_toml(cfg))
        print(f"{run} -> {target.name} ({precision})")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
