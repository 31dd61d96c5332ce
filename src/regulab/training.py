"""Training with Keras's semantics, as fast as the machine allows.

What is Keras about it: Adam's update rule (`optim.KerasAdam`), the L2 penalty added to the
loss and included in the reported `loss`, a fresh shuffle each epoch with the last partial
batch kept, and epoch metrics averaged over every sample seen while the weights moved (as
Keras's progress bar does). What is fast about it: the data set lives in memory as one tensor,
batches are gathered by index, bf16 autocast and channels_last where the chip supports bf16, a
fused optimizer, the memory a step frees kept for the next (`runtime.heap_kept`), and no value
read back to the host in the step loop: the NaN guard and the progress bar look at the device's
sums every CHECK_EVERY steps, and random numbers are drawn where the data is.

Read top to bottom: `TrainState` (everything a checkpoint holds), `RunContext` (what the run
computes on and writes to), `train_one_epoch` (the step loop), `epoch_row` and `validate`, then
`train`, which sets a run up, alternates them, hands each epoch's row to the callbacks (weights,
checkpoint, history, trackers, the line, early stop: `callbacks.py`), and scores the test set.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from regulab import data as data_lib
from regulab.augment import BatchAugment
from regulab.callbacks import (
    CallbackList,
    CheckpointSaver,
    CurvesFigure,
    EarlyStop,
    EpochLine,
    HistoryWriter,
    MetricsWriter,
    TrackerLog,
    WeightsSaver,
)
from regulab.config import Config, default_out, to_toml
from regulab.errors import RegulabError, TrainingStopped
from regulab.evaluation import Scores, autocast, evaluate, per_image, predict, scores
from regulab.files import atomic_write
from regulab.models import build_model, kernel_norms
from regulab.optim import Lookahead, Optimizers, SharpnessAware, build_optimizer, lr_factor
from regulab.parallel import Workers, join_workers
from regulab.regularizers import Regularizers, RunInfo
from regulab.rundir import (
    BEST_WEIGHTS,
    CHECKPOINT,
    CONFIG,
    CONFIG_TOML,
    LAST_WEIGHTS,
    TEST_PREDICTIONS,
    RunDir,
    matching_state,
)
from regulab.runtime import CoreShare, StopOnSignal, device_name, heap_kept, machine, resolve_device, resolve_precision
from regulab.tracking import Trackers
from regulab.tracking import check_available as check_tracking

# ---------------------------------------------------------------------------------------------
# The state of a run: what a checkpoint holds, written and read in this one place

@dataclass
class TrainState:
    model: nn.Module                  # the plain network (DDP wraps it for the steps, never for saving)
    optimizer: torch.optim.Optimizer | Optimizers
    regularizers: Regularizers        # the ones switched on, each at its hooks (`regularizers.py`)
    lookahead: Lookahead | None
    augment: BatchAugment             # owns its random generators, on the data's device
    shuffle: torch.Generator          # the epochs' data order (on the host: one draw per epoch)
    history: list[dict]
    best_score: float = -math.inf
    best_epoch: int = 0
    sam: SharpnessAware | None = None  # with --sam: two passes a step; nothing of it outlives a step
    # Where each session of the run trained, from which epoch (runtime.machine): a CPU model
    # moves a run as a GPU does, so a pair is matched on the machine, and a resume may move it.
    machines: list[dict] = dataclasses.field(default_factory=list)

    # What every checkpoint holds; the regularizers' states (in "regularizers", or before regulab
    # 0.2 the moving average's alone in "ema") besides.
    KEYS = ("epoch", "model", "optimizer", "augment", "lookahead", "shuffle_rng", "torch_rng", "cuda_rng",
            "history", "best_score", "best_epoch")

    @classmethod
    def start(cls, cfg: Config, model: nn.Module, x_train: torch.Tensor, classes: int,
              normalization: tuple[tuple[float, ...], tuple[float, ...]] = ((0.0,) * 3, (255.0,) * 3)) -> "TrainState":
        """A fresh state for `model`, moved to the training data's device; `normalization` (the
        data's mean and std, 0-255) for augmentations that work on pixels."""
        model.to(x_train.device, memory_format=torch.channels_last)
        if cfg.whiten:  # from training images only; deterministic, so a resumed run rebuilds the same layer
            model.whiten_(x_train[:5000])
        augment = BatchAugment(cfg.augment, cfg.crop_pad, cfg.cutout_size, seed=cfg.seed, device=x_train.device,
                               mean=normalization[0], std=normalization[1])
        return cls(
            model, build_optimizer(cfg, model),
            Regularizers(RunInfo(cfg, model, classes, augment.generator, augment.rng)),
            Lookahead(cfg.lookahead) if cfg.lookahead else None, augment,
            torch.Generator().manual_seed(cfg.seed), [],
            sam=SharpnessAware(model.parameters(), cfg.sam, cfg.sam_adaptive) if cfg.sam else None)

    @property
    def evaluated(self) -> nn.Module:
        """The weights that are validated, selected, saved and tested."""
        return self.regularizers.evaluated(self.model)

    def save(self, run: RunDir) -> None:
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        run.save(CHECKPOINT, {
            "epoch": len(self.history), "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "regularizers": self.regularizers.state_dict(), "augment": self.augment.state_dict(),
            "lookahead": self.lookahead.state_dict() if self.lookahead else None,
            "shuffle_rng": self.shuffle.get_state(), "torch_rng": torch.get_rng_state(), "cuda_rng": cuda_rng,
            "history": self.history, "best_score": self.best_score, "best_epoch": self.best_epoch,
            "machines": self.machines})

    @staticmethod
    def read(run: RunDir) -> dict:
        """The checkpoint of an interrupted run, checked to be one."""
        run.require_started()
        if run.finished():
            raise RegulabError(f"{run.path} already holds a finished run; there is nothing to resume. To train on from "
                               f"its weights, start a new run: regulab train --init-from {run.path} --out NEW_DIR")
        checkpoint = run.load(CHECKPOINT)
        # cuda_rng came with regulab 0.1's later checkpoints; older ones are read without it.
        if not isinstance(checkpoint, dict) or not set(TrainState.KEYS) - {"cuda_rng"} <= set(checkpoint):
            raise RegulabError(f"{run.path / CHECKPOINT} is not a regulab checkpoint; train again without --resume")
        return checkpoint

    def restore(self, checkpoint: dict, source: Path) -> None:
        self.model.load_state_dict(matching_state(checkpoint["model"], self.model, source))
        base_lrs = [group["initial_lr"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        for group, base_lr in zip(self.optimizer.param_groups, base_lrs):  # the config's rates, not the last scheduled ones
            group["initial_lr"] = base_lr
        self.regularizers.load_state_dict(checkpoint.get("regularizers", {"weight-average": checkpoint.get("ema")}))
        if self.lookahead:
            self.lookahead.load_state_dict(checkpoint["lookahead"])
        self.augment.load_state_dict(checkpoint["augment"])
        self.shuffle.set_state(checkpoint["shuffle_rng"])
        torch.set_rng_state(checkpoint["torch_rng"])
        if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
        self.history, self.best_score, self.best_epoch = checkpoint["history"], checkpoint["best_score"], checkpoint["best_epoch"]
        self.machines = checkpoint.get("machines", [])  # checkpoints from before regulab recorded machines have none


# ---------------------------------------------------------------------------------------------
# One epoch of training, and validation

# Steps between looks at the device's running sums, for the NaN guard and the progress bar. A
# look waits for the device to catch up, so it is rare; a non-finite loss found there stops the
# run before its epoch is saved, so no checkpoint ever holds the weights it spoiled.
CHECK_EVERY = 50
NO_BAD_STEP = 2**62  # the first bad step's value while there is none: the smallest wins across workers


@dataclass
class EpochSums:
    """Sums over an epoch's samples, kept on the device so that no step waits for the host."""

    data_loss: torch.Tensor
    penalty: torch.Tensor
    correct: torch.Tensor
    first_bad_step: torch.Tensor      # the first step whose loss was not finite, else NO_BAD_STEP
    first_bad_loss: torch.Tensor      # and that loss
    seen: int = 0  # this worker's samples, counted on the host from batch sizes it already knows
    started: float = dataclasses.field(default_factory=time.perf_counter)
    seconds: float = 0.0

    @classmethod
    def zeros(cls, device: torch.device) -> "EpochSums":
        def zero(dtype):
            return torch.zeros((), dtype=dtype, device=device)
        return cls(zero(torch.float64), zero(torch.float64), zero(torch.int64),
                   torch.full((), NO_BAD_STEP, device=device), zero(torch.float32))

    def add(self, step: int, loss: torch.Tensor, data_loss: torch.Tensor, penalty_sum: torch.Tensor,
            logits: torch.Tensor, labels: torch.Tensor) -> None:
        """One step's sums: `penalty_sum` is the penalty times the whole batch's size (every
        worker's share), `labels` this worker's."""
        newly_bad = ~torch.isfinite(loss) & (self.first_bad_step == NO_BAD_STEP)
        self.first_bad_step.masked_fill_(newly_bad, step)
        self.first_bad_loss = torch.where(newly_bad, loss, self.first_bad_loss)
        self.data_loss += data_loss
        self.penalty += penalty_sum
        self.correct += (logits.argmax(1) == labels).sum()
        self.seen += len(labels)

    def check_finite(self, workers: Workers, cfg: Config, epoch: int, where: Path) -> None:
        """Stop the run, naming the first step whose loss was not finite, if there was one."""
        anyone_first = self.first_bad_step.clone()
        workers.min_(anyone_first)
        step = anyone_first.item()  # the sync point: the host waits for the device here
        if step == NO_BAD_STEP:
            return
        kept = f"finished epochs kept in {where}: {epoch - 1}" if epoch > 1 else "no epoch had finished"
        value = self.first_bad_loss.item() if self.first_bad_step.item() == step else "not finite on another worker"
        raise RegulabError(f"the loss became {value} at epoch {epoch}, step {step}; "
                           f"lower --lr (now {cfg.lr}) and train again; {kept}")


@dataclass
class RunContext:
    """What a run computes on and writes to, passed as one object instead of a dozen parameters."""

    run: RunDir
    device: torch.device
    precision: str
    workers: Workers
    cores: CoreShare
    stop: StopOnSignal
    log: Callable
    show_bar: bool = False
    started: float = dataclasses.field(default_factory=time.perf_counter)
    net: nn.Module | None = None  # the network the steps run: the plain one, or DDP's wrapper under torchrun
    stop_training: bool = False   # a callback's request to end the run after this epoch
    metrics: dict | None = None   # the run's results, once the test is scored


def train_one_epoch(state: TrainState, cfg: Config, ctx: RunContext, epoch: int, x_train: torch.Tensor,
                    y_train: torch.Tensor) -> EpochSums:
    model, optimizer, device = state.model, state.optimizer, x_train.device
    model.train()
    n_train = len(y_train)
    sums = EpochSums.zeros(device)
    batches = torch.randperm(n_train, generator=state.shuffle).to(device, non_blocking=True).split(cfg.batch_size)
    bar = _progress_bar(len(batches), epoch, cfg.epochs) if ctx.show_bar else None
    base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
    for step, idx in enumerate(batches, 1):
        progress = epoch - 1 + step / len(batches)
        factor = lr_factor(cfg, progress)
        for group, base_lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = base_lr * factor if progress <= group.get("until_epoch", math.inf) else 0.0
        xb, yb = x_train[idx], y_train[idx]
        xb = state.augment(xb, idx, epoch) if state.augment else xb
        xb, target = state.regularizers.before_batch(xb, yb)
        mine = ctx.workers.share(len(idx))  # every worker drew the whole batch's augmentation alike
        xb, yb, target = xb[mine], yb[mine], target[mine]
        loss, data_loss, penalty, logits = _loss(state, cfg, ctx, xb, target, len(idx))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if state.sam:  # the gradient again at the weights moved up it; the step from there
            state.sam.ascend()
            optimizer.zero_grad(set_to_none=True)
            _loss(state, cfg, ctx, xb, target, len(idx))[0].backward()
            state.sam.descend()
        optimizer.step()
        state.regularizers.after_step(model)
        steps_done = (epoch - 1) * len(batches) + step
        if state.lookahead and steps_done % cfg.lookahead == 0:
            state.lookahead.update(model, steps_done / (cfg.epochs * len(batches)))
        sums.add(step, loss.detach(), data_loss.detach(), penalty.detach() * len(idx), logits.detach(), yb)

        if step % CHECK_EVERY == 0 or step == len(batches):  # the NaN guard's look at the device's sums
            sums.check_finite(ctx.workers, cfg, epoch, ctx.run.path)
            if bar is not None:  # this worker's own samples; the penalty is everyone's
                seen_by_all = min(step * cfg.batch_size, n_train)
                bar.set_postfix_str(f"loss {sums.data_loss.item() / sums.seen + sums.penalty.item() / seen_by_all:.4f} "
                                    f"acc {sums.correct.item() / sums.seen:.4f}", refresh=False)
        if bar is not None:
            bar.update()
        if ctx.stop.signal:
            raise TrainingStopped(f"stopped by {ctx.stop.signal} in epoch {epoch}; finished epochs saved: {epoch - 1}",
                                  run_dir=ctx.run.path)
        ctx.cores.adjust(ctx.log)
    if bar is not None:
        bar.close()
    state.regularizers.on_epoch_end(model, epoch)
    if state.lookahead and epoch == cfg.epochs:
        state.lookahead.finish(model)
    sums.seconds = time.perf_counter() - sums.started
    return sums


def _loss(state: TrainState, cfg: Config, ctx: RunContext, xb: torch.Tensor, target: torch.Tensor, batch: int):
    """The loss to minimize (the mean over the whole batch of `batch` images, of which `xb` is this
    worker's share, as DDP divides the summed gradients by the workers; plus the penalty: what
    Keras minimizes and reports), its two parts, and the logits."""
    with autocast(ctx.device, ctx.precision):
        logits = ctx.net(xb.contiguous(memory_format=torch.channels_last)).float()
    data_loss = F.cross_entropy(logits, target, reduction="sum")
    penalty = state.regularizers.penalty(state.model)
    return data_loss * (ctx.workers.size / batch) + penalty, data_loss, penalty, logits


def epoch_row(state: TrainState, cfg: Config, ctx: RunContext, splits: data_lib.Splits, sums: EpochSums,
              epoch: int) -> dict:
    """The epoch's history row (training sums over every worker, then validation) and the best
    epoch so far, chosen by the main worker; every worker leaves with the same row, appended."""
    n_train = len(splits.train[1])
    ctx.workers.sum_(sums.data_loss, sums.correct)
    data_loss_mean, penalty_mean = sums.data_loss.item() / n_train, sums.penalty.item() / n_train
    row = {"epoch": epoch, "loss": data_loss_mean + penalty_mean, "acc": sums.correct.item() / n_train}
    if ctx.workers.main:  # the others wait for its row and its choice of the best epoch
        row.update(validate(state, cfg, splits, ctx.precision))
        row.update(data_loss=data_loss_mean, penalty=penalty_mean, lr=state.optimizer.param_groups[0]["lr"],
                   steps=math.ceil(n_train / cfg.batch_size), seconds=time.perf_counter() - sums.started,
                   train_seconds=sums.seconds, images_per_s=n_train / sums.seconds)
        if splits.noisy is not None:  # how much of the wrong labels the network has learned
            row["memorized"] = memorized(state.evaluated, splits, cfg.eval_batch_size, ctx.precision)
        # What the regularizer does to the weights: the penalty's share of the loss, each kernel's norm.
        row.update(penalty_share=penalty_mean / (data_loss_mean + penalty_mean) if state.regularizers.penalizes else None,
                   **kernel_norms(state.evaluated))
        # The best epoch by the monitored metric (the last epoch when nothing is held out).
        score = epoch if row["val_acc"] is None else row["val_acc"] if cfg.monitor == "val_acc" else -row["val_loss"]
        if score > state.best_score:
            state.best_score, state.best_epoch = score, epoch
    row, state.best_score, state.best_epoch = ctx.workers.from_main((row, state.best_score, state.best_epoch))
    state.history.append(row)
    return row


def memorized(model: nn.Module, splits: data_lib.Splits, batch_size: int, precision: str) -> float:
    """The share of the training examples given a wrong label that the network predicts as that
    wrong label: memorization (Zhang et al. 2017)."""
    x, given = splits.train[0][splits.noisy], splits.train[1][splits.noisy]
    return evaluate(model, x, given, batch_size, precision).acc


def validate(state: TrainState, cfg: Config, splits: data_lib.Splits, precision: str) -> dict:
    """The validation columns of an epoch's row. Keras's val_loss adds the penalty at the epoch's
    end weights; val_data_loss is the cross-entropy alone, which compares across penalties."""
    end_penalty = state.regularizers.penalty(state.model).item()
    if splits.val is None:
        return {"val_loss": None, "val_acc": None, "val_ece": None, "val_data_loss": None}
    scores = evaluate(state.evaluated, *splits.val, cfg.eval_batch_size, precision)
    return {"val_loss": scores.loss + end_penalty, "val_acc": scores.acc, "val_ece": scores.ece, "val_data_loss": scores.loss}


# ---------------------------------------------------------------------------------------------
# The run

def check_fits_images(cfg: Config, image_size: int) -> None:
    """Refuse augmentation sizes that make no sense at this image size (set for CIFAR's 32x32)."""
    ops = cfg.augment.split(",")
    if "cutout" in ops and cfg.cutout_size >= image_size:
        raise RegulabError(f"--cutout-size {cfg.cutout_size} would blank whole {image_size}x{image_size} images; pass "
                           f"--cutout-size {max(1, image_size // 4)} (a quarter of the side, as 8 is of CIFAR's 32)")
    if {"crop", "translate"} & set(ops) and cfg.crop_pad >= image_size // 2:
        raise RegulabError(f"--crop-pad {cfg.crop_pad} would shift {image_size}x{image_size} images by half their side or "
                           f"more; pass --crop-pad {max(1, image_size // 8)} (an eighth of the side, as 4 is of CIFAR's 32)")


def train(cfg: Config, splits: data_lib.Splits | None = None, overwrite: bool = False, resume: bool = False,
          log=print, progress: bool | None = None, callbacks: list | tuple = ()) -> dict:
    """Train as `cfg` says, write the run folder, and return the final metrics.

    `resume` continues the run in `cfg.out` from its last checkpoint; `splits` may be given to
    reuse data already in memory; `progress` None shows the in-epoch bar only on a terminal;
    `callbacks` are called after regulab's own at the points `callbacks` names.
    """
    started_run = time.perf_counter()
    cfg.validate()
    check_tracking(cfg)
    build_model(cfg, check_only=True)  # a wrong model name or option, before any data is read (or downloaded)
    # Everything that can fail on the user's input fails before the run folder exists, so a run
    # that cannot start leaves nothing behind.
    if splits is None:
        splits = data_lib.splits_for(cfg)
    check_fits_images(cfg, splits.image_size)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, len(splits.classes), splits.image_size)
    if cfg.whiten and not hasattr(model, "whiten_"):
        raise RegulabError(f"--whiten needs a model with a whitening layer, such as fast-net; {cfg.model} has none")
    if (cfg.l2 or cfg.l1) and cfg.penalty_scope == "seed" and not hasattr(model, "seed_regularized"):
        raise RegulabError(f"the {cfg.model} model does not mark the kernels the seed regularizes, so --l2/--l1 with "
                           "--penalty-scope seed would cover nothing; pass --penalty-scope all, or --l2 0")
    device = resolve_device(cfg.device)
    workers = join_workers(device)
    if workers.size > 1:
        if device.type == "cuda":
            device = torch.device("cuda", workers.local_rank)
        if not workers.main:
            log, progress = (lambda *_: None), False
    init_weights = RunDir(cfg.init_from).load_weights(BEST_WEIGHTS, model) if cfg.init_from and not resume else None
    checkpoint = TrainState.read(RunDir(cfg.out)) if resume else None
    # The main worker makes (or reopens) the folder and holds it; the others learn where.
    path = None
    if workers.main:
        run = RunDir(cfg.out).lock() if resume else RunDir.create(default_out(cfg).out, overwrite=overwrite)
        path = run.path
    path = workers.from_main(path)
    run = run if workers.main else RunDir(path)
    precision, note = resolve_precision(cfg.precision, device)
    if note:
        log(f"note: {note}")
    ctx = RunContext(run, device, precision, workers, CoreShare(cfg.threads), StopOnSignal(), log,
                     sys.stderr.isatty() if progress is None else progress, started=started_run)
    try:
        return _train_in(ctx, cfg, model, splits, checkpoint, init_weights, callbacks)
    finally:
        run.unlock()  # now, not when the interpreter gets round to it: a notebook may resume this run next


def _train_in(ctx: RunContext, cfg: Config, model: nn.Module, splits: data_lib.Splits, checkpoint: dict | None,
              init_weights: dict | None, user_callbacks: list | tuple) -> dict:
    """The run itself, in the folder `train` holds: set up, the epochs, the test."""
    torch.use_deterministic_algorithms(cfg.deterministic)
    # Denormal floats (tiny Adam second moments, decaying activations) are ~100x slower on x86
    # and sap throughput as training goes on; TensorFlow flushes them to zero by default too.
    torch.set_flush_denormal(True)
    run, workers, log = ctx.run, ctx.workers, ctx.log
    x_train, y_train = (t.to(ctx.device) for t in splits.train)
    if init_weights is not None:
        model.load_state_dict(init_weights)
        log(f"starting from the weights of {cfg.init_from} ({BEST_WEIGHTS})")
    state = TrainState.start(cfg, model, x_train, len(splits.classes), (splits.mean, splits.std))
    # Under torchrun, DDP averages the workers' gradients; `state.model` stays the plain network.
    ctx.net = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) \
        if workers.size > 1 else model
    if checkpoint is not None:
        state.restore(checkpoint, run.path / CHECKPOINT)
        if workers.main:
            run.write_history(state.history)  # a kill between checkpoint and history may have left it one behind
        log(f"resuming after epoch {checkpoint['epoch']} of {cfg.epochs}")
    elif workers.main:
        run.write_json(CONFIG, {**vars(cfg), "out": str(run.path)})
        atomic_write(run.path / CONFIG_TOML, to_toml(cfg).encode())
    trackers = Trackers(cfg, run, checkpoint is not None) if workers.main else None
    callbacks = CallbackList(_callbacks(ctx, state, cfg, trackers) + list(user_callbacks) if workers.main else [])
    n_train = len(y_train)

    resumed_after = len(state.history)
    with ctx.cores, ctx.stop, heap_kept(), _closing_on_failure(trackers):
        ctx.cores.adjust(log)
        state.machines.append({"from_epoch": len(state.history) + 1, **machine(ctx.device)})
        threads = torch.get_num_threads()
        log(f"data: {splits.source}: {n_train:,} train, {len(splits.val[1]) if splits.val else 0:,} validation, "
            f"{len(splits.test[1]):,} test; {ctx.device.type} {ctx.precision}, {threads} thread{'s' * (threads > 1)}; "
            f"run folder {run.path}")
        if workers.size > 1:
            log(f"data-parallel: {workers.size} workers ({dist.get_backend()}), each {cfg.batch_size // workers.size} "
                f"of every batch of {cfg.batch_size}")
        for note in splits.notes:
            log(f"note: {note}")
        if splits.val is None:
            log(f"training on all {n_train:,} training images with no validation set; the {len(splits.test[1]):,} "
                "test images are used once, after training, and choose nothing")
        callbacks.on_train_begin({})
        ctx.stop_training = workers.from_main(ctx.stop_training)  # an early stop that a resume finds already due
        for epoch in range(len(state.history) + 1, cfg.epochs + 1):
            if ctx.stop_training:
                break
            sums = train_one_epoch(state, cfg, ctx, epoch, x_train, y_train)
            row = epoch_row(state, cfg, ctx, splits, sums, epoch)
            callbacks.on_epoch_end(epoch, row)
            ctx.stop_training = workers.from_main(ctx.stop_training)
        if state.lookahead and len(state.history) < cfg.epochs:  # an early stop ends on the slow weights too
            state.lookahead.finish(state.model)
            if workers.main:
                run.save(LAST_WEIGHTS, state.evaluated.state_dict())

        if not workers.main:  # the main worker alone tests and writes the results
            return {}
        this_session = state.history[resumed_after:]  # a resumed run's earlier epochs ran in an earlier process
        metrics = _test(state, cfg, splits, run, log)
        metrics.update(
            precision=ctx.precision, device=ctx.device.type, hardware=device_name(ctx.device),
            threads=torch.get_num_threads(), machines=state.machines, data=splits.source,
            train_size=n_train, val_size=len(splits.val[1]) if splits.val else 0, test_size=len(splits.test[1]),
            epochs=cfg.epochs, seconds=sum(r["seconds"] for r in state.history),  # every epoch's, all sessions
            # This session's wall time, from the call to the metrics, and its parts: training, and
            # evaluation (its validations and the test).
            wall_seconds=time.perf_counter() - ctx.started,
            train_seconds=sum(r["train_seconds"] for r in this_session),
            eval_seconds=sum(r["seconds"] - r["train_seconds"] for r in this_session) + metrics.pop("test_seconds"),
            median_images_per_s=statistics.median(r["images_per_s"] for r in state.history),
            peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            peak_gpu_memory_mb=torch.cuda.max_memory_allocated(ctx.device) / 2**20 if ctx.device.type == "cuda" else None,
            normalization={"mean": splits.mean, "std": splits.std, "scale": "0-255"},
            classes=list(splits.classes), image_size=splits.image_size)
        ctx.metrics = metrics
        callbacks.on_train_end({**state.history[-1], **metrics})
    log(f"wall time {metrics['wall_seconds']:.0f} s: training {metrics['train_seconds']:.0f} s, "
        f"evaluation {metrics['eval_seconds']:.0f} s; outputs in {run.path}")
    return metrics


def _callbacks(ctx: RunContext, state: TrainState, cfg: Config, trackers: Trackers) -> list:
    """regulab's own jobs around the epochs, in the order they must run (see `callbacks`)."""
    # After an epoch: weights, the checkpoint (the commit point), the history derived from it, the
    # trackers, the line. At the end: the figure, metrics.json (the run is finished once it
    # exists), then the trackers, which upload both.
    jobs = [WeightsSaver(ctx, state), CheckpointSaver(ctx, state), HistoryWriter(ctx, state),
            CurvesFigure(ctx, state, cfg.settings()), MetricsWriter(ctx), TrackerLog(trackers, ctx.run),
            EpochLine(cfg.epochs, ctx.log)]
    if cfg.early_stop:
        jobs.append(EarlyStop(ctx, state, cfg.early_stop, cfg.monitor, cfg.epochs))
    return jobs


def _test(state: TrainState, cfg: Config, splits: data_lib.Splits, run: RunDir, log) -> dict:
    """Score the test set once, with the best epoch's weights (and the last epoch's beside them).
    In fp32 whatever the training precision, so that metrics.json and `regulab evaluate` (fp32 on
    any machine) report one number for one run."""
    started = time.perf_counter()
    history, evaluated = state.history, state.evaluated
    x_test, y_test = splits.test
    best_logits = predict(evaluated, x_test, cfg.eval_batch_size, "fp32")
    last_test = best_test = scores(best_logits, y_test)
    if state.best_epoch != len(history):
        evaluated.load_state_dict(run.load_weights(BEST_WEIGHTS, evaluated))
        best_logits = predict(evaluated, x_test, cfg.eval_batch_size, "fp32")
        best_test = scores(best_logits, y_test)
    run.write_arrays(TEST_PREDICTIONS, **per_image(best_logits, y_test))  # for intervals over test images too
    tta_test = scores(predict(evaluated, x_test, cfg.eval_batch_size, "fp32", cfg.tta, cfg.tta_unsure, plain=best_logits),
                      y_test) if cfg.tta else Scores(None, None, None)
    best = history[state.best_epoch - 1]
    metrics = {
        "best_epoch": state.best_epoch, "best_val_acc": best["val_acc"], "best_val_loss": best["val_loss"],
        "min_val_loss_epoch": min(history, key=lambda r: r["val_loss"])["epoch"] if splits.val else None,
        "epochs_run": len(history), "final_acc": history[-1]["acc"], "final_val_acc": history[-1]["val_acc"],
        "memorized": history[-1].get("memorized"),  # with label noise: the wrong labels learned, at the end
        # test_loss is the negative log-likelihood of the true class (no penalty): with test_ece, the calibration.
        "test_loss": best_test.loss, "test_acc": best_test.acc, "test_ece": best_test.ece,
        "test_loss_last": last_test.loss, "test_acc_last": last_test.acc, "test_ece_last": last_test.ece,
        "tta": cfg.tta, "tta_unsure": cfg.tta_unsure,
        "test_loss_tta": tta_test.loss, "test_acc_tta": tta_test.acc, "test_ece_tta": tta_test.ece,
        "test_precision": "fp32", "test_seconds": None,
    }
    if splits.val is not None:
        log(f"best epoch {state.best_epoch}: val_acc {best['val_acc']:.4f}; test_acc {best_test.acc:.4f} (best weights, "
            f"fp32), {last_test.acc:.4f} (last); test ECE {best_test.ece:.4f}")
    else:
        log(f"test_acc {best_test.acc:.4f} after {state.best_epoch} epochs (fp32); test ECE {best_test.ece:.4f}")
    if cfg.tta:
        share = f", on the {cfg.tta_unsure:.0%} least confident images" if cfg.tta_unsure < 1 else ""
        log(f"test_acc {tta_test.acc:.4f} with test-time augmentation (level {cfg.tta}{share}, fp32): the headline; "
            f"{best_test.acc:.4f} without")
    metrics["test_seconds"] = time.perf_counter() - started
    return metrics


@contextlib.contextmanager
def _closing_on_failure(trackers: Trackers | None):
    """Flush and close the trackers when the run ends in an error (training, the final test or
    the figure), and let the error through."""
    try:
        yield
    except BaseException:
        if trackers:
            trackers.close()
        raise


def _progress_bar(total: int, epoch: int, epochs: int):
    try:  # a notebook widget where ipywidgets is there to draw it; without it tqdm.auto only warns
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm import tqdm

    return tqdm(total=total, desc=f"Epoch {epoch}/{epochs}", unit="step", leave=False,
                mininterval=0.5, dynamic_ncols=True)
