"""evaluate, predict and export on a small real run (real CIFAR-10 images, a sample of the bundled subset)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from regulab import data as data_lib
from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.evaluation import evaluate
from regulab.trained import TrainedRun, evaluate_run, predict, read_image
from regulab.training import train


def regulab(*args):
    return subprocess.run([sys.executable, "-m", "regulab", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def run(tmp_path_factory, cifar_sample):
    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = make_config("seed-all", data=str(cifar_sample), epochs=2, out=str(out))
    train(cfg, log=lambda *_: None, progress=False)
    return out


def test_evaluate_counts_and_per_class_scores(run, cifar_sample):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    result = evaluate_run(run, tta=0)
    trained = TrainedRun.load(run)
    raw = data_lib.load_data(cifar_sample)
    x = trained.normalize(raw.x_test)
    predicted = trained.probabilities(x, tta=0).argmax(1).numpy()
    assert result["accuracy"] == pytest.approx(evaluate(trained.model, x, torch.from_numpy(raw.y_test), 1000, "fp32").acc)
    assert np.array_equal(result["confusion"], confusion_matrix(raw.y_test, predicted, labels=range(10)))
    precision, recall, f1, support = precision_recall_fscore_support(raw.y_test, predicted, labels=range(10), zero_division=0)
    for i, row in enumerate(result["per_class"]):
        assert row["class"] == data_lib.CLASSES[i] and row["images"] == support[i] == 15
        assert row["precision"] == pytest.approx(precision[i]) and row["recall"] == pytest.approx(recall[i])
        assert row["f1"] == pytest.approx(f1[i])
    counts = [p["count"] for p in result["most_confused"]]
    assert counts == sorted(counts, reverse=True) and counts[0] == max(
        result["confusion"][t][p] for t in range(10) for p in range(10) if t != p)
    assert result["ece"] == pytest.approx(result["reliability"]["ece"]) and 0 < result["ece"] < 1
    assert sum(result["reliability"]["count"]) == 150
    for name in ("evaluation.json", "confusion.png", "misclassified.png", "reliability.png"):
        assert (run / name).stat().st_size > 1000
    with Image.open(run / "misclassified.png") as grid:
        assert grid.size[0] > 800  # 8 images a row


@pytest.mark.slow
def test_evaluate_command_prints_the_table(run):
    result = regulab("evaluate", str(run))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("test accuracy ") and "most confused" in result.stdout
    assert sum(line.split()[0] in data_lib.CLASSES for line in lines if line.strip()) == 10


def _write_images(folder, raw):
    """Test images 0-2 as exact 32x32 PNGs, image 3 scaled to 100x60 JPEG, and one text file."""
    folder.mkdir()
    for i in range(3):
        Image.fromarray(raw.x_test[i].transpose(1, 2, 0)).save(folder / f"img{i}.png")
    Image.fromarray(raw.x_test[3].transpose(1, 2, 0)).resize((100, 60)).save(folder / "wide.jpg", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_predict_uses_the_runs_normalization_and_reads_folders(run, cifar_sample, tmp_path):
    raw = data_lib.load_data(cifar_sample)
    folder = _write_images(tmp_path / "images", raw)
    predictions = predict(run, [folder], top=3)
    assert [p["file"].rsplit("/", 1)[1] for p in predictions] == ["img0.png", "img1.png", "img2.png", "wide.jpg"]
    trained = TrainedRun.load(run)
    expected = trained.probabilities(trained.normalize(raw.x_test[:3]))
    for p, probs in zip(predictions, expected):
        values, indices = probs.topk(3)
        assert [t["class"] for t in p["top"]] == [data_lib.CLASSES[i] for i in indices]
        assert [t["probability"] for t in p["top"]] == pytest.approx(values.tolist(), abs=1e-6)
    assert read_image(folder / "wide.jpg", 32).shape == (3, 32, 32)


@pytest.mark.slow
def test_predict_command_json_and_bad_images(run, cifar_sample, tmp_path):
    folder = _write_images(tmp_path / "images", data_lib.load_data(cifar_sample))
    result = regulab("predict", str(run), str(folder / "img0.png"), str(folder / "wide.jpg"), "--json", "--top", "2")
    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)
    assert len(parsed) == 2 and all(len(p["top"]) == 2 for p in parsed)
    assert sum(t["probability"] for t in parsed[0]["top"]) <= 1.0

    truncated = folder / "broken.png"
    truncated.write_bytes((folder / "img0.png").read_bytes()[:60])
    for bad, message in [(folder / "notes.txt", "is not a readable image"), (truncated, "is not a readable image"),
                         (tmp_path / "missing.png", "does not exist")]:
        result = regulab("predict", str(run), str(bad))
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_unfinished_run_is_refused(run, tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text((run / "config.json").read_text())  # started, never finished
    with pytest.raises(RegulabError, match="no finished run"):
        TrainedRun.load(tmp_path / "half")


@pytest.mark.slow
def test_onnx_export_matches_pytorch_on_real_images(run, cifar_sample, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="install regulab[onnx] to test the export")
    result = regulab("export", str(run), "--format", "onnx", "--out", str(tmp_path / "net.onnx"))
    assert result.returncode == 0, result.stderr
    card = json.loads((tmp_path / "net.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert card["normalization"]["mean"] == pytest.approx(metrics["normalization"]["mean"])
    assert card["classes"] == list(data_lib.CLASSES) and card["input"]["layout"] == "NCHW, RGB"

    # Tolerance: float32 logits agree to 1e-4 (kernels sum in different orders), top class always.
    raw = data_lib.load_data(cifar_sample)
    trained = TrainedRun.load(run)
    x = trained.normalize(raw.x_test)
    session = onnxruntime.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = torch.from_numpy(session.run(None, {"image": x.numpy()})[0])
    with torch.no_grad():
        torch_logits = trained.model(x)
    assert (onnx_logits - torch_logits).abs().max() < 1e-4
    assert torch.equal(onnx_logits.argmax(1), torch_logits.argmax(1))
    assert card["check"]["max_abs_logit_difference"] < 1e-4 and "largest logit difference" in result.stdout


def test_one_test_accuracy_for_one_run_whatever_the_training_precision(cifar_sample, tmp_path):
    """Trained in bf16, scored in fp32: metrics.json and `regulab evaluate` give the same number."""
    out = tmp_path / "bf16"
    cfg = make_config("seed", data=str(cifar_sample), epochs=1, precision="bf16", out=str(out))
    metrics = train(cfg, log=lambda *_: None, progress=False)
    assert metrics["precision"] == "bf16" and metrics["test_precision"] == "fp32"
    assert evaluate_run(out, tta=0)["accuracy"] == metrics["test_acc"]


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    """A run on a folder of three classes of 16x16 images: its names and size travel with it."""
    from tests.conftest import colour_folder

    root = colour_folder(tmp_path_factory.mktemp("colours") / "colours", per_class=20, size=20)
    out = tmp_path_factory.mktemp("trained") / "colour-run"
    cfg = make_config("seed-noreg", data=str(root), image_size=16, epochs=3, batch_size=16, lr=1e-3, out=str(out))
    train(cfg, log=lambda *_: None, progress=False)
    return out, root


@pytest.mark.slow
def test_a_folder_runs_classes_and_size_reach_evaluate_predict_and_export(colour_run, tmp_path):
    run, root = colour_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == ["blue", "green", "red"] and metrics["image_size"] == 16
    result = evaluate_run(run)
    assert result["classes"] == ["blue", "green", "red"] and len(result["confusion"]) == 3
    assert result["images"] == 12 and result["accuracy"] == 1.0  # three flat colours: learnt in 3 epochs
    big_red = np.zeros((50, 80, 3), np.uint8)
    big_red[..., 0] = 230
    (p,) = predict(run, [big_red], top=3)
    assert p["top"][0]["class"] == "red" and {t["class"] for t in p["top"]} == {"blue", "green", "red"}
    with pytest.raises(RegulabError, match="--top must be between 1 and 3"):
        predict(run, [big_red], top=4)
    card = regulab("export", str(run), "--out", str(tmp_path / "m.onnx"))
    assert card.returncode == 0, card.stderr
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["classes"] == ["blue", "green", "red"] and card["input"]["shape"] == ["batch", 3, 16, 16]
    assert card["output"]["shape"] == ["batch", 3] and card["check"]["same_top_class"] == 1.0


def test_evaluating_on_data_with_other_classes_is_refused(colour_run):
    run, _ = colour_run
    with pytest.raises(RegulabError, match="was trained on 3 classes of 16x16"):
        evaluate_run(run, data="cifar10-mini")


@pytest.mark.slow
def test_regulab_data_reports_counts_sizes_duplicates_and_draws_samples(tmp_path):
    from tests.conftest import colour_folder, write

    root = colour_folder(tmp_path / "d", per_class=3, split="train")
    colour_folder(root, per_class=1, split="test")
    write(root / "test" / "red" / "copy.png", np.asarray(Image.open(root / "train" / "red" / "001.png")))
    write(root / "train" / "blue" / "grey.png", np.full((10, 14), 9, np.uint8))
    result = regulab("data", str(root), "--image-size", "8", "--out", str(tmp_path / "look"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 classes, 10 train and 4 test images at 8x8" in out
    assert "12x12 (13)" in out and "14x10 (1)" in out and "RGB (13), L (1)" in out
    assert "1 test images are exact copies of training images" in out and "test/red/copy.png = train/red/001.png" in out
    summary = json.loads((tmp_path / "look" / "data.json").read_text())
    assert [c["train"] for c in summary["per_class"]] == [4, 3, 3] and summary["image_size"] == 8
    assert Image.open(tmp_path / "look" / "samples.png").size[1] > 100
    bad = regulab("data", str(tmp_path / "absent"))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "no data at" in bad.stderr
