"""Scores of a whole set: calibration against cases whose answer is known."""

import pytest
import torch
from torch import nn

from regulab.evaluation import ECE_BINS, evaluate, predict, reliability


def test_ece_of_an_overconfident_model_is_the_gap():
    # Every prediction 80% sure, 60% right: one bin, |0.6 - 0.8| = 0.2.
    correct = torch.tensor([True] * 6 + [False] * 4)
    assert reliability(torch.full((10,), 0.8), correct)["ece"] == pytest.approx(0.2)


def test_ece_weights_bins_by_their_share():
    # Half the predictions at 0.95 and all right (gap 0.05), half at 0.55 with 3 of 4 right (gap 0.2):
    # ECE = 0.5 * 0.05 + 0.5 * 0.2 = 0.125.
    confidence = torch.tensor([0.95] * 4 + [0.55] * 4)
    correct = torch.tensor([True] * 4 + [True, True, True, False])
    calibration = reliability(confidence, correct)
    assert calibration["ece"] == pytest.approx(0.125)
    assert sum(calibration["count"]) == 8 and len(calibration["count"]) == ECE_BINS == 15
    # 0.95 falls in (14/15, 1], 0.55 in (8/15, 9/15]
    assert calibration["count"][14] == 4 and calibration["count"][8] == 4
    assert calibration["accuracy"][8] == pytest.approx(0.75) and calibration["confidence"][14] == pytest.approx(0.95)


def test_a_perfectly_calibrated_set_has_zero_ece():
    confidence = torch.tensor([0.5, 0.5, 1.0, 1.0])
    assert reliability(confidence, torch.tensor([True, False, True, True]))["ece"] == pytest.approx(0.0)


class FixedLogits(nn.Module):
    """A 'model' whose logits are the input's first pixel row: known probabilities."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x[:, 0, 0, :3].float()


def test_evaluate_reports_loss_accuracy_and_ece_of_the_softmax():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 4.0], [0.0, 0.0, 0.5]])
    x = torch.zeros(4, 3, 4, 4)
    x[:, 0, 0, :3] = logits
    y = torch.tensor([0, 1, 0, 2])  # the third is wrong
    scores = evaluate(FixedLogits(), x, y, batch_size=3, precision="fp32")
    probs = logits.softmax(1)
    assert scores.acc == pytest.approx(0.75)
    assert scores.loss == pytest.approx(float(-probs[range(4), y].log().mean()), rel=1e-6)
    assert scores.ece == pytest.approx(reliability(probs.max(1).values, probs.argmax(1) == y)["ece"])


class Ramp(nn.Module):
    """Logits that grow with the image's mean, and flip sign when it is mirrored: its confidence
    rises with the mean, and test-time augmentation cancels it out for every image it touches."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        left, right = x[..., : x.shape[-1] // 2].mean((1, 2, 3)), x[..., x.shape[-1] // 2:].mean((1, 2, 3))
        score = self.scale * (left - right)
        return torch.stack([score, -score], 1)


def test_tta_on_the_unsure_share_touches_only_the_least_confident_images():
    torch.manual_seed(0)
    x = torch.randn(40, 3, 8, 8)
    model = Ramp()
    plain = predict(model, x, 16, "fp32")
    everywhere = predict(model, x, 16, "fp32", tta=1)
    assert torch.allclose(everywhere, torch.zeros_like(everywhere), atol=1e-6)  # mirror cancels the ramp
    quarter = predict(model, x, 16, "fp32", tta=1, tta_unsure=0.25, plain=plain)
    changed = (quarter != plain).any(1)
    assert int(changed.sum()) == 10  # a quarter of 40
    least_sure = plain.softmax(1).max(1).values.argsort()[:10]
    assert set(changed.nonzero().squeeze(1).tolist()) == set(least_sure.tolist())
    assert torch.equal(predict(model, x, 16, "fp32", tta=1, tta_unsure=0.25), quarter)  # plain computed if not given
    assert torch.equal(predict(model, x, 16, "fp32", tta=1, tta_unsure=1.0), everywhere)
