"""Every training setting in one place, and the named presets built from them.

A preset is a function in the registry returning the values it changes from `Config`'s
defaults; its docstring is the one line `regulab presets` shows. The command line can then
override any single value (`--epochs 5`), so a run is always: defaults < preset < options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from regulab.errors import RegulabError, unknown_name


@dataclass
class Config:
    # -- data: the seed's pipeline
    data: str | None = None     # archive, folder or 'cifar10-mini'; None: $REGULAB_DATA, cache, download
    val_fraction: float = 0.3   # seed: train_test_split(test_size=0.3); 0 trains on all 50,000
    split_seed: int = 777       # seed: random_state=777, so every run validates on the same 15,000
    # -- model
    model: str = "seed-cnn"     # a name from regulab.models.MODELS
    batch_norm: bool = False    # BN after every conv, before its ReLU
    dropout_blocks: float = 0.0  # dropout rate after each conv block's pooling
    dropout_head: float = 0.0   # dropout rate before the classifier
    # -- penalties added to the loss, as Keras regularizers are
    l2: float = 1e-3            # seed: kernel_regularizer=l2(0.001): 0.001 * sum(w ** 2) per kernel
    l1: float = 0.0             # l1 * sum(|w|) on the same kernels
    penalty_scope: str = "seed"  # seed: the four kernels the notebook marks; all: every kernel
    # -- data augmentation, on whole batches
    augment: str = ""           # comma list of crop, flip, cutout
    crop_pad: int = 4           # crop: zero-pad by this much, then cut 32x32 back at random
    cutout_size: int = 8        # cutout: side of the zeroed square (DeVries & Taylor use 8-16 on CIFAR)
    mixup: float = 0.0          # Beta(alpha, alpha) for mixup; 0 is off
    cutmix: float = 0.0         # Beta(alpha, alpha) for cutmix; 0 is off (with mixup, each batch picks one)
    label_smoothing: float = 0.0
    # -- optimization: the seed's Keras settings
    epochs: int = 30
    batch_size: int = 32        # 35,000 / 32 gives the seed's 1,094 steps, the last one partial
    optimizer: str = "adam"     # adam (Keras's rule), adamw (decoupled weight decay), sgd (Nesterov)
    lr: float = 1e-4            # seed: Adam(1e-4), with Keras's betas (0.9, 0.999) and epsilon 1e-7
    weight_decay: float = 0.0   # adamw: decoupled, w -= lr * wd * w each step; sgd: added to the gradient
    momentum: float = 0.9       # sgd only
    schedule: str = "constant"  # constant, step, cosine, onecycle; applied every step
    warmup_epochs: float = 0.0  # linear warm-up from 0 (onecycle: 30% of the run when 0)
    step_epochs: int = 10       # step: multiply lr by step_gamma every this many epochs
    step_gamma: float = 0.1
    ema: float = 0.0            # decay of an exponential moving average of the weights, evaluated instead; 0 off
    # -- model selection
    monitor: str = "val_acc"    # picks best.pt, and early stopping watches it
    early_stop: int = 0         # stop after this many epochs without improvement (0: never); best weights restored
    seed: int = 0               # weights, shuffling, dropout, augmentation; the split has its own seed
    # -- execution: change speed, never results beyond rounding
    device: str = "auto"        # auto: CUDA when present, else CPU
    precision: str = "auto"     # auto: bf16 autocast where the chip has native bf16, else fp32
    threads: int = 0            # CPU threads for PyTorch; 0 keeps its default (one per core)
    deterministic: bool = False  # only deterministic kernels, so equal seeds give bit-equal runs
    eval_batch_size: int = 1000  # evaluation only: big batches are faster and give the same numbers
    out: str | None = None      # run folder; default runs/<preset>-<date>-<time>
    preset: str = "seed"        # recorded so a run folder says where its values came from

    def validate(self) -> "Config":
        def need(ok: bool, what: str):
            if not ok:
                raise RegulabError(what)
        need(self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}")
        need(self.eval_batch_size >= 1, f"--eval-batch-size must be at least 1, not {self.eval_batch_size}")
        need(self.lr > 0, f"--lr must be positive, not {self.lr}")
        need(self.l2 >= 0, f"--l2 must be zero or positive, not {self.l2}")
        need(0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), not {self.val_fraction}")
        need(self.threads >= 0, f"--threads must be 0 (default) or more, not {self.threads}")
        need(self.l1 >= 0 and self.weight_decay >= 0, "--l1 and --weight-decay must be zero or positive")
        for name in ("dropout_blocks", "dropout_head"):
            need(0 <= getattr(self, name) < 1, f"--{name.replace('_', '-')} must be in [0, 1), not {getattr(self, name)}")
        need(0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        need(self.mixup >= 0 and self.cutmix >= 0, "--mixup and --cutmix take a Beta alpha >= 0 (0 is off)")
        need(0 <= self.ema < 1, f"--ema must be in [0, 1) (0 is off), not {self.ema}")
        need(self.crop_pad >= 0 and self.cutout_size >= 1, "--crop-pad must be >= 0 and --cutout-size >= 1")
        need(self.warmup_epochs >= 0 and self.early_stop >= 0 and self.step_epochs >= 1,
             "--warmup-epochs and --early-stop must be >= 0, --step-epochs >= 1")
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise unknown_name(name.replace("_", " "), value, allowed, f"choose one of {', '.join(allowed)}")
        for op in filter(None, self.augment.split(",")):
            if op not in AUGMENTATIONS:
                raise unknown_name("augmentation", op, AUGMENTATIONS,
                                   f"--augment takes a comma list of {', '.join(AUGMENTATIONS)}")
        need(not (self.optimizer == "adam" and self.weight_decay), "--weight-decay needs --optimizer adamw "
             "(decoupled) or sgd; with Keras's Adam, use --l2 for a penalty")
        need(self.monitor != "val_loss" or self.val_fraction > 0,
             "--monitor val_loss needs a validation set (--val-fraction > 0)")
        return self


# The values a string setting may take; the command line offers them as choices.
CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "fp32", "bf16"),
    "optimizer": ("adam", "adamw", "sgd"),
    "schedule": ("constant", "step", "cosine", "onecycle"),
    "monitor": ("val_acc", "val_loss"),
    "penalty_scope": ("seed", "all"),
}
AUGMENTATIONS = ("crop", "flip", "cutout")


def config_fields() -> list[dataclasses.Field]:
    return list(dataclasses.fields(Config))


# ---------------------------------------------------------------------------------------------
# Presets

PRESETS: dict[str, Callable[[], dict]] = {}


def register_preset(fn: Callable[[], dict]) -> Callable[[], dict]:
    PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def preset_description(name: str) -> str:
    return (PRESETS[name].__doc__ or "").strip().splitlines()[0]


def make_config(preset: str = "seed", **overrides) -> Config:
    """Defaults, then the preset's values, then the overrides that are not None."""
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    values = {**PRESETS[preset](), **{k: v for k, v in overrides.items() if v is not None}}
    return Config(**values, preset=preset).validate()


@register_preset
def seed() -> dict:
    """The notebook exactly: VGG-style CNN, L2(0.001) on 4 layers, Adam 1e-4, batch 32, 30 epochs."""
    return {}


# Each single-regularizer preset drops the seed's L2 so its effect is measured alone against
# seed-noreg; seed-all combines what the measurements in docs/results.md found to work.

@register_preset
def seed_noreg() -> dict:
    """The seed network with no regularizer at all (the earlier post's overfitting baseline)."""
    return {"l2": 0.0}


@register_preset
def seed_dropout() -> dict:
    """No L2; dropout 0.25 after each conv block and 0.5 before the classifier."""
    return {"l2": 0.0, "dropout_blocks": 0.25, "dropout_head": 0.5}


@register_preset
def seed_bn() -> dict:
    """No L2; batch normalization after every convolution."""
    return {"l2": 0.0, "batch_norm": True}


@register_preset
def seed_augment() -> dict:
    """No L2; random crop (pad 4) and horizontal flip on every batch."""
    return {"l2": 0.0, "augment": "crop,flip"}


@register_preset
def seed_wd() -> dict:
    """No L2 penalty; AdamW's decoupled weight decay 0.5 on the kernels instead (lr 1e-4 as the seed)."""
    return {"l2": 0.0, "optimizer": "adamw", "weight_decay": 0.5}


@register_preset
def seed_all() -> dict:
    """BN, dropout 0.1/0.3, crop+flip, label smoothing 0.1, Adam 1e-3 cosine: 0.88 val_acc (docs/results.md)."""
    return {"l2": 0.0, "batch_norm": True, "dropout_blocks": 0.1, "dropout_head": 0.3, "augment": "crop,flip",
            "label_smoothing": 0.1, "lr": 1e-3, "schedule": "cosine", "warmup_epochs": 1.0}
