"""Data augmentation on whole batches of tensors: one call per batch, no per-image Python loop.

Every function takes a (N, C, H, W) batch and a torch.Generator on the batch's device, so a run's
augmentation is reproducible, its state can be checkpointed, and on a GPU no random number
crosses from the host. Mixup and cutmix also mix the targets, which
are therefore class-probability rows (N, classes) rather than indices.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from regulab.errors import RegulabError


def _uniform_ints(high: int, n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=generator, device=generator.device)


def flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left-right."""
    mirrored = torch.rand(len(x), generator=generator, device=generator.device) < 0.5
    return torch.where(mirrored.view(-1, 1, 1, 1), x.flip(3), x)


def alternating_flip(x: torch.Tensor, indices: torch.Tensor, epoch: int, seed: int = 0) -> torch.Tensor:
    """Mirror each image on alternate epochs: in epoch 1 a pseudo-random half (fixed per image
    by its index and the seed), in epoch 2 the other half, and so on. Every image is then seen
    both ways every two epochs, which random flips only promise on average (airbench)."""
    mixed = (indices.to(torch.int64) + 1) * 0x9E3779B1 + seed * 0x85EBCA77  # a cheap integer hash
    first_half = ((mixed ^ (mixed >> 15)) >> 7) & 1
    mirrored = (first_half ^ (epoch % 2 == 0)).bool().to(x.device)
    return torch.where(mirrored.view(-1, 1, 1, 1), x.flip(3), x)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator, fill: str = "constant") -> torch.Tensor:
    """Pad, with zeros (the mean, after normalization) or mirrored edges ('reflect'), and cut
    each image back at a random offset."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode=fill)
    dy = _uniform_ints(2 * pad + 1, n, generator)
    dx = _uniform_ints(2 * pad + 1, n, generator)
    rows = (dy.view(n, 1) + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    images = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    channels = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[images, channels, rows, cols]


def _boxes(n: int, h: int, w: int, size_h: torch.Tensor, size_w: torch.Tensor, generator) -> torch.Tensor:
    """A boolean (N, 1, H, W) mask per image: a box of the given size centred anywhere, clipped
    at the border (so a box near the edge covers less, as in the cutout and cutmix papers)."""
    device = generator.device
    cy = _uniform_ints(h, n, generator).view(n, 1, 1, 1)
    cx = _uniform_ints(w, n, generator).view(n, 1, 1, 1)
    yy = torch.arange(h, device=device).view(1, 1, h, 1)
    xx = torch.arange(w, device=device).view(1, 1, 1, w)
    top, left = cy - size_h.view(-1, 1, 1, 1) // 2, cx - size_w.view(-1, 1, 1, 1) // 2
    return (yy >= top) & (yy < top + size_h.view(-1, 1, 1, 1)) & (xx >= left) & (xx < left + size_w.view(-1, 1, 1, 1))


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Zero a size x size square (clipped at the border) at a random place in each image."""
    n, _, h, w = x.shape
    side = torch.full((n,), size, device=x.device)
    return x.masked_fill(_boxes(n, h, w, side, side, generator), 0.0)


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float, generator: torch.Generator, rng: np.random.Generator):
    """Blend each image and its target with another of the batch, by one Beta(alpha, alpha) weight."""
    lam = float(rng.beta(alpha, alpha))
    partner = torch.randperm(len(x), generator=generator, device=generator.device)
    return lam * x + (1 - lam) * x[partner], lam * target + (1 - lam) * target[partner]


def cutmix(x: torch.Tensor, target: torch.Tensor, alpha: float, generator: torch.Generator, rng: np.random.Generator):
    """Paste a box from another image of the batch; targets mix by the pasted box's true area."""
    n, _, h, w = x.shape
    lam = float(rng.beta(alpha, alpha))
    cut = (1 - lam) ** 0.5
    size_h = torch.full((n,), int(h * cut), device=x.device)
    size_w = torch.full((n,), int(w * cut), device=x.device)
    box = _boxes(n, h, w, size_h, size_w, generator)
    partner = torch.randperm(n, generator=generator, device=generator.device)
    pasted = box.float().mean(dim=(1, 2, 3)).view(n, 1)  # clipped at the border: use the real area
    return torch.where(box, x[partner], x), (1 - pasted) * target + pasted * target[partner]


# ---------------------------------------------------------------------------------------------
# TrivialAugment (Müller & Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data
# Augmentation", ICCV 2021), its wide ranges as torchvision's TrivialAugmentWide: each image gets
# one operation, chosen uniformly, at a strength chosen uniformly among 31 steps from 0 to the
# operation's largest. Done on whole batches in pixel space ([0, 1]), never a loop over images:
# the operations fall in six families (geometry, blends, posterize, solarize, autocontrast,
# equalize), and each family is one pass over the batch with each image's own parameters
# (geometry is one resampling with a matrix per image), kept where the image drew that family.

TRIVIAL_STEPS = 31
# name: the largest strength (a signed one is mirrored at random); the unit is the operation's own.
TRIVIAL_OPS = {
    "identity": 0.0,
    "shear_x": 0.99, "shear_y": 0.99,           # shear factor
    "translate_x": 32.0, "translate_y": 32.0,   # pixels
    "rotate": 135.0,                            # degrees
    "brightness": 0.99, "color": 0.99, "contrast": 0.99, "sharpness": 0.99,  # blend factor 1 +- strength
    "posterize": 6.0,                           # bits dropped of 8: 8 - round(strength) kept
    "solarize": 1.0,                            # threshold 1 - strength: pixels at or above it are inverted
    "autocontrast": 0.0, "equalize": 0.0,
}
SIGNED = {"shear_x", "shear_y", "translate_x", "translate_y", "rotate", "brightness", "color", "contrast", "sharpness"}
GEOMETRY = ("shear_x", "shear_y", "translate_x", "translate_y", "rotate")
BLENDS = ("brightness", "color", "contrast", "sharpness")


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def _geometry(x: torch.Tensor, drew: dict[str, torch.Tensor], strength: torch.Tensor) -> torch.Tensor:
    """Shear, translate or rotate each image about its centre, one matrix per image (the
    identity's entries where it drew another operation); what comes in from outside is black."""
    n, _, h, w = x.shape
    zero = torch.zeros_like(strength)
    angle = torch.deg2rad(torch.where(drew["rotate"], strength, zero))  # counter-clockwise, as PIL's
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([cos, torch.where(drew["shear_x"], strength, -sin),
                     torch.where(drew["translate_x"], -2 * strength / w, zero)], 1),  # content moves right
        torch.stack([torch.where(drew["shear_y"], strength, sin), cos,
                     torch.where(drew["translate_y"], -2 * strength / h, zero)], 1),
    ], 1)
    grid = torch.nn.functional.affine_grid(theta, [n, *x.shape[1:]], align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _blends(x: torch.Tensor, drew: dict[str, torch.Tensor], strength: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: x blended with a reference image by the factor 1 + strength (1 is x
    itself, 0 the reference): black (brightness), the image's gray (color), its mean gray
    (contrast) or its smoothed self, the border kept as it is (sharpness)."""
    gray = _gray(x)
    kernel = torch.tensor([[1.0, 1, 1], [1, 5, 1], [1, 1, 1]], device=x.device) / 13
    smoothed = x.clone()
    smoothed[..., 1:-1, 1:-1] = torch.nn.functional.conv2d(x, kernel.expand(x.shape[1], 1, 3, 3).contiguous(),
                                                           groups=x.shape[1])
    reference = torch.where(drew["brightness"].view(-1, 1, 1, 1), torch.zeros_like(x),
                torch.where(drew["color"].view(-1, 1, 1, 1), gray.expand_as(x),
                torch.where(drew["contrast"].view(-1, 1, 1, 1), gray.mean(dim=(1, 2, 3), keepdim=True).expand_as(x),
                            smoothed)))
    return (reference + (1 + strength).view(-1, 1, 1, 1) * (x - reference)).clamp(0, 1)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each channel of each image over 256 levels."""
    n, c, h, w = x.shape
    levels = (x * 255).round().long().view(n * c, h * w)
    hist = torch.zeros(n * c, 256, device=x.device).scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float))
    cdf = hist.cumsum(1)
    lowest = torch.where(hist > 0, cdf, torch.full_like(cdf, float(h * w))).min(1, keepdim=True).values
    lut = ((cdf - lowest) / (h * w - lowest).clamp(min=1) * 255).round().clamp(0, 255)
    flat = (hist > 0).sum(1, keepdim=True) <= 1  # one level only: left as it is
    out = torch.where(flat, levels.float(), lut.gather(1, levels))
    return (out / 255).view(n, c, h, w)


def trivial_ops(x: torch.Tensor, op: torch.Tensor, strength: torch.Tensor) -> torch.Tensor:
    """Each image of a batch in [0, 1] through its own TrivialAugment operation (`op`, its index in
    TRIVIAL_OPS) at its own strength (signed where the operation has a direction)."""
    drew = {name: op == i for i, name in enumerate(TRIVIAL_OPS)}  # masks on the device: nothing read back

    def where_drew(names, done, out):  # `done` for the images that drew one of `names`
        return torch.where(torch.stack([drew[name] for name in names]).any(0).view(-1, 1, 1, 1), done, out)

    out = where_drew(GEOMETRY, _geometry(x, drew, strength), x)
    out = where_drew(BLENDS, _blends(x, drew, strength), out)
    kept = torch.where(drew["posterize"], 8 - strength.round(), 8).long().view(-1, 1, 1, 1)  # bits of 8
    out = where_drew(["posterize"], ((x * 255).round().long() & ((0xFF << (8 - kept)) & 0xFF)).float() / 255, out)
    threshold = torch.where(drew["solarize"], 1 - strength, 2).view(-1, 1, 1, 1)  # at or above it: inverted
    out = where_drew(["solarize"], torch.where(x >= threshold, 1 - x, x), out)
    low, high = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    out = where_drew(["autocontrast"], torch.where(high > low, (x - low) / (high - low).clamp(min=1e-12), x), out)
    return where_drew(["equalize"], _equalize(x), out)


def trivial_op(x: torch.Tensor, op: str, strength: torch.Tensor) -> torch.Tensor:
    """One named TrivialAugment operation on every image of a batch, at a strength per image."""
    return trivial_ops(x, torch.full((len(x),), list(TRIVIAL_OPS).index(op), device=x.device), strength)


@functools.cache
def _trivial_tables(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each operation's largest strength, and whether it is signed, on the device once: a table
    copied from the host at every step would stall a GPU's queue."""
    return (torch.tensor(list(TRIVIAL_OPS.values()), device=device),
            torch.tensor([name in SIGNED for name in TRIVIAL_OPS], device=device))


def trivial_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """TrivialAugment on a batch in [0, 1]: one random operation at a random strength per image."""
    n, device = len(x), x.device
    op = _uniform_ints(len(TRIVIAL_OPS), n, generator)
    step = _uniform_ints(TRIVIAL_STEPS, n, generator).float() / (TRIVIAL_STEPS - 1)
    sign = torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
    largest, signed = _trivial_tables(device)
    return trivial_ops(x, op, step * largest[op] * torch.where(signed[op], sign, 1.0))


class BatchAugment:
    """The run's augmentation: the chosen ops in a fixed order (mixup and cutmix, which mix
    targets too, are a regularizer: `regularizers.Mixing`, drawing from these generators).

    It owns its random generators (seeded from the run's seed) so that a checkpoint can save
    and restore them, and a resumed run augments exactly as an uninterrupted one. The torch
    generator lives on the data's `device`; the mixing weights come from numpy on the host, as
    plain floats that a GPU receives with the kernel that uses them.
    """

    def __init__(self, ops: str = "", crop_pad: int = 4, cutout_size: int = 8, seed: int = 0, device: str | torch.device = "cpu",
                 mean: tuple[float, ...] = (0.0, 0.0, 0.0), std: tuple[float, ...] = (255.0, 255.0, 255.0)):
        self.ops = [op for op in ("trivial", "crop", "translate", "flip", "altflip", "cutout") if op in ops.split(",")]
        # TrivialAugment works on pixels: the data's normalization (0-255 scale), to undo and redo it.
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) / 255
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) / 255
        self.seed = seed
        self.crop_pad, self.cutout_size = crop_pad, cutout_size
        self.generator = torch.Generator(device).manual_seed(seed + 1)  # apart from the shuffling stream
        self.rng = np.random.default_rng(seed + 1)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __call__(self, x: torch.Tensor, indices: torch.Tensor | None = None, epoch: int = 1) -> torch.Tensor:
        """Augmented images. `indices` (the images' places in the training set) and `epoch` drive
        alternating flips."""
        if "trivial" in self.ops:
            pixels = (x.float() * self.std + self.mean).clamp(0, 1)
            x = ((trivial_augment(pixels, self.generator) - self.mean) / self.std).to(x.dtype)
        if "crop" in self.ops:
            x = random_crop(x, self.crop_pad, self.generator)
        if "translate" in self.ops:
            x = random_crop(x, self.crop_pad, self.generator, fill="reflect")
        if "flip" in self.ops:
            x = flip(x, self.generator)
        if "altflip" in self.ops:
            x = alternating_flip(x, indices, epoch, self.seed)
        if "cutout" in self.ops:
            x = cutout(x, self.cutout_size, self.generator)
        return x

    def state_dict(self) -> dict:
        return {"torch": self.generator.get_state(), "device": self.generator.device.type,
                "numpy": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        saved_on = state.get("device", "cpu")  # checkpoints from before generators moved to the device: the CPU
        if saved_on != self.generator.device.type:
            raise RegulabError(f"this run's augmentation was drawn by a {saved_on} random generator, which a "
                               f"{self.generator.device.type} one cannot continue; resume it with --device {saved_on}")
        self.generator.set_state(state["torch"])
        self.rng.bit_generator.state = state["numpy"]
