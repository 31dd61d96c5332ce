"""Optimizers and schedules: Keras's Adam, Muon, the parameter groups, the learning-rate
schedules, sharpness-aware steps and lookahead. Everything that moves the weights, apart
from the loss."""

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


def orthogonalize(update: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """Roughly the nearest semi-orthogonal matrix to `update` (U V^T of its SVD U S V^T), by a
    quintic Newton-Schulz iteration. Its coefficients (Jordan, 2024) are chosen for the steepest
    slope at zero rather than convergence: three steps leave the singular values between about
    0.5 and 1.5 rather than 1, which trains as well, for a few small matrix products."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = update / (update.norm() + eps)  # singular values <= 1, where the iteration is stable
    tall = x.size(0) > x.size(1)
    x = x.T if tall else x  # the Gram matrix of the short side is the cheap one
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Nesterov momentum whose update for each weight is orthogonalized (Muon: Jordan et al.,
    2024); a conv's filters count as one matrix, out_channels x (in_channels * k * k). As in
    airbench94_muon, each weight is scaled back to Frobenius norm sqrt(out_channels) before its
    step, so that `lr` is a step relative to the weight's size all run long, and no weight decay
    is needed. (torch.optim.Muon takes 2-D parameters only, and renormalizes nothing.)"""

    def __init__(self, params, lr: float, momentum: float = 0.6, ns_steps: int = 3):
        super().__init__(params, dict(lr=lr, momentum=momentum, ns_steps=ns_steps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                velocity = self.state[weight].setdefault("momentum_buffer", torch.zeros_like(weight))
                velocity.mul_(group["momentum"]).add_(weight.grad)
                direction = weight.grad.add(velocity, alpha=group["momentum"])  # Nesterov: look one step ahead
                weight.mul_(math.sqrt(len(weight)) / weight.norm())
                weight.add_(orthogonalize(direction.flatten(1), group["ns_steps"]).view_as(weight), alpha=-group["lr"])


class Optimizers:
    """Several optimizers stepped as one, each over its own parameters: all that the training
    loop and the checkpoint ask of an optimizer."""

    def __init__(self, *optimizers: torch.optim.Optimizer):
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict]:
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def state_dict(self) -> dict:
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)


def build_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer | Optimizers:
    """The configured optimizer. Weight decay applies to kernels, and to batch-norm parameters
    at the same shrink per step (their lr is `norm_lr_scale` times larger, their decay that much
    smaller); never to biases, where it regularizes nothing. With muon, Muon moves the conv
    filters and Nesterov SGD the rest as with sgd. With --whiten-bias-epochs, the whitening bias
    moves as a batch-norm shift does, in a group of its own that stops at that epoch."""
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}
    filters = [p for p in trainable.values() if p.dim() == 4] if cfg.optimizer == "muon" else []
    for p in filters:
        del trainable[id(p)]
    kernels = [k for k in regularized_kernels(model, "all") if id(k) in trainable]
    norms = [p for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for p in m.parameters(recurse=False) if id(p) in trainable]
    shifts = {"lr": cfg.lr * cfg.norm_lr_scale, "weight_decay": cfg.weight_decay / cfg.norm_lr_scale}
    whiten_bias = [model.whiten.bias] if cfg.whiten_bias_epochs else []
    grouped = {id(p) for p in kernels + norms + whiten_bias}
    groups = [{"params": kernels}, {"params": norms, **shifts},
              {"params": [p for p in trainable.values() if id(p) not in grouped], "weight_decay": 0.0}]
    if whiten_bias:  # the schedule sets a group's lr to 0 past its until_epoch
        groups.append({"params": whiten_bias, **shifts, "until_epoch": cfg.whiten_bias_epochs})
    if cfg.optimizer in ("sgd", "muon"):
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True, weight_decay=cfg.weight_decay)
    else:
        optimizer = KerasAdam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, decoupled_weight_decay=True, fused=True)
    if filters:
        optimizer = Optimizers(Muon(filters, lr=cfg.muon_lr, momentum=cfg.muon_momentum), optimizer)
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
    if cfg.schedule in ("onecycle", "linear"):
        return cfg.decay_to + (1 - cfg.decay_to) * (1.0 - done)
    return 1.0


class SharpnessAware:
    """Sharpness-aware minimization (Foret et al., "Sharpness-Aware Minimization for Efficiently
    Improving Generalization", ICLR 2021) around any optimizer: after the first backward pass,
    `ascend` moves the weights to w + e, e = rho * g / ||g|| (adaptive, Kwon et al. 2021:
    e = rho * w^2 g / ||w g||, elementwise), where the second backward pass takes the gradient;
    `descend` puts the weights back, and the optimizer steps with that gradient. Everything stays
    on the device: no value is read back to the host."""

    def __init__(self, params, rho: float, adaptive: bool = False):
        self.params, self.rho, self.adaptive = [p for p in params if p.requires_grad], rho, adaptive
        self.moved: list[tuple[torch.Tensor, torch.Tensor]] = []

    @torch.no_grad()
    def ascend(self) -> None:
        with_grad = [p for p in self.params if p.grad is not None]
        scaled = [p.abs() * p.grad if self.adaptive else p.grad for p in with_grad]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in scaled]))
        self.moved = []
        for p, g in zip(with_grad, scaled):
            e = (p.abs() * g if self.adaptive else g) * (self.rho / (norm + 1e-12))
            p.add_(e)
            self.moved.append((p, e))

    @torch.no_grad()
    def descend(self) -> None:
        for p, e in self.moved:
            p.sub_(e)
        self.moved = []


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

