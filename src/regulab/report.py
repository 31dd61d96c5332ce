"""What a person reads: the per-epoch line, the seed's two-panel figure, and the comparison
report (table, overlay figures, one self-contained HTML page)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import statistics
from pathlib import Path

from matplotlib.figure import Figure

from regulab.config import PRESETS, preset_description
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
    epochs = [r["epoch"] for r in history]
    has_val = any(r.get("val_loss") is not None for r in history)
    has_penalty = any(r.get("penalty") for r in history)
    fig = Figure(figsize=(10, 5), layout="constrained")
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
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    atomic_write(path, png.getvalue())
    return path


# ---------------------------------------------------------------------------------------------
# Comparing runs: the table, the overlay and gap figures, and one self-contained HTML page

def load_runs(folder: Path) -> list[dict]:
    """Every finished run under FOLDER/<preset>/seed-<n>/, in preset then seed order."""
    runs = []
    for metrics_file in sorted(Path(folder).glob("*/seed-*/metrics.json")):
        run = RunDir(metrics_file.parent)
        config = run.read_json(CONFIG)
        runs.append({"preset": config["preset"], "seed": config["seed"], "path": run.path, "config": config,
                     "history": run.read_json(HISTORY_JSON), "metrics": run.read_json(METRICS)})
    if not runs:
        raise RegulabError(f"no finished runs under {folder}; run `regulab compare` into it first")
    order = {name: i for i, name in enumerate(PRESETS)}  # the registry's order: baseline first
    return sorted(runs, key=lambda r: (order.get(r["preset"], len(order)), r["preset"], r["seed"]))


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict]) -> list[dict]:
    """One row per preset, means (and spreads) over its seeds."""
    rows = []
    for preset in dict.fromkeys(r["preset"] for r in runs):
        group = [r for r in runs if r["preset"] == preset]
        m = [r["metrics"] for r in group]
        best_val, best_val_sd = _mean_std([x["best_val_acc"] for x in m])
        test, test_sd = _mean_std([x["test_acc"] for x in m])
        final_acc = statistics.fmean(x["final_acc"] for x in m)
        final_val = statistics.fmean(x["final_val_acc"] for x in m)
        rows.append({"preset": preset, "seeds": len(group), "best_val_acc": best_val, "best_val_acc_std": best_val_sd,
                     "best_epoch": statistics.fmean(x["best_epoch"] for x in m),
                     "epochs_run": statistics.fmean(x.get("epochs_run", x["epochs"]) for x in m),
                     "final_train_acc": final_acc, "final_val_acc": final_val, "gap": final_acc - final_val,
                     "test_acc": test, "test_acc_std": test_sd, "seconds": statistics.fmean(x["seconds"] for x in m),
                     "description": preset_description(preset) if preset in PRESETS else ""})
    return rows


TABLE_COLUMNS = ("preset", "seeds", "best val_acc", "best epoch", "final train acc", "final val acc", "gap",
                 "test acc", "minutes")


def _table_cells(row: dict) -> list[str]:
    def spread(key):  # one seed has no spread to show
        return f"{row[key]:.4f} ± {row[key + '_std']:.4f}" if row["seeds"] > 1 else f"{row[key]:.4f}"
    return [row["preset"], str(row["seeds"]), spread("best_val_acc"), f"{row['best_epoch']:.1f}",
            f"{row['final_train_acc']:.4f}", f"{row['final_val_acc']:.4f}", f"{row['gap']:+.4f}",
            spread("test_acc"), f"{row['seconds'] / 60:.1f}"]


def _per_epoch(group: list[dict], value) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, and the mean, min and max over seeds of value(row), where every seed has that epoch."""
    epochs = range(1, min(len(r["history"]) for r in group) + 1)
    series = [[value(r["history"][e - 1]) for r in group] for e in epochs]
    return list(epochs), [statistics.fmean(s) for s in series], [min(s) for s in series], [max(s) for s in series]


def _comparison_figure(runs: list[dict], panels: list[tuple[str, str, object]]) -> bytes:
    fig = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    presets = list(dict.fromkeys(r["preset"] for r in runs))
    colors = [f"C{i}" for i in range(len(presets))]
    for ax, (title, ylabel, value) in zip(axes, panels):
        for preset, color in zip(presets, colors):
            epochs, mean, low, high = _per_epoch([r for r in runs if r["preset"] == preset], value)
            ax.plot(epochs, mean, color=color, label=preset)
            if low != high:
                ax.fill_between(epochs, low, high, color=color, alpha=0.15, lw=0)
        ax.set(title=title, xlabel="epochs", ylabel=ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=90)
    return png.getvalue()


def write_report(folder: Path) -> Path:
    """summary.csv, summary.md, val_curves.png, gap.png and report.html, from the finished runs."""
    folder = Path(folder)
    runs = load_runs(folder)
    rows = summarize(runs)
    curves = _comparison_figure(runs, [
        ("validation accuracy", "accuracy", lambda h: h["val_acc"]),
        # The data loss: a penalty would inflate a regularized run's loss and break the comparison.
        ("validation loss (without penalty)", "cross-entropy", lambda h: h["val_data_loss"]),
    ])
    gap = _comparison_figure(runs, [("generalization gap", "train acc - val acc", lambda h: h["acc"] - h["val_acc"])])
    atomic_write(folder / "val_curves.png", curves)
    atomic_write(folder / "gap.png", gap)

    csv_text = io.StringIO()
    writer = csv.DictWriter(csv_text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(folder / "summary.csv", csv_text.getvalue().encode())
    md = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    md += ["| " + " | ".join(_table_cells(r)) + " |" for r in rows]
    atomic_write(folder / "summary.md", ("\n".join(md) + "\n").encode())
    atomic_write(folder / "report.html", _html(rows, runs, curves, gap).encode())
    return folder / "report.html"


def _html(rows: list[dict], runs: list[dict], curves: bytes, gap: bytes) -> str:
    def img(png: bytes, alt: str) -> str:
        return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    best = max(rows, key=lambda r: r["best_val_acc"])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
    body = "".join(
        f'<tr{" class=best" if r is best else ""} title="{html.escape(r["description"])}">'
        + "".join(f"<td>{html.escape(c)}</td>" for c in _table_cells(r)) + "</tr>" for r in rows)
    configs = "".join(
        f"<details><summary>{html.escape(r['preset'])}, seed {r['seed']}: {html.escape(str(r['path']))}</summary>"
        f"<pre>{html.escape(json.dumps(r['config'], indent=2))}</pre></details>" for r in runs)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>regulab comparison</title>
<style>
body {{ font: 15px/1.45 system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ padding: .35em .7em; border-bottom: 1px solid #ddd; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
tr.best td {{ font-weight: 600; background: #eef6ee; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
pre {{ background: #f6f6f6; padding: .6em; font-size: 12px; }}
.note {{ color: #555; }}
</style></head><body>
<h1>What stops the seed network overfitting?</h1>
<p>{len(runs)} runs of {len(rows)} presets, on the same train/validation split and data order.
Best: <b>{html.escape(best['preset'])}</b>, validation accuracy {best['best_val_acc']:.4f}.</p>
<table id="summary"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p class="note">Means over seeds (± standard deviation). <i>gap</i> is final train accuracy minus final
validation accuracy: how much the network has memorized rather than learnt. <i>test acc</i> uses each
run's best-epoch weights, chosen on validation; the test set was not used for any choice.</p>
<h2>Validation curves</h2>{img(curves, "validation accuracy and loss per preset")}
<h2>Generalization gap</h2>{img(gap, "train minus validation accuracy per preset")}
<h2>Run configurations</h2>{configs}
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# One model's errors (regulab evaluate)

def plot_confusion(confusion, classes, path: Path, title: str = "") -> Path:
    """Counts of true (rows) against predicted (columns) classes, each row shaded by its share."""
    shares = confusion / confusion.sum(1, keepdims=True).clip(min=1)
    fig = Figure(figsize=(7.5, 6.5), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for t in range(len(classes)):
        for p in range(len(classes)):
            ax.text(p, t, str(int(confusion[t, p])), ha="center", va="center", fontsize=8,
                    color="white" if shares[t, p] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.colorbar(image, ax=ax, label="share of the true class")
    fig.savefig(path, dpi=110)
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
