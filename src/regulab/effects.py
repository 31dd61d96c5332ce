"""A factorial study's numbers: each factor's main effect and each estimable two-factor
interaction, with intervals, adjusted p-values and the lab's four verdicts; how much of the
combination's whole gain they account for; and the model's prediction for the corners the
fraction left out, against their measured runs.

Model (Box, Hunter & Hunter 2005, ch. 5-6): y = block + sum of coded effect columns, fitted by
least squares (statsmodels) over every cell of the complete seed blocks, one intercept per block
(a seed: the same split, initial weights and data order in every cell). The columns are -1/+1,
so an *effect* is twice its coefficient: the change from the factor's low level to its high one,
averaged over the other factors' levels (an interaction: half the difference between one
factor's effect at the other's high and low levels). The residual (block x effect interactions,
and the higher interactions the model leaves out) gives one pooled standard deviation.

A verdict needs every planned block complete (else *interim*). Holm adjusts over the effects of
one measure; with adaptive seed blocks, each effect's p-value is first adjusted for the looks
by Pocock's boundary for this pooled t statistic (`stats.SequentialDesign` with `residual_df`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

from regulab import stats
from regulab.analysis import Design
from regulab.designs import FractionalDesign
from regulab.measures import MEASURES, OPTIONAL, Measure


def measures_of(runs: list[dict]) -> list[Measure]:
    """The measures a factorial table gives: every one that all runs have."""
    return [m for m in MEASURES if m.key not in OPTIONAL or all(r["metrics"].get(m.key) is not None for r in runs)]


def block_table(design: FractionalDesign, runs: list[dict], key: str) -> tuple[list[int], np.ndarray, dict]:
    """The seeds whose every cell finished, in order; their values of `key` (blocks x cells of
    the design); and the corners outside the design, {label: {seed: value}}."""
    labels = [design.cell_label(row) for row in design.matrix]
    values = {(r["group"], r["seed"]): r["metrics"].get(key) for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    complete = [s for s in seeds if all(values.get((label, s)) is not None for label in labels)]
    table = np.array([[values[(label, s)] for label in labels] for s in complete], dtype=float).reshape(len(complete),
                                                                                                       len(labels))
    corners = {design.cell_label(c): {s: values[(design.cell_label(c), s)] for s in seeds
                                      if values.get((design.cell_label(c), s)) is not None} for c in design.corners()}
    return complete, table, corners


def model_matrix(design: FractionalDesign, rows: np.ndarray | None = None) -> np.ndarray:
    """The coded columns of the model's effects at `rows` (default: the design's cells)."""
    rows = design.matrix if rows is None else np.atleast_2d(rows)
    picked = [[design.letters.index(c) for c in effect] for effect in design.effects]
    return np.stack([np.prod(rows[:, idx], axis=1) for idx in picked], axis=1).astype(float)


def residual_df(design: FractionalDesign, blocks: int) -> int:
    """Residual degrees of freedom with `blocks` complete blocks: cells minus block intercepts minus effects."""
    return blocks * (len(design.matrix) - 1) - len(design.effects)


def fit(design: FractionalDesign, table: np.ndarray):
    """The least-squares fit (statsmodels OLS) of blocks x cells: one intercept per block, then
    the effects' coded columns. None where there is no residual to estimate the spread."""
    import statsmodels.api as sm

    blocks, cells = table.shape
    if residual_df(design, blocks) < 1:
        return None
    columns = model_matrix(design)
    exog = np.hstack([np.kron(np.eye(blocks), np.ones((cells, 1))), np.tile(columns, (blocks, 1))])
    return sm.OLS(table.reshape(-1), exog).fit()


def estimate(design: FractionalDesign, table: np.ndarray, margin: float | None, alpha: float = stats.ALPHA,
             alpha_equivalence: float = 2 * stats.ALPHA) -> list[dict]:
    """Each effect of `design.effects` from blocks x cells: the effect, its standard error, its
    1 - alpha interval (95%) and 1 - alpha_equivalence one (90%), nominal p-values (difference;
    equivalence within ±margin by TOST) and the residual degrees of freedom; without a residual,
    the effects alone."""
    blocks = table.shape[0]
    result = fit(design, table)
    if result is None:  # one block of a saturated design: the effects, no spread
        coefficients = np.linalg.lstsq(model_matrix(design), table.mean(0) - table.mean(), rcond=None)[0]
        return [{"effect": 2 * b, "se": None, "low": None, "high": None, "low90": None, "high90": None,
                 "p_difference": None, "p_equivalence": None, "df": 0, "blocks": blocks} for b in coefficients]
    out = []
    df = int(result.df_resid)
    for i in range(len(design.effects)):
        j = blocks + i
        effect, se = 2 * result.params[j], 2 * result.bse[j]
        low, high = 2 * result.conf_int(alpha)[j]
        low90, high90 = 2 * result.conf_int(alpha_equivalence)[j]
        p_eq = None
        if margin is not None:
            p_eq = float(max(scipy_stats.t.sf((effect + margin) / se, df), scipy_stats.t.cdf((effect - margin) / se, df)))
        out.append({"effect": float(effect), "se": float(se), "low": float(low), "high": float(high),
                    "low90": float(low90), "high90": float(high90), "p_difference": float(result.pvalues[j]),
                    "p_equivalence": p_eq, "df": df, "blocks": blocks})
    return out


def looks_of(design: FractionalDesign, plan: Design, blocks: int) -> stats.SequentialDesign | None:
    """The planned looks (in blocks) reached so far with their residual degrees of freedom; None
    where the study is fixed (one look, at its end)."""
    sequential = plan.sequential
    if sequential is None:
        return None
    looks = tuple(n for n in sequential.looks if residual_df(design, n) >= 1)
    return stats.SequentialDesign(looks, tuple(residual_df(design, n) for n in looks))


def analyze(design: FractionalDesign, runs: list[dict], plan: Design, planned_blocks: int) -> dict:
    """Per measure: the effects with their verdicts (Holm over the measure's effects; adaptive
    looks adjusted first), the gain, the out-of-fraction check; and the blocks used."""
    out = {"effects": design.effects, "names": [design.effect_name(e) for e in design.effects], "measures": {}}
    for m in measures_of(runs):
        seeds, table, corners = block_table(design, runs, m.key)
        rows = estimate(design, table, plan.margin) if len(seeds) else []
        complete = len(seeds) >= planned_blocks
        sequential = looks_of(design, plan, len(seeds))
        taken = [n for n in sequential.looks if n <= len(seeds)] if sequential and rows and rows[0]["se"] else []
        # Each look's nominal p-values, turned into one valid over all the planned looks (Pocock).
        earlier = [estimate(design, table[:n], plan.margin) for n in taken]
        if taken:  # the intervals the verdicts use: at Pocock's nominal level of each look
            two, one = sequential.nominal_level(sided=2), sequential.nominal_level(sided=1)
            for row, wide in zip(rows, estimate(design, table, plan.margin, two, 2 * one)):
                row.update({k: wide[k] for k in ("low", "high", "low90", "high90")}, confidence=1 - two,
                           confidence_equivalence=1 - 2 * one)
        for i, row in enumerate(rows):
            row["looks"] = taken or [len(seeds)]
            if taken:
                row["p_difference"] = sequential.p_value([e[i]["p_difference"] for e in earlier], sided=2)
                if plan.margin is not None:
                    row["p_equivalence"] = sequential.p_value([e[i]["p_equivalence"] for e in earlier], sided=1)
        for kind in ("p_difference", "p_equivalence"):
            raw = [r[kind] for r in rows]
            adjusted = stats.holm(raw) if plan.correction == "holm" else raw
            for r, p in zip(rows, adjusted):
                r[f"{kind}_adjusted"] = p
        for r in rows:
            r["verdict"] = stats.verdict(r["p_difference_adjusted"], r["p_equivalence_adjusted"], r["effect"],
                                         m.higher_is_better) if complete else stats.INTERIM
        out["measures"][m.key] = {"blocks": seeds, "complete": complete, "effects": rows,
                                  "residual_sd": _residual_sd(design, table), "cells": _cells(design, table),
                                  "gain": gain(design, seeds, table, corners), "check": check(design, seeds, table, corners)}
    return out


def _residual_sd(design: FractionalDesign, table: np.ndarray) -> dict:
    result = fit(design, table) if len(table) else None
    return {"sd": None, "df": 0} if result is None else {"sd": float(np.sqrt(result.scale)), "df": int(result.df_resid)}


def _cells(design: FractionalDesign, table: np.ndarray) -> list[dict]:
    """Each cell's mean over the complete blocks, with its t interval."""
    return [{"label": design.cell_label(row), **stats.t_interval(list(table[:, i]))} for i, row in enumerate(design.matrix)]


def per_block(design: FractionalDesign, values: np.ndarray) -> np.ndarray:
    """One block's least-squares coefficients: its mean, then each effect's (half the effect)."""
    columns = np.hstack([np.ones((len(design.matrix), 1)), model_matrix(design)])
    return np.linalg.lstsq(columns, values, rcond=None)[0]


def _corner_value(design: FractionalDesign, corner: np.ndarray, table_row: np.ndarray, corners: dict, seed: int):
    """A corner's measured value in one block: its cell in the design, else its own runs (None if not run)."""
    label = design.cell_label(corner)
    labels = [design.cell_label(row) for row in design.matrix]
    return table_row[labels.index(label)] if label in labels else corners.get(label, {}).get(seed)


def gain(design: FractionalDesign, seeds: list[int], table: np.ndarray, corners: dict) -> dict:
    """The whole gain (all high minus all low, both measured, per block), the sum of the main
    effects (what an additive model predicts for it), and what is left, each over the blocks
    that measured both corners. Two-factor interactions cancel between the two opposite
    corners (each is +1 at both), so adding them predicts the same gain: the rest belongs to
    odd-order interactions of three factors or more (in a fraction, aliased with lower ones) and
    to noise."""
    k = len(design.factors)
    high, low = np.ones(k, int), -np.ones(k, int)
    whole, mains = [], []
    for b, seed in enumerate(seeds):
        on, off = (_corner_value(design, c, table[b], corners, seed) for c in (high, low))
        if on is None or off is None:
            continue
        whole.append(on - off)
        mains.append(2 * per_block(design, table[b])[1:k + 1].sum())
    measured, additive = stats.t_interval(whole), stats.t_interval(mains)
    rest = stats.t_interval([w - a for w, a in zip(whole, mains)])
    share = additive["mean"] / measured["mean"] if whole and measured["mean"] else None
    return {"whole": measured, "main_effects": additive, "rest": rest, "share": share}


def check(design: FractionalDesign, seeds: list[int], table: np.ndarray, corners: dict) -> list[dict]:
    """For each corner outside the fraction: the model's prediction from each block's own fit,
    against the corner's measured run of that seed; the difference over the blocks."""
    out = []
    for corner in design.corners():
        label = design.cell_label(corner)
        measured, predicted = [], []
        for b, seed in enumerate(seeds):
            value = corners.get(label, {}).get(seed)
            if value is None:
                continue
            beta = per_block(design, table[b])
            measured.append(value)
            predicted.append(float(beta[0] + model_matrix(design, corner)[0] @ beta[1:]))
        out.append({"label": label, "measured": stats.t_interval(measured), "predicted": stats.t_interval(predicted),
                    "difference": stats.t_interval([m - p for m, p in zip(measured, predicted)])})
    return out
