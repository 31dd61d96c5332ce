"""Models by name. A new variant is one registered function that returns an nn.Module.

A model names the kernels the seed notebook regularizes in `seed_regularized`, the way its
Keras layers carry their own kernel_regularizer; the penalty's size comes from the config.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from regulab.config import Config, import_user_file
from regulab.errors import RegulabError, unknown_name

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Make `fn` a model name (its name with - for _) for train, compare, sweep and presets.

    `fn` returns an `nn.Module` taking (N, 3, S, S) images and returning class logits. It should
    accept `num_classes` (and `image_size`, where its layers depend on it): the data decides them.
    It may accept any of the lab's model options (`batch_norm`, `dropout_blocks`, `dropout_head`);
    an option it does not accept is refused by name when a run switches it on. Its Conv2d and
    Linear kernels take the --l2/--l1 penalties with --penalty-scope all.
    """
    MODELS[fn.__name__.replace("_", "-")] = fn
    return fn


def use_model_file(path: str | Path, expected_sha256: str = "") -> str:
    """Import a user's Python file so that its `@register_model` functions become model names;
    its SHA-256. With `expected_sha256` (a run's record), a changed or missing file is an error:
    the run's weights belong to the network that file defined then."""
    return import_user_file(path, "model", expected_sha256)


def registered_here(name: str) -> bool:
    """True for a model that only this process knows (registered in a notebook or script, not
    built in and not from a --model-file): another process could not rebuild it."""
    fn = MODELS.get(name)
    return fn is not None and fn.__module__ != __name__ and not fn.__module__.startswith("regulab_user_")


def create_model(name: str, num_classes: int = 10, image_size: int = 32, **options) -> nn.Module:
    """The named model for `num_classes` classes of `image_size` images, given those of `options`
    its function takes. An option the model does not take is refused when it is switched on:
    training without it and saying nothing would measure something other than what was asked for."""
    takes = check_model(name, **options)
    shape = {k: v for k, v in (("num_classes", num_classes), ("image_size", image_size)) if k in takes}
    model = MODELS[name](**shape, **{k: v for k, v in options.items() if k in takes})
    _check_fits(model, name, num_classes, image_size)
    return model


def check_model(name: str, **options) -> dict:
    """Refuse an unknown model name, or an option switched on that the model does not take (before
    any data is loaded); the parameters its function takes."""
    if name not in MODELS:
        raise unknown_name("model", name, MODELS, f"known: {', '.join(MODELS)}; a model of your own is registered with "
                           "@regulab.register_model, in a file passed as --model-file")
    takes = inspect.signature(MODELS[name]).parameters
    refused = [k for k, v in options.items() if k not in takes and v]
    if refused:
        raise RegulabError(f"the {name} model does not take --{refused[0].replace('_', '-')}; drop it, or choose a model "
                           f"that does ({', '.join(m for m in MODELS if refused[0] in inspect.signature(MODELS[m]).parameters)})")
    return takes


@torch.no_grad()
def _check_fits(model: nn.Module, name: str, num_classes: int, image_size: int) -> None:
    """Refuse, in one line, a model that cannot take the data's images or has the wrong number of
    outputs, rather than fail deep inside the first step (one tiny forward pass, in eval mode so
    that no running statistic moves)."""
    was_training = model.training
    try:
        logits = model.eval()(torch.zeros(2, 3, image_size, image_size))
    except Exception as exc:  # a user's model can fail in any way; its first line says how
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegulabError(f"the {name} model cannot take {image_size}x{image_size} images ({reason}); choose another "
                           "--image-size (CIFAR's is 32)") from None
    finally:
        model.train(was_training)
    if tuple(logits.shape) != (2, num_classes):
        raise RegulabError(f"the {name} model gives {tuple(logits.shape[1:])} outputs per image, but the data has "
                           f"{num_classes} classes; give its function a num_classes parameter")


def model_summary(model: nn.Module, image_size: int = 32) -> str:
    """A table like Keras's model.summary(): each layer with parameters or a shape of its own,
    its output shape for one image, and its parameter count; then the totals."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            hooks.append(module.register_forward_hook(
                lambda m, _, out, name=name: rows.append((name, type(m).__name__, tuple(out.shape[1:]),
                                                          sum(p.numel() for p in m.parameters(recurse=False))))))
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    width = max(len(f"{n} ({t})") for n, t, _, _ in rows)
    lines = [f"{'layer (type)':<{width}}  {'output shape':<16} {'params':>10}", "-" * (width + 29)]
    lines += [f"{f'{n} ({t})':<{width}}  {str(shape):<16} {count:>10,}" for n, t, shape, count in rows]
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines += ["-" * (width + 29), f"total params: {total:,} (trainable: {trainable:,})"]
    return "\n".join(lines)


def keras_init_(model: nn.Module) -> nn.Module:
    """Keras's defaults: Glorot-uniform kernels, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def kernel_penalty(model: nn.Module, l2: float = 0.0, l1: float = 0.0, scope: str = "seed") -> torch.Tensor:
    """Keras-style penalties added to the loss: l2 * sum(w ** 2) + l1 * sum(|w|) over the kernels
    in scope: 'seed', the ones the notebook regularizes, or 'all' conv and dense kernels."""
    kernels = regularized_kernels(model, scope) if l2 or l1 else []
    if not kernels:
        return torch.zeros((), device=next(model.parameters()).device)
    return _KernelPenalty.apply(l2, l1, *kernels)


class _KernelPenalty(torch.autograd.Function):
    """The penalty with a backward of one pass over each kernel, where autograd's own takes three
    for the square (4% of the seed's step). Its rounding is autograd's: 2 * (g * l2) * w and
    (g * l2) * (2 * w) differ only by exact doublings, so every gradient is the same bit for bit."""

    @staticmethod
    def forward(ctx, l2: float, l1: float, *kernels: torch.Tensor) -> torch.Tensor:
        ctx.l2, ctx.l1 = l2, l1
        ctx.save_for_backward(*kernels)
        total = torch.zeros((), device=kernels[0].device)
        for kernel in kernels:
            kernel = kernel.float()
            if l2:
                total = total + l2 * kernel.square().sum()
            if l1:
                total = total + l1 * kernel.abs().sum()
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grads = []
        for kernel in ctx.saved_tensors:
            from_l2 = kernel * (2 * (grad * ctx.l2)) if ctx.l2 else None
            from_l1 = (grad * ctx.l1) * kernel.sgn() if ctx.l1 else None
            grads.append(from_l1 if from_l2 is None else from_l2 if from_l1 is None else from_l2 + from_l1)
        return None, None, *grads


def kernel_norms(model: nn.Module) -> dict[str, float]:
    """The L2 norm of every conv and dense kernel as history columns `norm_conv1`, ...,
    `norm_dense1`, ..., numbered in the network's order, so that variants of one network (with
    dropout or batch norm between its layers) name the same kernels alike. Read once per epoch:
    one wait for the device."""
    kernels = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = torch.stack([m.weight.detach().float().norm() for m in kernels]).tolist()
    names, counts = [], {"conv": 0, "dense": 0}
    for m in kernels:
        kind = "conv" if isinstance(m, nn.Conv2d) else "dense"
        counts[kind] += 1
        names.append(f"norm_{kind}{counts[kind]}")
    return dict(zip(names, norms))


def regularized_kernels(model: nn.Module, scope: str = "all") -> list[torch.Tensor]:
    if scope == "seed":
        return [model.get_parameter(name) for name in model.seed_regularized]
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@register_model
def seed_cnn(num_classes: int = 10, image_size: int = 32, batch_norm: bool = False, dropout_blocks: float = 0.0,
             dropout_head: float = 0.0) -> nn.Module:
    """The notebook's network: three blocks of two 3x3 'same' convs and a 2x2 max-pool, then a
    256-unit dense layer (its input sized by the image: 128 x 4 x 4 at CIFAR's 32x32). The
    notebook's L2 sits on the second conv of each block and on the dense layer
    (`seed_regularized`). Options: batch norm after each conv (before its ReLU), dropout after
    each block and before the classifier."""
    side = image_size // 8  # after three 2x2 poolings
    if side < 1:
        raise RegulabError(f"seed-cnn needs images of at least 8x8 pixels (three 2x2 poolings), not {image_size}x"
                           f"{image_size}; pass --image-size 8 or more")
    layers: list[nn.Module] = []
    regularized: list[int] = []

    def conv(c_in, c_out, pool=False):
        layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm))  # BN's shift replaces the bias
        index = len(layers) - 1
        layers.extend([nn.BatchNorm2d(c_out)] if batch_norm else [])
        # The notebook pools after the ReLU. Max and ReLU commute exactly (values and gradients,
        # bit for bit), and pooling first leaves the ReLU a quarter of the values: about 5% of the step.
        layers.extend([nn.MaxPool2d(2)] if pool else [])
        layers.append(nn.ReLU(inplace=True))
        return index

    c_in = 3
    for width in (32, 64, 128):
        conv(c_in, width)
        regularized.append(conv(width, width, pool=True))
        layers.extend([nn.Dropout(dropout_blocks)] if dropout_blocks else [])
        c_in = width
    layers.append(nn.Flatten())
    regularized.append(len(layers))
    layers += [nn.Linear(128 * side * side, 256), nn.ReLU(inplace=True)]
    layers.extend([nn.Dropout(dropout_head)] if dropout_head else [])
    layers.append(nn.Linear(256, num_classes))
    model = keras_init_(nn.Sequential(*layers))
    model.seed_regularized = [f"{i}.weight" for i in regularized]
    return model


# ---------------------------------------------------------------------------------------------
# The fast recipe's network (after Keller Jordan's airbench and David Page's ResNet-9 work):
# a 2x2 whitening layer, then three wide conv groups at falling resolution, batch norm without
# a learned scale, GELU, and logits scaled down so label smoothing's targets are reachable early.

class ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """Batch norm with a learned shift but a fixed unit scale (the scale is redundant before a
    conv that has its own weights, and learning it slows the short run)."""

    def __init__(self, channels: int, momentum: float = 0.4):
        super().__init__(channels, eps=1e-12, momentum=momentum)  # a high momentum: short runs move fast
        self.weight.requires_grad_(False)


def whitening_weights(images: torch.Tensor, eps: float = 5e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and bias of a 2x2 conv that maps the images' 2x2 patches (12 values) to 12
    uncorrelated, unit-variance, zero-mean features, each followed by its negation (24 channels).

    The features are the patches' principal components divided by their standard deviations;
    the negated copies let a ReLU-like activation keep both signs of every component."""
    patches = torch.nn.functional.unfold(images.float(), kernel_size=2).transpose(1, 2).reshape(-1, 12)
    mean = patches.mean(0)
    covariance = torch.cov(patches.T)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    rows = eigenvectors.T / (eigenvalues + eps).sqrt().unsqueeze(1)  # (12 features, 12 patch values)
    weight = torch.cat([rows, -rows]).view(24, 3, 2, 2)  # unfold orders a patch channel-major
    bias = -weight.view(24, 12) @ mean
    return weight, bias


class FastNet(nn.Sequential):
    """Whitening conv, three (conv, pool, BN, GELU, conv, BN, GELU) groups, max-pool, linear."""

    def __init__(self, num_classes: int = 10, widths=(64, 256, 256), logit_scale: float = 1 / 9):
        layers: dict[str, nn.Module] = {"whiten": nn.Conv2d(3, 24, 2), "whiten_act": nn.GELU()}
        c_in = 24
        for i, width in enumerate(widths, 1):
            layers[f"group{i}"] = nn.Sequential(
                nn.Conv2d(c_in, width, 3, padding="same", bias=False), nn.MaxPool2d(2),
                ShiftOnlyBatchNorm(width), nn.GELU(),
                nn.Conv2d(width, width, 3, padding="same", bias=False), ShiftOnlyBatchNorm(width), nn.GELU())
            c_in = width
        layers.update(pool=nn.AdaptiveMaxPool2d(1), flatten=nn.Flatten(), head=nn.Linear(c_in, num_classes, bias=False))
        super().__init__(OrderedDict(layers))
        self.logit_scale = logit_scale
        for module in self.modules():
            if isinstance(module, nn.Conv2d) and module is not self.whiten:
                nn.init.dirac_(module.weight[:module.in_channels])  # start near identity: early steps stay stable
        self.seed_regularized = [name for name, p in self.named_parameters() if p.dim() > 1 and name != "whiten.weight"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.logit_scale

    def whiten_(self, images: torch.Tensor) -> None:
        """Set the first layer from the images' patch statistics and freeze its weights."""
        weight, bias = whitening_weights(images)
        with torch.no_grad():
            self.whiten.weight.copy_(weight)
            self.whiten.bias.copy_(bias)
        self.whiten.weight.requires_grad_(False)


@register_model
def fast_net(num_classes: int = 10) -> nn.Module:
    """The fast preset's network: widths 64/256/256, 1.97 M parameters."""
    return FastNet(num_classes)


def build_model(cfg: Config, classes: int = 10, image_size: int = 32,
                check_only: bool = False) -> nn.Module | None:
    """The network `cfg` describes for the data's number of classes and image size, freshly
    initialized (from the run's own model file, checked unchanged, where it has one).
    `check_only` checks the model's name and options alone, before the data is known."""
    if cfg.model_file:
        use_model_file(cfg.model_file, cfg.model_file_sha256)
    options = dict(batch_norm=cfg.batch_norm, dropout_blocks=cfg.dropout_blocks, dropout_head=cfg.dropout_head)
    if check_only:
        check_model(cfg.model, **options)
        return None
    return create_model(cfg.model, classes, image_size, **options)
