"""Where the seed network's training step spends its time, by operator, in bf16 or fp32 on this
CPU, beside the ceiling the same sitting measures: a 2048x2048 matrix product's rate in each
precision on the same threads. The step is regulab's (TrainState.start: the seed's network,
Keras's Adam, the L2 penalty on its kernels, channels-last, autocast, within heap_kept), at batch
32; its work is counted exactly (torch.utils.flop_counter over one forward and backward), so the
step's rate over the ceiling is a ratio that travels to other CPUs.

    python bench/seed_profile.py [--precision bf16] [--steps 100] [--threads 2] [--compile]   # on a quiet machine

Prints the operators by their own time (share of the profiled steps), the step's GFLOP/s and its
share of the ceiling, and writes bench/results/seed_profile_<precision>[_compiled].json. With
--compile the network runs through torch.compile (inductor's defaults; the penalty and the
optimizer stay eager, as the compiled network's parameters are the same tensors): whether fusing
the step's small operators pays on this CPU. Its compilation runs in the warm-up, untimed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

from regulab import data as data_lib
from regulab.config import make_config
from regulab.evaluation import autocast
from regulab.models import build_model
from regulab.runtime import device_name, heap_kept, resolve_device
from regulab.training import TrainState

RESULTS = Path(__file__).parent / "results"
CONVOLUTIONS = ("aten::mkldnn_convolution", "aten::convolution_backward")


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 20) -> float:
    """GFLOP/s of a size x size matrix product in `dtype`, the best of `repeats`."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="the network through torch.compile")
    args = parser.parse_args()
    with heap_kept():  # as every training runs
        profile_step(args)


def profile_step(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    cfg = make_config("seed", data="cifar10-mini", precision=args.precision)
    device = resolve_device("cpu")
    splits = data_lib.splits_for(cfg)
    x_train, y_train = splits.train
    model = build_model(cfg, len(splits.classes), splits.image_size)
    state = TrainState.start(cfg, model, x_train, len(splits.classes), (splits.mean, splits.std))
    order = torch.randperm(len(y_train)).split(cfg.batch_size)
    net = state.model  # compiled below, once the eager step has been counted

    def step(i: int) -> None:
        idx = order[i % (len(order) - 1)]  # whole batches only
        xb = state.augment(x_train[idx], idx, 1) if state.augment else x_train[idx]
        xb, target = state.regularizers.before_batch(xb, y_train[idx])
        with autocast(device, args.precision):
            logits = net(xb.contiguous(memory_format=torch.channels_last)).float()
        loss = F.cross_entropy(logits, target, reduction="mean") + state.regularizers.penalty(state.model)
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step(0)
    flops_per_step = counter.get_total_flops()
    conv_flops = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
    if args.compile:
        net = torch.compile(state.model)
    for i in range(10):  # warm-up: oneDNN's kernels and caches
        step(i)
    times = [_timed(lambda i=i: step(i)) for i in range(args.steps)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(min(args.steps, 40)):
            step(i)
    ceilings = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}

    seconds = statistics.median(times)
    rate = flops_per_step / seconds / 1e9
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    top = [{"operator": e.key, "self_ms_per_step": e.self_cpu_time_total / 1000 / min(args.steps, 40),
            "share": e.self_cpu_time_total / total, "calls_per_step": e.count / min(args.steps, 40)} for e in events[:15]]
    # The convolutions' own rate (their operators' own time, oneDNN's kernels and PyTorch's wrapping
    # of them) against everything else: how far fusing or removing the rest could take the step.
    conv_seconds = sum(e.self_cpu_time_total for e in events if e.key in CONVOLUTIONS) / 1e6 / min(args.steps, 40)
    conv_share_of_step = conv_seconds / (total / 1e6 / min(args.steps, 40))
    cpu = device_name(device)
    print(f"{cpu}, {torch.backends.cpu.get_cpu_capability()}, {args.threads} threads, PyTorch {torch.__version__}; "
          f"the seed's step at batch {cfg.batch_size} in {args.precision}{', network compiled' if args.compile else ''}")
    print(f"\nstep: {1000 * seconds:.1f} ms (median of {args.steps}), {flops_per_step / 1e9:.2f} GFLOP "
          f"({flops_per_step / cfg.batch_size / 1e6:.0f} MFLOP an image), {rate:.0f} GFLOP/s")
    print(f"matrix-product ceiling, this sitting: fp32 {ceilings['fp32']:.0f}, bf16 {ceilings['bf16']:.0f} GFLOP/s; "
          f"the step reaches {rate / ceilings[args.precision]:.0%} of its precision's\n")
    print(f"the convolutions: {conv_share_of_step:.0%} of the step's time at {conv_flops / conv_seconds / 1e9:.0f} GFLOP/s "
          f"({conv_flops / conv_seconds / 1e9 / ceilings[args.precision]:.0%} of the ceiling); the rest of the step: "
          f"{1 - conv_share_of_step:.0%}\n")
    print("| operator | ms per step (own time) | share | calls per step |\n|---|---|---|---|")
    for t in top:
        print(f"| {t['operator']} | {t['self_ms_per_step']:.2f} | {t['share']:.1%} | {t['calls_per_step']:.0f} |")
    out = RESULTS / f"seed_profile_{args.precision}{'_compiled' if args.compile else ''}.json"
    out.write_text(json.dumps({"cpu": cpu, "capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
                               "torch": str(torch.__version__), "precision": args.precision, "compiled": args.compile,
                               "step_seconds": seconds, "flops_per_step": flops_per_step, "gflops": rate,
                               "ceilings_gflops": ceilings, "share_of_ceiling": rate / ceilings[args.precision],
                               "convolutions": {"share_of_step": conv_share_of_step, "flops_per_step": conv_flops,
                                                "gflops": conv_flops / conv_seconds / 1e9},
                               "operators": top}, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
