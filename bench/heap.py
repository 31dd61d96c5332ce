"""A preset's training step on the CPU with glibc's default heap and with `runtime.heap_kept`,
taking turns: step time, page faults and kernel time per step.

    python bench/heap.py [--preset fast] [--steps 6] [--rounds 2] [--threads 2]   # on a quiet machine

glibc maps every allocation over 32 MB afresh and unmaps it when freed, so a step whose
activations are that large faults in each 4 KB page of them on every step; `heap_kept`, which
every training runs within, keeps freed memory for the next step. Random images of the data's
shape stand in for the data (the step's cost does not depend on pixel values). Writes
bench/results/heap[_PRESET].json.
"""

import argparse
import contextlib
import json
import resource
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from regulab.config import make_config
from regulab.evaluation import autocast
from regulab.models import build_model
from regulab.optim import build_optimizer
from regulab.runtime import device_name, heap_kept, resolve_precision

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    cfg = make_config(args.preset)
    device = torch.device("cpu")
    precision, _ = resolve_precision(cfg.precision, device)
    images, labels = torch.randn(2 * cfg.batch_size, 3, 32, 32), torch.randint(0, 10, (2 * cfg.batch_size,))
    model = build_model(cfg, 10, 32).to(memory_format=torch.channels_last)
    if cfg.whiten:
        model.whiten_(images)
    optimizer = build_optimizer(cfg, model)

    def step(i: int) -> None:
        idx = torch.randperm(len(labels))[:cfg.batch_size]
        with autocast(device, precision):
            logits = model(images[idx].contiguous(memory_format=torch.channels_last)).float()
        loss = F.cross_entropy(logits, labels[idx], label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    rows = []
    for round_ in range(1, args.rounds + 1):
        for heap in ("default", "kept"):
            with heap_kept() if heap == "kept" else contextlib.nullcontext():
                for i in range(2):  # warm-up: oneDNN's kernels, and the heap grown to the step's size
                    step(i)
                before, times = resource.getrusage(resource.RUSAGE_SELF), []
                for i in range(args.steps):
                    started = time.perf_counter()
                    step(i)
                    times.append(time.perf_counter() - started)
                after = resource.getrusage(resource.RUSAGE_SELF)
            rows.append({"round": round_, "heap": heap, "step_seconds": statistics.median(times),
                         "page_faults_per_step": (after.ru_minflt - before.ru_minflt) / args.steps,
                         "kernel_seconds_per_step": (after.ru_stime - before.ru_stime) / args.steps})

    print(f"{device_name(device)}, {args.threads} threads, PyTorch {torch.__version__}; {args.preset}'s step at batch "
          f"{cfg.batch_size} in {precision}, median of {args.steps} steps\n")
    print("| round | heap | step, ms | images/s | page faults a step | kernel s a step |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['heap']} | {1000 * r['step_seconds']:.1f} | {cfg.batch_size / r['step_seconds']:,.0f} | "
              f"{r['page_faults_per_step']:,.0f} | {r['kernel_seconds_per_step']:.2f} |")
    out = RESULTS / f"heap{'' if args.preset == 'fast' else '_' + args.preset}.json"
    out.write_text(json.dumps({"cpu": device_name(device), "threads": args.threads, "torch": str(torch.__version__),
                               "preset": args.preset, "batch_size": cfg.batch_size, "precision": precision,
                               "rows": rows}, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
