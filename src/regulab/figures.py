"""A run's figures: the seed's two panels of curves, and one model's errors (confusion,
reliability, samples, mistakes). Every figure is written through `save_figure`, atomically, as
every file of a run folder is."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from regulab.files import atomic_write

TRAIN_COLOR, VAL_COLOR = "blue", "orange"  # the seed's colours



def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    return png.getvalue()


def save_figure(fig: Figure, path: Path, dpi: int = 100) -> Path:
    """The figure as a PNG at `path`, written atomically."""
    atomic_write(Path(path), png_bytes(fig, dpi))
    return Path(path)


def run_title(config: dict) -> str:
    return f"{config.get('preset')} ({config.get('model')}, seed {config.get('seed')})"


def plot_curves(history: list[dict], path: Path, title: str | None = None) -> Path:
    """Loss and accuracy against epochs, side by side, train blue and validation orange.

    As in the seed, `loss` includes any L2 penalty; where there is one, the data loss alone is
    drawn dashed beside it so that runs with and without a penalty can be compared.
    """
    fig = Figure(figsize=(10, 5), layout="constrained")
    draw_curves(fig, history, title)
    return save_figure(fig, path, dpi=100)


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
    return save_figure(fig, path, dpi=110)


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
    return save_figure(fig, path, dpi=110)


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
    return save_figure(fig, path, dpi=100)


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
    return save_figure(fig, path, dpi=110)


def norm_columns(history: list[dict]) -> list[str]:
    """The history's kernel-norm columns (`norm_LAYER`), in layer order; none in runs made before them."""
    return [key for key in (history[0] if history else {}) if key.startswith("norm_")]


def plot_weights(history: list[dict], path: Path, title: str | None = None) -> Path:
    """Each kernel's L2 norm against epochs (one line per layer), and the penalty's share of the
    loss where there is a penalty: what the regularizer does to the weights."""
    columns = norm_columns(history)
    has_penalty = any(r.get("penalty_share") is not None for r in history)
    fig = Figure(figsize=(10 if has_penalty else 6, 4.5), layout="constrained")
    axes = fig.subplots(1, 2 if has_penalty else 1, squeeze=False)[0]
    epochs = [r["epoch"] for r in history]
    for i, key in enumerate(columns):
        axes[0].plot(epochs, [r[key] for r in history], color=f"C{i % 10}", label=key.removeprefix("norm_"))
    axes[0].set(title="kernel norms", xlabel="epochs", ylabel="L2 norm of the kernel")
    axes[0].legend(fontsize=7, title="layer", title_fontsize=7)
    if has_penalty:
        axes[1].plot(epochs, [r["penalty_share"] for r in history], color=TRAIN_COLOR)
        axes[1].set(title="the penalty's share of the loss", xlabel="epochs", ylabel="penalty / loss")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=100)
