"""Scoring a network on a whole set: loss, accuracy and calibration, with or without test-time
augmentation. Training's validation and final test, `regulab evaluate` and the benchmarks all
score through here, so a number means the same thing wherever it is printed."""

from __future__ import annotations

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
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, precision: str,
             tta: int = 0) -> Scores:
    """Loss, accuracy and ECE over a whole set, of the logits averaged over `tta_views` when
    `tta` is 1 or 2. Everything stays on the device until the one read-back at the end."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confidences, hits = [], []
    for start in range(0, len(y), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        yb = y[start:start + batch_size].to(device, non_blocking=True)
        with autocast(device, precision):
            logits = tta_logits(model, xb, tta)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        confidence, predicted = logits.softmax(1).max(1)
        confidences.append(confidence)
        hits.append(predicted == yb)
    hits_all = torch.cat(hits)
    calibration = reliability(torch.cat(confidences).cpu(), hits_all.cpu())  # the one sync point
    return Scores(loss_sum.item() / len(y), hits_all.double().mean().item(), calibration["ece"])
