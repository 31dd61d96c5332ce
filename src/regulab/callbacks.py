"""What happens around the epochs of a training, each job a small object with its own state,
called by the engine at named points with Keras's names:

- `on_train_begin(logs)`: before the first epoch of this session (a resumed run's too);
- `on_epoch_end(epoch, logs)`: after each epoch, `logs` the epoch's history row;
- `on_train_end(logs)`: after the test, `logs` the last history row with the run's metrics.

A user's callback is any object with some of these methods (`regulab.train(...,
callbacks=[...])`); setting `stop_training = True` on the context (`ctx`, passed to regulab's own
callbacks) ends the run after the epoch, as Keras's `model.stop_training` does.

The built-in ones, in the order the engine calls them: `WeightsSaver` (best and last weights),
`CheckpointSaver` (the commit point), `HistoryWriter`, `TrackerLog`, `EpochLine`, `EarlyStop`;
at the end `CurvesFigure`, `MetricsWriter` (its file marks the run finished) and `TrackerLog`.
The NaN guard stays in the step loop, at the loop's one look at the device's sums.
"""

from __future__ import annotations

from regulab.figures import plot_curves, plot_weights, run_title
from regulab.rundir import BEST_WEIGHTS, CONFIG_TOML, CURVES, LAST_WEIGHTS, METRICS, WEIGHTS_FIGURE


def epoch_line(row: dict, epochs: int) -> str:
    """One Keras-style line: 'Epoch 3/30 - 27.1s - loss: ... - acc: ... - val_loss: ... - val_acc: ...'."""
    parts = [f"Epoch {row['epoch']}/{epochs}", f"{row['seconds']:.1f}s", f"loss: {row['loss']:.4f}", f"acc: {row['acc']:.4f}"]
    if row.get("val_loss") is not None:
        parts += [f"val_loss: {row['val_loss']:.4f}", f"val_acc: {row['val_acc']:.4f}"]
    parts.append(f"{row['images_per_s']:,.0f} img/s")
    return " - ".join(parts)


class Callback:
    """Does nothing at every point; a built-in callback overrides the points it works at."""

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass


class CallbackList:
    """Calls each callback that has the method, in order."""

    def __init__(self, callbacks: list):
        self.callbacks = list(callbacks)

    def _call(self, point: str, *args) -> None:
        for callback in self.callbacks:
            method = getattr(callback, point, None)
            if method is not None:
                method(*args)

    def on_train_begin(self, logs: dict) -> None:
        self._call("on_train_begin", logs)

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_train_end(self, logs: dict) -> None:
        self._call("on_train_end", logs)


class WeightsSaver(Callback):
    """The evaluated weights of the best epoch so far (best.pt) and of the last one (last.pt)."""

    def __init__(self, ctx, state):
        self.run, self.state = ctx.run, state

    def on_epoch_end(self, epoch, logs=None):
        weights = self.state.evaluated.state_dict()
        if self.state.best_epoch == epoch:
            self.run.save(BEST_WEIGHTS, weights)
        self.run.save(LAST_WEIGHTS, weights)


class CheckpointSaver(Callback):
    """Everything a resume needs (checkpoint.pt): written after the weights, before the history
    files, which are derived from it."""

    def __init__(self, ctx, state):
        self.run, self.state = ctx.run, state

    def on_epoch_end(self, epoch, logs=None):
        self.state.save(self.run)


class HistoryWriter(Callback):
    """history.json and history.csv, rewritten whole after every epoch."""

    def __init__(self, ctx, state):
        self.run, self.state = ctx.run, state

    def on_epoch_end(self, epoch, logs=None):
        self.run.write_history(self.state.history)


class TrackerLog(Callback):
    """The epoch's row to TensorBoard or MLflow, and at the end the metrics and the run's files."""

    def __init__(self, trackers, run):
        self.trackers, self.run = trackers, run

    def on_epoch_end(self, epoch, logs=None):
        self.trackers.epoch(logs)

    def on_train_end(self, logs=None):
        self.trackers.finish(self.run.read_json(METRICS),
                             [self.run.path / CURVES, self.run.path / METRICS, self.run.path / CONFIG_TOML])


class EpochLine(Callback):
    """The Keras-style line of each epoch."""

    def __init__(self, epochs: int, log):
        self.epochs, self.log = epochs, log

    def on_epoch_end(self, epoch, logs=None):
        self.log(epoch_line(logs, self.epochs))


class EarlyStop(Callback):
    """Ends the run when the monitored score has not improved for `patience` epochs; the best
    epoch's weights are the ones kept and tested."""

    def __init__(self, ctx, state, patience: int, monitor: str, epochs: int):
        self.ctx, self.state, self.patience, self.monitor, self.epochs = ctx, state, patience, monitor, epochs

    def on_train_begin(self, logs=None):  # a resumed run may be due already
        if self.state.history:
            self.on_epoch_end(len(self.state.history))

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.epochs and epoch - self.state.best_epoch >= self.patience:
            self.ctx.log(f"early stop: no better {self.monitor} for {self.patience} epochs; best epoch "
                         f"{self.state.best_epoch} is kept")
            self.ctx.stop_training = True


class CurvesFigure(Callback):
    """curves.png, the seed's two panels, and weights.png, the kernels' norms, when the run ends."""

    def __init__(self, ctx, state, config: dict):
        self.run, self.state, self.title = ctx.run, state, run_title(config)

    def on_train_end(self, logs=None):
        plot_curves(self.state.history, self.run.path / CURVES, title=self.title)
        plot_weights(self.state.history, self.run.path / WEIGHTS_FIGURE, title=self.title)


class MetricsWriter(Callback):
    """metrics.json (the context's metrics), written last of the run's own files: its presence
    marks the run finished."""

    def __init__(self, ctx):
        self.ctx = ctx

    def on_train_end(self, logs=None):
        self.ctx.run.write_json(METRICS, self.ctx.metrics)
