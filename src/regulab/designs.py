"""Two-level factorial designs that take a combination of settings apart (Box, Hunter & Hunter
2005, *Statistics for Experimenters*, ch. 5-6; Montgomery, *Design and Analysis of
Experiments*, ch. 6-8): the factors, a full 2^k design or a regular fraction 2^(k-p) with its
generators, defining relation, resolution and aliases, and its cells as a study's groups.

A factor is a named set of settings with a low and a high level. Between two presets the
factors are the settings in which they differ, those that act together (`SETTING_GROUPS`: the
two dropout rates; the learning rate with its warm-up and schedule) kept as one. pyDOE builds
the coded matrix from generators (`fracfact`) and chooses them for a fraction (`fracfact_opt`:
main effects never aliased with each other, low-order aliasing least); the principal fraction
is used, so the all-high cell (the second preset) is always in the design.
"""

from __future__ import annotations

import dataclasses
import itertools
import string
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from regulab.config import SWEEP_OWN, config_fields, make_config
from regulab.errors import RegulabError, unknown_name
from regulab.study import NOT_IDENTITY, Group, setting_value, value_text

# Settings that act together: between two presets, the ones of a group that differ are one factor,
# named after the group where more than one of them differs (else after the setting itself).
SETTING_GROUPS = {
    "dropout": ("dropout_blocks", "dropout_head"),
    "lr": ("lr", "schedule", "warmup_epochs", "warmup_from", "decay_to", "step_epochs", "step_gamma"),
    "augment": ("augment", "crop_pad", "cutout_size"),
    "optimizer": ("optimizer", "weight_decay", "momentum", "muon_lr", "muon_momentum", "norm_lr_scale"),
    "sam": ("sam", "sam_adaptive"),
    "penalty": ("l2", "l1", "penalty_scope"),
    "whiten": ("whiten", "whiten_bias_epochs"),
    "tta": ("tta", "tta_unsure"),
    "model": ("model", "model_file", "model_file_sha256"),
}
RESOLUTION_NAMES = {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}
MOST_FACTORS = 12  # pyDOE's generator search is exhaustive; 2^12 cells is past any study of trainings


@dataclass(frozen=True)
class Factor:
    """A named factor: the settings it sets at its low level and at its high one."""

    name: str
    low: dict
    high: dict

    def describe(self) -> str:
        if list(self.low) == [self.name]:
            return f"{self.name}: {_shown(self.low[self.name])} -> {_shown(self.high[self.name])}"
        return f"{self.name}: " + ", ".join(f"{k} {_shown(self.low[k])} -> {_shown(self.high[k])}" for k in self.low)


def _shown(value) -> str:
    return repr(value) if value == "" else value_text(value)


def factors_between(low: str, high: str, overrides: dict | None = None) -> list[Factor]:
    """The factors that take preset `high` apart against preset `low`: every setting in which the
    two differ (after `overrides`, which both share), grouped by `SETTING_GROUPS`, in the order
    of `Config`'s fields."""
    overrides = overrides or {}
    a, b = make_config(low, **overrides), make_config(high, **overrides)
    differ = [f.name for f in config_fields() if f.name not in NOT_IDENTITY and getattr(a, f.name) != getattr(b, f.name)]
    if not differ:
        raise RegulabError(f"{low} and {high} have the same settings; name two presets that differ, or give --factor")
    factors, taken = [], set()
    for name in differ:
        if name in taken:
            continue
        group = next((g for g, members in SETTING_GROUPS.items() if name in members), None)
        members = [m for m in SETTING_GROUPS[group] if m in differ] if group else [name]
        taken.update(members)
        factors.append(Factor(group if len(members) > 1 else name, {m: getattr(a, m) for m in members},
                              {m: getattr(b, m) for m in members}))
    return factors


def parse_factors(specs: list[str]) -> list[Factor]:
    """`--factor NAME=SETTING:LOW/HIGH` as factors; a NAME given again adds a setting to the same
    factor (`--factor lr=lr:1e-4/1e-3 --factor lr=schedule:constant/cosine`)."""
    fields = {f.name: f for f in config_fields() if f.name not in SWEEP_OWN}
    levels: dict[str, tuple[dict, dict]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        setting, colon, values = rest.partition(":")
        low, slash, high = values.partition("/")
        name, setting = name.strip(), setting.strip().lstrip("-").replace("-", "_")
        if not (sep and colon and slash) or not name:
            raise RegulabError(f"--factor {spec!r} needs the form NAME=SETTING:LOW/HIGH (for example "
                               "--factor bn=batch_norm:false/true)")
        if setting not in fields:
            raise unknown_name("setting", setting, fields, "--factor takes any `regulab train` option, with _ or -")
        if any(setting in lo for lo, _ in levels.values()):
            raise RegulabError(f"--factor: {setting} belongs to two factors; give it to one")
        lo, hi = levels.setdefault(name, ({}, {}))
        lo[setting], hi[setting] = (setting_value(fields[setting], v.strip(), "--factor") for v in (low, high))
    return [Factor(name, lo, hi) for name, (lo, hi) in levels.items()]


@dataclass(frozen=True)
class FractionalDesign:
    """A regular two-level design: `factors` coded A, B, C, ... in `matrix` (cells x factors,
    -1 low, +1 high, in standard order), from pyDOE's generator string `generator`
    ('a b c d abcd': E = ABCD); `fraction` p of 2^(k-p)."""

    factors: tuple[Factor, ...]
    generator: str
    matrix: np.ndarray = dataclasses.field(compare=False, repr=False)

    @classmethod
    def choose(cls, factors: list[Factor], fraction: int | None = None, allow_resolution_iii: bool = False) -> "FractionalDesign":
        """The design for `factors`: the fraction 2^-`fraction` (None: the smallest fraction of
        resolution V or more, the full design where none is), refused where it would alias main
        effects with each other, or with two-factor interactions (resolution III) unless allowed."""
        import pydoe

        k = len(factors)
        names = [f.name for f in factors]
        if k < 2:
            raise RegulabError(f"a factorial design needs at least 2 factors, not {k} ({', '.join(names) or 'none'}); "
                               "with one, use `regulab compare`")
        if len(set(names)) < k:
            raise RegulabError(f"two factors are named {next(n for n in names if names.count(n) > 1)}; name each once")
        for f in factors:
            if f.low == f.high:
                raise RegulabError(f"factor {f.name}: its two levels are equal ({f.describe()}); give two different values")
        if k > MOST_FACTORS:
            raise RegulabError(f"{k} factors are more than this command designs for ({MOST_FACTORS}); group settings into "
                               "fewer factors with --factor")
        if fraction is None:
            fraction = max((p for p in range(k) if cls._generator(k, p) and resolution_of(cls._generator(k, p)) >= 5),
                           default=0)
        if fraction < 0 or not cls._generator(k, fraction):
            largest = max(p for p in range(k) if cls._generator(k, p))
            raise RegulabError(f"a 1/{2 ** fraction} fraction of {k} factors has {2 ** (k - fraction)} cells: too few to keep "
                               f"the main effects apart from each other; choose --fraction 1/{2 ** largest} or larger")
        generator = cls._generator(k, fraction)
        resolution = resolution_of(generator)
        if resolution <= 3 and not allow_resolution_iii:
            raise RegulabError(f"a 1/{2 ** fraction} fraction of {k} factors is of resolution III: every main effect is "
                               "aliased with two-factor interactions; choose a larger --fraction, or pass "
                               "--allow-resolution III to accept that")
        return cls(tuple(factors), generator, pydoe.fracfact(generator).astype(int))

    @staticmethod
    def _generator(k: int, p: int) -> str | None:
        """pyDOE's best generator string for a 2^(k-p) (None where p is not feasible)."""
        import pydoe

        if p == 0:
            return " ".join(string.ascii_lowercase[:k])
        try:
            return pydoe.fracfact_opt(k, p)[0]
        except ValueError:  # too few base factors to hold k distinct columns
            return None

    @property
    def letters(self) -> str:
        return string.ascii_uppercase[:len(self.factors)]

    @property
    def fraction(self) -> int:
        return len(self.generator.split()) - len(self.base)

    @property
    def base(self) -> list[str]:
        return [w for w in self.generator.split() if len(w) == 1]

    @property
    def generators(self) -> list[str]:
        """'E = ABCD' for each factor that is not a base factor."""
        return [f"{self.letters[i]} = {w.upper()}" for i, w in enumerate(self.generator.split()) if len(w) > 1]

    @cached_property
    def defining_relation(self) -> list[str]:
        """The words of I = ... : every product of the generators' words, shortest first."""
        return _defining_words(self.generator)

    @property
    def resolution(self) -> int | None:
        """The length of the shortest word of the defining relation; None for a full design."""
        return resolution_of(self.generator) if self.fraction else None

    @property
    def resolution_name(self) -> str:
        return "full" if self.resolution is None else RESOLUTION_NAMES.get(self.resolution, str(self.resolution))

    def alias(self, effect: str) -> list[str]:
        """Every effect aliased with `effect` (a word of factor letters), shortest first."""
        return sorted({_product(effect, w) for w in self.defining_relation}, key=lambda w: (len(w), w))

    @cached_property
    def effects(self) -> list[str]:
        """The effects the analysis estimates: every main effect, and every two-factor
        interaction not aliased with a main effect or with one listed before it (a chain of
        aliased two-factor interactions is estimated once, named by its first member)."""
        chosen = list(self.letters)
        seen = set(chosen)
        for a, b in itertools.combinations(self.letters, 2):
            chain = {a + b, *(w for w in self.alias(a + b) if len(w) <= 2)}
            if not chain & seen:
                chosen.append(a + b)
            seen |= chain
        return chosen

    def effect_name(self, effect: str) -> str:
        """'batch_norm x lr' for BE, with its aliases of two factors or fewer ('= ...')."""
        named = " x ".join(self.factors[self.letters.index(c)].name for c in effect)
        short = [w for w in self.alias(effect) if len(w) <= 2]
        return named + "".join(f" = {' x '.join(self.factors[self.letters.index(c)].name for c in w)}" for w in short)

    def column(self, effect: str) -> np.ndarray:
        """The coded column of `effect` over the cells: the product of its factors' columns."""
        return np.prod(self.matrix[:, [self.letters.index(c) for c in effect]], axis=1)

    def cell_label(self, row: np.ndarray) -> str:
        """Standard notation: the lower-case letters of the factors at their high level, (1) for none."""
        return "".join(c.lower() for c, x in zip(self.letters, row) if x > 0) or "(1)"

    def settings(self, row: np.ndarray) -> dict:
        """The settings of the cell `row` (+1: each factor's high level, -1: its low one)."""
        return {k: v for f, x in zip(self.factors, row) for k, v in (f.high if x > 0 else f.low).items()}

    def corners(self) -> list[np.ndarray]:
        """All low and all high, where the fraction leaves them out (the two presets, for a check)."""
        inside = {tuple(r) for r in self.matrix}
        return [c for c in (-np.ones(len(self.factors), int), np.ones(len(self.factors), int)) if tuple(c) not in inside]

    def cells(self, preset: str, seeds: int, overrides: dict) -> list[Group]:
        """The design's cells, then the corners outside it, as a study's groups (one per cell,
        seeds 0..seeds-1: a seed is a block, the same split, initial weights and data order)."""
        return [Group.planned(self.cell_label(row), preset, self.settings(row), seeds, overrides,
                              f"cell {self.cell_label(row)} ({_described(self.settings(row))})")
                for row in [*self.matrix, *self.corners()]]

    def record(self) -> dict:
        """What sweep.json keeps of the design: enough to rebuild it."""
        return {"factors": [{"name": f.name, "low": f.low, "high": f.high} for f in self.factors],
                "generator": self.generator}

    @classmethod
    def from_record(cls, record: dict) -> "FractionalDesign":
        import pydoe

        factors = tuple(Factor(f["name"], f["low"], f["high"]) for f in record["factors"])
        return cls(factors, record["generator"], pydoe.fracfact(record["generator"]).astype(int))

    def lines(self) -> list[str]:
        """The design as `--dry-run` prints it and the report shows it."""
        k, cells = len(self.factors), len(self.matrix)
        size = f"a full 2^{k} design" if not self.fraction else \
            f"a 1/{2 ** self.fraction} fraction, 2^({k}-{self.fraction}), of resolution {self.resolution_name}"
        out = [f"{k} factors, {size}: {cells} cells"]
        out += [f"  {c} = {f.describe()}" for c, f in zip(self.letters, self.factors)]
        if self.fraction:
            out.append(f"generators: {', '.join(self.generators)}; defining relation: I = {' = '.join(self.defining_relation)}")
            out.append("aliases (up to two-factor interactions, with every alias): "
                       + "; ".join(" = ".join([e, *self.alias(e)]) for e in self.effects))
        else:
            out.append("no aliases: every effect is estimated apart from every other")
        return out


def _described(point: dict) -> str:
    return ", ".join(f"{k}={_shown(v)}" for k, v in point.items())


def _product(a: str, b: str) -> str:
    """Two effects' product: the letters in one of them only (A x A = I), in order."""
    return "".join(sorted(set(a) ^ set(b)))


def _defining_words(generator: str) -> list[str]:
    """The defining relation of pyDOE's generator string: each generated factor times its
    generator (E = ABCD gives ABCDE), and every product of those words."""
    letters = string.ascii_uppercase
    words = [(w.upper() + letters[i]) for i, w in enumerate(generator.split()) if len(w) > 1]
    found = set()
    for r in range(1, len(words) + 1):
        for combo in itertools.combinations(words, r):
            product = ""
            for w in combo:
                product = _product(product, w)
            found.add(product)
    return sorted(found, key=lambda w: (len(w), w))


def resolution_of(generator: str) -> int:
    """The resolution of a design: its shortest defining word's length (a large number for a full design)."""
    words = _defining_words(generator)
    return min(map(len, words)) if words else 99


def parse_fraction(text: str | None) -> int | None:
    """'--fraction 1/4' as p = 2 (of 2^(k-p)); 'full' as 0; None keeps the default."""
    if text is None:
        return None
    if text.strip().lower() == "full":
        return 0
    one, slash, parts = text.partition("/")
    try:
        p = int(parts).bit_length() - 1
        if one.strip() != "1" or not slash or 2 ** p != int(parts) or p < 1:
            raise ValueError
    except ValueError:
        raise RegulabError(f"--fraction takes full, 1/2, 1/4, 1/8, ..., not {text!r}") from None
    return p
