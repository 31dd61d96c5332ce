"""Regularizers as objects: each is one class that acts at named points of a training step.

The protocol, fastai's callbacks made for regularizers. A `Regularizer` subclass declares its
strengths and overrides any of these hooks, each optional:

    before_batch(x, target) -> (x, target)   the batch and its targets, before the forward pass
                                              (targets: class indices, or probability rows once mixed)
    penalty(model) -> tensor                 a term added to the loss, and to the loss Keras reports
    after_step(model)                        after each optimizer step
    on_epoch_end(model, epoch)               after each epoch's last step
    evaluated(model) -> module               the weights validated, saved and tested
    state_dict() / load_state_dict(state)    what a checkpoint keeps of it, for a resume

The hooks run inside the step loop: none may read a value back to the host. A regularizer's
strengths are `settings` (a `Strength` each; `@register_regularizer` declares them, so they become
options, --grid axes, factorial factors and tune dimensions), or, for the built-ins, the `Config`
settings it `uses`. It is on when any of them is not zero. Its random numbers come from the run's
generators (`generator` on the data's device, `rng` on the host), which a checkpoint keeps.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from regulab.augment import cutmix, mixup
from regulab.config import USER_SETTINGS, Config, Strength, config_fields, declare_strengths
from regulab.errors import RegulabError
from regulab.models import kernel_penalty


@dataclass
class RunInfo:
    """What a regularizer may know of the run it regularizes."""

    cfg: Config
    model: nn.Module
    num_classes: int
    generator: torch.Generator  # on the data's device; shared with the augmentation, saved with it
    rng: np.random.Generator    # on the host, for plain numbers a kernel takes with it


class Regularizer:
    settings: ClassVar[dict[str, Strength]] = {}  # the strengths it adds, by setting name
    uses: ClassVar[tuple[str, ...]] = ()          # a built-in: the Config settings it reads

    def __init__(self, run: RunInfo):
        self.cfg, self.generator, self.rng, self.num_classes = run.cfg, run.generator, run.rng, run.num_classes

    @classmethod
    def strengths(cls) -> tuple[str, ...]:
        return tuple(cls.settings) or cls.uses

    @classmethod
    def wanted(cls, cfg: Config) -> bool:
        return any(getattr(cfg, name) for name in cls.strengths())

    def before_batch(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, target

    def penalty(self, model: nn.Module) -> torch.Tensor | None:
        return None

    def after_step(self, model: nn.Module) -> None:
        pass

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        pass

    def evaluated(self, model: nn.Module) -> nn.Module:
        return model

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        pass


REGULARIZERS: dict[str, type[Regularizer]] = {}


def register_regularizer(cls: type[Regularizer]) -> type[Regularizer]:
    """Make `cls` one of the lab's regularizers, named after its class (RandomErasing:
    random-erasing), its `settings` options of every command; in a --regularizer-file, or in a
    notebook (where runs of it train in that process)."""
    if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
        raise RegulabError(f"@register_regularizer takes a subclass of regulab.Regularizer, not {cls!r}")
    name = re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()
    if not cls.strengths():
        raise RegulabError(f"regularizer {cls.__name__} declares no strength; give it settings = "
                           "{'name': regulab.Strength('what it does')}, 0 being off")
    own = {f.name for f in config_fields() if f.name not in USER_SETTINGS}
    for setting, strength in cls.settings.items():
        owner = next((other for other, c in REGULARIZERS.items() if setting in c.settings and other != name), None)
        if setting in own or owner:
            raise RegulabError(f"regularizer {cls.__name__}'s setting {setting} is already "
                               f"{'a regulab setting' if setting in own else f'a setting of {owner}'}; rename it")
        if not isinstance(strength, Strength) or not strength.low <= strength.default <= strength.high:
            raise RegulabError(f"regularizer {cls.__name__}'s setting {setting} must be a regulab.Strength whose "
                               "default lies in [low, high]")
    REGULARIZERS[name] = cls  # registered again (a notebook cell run twice): the new class wins
    declare_strengths(cls.settings, cls.__module__)
    return cls


def registered_here(cfg: Config) -> list[str]:
    """The regularizers `cfg` switches on that only this process knows (registered in a notebook
    or script, not built in and not from a --regularizer-file): another process could not rebuild them."""
    return [name for name, cls in REGULARIZERS.items() if cls.wanted(cfg)
            and cls.__module__ != __name__ and not cls.__module__.startswith("regulab_user_")]


class Regularizers:
    """The run's regularizers that are on, in registration order (the built-ins first), called
    together at each hook."""

    def __init__(self, run: RunInfo):
        self.active = {name: cls(run) for name, cls in REGULARIZERS.items() if cls.wanted(run.cfg)}
        overrides = {hook: [r for r in self.active.values() if getattr(type(r), hook) is not getattr(Regularizer, hook)]
                     for hook in ("before_batch", "penalty", "after_step", "on_epoch_end", "evaluated")}
        self._batch, self._penalty, self._step, self._epoch, self._evaluated = overrides.values()

    def before_batch(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for r in self._batch:
            x, target = r.before_batch(x, target)
        return x, target

    def penalty(self, model: nn.Module) -> torch.Tensor:
        total = torch.zeros((), device=next(model.parameters()).device)
        for r in self._penalty:
            total = total + r.penalty(model)
        return total

    @property
    def penalizes(self) -> bool:
        return bool(self._penalty)

    def after_step(self, model: nn.Module) -> None:
        for r in self._step:
            r.after_step(model)

    def on_epoch_end(self, model: nn.Module, epoch: int) -> None:
        for r in self._epoch:
            r.on_epoch_end(model, epoch)

    def evaluated(self, model: nn.Module) -> nn.Module:
        for r in self._evaluated:
            model = r.evaluated(model)
        return model

    def state_dict(self) -> dict:
        states = {name: r.state_dict() for name, r in self.active.items()}
        return {name: state for name, state in states.items() if state is not None}

    def load_state_dict(self, states: dict) -> None:
        for name, r in self.active.items():
            if name in states:
                r.load_state_dict(states[name])


# ---------------------------------------------------------------------------------------------
# The built-ins on the protocol

@register_regularizer
class KernelPenalty(Regularizer):
    """Keras's kernel regularizers: l2 * sum(w**2) + l1 * sum(|w|) over the kernels in scope."""

    uses = ("l2", "l1")

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return kernel_penalty(model, self.cfg.l2, self.cfg.l1, self.cfg.penalty_scope)


@register_regularizer
class Mixing(Regularizer):
    """Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019): each batch blends its images and
    targets with a shuffled copy of itself; with both on, each batch picks one."""

    uses = ("mixup", "cutmix")

    def before_batch(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixers = [(fn, a) for fn, a in ((mixup, self.cfg.mixup), (cutmix, self.cfg.cutmix)) if a]
        fn, alpha = mixers[int(self.rng.integers(len(mixers)))]
        if not target.is_floating_point():
            target = torch.nn.functional.one_hot(target, self.num_classes).float()
        return fn(x, target, alpha, self.generator, self.rng)


@register_regularizer
class LabelSmoothing(Regularizer):
    """Label smoothing (Szegedy et al. 2016): a share of each target spread evenly over the classes."""

    uses = ("label_smoothing",)

    def before_batch(self, x: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not target.is_floating_point():
            target = torch.nn.functional.one_hot(target, self.num_classes).float()
        return x, target * (1 - self.cfg.label_smoothing) + self.cfg.label_smoothing / self.num_classes


@register_regularizer
class WeightAverage(Regularizer):
    """An exponential moving average of the weights and batch-norm statistics, which is then
    evaluated and saved instead (--ema DECAY). Updated in place on the device; no step count is
    kept, so no update waits on the host."""

    uses = ("ema",)

    def __init__(self, run: RunInfo):
        super().__init__(run)
        self.module = copy.deepcopy(run.model).requires_grad_(False)

    @torch.no_grad()
    def after_step(self, model: nn.Module) -> None:
        live = model.state_dict()
        averaged, trained = [], []
        for name, value in self.module.state_dict().items():
            if value.is_floating_point():
                averaged.append(value)
                trained.append(live[name])
            else:
                value.copy_(live[name])  # batch norm's batch counter: the latest, not a blend
        torch._foreach_lerp_(averaged, trained, 1 - self.cfg.ema)

    def evaluated(self, model: nn.Module) -> nn.Module:
        return self.module

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        # Checkpoints from before this class kept torch's AveragedModel: its keys start with
        # "module." and it counted its updates in "n_averaged".
        self.module.load_state_dict({k.removeprefix("module."): v for k, v in state.items() if k != "n_averaged"})
