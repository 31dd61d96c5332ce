"""What a person reads: the per-epoch line, the seed's two-panel figure, and the comparison
report (table, overlay figures, one self-contained HTML page)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import statistics
from pathlib import Path
from typing import NamedTuple

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from regulab.errors import RegulabError
from regulab.rundir import CONFIG, HISTORY_JSON, METRICS, RunDir, atomic_write

TRAIN_COLOR, VAL_COLOR = "blue", "orange"  # the seed's colours


def epoch_line(row: dict, epochs: int) -> str:
    """One Keras-style line: 'Epoch 3/30 - 27.1s - loss: ... - acc: ... - val_loss: ... - val_acc: ...'."""
    parts = [f"Epoch {row['epoch']}/{epochs}", f"{row['seconds']:.1f}s", f"loss: {row['loss']:.4f}", f"acc: {row['acc']:.4f}"]
    if row.get("val_loss") is not None:
        parts += [f"val_loss: {row['val_loss']:.4f}", f"val_acc: {row['val_acc']:.4f}"]
    parts.append(f"{row['images_per_s']:,.0f} img/s")
    return " - ".join(parts)


def run_title(config: dict) -> str:
    return f"{config.get('preset')} ({config.get('model')}, seed {config.get('seed')})"


def plot_curves(history: list[dict], path: Path, title: str | None = None) -> Path:
    """Loss and accuracy against epochs, side by side, train blue and validation orange.

    As in the seed, `loss` includes any L2 penalty; where there is one, the data loss alone is
    drawn dashed beside it so that runs with and without a penalty can be compared.
    """
    fig = Figure(figsize=(10, 5), layout="constrained")
    draw_curves(fig, history, title)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    atomic_write(path, png.getvalue())
    return path


def draw_curves(fig: Figure, history: list[dict], title: str | None = None) -> Figure:
    """`plot_curves`'s two panels, drawn into `fig` (a notebook shows it as it is)."""
    epochs = [r["epoch"] for r in history]
    has_val = any(r.get("val_loss") is not None for r in history)
    has_penalty = any(r.get("penalty") for r in history)
    loss_ax, acc_ax = fig.subplots(1, 2)

    loss_ax.plot(epochs, [r["loss"] for r in history], color=TRAIN_COLOR, label="train_loss")
    if has_val:
        loss_ax.plot(epochs, [r["val_loss"] for r in history], color=VAL_COLOR, label="val_loss")
    if has_penalty:
        loss_ax.plot(epochs, [r["data_loss"] for r in history], color=TRAIN_COLOR, ls="--", lw=1, label="train data loss")
        if has_val:
            loss_ax.plot(epochs, [r["val_data_loss"] for r in history], color=VAL_COLOR, ls="--", lw=1, label="val data loss")
    loss_ax.set(title="train and val loss", xlabel="epochs", ylabel="loss")

    acc_ax.plot(epochs, [r["acc"] for r in history], color=TRAIN_COLOR, label="train_acc")
    if has_val:
        acc_ax.plot(epochs, [r["val_acc"] for r in history], color=VAL_COLOR, label="val_acc")
    acc_ax.set(title="train and val acc", xlabel="epochs", ylabel="accuracy")

    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------------
# Sweeps and comparisons: statistics over seeds, tables, figures, one self-contained HTML page

class Measure(NamedTuple):
    """A number each table gives per group."""

    key: str  # in metrics.json, or derived from it (gap)
    heading: str
    higher_is_better: bool
    low: float  # the values it can take: a figure's band stops there, where a t interval may not
    high: float


MEASURES = (Measure("best_val_acc", "best val acc", True, 0, 1), Measure("test_acc", "test acc", True, 0, 1),
            Measure("gap", "gap (train - val acc)", False, -1, 1), Measure("test_ece", "test ECE", False, 0, 1),
            Measure("test_loss", "test NLL", False, 0, math.inf))
KEYS = [m.key for m in MEASURES]
CONFIDENCE = 0.95


def load_study(folder: Path) -> tuple[dict, list[dict]]:
    """A sweep folder's plan (sweep.json) and its finished runs, one dict per (group, seed)."""
    from regulab.sweeps import MANIFEST, read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise RegulabError(f"{folder} holds no {MANIFEST}; run `regulab compare` or `regulab sweep` with --out {folder} first")
    runs_dir = folder / manifest["runs_dir"]
    runs = []
    for group in manifest["groups"]:
        for seed, key in sorted(group["runs"].items(), key=lambda item: int(item[0])):
            run = RunDir(runs_dir / key)
            if not run.finished():
                continue
            metrics = run.read_json(METRICS)
            final_val = metrics.get("final_val_acc")
            metrics["gap"] = None if final_val is None else metrics["final_acc"] - final_val
            runs.append({"group": group["label"], "preset": group["preset"], "point": group["point"], "seed": int(seed),
                         "key": key, "path": run.path, "config": run.read_json(CONFIG),
                         "history": run.read_json(HISTORY_JSON), "metrics": metrics})
    return manifest, runs


def t_interval(values: list[float]) -> dict:
    """n, mean, standard deviation (n - 1) and the Student-t 95% confidence interval of the mean;
    with one value there is no spread and no interval (None)."""
    from scipy import stats

    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "low": None, "high": None}
    mean = statistics.fmean(values)
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "low": None, "high": None}
    std = statistics.stdev(values)
    half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * std / n ** 0.5
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def verdict(interval: dict, higher_is_better: bool) -> str:
    """A plain word for a paired difference: real at 95% only where the interval excludes zero."""
    if interval["low"] is None:
        return "n < 2: no interval"
    if interval["low"] <= 0 <= interval["high"]:
        return "no clear difference"
    return "better" if (interval["low"] > 0) == higher_is_better else "worse"


def summarize(manifest: dict, runs: list[dict], baseline: str | None = None) -> list[dict]:
    """One row per planned group, in plan order, even where no run has finished: per measure its
    interval over seeds and, with a baseline, the paired difference over the seeds both have."""
    from regulab.sweeps import Group, baseline_of

    baseline = baseline or manifest.get("baseline")
    groups = [Group(g["label"], g["preset"], g["point"], g["runs"]) for g in manifest["groups"]]
    bases = baseline_of(groups, baseline) if baseline else {}
    rows = []
    for group in groups:
        mine = {r["seed"]: r["metrics"] for r in runs if r["group"] == group.label}
        row = {"group": group.label, "preset": group.preset, **group.point, "planned": len(group.runs), "n": len(mine),
               "same_as": group.same_as(manifest.get("settings") or {}) if group.point else None}
        for key in KEYS:
            row[key] = t_interval([m[key] for m in mine.values() if m.get(key) is not None])
        row["best_epoch"] = statistics.fmean(m["best_epoch"] for m in mine.values()) if mine else None
        # Wall minutes per device: a group pooled from CPU and GPU runs must not average their times.
        by_device: dict[str, list[float]] = {}
        for m in mine.values():
            by_device.setdefault(m.get("device", "unrecorded"), []).append(m["seconds"] / 60)
        row["minutes"] = {device: statistics.fmean(v) for device, v in sorted(by_device.items())}
        row["devices"] = {device: len(v) for device, v in sorted(by_device.items())}
        row["precision"] = ", ".join(sorted({m["precision"] for m in mine.values()}))
        base = bases.get(group.label)
        if base is not None and base.label != group.label:
            theirs = {r["seed"]: r["metrics"] for r in runs if r["group"] == base.label}
            row["baseline"] = base.label
            row["paired"] = {key: t_interval([mine[s][key] - theirs[s][key] for s in sorted(mine.keys() & theirs.keys())
                                              if mine[s].get(key) is not None and theirs[s].get(key) is not None])
                             for key in KEYS}
        rows.append(row)
    return rows


def _number(x: float | None, signed: bool = False) -> str:
    return "n/a" if x is None else f"{x:+.4f}" if signed else f"{x:.4f}"


def interval_text(interval: dict, signed: bool = False) -> str:
    """'0.7351 ± 0.0040 [0.7252, 0.7450]': mean ± standard deviation [95% interval]; 'n/a' when empty."""
    if interval["mean"] is None:
        return "n/a"
    text = _number(interval["mean"], signed)
    if interval["std"] is not None:
        text += f" ± {interval['std']:.4f} [{_number(interval['low'], signed)}, {_number(interval['high'], signed)}]"
    return text


def summary_tables(rows: list[dict]) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    """The summary table and the paired-difference table, as headings and cells."""
    devices = {device for r in rows for device in r["minutes"]}

    def minutes(r: dict) -> str:  # the device named only where the table mixes devices
        return ", ".join(f"{v:.1f}" + (f" {d} (n={r['devices'][d]})" if len(devices) > 1 else "")
                         for d, v in r["minutes"].items()) or "n/a"

    def label(r: dict) -> str:  # a grid point that is another preset says so
        return r["group"] + (f" (= {r['same_as']})" if r["same_as"] else "")

    head = ["group", "n", *(m.heading for m in MEASURES), "best epoch", "minutes"]
    body = [[label(r), f"{r['n']}/{r['planned']}", *(interval_text(r[m.key]) for m in MEASURES),
             "n/a" if r["best_epoch"] is None else f"{r['best_epoch']:.1f}", minutes(r)] for r in rows]
    paired = [r for r in rows if "paired" in r]
    paired_head = ["group", "baseline", "pairs", *(f"Δ {m.heading}" for m in MEASURES)]
    paired_body = [[label(r), r["baseline"], str(r["paired"]["test_acc"]["n"]),
                    *(f"{interval_text(r['paired'][m.key], signed=True)} {_word(r['paired'][m.key], m.higher_is_better)}"
                      for m in MEASURES)] for r in paired]
    return head, body, paired_head, paired_body


def _word(interval: dict, higher_is_better: bool) -> str:
    word = verdict(interval, higher_is_better)
    return "" if interval["mean"] is None else f"({word})"


def _markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body]) + "\n"


def _csv(rows: list[dict]) -> str:
    """Every number of the tables, flat: MEASURE_n, _mean, _std, _low, _high, and diff_MEASURE_... ."""
    flat = []
    for r in rows:
        out = {k: v for k, v in r.items() if not isinstance(v, dict)}
        out.update({f"minutes_{device}": v for device, v in r["minutes"].items()})
        out.update({f"runs_{device}": n for device, n in r["devices"].items()})
        for key in KEYS:
            out.update({f"{key}_{part}": value for part, value in r[key].items()})
            if "paired" in r:
                out.update({f"diff_{key}_{part}": value for part, value in r["paired"][key].items()})
        flat.append(out)
    fields = list(dict.fromkeys(k for row in flat for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return text.getvalue()


def _png(fig: Figure) -> bytes:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    return png.getvalue()


def _per_epoch(group: list[dict], value) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, and the mean, min and max over seeds of value(row), where every seed has that epoch."""
    epochs = range(1, min(len(r["history"]) for r in group) + 1)
    series = [[value(r["history"][e - 1]) for r in group] for e in epochs]
    return list(epochs), [statistics.fmean(s) for s in series], [min(s) for s in series], [max(s) for s in series]


def _curves_figure(runs: list[dict], panels: list[tuple[str, str, object]]) -> Figure:
    """Per-epoch overlays, one line per group (mean over seeds, the band spans them)."""
    fig = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    labels = list(dict.fromkeys(r["group"] for r in runs))
    for ax, (title, ylabel, value) in zip(axes, panels):
        for i, label in enumerate(labels):
            epochs, mean, low, high = _per_epoch([r for r in runs if r["group"] == label], value)
            ax.plot(epochs, mean, color=f"C{i % 10}", label=label)
            if low != high:
                ax.fill_between(epochs, low, high, color=f"C{i % 10}", alpha=0.15, lw=0)
        ax.set(title=title, xlabel="epochs", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig


def _numeric_axis(manifest: dict) -> str | None:
    """The first grid axis whose values are numbers: the x of the metric-against-setting figure."""
    return next((name for name, values in manifest.get("grid", {}).items()
                 if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) and len(values) > 1), None)


def setting_figure(rows: list[dict], axis: str) -> Figure:
    """Each measure against the setting, one line per preset (and other grid values), with the
    95% band; log x where the values span decades (symmetric-log when 0 is among them), ticked at
    the values run."""
    lines: dict[str, list[dict]] = {}
    for r in rows:
        name = " ".join(w for w in r["group"].split() if not w.startswith(f"{axis}=")) or r["preset"]
        lines.setdefault(name, []).append(r)
    shown = [m for m in MEASURES if m.key != "test_loss" and any(r[m.key]["n"] for r in rows)]
    fig = Figure(figsize=(4.6 * len(shown), 4.2), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    xs = sorted({r[axis] for r in rows})
    positive = [x for x in xs if x > 0]
    for ax, measure in zip(axes, shown):
        for i, (name, members) in enumerate(lines.items()):
            points = sorted((r[axis], r[measure.key]) for r in members if r[measure.key]["n"])
            if not points:
                continue
            x = [p[0] for p in points]
            ax.plot(x, [p[1]["mean"] for p in points], "o-", color=f"C{i % 10}", label=name, ms=4)
            for r in members:  # a grid point that is another preset (l2=1e-3 of seed-noreg is `seed`)
                if r["same_as"] and r[measure.key]["n"]:
                    ax.plot(r[axis], r[measure.key]["mean"], "o", ms=10, mfc="none", color=f"C{i % 10}")
                    ax.annotate(f"= {r['same_as']}", (r[axis], r[measure.key]["mean"]), xytext=(6, 6),
                                textcoords="offset points", fontsize=8, color=f"C{i % 10}")
            banded = [(xv, p) for xv, p in points if p["low"] is not None]
            if banded:  # two seeds give a t interval wider than the measure's range: the band stops at its ends
                ax.fill_between([b[0] for b in banded], [max(b[1]["low"], measure.low) for b in banded],
                                [min(b[1]["high"], measure.high) for b in banded], color=f"C{i % 10}", alpha=0.18, lw=0)
        if len(positive) > 1 and max(positive) / min(positive) >= 10:
            if min(xs) <= 0:
                ax.set_xscale("symlog", linthresh=min(positive))
            else:
                ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set(title=measure.heading, xlabel=axis, ylabel=measure.heading)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"against {axis}: mean over seeds, band = 95% t interval (where n >= 2)", fontsize=10)
    return fig


def write_report(folder: Path, baseline: str | None = None) -> Path:
    """summary.csv, summary.md, the figures and report.html of a sweep or comparison folder."""
    folder = Path(folder)
    manifest, runs = load_study(folder)
    if not runs:
        raise RegulabError(f"no finished runs in {folder} yet; run the same `regulab sweep`/`compare` command to train them")
    rows = summarize(manifest, runs, baseline)
    head, body, paired_head, paired_body = summary_tables(rows)
    with_val = [r for r in runs if r["history"][0].get("val_acc") is not None]
    figures = {}
    if with_val:
        figures["val_curves.png"] = ("Validation curves", _png(_curves_figure(with_val, [
            ("validation accuracy", "accuracy", lambda h: h["val_acc"]),
            # The data loss: a penalty would inflate a regularized run's loss and break the comparison.
            ("validation loss (without penalty)", "cross-entropy", lambda h: h["val_data_loss"])])))
        figures["gap.png"] = ("Generalization gap", _png(_curves_figure(
            with_val, [("generalization gap", "train acc - val acc", lambda h: h["acc"] - h["val_acc"])])))
    axis = _numeric_axis(manifest)
    if axis:
        figures["by_setting.png"] = (f"Against {axis}", _png(setting_figure(rows, axis)))
    for name, (_, png) in figures.items():
        atomic_write(folder / name, png)
    atomic_write(folder / "summary.csv", _csv(rows).encode())
    md = _markdown(head, body) + (("\nPaired differences (this group minus its baseline, over matched seeds):\n\n"
                                   + _markdown(paired_head, paired_body)) if paired_body else "")
    atomic_write(folder / "summary.md", md.encode())
    atomic_write(folder / "report.html", _html(manifest, rows, runs, (head, body, paired_head, paired_body), figures).encode())
    return folder / "report.html"


def _table(heading: list[str], cells: list[list[str]], best: int | None = None) -> str:
    th = "".join(f"<th>{html.escape(c)}</th>" for c in heading)
    tr = "".join(f'<tr{" class=best" if i == best else ""}>' + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                 + "</tr>" for i, row in enumerate(cells))
    return f"<table><thead><tr>{th}</tr></thead><tbody>{tr}</tbody></table>"


def _best(rows: list[dict]) -> tuple[str, int | None]:
    """The measure groups are ranked by (validation accuracy where any run has it, else test
    accuracy) and the best group's index."""
    rank = "best_val_acc" if any(r["best_val_acc"]["n"] for r in rows) else "test_acc"
    ranked = [i for i, r in enumerate(rows) if r[rank]["n"]]
    return rank, max(ranked, key=lambda i: rows[i][rank]["mean"]) if ranked else None


def html_tables(rows: list[dict]) -> str:
    """The summary table (and the paired one, where there is a baseline) as HTML, for a notebook."""
    head, body, paired_head, paired_body = summary_tables(rows)
    return _table(head, body, _best(rows)[1]) + (_table(paired_head, paired_body) if paired_body else "")


def _html(manifest: dict, rows: list[dict], runs: list[dict], tables, figures: dict) -> str:
    head, body, paired_head, paired_body = tables
    table = _table
    rank, best = _best(rows)
    missing = [f"{r['group']} ({r['n']}/{r['planned']})" for r in rows if r["n"] < r["planned"]]
    status = (f"<p class=warn>Not complete: {html.escape(', '.join(missing))} finished of planned. The same command "
              "continues it.</p>" if missing else "")
    what = " ".join(manifest["presets"]) + "".join(f" × {k} = {', '.join(map(str, v))}" for k, v in manifest["grid"].items())
    paired = ("<h2>Paired differences</h2><p class=note>Each group minus its baseline, seed by seed (same split, "
              "initial weights and data order), then the mean difference with its 95% Student-t interval. "
              "<i>better</i> or <i>worse</i> only where the interval excludes zero.</p>" + table(paired_head, paired_body)
              if paired_body else "")
    images = "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
                     f'src="data:image/png;base64,{base64.b64encode(png).decode()}">' for title, png in figures.values())
    configs = "".join(
        f"<details><summary>{html.escape(r['group'])}, random seed {r['seed']}: {html.escape(r['key'])}</summary>"
        f"<pre>{html.escape(json.dumps(r['config'], indent=2))}</pre></details>" for r in runs)
    best_text = (f" Best by {rank.replace('_', ' ')}: <b>{html.escape(rows[best]['group'])}</b>, "
                 f"{interval_text(rows[best][rank])}." if best is not None else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>regulab: {html.escape(what)}</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
th, td {{ padding: .35em .6em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.best td {{ font-weight: 600; background: #eef6ee; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
pre {{ background: #f6f6f6; padding: .6em; font-size: 12px; }}
.note {{ color: #555; }} .warn {{ color: #a40; }}
</style></head><body>
<h1>{html.escape(what)}</h1>
<p>{len(runs)} finished runs in {len(rows)} groups, on the same train/validation split, with matched seeds.{best_text}</p>
{status}
{table(head, body, best)}
<p class="note">Each cell: mean ± standard deviation over seeds [95% confidence interval of the mean, Student t
with n - 1 degrees of freedom]; n is finished of planned seeds, and one seed has no interval. <i>gap</i> is
final train accuracy minus final validation accuracy. <i>test acc</i>, <i>ECE</i> (expected calibration error,
15 equal-width confidence bins) and <i>NLL</i> (mean negative log-likelihood) use each run's best-epoch
weights, chosen on validation; the test set chose nothing. Precision: {html.escape(", ".join(
        sorted({r["precision"] for r in rows if r["precision"]})))}; device: {html.escape(", ".join(
        sorted({d for r in rows for d in r["devices"]})))}.</p>
{paired}
{images}
<h2>Run configurations</h2>{configs}
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# One model's errors (regulab evaluate)

def plot_confusion(confusion, classes, path: Path, title: str = "") -> Path:
    """Counts of true (rows) against predicted (columns) classes, each row shaded by its share."""
    shares = confusion / confusion.sum(1, keepdims=True).clip(min=1)
    k = len(classes)
    side = max(6.5, 0.16 * k)  # CIFAR-100's 100 classes need room for their names
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    if k <= 20:  # beyond that the counts are too small to read; the shading tells
        for t in range(k):
            for p in range(k):
                ax.text(p, t, str(int(confusion[t, p])), ha="center", va="center", fontsize=8,
                        color="white" if shares[t, p] > 0.5 else "black")
    fontsize = 10 if k <= 20 else 5
    ax.set_xticks(range(k), classes, rotation=45 if k <= 20 else 90, ha="right" if k <= 20 else "center", fontsize=fontsize)
    ax.set_yticks(range(k), classes, fontsize=fontsize)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.savefig(path, dpi=110)
    return path


def plot_reliability(calibration: dict, path: Path, title: str = "") -> Path:
    """The reliability diagram: accuracy against confidence per bin (a calibrated model lies on
    the diagonal), with the share of predictions in each bin beneath."""
    bins = calibration["bins"]
    centres = [(i + 0.5) / bins for i in range(bins)]
    occupied = [i for i in range(bins) if calibration["count"][i]]
    fig = Figure(figsize=(5.5, 6.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    top.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="calibrated")
    top.bar([centres[i] for i in occupied], [calibration["accuracy"][i] for i in occupied], width=1 / bins,
            color=TRAIN_COLOR, alpha=0.75, edgecolor="white", label="accuracy")
    top.plot([calibration["confidence"][i] for i in occupied], [calibration["accuracy"][i] for i in occupied], "o",
             color=VAL_COLOR, ms=4, label="(mean confidence, accuracy)")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title=f"{title or 'reliability'}: ECE {calibration['ece']:.4f} ({bins} bins)")
    top.legend(loc="upper left", fontsize=8)
    total = max(sum(calibration["count"]), 1)
    bottom.bar(centres, [c / total for c in calibration["count"]], width=1 / bins, color="grey", edgecolor="white")
    bottom.set(xlabel="confidence (top-class probability)", ylabel="share")
    fig.savefig(path, dpi=110)
    return path


def plot_samples(images, labels, classes: list[str], path: Path, per_class: int = 8, title: str = "") -> Path:
    """Up to `per_class` images of every class, a row each, the class name at the left."""
    import numpy as np

    rows = len(classes)
    fig = Figure(figsize=(per_class * 0.7 + 1.6, rows * 0.7 + 0.5), layout="constrained")
    axes = fig.subplots(rows, per_class, squeeze=False)
    for i, name in enumerate(classes):
        picked = np.flatnonzero(labels == i)[:per_class]
        for j, ax in enumerate(axes[i]):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
            if j < len(picked):
                ax.imshow(images[picked[j]].transpose(1, 2, 0), interpolation="nearest")
        axes[i][0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"first {per_class} training images of each class", fontsize=10)
    fig.savefig(path, dpi=100)
    return path


def plot_mistakes(images, true: list[str], predicted: list[str], confidence: list[float], path: Path, cols: int = 8) -> Path:
    """Misclassified images, each titled 'true -> predicted (probability)'."""
    rows = max(1, -(-len(images) // cols))
    fig = Figure(figsize=(cols * 1.45, rows * 1.65), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, image, t, p, c in zip(axes, images, true, predicted, confidence):
        ax.imshow(image.transpose(1, 2, 0), interpolation="nearest")
        ax.set_title(f"{t}\n-> {p} ({c:.2f})", fontsize=7)
    fig.suptitle("most confident mistakes (true -> predicted)" if len(images) else "no mistakes", fontsize=10)
    fig.savefig(path, dpi=110)
    return path
