import io

import numpy as np
import pytest
import torch

from regulab.augment import BatchAugment, alternating_flip, cutmix, cutout, flip, mixup, random_crop
from regulab.errors import RegulabError


def images(n=16, c=3, size=32):
    return torch.arange(n * c * size * size, dtype=torch.float32).view(n, c, size, size)


def test_flip_twice_with_the_same_draws_is_the_identity():
    x, g = images(), torch.Generator().manual_seed(0)
    state = g.get_state()
    once = flip(x, g)
    g.set_state(state)
    assert torch.equal(flip(once, g), x)
    mirrored = [torch.equal(once[i], x[i].flip(2)) for i in range(len(x))]
    unchanged = [torch.equal(once[i], x[i]) for i in range(len(x))]
    assert all(m or u for m, u in zip(mirrored, unchanged)) and any(mirrored) and any(unchanged)


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x, g = images(8), torch.Generator().manual_seed(1)
    out = random_crop(x, 4, g)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):
        windows = [(dy, dx) for dy in range(9) for dx in range(9) if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert len(windows) == 1
    assert torch.equal(random_crop(x, 0, g), x)


def test_cutout_zeroes_one_clipped_square_and_nothing_else():
    x = torch.ones(64, 3, 32, 32)
    out = cutout(x, 8, torch.Generator().manual_seed(2))
    for img in out:
        zero = (img == 0)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # every channel alike
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        height, width = len(rows), len(cols)
        assert 4 <= height <= 8 and 4 <= width <= 8  # 8x8, or clipped at the border to no less than half
        assert zero[0].sum() == height * width  # one solid rectangle
        assert rows.max() - rows.min() + 1 == height and cols.max() - cols.min() + 1 == width


def test_mixup_blends_images_and_targets_by_one_weight():
    x, y = images(10), torch.eye(10)  # image i has target row e_i, so targets spell out the blend
    mixed_x, mixed_y = mixup(x, y, 0.4, torch.Generator().manual_seed(3), np.random.default_rng(3))
    assert torch.allclose(mixed_y.sum(1), torch.ones(10))
    assert torch.allclose(mixed_x.view(10, -1), mixed_y @ x.view(10, -1), rtol=1e-5)
    own = mixed_y.diagonal()
    lam = own.min().item()
    assert 0 < lam < 1 and all(w == pytest.approx(lam) or w == 1 for w in own.tolist())  # one weight per batch


def test_cutmix_targets_follow_the_pasted_area():
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 3, 32, 32).contiguous()
    y = torch.nn.functional.one_hot(torch.arange(8), 8).float()
    mixed_x, mixed_y = cutmix(x, y, 1.0, torch.Generator().manual_seed(4), np.random.default_rng(4))
    assert torch.allclose(mixed_y.sum(1), torch.ones(8))
    for i in range(8):  # image i is filled with the value i, so the pixel shares are the label shares
        shares = torch.bincount(mixed_x[i, 0].flatten().long(), minlength=8).float() / 1024
        assert torch.allclose(shares, mixed_y[i], atol=1e-6)


def test_batch_augment_state_restores_the_same_draws():
    aug = BatchAugment("crop,flip,cutout", seed=5)
    x = images(32)
    buffer = io.BytesIO()
    torch.save(aug.state_dict(), buffer)  # survives a checkpoint, loaded the safe way
    first = aug(x)
    aug.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True))
    assert torch.equal(first, aug(x)) and not torch.equal(first, x)


def test_a_generator_state_from_another_kind_of_device_is_refused_by_name():
    state = BatchAugment("flip", seed=1).state_dict()
    assert state["device"] == "cpu"
    with pytest.raises(RegulabError, match="drawn by a cuda random generator.*resume it with --device cuda"):
        BatchAugment("flip").load_state_dict({**state, "device": "cuda"})
    old = {k: v for k, v in state.items() if k != "device"}  # a checkpoint from before generators moved: the CPU's
    BatchAugment("flip").load_state_dict(old)


def test_alternating_flip_shows_every_image_both_ways_over_two_epochs():
    x, indices = images(64), torch.arange(1000, 1064)
    epochs = [alternating_flip(x, indices, epoch, seed=3) for epoch in (1, 2, 3)]
    mirrored = [torch.tensor([torch.equal(e[i], x[i].flip(2)) for i in range(len(x))]) for e in epochs]
    for e, m in zip(epochs, mirrored):  # every image is either mirrored or untouched
        assert all(torch.equal(e[i], x[i].flip(2) if m[i] else x[i]) for i in range(len(x)))
    assert torch.equal(mirrored[0], ~mirrored[1]) and torch.equal(mirrored[0], mirrored[2])
    assert 16 < int(mirrored[0].sum()) < 48  # epoch 1 mirrors about half, not all or none
    # The choice follows the image, not its place in the batch, and the seed changes it.
    shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(alternating_flip(x[shuffled], indices[shuffled], 1, seed=3), epochs[0][shuffled])
    assert not torch.equal(alternating_flip(x, indices, 1, seed=4), epochs[0])


def test_translate_is_a_shifted_window_of_the_mirror_padded_image():
    x, g = images(8), torch.Generator().manual_seed(2)
    out = random_crop(x, 2, g, fill="reflect")
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(len(x)):
        assert sum(torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32]) for dy in range(5) for dx in range(5)) == 1
