"""Training with Keras's semantics, as fast as the machine allows.

What is Keras about it: Adam's update rule (`KerasAdam`), the L2 penalty added to the loss and
included in the reported `loss`, a fresh shuffle each epoch with the last partial batch kept,
and epoch metrics averaged over every sample seen while the weights moved (as Keras's progress
bar does). What is fast about it: the data set lives in memory as one tensor, batches are
gathered by index, bf16 autocast and channels_last where the chip supports bf16, a fused
optimizer, and no per-step host synchronisation.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from regulab import data as data_lib
from regulab.augment import BatchAugment
from regulab.config import Config, to_toml
from regulab.errors import RegulabError, TrainingStopped
from regulab.evaluation import autocast, evaluate
from regulab.models import create_model, kernel_penalty, regularized_kernels
from regulab.report import epoch_line, plot_curves, run_title
from regulab.rundir import (
    BEST_WEIGHTS,
    CHECKPOINT,
    CONFIG,
    CONFIG_TOML,
    CURVES,
    LAST_WEIGHTS,
    METRICS,
    RunDir,
    atomic_write,
    matching_state,
)
from regulab.tracking import Trackers
from regulab.tracking import check_available as check_tracking


class KerasAdam(torch.optim.Adam):
    """Adam with Keras's update rule and defaults (epsilon 1e-7).

    Keras:   w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    PyTorch: w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps')
    The two agree exactly when eps' = eps / sqrt(1 - b2^t), so each step sets that and hands the
    work to PyTorch's fused kernel. The difference matters early on, when 1 - b2^t is tiny.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-7, **kwargs):
        super().__init__(params, lr=lr, betas=betas, eps=eps, **kwargs)
        for group in self.param_groups:
            group["keras_eps"], group["keras_step"] = eps, 0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            group["keras_step"] += 1
            group["eps"] = group["keras_eps"] / math.sqrt(1 - group["betas"][1] ** group["keras_step"])
        return super().step(closure)


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """The configured optimizer. Weight decay applies to kernels, and to batch-norm parameters
    at the same shrink per step (their lr is `norm_lr_scale` times larger, their decay that much
    smaller); never to biases, where it regularizes nothing."""
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}
    kernels = [k for k in regularized_kernels(model, "all") if id(k) in trainable]
    norms = [p for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for p in m.parameters(recurse=False) if id(p) in trainable]
    grouped = {id(p) for p in kernels + norms}
    groups = [{"params": kernels},
              {"params": norms, "lr": cfg.lr * cfg.norm_lr_scale, "weight_decay": cfg.weight_decay / cfg.norm_lr_scale},
              {"params": [p for p in trainable.values() if id(p) not in grouped], "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    return KerasAdam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, decoupled_weight_decay=True, fused=True)


def lr_factor(cfg: Config, progress: float) -> float:
    """The multiplier of the base learning rate after `progress` epochs (fractional)."""
    warmup = cfg.warmup_epochs or (0.3 * cfg.epochs if cfg.schedule == "onecycle" else 0.0)
    if progress < warmup:
        return cfg.warmup_from + (1 - cfg.warmup_from) * progress / warmup
    done = min((progress - warmup) / max(cfg.epochs - warmup, 1e-9), 1.0)
    if cfg.schedule == "step":
        return cfg.step_gamma ** int(progress // cfg.step_epochs)
    if cfg.schedule == "cosine":
        return cfg.decay_to + (1 - cfg.decay_to) * 0.5 * (1 + math.cos(math.pi * done))
    if cfg.schedule == "onecycle":
        return cfg.decay_to + (1 - cfg.decay_to) * (1.0 - done)
    return 1.0


class Lookahead:
    """Every `every` steps, move a slow copy of the weights (and batch-norm statistics) toward
    the trained ones, and restart training from it (Zhang et al. 2019, with airbench's schedule).
    The pull grows with the cube of progress: early on the slow copy simply follows, late in
    the run it averages (decay 0.95 per step), which is where averaging helps; the run ends on
    the slow weights. The slow copy starts at the first pull, so a run too short for one keeps
    its trained weights rather than its initial ones."""

    def __init__(self, every: int):
        self.every = every
        self.slow: dict[str, torch.Tensor] | None = None

    @torch.no_grad()
    def update(self, model: nn.Module, progress: float) -> None:
        state = model.state_dict()
        if self.slow is None:
            self.slow = {k: v.detach().clone() for k, v in state.items() if v.is_floating_point()}
            return
        decay = 0.95 ** self.every * progress ** 3
        for name, slow in self.slow.items():
            slow.lerp_(state[name], 1 - decay)
            state[name].copy_(slow)

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        state = model.state_dict()
        for name, slow in (self.slow or {}).items():
            state[name].copy_(slow)

    def state_dict(self) -> dict | None:
        return self.slow

    def load_state_dict(self, state: dict | None) -> None:
        self.slow = state


# ---------------------------------------------------------------------------------------------
# Where and how precisely to compute

def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RegulabError("--device cuda was asked for but PyTorch sees no CUDA GPU; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """True where bf16 matrix work runs in hardware: AVX-512 BF16 or AMX on a CPU, Ampere+ on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def resolve_precision(name: str, device: torch.device) -> tuple[str, str | None]:
    """The precision to train in, and a note for the user when the choice costs speed."""
    native = native_bf16(device)
    if name == "auto":
        name = "bf16" if native else "fp32"
        slower = f"no native bf16 on this {device.type}: training in fp32, about 2x slower than on a bf16 CPU"
        return name, None if native else slower
    if name == "bf16" and not native:
        return name, f"bf16 was asked for but this {device.type} has no native bf16: it will be emulated and slow"
    return name, None


# ---------------------------------------------------------------------------------------------
# Several processes (torchrun): each trains on its share of every batch

@dataclass(frozen=True)
class Workers:
    """This process's place among data-parallel workers; one worker when torchrun did not start it."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:  # the one that logs, evaluates and writes the run folder
        return self.rank == 0

    def share(self, n: int) -> torch.Tensor | slice:
        """This worker's rows of a batch of n: contiguous, as equal as n allows."""
        return slice(None) if self.size == 1 else torch.tensor_split(torch.arange(n), self.size)[self.rank]

    def sum_(self, *tensors: torch.Tensor) -> None:
        if self.size > 1:
            for t in tensors:
                dist.all_reduce(t)

    def from_main(self, value):
        """The main worker's `value`, on every worker."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def join_workers(device: torch.device) -> Workers:
    """Join torchrun's process group (gloo on CPUs, NCCL on GPUs) when WORLD_SIZE says there is one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Workers()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)  # one GPU per worker, before NCCL starts
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Workers(dist.get_rank(), size, local_rank)


# ---------------------------------------------------------------------------------------------
# The run

class _StopOnSignal:
    """Turn the first Ctrl-C or SIGTERM into a request to stop at the next step; a second one
    falls through to Python's default and ends the process at once."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # only the main thread may set handlers
            self._previous = {s: signal.signal(s, self._request) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _request(self, signum, frame):
        self.signal = signal.Signals(signum).name
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def build_model(cfg: Config) -> nn.Module:
    """The network `cfg` describes, freshly initialized."""
    return create_model(cfg.model, batch_norm=cfg.batch_norm, dropout_blocks=cfg.dropout_blocks,
                        dropout_head=cfg.dropout_head)


def default_out(cfg: Config) -> Path:
    return Path("runs") / f"{cfg.preset}-{datetime.now():%Y%m%d-%H%M%S}"


def train(cfg: Config, splits: data_lib.Splits | None = None, overwrite: bool = False, resume: bool = False,
          log=print, progress: bool | None = None) -> dict:
    """Train as `cfg` says, write the run folder, and return the final metrics.

    `resume` continues the run in `cfg.out` from its last checkpoint; `splits` may be given to
    reuse data already in memory; `progress` None shows the in-epoch bar only on a terminal.
    """
    started_run = time.perf_counter()
    cfg.validate()
    check_tracking(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg)  # before anything is written: the name may be wrong
    if cfg.whiten and not hasattr(model, "whiten_"):
        raise RegulabError(f"--whiten needs a model with a whitening layer, such as fast-net; {cfg.model} has none")
    device = resolve_device(cfg.device)
    workers = join_workers(device)
    if workers.size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", workers.local_rank)
        if not workers.main:
            log, progress = (lambda *_: None), False
    # Everything that can fail on the user's input fails before the run folder exists, so a run
    # that cannot start leaves nothing behind.
    if splits is None:
        splits = data_lib.prepare(data_lib.load_cifar10(cfg.data), cfg.val_fraction, cfg.split_seed,
                                  cfg.train_fraction)
    init_weights = RunDir(cfg.init_from).load_weights(BEST_WEIGHTS, model) if cfg.init_from and not resume else None
    checkpoint = RunDir(cfg.out).load_checkpoint() if resume else None
    # The main worker makes the folder (and stops everyone if it cannot); the others learn where.
    path = None
    if workers.main:
        path = RunDir(cfg.out).path if resume else RunDir.create(cfg.out or default_out(cfg), overwrite=overwrite).path
    run = RunDir(workers.from_main(path))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(cfg.deterministic)
    # Denormal floats (tiny Adam second moments, decaying activations) are ~100x slower on x86
    # and sap throughput as training goes on; TensorFlow flushes them to zero by default too.
    torch.set_flush_denormal(True)
    precision, note = resolve_precision(cfg.precision, device)
    if note:
        log(f"note: {note}")

    x_train, y_train = (t.to(device) for t in splits.train)
    n_train = len(y_train)
    log(f"data: {splits.source}: {n_train:,} train, {len(splits.val[1]) if splits.val else 0:,} validation, "
        f"{len(splits.test[1]):,} test; {device.type} {precision}, {torch.get_num_threads()} threads; run folder {run.path}")
    if workers.size > 1:
        log(f"data-parallel: {workers.size} workers ({dist.get_backend()}), each {cfg.batch_size // workers.size} "
            f"of every batch of {cfg.batch_size}")
    if splits.val is None:
        log(f"training on all {n_train:,} training images with no validation set; the {len(splits.test[1]):,} "
            "test images are used once, after training, and choose nothing")

    if init_weights is not None:
        model.load_state_dict(init_weights)
        log(f"starting from the weights of {cfg.init_from} ({BEST_WEIGHTS})")
    model.to(device, memory_format=torch.channels_last)
    if cfg.whiten:  # from training images only; deterministic, so a resumed run rebuilds the same layer
        model.whiten_(x_train[:5000])
    optimizer = build_optimizer(cfg, model)
    # Under torchrun, DDP averages the workers' gradients; `model` stays the plain network.
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if workers.size > 1 else model
    # With an EMA, the averaged weights are the ones evaluated, selected and saved.
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    evaluated = ema.module if ema else model
    lookahead = Lookahead(cfg.lookahead) if cfg.lookahead else None
    augment = BatchAugment(cfg.augment, cfg.crop_pad, cfg.cutout_size, cfg.mixup, cfg.cutmix, seed=cfg.seed)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best_score, best_epoch = -math.inf, 0
    if checkpoint is not None:
        model.load_state_dict(matching_state(checkpoint["model"], model, run.path / CHECKPOINT))
        optimizer.load_state_dict(checkpoint["optimizer"])
        if ema:
            ema.load_state_dict(checkpoint["ema"])
        if lookahead:
            lookahead.load_state_dict(checkpoint["lookahead"])
        augment.load_state_dict(checkpoint["augment"])
        shuffle.set_state(checkpoint["shuffle_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        history, best_score, best_epoch = checkpoint["history"], checkpoint["best_score"], checkpoint["best_epoch"]
        if workers.main:
            run.write_history(history)  # a kill between checkpoint and history may have left it one behind
        log(f"resuming after epoch {checkpoint['epoch']} of {cfg.epochs}")
    elif workers.main:
        run.write_json(CONFIG, {**vars(cfg), "out": str(run.path)})
        atomic_write(run.path / CONFIG_TOML, to_toml(cfg).encode())
    trackers = Trackers(cfg, run, resume) if workers.main else None

    show_bar = sys.stderr.isatty() if progress is None else progress
    eval_seconds = 0.0  # this session's; a resumed run's earlier sessions are in its history
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    with _StopOnSignal() as stop, _closing_on_failure(trackers):
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            if cfg.early_stop and epoch - best_epoch > cfg.early_stop:
                log(f"early stop: no better {cfg.monitor} for {cfg.early_stop} epochs; best epoch {best_epoch} is kept")
                break
            model.train()
            started = time.perf_counter()
            # Sums over the epoch's samples, kept on the device so no step waits for the host.
            data_loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            penalty_sum = torch.zeros((), dtype=torch.float64, device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            batches = torch.randperm(n_train, generator=shuffle).to(device).split(cfg.batch_size)
            bar = _progress_bar(len(batches), epoch, cfg.epochs) if show_bar else None
            for step, idx in enumerate(batches, 1):
                factor = lr_factor(cfg, epoch - 1 + step / len(batches))
                for group, base_lr in zip(optimizer.param_groups, base_lrs):
                    group["lr"] = base_lr * factor
                xb, yb = x_train[idx], y_train[idx]
                xb, target = augment(xb, yb, idx, epoch) if augment else (xb, yb)
                mine = workers.share(len(idx))  # every worker drew the whole batch's augmentation alike
                xb, yb, target = xb[mine], yb[mine], target[mine]
                with autocast(device, precision):
                    logits = net(xb.contiguous(memory_format=torch.channels_last)).float()
                data_loss_batch = F.cross_entropy(logits, target, label_smoothing=cfg.label_smoothing, reduction="sum")
                penalty = kernel_penalty(model, cfg.l2, cfg.l1, cfg.penalty_scope)
                # The mean over the whole batch (DDP divides the summed gradients by the workers),
                # plus the penalty: what Keras minimizes and reports.
                loss = data_loss_batch * (workers.size / len(idx)) + penalty
                finite = torch.isfinite(loss).float()
                workers.sum_(finite)
                if finite.item() < workers.size:  # checked before the step, so the weights stay finite
                    kept = f"finished epochs kept in {run.path}: {epoch - 1}" if epoch > 1 else "no epoch had finished"
                    value = loss.item() if not math.isfinite(loss.item()) else "nan on another worker"
                    raise RegulabError(f"the loss became {value} at epoch {epoch}, step {step}; "
                                       f"lower --lr (now {cfg.lr}) and train again; {kept}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if ema:
                    ema.update_parameters(model)
                steps_done = (epoch - 1) * len(batches) + step
                if lookahead and steps_done % cfg.lookahead == 0:
                    lookahead.update(model, steps_done / (cfg.epochs * len(batches)))

                data_loss_sum += data_loss_batch.detach()
                penalty_sum += penalty.detach() * len(idx)
                correct += (logits.detach().argmax(1) == yb).sum()
                if stop.signal:
                    raise TrainingStopped(f"stopped by {stop.signal} in epoch {epoch}; finished epochs saved: {epoch - 1}; "
                                          f"resume with: regulab train --resume {run.path}")
                if bar is not None:
                    bar.update()
                    if step % 50 == 0 or step == len(batches):
                        seen = min(step * cfg.batch_size, n_train)
                        bar.set_postfix_str(f"loss {(data_loss_sum + penalty_sum).item() / seen:.4f} "
                                            f"acc {correct.item() / seen:.4f}", refresh=False)
            if lookahead and epoch == cfg.epochs:
                lookahead.finish(model)
            train_seconds = time.perf_counter() - started
            if bar is not None:
                bar.close()

            workers.sum_(data_loss_sum, correct)
            data_loss_mean, penalty_mean = data_loss_sum.item() / n_train, penalty_sum.item() / n_train
            row = {"epoch": epoch, "loss": data_loss_mean + penalty_mean, "acc": correct.item() / n_train}
            if workers.main:  # the others wait for its row and its choice of the best epoch
                # Keras's val_loss adds the penalty at the epoch's end weights.
                end_penalty = kernel_penalty(model, cfg.l2, cfg.l1, cfg.penalty_scope).item()
                val_data_loss = val_acc = val_ece = None
                if splits.val is not None:
                    val_data_loss, val_acc, val_ece = evaluate(evaluated, *splits.val, cfg.eval_batch_size, precision)
                row.update(val_loss=None if val_data_loss is None else val_data_loss + end_penalty, val_acc=val_acc,
                           val_ece=val_ece)
                eval_seconds += time.perf_counter() - started - train_seconds
                row.update(data_loss=data_loss_mean, penalty=penalty_mean, val_data_loss=val_data_loss,
                           lr=optimizer.param_groups[0]["lr"], steps=len(batches), seconds=time.perf_counter() - started,
                           train_seconds=train_seconds, images_per_s=n_train / train_seconds)
                # The best epoch by the monitored metric (the last epoch when nothing is held out).
                score = epoch if val_acc is None else val_acc if cfg.monitor == "val_acc" else -row["val_loss"]
                if score > best_score:
                    best_score, best_epoch = score, epoch
                    run.save(BEST_WEIGHTS, evaluated.state_dict())
                run.save(LAST_WEIGHTS, evaluated.state_dict())
            row, best_score, best_epoch = workers.from_main((row, best_score, best_epoch))
            history.append(row)
            if workers.main:
                # The checkpoint is the commit point: history files are derived from it.
                run.save(CHECKPOINT, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                      "ema": ema.state_dict() if ema else None, "augment": augment.state_dict(),
                                      "lookahead": lookahead.state_dict() if lookahead else None,
                                      "shuffle_rng": shuffle.get_state(), "torch_rng": torch.get_rng_state(),
                                      "history": history, "best_score": best_score, "best_epoch": best_epoch})
                run.write_history(history)
                trackers.epoch(row)
                log(epoch_line(row, cfg.epochs))

    if not workers.main:  # the main worker alone tests and writes the results
        return {}

    # The test set is scored in fp32 whatever the training precision, so that metrics.json and
    # `regulab evaluate` (fp32 on any machine) report one number for one run.
    started_test = time.perf_counter()
    last_test = best_test = evaluate(evaluated, *splits.test, cfg.eval_batch_size, "fp32")
    if best_epoch != len(history):
        evaluated.load_state_dict(run.load_weights(BEST_WEIGHTS, evaluated))
        best_test = evaluate(evaluated, *splits.test, cfg.eval_batch_size, "fp32")
    best_test_tta = evaluate(evaluated, *splits.test, cfg.eval_batch_size, "fp32", cfg.tta) if cfg.tta else None
    eval_seconds += time.perf_counter() - started_test
    best = history[best_epoch - 1]
    metrics = {
        "best_epoch": best_epoch, "best_val_acc": best["val_acc"], "best_val_loss": best["val_loss"],
        "min_val_loss_epoch": min(history, key=lambda r: r["val_loss"])["epoch"] if splits.val else None,
        "epochs_run": len(history), "final_acc": history[-1]["acc"], "final_val_acc": history[-1]["val_acc"],
        # Test accuracy of the weights chosen on validation; the last epoch's beside it.
        # test_loss is the negative log-likelihood of the true class (no penalty): with test_ece, the calibration.
        "test_loss": best_test.loss, "test_acc": best_test.acc, "test_ece": best_test.ece,
        "test_loss_last": last_test.loss, "test_acc_last": last_test.acc, "test_ece_last": last_test.ece,
        "tta": cfg.tta, "test_loss_tta": best_test_tta and best_test_tta.loss,
        "test_acc_tta": best_test_tta and best_test_tta.acc, "test_ece_tta": best_test_tta and best_test_tta.ece,
        "epochs": cfg.epochs, "train_size": n_train, "val_size": len(splits.val[1]) if splits.val else 0,
        "test_size": len(splits.test[1]), "data": splits.source, "device": device.type, "precision": precision,
        "test_precision": "fp32",
        "threads": torch.get_num_threads(), "seconds": sum(r["seconds"] for r in history),
        # This session's wall time, from the call to the metrics, and its parts.
        "wall_seconds": time.perf_counter() - started_run, "eval_seconds": eval_seconds,
        "train_seconds": sum(r["train_seconds"] for r in history),
        "median_images_per_s": statistics.median(r["images_per_s"] for r in history),
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "normalization": {"mean": splits.mean, "std": splits.std, "scale": "0-255"},
    }
    plot_curves(history, run.path / CURVES, title=run_title(vars(cfg)))
    run.write_json(METRICS, metrics)  # written last: its presence marks the run finished
    trackers.finish(metrics, [run.path / CURVES, run.path / METRICS, run.path / CONFIG_TOML])
    if splits.val is not None:
        log(f"best epoch {best_epoch}: val_acc {best['val_acc']:.4f}; test_acc {best_test.acc:.4f} (best weights, fp32), "
            f"{last_test.acc:.4f} (last); test ECE {best_test.ece:.4f}")
    else:
        log(f"test_acc {best_test.acc:.4f} after {best_epoch} epochs (fp32); test ECE {best_test.ece:.4f}")
    if cfg.tta:
        log(f"test_acc {best_test_tta.acc:.4f} with test-time augmentation (level {cfg.tta}, fp32): the headline; "
            f"{best_test.acc:.4f} without")
    log(f"wall time {metrics['wall_seconds']:.0f} s: training {metrics['train_seconds']:.0f} s, "
        f"evaluation {eval_seconds:.0f} s; outputs in {run.path}")
    return metrics


@contextlib.contextmanager
def _closing_on_failure(trackers: Trackers | None):
    """Flush and close the trackers when training ends in an error, and let the error through."""
    try:
        yield
    except BaseException:
        if trackers:
            trackers.close()
        raise


def _progress_bar(total: int, epoch: int, epochs: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"Epoch {epoch}/{epochs}", unit="step", leave=False,
                mininterval=0.5, dynamic_ncols=True)
