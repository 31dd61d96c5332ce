"""Using a trained run: evaluate it on the test set, predict classes of your own images, and
export it to ONNX. Every command reads the run folder alone: its config, what its training data
was (metrics.json: the normalization, the class names, the image size) and its best weights."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from regulab import data as data_lib
from regulab.config import Config
from regulab.errors import RegulabError
from regulab.evaluation import predict as predict_logits
from regulab.evaluation import reliability
from regulab.figures import plot_confusion, plot_mistakes, plot_reliability
from regulab.files import atomic_write
from regulab.folders import IMAGE_SUFFIXES, BadImage, is_image_folder, to_rgb_square
from regulab.folders import read_image as read_image_file
from regulab.models import build_model
from regulab.rundir import BEST_WEIGHTS, METRICS, RunDir
from regulab.runtime import heap_kept

EVALUATION, CONFUSION, MISTAKES, RELIABILITY = "evaluation.json", "confusion.png", "misclassified.png", "reliability.png"


@dataclass
class TrainedRun:
    """A finished run's model (best weights, eval mode, fp32 on the CPU), its input statistics,
    class names and image size."""

    path: Path
    config: Config
    model: torch.nn.Module
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]
    image_size: int

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainedRun":
        run = RunDir(path)
        run.require_started()
        if not run.finished():
            raise RegulabError(f"{run.path} holds no finished run (no {METRICS}); finish it first: "
                               f"regulab train --resume {run.path}")
        config, metrics = run.read_config(), run.read_json(METRICS)
        # Runs from before image folders were read (no classes recorded) trained on CIFAR-10.
        classes = tuple(metrics.get("classes", data_lib.CLASSES))
        image_size = metrics.get("image_size", data_lib.CIFAR_SIZE)
        model = build_model(config, len(classes), image_size)
        model.load_state_dict(run.load_weights(BEST_WEIGHTS, model))
        normalization = metrics["normalization"]
        return cls(run.path, config, model.eval(), tuple(normalization["mean"]), tuple(normalization["std"]),
                   classes, image_size)

    def test_data(self, data: str | None = None) -> data_lib.ImageData:
        """The test images of the run's own data (or of `data`), checked to have the run's classes."""
        settings = self.config
        if data is not None and not is_image_folder(Path(data)):  # CIFAR comes at its own size; the check below tells
            settings = dataclasses.replace(settings, image_size=data_lib.CIFAR_SIZE)
        raw = data_lib.load_for(settings, data)
        if raw.classes != self.classes or raw.image_size != self.image_size:
            raise RegulabError(f"{raw.source} has {len(raw.classes)} classes of {raw.image_size}x{raw.image_size} images, "
                               f"but {self.path} was trained on {len(self.classes)} classes of {self.image_size}x"
                               f"{self.image_size}; evaluate it on data with the same classes")
        return raw

    def normalize(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, 3, S, S) images as the model saw its training data."""
        return data_lib.normalize(images, self.mean, self.std)

    def probabilities(self, x: torch.Tensor, tta: int | None = None, batch_size: int = 1000) -> torch.Tensor:
        """Class probabilities of normalized images, in fp32, with the run's test-time augmentation
        (level and share of unsure images) unless `tta` says another level, which covers all."""
        if tta is None:
            return predict_logits(self.model, x, batch_size, "fp32", self.config.tta, self.config.tta_unsure).softmax(1)
        return predict_logits(self.model, x, batch_size, "fp32", tta).softmax(1)


# ---------------------------------------------------------------------------------------------
# evaluate

def evaluate_run(path: str | os.PathLike, data: str | None = None, tta: int | None = None) -> dict:
    """Test-set accuracy and loss, per-class precision/recall/F1, the confusion matrix and the
    most confused pairs; writes evaluation.json, confusion.png and misclassified.png."""
    trained = TrainedRun.load(path)
    raw = trained.test_data(data)
    classes = trained.classes
    with heap_kept():
        probs = trained.probabilities(trained.normalize(raw.x_test), tta)
    labels = torch.from_numpy(raw.y_test)
    predicted = probs.argmax(1)
    k = len(classes)
    confusion = torch.bincount(labels * k + predicted, minlength=k * k).view(k, k)  # rows: true, columns: predicted
    hits = confusion.diag().double()
    precision = hits / confusion.sum(0).clamp(min=1)
    recall = hits / confusion.sum(1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    per_class = [{"class": name, "images": int(confusion[i].sum()), "precision": float(precision[i]),
                  "recall": float(recall[i]), "f1": float(f1[i])} for i, name in enumerate(classes)]
    off_diagonal = confusion.clone().fill_diagonal_(0)
    pairs = sorted(((int(off_diagonal[t, p]), t, p) for t in range(k) for p in range(k) if off_diagonal[t, p]), reverse=True)
    result = {
        "run": str(trained.path), "data": raw.source, "images": len(labels), "tta": trained.config.tta if tta is None else tta,
        "tta_unsure": trained.config.tta_unsure if tta is None else 1.0,
        "accuracy": float((predicted == labels).double().mean()),
        "loss": float(torch.nn.functional.nll_loss(probs.clamp(min=1e-12).log(), labels)),
        "ece": None, "reliability": reliability(probs.max(1).values, predicted == labels),
        "per_class": per_class,
        "most_confused": [{"true": classes[t], "predicted": classes[p], "count": n} for n, t, p in pairs[:5]],
        "confusion": confusion.tolist(), "classes": list(classes),
    }
    result["ece"] = result["reliability"]["ece"]
    RunDir(trained.path).write_json(EVALUATION, result)
    plot_reliability(result["reliability"], trained.path / RELIABILITY, title=f"{trained.path.name}: test set")
    plot_confusion(confusion.numpy(), classes, trained.path / CONFUSION, title=f"{trained.path.name}: test set")
    wrong = (predicted != labels).nonzero().squeeze(1)
    wrong = wrong[probs[wrong].max(1).values.argsort(descending=True)][:48]  # the most confident mistakes first
    plot_mistakes(raw.x_test[wrong.numpy()], [classes[i] for i in labels[wrong]],
                  [classes[i] for i in predicted[wrong]], probs[wrong].max(1).values.tolist(),
                  trained.path / MISTAKES)
    return result


def evaluation_table(result: dict) -> str:
    tta = f"test-time augmentation level {result['tta']}"
    if result["tta"] and result.get("tta_unsure", 1.0) < 1:  # evaluation.json from before the share lacks it
        tta += f" on the {result['tta_unsure']:.0%} least confident images"
    lines = [f"test accuracy {result['accuracy']:.4f}, loss {result['loss']:.4f}, ECE {result['ece']:.4f} on "
             f"{result['images']:,} images ({result['data']}; fp32; {tta})", "",
             f"{'class':<11} {'images':>6} {'precision':>9} {'recall':>7} {'f1':>6}"]
    lines += [f"{c['class']:<11} {c['images']:>6} {c['precision']:>9.4f} {c['recall']:>7.4f} {c['f1']:>6.4f}"
              for c in result["per_class"]]
    lines += ["", "most confused (true -> predicted): " +
              ", ".join(f"{p['true']} -> {p['predicted']} {p['count']}" for p in result["most_confused"])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# predict

def image_files(inputs: list[str | os.PathLike]) -> list[Path]:
    """The files to predict: each file given, and the image files of each folder given (sorted)."""
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise RegulabError(f"{item} holds no image files ({', '.join(IMAGE_SUFFIXES)}); pass images or a folder of them")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise RegulabError(f"{item} does not exist; pass image files or folders")
    return files


def read_image(path: Path, size: int) -> np.ndarray:
    """Any image file Pillow reads, as training images are made (`folders.to_rgb_square`)."""
    try:
        return read_image_file(path, size)[0]
    except BadImage as exc:
        raise RegulabError(f"{path} is not a readable image ({exc}); pass PNG, JPEG, BMP, GIF, WebP or TIFF files") from None


def as_images(inputs: list, size: int) -> tuple[list[str], np.ndarray]:
    """Names and uint8 (N, 3, size, size) pixels of image files, folders of them, PIL images, or
    uint8 arrays of shape (H, W, 3) or (H, W)."""
    from PIL import Image

    names, images = [], []
    for i, item in enumerate(inputs):
        if isinstance(item, Image.Image):
            names.append(f"image {i}")
            images.append(to_rgb_square(item, size))
        elif isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[2] not in (3, 4)):
                raise RegulabError(f"image {i}: an array must be uint8 of shape (H, W), (H, W, 3) or (H, W, 4), "
                                   f"not {item.dtype} {item.shape}")
            names.append(f"image {i}")
            images.append(to_rgb_square(Image.fromarray(item), size))
        else:
            for file in image_files([item]):
                names.append(str(file))
                images.append(read_image(file, size))
    return names, np.stack(images)


def predict(path: str | os.PathLike, inputs: list, top: int = 3) -> list[dict]:
    """Top-`top` classes with probabilities for each image (see `as_images` for what an image may be)."""
    trained = TrainedRun.load(path)
    if not 1 <= top <= len(trained.classes):
        raise RegulabError(f"--top must be between 1 and {len(trained.classes)} (the run's classes), not {top}")
    names, images = as_images(inputs, trained.image_size)
    probs = trained.probabilities(trained.normalize(images))
    values, indices = probs.topk(top, dim=1)
    return [{"file": name, "top": [{"class": trained.classes[i], "probability": round(float(p), 6)}
                                   for p, i in zip(v, ix)]} for name, v, ix in zip(names, values, indices)]


def prediction_lines(predictions: list[dict]) -> str:
    return "\n".join(f"{p['file']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in p["top"])
                     for p in predictions)


# ---------------------------------------------------------------------------------------------
# export

def export_onnx(path: str | os.PathLike, out: str | os.PathLike | None = None, check_images: int = 1000) -> dict:
    """Write RUN_DIR/model.onnx (or `out`) and model.json beside it: input layout, normalization
    and classes. Where onnxruntime is installed, compare its logits with PyTorch's on real test
    images and report the largest difference."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError:
        raise RegulabError("export needs the ONNX packages; install them: pip install 'regulab[onnx]'") from None
    trained = TrainedRun.load(path)
    target = Path(out) if out else trained.path / "model.onnx"
    size = trained.image_size
    example = torch.zeros(2, 3, size, size)
    batch = torch.export.Dim("batch", min=1)
    onnx_log = logging.getLogger("torch.onnx")  # it notes every optional package it did not find
    level, onnx_log.level = onnx_log.level, logging.ERROR
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(trained.model, (example,), input_names=["image"], output_names=["logits"],
                                    dynamic_shapes=({0: batch},), dynamo=True, verbose=False)
    onnx_log.setLevel(level)
    atomic_write(target, program.model_proto.SerializeToString())
    card = {
        "model": target.name, "trained_in": str(trained.path), "architecture": trained.config.model,
        "input": {"name": "image", "shape": ["batch", 3, size, size], "dtype": "float32", "layout": "NCHW, RGB"},
        "normalization": {"formula": "image = (pixel - mean) / std, per channel, pixel in 0-255",
                          "mean": list(trained.mean), "std": list(trained.std)},
        "output": {"name": "logits", "shape": ["batch", len(trained.classes)],
                   "note": "softmax over axis 1 gives class probabilities; "
                   "no test-time augmentation inside"},
        "classes": list(trained.classes), "image_size": size,
        "preprocessing": "RGB (grey replicated, transparency on white), centred square, resized with Lanczos",
    }
    try:
        import onnxruntime
    except ImportError:
        card["check"] = "onnxruntime not installed: outputs not compared"
    else:
        raw = trained.test_data()
        x = trained.normalize(raw.x_test[:check_images])
        session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        onnx_logits = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
        with torch.no_grad():
            torch_logits = trained.model(x)
        card["check"] = {"images": len(x), "data": raw.source,
                         "max_abs_logit_difference": float((onnx_logits - torch_logits).abs().max()),
                         "same_top_class": float((onnx_logits.argmax(1) == torch_logits.argmax(1)).double().mean())}
    atomic_write(target.with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    return card
