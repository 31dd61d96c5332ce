"""Random erasing (Zhong et al., AAAI 2020) as a regulab regularizer, in one class.

    regulab train --preset seed-noreg --regularizer-file examples/random_erasing.py --erasing 0.5
    regulab sweep seed-noreg --regularizer-file examples/random_erasing.py --grid erasing=0,0.25,0.5
"""

import math

import torch

import regulab


@regulab.register_regularizer
class RandomErasing(regulab.Regularizer):
    """With probability `erasing`, each image gets a box of 2-40% of its area, of aspect ratio
    0.3-3.3, filled with noise (the paper's settings)."""

    settings = {"erasing": regulab.Strength("random erasing: the share of images that get a box of noise")}

    def before_batch(self, x, target):
        n, _, h, w = x.shape
        draw = torch.rand(5, n, 1, 1, 1, generator=self.generator, device=x.device)  # on the device: no host sync
        area = h * w * (0.02 + 0.38 * draw[0])
        ratio = torch.exp(math.log(0.3) + math.log(3.3 / 0.3) * draw[1])
        box_h, box_w = (area * ratio).sqrt().clamp(max=h), (area / ratio).sqrt().clamp(max=w)
        top, left = (h - box_h) * draw[2], (w - box_w) * draw[3]
        rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
        box = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
        erased = box & (draw[4] < self.cfg.erasing)
        noise = torch.randn(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return torch.where(erased, noise, x), target
