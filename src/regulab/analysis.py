"""A study's numbers: per group, each measure's interval over seeds; per group and its baseline,
the paired differences with their four-way verdicts (adjusted for the table and for repeated
looks), the seeds each comparison would need, and an interval over test images as well as
seeds. The reports print these rows; the adaptive sweep decides its next round from them.

A pair is two runs of one seed on the same machine and precision: rounding alone decorrelates
two trainings of one seed (Summers & Dinneen 2021), and another CPU model moves a run as another
GPU does (other kernels, other rounding), so a difference across machines carries the machine's
effect too. Pairs that cross machines are left out and counted.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from regulab import stats
from regulab.errors import RegulabError, unknown_name
from regulab.measures import CORRECTIONS, KEYS, MEASURES, OPTIONAL, Measure
from regulab.rundir import TEST_PREDICTIONS, RunDir
from regulab.study import Group, baseline_of


def shown(rows: list[dict]) -> list[Measure]:
    """The measures a table gives: every one, less an optional one that no run has."""
    return [m for m in MEASURES if m.key not in OPTIONAL or any(r[m.key]["n"] for r in rows)]


def measure(key: str) -> Measure:
    for m in MEASURES:
        if m.key == key:
            return m
    raise unknown_name("measure", key, KEYS, f"--primary takes one of {', '.join(KEYS)}")


@dataclass(frozen=True)
class Design:
    """How a study decides: the margin of equivalence (None: no equivalence verdict), the
    adjustment over a table's rows, and the seeds: `seeds` for every group, then, where
    `max_seeds` is larger, rounds of `seeds_per_round` more for the groups whose verdict on
    `primary` is still undecided, up to `max_seeds`."""

    seeds: int = 1
    max_seeds: int = 0  # 0: as many as `seeds` (no adaptive rounds)
    seeds_per_round: int = 2
    margin: float | None = None
    primary: str = "test_acc"
    correction: str = "holm"
    pair_on: str = "machine"

    def __post_init__(self):
        if self.margin is not None and not self.margin > 0:
            raise RegulabError(f"--margin must be positive (in the measure's units, 0.005 = half a point), not {self.margin}")
        if self.pair_on not in PAIR_ON:
            raise unknown_name("pairing rule", self.pair_on, PAIR_ON, "--pair-on takes machine or device")
        if self.correction not in CORRECTIONS:
            raise unknown_name("correction", self.correction, CORRECTIONS, "--correction takes holm or none")
        measure(self.primary)
        if self.max_seeds and self.max_seeds < self.seeds:
            raise RegulabError(f"--max-seeds ({self.max_seeds}) must be at least --seeds ({self.seeds})")
        if self.adaptive and self.seeds < 2:
            raise RegulabError(f"--max-seeds needs --seeds of at least 2, not {self.seeds}: the first look needs a "
                               "paired interval, which takes two seeds")
        if self.seeds_per_round < 1:
            raise RegulabError(f"--seeds-per-round must be at least 1, not {self.seeds_per_round}")

    @property
    def adaptive(self) -> bool:
        return self.max_seeds > self.seeds

    @property
    def sequential(self) -> stats.SequentialDesign | None:
        """The planned looks of an adaptive study; None for a fixed one (one look, at the end)."""
        if not self.adaptive:
            return None
        return stats.SequentialDesign.rounds(self.seeds, self.max_seeds, self.seeds_per_round)

    @classmethod
    def of(cls, manifest: dict, **given) -> "Design":
        """The study's own design (sweep.json), with what `given` names instead (None: keep)."""
        saved = manifest.get("design") or {"seeds": manifest.get("seeds", 1)}
        return cls(**{**saved, **{k: v for k, v in given.items() if v is not None}})

    def record(self) -> dict:
        return asdict(self)


PAIR_ON = ("machine", "device")  # what the two runs of a pair must share besides the seed (and the precision)


def pairs(mine: dict[int, dict], theirs: dict[int, dict], on: str = "machine") -> tuple[list[int], int]:
    """The seeds both groups ran on the same machine (`on` "device": the same device type only,
    the rule before machines were recorded) and precision, and how many shared seeds were left
    out for crossing them."""
    keys = ("device", "precision", "machine") if on == "machine" else ("device", "precision")
    shared = sorted(mine.keys() & theirs.keys())
    same = [s for s in shared if [mine[s].get(k) for k in keys] == [theirs[s].get(k) for k in keys]]
    return same, len(shared) - len(same)


def planned_looks(design: Design, left_out: int = 0) -> stats.SequentialDesign | None:
    """The looks of an adaptive design, in pairs: the seeds of each planned look less the pairs
    `left_out` across machines (fixed by where the runs trained, not by their results, so the
    design moved down by them keeps its error rate: Pocock's level is found for the moved looks).
    None for a fixed design, and where no look keeps two pairs."""
    sequential = design.sequential
    if sequential is None or not left_out:
        return sequential
    moved = tuple(sorted({n - left_out for n in sequential.looks if n - left_out >= 2}))
    return stats.SequentialDesign(moved) if moved else None


def paired_measure(diffs: list[float], design: Design, higher_is_better: bool, left_out: int = 0) -> dict:
    """One measure's paired differences (in seed order): the interval of the difference and the
    one for the margin (95% and 90%; at an adaptive design's looks, those at Pocock's nominal
    level, named in `confidence` and `confidence_equivalence`), and the p-values, nominal and
    adjusted for the looks the design planned, moved down by the pairs `left_out` (Holm comes
    later, over the table). `looks` are the planned looks reached, `planned` all of them."""
    out = stats.t_interval(diffs)
    ninety = stats.t_interval(diffs, confidence=1 - 2 * stats.ALPHA)
    out.update(low90=ninety["low"], high90=ninety["high"], p_difference=None, p_equivalence=None, looks=[], planned=[],
               confidence=1 - stats.ALPHA, confidence_equivalence=1 - 2 * stats.ALPHA)
    if len(diffs) < 2:
        return out
    values = np.asarray(diffs, dtype=float)
    sequential = planned_looks(design, left_out)
    looks = [n for n in sequential.looks if n <= len(values)] if sequential else []
    if looks:
        out.update(looks=looks, planned=list(sequential.looks))
        # The intervals the verdict used: at Pocock's nominal level of each look (repeated
        # confidence intervals, Jennison & Turnbull 1989), wider than a plain 95% and 90%.
        two, one = sequential.nominal_level(sided=2), sequential.nominal_level(sided=1)
        wide, inside = stats.t_interval(diffs, 1 - two), stats.t_interval(diffs, 1 - 2 * one)
        out.update(low=wide["low"], high=wide["high"], low90=inside["low"], high90=inside["high"],
                   confidence=1 - two, confidence_equivalence=1 - 2 * one)
    else:  # a fixed design's one look, at the end; or, short of an adaptive one's first look, a nominal p never judged
        looks, sequential = [len(values)], stats.SequentialDesign((len(values),))
        if not design.adaptive:
            out.update(looks=looks, planned=looks)
    out["p_difference"] = sequential.p_value([stats.difference_p(values[:n]) for n in looks], sided=2)
    if design.margin is not None:
        out["p_equivalence"] = sequential.p_value([stats.tost_p(values[:n], design.margin) for n in looks], sided=1)
    return out


def _adjust(rows: list[dict], design: Design) -> None:
    """Holm over the table's paired rows, per measure and per kind of test; then the verdicts."""
    paired = [r for r in rows if "paired" in r]
    for m in MEASURES:
        cells = [r["paired"][m.key] for r in paired]
        for kind in ("p_difference", "p_equivalence"):
            raw = [c[kind] for c in cells]
            adjusted = stats.holm(raw) if design.correction == "holm" else raw
            for cell, p in zip(cells, adjusted):
                cell[f"{kind}_adjusted"] = p
        for row, cell in zip(paired, cells):
            if not row["complete"]:
                cell["verdict"] = stats.INTERIM
            elif design.adaptive and cell["n"] >= 2 and not cell["looks"]:
                cell["verdict"] = stats.SHORT
            else:
                cell["verdict"] = stats.verdict(cell["p_difference_adjusted"], cell["p_equivalence_adjusted"],
                                                cell["mean"], m.higher_is_better)


def seeds_needed(sd: float | None, design: Design, effect: float | None, observed: float | None) -> dict:
    """Seeds (pairs) for 80% power, from the paired differences' standard deviation: to detect a
    true difference `effect`, and (with a margin) to show equivalence if the true difference is
    0 or the one observed."""
    if not sd:
        return {}
    out = {"sd": sd, "effect": effect, "difference": stats.seeds_for_difference(sd, effect) if effect else None}
    if design.margin is not None:
        out["equivalence_if_0"] = stats.seeds_for_equivalence(sd, design.margin)
        out["equivalence_if_observed"] = stats.seeds_for_equivalence(sd, design.margin, observed or 0.0)
    return out


def _correct(run: dict) -> np.ndarray:
    arrays = RunDir(run["path"]).read_arrays(TEST_PREDICTIONS)
    return arrays["predicted"] == arrays["label"]


def summarize(manifest: dict, runs: list[dict], baseline: str | None = None, design: Design | None = None,
              effect: float | None = None, bootstrap: int = 2000) -> list[dict]:
    """One row per planned group, in plan order, even where no run has finished: per measure its
    interval over seeds and, with a baseline, the paired differences over same-device seeds with
    their verdicts; the primary measure's seeds needed; test accuracy's paired bootstrap over
    seeds and test images where the runs kept their predictions."""
    design = design or Design.of(manifest)
    baseline = baseline or manifest.get("baseline")
    groups = [Group.from_manifest(g) for g in manifest["groups"]]
    bases = baseline_of(groups, baseline) if baseline else {}
    primary = measure(design.primary)
    effect = effect if effect is not None else design.margin
    by_group: dict[str, dict[int, dict]] = {}
    for r in runs:
        by_group.setdefault(r["group"], {})[r["seed"]] = r
    rows = []
    for group in groups:
        mine = {s: r["metrics"] for s, r in by_group.get(group.label, {}).items()}
        row = {"group": group.label, "preset": group.preset, **group.point, "planned": len(group.runs), "n": len(mine),
               "same_as": group.same_as(manifest.get("settings") or {}) if group.point else None}
        for key in KEYS:
            row[key] = stats.t_interval([m[key] for m in mine.values() if m.get(key) is not None])
        row["best_epoch"] = statistics.fmean(m["best_epoch"] for m in mine.values()) if mine else None
        # Wall minutes per device: a group pooled from CPU and GPU runs must not average their times.
        by_device: dict[str, list[float]] = {}
        for m in mine.values():
            by_device.setdefault(m.get("device", "unrecorded"), []).append(m["seconds"] / 60)
        row["minutes"] = {device: statistics.fmean(v) for device, v in sorted(by_device.items())}
        row["devices"] = {device: len(v) for device, v in sorted(by_device.items())}
        row["machines"] = dict(sorted(Counter(m.get("machine") or "unrecorded" for m in mine.values()).items()))
        row["precision"] = ", ".join(sorted({m["precision"] for m in mine.values()}))
        base = bases.get(group.label)
        if base is not None and base.label != group.label:
            theirs = {s: r["metrics"] for s, r in by_group.get(base.label, {}).items()}
            seeds, crossed = pairs(mine, theirs, design.pair_on)
            # Complete: this group and its baseline have finished every seed the plan gives the group.
            complete = len(mine) == len(group.runs) and set(group.runs) <= set(theirs)
            row.update(baseline=base.label, pair_seeds=seeds, cross_machine=crossed, complete=complete)
            row["paired"] = {m.key: paired_measure([mine[s][m.key] - theirs[s][m.key] for s in seeds
                                                    if mine[s].get(m.key) is not None and theirs[s].get(m.key) is not None],
                                                   design, m.higher_is_better, crossed) for m in MEASURES}
            cell = row["paired"][primary.key]
            row["seeds_needed"] = seeds_needed(cell["std"], design, effect, cell["mean"])
            mine_runs, their_runs = by_group.get(group.label, {}), by_group.get(base.label, {})
            kept = [s for s in seeds if mine_runs[s].get("predictions") and their_runs[s].get("predictions")]
            if bootstrap and len(kept) >= 2:
                row["bootstrap"] = stats.paired_bootstrap(
                    np.stack([_correct(mine_runs[s]) for s in kept]),
                    np.stack([_correct(their_runs[s]) for s in kept]), bootstrap, np.random.default_rng(0))
                row["bootstrap"]["seeds"] = kept  # the pairs that kept predictions: maybe fewer than the table's
        rows.append(row)
    _adjust(rows, design)
    for row in rows:
        row["stopped"] = _why_stopped(row, design, primary)
    return rows


def _why_stopped(row: dict, design: Design, primary: Measure) -> str | None:
    """For an adaptive study: why the group has the seeds it has."""
    if not design.adaptive or "paired" not in row:
        return None
    cell = row["paired"][primary.key]
    if cell["verdict"] == stats.INTERIM:
        return f"in progress: {cell['n']} of {row['planned']} pairs finished"
    if not cell["looks"]:
        return f"no verdict: {cell['n']} pairs, short of the first planned look"
    moved = f"; the looks moved down by the {row['cross_machine']} pairs left out" if row["cross_machine"] else ""
    look = f"look {len(cell['looks'])} of {len(cell['planned'])} ({cell['n']} pairs{moved})"
    if cell["verdict"] in ("better", "worse", "equivalent"):
        return f"decided at {look}: {cell['verdict']}"
    if row["n"] >= design.max_seeds:
        return f"reached --max-seeds {design.max_seeds}: still undecided at {look}"
    return f"undecided at {row['n']} seeds: the next round adds {min(design.seeds_per_round, design.max_seeds - row['n'])}"


def undecided(rows: list[dict], design: Design) -> list[dict]:
    """The paired rows the next adaptive round gives more seeds: undecided on the primary
    measure (so every planned seed finished: before that a row is INTERIM), fewer than `max_seeds`."""
    key = design.primary
    return [r for r in rows if "paired" in r and r["paired"][key]["verdict"] in ("undecided", "no clear difference",
                                                                                   stats.NO_INTERVAL, stats.SHORT)
            and r["n"] < design.max_seeds]


def judge(diffs: np.ndarray, design: Design) -> list[tuple[str, dict]]:
    """The design's procedure on each row of `diffs` (studies x seeds of paired differences, as
    many seeds as the design may take): each look's verdict on a one-row table, stopping at the
    first decided one or at the last look; per study, the verdict and the cell it was reached with
    (its n, interval and p-values), through the same code the reports use."""
    looks = design.sequential.looks if design.sequential else (design.seeds,)
    out = []
    for row in diffs:
        for n in looks:
            cell = paired_measure(list(row[:n]), design, higher_is_better=True)
            word = stats.verdict(cell["p_difference"], cell["p_equivalence"], cell["mean"], True)
            if word in ("better", "worse", "equivalent"):
                break
        out.append((word, cell))
    return out


def simulate_design(design: Design, effect: float, sd: float, studies: int, rng: np.random.Generator) -> dict:
    """The adaptive procedure run on `studies` simulated comparisons whose paired differences are
    normal (mean `effect`, standard deviation `sd`): the share of each verdict, and the mean seeds
    spent."""
    most = max(design.max_seeds, design.seeds)
    judged = judge(rng.normal(effect, sd, size=(studies, most)), design)
    counts: dict[str, int] = {}
    for word, _ in judged:
        counts[word] = counts.get(word, 0) + 1
    return {"studies": studies, "effect": effect, "sd": sd, "mean_seeds": sum(c["n"] for _, c in judged) / studies,
            **{word: count / studies for word, count in sorted(counts.items())}}
