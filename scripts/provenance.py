"""Write what is known of where each committed run trained into a provenance.json beside its files,
for the runs from before regulab recorded machines (metrics.json without `machines`), so that
pairing can tell the machines apart (regulab.runtime.machine_of). What is known, and how:

- Every GPU run of this project trained on a lent NVIDIA H200 (the sessions' notes), in fp32.
- The CPU runs came from two studies on two machines that the notes name only "AMD EPYC":
  the first study's (docs/study/runs and gpu/cpu-crosscheck, committed 2026-11-27; the notes of
  those sessions: AVX2, no native bf16; 117-240 images/s at one thread), and the second study's
  (docs/study/runs-cpu, committed from 2026-11-30; 366-431 images/s at one thread). A run in
  runs-cpu whose metrics are a first-study run's is that run, copied under its fp32 key.
  Whether the second study's sessions all had one CPU model is not recorded: the notes call
  their machine "AMD EPYC" throughout, two of them with AVX-512 BF16 and the last "Zen 3".

    python scripts/provenance.py docs/study        # writes RUN/provenance.json where missing; lists them
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FIRST_CPU = "AMD EPYC, AVX2 [the first study's CPU, 2026-11-26/27]"
SECOND_CPU = "AMD EPYC [the second study's CPU, 2026-11-30 to 12-01]"
GPU = "NVIDIA H200"
FIRST_POOLS = ("runs", "gpu")


def provenance(run: Path, metrics: dict, first_study: set[str]) -> dict:
    if metrics.get("device") == "cuda":
        return {"machine": GPU, "evidence": "every GPU run of this project trained on a lent H200 (the sessions' notes)"}
    pool = run.parent.name if run.parent.parent.name == "study" else run.parent.parent.name
    same = json.dumps(metrics, sort_keys=True) in first_study
    if pool in FIRST_POOLS or same:
        how = "the first study's pool" if pool in FIRST_POOLS else "a copy of a first-study run (the same metrics)"
        return {"machine": FIRST_CPU, "evidence": f"{how}; {metrics.get('median_images_per_s', 0):.0f} images/s at "
                                                   f"{metrics.get('threads')} thread(s)"}
    return {"machine": SECOND_CPU, "evidence": f"trained for the second study; {metrics.get('median_images_per_s', 0):.0f} "
                                               f"images/s at {metrics.get('threads')} thread(s); CPU model not recorded"}


def main(root: Path) -> None:
    first_study = {json.dumps(json.loads(m.read_text()), sort_keys=True)
                   for pool in FIRST_POOLS for m in (root / pool).rglob("metrics.json")}
    written = 0
    for metrics_file in sorted(root.glob("*/*/metrics.json")) + sorted(root.glob("gpu/*/metrics.json")):
        run = metrics_file.parent
        if run.is_symlink() or (run / "provenance.json").exists():
            continue
        metrics = json.loads(metrics_file.read_text())
        if metrics.get("machines"):
            continue  # recorded by the run itself
        record = provenance(run, metrics, first_study)
        (run / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
        written += 1
        print(f"{run}: {record['machine']}")
    print(f"{written} provenance records written")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python scripts/provenance.py STUDY_ROOT\n{__doc__}")
    main(Path(sys.argv[1]))
