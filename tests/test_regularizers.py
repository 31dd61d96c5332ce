"""Part 14's switches against computations worked independently: the label-noise draw, the
memorized share, SAM's step, TrivialAugment's operations, and the kernel norms."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from regulab import data as data_lib
from regulab.augment import TRIVIAL_OPS, trivial_augment, trivial_op
from regulab.config import make_config
from regulab.models import create_model, kernel_norms
from regulab.optim import SharpnessAware
from regulab.training import memorized

# --- label noise ----------------------------------------------------------------------------------


def test_the_noise_draw_is_exact_never_true_and_nested():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    draws = {p: data_lib.noisy_labels(labels, 10, p, seed=777) for p in (0.0, 0.2, 0.4)}
    for p, (given, replaced) in draws.items():
        assert replaced.sum() == round(p * 1000)  # the exact share
        assert (given[replaced] != labels[replaced]).all() and (given[~replaced] == labels[~replaced]).all()
    low, high = draws[0.2], draws[0.4]
    assert (low[1] <= high[1]).all()  # 0.2's replaced labels lie inside 0.4's ...
    assert (low[0][low[1]] == high[0][low[1]]).all()  # ... with the same wrong classes
    offsets = (high[0][high[1]] - labels[high[1]]) % 10  # the wrong class, as a step from the true one
    assert set(offsets.tolist()) == set(range(1, 10))  # every wrong class drawn, never the true one
    other = data_lib.noisy_labels(labels, 10, 0.4, seed=778)[1]
    assert (other != high[1]).any()  # another split seed, another draw


def test_the_noise_is_the_same_for_every_preset_and_seed_and_spares_validation_and_test():
    def splits(preset, seed):
        return data_lib.splits_for(make_config(preset, data="cifar10-mini", seed=seed, label_noise=0.4))

    a, b = splits("seed-noreg", 0), splits("seed-all", 3)
    clean = data_lib.splits_for(make_config("seed-noreg", data="cifar10-mini"))
    assert torch.equal(a.train[1], b.train[1]) and torch.equal(a.noisy, b.noisy)
    assert len(a.noisy) == round(0.4 * 2800) and (a.train[1][a.noisy] != clean.train[1][a.noisy]).all()
    assert torch.equal(a.val[1], clean.val[1]) and torch.equal(a.test[1], clean.test[1])


class Lookup(nn.Module):
    """Predicts, for the image whose first pixel holds i, the class `answers[i]`."""

    def __init__(self, answers):
        super().__init__()
        self.answers = torch.as_tensor(answers)
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return nn.functional.one_hot(self.answers[x[:, 0, 0, 0].long()], 10).float() * 10 + self.anchor


def test_the_memorized_share_counts_wrong_labels_predicted_as_given():
    n = 8
    x = torch.zeros(n, 3, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n).float()
    true = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    given = torch.tensor([0, 1, 9, 9, 9, 9, 6, 7])  # examples 2-5 were given a wrong label (9)
    # The network predicts the wrong label for 2 and 3 (memorized), the true class for 4, another for 5.
    answers = torch.tensor([0, 1, 9, 9, 4, 8, 6, 7])
    splits = data_lib.Splits((x, given), None, (x, true), (0.0,) * 3, (1.0,) * 3, "constructed",
                             noisy=torch.tensor([2, 3, 4, 5]))
    assert memorized(Lookup(answers), splits, batch_size=3, precision="fp32") == pytest.approx(0.5)


# --- SAM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_matches_a_hand_computation(adaptive):
    # L(w) = 0.5 * (1 * w1^2 + 3 * w2^2) at w = (1, 2); SGD with lr 0.1; rho 0.05.
    w = nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64))
    scale = torch.tensor([1.0, 3.0], dtype=torch.float64)
    optimizer = torch.optim.SGD([w], lr=0.1)
    sam = SharpnessAware([w], rho=0.05, adaptive=adaptive)

    def loss():
        return 0.5 * (scale * w * w).sum()

    optimizer.zero_grad()
    loss().backward()
    sam.ascend()
    optimizer.zero_grad()
    loss().backward()
    sam.descend()
    optimizer.step()
    # By hand: g = (1, 6). Plain SAM: e = 0.05 * g / sqrt(37). Adaptive: e = 0.05 * w^2 g / |w g|,
    # w g = (1, 12), |w g| = sqrt(145), w^2 g = (1, 24).
    if adaptive:
        e = [0.05 * 1 / math.sqrt(145), 0.05 * 24 / math.sqrt(145)]
    else:
        e = [0.05 * 1 / math.sqrt(37), 0.05 * 6 / math.sqrt(37)]
    g_there = [1.0 * (1 + e[0]), 3.0 * (2 + e[1])]
    expected = [1 - 0.1 * g_there[0], 2 - 0.1 * g_there[1]]
    assert w.detach().tolist() == pytest.approx(expected, abs=1e-12)


def test_sam_trains_the_seed_network_with_two_passes(tmp_path):
    from regulab.training import train

    cfg = make_config("seed-sam", data="cifar10-mini", epochs=1, train_fraction=0.1, precision="fp32",
                      out=str(tmp_path / "r"))
    metrics = train(cfg, log=lambda *_: None, progress=False)
    assert metrics["epochs_run"] == 1 and math.isfinite(metrics["test_loss"])


# --- TrivialAugment -------------------------------------------------------------------------------

IMAGE = torch.tensor([[0.0, 0.2, 0.4, 0.6], [0.8, 1.0, 0.1, 0.3], [0.5, 0.7, 0.9, 0.25], [0.05, 0.15, 0.35, 0.45]])


def one(image=IMAGE):
    return image.expand(1, 3, 4, 4).clone()


def test_trivial_operations_on_a_known_image():
    x, half = one(), torch.tensor([0.5])
    assert torch.equal(trivial_op(x, "identity", half), x)
    assert torch.allclose(trivial_op(x, "brightness", half), (x * 1.5).clamp(0, 1))  # factor 1 + 0.5
    assert torch.allclose(trivial_op(x, "brightness", -half), x * 0.5)
    solarized = trivial_op(x, "solarize", torch.tensor([0.25]))  # threshold 0.75
    assert torch.allclose(solarized, torch.where(x >= 0.75, 1 - x, x))
    posterized = trivial_op(x, "posterize", torch.tensor([4.0]))  # keep the top 4 of 8 bits
    assert torch.equal(posterized, ((x * 255).round().long() // 16 * 16).float() / 255)
    shifted = trivial_op(x, "translate_x", torch.tensor([1.0]))  # one pixel right, black coming in
    assert torch.equal(shifted[..., 1:], x[..., :-1]) and (shifted[..., 0] == 0).all()
    turned = trivial_op(x, "rotate", torch.tensor([90.0]))  # a quarter turn counter-clockwise
    assert torch.equal(turned, torch.rot90(x, 1, dims=(2, 3)))
    stretched = trivial_op(x * 0.5 + 0.2, "autocontrast", half)
    assert torch.allclose(stretched, x)  # its darkest pixel back to 0 and brightest to 1
    gray = trivial_op(x, "color", torch.tensor([-1.0]))  # factor 0: fully desaturated
    assert torch.allclose(gray, x)  # three equal channels are gray already
    flat_contrast = trivial_op(x, "contrast", torch.tensor([-1.0]))
    assert torch.allclose(flat_contrast, torch.full_like(x, (0.299 + 0.587 + 0.114) * x.mean().item()))


def test_equalize_spreads_levels_as_the_histogram_says():
    levels = torch.tensor([[0, 0, 0, 0], [64, 64, 64, 64], [128, 128, 128, 128], [255, 255, 255, 255]]) / 255
    out = trivial_op(one(levels), "equalize", torch.tensor([0.0]))
    # 4 levels of 4 pixels: cdf 4, 8, 12, 16; lut (cdf - 4) / 12 * 255 = 0, 85, 170, 255
    assert torch.equal((out[0, 0] * 255).round(), torch.tensor([[0.0] * 4, [85.0] * 4, [170.0] * 4, [255.0] * 4]))


def test_trivial_augment_gives_each_image_one_operation_at_its_drawn_strength():
    x = one().repeat(64, 1, 1, 1) * torch.linspace(0.3, 1, 64).view(-1, 1, 1, 1)
    out = trivial_augment(x, torch.Generator().manual_seed(4))
    replay = torch.Generator().manual_seed(4)  # the same draws, in the function's order
    names = list(TRIVIAL_OPS)
    chosen = torch.randint(0, len(names), (64,), generator=replay)
    step = torch.randint(0, 31, (64,), generator=replay).float() / 30
    sign = torch.where(torch.rand(64, generator=replay) < 0.5, -1.0, 1.0)
    for i in range(64):
        name = names[chosen[i]]
        strength = step[i:i + 1] * TRIVIAL_OPS[name] * (sign[i] if name in {"brightness", "rotate", "shear_x", "shear_y",
                                                                          "translate_x", "translate_y", "color",
                                                                          "contrast", "sharpness"} else 1.0)
        assert torch.equal(out[i:i + 1], trivial_op(x[i:i + 1], name, strength)), (i, name)
    assert len(set(chosen.tolist())) > 8  # many operations in one batch


# --- weight norms ---------------------------------------------------------------------------------


def test_kernel_norms_are_each_kernels_l2_norm():
    model = create_model("seed-cnn")
    norms = kernel_norms(model)
    kernels = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert list(norms) == [f"norm_conv{i}" for i in range(1, 7)] + ["norm_dense1", "norm_dense2"]
    assert list(norms.values()) == pytest.approx([torch.linalg.norm(w.flatten()).item() for w in kernels], rel=1e-6)
    # Dropout and batch norm between the layers leave the kernels' names as they were.
    assert list(kernel_norms(create_model("seed-cnn", batch_norm=True, dropout_blocks=0.25))) == list(norms)
