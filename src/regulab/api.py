"""regulab from Python: the same engine as the command line, shaped for a notebook.

    import regulab
    run = regulab.train("seed", epochs=5, data="cifar10-mini")   # any train option as a keyword
    run.history["val_acc"]                                       # a dict of lists, as Keras's History
    fig = run.plot(); run.model; run.evaluate(); run.predict(["cat.jpg"])
    run = regulab.train("seed", data=(x_train, y_train), callbacks=[MyCallback()])  # arrays, as model.fit took them
    study = regulab.compare(["seed-noreg", "seed-dropout"], seeds=3, baseline="seed-noreg", margin=0.005)
    study                                                        # its table, rendered in a notebook

Keywords are the command line's options with underscores (`batch_size=64`); a wrong one is the
same one-line error, with the nearest name.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from regulab.config import (
    PRESETS,
    SWEEP_OWN,
    Strength,
    checked_settings,
    config_fields,
    default_out,
    make_config,
    preset_description,
)
from regulab.errors import RegulabError, TrainingStopped, unknown_name
from regulab.models import register_model
from regulab.regularizers import Regularizer, register_regularizer
from regulab.rundir import CONFIG, HISTORY_JSON, METRICS, RunDir

__all__ = ["Factorial", "Regularizer", "Run", "Strength", "Study", "Tuning", "compare", "factorial", "load", "presets",
           "register_model", "register_regularizer", "sweep", "train", "tune"]


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def _show_figures_inline() -> None:
    """Have IPython show a matplotlib `Figure` made without pyplot as a PNG, as it shows pyplot's
    (its display formatter, registered once; nothing outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    from matplotlib.figure import Figure

    from regulab.figures import png_bytes

    png = shell.display_formatter.formatters["image/png"]
    if Figure not in png.type_printers:
        png.for_type(Figure, png_bytes)


class Run:
    """A run folder, read back: `config`, `history` (a dict of lists, one entry per epoch, as
    Keras's `history.history`), `metrics` (empty until the run has finished) and `path`."""

    def __init__(self, path: str | os.PathLike):
        folder = RunDir(path)
        folder.require_started()
        self.path = folder.path
        self.config = folder.read_json(CONFIG)
        rows = folder.read_json(HISTORY_JSON) if (folder.path / HISTORY_JSON).is_file() else []
        self.history = {key: [row.get(key) for row in rows] for key in dict.fromkeys(k for row in rows for k in row)}
        self.metrics = folder.read_json(METRICS) if folder.finished() else {}

    def plot(self):
        """The seed's two-panel figure (loss and accuracy, train and validation, per epoch) as a
        matplotlib `Figure`: a notebook shows it inline, `fig.savefig(...)` writes it."""
        from matplotlib.figure import Figure

        from regulab.figures import draw_curves, run_title

        _show_figures_inline()
        rows = [dict(zip(self.history, values)) for values in zip(*self.history.values())]
        figure = Figure(figsize=(10, 5), layout="constrained")
        return draw_curves(figure, rows, run_title(self.config))

    @property
    def model(self):
        """The trained network, an `nn.Module` in eval mode with the run's best weights (fp32, CPU)."""
        from regulab.trained import TrainedRun

        return TrainedRun.load(self.path).model

    def evaluate(self, tta: int | None = None, data: str | None = None) -> dict:
        """The test set: accuracy, loss, ECE, per-class scores, confusion (and the figures in the folder)."""
        from regulab.trained import evaluate_run

        return evaluate_run(self.path, data, tta)

    def predict(self, images, top: int = 3) -> list[dict]:
        """Top classes of image files, folders, PIL images or uint8 arrays (one, or a list)."""
        from regulab.trained import predict

        return predict(self.path, images if isinstance(images, list) else [images], top)

    def __repr__(self) -> str:
        done = f"test_acc {self.metrics['test_acc']:.4f}" if self.metrics else "not finished"
        return f"<regulab.Run {self.path}: {self.config.get('preset')}, {len(self.history.get('epoch', []))} epochs, {done}>"


class Study:
    """A comparison or sweep folder: `rows` (one per group, with n, means and 95% intervals),
    `path`, and `report` (its report.html). Shown in a notebook as its summary table."""

    def __init__(self, path: str | os.PathLike):
        from regulab.analysis import summarize
        from regulab.study import load_study

        self.path = Path(path)
        manifest, self._runs = load_study(self.path)
        self.rows = summarize(manifest, self._runs)
        self.report = self.path / "report.html"

    def runs(self, group: str) -> list[Run]:
        """The finished runs of one group (its label, as in the table), in seed order."""
        found = [Run(r["path"]) for r in self._runs if r["group"] == group]
        if not found and group not in {row["group"] for row in self.rows}:
            raise unknown_name("group", group, [row["group"] for row in self.rows], "the table's first column names them")
        return found

    def _repr_html_(self) -> str:
        from regulab.report import html_tables

        return html_tables(self.rows)

    def __repr__(self) -> str:
        return (self.path / "summary.md").read_text() if (self.path / "summary.md").is_file() else f"<regulab.Study {self.path}>"


def _options(options: dict, allowed=None) -> dict:
    """Keyword options checked by name and type, as the command line checks its options."""
    named = {k: v for k, v in options.items() if v is not None}
    for key in named:
        if allowed is not None and key in {f.name for f in config_fields()} and key not in allowed:
            raise RegulabError(f"{key} is set per run by compare and sweep; drop it")
    return checked_settings(named, "option", "help(regulab.train) lists them")


def train(preset: str = "seed", *, resume: str | os.PathLike | None = None, overwrite: bool = False,
          progress: bool | None = None, callbacks: list | None = None, data=None, **options) -> Run:
    """Train `preset` with any train option as a keyword (`epochs=5`, `data="cifar10-mini"`,
    `out="runs/mine"`), write the run folder, and return it as a `Run`. `resume=RUN_DIR`
    continues an interrupted run. Interrupting (the notebook's stop button, Ctrl-C) stops at the
    next step with the finished epochs kept, and returns the run so far.

    `data` is what --data takes (a name, an archive, a folder), or arrays as the seed's
    `model.fit(x_train, y_train)` took them: `(x_train, y_train)` or `(x_train, y_train, x_test,
    y_test)`, uint8 images NHWC or NCHW and integer labels (without a test set one is held out, as
    for a folder). `callbacks` are objects with any of Keras's `on_train_begin(logs)`,
    `on_epoch_end(epoch, logs)` and `on_train_end(logs)`, called after regulab's own.

    Options:
    {options}
    """
    from regulab import data as data_lib
    from regulab.training import train as train_run

    arrays = data if isinstance(data, (tuple, list)) else None
    if arrays is not None and len(arrays) not in (2, 4):
        raise RegulabError(f"data= takes (x_train, y_train) or (x_train, y_train, x_test, y_test), not {len(arrays)} arrays")
    named = {**options, "data": data_lib.ARRAYS if arrays is not None else data}
    if resume is not None:
        cfg = RunDir(resume).resumed_config(_options({**options, "data": None if arrays is not None else data}))
    else:
        cfg = default_out(make_config(preset, **_options(named)))
    splits = None
    if arrays is not None:
        raw = data_lib.from_arrays(*arrays, test_fraction=cfg.test_fraction, split_seed=cfg.split_seed)
        splits = data_lib.prepare(raw, cfg.val_fraction, data_lib.split_seed_of(cfg), cfg.train_fraction)
    try:
        train_run(cfg, splits=splits, overwrite=overwrite, resume=resume is not None, callbacks=callbacks or (),
                  progress=_in_notebook() if progress is None else progress)
    except TrainingStopped as stop:
        print(f"regulab: {stop}; continue with regulab.train(resume={str(stop.run_dir)!r})",
              file=sys.stderr)
        return Run(stop.run_dir)
    return Run(cfg.out)


def load(path: str | os.PathLike) -> Run:
    """A run folder that `train` wrote (finished or not), read back as a `Run`."""
    return Run(path)


def compare(presets: list[str], *, seeds: int = 1, out: str | os.PathLike = "runs/compare", baseline: str | None = None,
            runs_dir: str | os.PathLike | None = None, jobs: int = 0, threads: int = 0, ray: str | None = None,
            overwrite: bool = False, max_seeds: int = 0, seeds_per_round: int = 2, margin: float | None = None,
            primary: str = "test_acc", correction: str = "holm", **options) -> Study:
    """Train every preset with seeds 0..seeds-1 on the same split (finished runs skipped), write
    the report, and return the `Study`; the keywords as `regulab compare`'s options (`overwrite`
    replaces the plan of a folder that holds one of other settings)."""
    return sweep(presets, {}, seeds=seeds, out=out, baseline=baseline, runs_dir=runs_dir, jobs=jobs, threads=threads,
                 ray=ray, overwrite=overwrite, max_seeds=max_seeds, seeds_per_round=seeds_per_round, margin=margin,
                 primary=primary, correction=correction, **options)


def sweep(presets: str | list[str], grid: dict[str, list], *, seeds: int = 1, out: str | os.PathLike = "runs/sweep",
          baseline: str | None = None, runs_dir: str | os.PathLike | None = None, jobs: int = 0, threads: int = 0,
          ray: str | None = None, overwrite: bool = False, max_seeds: int = 0, seeds_per_round: int = 2,
          margin: float | None = None, primary: str = "test_acc", correction: str = "holm", retries: int = 1,
          **options) -> Study:
    """Train presets x every combination of `grid` (`{"l2": [0, 1e-4, 1e-3]}`) x seeds, write the
    report, and return the `Study`; the keywords as `regulab sweep`'s options (`max_seeds` adds
    seeds where a comparison with `baseline` is undecided; `margin` gives the equivalence verdict)."""
    from regulab.analysis import Design
    from regulab.study import parse_grid
    from regulab.sweeps import sweep_and_report

    design = Design(seeds, max_seeds, seeds_per_round, margin, primary, correction)
    presets = [presets] if isinstance(presets, str) else list(presets)
    grid = parse_grid([f"{k}={','.join(str(v).lower() if isinstance(v, bool) else str(v) for v in values)}"
                       for k, values in grid.items()])
    fixed = _options(options, allowed={f.name for f in config_fields()} - set(SWEEP_OWN))
    sweep_and_report(presets, Path(out), grid, seeds, fixed, jobs=jobs, threads=threads,
                     runs_dir=Path(runs_dir) if runs_dir else None, baseline=baseline, ray=ray, overwrite=overwrite,
                     design=design, retries=retries)
    return Study(out)


class Factorial:
    """A factorial folder: `design` (factors, generators, resolution, aliases), `effects(measure)`
    (one row per effect: estimate, intervals, adjusted p-values, verdict), `words(measure)` (the
    paragraph in plain words), `gain(measure)`, `check(measure)` (the corners outside the
    fraction), `path` and `report`. Shown in a notebook as its test-accuracy effects."""

    def __init__(self, path: str | os.PathLike):
        from regulab.effects_report import factorial_result

        self.path = Path(path)
        self.result = factorial_result(self.path)
        self.design = self.result["design"]
        self.report = self.path / "report.html"

    def effects(self, measure: str = "test_acc") -> list[dict]:
        from regulab.effects_report import effect_table

        return effect_table(self.result, self._measure(measure))

    def words(self, measure: str = "test_acc") -> str:
        from regulab.effects_report import words

        return words(self.result, self._measure(measure))

    def gain(self, measure: str = "test_acc") -> dict:
        return self.result["measures"][self._measure(measure)]["gain"]

    def check(self, measure: str = "test_acc") -> list[dict]:
        return self.result["measures"][self._measure(measure)]["check"]

    def _measure(self, key: str) -> str:
        if key not in self.result["measures"]:
            raise unknown_name("measure", key, self.result["measures"], "the measures every run of this study has")
        return key

    def _repr_html_(self) -> str:
        from regulab.effects_report import effects_rows
        from regulab.report import _table

        return f"<p>{self.words()}</p>" + _table(*effects_rows(self.result, "test_acc"))

    def __repr__(self) -> str:
        summary = self.path / "summary.md"
        return summary.read_text() if summary.is_file() else f"<regulab.Factorial {self.path}>"


def factorial(presets: str | list[str], *, factors: dict[str, dict[str, tuple]] | None = None, fraction: str | None = None,
              allow_resolution_iii: bool = False, seeds: int = 1, out: str | os.PathLike = "runs/factorial",
              runs_dir: str | os.PathLike | None = None, max_runs: int = 64, confirmed: bool = False, jobs: int = 0,
              threads: int = 0, overwrite: bool = False, max_seeds: int = 0, seeds_per_round: int = 1,
              margin: float | None = None, primary: str = "test_acc", correction: str = "holm", **options) -> Factorial:
    """Take a combination apart: train a two-level factorial design and return the `Factorial`.
    `presets`: the low and the high preset (the factors are the settings in which they differ),
    or one preset with `factors` by hand, {name: {setting: (low, high), ...}}, as
    `{"bn": {"batch_norm": (False, True)}}`. `fraction` "full", "1/2", ... (default: the
    smallest of resolution V); the other keywords as `regulab factorial`'s options."""
    from regulab.analysis import Design
    from regulab.designs import Factor, parse_fraction
    from regulab.sweeps import factorial_and_report, factorial_plan

    presets = [presets] if isinstance(presets, str) else list(presets)
    fixed = _options(options, allowed={f.name for f in config_fields()} - set(SWEEP_OWN))  # a regularizer file first
    # Each level's settings checked by name and type, as a keyword option is.
    hand = [Factor(name, _options({k: v[0] for k, v in levels.items()}), _options({k: v[1] for k, v in levels.items()}))
            for name, levels in (factors or {}).items()]
    fractional = factorial_plan(presets, hand, parse_fraction(fraction), allow_resolution_iii, fixed)
    design = Design(seeds, max_seeds, seeds_per_round, margin, primary, correction)
    factorial_and_report(presets, Path(out), fractional, seeds, fixed, max_runs=max_runs, confirmed=confirmed, jobs=jobs,
                         threads=threads, runs_dir=Path(runs_dir) if runs_dir else None, overwrite=overwrite, design=design)
    return Factorial(out)


class Tuning:
    """A tune folder: `chosen` (the candidate's label) and `chosen_point` (its settings),
    `confidence_set` (the candidates that cannot be told from the best), `left_at`, `scores` (the
    chosen one's) and `gains` (over the baseline; empty when the baseline is chosen), each
    {measure: {"race": interval, "fresh": interval}}, `runs`, `path`, `summary` and `figure`."""

    def __init__(self, path: str | os.PathLike):
        from regulab.tuning import FIGURE, SUMMARY, TUNE_JSON

        self.path = Path(path)
        if not (self.path / TUNE_JSON).is_file():
            raise RegulabError(f"{self.path} holds no {TUNE_JSON}; run regulab.tune(..., out={str(self.path)!r}) first")
        self.result = json.loads((self.path / TUNE_JSON).read_text())
        for key in ("chosen", "chosen_point", "confidence_set", "left_at", "scores", "gains", "runs"):
            setattr(self, key, self.result[key])
        self.summary, self.figure = (self.path / SUMMARY).read_text(), self.path / FIGURE

    def _repr_markdown_(self) -> str:
        return self.summary


def tune(preset: str, space: dict[str, list], *, out: str | os.PathLike = "runs/tune", first_look: int = 3,
         max_seeds: int = 10, fresh_seeds: int = 3, max_runs: int = 0, alpha: float = 0.05,
         primary: str = "best_val_acc", runs_dir: str | os.PathLike | None = None, jobs: int = 0, threads: int = 0,
         overwrite: bool = False, **options) -> Tuning:
    """Choose the strength of a regularizer by racing the candidates of `space` ({setting:
    [values]}, one or two settings) on `preset` over paired seeds, then measure the choice on
    fresh seeds (see `regulab tune --help`); any other keyword is a setting every run shares."""
    from regulab.tuning import TunePlan, check_space
    from regulab.tuning import tune as tune_runs

    fixed = _options(options, allowed={f.name for f in config_fields()} - set(SWEEP_OWN))
    checked = check_space({name: [_options({name: v})[name] for v in values] for name, values in space.items()})
    tune_runs(preset, checked, Path(out), fixed, TunePlan(first_look, max_seeds, fresh_seeds, max_runs, alpha, primary),
              jobs=jobs, threads=threads, runs_dir=Path(runs_dir) if runs_dir else None, overwrite=overwrite)
    return Tuning(out)


def presets() -> dict[str, str]:
    """The preset names and what each one is."""
    return {name: preset_description(name) for name in PRESETS}


def _option_docs() -> str:
    lines = []
    for field in config_fields():
        if field.name in ("preset", "model_file_sha256", "regularizer_file_sha256"):
            continue
        lines.append(f"    {field.name} (default {field.default!r}): {field.metadata['help']}")
    return "\n".join(lines)


train.__doc__ = train.__doc__.replace("    {options}", _option_docs())
