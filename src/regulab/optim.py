"""Optimizers and schedules: Keras's Adam, the parameter groups, the learning-rate schedules and
lookahead. Everything that moves the weights, apart from the loss."""

from __future__ import annotations

import math

import torch
from torch import nn

from regulab.config import Config
from regulab.models import regularized_kernels


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
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        optimizer = KerasAdam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, decoupled_weight_decay=True, fused=True)
    for group in optimizer.param_groups:
        group["initial_lr"] = group["lr"]  # the base rate the schedules scale every step (PyTorch's name for it)
    return optimizer


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
