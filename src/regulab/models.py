"""Models by name. A new variant is one registered function that returns an nn.Module.

A model names the kernels the seed notebook regularizes in `seed_regularized`, the way its
Keras layers carry their own kernel_regularizer; the penalty's size comes from the config.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from regulab.errors import unknown_name

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    MODELS[fn.__name__.replace("_", "-")] = fn
    return fn


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise unknown_name("model", name, MODELS, f"known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


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
    total = torch.zeros((), device=next(model.parameters()).device)
    if not (l2 or l1):
        return total
    for kernel in regularized_kernels(model, scope):
        kernel = kernel.float()
        if l2:
            total = total + l2 * kernel.square().sum()
        if l1:
            total = total + l1 * kernel.abs().sum()
    return total


def regularized_kernels(model: nn.Module, scope: str = "all") -> list[torch.Tensor]:
    if scope == "seed":
        return [model.get_parameter(name) for name in model.seed_regularized]
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@register_model
def seed_cnn(num_classes: int = 10, batch_norm: bool = False, dropout_blocks: float = 0.0,
             dropout_head: float = 0.0) -> nn.Module:
    """The notebook's network: three blocks of two 3x3 'same' convs and a 2x2 max-pool, then a
    256-unit dense layer. The notebook's L2 sits on the second conv of each block and on the
    dense layer (`seed_regularized`). Options: batch norm after each conv (before its ReLU),
    dropout after each block and before the classifier."""
    layers: list[nn.Module] = []
    regularized: list[int] = []

    def conv(c_in, c_out):
        layers.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm))  # BN's shift replaces the bias
        index = len(layers) - 1
        layers.extend([nn.BatchNorm2d(c_out)] if batch_norm else [])
        layers.append(nn.ReLU(inplace=True))
        return index

    c_in = 3
    for width in (32, 64, 128):
        conv(c_in, width)
        regularized.append(conv(width, width))
        layers.append(nn.MaxPool2d(2))
        layers.extend([nn.Dropout(dropout_blocks)] if dropout_blocks else [])
        c_in = width
    layers.append(nn.Flatten())
    regularized.append(len(layers))
    layers += [nn.Linear(128 * 4 * 4, 256), nn.ReLU(inplace=True)]
    layers.extend([nn.Dropout(dropout_head)] if dropout_head else [])
    layers.append(nn.Linear(256, num_classes))
    model = keras_init_(nn.Sequential(*layers))
    model.seed_regularized = [f"{i}.weight" for i in regularized]
    return model
