"""A factorial study's report: the design, the effects tables with their verdicts, the gain and
the out-of-fraction check, the cells, an effects plot, an interaction plot for each decided
interaction, and a paragraph in plain words that says no more than the intervals; as
summary.md, effects.csv, the figures and one self-contained report.html."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from matplotlib.figure import Figure

from regulab import stats
from regulab.analysis import Design, measure
from regulab.designs import FractionalDesign
from regulab.effects import analyze, block_table
from regulab.errors import RegulabError
from regulab.figures import png_bytes
from regulab.files import atomic_write
from regulab.report import _emphasis, _level, _markdown, _number, _p, _range, _table, html_images, html_page, interval_text
from regulab.study import load_study

DECIDED = ("better", "worse")
SHOWN = ("test_acc", "gap")  # the measures summary.md and the words give; the HTML and CSV give every one


def factorial_result(folder: Path, margin: float | None = None, correction: str | None = None,
                     primary: str | None = None) -> dict:
    """A factorial folder's design, plan and analysis (what the report and the API show)."""
    manifest, runs = load_study(folder)
    if "factorial" not in manifest:
        raise RegulabError(f"{folder} holds a comparison or sweep, not a factorial design; use `regulab report`")
    fractional = FractionalDesign.from_record(manifest["factorial"])
    plan = Design.of(manifest, margin=margin, correction=correction, primary=primary)
    blocks = max(len(g["runs"]) for g in manifest["groups"])
    result = analyze(fractional, runs, plan, blocks)
    machines = sorted({(r["metrics"]["machine"], r["metrics"].get("precision")) for r in runs})
    return {"manifest": manifest, "design": fractional, "plan": plan, "runs": runs, "planned_blocks": blocks,
            "machines": machines, **result}


def effects_rows(result: dict, key: str) -> tuple[list[str], list[list[str]]]:
    """One measure's effects table: effect, 95% and 90% intervals, adjusted p-values, verdict."""
    m = measure(key)
    head = ["effect", f"Δ {m.heading}", "interval (95%, or the looks')", "equivalence interval (90%, or the looks')",
            "p (adjusted)", "p equiv. (adjusted)", "verdict", "looks (blocks)"]
    body = [[name, _number(e["effect"], True), _range(e["low"], e["high"]) + _level(e.get("confidence", 0.95), 0.95),
             _range(e["low90"], e["high90"]) + _level(e.get("confidence_equivalence", 0.90), 0.90),
             _p(e["p_difference_adjusted"]), _p(e["p_equivalence_adjusted"]), e["verdict"], ", ".join(map(str, e["looks"]))]
            for name, e in zip(result["names"], result["measures"][key]["effects"])]
    return head, body


def cells_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """Each cell (and corner outside the fraction): its levels, runs finished, and its measures."""
    fractional: FractionalDesign = result["design"]
    keys = [k for k in SHOWN if k in result["measures"]]
    head = ["cell", *fractional.letters, "runs", *(measure(k).heading for k in keys)]
    groups = result["manifest"]["groups"]
    body = []
    for g in groups:
        finished = [r for r in result["runs"] if r["group"] == g["label"]]
        signs = ["+" if c.lower() in g["label"] else "-" for c in fractional.letters]
        values = [interval_text(stats.t_interval([r["metrics"][k] for r in finished if r["metrics"].get(k) is not None]))
                  for k in keys]
        inside = "" if g["label"] in {fractional.cell_label(row) for row in fractional.matrix} else " (outside)"
        body.append([g["label"] + inside, *signs, f"{len(finished)}/{len(g['runs'])}", *values])
    return head, body


def gain_lines(result: dict, key: str) -> list[str]:
    """The gain and the out-of-fraction check of one measure, as sentences."""
    entry, m = result["measures"][key], measure(key)
    gain, lines = entry["gain"], []
    if gain["whole"]["n"]:
        share = f" ({gain['share']:.0%} of it)" if gain["share"] is not None else ""
        lines.append(f"Whole gain in {m.heading} (all high minus all low, both measured, {gain['whole']['n']} blocks): "
                     f"{_interval(gain['whole'])}. The main effects sum to {_interval(gain['main_effects'])}{share}; "
                     f"left over: {_interval(gain['rest'])}. Two-factor interactions cancel between the two opposite "
                     "corners, so adding them predicts the same gain: what is left over belongs to interactions of "
                     "three or more factors (in a fraction, aliased with lower ones) and to noise.")
    for c in entry["check"]:
        if c["measured"]["n"]:
            lines.append(f"Corner {c['label']}, outside the fraction: the model (main effects and two-factor "
                         f"interactions, fitted per block) predicts {_interval(c['predicted'])}, its runs measured "
                         f"{_interval(c['measured'])}; measured minus predicted {_interval(c['difference'])} over "
                         f"{c['difference']['n']} blocks.")
    return lines


def _interval(cell: dict) -> str:
    if cell["mean"] is None:
        return "n/a"
    if cell["low"] is None:
        return f"{cell['mean']:+.4f} (n={cell['n']}, no interval)"
    return f"{cell['mean']:+.4f} [{cell['low']:+.4f}, {cell['high']:+.4f}] (n={cell['n']})"


def words(result: dict, key: str) -> str:
    """A paragraph in plain words on one measure: what is decided, at which look, and what is not."""
    entry, m, plan = result["measures"][key], measure(key), result["plan"]
    effects = list(zip(result["names"], entry["effects"]))
    blocks = len(entry["blocks"])
    if not blocks:
        return f"{m.heading}: no seed block has finished every cell yet: nothing to estimate."
    if not effects or entry["effects"][0]["se"] is None:
        return (f"{m.heading}: {blocks} complete seed block{'s' * (blocks != 1)}: too few for intervals (a model with "
                "as many effects as cells needs two blocks).")
    if not entry["complete"]:
        return (f"{m.heading}: interim, {blocks} of {result['planned_blocks']} planned seed blocks complete: no verdict "
                "until every planned block has finished (a verdict at an unplanned look would raise the error rate).")
    look = f"at the look after {blocks} seed block{'s' * (blocks != 1)}"
    parts = []
    mains = effects[:len(result["design"].factors)]
    for word in DECIDED:
        named = [f"{name} {e['effect']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}]" for name, e in mains if e["verdict"] == word]
        if named:
            parts.append(f"{'raise' if (word == 'better') == m.higher_is_better else 'lower'} it ({word}): " + "; ".join(named))
    pairs = [f"{name} {e['effect']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}]" for name, e in effects[len(mains):]
             if e["verdict"] in DECIDED]
    if pairs:
        parts.append("interact (each factor's effect differs by twice this between the other's two levels): "
                     + "; ".join(pairs))
    equivalent = [name for name, e in effects if e["verdict"] == "equivalent"]
    if equivalent:
        parts.append(f"change it by less than ±{plan.margin:g} (equivalent): {', '.join(equivalent)}")
    open_ = [name for name, e in effects if e["verdict"] in ("undecided", "no clear difference")]
    if open_:
        parts.append("are undecided, their intervals holding both no effect and effects "
                     + ("beyond the margin" if plan.margin is not None else "of either sign") + f": {', '.join(open_)}")
    residual = entry["residual_sd"]
    return (f"{m.heading}, {look} (residual sd {residual['sd']:.4f} on {residual['df']} degrees of freedom), "
            f"Holm over its {len(effects)} effects: these " + "; these ".join(parts) + "."
            + (" Each effect stands for its aliases too (listed with the design); reading it as that factor's alone "
               "assumes the higher-order interactions it is aliased with are negligible." if result["design"].fraction else ""))


def effects_figure(result: dict, keys: list[str]) -> Figure:
    """Each measure's effects sorted by size: the effect, its 95% (thin) and 90% (thick)
    intervals, the ±margin band, the verdict at the right."""
    plan = result["plan"]
    n = len(result["names"])
    fig = Figure(figsize=(7.5 * len(keys), 1.2 + 0.36 * n), layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    colours = {"better": "#1a7f37", "worse": "#c0392b", "equivalent": "#2a6f97"}
    for ax, key in zip(axes, keys):
        rows = sorted(zip(result["names"], result["measures"][key]["effects"]), key=lambda item: abs(item[1]["effect"]))
        if plan.margin is not None:
            ax.axvspan(-plan.margin, plan.margin, color="#2a9d8f", alpha=0.15, lw=0, label=f"±{plan.margin:g} (margin)")
        ax.axvline(0, color="grey", lw=1)
        for y, (_, e) in enumerate(rows):
            colour = colours.get(e["verdict"], "#444")
            if e["low"] is not None:
                ax.plot([e["low"], e["high"]], [y, y], color=colour, lw=1.2)
                ax.plot([e["low90"], e["high90"]], [y, y], color=colour, lw=4, solid_capstyle="butt")
            ax.plot(e["effect"], y, "o", color=colour, ms=5)
            ax.annotate(e["verdict"], (1.01, y), xycoords=("axes fraction", "data"), va="center", fontsize=7, color=colour)
        ax.set_yticks(range(len(rows)), [name for name, _ in rows], fontsize=8)
        ax.set_xlabel(f"effect on {measure(key).heading} (high minus low, averaged over the other factors)")
        ax.grid(alpha=0.3, axis="x")
        if plan.margin is not None:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("effects: thin 95% interval, thick 90% interval (equivalence); sorted by size", fontsize=10)
    return fig


def interaction_figure(result: dict, key: str, decided: list[str]) -> Figure:
    """For each decided two-factor interaction: the four cell means of the pair (averaged over
    the other factors and the blocks), one line per level of the second factor."""
    fractional: FractionalDesign = result["design"]
    _, table, _ = block_table(fractional, result["runs"], key)
    means = table.mean(0)
    fig = Figure(figsize=(4.5 * len(decided) + 2, 3.8), layout="constrained")
    axes = fig.subplots(1, len(decided), squeeze=False)[0]
    for ax, effect in zip(axes, decided):
        i, j = (fractional.letters.index(c) for c in effect)
        a, b = fractional.factors[i].name, fractional.factors[j].name
        for colour, level in (("#2a6f97", -1), ("#c0392b", 1)):
            ys = [means[(fractional.matrix[:, i] == x) & (fractional.matrix[:, j] == level)].mean() for x in (-1, 1)]
            ax.plot(["low", "high"], ys, "o-", color=colour, label=f"{b} {'high' if level > 0 else 'low'}")
        ax.set(title=f"{a} x {b}", xlabel=a, ylabel=measure(key).heading)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("decided interactions: the pair's cell means, over the other factors and the blocks", fontsize=9)
    return fig


def _csv(result: dict) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["measure", "effect", "letters", "estimate", "se", "low", "high", "low90", "high90", "p_difference",
                     "p_difference_adjusted", "p_equivalence", "p_equivalence_adjusted", "verdict", "df", "blocks"])
    for key, entry in result["measures"].items():
        for letters, name, e in zip(result["effects"], result["names"], entry["effects"]):
            writer.writerow([key, name, letters, e["effect"], e["se"], e["low"], e["high"], e["low90"], e["high90"],
                             e["p_difference"], e["p_difference_adjusted"], e["p_equivalence"], e["p_equivalence_adjusted"],
                             e["verdict"], e["df"], e["blocks"]])
    return text.getvalue()


def notes(result: dict) -> list[str]:
    """What the numbers mean, for this study: each a sentence."""
    plan, fractional = result["plan"], result["design"]
    out = ["An effect is the change from the factor's low level to its high one, averaged over the other factors' "
           "levels (Box, Hunter & Hunter): twice its least-squares coefficient on the -1/+1 coded columns. An "
           "interaction is half the difference between one factor's effect at the other's high and low levels.",
           "Model: one intercept per seed block (every cell of a block has the same split, initial weights and data "
           "order), then the main effects and the two-factor interactions; the residual (blocks x effects, and the "
           "interactions the model leaves out) gives one pooled standard deviation, and each interval is Student t on "
           "its degrees of freedom. Only blocks whose every cell finished are used."]
    out.append(f"Verdicts: Holm's step-down adjustment over the {len(fractional.effects)} effects of each measure, "
               "differences and equivalences each as one family; the intervals are not adjusted."
               if plan.correction == "holm" else "Verdicts: no adjustment for the number of effects (--correction none).")
    if plan.margin is not None:
        out.append(f"*equivalent*: two one-sided t tests put the effect inside ±{plan.margin:g} (the 90% interval lies "
                   "inside the band), after the same adjustment.")
    if plan.adaptive:
        looks = plan.sequential.looks
        out.append(f"Adaptive seed blocks: {plan.seeds}, then rounds of {plan.seeds_per_round} while a main effect on "
                   f"{measure(plan.primary).heading} is undecided, up to {plan.max_seeds}; each p-value is adjusted for the "
                   f"looks at {', '.join(map(str, looks))} blocks by Pocock's boundary, calibrated for this pooled t "
                   "statistic, before Holm.")
    cells = {machine: sorted({r["group"] for r in result["runs"] if (r["metrics"]["machine"], r["metrics"].get("precision"))
                              == machine}) for machine in result["machines"]}
    if len(cells) == 1:
        out.append(f"Runs trained on: {result['machines'][0][0]} ({result['machines'][0][1]}). Each block's cells are one "
                   "seed's on one machine.")
    else:
        out.append("Runs trained on: " + "; ".join(f"{name} ({precision}): {', '.join(cells[(name, precision)])}"
                                                   for name, precision in result["machines"])
                   + f". A run reused from the pool keeps the machine it was trained on; an offset between machines in "
                   f"one cell moves every effect by 1/{len(fractional.matrix) // 2} of it.")
    return out


def write_factorial_report(folder: Path, margin: float | None = None, correction: str | None = None,
                           primary: str | None = None, log=None) -> Path:
    """summary.md, effects.csv, effects.png, interactions.png and report.html of a factorial folder."""
    folder = Path(folder)
    result = factorial_result(folder, margin, correction, primary)
    if not result["runs"]:
        raise RegulabError(f"no finished runs in {folder} yet; run the same `regulab factorial` command to train them")
    keys = [k for k in SHOWN if k in result["measures"]]
    figures = {}
    if result["measures"] and result["measures"][keys[0]]["effects"]:
        figures["effects.png"] = ("Effects", png_bytes(effects_figure(result, keys)))
    primary_key = result["plan"].primary
    decided = [e for e, cell in zip(result["effects"], result["measures"].get(primary_key, {}).get("effects", []))
               if len(e) == 2 and cell["verdict"] in DECIDED]
    if decided:
        figures["interactions.png"] = (f"Decided interactions on {measure(primary_key).heading}",
                                       png_bytes(interaction_figure(result, primary_key, decided)))
    for name, (_, png) in figures.items():
        atomic_write(folder / name, png)
    atomic_write(folder / "effects.csv", _csv(result).encode())
    fractional: FractionalDesign = result["design"]
    md = "The design:\n\n" + "\n".join(f"  - {line.strip()}" if line.startswith(" ") else f"- {line}"
                                         for line in fractional.lines()) + "\n"
    for key in keys:
        md += f"\nEffects on {measure(key).heading}:\n\n"
        md += _markdown(*effects_rows(result, key)) + "\n" if result["measures"][key]["effects"] else ""
        md += words(result, key) + "\n\n" + "".join(f"- {line}\n" for line in gain_lines(result, key))
    md += "\nCells (mean ± sd over seeds [95% interval]):\n\n" + _markdown(*cells_rows(result))
    md += "\n" + "\n".join(f"- {n}" for n in notes(result)) + "\n"
    atomic_write(folder / "summary.md", md.encode())
    atomic_write(folder / "report.html", _html(result, figures).encode())
    if log is not None:
        for key in keys:
            log(words(result, key))
    return folder / "report.html"


def _html(result: dict, figures: dict) -> str:
    fractional: FractionalDesign = result["design"]
    title = " vs ".join(result["manifest"]["presets"]) + ": factorial"
    sections = "".join(
        f"<h2>Effects on {html.escape(measure(key).heading)}</h2><p>{_emphasis(words(result, key))}</p>"
        + _table(*effects_rows(result, key))
        + "".join(f"<p>{html.escape(line)}</p>" for line in gain_lines(result, key)) for key in result["measures"])
    design = "".join(f"<li>{html.escape(line)}</li>" for line in fractional.lines())
    blocks = len(next(iter(result["measures"].values()))["blocks"]) if result["measures"] else 0
    done = f"{len(result['runs'])} finished runs; {blocks} of {result['planned_blocks']} planned seed blocks complete."
    return html_page(title, f"""<p>{done}</p>
<h2>The design</h2><ul>{design}</ul>
{sections}
{html_images(figures)}
<h2>Cells</h2>{_table(*cells_rows(result))}
<ul class=note>{"".join(f"<li>{_emphasis(n)}</li>" for n in notes(result))}</ul>""")


def effect_table(result: dict, key: str) -> list[dict]:
    """One measure's effects as plain rows (the API's `Factorial.effects`): `name` (with its
    aliases), `letters`, `effect` (the estimate), its intervals, p-values and verdict."""
    return [{"name": name, "letters": letters, **e}
            for letters, name, e in zip(result["effects"], result["names"], result["measures"][key]["effects"])]

