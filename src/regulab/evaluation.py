"""Scoring a network on a whole set: loss, accuracy and calibration, with or without test-time
augmentation. Training's validation and final test, `regulab evaluate` and the benchmarks all
score through here, so a number means the same thing wherever it is printed."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# Guo et al. (2017) and most papers since report ECE over 15 equal-width confidence bins.
ECE_BINS = 15


class Scores(NamedTuple):
    loss: float  # mean cross-entropy of the true class, without any penalty: the negative log-likelihood
    acc: float
    ece: float   # expected calibration error over ECE_BINS equal-width bins of the top-class probability


def autocast(device: torch.device, precision: str):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def tta_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """The views of a batch whose logits test-time augmentation averages, with their weights.

    Level 1: the images and their mirror images, half each. Level 2: those two for half the
    weight, and the other half shared by both orientations of the images shifted one pixel
    up-left and one pixel down-right (mirrored edges fill in), as in airbench.
    """
    if level == 0:
        return [(1.0, x)]
    views = [(0.5, x), (0.5, x.flip(3))]
    if level == 1:
        return views
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., 2:, 2:], padded[..., :h, :w]]
    return [(weight / 2, view) for weight, view in views] + [(0.125, v) for s in shifted for v in (s, s.flip(3))]


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """The weighted mean of the model's float logits over `tta_views(x, level)`."""
    return sum(weight * model(view.contiguous(memory_format=torch.channels_last)).float()
               for weight, view in tta_views(x, level))


def reliability(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> dict:
    """Calibration of top-class probabilities: per equal-width bin ((i-1)/bins, i/bins], the
    number of predictions, their mean confidence and their accuracy, and the expected
    calibration error, sum over bins of |accuracy - confidence| weighted by the bin's share."""
    confidence, correct = confidence.double().flatten(), correct.double().flatten()
    index = (confidence * bins).ceil().long().clamp(1, bins) - 1
    count = torch.bincount(index, minlength=bins).double()
    confidence_sum = torch.bincount(index, confidence, minlength=bins)
    correct_sum = torch.bincount(index, correct, minlength=bins)
    ece = (correct_sum - confidence_sum).abs().sum() / max(len(confidence), 1)
    occupied = count.clamp(min=1)
    return {"ece": float(ece), "bins": bins, "count": count.long().tolist(),
            "confidence": (confidence_sum / occupied).tolist(), "accuracy": (correct_sum / occupied).tolist()}


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int, precision: str, tta: int = 0,
            tta_unsure: float = 1.0, plain: torch.Tensor | None = None) -> torch.Tensor:
    """Float logits of every image, on the model's device, averaged over `tta_views` for the
    share `tta_unsure` of the images whose plain prediction is least confident (all of them at
    1). A confident prediction rarely changes under a mirror or a shift, so test-time
    augmentation spent on the unsure ones alone buys most of its gain for a fraction of its time.
    `plain` may give the plain logits (tta 0), where they are at hand already."""
    model.eval()
    device = next(model.parameters()).device

    def logits_of(images: torch.Tensor, level: int) -> torch.Tensor:
        out = []
        for xb in images.split(batch_size):
            with autocast(device, precision):
                out.append(tta_logits(model, xb.to(device, non_blocking=True), level))
        return torch.cat(out)

    if not tta or tta_unsure >= 1:
        return logits_of(x, tta)
    logits = (plain if plain is not None else logits_of(x, 0)).clone()
    unsure = logits.softmax(1).max(1).values.topk(math.ceil(tta_unsure * len(x)), largest=False).indices
    logits[unsure] = logits_of(x[unsure.to(x.device)], tta)
    return logits


def scores(logits: torch.Tensor, y: torch.Tensor) -> Scores:
    """Loss, accuracy and ECE of a set's logits against its labels."""
    y = y.to(logits.device)
    confidence, predicted = logits.softmax(1).max(1)
    hits = predicted == y
    calibration = reliability(confidence.cpu(), hits.cpu())  # the one sync point
    return Scores(F.cross_entropy(logits.double(), y).item(), hits.double().mean().item(), calibration["ece"])


def per_image(logits: torch.Tensor, y: torch.Tensor) -> dict:
    """Per image, as numpy arrays: the label, the predicted class, and the probabilities of the true
    class and of the predicted one (what `TEST_PREDICTIONS` keeps)."""
    y = y.to(logits.device)
    probabilities = logits.double().softmax(1)
    confidence, predicted = probabilities.max(1)
    small = torch.int16 if logits.shape[1] > 127 else torch.int8
    return {"label": y.to(small).cpu().numpy(), "predicted": predicted.to(small).cpu().numpy(),
            "p_true": probabilities.gather(1, y[:, None])[:, 0].float().cpu().numpy(),
            "confidence": confidence.float().cpu().numpy()}


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, precision: str,
             tta: int = 0, tta_unsure: float = 1.0) -> Scores:
    """Loss, accuracy and ECE over a whole set, with test-time augmentation as `predict` does it."""
    return scores(predict(model, x, batch_size, precision, tta, tta_unsure), y)
