"""regulab from Python and in a notebook: the same engine as the command line."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import regulab
from regulab.cli import main

TIMING = {"seconds", "train_seconds", "images_per_s"}


@pytest.fixture(scope="module")
def quick(cifar_sample):
    return dict(data=str(cifar_sample), epochs=2, precision="fp32", deterministic=True)


@pytest.fixture(scope="module")
def quick_args(quick):
    return [f"--{key}" if value is True else f"--{key}={value}" for key, value in quick.items()]


def test_the_api_and_the_command_line_train_the_same_run(quick, quick_args, tmp_path, capsys):
    run = regulab.train("seed", out=str(tmp_path / "api"), **quick)
    assert main(["train", "--preset", "seed", "--out", str(tmp_path / "cli"), *quick_args]) == 0
    cli = regulab.load(tmp_path / "cli")
    for key in run.history:
        if key not in TIMING:
            assert run.history[key] == cli.history[key], key
    assert run.metrics["test_acc"] == cli.metrics["test_acc"] and run.path == tmp_path / "api"
    assert len(run.history["val_acc"]) == 2 and run.config["preset"] == "seed"
    figure = run.plot()  # a matplotlib Figure, as a notebook user expects
    assert isinstance(figure, Figure) and len(figure.axes) == 2 and figure.axes[1].get_title() == "train and val acc"
    figure.savefig(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert run.evaluate(tta=0)["accuracy"] == run.metrics["test_acc"]
    predictions = run.predict([np.zeros((40, 60, 3), np.uint8), str(Path(regulab.__file__).parent / "assets")][:1])
    assert predictions[0]["file"] == "image 0" and len(predictions[0]["top"]) == 3


def test_a_wrong_keyword_is_the_same_one_line_error(tmp_path):
    with pytest.raises(regulab.RegulabError, match="unknown option 'epoch'; did you mean 'epochs'"):
        regulab.train("seed", epoch=3)
    with pytest.raises(regulab.RegulabError, match="epochs must be int, not str"):
        regulab.train("seed", epochs="3")
    with pytest.raises(regulab.RegulabError, match="seed is set per run by compare and sweep"):
        regulab.compare(["seed"], seed=3, out=str(tmp_path / "c"))
    assert "epochs (default 30): passes over the training images" in regulab.train.__doc__
    assert regulab.presets()["seed"].startswith("The notebook exactly")


def test_an_interrupt_stops_cleanly_and_leaves_no_handler_behind(quick, tmp_path, capsys):
    """What a notebook's stop button does: SIGINT to the kernel, in the middle of training."""
    before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "run"

    def interrupt_after_the_first_epoch():
        deadline = time.time() + 120
        while time.time() < deadline:
            history = out / "history.json"
            if history.exists() and json.loads(history.read_text()):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.02)
    threading.Thread(target=interrupt_after_the_first_epoch, daemon=True).start()
    run = regulab.train("seed", out=str(out), **{**quick, "epochs": 4})
    assert 1 <= len(run.history["epoch"]) < 4 and run.metrics == {}
    assert f"continue with regulab.train(resume={str(out)!r})" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before
    resumed = regulab.train(resume=out, epochs=None)  # the same kernel can continue it: the folder was let go
    assert len(resumed.history["epoch"]) == 4 and resumed.metrics["epochs_run"] == 4


MODEL_FILE = '''
from torch import nn

import regulab


@regulab.register_model
def file_net(dropout_head: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                         nn.Dropout(dropout_head), nn.Linear(128, 10))
'''


def regulab_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "regulab", *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_a_model_from_a_file_through_train_evaluate_export_and_resume(quick_args, tmp_path):
    models = tmp_path / "my_models.py"
    models.write_text(MODEL_FILE)
    run = tmp_path / "run"
    unmarked = regulab_cli("train", "--model-file", str(models), "--model", "file-net", "--out", str(run), *quick_args)
    assert unmarked.returncode == 1 and "does not mark the kernels the seed regularizes" in unmarked.stderr
    trained = regulab_cli("train", "--model-file", str(models), "--model", "file-net", "--dropout-head", "0.2",
                          "--penalty-scope", "all", "--out", str(run), *quick_args)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((run / "config.json").read_text())
    assert config["model_file"] == str(models) and len(config["model_file_sha256"]) == 64
    evaluated = regulab_cli("evaluate", str(run), "--tta", "0")
    assert evaluated.returncode == 0 and evaluated.stdout.startswith("test accuracy"), evaluated.stderr
    if pytest.importorskip("onnxruntime", reason="install regulab[onnx] to test the export"):
        exported = regulab_cli("export", str(run))
        assert exported.returncode == 0 and "same top class 100.00%" in exported.stdout, exported.stderr
    (run / "metrics.json").unlink()  # as if interrupted after its last epoch
    assert regulab_cli("train", "--resume", str(run)).returncode == 0
    refused = regulab_cli("train", "--model-file", str(models), "--model", "file-net", "--batch-norm", "--l2", "0",
                          "--out", str(tmp_path / "bn"), *quick_args)
    assert refused.returncode == 1 and "the file-net model does not take --batch-norm" in refused.stderr

    models.write_text(MODEL_FILE.replace("nn.Linear(128, 10)", "nn.Linear(128, 10, bias=False)"))
    changed = regulab_cli("evaluate", str(run))
    assert changed.returncode == 1 and f"model file {models} has changed since the run was set up" in changed.stderr
    models.unlink()
    gone = regulab_cli("predict", str(run), str(tmp_path))
    assert gone.returncode == 1 and f"model file {models} does not exist; the run was trained with it" in gone.stderr
    assert len(gone.stderr.strip().splitlines()) == 1


def test_a_model_registered_in_this_process_trains_in_compare(quick, tmp_path, capsys):
    from torch import nn

    @regulab.register_model
    def here_net() -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))

    study = regulab.compare(["seed-noreg"], model="here-net", out=str(tmp_path / "c"), **quick)  # no L2 to place
    assert "on this process (here-net registered here" in capsys.readouterr().out
    assert study.rows[0]["n"] == 1 and "<table>" in study._repr_html_()
    assert study.runs("seed-noreg")[0].config["model"] == "here-net"


@pytest.mark.slow
def test_the_seed_notebook_runs(cifar_sample, tmp_path):
    nbclient = pytest.importorskip("nbclient", reason="install regulab[test] to run the notebook")
    import nbformat

    notebook = nbformat.read(Path(__file__).resolve().parents[1] / "examples" / "seed.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # committed clean
    os.environ["REGULAB_NOTEBOOK_QUICK"] = str(cifar_sample)
    try:
        nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        del os.environ["REGULAB_NOTEBOOK_QUICK"]
    images = sum(1 for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    assert images >= 3  # the seed's curves, the L2 sweep, the user's network
    assert (tmp_path / "runs" / "notebook" / "l2" / "report.html").is_file()


# ---------------------------------------------------------------------------------------------
# Notebook idioms: arrays as Keras gives them, callbacks with Keras's names, the trained model

def keras_like(n_train: int = 300, n_test: int = 100):
    """The bundled subset as keras.datasets.cifar10.load_data() gives CIFAR: NHWC uint8, labels (N, 1)."""
    from regulab import data as data_lib

    mini = data_lib.load_mini()  # ordered by class: take every k-th image for all ten
    train, test = slice(None, None, len(mini.y_train) // n_train), slice(None, None, len(mini.y_test) // n_test)
    return (mini.x_train[train][:n_train].transpose(0, 2, 3, 1), mini.y_train[train][:n_train, None].astype(np.uint8),
            mini.x_test[test][:n_test].transpose(0, 2, 3, 1), mini.y_test[test][:n_test, None].astype(np.uint8))


def test_arrays_are_split_and_normalized_by_the_same_rules_as_a_folder():
    from regulab import data as data_lib

    x, y, x_test, y_test = keras_like()
    raw = data_lib.from_arrays(x, y, x_test, y_test)
    assert raw.x_train.shape == (300, 3, 32, 32) and np.array_equal(raw.x_train, x.transpose(0, 3, 1, 2))
    assert raw.classes == data_lib.CLASSES and raw.y_train.dtype == np.int64 and raw.y_train.shape == (300,)
    splits = data_lib.prepare(raw, 0.3, 777)
    train_idx, val_idx = data_lib.split_indices(300, 0.3, 777)  # the seed's train_test_split
    assert np.array_equal(splits.val[1].numpy(), y[val_idx, 0]) and len(splits.train[1]) == len(train_idx)
    assert splits.mean == data_lib.channel_stats(raw.x_train)[0]  # over all the training images, as for CIFAR
    held = data_lib.from_arrays(x, y)  # no test arrays: a stratified 20% of each class, as for a folder
    in_test = np.zeros(300, bool)
    in_test[data_lib.stratified_subset(y[:, 0], 0.2, 777)] = True  # the folder's rule, drawn by the split seed
    assert np.array_equal(held.y_test, y[in_test, 0]) and np.array_equal(held.x_train, raw.x_train[~in_test])
    assert "held out 20% of each class" in held.notes[0]


@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0].astype(np.float32) / 255, *a[1:]), "is float32; pass uint8 images"),
    (lambda a: (a[0][..., :1], *a[1:]), "pass colour images as (N, H, W, 3) or (N, 3, H, W)"),
    (lambda a: (a[0], a[1][:-1], *a[2:]), "pass 300 integer class indices"),
    (lambda a: (a[0], np.where(a[1] == 9, 8, a[1]), *a[2:]), "class truck has no training images"),
])
def test_bad_arrays_are_one_line_naming_the_fix(change, message, tmp_path):
    with pytest.raises(regulab.RegulabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        regulab.train("seed", data=change(keras_like()), epochs=1, out=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


class Recorder:
    """A user's callback as Keras users write them: some of the three methods, no base class."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("begin", dict(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch", epoch, dict(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("end", dict(logs)))


class OnlyEpochs:
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(epoch)


def test_arrays_train_end_to_end_with_user_callbacks_and_give_the_model(tmp_path):
    recorder, epochs_only = Recorder(), OnlyEpochs()
    run = regulab.train("seed", data=keras_like(), epochs=2, precision="fp32", out=str(tmp_path / "r"),
                        callbacks=[recorder, epochs_only])
    assert run.config["data"] == "<arrays>" and run.metrics["train_size"] == 210 and run.metrics["test_size"] == 100
    kinds = [c[0] for c in recorder.calls]
    assert kinds == ["begin", "epoch", "epoch", "end"] and epochs_only.epochs == [1, 2]
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert [c[2] for c in recorder.calls if c[0] == "epoch"] == history  # logs: the history rows, as written
    assert recorder.calls[-1][1]["test_acc"] == run.metrics["test_acc"] and recorder.calls[-1][1]["epoch"] == 2
    model = run.model  # the trained network, eval mode, the best epoch's weights
    best = __import__("torch").load(tmp_path / "r" / "best.pt", weights_only=True)
    assert not model.training and all((model.state_dict()[k] == v).all() for k, v in best.items())
    with pytest.raises(regulab.RegulabError, match="trained on arrays given in Python; pass the data again"):
        run.evaluate()
