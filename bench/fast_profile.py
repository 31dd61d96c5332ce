"""Where a fast preset's time goes: data, forward, backward, optimizer step, and evaluation.

    python bench/fast_profile.py [--preset fast] [--steps 30] [--data PATH]

Runs the preset's own pieces (model, whitening, optimizer, augmentation, precision) for
--steps training steps after 3 warm-up steps, timing each phase separately, then times the
final test of the 10,000 test images as training scores it (fp32): plain, with test-time
augmentation on every image, and on the preset's share of unsure ones. Prints a table and
writes bench/results/fast_profile[_PRESET].json.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from regulab import data as data_lib
from regulab.augment import BatchAugment
from regulab.config import make_config
from regulab.evaluation import autocast, evaluate
from regulab.models import create_model
from regulab.optim import build_optimizer
from regulab.runtime import resolve_device, resolve_precision

HERE = Path(__file__).resolve().parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    cfg = make_config(args.preset, data=args.data)
    torch.set_flush_denormal(True)
    device = resolve_device(cfg.device)
    precision, _ = resolve_precision(cfg.precision, device)
    splits = data_lib.splits_for(cfg)
    x_train, y_train = (t.to(device) for t in splits.train)
    model = create_model(cfg.model).to(device, memory_format=torch.channels_last)
    model.whiten_(x_train[:5000])
    optimizer = build_optimizer(cfg, model)
    augment = BatchAugment(cfg.augment, cfg.crop_pad, seed=0, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    phases = {"data": [], "forward": [], "backward": [], "optimizer": []}
    order = torch.randperm(len(y_train)).to(device).split(cfg.batch_size)
    for step in range(3 + args.steps):
        marks = [time.perf_counter()]
        idx = order[step % len(order)]
        xb, target = augment(x_train[idx], idx, step), y_train[idx]
        xb = xb.contiguous(memory_format=torch.channels_last)
        sync(), marks.append(time.perf_counter())
        with autocast(device, precision):
            logits = model(xb).float()
        loss = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing)
        sync(), marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync(), marks.append(time.perf_counter())
        optimizer.step()
        sync(), marks.append(time.perf_counter())
        if step >= 3:
            for name, start, end in zip(phases, marks, marks[1:]):
                phases[name].append(end - start)

    per_step = {name: statistics.median(times) for name, times in phases.items()}
    step_total = sum(per_step.values())
    steps_per_epoch = len(y_train) // cfg.batch_size
    evaluation = {}
    kinds = [("plain", 0, 1.0), (f"TTA level {cfg.tta}, every image", cfg.tta, 1.0),
             (f"TTA level {cfg.tta}, unsure {cfg.tta_unsure:.0%} (plain pass included)", cfg.tta, cfg.tta_unsure)]
    for label, tta, unsure in kinds:
        started = time.perf_counter()
        evaluate(model, *splits.test, cfg.eval_batch_size, "fp32", tta, unsure)
        evaluation[label] = time.perf_counter() - started

    lines = ["| phase | ms per step | share | s per epoch |", "|---|---|---|---|"]
    lines += [f"| {name} | {1000 * t:.0f} | {t / step_total:.0%} | {t * steps_per_epoch:.1f} |" for name, t in per_step.items()]
    lines.append(f"| training step | {1000 * step_total:.0f} | 100% | {step_total * steps_per_epoch:.1f} "
                 f"({cfg.batch_size / step_total:.0f} img/s) |")
    lines += [f"| test set, {k} | | | {v:.1f} |" for k, v in evaluation.items()]
    print(f"{device.type} {precision}, {torch.get_num_threads()} threads, batch {cfg.batch_size}, median of {args.steps} steps")
    print("\n".join(lines))
    out = HERE / "results" / f"fast_profile{'' if args.preset == 'fast' else '_' + args.preset}.json"
    out.write_text(json.dumps({"device": device.type, "precision": precision, "threads": torch.get_num_threads(),
                               "batch_size": cfg.batch_size, "seconds_per_step": per_step,
                               "evaluation_seconds": evaluation, "table": lines}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
