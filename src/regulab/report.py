"""A study's report: the tables, the figures over groups (curves, against a setting, the paired
differences against the margin) and one self-contained HTML page, written from `analysis`'s rows."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from regulab import stats
from regulab.analysis import KEYS, MEASURES, Design, measure, shown, summarize
from regulab.errors import RegulabError
from regulab.figures import norm_columns, png_bytes
from regulab.files import atomic_write
from regulab.study import load_study

# ---------------------------------------------------------------------------------------------
# Sweeps and comparisons: statistics over seeds, tables, figures, one self-contained HTML page

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

    measures = shown(rows)
    head = ["group", "n", "ran on", *(m.heading for m in measures), "best epoch", "minutes"]
    body = [[_label(r), f"{r['n']}/{r['planned']}", _where(r), *(interval_text(r[m.key]) for m in measures),
             "n/a" if r["best_epoch"] is None else f"{r['best_epoch']:.1f}", minutes(r)] for r in rows]
    paired = [r for r in rows if "paired" in r]
    paired_head = ["group", "baseline", "pairs", *(f"Δ {m.heading}" for m in measures)]
    paired_body = [[_label(r), r["baseline"], _pairs(r),
                    *(f"{interval_text(r['paired'][m.key], signed=True)} {_word(r['paired'][m.key])}" for m in measures)]
                   for r in paired]
    return head, body, paired_head, paired_body


def decision_table(rows: list[dict], design: Design) -> tuple[list[str], list[list[str]]]:
    """The primary measure's paired rows in full: both intervals, the adjusted p-values, the
    verdict, the seeds each group received and why, the interval over test images too, the
    probability that A's run beats B's, and the seeds that 80% power would take."""
    m = measure(design.primary)
    effect = next((r["seeds_needed"].get("effect") for r in rows if r.get("seeds_needed")), None)
    head = ["group", "pairs", f"Δ {m.heading}", "interval (95%, or the looks')", "equivalence interval (90%, or the looks')",
            "p (adjusted)", "p equiv. (adjusted)",
            "verdict", "seeds, and why", "95% over seeds and test images", "P(run beats baseline's)",
            f"seeds for 80% power at {_signed(effect)}" if effect else "seeds for 80% power"]
    if design.margin is not None:
        head.append(f"seeds to show ±{design.margin:g}, if Δ = 0 / as measured")
    body = []
    for r in (r for r in rows if "paired" in r):
        c, boot, need = r["paired"][m.key], r.get("bootstrap"), r.get("seeds_needed") or {}
        cells = [_label(r), _pairs(r), _number(c["mean"], True), _range(c["low"], c["high"]) + _level(c["confidence"], 0.95),
                 _range(c["low90"], c["high90"]) + _level(c["confidence_equivalence"], 0.90),
                 _p(c["p_difference_adjusted"]), _p(c["p_equivalence_adjusted"]), c["verdict"],
                 r["stopped"] or f"{r['n']} (fixed)",
                 _range(boot["low"], boot["high"]) + _subset(boot, c) if boot else "no predictions kept",
                 f"{boot['p_beats']:.2f} [{boot['p_beats_low']:.2f}, {boot['p_beats_high']:.2f}]" if boot else "n/a",
                 _count(need.get("difference"))]
        if design.margin is not None:
            cells.append(f"{_count(need.get('equivalence_if_0'))} / {_count(need.get('equivalence_if_observed'))}")
        body.append(cells)
    return head, body


def decision_notes(rows: list[dict], design: Design) -> list[str]:
    """What the paired tables' words and numbers mean, for this study: each a sentence."""
    paired = [r for r in rows if "paired" in r]
    if not paired:
        return []
    notes = ["Pairs are runs of the same seed (same split, initial weights and data order) on the same "
             + ("machine" if design.pair_on == "machine" else "device type (--pair-on device: CPU models not told apart)")
             + " and precision; a paired difference is this group minus its baseline."]
    crossed = sum(r["cross_machine"] for r in paired)
    rule = "machines (CPU models or GPUs)" if design.pair_on == "machine" else "devices (--pair-on device)"
    if crossed:
        notes.append(f"{crossed} pair{'s' * (crossed > 1)} whose two runs ran on different {rule} or precisions "
                     f"{'were' if crossed > 1 else 'was'} left out: another machine moves a run as a new seed does.")
    words = ["better", "worse", "equivalent", "undecided"] if design.margin is not None else \
        ["better", "worse", "no clear difference"]
    if any(not r["complete"] for r in paired):
        words.append(stats.INTERIM)
    if any(c["verdict"] == stats.SHORT for r in paired for c in r["paired"].values()):
        words.append(stats.SHORT)
    notes.append("Verdicts: " + "; ".join(f"*{w}*: {stats.WORDS[w]}" for w in words)
                 + (f". The margin is ±{design.margin:g} in each measure's own units." if design.margin is not None else "."))
    family = len(paired)
    notes.append(f"Adjusted for {family} comparison{'s' * (family > 1)} per measure by Holm's step-down method (1979), "
                 "differences and equivalences each as one family; the intervals shown are not adjusted."
                 if design.correction == "holm" and family > 1 else "No adjustment for the number of comparisons"
                 f"{' (--correction none)' if design.correction == 'none' else ' (one comparison)'}.")
    if design.adaptive:
        seq = design.sequential
        level = seq.nominal_level() if seq else stats.ALPHA
        notes.append(f"Adaptive seeds: {design.seeds} per group, then rounds of {design.seeds_per_round} for groups still "
                     f"undecided on {measure(design.primary).heading}, up to {design.max_seeds}. The p-values are "
                     f"adjusted for the looks at {', '.join(map(str, seq.looks)) if seq else design.seeds} seeds by Pocock's "
                     f"group-sequential boundary (1977), calibrated for the t statistic: each look is judged at a "
                     f"nominal {level:.4f} two-sided, so the chance of a false *better* or *worse* over all looks "
                     "stays at 5%. The intervals of these rows are at the same level (repeated confidence "
                     f"intervals: {1 - level:.1%} for the difference, {1 - 2 * seq.nominal_level(sided=1):.1%} for "
                     "equivalence; rows whose looks moved have their own), so each interval is the one its verdict used.")
        moved = [r for r in paired if r["cross_machine"] and r["paired"][design.primary]["planned"]]
        for r in moved:
            cell = r["paired"][design.primary]
            notes.append(f"{r['group']}: {r['cross_machine']} pairs left out across machines, so its looks are moved "
                         f"down by as many, to {', '.join(map(str, cell['planned']))} pairs, and Pocock's level is found "
                         "for those looks (which pairs are left out depends on where runs trained, not on their results).")
    notes.append("The bootstrap interval resamples test images as well as seeds (2,000 replicates; Bouthillier et al. "
                 "2021); the 95% t interval varies the seed only, on one fixed test set.")
    return notes


def _label(r: dict) -> str:  # a grid point that is another preset says so
    return r["group"] + (f" (= {r['same_as']})" if r["same_as"] else "")


def _where(r: dict) -> str:
    return ", ".join(f"{m} ×{n}" for m, n in r["machines"].items()) + (f" {r['precision']}" if r["precision"] else "") or "n/a"


def _pairs(r: dict) -> str:
    n = r["paired"]["test_acc"]["n"]
    return f"{n}" + (f" (+{r['cross_machine']} across machines, left out)" if r["cross_machine"] else "")


def _word(cell: dict) -> str:
    return "" if cell["mean"] is None else f"({cell['verdict']})"


def _level(confidence: float, plain: float) -> str:
    """' (97.7%)' where an interval is not at the plain level (an adaptive design's looks widen it)."""
    return "" if abs(confidence - plain) < 1e-9 else f" ({confidence:.1%})"


def _subset(boot: dict, cell: dict) -> str:
    """Which pairs the bootstrap used, and their own mean where they are fewer than the table's."""
    if boot["n"] == cell["n"]:
        return f" (n={boot['n']})"
    return f" (n={boot['n']}: seeds {', '.join(map(str, boot.get('seeds', [])))}; their mean {_number(boot['mean'], True)})"


def _signed(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+g}"


def _range(low: float | None, high: float | None) -> str:
    return "n/a" if low is None else f"[{_number(low, True)}, {_number(high, True)}]"


def _p(p: float | None) -> str:
    return "n/a" if p is None else "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _count(n: int | None) -> str:
    return "n/a" if n is None else str(n)


def _markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body]) + "\n"


def _csv(rows: list[dict]) -> str:
    """Every number of the tables, flat: MEASURE_n, _mean, _std, _low, _high, and diff_MEASURE_... ."""
    flat = []
    for r in rows:
        out = {k: v for k, v in r.items() if not isinstance(v, (dict, list))}
        out.update({f"minutes_{device}": v for device, v in r["minutes"].items()})
        out.update({f"runs_{device}": n for device, n in r["devices"].items()})
        for key in KEYS:
            out.update({f"{key}_{part}": value for part, value in r[key].items()})
            if "paired" in r:
                out.update({f"diff_{key}_{part}": value for part, value in r["paired"][key].items() if part != "looks"})
        out.update({f"bootstrap_{part}": value for part, value in (r.get("bootstrap") or {}).items()})
        out.update({f"seeds_needed_{part}": value for part, value in (r.get("seeds_needed") or {}).items()})
        flat.append(out)
    fields = list(dict.fromkeys(k for row in flat for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return text.getvalue()


def _per_epoch(group: list[dict], value) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, and the mean, min and max over seeds of value(row), where every seed has that epoch."""
    epochs = range(1, min(len(r["history"]) for r in group) + 1)
    series = [[value(r["history"][e - 1]) for r in group] for e in epochs]
    return list(epochs), [statistics.fmean(s) for s in series], [min(s) for s in series], [max(s) for s in series]


def _curves_figure(runs: list[dict], panels: list[tuple[str, str, object]]) -> Figure:
    """Per-epoch overlays, one line per group (mean over seeds, the band spans them), four
    panels to a row (a page's width: the kernel norms have one panel a layer), one legend."""
    columns = min(len(panels), 4)
    rows = -(-len(panels) // columns)
    fig = Figure(figsize=(6 * columns if columns < 3 else 4.4 * columns, 4.5 if rows == 1 else 3.4 * rows),
                 layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    labels = list(dict.fromkeys(r["group"] for r in runs))
    for ax, (title, ylabel, value) in zip(axes, panels):
        for i, label in enumerate(labels):
            epochs, mean, low, high = _per_epoch([r for r in runs if r["group"] == label], value)
            ax.plot(epochs, mean, color=f"C{i % 10}", label=label)
            if low != high:
                ax.fill_between(epochs, low, high, color=f"C{i % 10}", alpha=0.15, lw=0)
        ax.set(title=title, xlabel="epochs", ylabel=ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
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
    drawn = [m for m in MEASURES if m.key != "test_loss" and any(r[m.key]["n"] for r in rows)]
    fig = Figure(figsize=(4.6 * len(drawn), 4.2), layout="constrained")
    axes = fig.subplots(1, len(drawn), squeeze=False)[0]
    xs = sorted({r[axis] for r in rows})
    positive = [x for x in xs if x > 0]
    for ax, shown_measure in zip(axes, drawn):
        for i, (name, members) in enumerate(lines.items()):
            points = sorted((r[axis], r[shown_measure.key]) for r in members if r[shown_measure.key]["n"])
            if not points:
                continue
            x = [p[0] for p in points]
            ax.plot(x, [p[1]["mean"] for p in points], "o-", color=f"C{i % 10}", label=name, ms=4)
            for r in members:  # a grid point that is another preset (l2=1e-3 of seed-noreg is `seed`)
                if r["same_as"] and r[shown_measure.key]["n"]:
                    ax.plot(r[axis], r[shown_measure.key]["mean"], "o", ms=10, mfc="none", color=f"C{i % 10}")
                    ax.annotate(f"= {r['same_as']}", (r[axis], r[shown_measure.key]["mean"]), xytext=(6, 6),
                                textcoords="offset points", fontsize=8, color=f"C{i % 10}")
            banded = [(xv, p) for xv, p in points if p["low"] is not None]
            if banded:  # two seeds give a t interval wider than the measure's range: the band stops at its ends
                ax.fill_between([b[0] for b in banded], [max(b[1]["low"], shown_measure.low) for b in banded],
                                [min(b[1]["high"], shown_measure.high) for b in banded], color=f"C{i % 10}", alpha=0.18, lw=0)
        if len(positive) > 1 and max(positive) / min(positive) >= 10:
            if min(xs) <= 0:
                ax.set_xscale("symlog", linthresh=min(positive))
            else:
                ax.set_xscale("log")
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set(title=shown_measure.heading, xlabel=axis, ylabel=shown_measure.heading)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"against {axis}: mean over seeds, band = 95% t interval (where n >= 2)", fontsize=10)
    return fig


def margin_figure(rows: list[dict], design: Design) -> Figure:
    """Each group's paired difference from its baseline on the primary measure: the mean, its 95%
    interval (thin) and 90% interval (thick), over the shaded band ±margin, so that the rows whose
    90% interval lies inside the band (equivalent) are seen at a glance; the verdict at the right."""
    m = measure(design.primary)
    paired = [r for r in rows if "paired" in r and r["paired"][m.key]["mean"] is not None]
    fig = Figure(figsize=(8, 1.2 + 0.45 * max(len(paired), 1)), layout="constrained")
    ax = fig.subplots()
    if design.margin is not None:
        ax.axvspan(-design.margin, design.margin, color="#2a9d8f", alpha=0.15, lw=0, label=f"±{design.margin:g} (margin)")
    ax.axvline(0, color="grey", lw=1)
    colours = {"better": "#1a7f37", "worse": "#c0392b", "equivalent": "#2a6f97"}
    for y, r in enumerate(reversed(paired)):
        c = r["paired"][m.key]
        colour = colours.get(c["verdict"], "#444")
        if c["low"] is not None:
            ax.plot([c["low"], c["high"]], [y, y], color=colour, lw=1.2)
            ax.plot([c["low90"], c["high90"]], [y, y], color=colour, lw=4, solid_capstyle="butt")
        ax.plot(c["mean"], y, "o", color=colour, ms=6)
        ax.annotate(f"{c['verdict']} (n={c['n']})", (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=8,
                    color=colour)
    ax.set_yticks(range(len(paired)), [_label(r) for r in reversed(paired)], fontsize=9)
    ax.set_ylim(-0.7, len(paired) - 0.3)
    # A sweep against a preset pairs each grid point with that preset at the same point: name one
    # baseline only where every row has it.
    baselines = {r["baseline"] for r in paired}
    ax.set_xlabel(f"Δ {m.heading} (group minus {baselines.pop() if len(baselines) == 1 else 'its baseline'})")
    ax.set_title("paired difference: thin, the verdict's interval (95%, wider at adaptive looks); thick, its "
                 "equivalence interval (90%, or wider)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    if design.margin is not None:
        ax.legend(fontsize=8, loc="lower right")
    return fig


def write_report(folder: Path, baseline: str | None = None, margin: float | None = None, correction: str | None = None,
                 primary: str | None = None, effect: float | None = None, pair_on: str | None = None, log=None) -> Path:
    """summary.csv, summary.md, the figures and report.html of a sweep or comparison folder;
    `margin`, `correction` and `primary` replace the study's own (sweep.json), where given.
    `log`, where given, receives a line per paired row: its verdict on the primary measure."""
    folder = Path(folder)
    manifest, runs = load_study(folder)
    if not runs:
        raise RegulabError(f"no finished runs in {folder} yet; run the same `regulab sweep`/`compare` command to train them")
    design = Design.of(manifest, margin=margin, correction=correction, primary=primary, pair_on=pair_on)
    rows = summarize(manifest, runs, baseline, design, effect)
    tables = summary_tables(rows)
    head, body, paired_head, paired_body = tables
    decision = decision_table(rows, design)
    notes = decision_notes(rows, design)
    with_val = [r for r in runs if r["history"][0].get("val_acc") is not None]
    figures = {}
    if with_val:
        figures["val_curves.png"] = ("Validation curves", png_bytes(_curves_figure(with_val, [
            ("validation accuracy", "accuracy", lambda h: h["val_acc"]),
            # The data loss: a penalty would inflate a regularized run's loss and break the comparison.
            ("validation loss (without penalty)", "cross-entropy", lambda h: h["val_data_loss"])])))
        figures["gap.png"] = ("Generalization gap", png_bytes(_curves_figure(
            with_val, [("generalization gap", "train acc - val acc", lambda h: h["acc"] - h["val_acc"])])))
    # What each group's regularizer did to the weights, kernel by kernel: the kernels every run
    # has, over the seeds on which every group recorded them (runs from before regulab recorded
    # norms have none), so that no line's seeds differ from another's.
    normed = [r for r in runs if norm_columns(r["history"])]
    seeds = sorted(set.intersection(*({r["seed"] for r in normed if r["group"] == group}
                                      for group in {r["group"] for r in normed}))) if normed else []
    normed = [r for r in normed if r["seed"] in seeds]
    layers = [key for key in norm_columns(normed[0]["history"]) if all(key in r["history"][0] for r in normed)] \
        if normed else []
    if layers:
        figures["weights.png"] = (f"Kernel norms, seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}",
                                  png_bytes(_curves_figure(normed, [
                                      (key.removeprefix("norm_"), "L2 norm", lambda h, key=key: h[key])
                                      for key in layers])))
    axis = _numeric_axis(manifest)
    if axis:
        figures["by_setting.png"] = (f"Against {axis}", png_bytes(setting_figure(rows, axis)))
    if paired_body:
        figures["differences.png"] = (f"Paired differences in {measure(design.primary).heading}",
                                      png_bytes(margin_figure(rows, design)))
    for name, (_, png) in figures.items():
        atomic_write(folder / name, png)
    atomic_write(folder / "summary.csv", _csv(rows).encode())
    md = _markdown(head, body)
    if paired_body:
        md += ("\nPaired differences (this group minus its baseline, over same-device seeds):\n\n"
               + _markdown(paired_head, paired_body)
               + f"\nThe decision on {measure(design.primary).heading}:\n\n" + _markdown(*decision)
               + "\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    atomic_write(folder / "summary.md", md.encode())
    atomic_write(folder / "report.html", _html(manifest, rows, runs, tables, decision, notes, figures).encode())
    if log is not None:
        for line in verdict_lines(rows, design):
            log(line)
    return folder / "report.html"


def verdict_lines(rows: list[dict], design: Design) -> list[str]:
    """One line per paired row: the primary measure's difference, its 95% interval, pairs and verdict."""
    m = measure(design.primary)
    lines = []
    for r in (r for r in rows if "paired" in r):
        c = r["paired"][m.key]
        if c["mean"] is None:
            continue
        where = f" [{_number(c['low'], True)}, {_number(c['high'], True)}]" if c["low"] is not None else ""
        lines.append(f"{r['group']} vs {r['baseline']}: Δ {m.heading} {_number(c['mean'], True)}{where}, "
                     f"{c['n']} pair{'s' * (c['n'] != 1)}: {c['verdict']}")
    return lines


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


def _emphasis(text: str) -> str:
    """Markdown's *word* as HTML's <i>word</i>, the rest escaped."""
    parts = html.escape(text).split("*")
    return "".join(f"<i>{p}</i>" if i % 2 else p for i, p in enumerate(parts))


def html_tables(rows: list[dict]) -> str:
    """The summary table (and the paired one, where there is a baseline) as HTML, for a notebook."""
    head, body, paired_head, paired_body = summary_tables(rows)
    return _table(head, body, _best(rows)[1]) + (_table(paired_head, paired_body) if paired_body else "")


STYLE = """body { font: 15px/1.45 system-ui, sans-serif; max-width: 1250px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { padding: .35em .6em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.best td { font-weight: 600; background: #eef6ee; }
img { max-width: 100%; display: block; margin: 1em 0; }
pre { background: #f6f6f6; padding: .6em; font-size: 12px; }
.note { color: #555; } .warn { color: #a40; }"""


def html_page(title: str, body: str) -> str:
    """One self-contained report page: the title, the style every report shares, the body."""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>regulab: {html.escape(title)}</title>\n'
            f"<style>\n{STYLE}\n</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def html_images(figures: dict) -> str:
    """The figures ({file: (title, png)}) as headed, inline images."""
    return "".join(f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
                   f'src="data:image/png;base64,{base64.b64encode(png).decode()}">' for title, png in figures.values())


def _html(manifest: dict, rows: list[dict], runs: list[dict], tables, decision, notes: list[str], figures: dict) -> str:
    head, body, paired_head, paired_body = tables
    rank, best = _best(rows)
    missing = [f"{r['group']} ({r['n']}/{r['planned']})" for r in rows if r["n"] < r["planned"]]
    status = (f"<p class=warn>Not complete: {html.escape(', '.join(missing))} finished of planned. The same command "
              "continues it.</p>" if missing else "")
    what = " ".join(manifest["presets"]) + "".join(f" × {k} = {', '.join(map(str, v))}" for k, v in manifest["grid"].items())
    paired = ("<h2>Paired differences</h2>" + _table(paired_head, paired_body) + "<h2>The decision</h2>"
              + _table(*decision) + "<ul class=note>" + "".join(f"<li>{_emphasis(n)}</li>" for n in notes) + "</ul>"
              if paired_body else "")
    configs = "".join(
        f"<details><summary>{html.escape(r['group'])}, random seed {r['seed']}: {html.escape(r['key'])}</summary>"
        f"<pre>{html.escape(json.dumps(r['config'], indent=2))}</pre></details>" for r in runs)
    best_text = (f" Best by {rank.replace('_', ' ')}: <b>{html.escape(rows[best]['group'])}</b>, "
                 f"{interval_text(rows[best][rank])}." if best is not None else "")
    done = f"{len(runs)} finished runs in {len(rows)} groups, on the same train/validation split, with matched seeds."
    return html_page(what, f"""<p>{done}{best_text}</p>
{status}
{_table(head, body, best)}
<p class="note">Each cell: mean ± standard deviation over seeds [95% confidence interval of the mean, Student t
with n - 1 degrees of freedom]; n is finished of planned seeds, and one seed has no interval. <i>gap</i> is
final train accuracy minus final validation accuracy. <i>test acc</i>, <i>ECE</i> (expected calibration error,
15 equal-width confidence bins) and <i>NLL</i> (mean negative log-likelihood) use each run's best-epoch
weights, chosen on validation; the test set chose nothing. Precision: {html.escape(", ".join(
        sorted({r["precision"] for r in rows if r["precision"]})))}; device: {html.escape(", ".join(
        sorted({d for r in rows for d in r["devices"]})))}.</p>
{paired}
{html_images(figures)}
<h2>Run configurations</h2>{configs}""")
