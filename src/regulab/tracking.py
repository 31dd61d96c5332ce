"""Sending a run's history to the tools people already use: TensorBoard and MLflow.

Both are optional (pip install 'regulab[tracking]'); the run folder stays the record either
way. Each epoch's row goes out under the same names as in history.csv, at step = epoch, and the
final test metrics once at the end. A resumed run continues its MLflow run (its id is kept in
the run folder) and appends to its TensorBoard folder.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from regulab.config import Config
from regulab.errors import RegulabError
from regulab.rundir import RunDir

TRACKING = "tracking.json"  # the MLflow run id, so a resumed run logs into the same one
SCALARS = ("loss", "acc", "val_loss", "val_acc", "data_loss", "penalty", "val_data_loss", "lr", "images_per_s")
FINAL = ("test_loss", "test_acc", "test_acc_tta", "best_val_acc", "seconds")


def check_available(cfg: Config) -> None:
    """Fail before the run starts, not after an hour, when a tracking package is missing."""
    wanted = {"tensorboard": cfg.tensorboard, "mlflow": cfg.mlflow}
    for module, option in wanted.items():
        if not option:
            continue
        try:
            __import__(module)
        except ImportError:
            raise RegulabError(f"--{module} needs the {module} package; install it: pip install 'regulab[tracking]'") from None


class Trackers:
    def __init__(self, cfg: Config, run: RunDir, resume: bool):
        self.tensorboard = self.mlflow = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            base = run.path / "tensorboard" if cfg.tensorboard == "auto" else Path(cfg.tensorboard) / run.path.name
            self.tensorboard = SummaryWriter(log_dir=str(base))
        if cfg.mlflow:
            self.mlflow = _start_mlflow(cfg, run, resume)

    def epoch(self, row: dict) -> None:
        values = {k: float(row[k]) for k in SCALARS if row.get(k) is not None}
        if self.tensorboard:
            for key, value in values.items():
                self.tensorboard.add_scalar(key, value, row["epoch"])
            self.tensorboard.flush()
        if self.mlflow:
            self.mlflow.log_metrics(values, step=row["epoch"])

    def finish(self, metrics: dict, files: list[Path]) -> None:
        values = {k: float(metrics[k]) for k in FINAL if metrics.get(k) is not None}
        if self.tensorboard:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"final/{key}", value, metrics["epochs_run"])
            self.tensorboard.close()
        if self.mlflow:
            self.mlflow.log_metrics({f"final_{k}": v for k, v in values.items()})
            for file in files:
                self.mlflow.log_artifact(str(file))
            self.mlflow.end_run()

    def close(self) -> None:
        """After a failure: flush what was logged, and mark the MLflow run as not finished."""
        if self.tensorboard:
            self.tensorboard.close()
        if self.mlflow:
            self.mlflow.end_run(status="KILLED")


def _start_mlflow(cfg: Config, run: RunDir, resume: bool):
    import mlflow

    uri = "file:./mlruns" if cfg.mlflow == "auto" else cfg.mlflow
    if uri.startswith("file:") or "://" not in uri:
        # MLflow 3 keeps its local file store working but asks for an explicit opt-in.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "creating experiment" chatter
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("regulab")
        previous = run.read_json(TRACKING).get("mlflow_run_id") if resume and (run.path / TRACKING).is_file() else None
        active = mlflow.start_run(run_id=previous) if previous else mlflow.start_run(run_name=run.path.name)
        if not previous:
            mlflow.log_params({k: v for k, v in cfg.settings().items() if v is not None and v != ""})
            mlflow.set_tag("run_dir", str(run.path.resolve()))
            run.write_json(TRACKING, {"mlflow_run_id": active.info.run_id, "mlflow_uri": uri})
    except mlflow.exceptions.MlflowException as exc:
        raise RegulabError(f"MLflow at {uri} refused the run ({str(exc).splitlines()[0]}); check --mlflow") from None
    return mlflow
