"""The measures a study reports per group, and the adjustments it offers: plain names, with no
heavy import, so that `regulab --help` can list them at once."""

from __future__ import annotations

import math
from typing import NamedTuple


class Measure(NamedTuple):
    """A number each table gives per group."""

    key: str  # in metrics.json, or derived from it (gap)
    heading: str
    higher_is_better: bool
    low: float  # the values it can take: a figure's band stops there, where a t interval may not
    high: float


MEASURES = (Measure("best_val_acc", "best val acc", True, 0, 1), Measure("test_acc", "test acc", True, 0, 1),
            Measure("gap", "gap (train - val acc)", False, -1, 1), Measure("test_ece", "test ECE", False, 0, 1),
            Measure("test_loss", "test NLL", False, 0, math.inf),
            # Only where some run trained with label noise: the share of its wrong labels it learned.
            Measure("memorized", "memorized share", False, 0, 1))
OPTIONAL = {"memorized"}
KEYS = [m.key for m in MEASURES]
CORRECTIONS = ("holm", "none")
