"""regulab: train CNNs on CIFAR-10 and measure what stops them overfitting.

Commands: train, plot, presets, compare, report.

Every field of `Config` is an option of `regulab train` (`--batch-size 64`), applied on top of
the chosen preset. Problems the user can fix end in one line on stderr and exit status 1;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from regulab.config import CHOICES, PRESETS, Config, config_fields, make_config, preset_description
from regulab.errors import RegulabError, TrainingStopped

# What may differ when a run is resumed: how far it goes and where it runs, not what it computes.
RESUMABLE = {"epochs", "device", "precision", "threads", "eval_batch_size"}


# Settings `compare` decides per run itself.
COMPARE_OWN = {"preset", "seed", "out", "threads"}


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
            parser.add_argument(option, action="store_const", const=True, default=None, help="off unless given")
            continue
        kind = type(field.default) if field.default is not None else str
        parser.add_argument(option, type=kind, default=None, choices=CHOICES.get(field.name),
                            metavar=None if field.name in CHOICES else kind.__name__.upper(),
                            help=f"default {field.default!r} unless the preset says otherwise")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="regulab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a preset, writing a run folder")
    train.add_argument("--preset", default="seed", help="a name from `regulab presets` (default: seed)")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    train.add_argument("--resume", metavar="RUN_DIR", type=Path,
                       help="continue an interrupted run from its last checkpoint, with its own settings")
    _add_config_options(train)

    plot = commands.add_parser("plot", help="redraw a run's curves.png from its history")
    plot.add_argument("run_dir", type=Path)

    commands.add_parser("presets", help="list the presets with a line each")

    compare = commands.add_parser("compare", help="train presets x seeds on the same split, then write report.html")
    compare.add_argument("presets", nargs="+", metavar="PRESET")
    compare.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every preset (default 1)")
    compare.add_argument("--out", type=Path, default=Path("runs/compare"), help="the comparison folder (default runs/compare)")
    compare.add_argument("--jobs", type=int, default=0, help="runs at once (default: one per core, cores split between them)")
    _add_config_options(compare, skip=COMPARE_OWN)

    report = commands.add_parser("report", help="rebuild a comparison folder's table, figures and report.html")
    report.add_argument("folder", type=Path)
    return parser


def _as_arguments(args: argparse.Namespace, skip) -> list[str]:
    """The config options given on this command line, written back as arguments for a child."""
    out = []
    for field in config_fields():
        value = getattr(args, field.name, None)
        if field.name in skip or value is None:
            continue
        out += [f"--{field.name.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return out


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
    elif args.command == "compare":
        from regulab.compare import compare
        from regulab.report import write_report

        compare(args.presets, args.seeds, args.out, args.jobs, _as_arguments(args, COMPARE_OWN))
        print(f"report: {write_report(args.out)}")
    elif args.command == "report":
        from regulab.report import write_report

        print(f"report: {write_report(args.folder)}")
    elif args.command == "train":
        from regulab.train import train

        overrides = {f.name: getattr(args, f.name) for f in config_fields() if f.name != "preset"}
        if args.resume:
            train(_resumed_config(args.resume, overrides), resume=True)
        else:
            train(make_config(args.preset, **overrides), overwrite=args.overwrite)
    return 0


def _resumed_config(run_dir: Path, overrides: dict) -> Config:
    from regulab.rundir import CONFIG, RunDir

    fixed = sorted(k for k, v in overrides.items() if v is not None and k not in RESUMABLE | {"out"})
    if fixed:
        raise RegulabError(f"--{fixed[0].replace('_', '-')} cannot change when resuming; start a new run to change it")
    saved = RunDir(run_dir).read_json(CONFIG)
    try:
        values = {**saved, **{k: v for k, v in overrides.items() if v is not None}, "out": str(run_dir)}
        return Config(**values).validate()
    except TypeError as exc:
        raise RegulabError(f"{run_dir / CONFIG} is not a regulab config ({exc}); start a new run") from None


if __name__ == "__main__":
    sys.exit(main())
