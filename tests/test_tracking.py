"""TensorBoard and MLflow receive exactly the history the run folder holds."""

import builtins
import json

import pytest

from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.tracking import SCALARS
from regulab.training import train


@pytest.fixture
def quick(cifar_sample):
    return lambda out, **kw: make_config("seed", data=str(cifar_sample), out=str(out), **{"epochs": 2, **kw})


def history_scalars(run):
    rows = json.loads((run / "history.json").read_text())
    return {k: [(r["epoch"], r[k]) for r in rows if r.get(k) is not None] for k in SCALARS}


def test_tensorboard_scalars_equal_the_history(quick, tmp_path):
    pytest.importorskip("tensorboard", reason="install regulab[tracking] to test TensorBoard logging")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(quick(tmp_path / "run", tensorboard=str(tmp_path / "tb")), log=lambda *_: None, progress=False)
    events = EventAccumulator(str(tmp_path / "tb" / "run")).Reload()
    for key, expected in history_scalars(tmp_path / "run").items():
        logged = [(e.step, e.value) for e in events.Scalars(key)]
        assert [s for s, _ in logged] == [s for s, _ in expected]
        assert [v for _, v in logged] == pytest.approx([v for _, v in expected], rel=1e-6)  # stored as float32
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert events.Scalars("final/test_acc")[0].value == pytest.approx(metrics["test_acc"], rel=1e-6)


def test_mlflow_metrics_and_params_equal_the_run(quick, tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="install regulab[tracking] to test MLflow logging")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # the default local store is ./mlruns
    train(quick(tmp_path / "run", mlflow="auto"), log=lambda *_: None, progress=False)
    run_id = json.loads((tmp_path / "run" / "tracking.json").read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    logged = client.get_run(run_id)
    assert logged.data.params["preset"] == "seed" and logged.data.params["batch_size"] == "32"
    for key, expected in history_scalars(tmp_path / "run").items():
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        assert [s for s, _ in history] == [s for s, _ in expected]
        assert [v for _, v in history] == pytest.approx([v for _, v in expected], rel=1e-12)
    assert logged.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(run_id)} >= {"curves.png", "metrics.json", "config.toml"}


def test_missing_tracking_package_fails_before_training(quick, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def without_tensorboard(name, *args, **kwargs):
        if name == "tensorboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tensorboard)
    with pytest.raises(RegulabError, match=r"pip install 'regulab\[tracking\]'"):
        train(quick(tmp_path / "run", tensorboard="auto"), log=lambda *_: None)
    assert not (tmp_path / "run").exists()


def test_trackers_are_closed_when_the_end_of_a_run_fails(quick, tmp_path, monkeypatch):
    from regulab import callbacks
    from regulab.tracking import Trackers

    closed = []
    monkeypatch.setattr(Trackers, "close", lambda self: closed.append(True))

    def broken_figure(*args, **kwargs):
        raise RegulabError("cannot draw the figure")
    monkeypatch.setattr(callbacks, "plot_curves", broken_figure)
    with pytest.raises(RegulabError, match="cannot draw"):
        train(quick(tmp_path / "run", epochs=1, tensorboard=str(tmp_path / "tb")), log=lambda *_: None, progress=False)
    assert closed == [True]
