"""regulab: train CNNs on CIFAR-10 and measure what stops them overfitting.

Commands: train, plot, presets, compare, sweep, report, evaluate, predict, export.

Every field of `Config` is an option of `regulab train` (`--batch-size 64`), applied on top of
the chosen preset. Problems the user can fix end in one line on stderr and exit status 1;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from regulab.config import CHOICES, PRESETS, SWEEP_OWN, Config, config_fields, make_config, preset_description, read_toml
from regulab.errors import RegulabError, TrainingStopped

# What may differ when a run is resumed: how far it goes, where it runs and logs, not what it computes.
RESUMABLE = {"epochs", "device", "precision", "threads", "eval_batch_size", "tensorboard", "mlflow"}
TRACKERS = {"tensorboard": "DIR", "mlflow": "URI"}  # options that may be given without a value




class Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line that suggests the nearest option."""

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            from difflib import get_close_matches

            # Unknown options surface at the top parser: look through the subcommands' too.
            parsers = [self] + [p for a in self._actions if isinstance(a, argparse._SubParsersAction)
                                for p in a.choices.values()]
            known = [s for p in parsers for action in p._actions for s in action.option_strings]
            wrong = message.split(":", 1)[1].split()[0]
            near = get_close_matches(wrong.split("=")[0], known, n=1)
            message += f"; did you mean {near[0]}?" if near else ""
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _add_config_options(parser: argparse.ArgumentParser, skip=("preset",)) -> None:
    for field in config_fields():
        if field.name in skip:
            continue
        option = f"--{field.name.replace('_', '-')}"
        if isinstance(field.default, bool):
            parser.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                                help="on with the option, off with --no-...; default: the preset's")
            continue
        kind = type(field.default) if field.default is not None else str
        if field.name in TRACKERS:  # given alone, the option means its default place
            parser.add_argument(option, nargs="?", const="auto", default=None, metavar=TRACKERS[field.name],
                                help="log there too ('auto' or nothing: the default place; needs regulab[tracking])")
            continue
        parser.add_argument(option, type=kind, default=None, choices=CHOICES.get(field.name),
                            metavar=None if field.name in CHOICES else kind.__name__.upper(),
                            help=f"default {field.default!r} unless the preset says otherwise")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="regulab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a preset, writing a run folder")
    train.add_argument("--preset", help="a name from `regulab presets` (default: the --config file's, else seed)")
    train.add_argument("--config", type=Path, metavar="TOML", help="settings from a TOML file, such as a run's config.toml; "
                       "options given beside it win")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    train.add_argument("--resume", metavar="RUN_DIR", type=Path,
                       help="continue an interrupted run from its last checkpoint, with its own settings")
    _add_config_options(train)

    plot = commands.add_parser("plot", help="redraw a run's curves.png from its history")
    plot.add_argument("run_dir", type=Path)

    commands.add_parser("presets", help="list the presets with a line each")

    compare = commands.add_parser("compare", help="train presets x seeds on the same split, then write report.html")
    sweep = commands.add_parser("sweep", help="train presets x a grid of settings x seeds, then write report.html")
    sweep.add_argument("--grid", action="append", default=[], metavar="SETTING=V1,V2",
                       help="values of one train option to try (repeat for a product), e.g. --grid l2=0,1e-4,1e-3")
    for parser_, default in ((compare, "runs/compare"), (sweep, "runs/sweep")):
        parser_.add_argument("presets", nargs="+", metavar="PRESET")
        parser_.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every preset (default 1)")
        parser_.add_argument("--out", type=Path, default=Path(default), help=f"the report's folder (default {default})")
        parser_.add_argument("--runs-dir", type=Path, help="where the runs live (default OUT/runs); share one between "
                             "sweeps so a training they have in common runs once")
        parser_.add_argument("--baseline", metavar="NAME", help="compare every group with this preset (or grid value, "
                             "such as l2=0) over matched seeds: paired differences with 95%% intervals")
        parser_.add_argument("--jobs", type=int, default=0, help="runs at once (default: one per core, cores split between them)")
        parser_.add_argument("--threads", type=int, default=0, help="threads per run (default: the cores / --jobs)")
        parser_.add_argument("--ray", metavar="ADDRESS", help="spread the runs over a Ray cluster ('local' starts one "
                             "here), --threads CPUs reserved per run; needs regulab[ray] and a folder every node sees")
        _add_config_options(parser_, skip=SWEEP_OWN)

    report = commands.add_parser("report", help="rebuild a comparison folder's table, figures and report.html")
    report.add_argument("folder", type=Path)

    evaluate = commands.add_parser("evaluate", help="a finished run on the test set: per-class table, confusion matrix, mistakes")
    evaluate.add_argument("run_dir", type=Path)
    evaluate.add_argument("--data", help="the CIFAR-10 to test on (default: the run's own)")
    evaluate.add_argument("--tta", type=int, choices=(0, 1, 2), help="test-time augmentation (default: the run's own)")

    predict = commands.add_parser("predict", help="top classes of your own images (any size and common format)")
    predict.add_argument("run_dir", type=Path)
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    predict.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    predict.add_argument("--json", action="store_true", help="print JSON for machines")

    export = commands.add_parser("export", help="write the run's model as ONNX, with its input normalization beside it")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=("onnx",), default="onnx")
    export.add_argument("--out", type=Path, help="default RUN_DIR/model.onnx")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TrainingStopped as exc:
        print(f"regulab: {exc}", file=sys.stderr)
        return 130
    except RegulabError as exc:
        if args.debug:
            raise
        print(f"regulab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("regulab: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "presets":
        width = max(map(len, PRESETS))
        for name in PRESETS:
            print(f"{name:<{width}}  {preset_description(name)}")
    elif args.command == "plot":
        from regulab.report import plot_curves, run_title
        from regulab.rundir import CONFIG, CURVES, HISTORY_JSON, RunDir

        run = RunDir(args.run_dir)
        history, config = run.read_json(HISTORY_JSON), run.read_json(CONFIG)
        if not history:
            raise RegulabError(f"{run.path} has an empty history; train at least one epoch first")
        path = plot_curves(history, run.path / CURVES, title=run_title(config))
        print(path)
    elif args.command in ("compare", "sweep"):
        from regulab.report import write_report
        from regulab.sweep import parse_grid, sweep

        grid = parse_grid(args.grid) if args.command == "sweep" else {}
        given = {f.name: getattr(args, f.name) for f in config_fields()
                 if f.name not in SWEEP_OWN and getattr(args, f.name, None) is not None}
        sweep(args.presets, args.out, grid, args.seeds, given, jobs=args.jobs, threads=args.threads,
              runs_dir=args.runs_dir, baseline=args.baseline, ray=args.ray)
        print(f"report: {write_report(args.out)}")
    elif args.command == "report":
        from regulab.report import write_report

        print(f"report: {write_report(args.folder)}")
    elif args.command == "evaluate":
        from regulab.trained import CONFUSION, EVALUATION, MISTAKES, evaluate_run, evaluation_table

        result = evaluate_run(args.run_dir, args.data, args.tta)
        print(evaluation_table(result))
        print(f"written to {args.run_dir}: {EVALUATION}, {CONFUSION}, {MISTAKES}")
    elif args.command == "predict":
        import json

        from regulab.trained import predict, prediction_lines

        predictions = predict(args.run_dir, args.images, args.top)
        print(json.dumps(predictions, indent=2) if args.json else prediction_lines(predictions))
    elif args.command == "export":
        from regulab.trained import export_onnx

        card = export_onnx(args.run_dir, args.out)
        target = args.out or args.run_dir / card["model"]
        print(f"wrote {target} and {target.with_suffix('.json')} (input normalization, classes)")
        check = card["check"]
        print(check if isinstance(check, str) else f"onnxruntime vs PyTorch on {check['images']} test images: "
              f"largest logit difference {check['max_abs_logit_difference']:.2e}, same top class {check['same_top_class']:.2%}")
    elif args.command == "train":
        from regulab.train import train

        overrides = {f.name: getattr(args, f.name) for f in config_fields() if f.name != "preset"}
        if args.resume:
            if args.config or args.preset:
                raise RegulabError("--resume takes the run's own settings; drop --config and --preset")
            train(_resumed_config(args.resume, overrides), resume=True)
        else:
            from_file = read_toml(args.config) if args.config else {}
            file_preset = from_file.pop("preset", None)
            preset = args.preset or file_preset or "seed"
            given = {k: v for k, v in overrides.items() if v is not None}
            train(make_config(preset, **{**from_file, **given}), overwrite=args.overwrite)
        import torch.distributed as dist

        if dist.is_initialized():  # under torchrun: leave the group cleanly
            dist.destroy_process_group()
    return 0


def _resumed_config(run_dir: Path, overrides: dict) -> Config:
    from regulab.rundir import RunDir

    fixed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE | {"out"})
    if fixed:
        raise RegulabError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; start a new run to change it")
    saved = RunDir(run_dir).read_config()
    return dataclasses.replace(saved, **{k: v for k, v in overrides.items() if v is not None}, out=str(run_dir)).validate()


if __name__ == "__main__":
    sys.exit(main())
