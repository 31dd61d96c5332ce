import copy
import math

import pytest
import torch
from torch import nn

from regulab.errors import RegulabError
from regulab.models import MODELS, create_model, kernel_penalty, whitening_weights


def test_seed_cnn_shapes_and_parameter_count():
    model = create_model("seed-cnn")
    assert model(torch.zeros(5, 3, 32, 32)).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 814_122  # as Keras's model.summary()


def _pool_after_relu(model: nn.Sequential) -> nn.Sequential:
    """The notebook's order: each max-pool moved back after the ReLU that follows it."""
    mods = list(copy.deepcopy(model))
    for i, (first, second) in enumerate(zip(mods, mods[1:])):
        if isinstance(first, nn.MaxPool2d) and isinstance(second, nn.ReLU):
            mods[i], mods[i + 1] = second, first
    return nn.Sequential(*mods)


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pooling_before_the_relu_computes_the_notebooks_values_bit_for_bit(batch_norm, dtype):
    torch.manual_seed(0)
    model = create_model("seed-cnn", batch_norm=batch_norm)
    notebook = _pool_after_relu(model)
    assert [type(m) for m in notebook].index(nn.ReLU) < [type(m) for m in notebook].index(nn.MaxPool2d)
    x = torch.randn(16, 3, 32, 32)
    x[:, :, :8] = -5  # windows where every value is negative: there the ReLU's gradient must be 0 both ways
    results = []
    for net in (model, notebook):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            loss = net(x).float().square().sum()
        grads = torch.autograd.grad(loss, list(net.parameters()))
        results.append((loss, grads))
    (loss, grads), (loss_nb, grads_nb) = results
    assert torch.equal(loss, loss_nb)
    assert all(torch.equal(g, g_nb) for g, g_nb in zip(grads, grads_nb))


def test_keras_initialization():
    torch.manual_seed(0)
    model = create_model("seed-cnn")
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight
            receptive = w[0, 0].numel() if w.dim() == 4 else 1
            limit = math.sqrt(6 / ((w.shape[0] + w.shape[1]) * receptive))  # Glorot uniform
            assert w.abs().max() <= limit and w.abs().max() > 0.95 * limit
            assert w.std().item() == pytest.approx(limit / math.sqrt(3), rel=0.1)
            assert (module.bias == 0).all()


@pytest.mark.parametrize("batch_norm", [False, True])
def test_penalties_cover_exactly_the_kernels_in_scope(batch_norm):
    model = create_model("seed-cnn", batch_norm=batch_norm, dropout_blocks=0.2)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(-0.5)
    # The seed's scope: second conv of each block (32, 64, 128 wide) and the 256-unit dense layer.
    seed_kernels = 32 * 32 * 9 + 64 * 64 * 9 + 128 * 128 * 9 + 2048 * 256
    all_kernels = seed_kernels + 3 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9 + 256 * 10
    assert kernel_penalty(model, l2=1e-3).item() == pytest.approx(1e-3 * 0.25 * seed_kernels, rel=1e-6)
    assert kernel_penalty(model, l1=1e-4).item() == pytest.approx(1e-4 * 0.5 * seed_kernels, rel=1e-6)
    assert kernel_penalty(model, l2=1e-3, scope="all").item() == pytest.approx(1e-3 * 0.25 * all_kernels, rel=1e-6)
    assert kernel_penalty(model).item() == 0
    no_kernels = nn.Sequential(nn.BatchNorm2d(3), nn.Flatten())
    assert kernel_penalty(no_kernels, l2=1e-3, scope="all").item() == 0


def test_batch_norm_and_dropout_change_the_network_as_asked():
    plain, bn = create_model("seed-cnn"), create_model("seed-cnn", batch_norm=True, dropout_blocks=0.25, dropout_head=0.5)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in bn.modules()) == 6
    assert [m.p for m in bn.modules() if isinstance(m, nn.Dropout)] == [0.25, 0.25, 0.25, 0.5]
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Dropout)) for m in plain.modules())
    bn.eval()
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(bn(x), bn(x))  # dropout is off in evaluation


def test_penalty_gradient_is_two_c_w():
    model = create_model("seed-cnn")
    kernel_penalty(model, l2=1e-3).backward()
    dense = model.get_parameter(model.seed_regularized[-1])
    assert dense.shape == (256, 2048)
    assert torch.allclose(dense.grad, 2e-3 * dense.detach())
    assert model.get_parameter("0.weight").grad is None  # the first conv carries no regularizer


@pytest.mark.parametrize("l2, l1", [(1e-3, 0.0), (0.0, 1e-5), (1e-3, 1e-5)])
def test_penalty_is_autograds_own_bit_for_bit(l2, l1):
    torch.manual_seed(0)
    model = create_model("seed-cnn")
    kernels = [model.get_parameter(name) for name in model.seed_regularized]
    plain = sum(l2 * w.float().square().sum() + l1 * w.float().abs().sum() for w in kernels)  # autograd's own
    ours = kernel_penalty(model, l2=l2, l1=l1)
    assert torch.equal(ours, torch.zeros(()) + plain)
    upstream = 0.37  # any factor the loss puts on the penalty
    for got, want in zip(torch.autograd.grad(upstream * ours, kernels), torch.autograd.grad(upstream * plain, kernels)):
        assert torch.equal(got, want)


def test_unknown_model_suggests_the_nearest_name():
    assert "seed-cnn" in MODELS
    with pytest.raises(RegulabError, match="unknown model 'seed_cnn'; did you mean 'seed-cnn'"):
        create_model("seed_cnn")


def test_whitening_layer_decorrelates_2x2_patches():
    # Correlated synthetic images: smooth noise plus a shared colour cast, as real photos have.
    g = torch.Generator().manual_seed(0)
    base = torch.nn.functional.avg_pool2d(torch.randn(256, 3, 34, 34, generator=g), 3, stride=1)
    images = base + 0.5 * base.mean(1, keepdim=True) + 0.3
    weight, bias = whitening_weights(images, eps=1e-9)
    features = torch.nn.functional.conv2d(images, weight, bias)
    assert features.shape[1] == 24
    patches = features[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    raw = torch.nn.functional.unfold(images, 2).transpose(1, 2).reshape(-1, 12)
    assert (torch.cov(raw.T) - torch.eye(12)).abs().max() > 0.5  # the input is far from white
    assert torch.allclose(torch.cov(patches.T), torch.eye(12), atol=1e-3)
    assert patches.mean(0).abs().max() < 1e-4
    assert torch.allclose(features[:, 12:], -features[:, :12], atol=1e-5)  # each feature and its negation


def test_fast_net_whitens_from_data_and_freezes_that_layer():
    model = create_model("fast-net")
    images = torch.randn(64, 3, 32, 32)
    model.whiten_(images)
    weight, _ = whitening_weights(images)
    assert torch.equal(model.whiten.weight, weight) and not model.whiten.weight.requires_grad
    assert model(images).shape == (64, 10)
