"""regulab: train CNNs on CIFAR-10 (or your own images) and measure what stops them overfitting.

Commands: train, plot, presets, compare, sweep, tune, factorial, report, evaluate, predict, export, data.

Every field of `Config` is an option of `regulab train` (`--batch-size 64`), applied on top of
the chosen preset. Problems the user can fix end in one line on stderr and exit status 1;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from regulab import __version__
from regulab.config import (
    CHOICES,
    PRESETS,
    SWEEP_OWN,
    config_fields,
    config_from,
    import_user_file,
    make_config,
    preset_description,
    to_toml,
)
from regulab.errors import DamagedFile, RegulabError, TrainingStopped

TRACKERS = {"tensorboard": "DIR", "mlflow": "URI"}  # options that may be given without a value
# The settings that decide which images a run sees and how they are read: `regulab data` takes them too.
DATA_SETTINGS = ("image_size", "labels", "test_fraction", "split_seed", "skip_bad")




class Parser(argparse.ArgumentParser):
    """argparse without abbreviations (`--seed` must never be read as `--seeds`), where a usage
    mistake is one line that suggests the nearest option, or says where an option belongs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def parse_args(self, args=None, namespace=None):
        self.argv = list(sys.argv[1:] if args is None else args)  # to find the command an error belongs to
        return super().parse_args(args, namespace)

    def error(self, message):
        if message.startswith("unrecognized arguments:"):
            from difflib import get_close_matches

            wrong = message.split(":", 1)[1].split()[0].split("=")[0]
            top = [s for action in TOP_PARSER._actions for s in action.option_strings]
            if wrong in top:
                message += f"; {wrong} is an option of regulab itself: put it before the command (regulab {wrong} COMMAND ...)"
            else:
                # Unknown options surface at the top parser: suggest from the command's own.
                commands = next(a for a in TOP_PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
                command = next((word for word in getattr(TOP_PARSER, "argv", []) if word in commands), None)
                parsers = [commands[command]] if command else list(commands.values())
                known = [s for p in parsers for action in p._actions for s in action.option_strings]
                near = get_close_matches(wrong, known, n=1)
                message += f"; did you mean {near[0]}?" if near else ""
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _add_config_options(parser: argparse.ArgumentParser, skip=("preset", "model_file_sha256", "regularizer_file_sha256"),
                        only=None, title: str = "settings (each overrides the preset's value)") -> None:
    """Every `Config` setting (or those in `only`) as an option, with the help text the setting carries."""
    group = parser.add_argument_group(title)
    for field in config_fields():
        if field.name in skip or (only is not None and field.name not in only):
            continue
        option = f"--{field.name.replace('_', '-')}"
        text = field.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if isinstance(field.default, bool):
            group.add_argument(option, action=argparse.BooleanOptionalAction, default=None,
                               help=f"{text} (--no-{option[2:]} turns it off)")
            continue
        kind = type(field.default) if field.default is not None else str
        if field.name in TRACKERS:  # given alone, the option means its default place
            group.add_argument(option, nargs="?", const="auto", default=None, metavar=TRACKERS[field.name],
                               help=f"{text}; needs regulab[tracking]")
            continue
        shown = "" if field.default in (None, "") else f" (default {field.default})"
        group.add_argument(option, type=kind, default=None, choices=CHOICES.get(field.name),
                           metavar=None if field.name in CHOICES else kind.__name__.upper(), help=text + shown)


def _add_decision_options(parser: argparse.ArgumentParser, default: str = "") -> None:
    """How paired differences are judged: a margin, the adjustment over a table, the primary measure."""
    from regulab.measures import CORRECTIONS, KEYS

    parser.add_argument("--margin", type=float, metavar="M", help="equivalence margin in the measure's own units "
                        "(0.005 = half a point of accuracy): a paired row is then better, worse, equivalent (its 90%% "
                        f"interval inside ±M, TOST) or undecided {default}".rstrip())
    parser.add_argument("--correction", choices=CORRECTIONS, default=None,
                        help=f"adjustment for the table's many comparisons (default holm) {default}".rstrip())
    parser.add_argument("--primary", choices=KEYS, default=None,
                        help=f"the measure adaptive seeds decide on (default test_acc) {default}".rstrip())
    parser.add_argument("--pair-on", choices=("machine", "device"), default=None,
                        help="what a pair's two runs must share besides the seed and precision: the machine (default: "
                        "the CPU model or GPU each run recorded), or the device type only (the rule before regulab "
                        f"recorded machines) {default}".rstrip())


def build_parser() -> argparse.ArgumentParser:
    global TOP_PARSER
    TOP_PARSER = parser = Parser(prog="regulab", description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=f"regulab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=summary, description=f"{summary}. {description}")

    train = command("train", "train a preset, writing a run folder",
                    "A run is the preset's values with any option given here on top. It prints a Keras-like line per "
                    "epoch, writes config, history, curves and weights into the run folder after every epoch, and "
                    "ends by scoring the test set once.")
    train.add_argument("--preset", help="a name from `regulab presets` (default: the --config file's, else seed)")
    train.add_argument("--config", type=Path, metavar="TOML", help="settings from a TOML file, such as a run's config.toml; "
                       "options given beside it win")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    train.add_argument("--resume", metavar="RUN_DIR", type=Path,
                       help="continue an interrupted run from its last checkpoint, with its own settings")
    train.add_argument("--dry-run", action="store_true", help="print the resolved settings and the model's layers and "
                       "parameter count, then stop")
    _add_config_options(train)

    plot = command("plot", "redraw a run's curves.png from its history", "Loss and accuracy, train and validation.")
    plot.add_argument("run_dir", type=Path, help="a run folder (finished or not)")

    presets = command("presets", "list the presets, or show one's settings",
                      "Without a name, one line per preset; with one, every setting it resolves to (as a TOML file "
                      "`regulab train --config` reads).")
    presets.add_argument("name", nargs="?", help="a preset whose resolved settings to print")

    compare = command("compare", "train presets x seeds on the same split, then write report.html",
                      "Every preset with seeds 0..N-1, the same split and data order for each seed; the report gives "
                      "per preset n, mean, standard deviation and a 95%% interval, and with --baseline the paired "
                      "differences. Finished runs are skipped and interrupted ones resumed: the same command continues.")
    sweep = command("sweep", "train presets x a grid of settings x seeds, then write report.html",
                    "As compare, over every combination of the --grid values; any train option can be an axis. "
                    "A run is identified by its resolved settings, so one that two sweeps share (through --runs-dir) "
                    "is trained once.")
    sweep.add_argument("--grid", action="append", default=[], metavar="SETTING=V1,V2",
                       help="values of one train option to try (repeat for a product), e.g. --grid l2=0,1e-4,1e-3")
    for parser_, default in ((compare, "runs/compare"), (sweep, "runs/sweep")):
        parser_.add_argument("presets", nargs="+", metavar="PRESET", help="names from `regulab presets`")
        parser_.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 for every group (default 1)")
        parser_.add_argument("--out", type=Path, default=Path(default), help=f"the report's folder (default {default})")
        parser_.add_argument("--runs-dir", type=Path, help="where the runs live (default OUT/runs); share one between "
                             "sweeps so a training they have in common runs once, even at the same time")
        parser_.add_argument("--baseline", metavar="NAME", help="compare every group with this preset (or grid value, "
                             "such as l2=0) over matched seeds: paired differences with 95%% intervals")
        parser_.add_argument("--max-seeds", type=int, default=0, metavar="K", help="adaptive seeds: after --seeds, add "
                             "rounds of seeds to the groups whose verdict on --primary against --baseline is still "
                             "undecided, until each is decided or has K (error rate held at 5%% over the looks)")
        parser_.add_argument("--seeds-per-round", type=int, default=2, metavar="R",
                             help="seeds each undecided group gets per adaptive round (default 2)")
        _add_decision_options(parser_)
        parser_.add_argument("--overwrite", action="store_true", help="replace the plan of a folder that holds one of "
                             "other settings (its finished runs stay in the pool and are reused where they match)")
        parser_.add_argument("--jobs", type=int, default=0, help="runs at once (default: one per core, cores split between them)")
        parser_.add_argument("--threads", type=int, default=0, help="threads per run (default: the cores / --jobs)")
        parser_.add_argument("--retries", type=int, default=1, metavar="N", help="times a run killed by a signal (or "
                             "lost with its Ray node) is started again from its checkpoint (default 1)")
        parser_.add_argument("--ray", metavar="ADDRESS", help="spread the runs over a Ray cluster ('local' starts one "
                             "here), --threads CPUs reserved per run; needs regulab[ray] and a folder every node sees")
        _add_config_options(parser_, skip=SWEEP_OWN)

    from regulab.measures import KEYS

    tune = command("tune", "choose a regularizer's strength by racing candidates over paired seeds",
                   "Every candidate of --space still in the race trains on the next seed, with the baseline (the "
                   "preset with the tuned settings off); from --first-look seeds on, a candidate leaves when the best "
                   "so far is shown better than it (a one-sided paired t test, Bonferroni over the candidates, Pocock "
                   "over the looks). The candidates left are those that cannot be told from the best. The chosen one "
                   "and the baseline then train on --fresh-seeds seeds the race never used, so the report gives the "
                   "gain measured where nothing was chosen beside the race's own, inflated, estimate.")
    tune.add_argument("preset", metavar="PRESET", help="the preset whose regularizer strength is tuned")
    tune.add_argument("--space", action="append", default=[], required=True, metavar="SETTING=VALUES",
                      help="a setting and its candidates, V1,V2,... or LOW:HIGH or LOW:HIGH:log (--points values); "
                      "give --space twice to tune two settings together")
    tune.add_argument("--points", type=int, default=6, help="values of a LOW:HIGH range (default 6)")
    tune.add_argument("--first-look", type=int, default=3, metavar="N", help="seeds before the first look (default 3)")
    tune.add_argument("--max-seeds", type=int, default=10, metavar="K", help="seeds at most in the race (default 10)")
    tune.add_argument("--fresh-seeds", type=int, default=3, metavar="F", help="seeds after the race for the chosen "
                      "candidate and the baseline (default 3)")
    tune.add_argument("--max-runs", type=int, default=0, metavar="N", help="trainings at most, the fresh ones included "
                      "(default: as many as the race needs)")
    tune.add_argument("--alpha", type=float, default=0.05, help="the chance of dropping the best candidate (default 0.05)")
    tune.add_argument("--primary", default="best_val_acc", choices=[k for k in KEYS if not k.startswith("test")],
                      help="what the race compares (default best_val_acc; never the test set, which judges the choice)")
    tune.add_argument("--out", type=Path, default=Path("runs/tune"), help="the report's folder (default runs/tune)")
    tune.add_argument("--runs-dir", type=Path, help="where the runs live (default OUT/runs)")
    tune.add_argument("--overwrite", action="store_true", help="replace the plan of a folder that holds another study")
    tune.add_argument("--jobs", type=int, default=0, help="runs at once (default: one per core)")
    tune.add_argument("--threads", type=int, default=0, help="threads per run (default: the cores / --jobs)")
    _add_config_options(tune, skip=SWEEP_OWN, title="settings every run shares")

    factorial = command("factorial", "take a combination apart: a two-level factorial design, then report.html",
                        "With two presets, the factors are the settings in which they differ (those that act together, "
                        "such as the two dropout rates or the learning rate with its schedule, kept as one); with one "
                        "preset, give each factor with --factor. A full 2^k design, or a regular fraction with its "
                        "generators, resolution and aliases printed; every cell of a seed is one block (the same split, "
                        "initial weights and data order). The report gives every main effect and estimable two-factor "
                        "interaction with its 95%% interval, adjusted p-value and verdict. Finished runs are reused.")
    factorial.add_argument("presets", nargs="+", metavar="PRESET", help="the low preset and the high one (or one, with --factor)")
    factorial.add_argument("--factor", action="append", default=[], metavar="NAME=SETTING:LOW/HIGH",
                           help="a factor by hand, e.g. --factor bn=batch_norm:false/true; give a NAME again to add a "
                           "setting to the same factor (--factor lr=lr:1e-4/1e-3 --factor lr=schedule:constant/cosine)")
    factorial.add_argument("--fraction", metavar="F", help="full, 1/2, 1/4, ... (default: the smallest fraction of "
                           "resolution V, where main effects and two-factor interactions are free of each other)")
    factorial.add_argument("--allow-resolution", choices=("III",), metavar="III",
                           help="accept a resolution III fraction, whose main effects are aliased with two-factor interactions")
    factorial.add_argument("--seeds", type=int, default=1, help="seed blocks 0..N-1 (default 1; intervals need 2)")
    factorial.add_argument("--max-seeds", type=int, default=0, metavar="K", help="adaptive: after --seeds, add rounds of seed "
                           "blocks while a main effect on --primary is undecided, up to K (error held at 5%% over the looks)")
    factorial.add_argument("--seeds-per-round", type=int, default=1, metavar="R", help="blocks per adaptive round (default 1)")
    factorial.add_argument("--out", type=Path, default=Path("runs/factorial"),
                           help="the report's folder (default runs/factorial)")
    factorial.add_argument("--runs-dir", type=Path, help="where the runs live (default OUT/runs); share one with other "
                           "studies so the cells they hold are reused")
    factorial.add_argument("--max-runs", type=int, default=64, metavar="N", help="refuse to train more than N new runs "
                           "without --yes (default 64)")
    factorial.add_argument("--yes", action="store_true", help="train even more new runs than --max-runs")
    factorial.add_argument("--dry-run", action="store_true", help="print the design, its cells and settings and the "
                           "number of runs, then stop")
    _add_decision_options(factorial)
    factorial.add_argument("--overwrite", action="store_true", help="replace the plan of a folder that holds another study")
    factorial.add_argument("--jobs", type=int, default=0, help="runs at once (default: one per core)")
    factorial.add_argument("--threads", type=int, default=0, help="threads per run (default: the cores / --jobs)")
    factorial.add_argument("--retries", type=int, default=1, metavar="N", help="times a run killed by a signal is "
                           "started again from its checkpoint (default 1)")
    factorial.add_argument("--ray", metavar="ADDRESS", help="spread the runs over a Ray cluster (as compare --ray)")
    _add_config_options(factorial, skip=SWEEP_OWN, title="settings every cell shares")

    report = command("report", "rebuild a comparison's or sweep's tables, figures and report.html",
                     "From the finished runs its sweep.json lists; groups still running show as n of planned.")
    report.add_argument("folder", type=Path, help="a folder `regulab compare` or `regulab sweep` wrote (its sweep.json)")
    report.add_argument("--baseline", metavar="NAME", help="pair every group with this one (default: the sweep's own)")
    _add_decision_options(report, "(default: the sweep's own)")
    report.add_argument("--effect", type=float, metavar="E", help="the difference the seeds-needed column is for, in "
                        "the primary measure's units (default: the margin)")

    evaluate = command("evaluate", "score a finished run on the test set",
                       "Accuracy, loss and calibration (ECE), a per-class table, the most confused pairs; writes "
                       "evaluation.json, confusion.png, reliability.png and misclassified.png into the run folder.")
    evaluate.add_argument("run_dir", type=Path, help="a finished run folder")
    evaluate.add_argument("--data", help="the data whose test images to score (default: the run's own); it must have "
                          "the run's classes")
    evaluate.add_argument("--tta", type=int, choices=(0, 1, 2), help="test-time augmentation (default: the run's own)")

    predict = command("predict", "top classes of your own images (any size and common format)",
                      "Each image is made as the run's training images were: RGB, centre-cropped to a square and "
                      "resized to the run's image size (32x32 for CIFAR).")
    predict.add_argument("run_dir", type=Path, help="a finished run folder")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    predict.add_argument("--top", type=int, default=3, help="classes to show per image (default 3)")
    predict.add_argument("--json", action="store_true", help="print JSON for machines")

    export = command("export", "write the run's model as ONNX, with its input normalization beside it",
                     "Checks the exported model against PyTorch with onnxruntime on test images.")
    export.add_argument("run_dir", type=Path, help="a finished run folder")
    export.add_argument("--format", choices=("onnx",), default="onnx", help="the format (default onnx)")
    export.add_argument("--out", type=Path, help="default RUN_DIR/model.onnx")

    data = command("data", "look at a data set before training on it",
                   "Images per class and split, the sizes and modes of the files, the normalization training will use, "
                   "exact duplicates between train and test, and a grid of sample images per class; printed, and "
                   "written to OUT/data.json and OUT/samples.png.")
    data.add_argument("path", metavar="DATA", help="what --data takes: an archive, a folder of class folders, "
                      "cifar10-mini, cifar10 or cifar100")
    data.add_argument("--out", type=Path, help="where data.json and samples.png go (default runs/data-<name>)")
    data.add_argument("--per-class", type=int, default=8, help="sample images per class in samples.png (default 8)")
    _add_config_options(data, only=DATA_SETTINGS, title="how the images are read (as train takes them)")
    return parser


TOP_PARSER: argparse.ArgumentParser | None = None


def entry_point() -> None:
    """`regulab` and `python -m regulab`: main, then a prompt exit."""
    try:
        status = main()
    except BrokenPipeError:  # the reader went away (`regulab report ... | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        status = 141
    gc.freeze()  # else the interpreter's last collection walks all of torch's objects: a second or two per command
    sys.exit(status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:  # a regularizer file's strengths are options: it is read before the options are
        for path in _regularizer_files(argv):
            import_user_file(path, "regularizer")
    except RegulabError as exc:
        print(f"regulab: error: {exc}", file=sys.stderr)
        return 1
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TrainingStopped as exc:
        how = f"; resume with: regulab train --resume {exc.run_dir}" if args.command == "train" and exc.run_dir else ""
        print(f"regulab: {exc}{how}", file=sys.stderr)
        return 130
    except DamagedFile as exc:
        if args.debug:
            raise
        print(f"regulab: error: {exc}; {_after_damage(args, Path(exc.path).parent)}", file=sys.stderr)
        return 1
    except RegulabError as exc:
        if args.debug:
            raise
        print(f"regulab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("regulab: interrupted", file=sys.stderr)
        return 130


def _regularizer_files(argv: list[str]) -> list[str]:
    """The files given with --regularizer-file, as `--regularizer-file F` or `--regularizer-file=F`."""
    option = "--regularizer-file"
    return [word.partition("=")[2] if word.startswith(option + "=") else argv[i + 1]
            for i, word in enumerate(argv) if (word == option and i + 1 < len(argv)) or word.startswith(option + "=")]


def _after_damage(args: argparse.Namespace, run: Path) -> str:
    """How to continue when a run's weights or checkpoint are damaged, for the command that met them."""
    again = f"regulab train --config {run / 'config.toml'} --out {run} --overwrite"
    if args.command == "train" and args.resume:
        return f"its epochs cannot be trusted: start the run over with {again}"
    if args.command == "train":
        return f"train {run} again ({again}), or start from another run's weights"
    return f"restore it from a copy, or train the run again: {again}"


def _run(args: argparse.Namespace) -> int:
    if args.command == "presets":
        if args.name:
            settings = to_toml(make_config(args.name)).split("\n", 1)[1]
            print(f"# {args.name}: {preset_description(args.name)}\n{settings}", end="")
        else:
            width = max(map(len, PRESETS))
            for name in PRESETS:
                print(f"{name:<{width}}  {preset_description(name)}")
    elif args.command == "plot":
        from regulab.figures import plot_curves, run_title
        from regulab.rundir import CONFIG, CURVES, HISTORY_JSON, RunDir

        run = RunDir(args.run_dir)
        history, config = run.read_json(HISTORY_JSON), run.read_json(CONFIG)
        if not history:
            raise RegulabError(f"{run.path} has an empty history; train at least one epoch first")
        path = plot_curves(history, run.path / CURVES, title=run_title(config))
        print(path)
    elif args.command in ("compare", "sweep"):
        from regulab.analysis import Design
        from regulab.study import parse_grid
        from regulab.sweeps import sweep_and_report

        grid = parse_grid(args.grid) if args.command == "sweep" else {}
        given = {f.name: getattr(args, f.name) for f in config_fields()
                 if f.name not in SWEEP_OWN and getattr(args, f.name, None) is not None}
        design = Design(seeds=args.seeds, max_seeds=args.max_seeds, seeds_per_round=args.seeds_per_round,
                        margin=args.margin, primary=args.primary or "test_acc", correction=args.correction or "holm",
                        pair_on=args.pair_on or "machine")
        report = sweep_and_report(args.presets, args.out, grid, args.seeds, given, jobs=args.jobs, threads=args.threads,
                                  runs_dir=args.runs_dir, baseline=args.baseline, ray=args.ray, overwrite=args.overwrite,
                                  design=design, retries=args.retries)
        print(f"report: {report}")
    elif args.command == "factorial":
        from regulab.analysis import Design
        from regulab.designs import parse_factors, parse_fraction
        from regulab.sweeps import factorial_and_report, factorial_plan

        given = {f.name: getattr(args, f.name) for f in config_fields()
                 if f.name not in SWEEP_OWN and getattr(args, f.name, None) is not None}
        fractional = factorial_plan(args.presets, parse_factors(args.factor), parse_fraction(args.fraction),
                                    args.allow_resolution == "III", given)
        design = Design(seeds=args.seeds, max_seeds=args.max_seeds, seeds_per_round=args.seeds_per_round,
                        margin=args.margin, primary=args.primary or "test_acc", correction=args.correction or "holm")
        report = factorial_and_report(args.presets, args.out, fractional, args.seeds, given, max_runs=args.max_runs,
                                      confirmed=args.yes, dry_run=args.dry_run, jobs=args.jobs, threads=args.threads,
                                      runs_dir=args.runs_dir, ray=args.ray, overwrite=args.overwrite, design=design,
                                      retries=args.retries)
        if report:
            print(f"report: {report}")
    elif args.command == "tune":
        from regulab.tuning import SUMMARY, TunePlan, parse_space, tune

        given = {f.name: getattr(args, f.name) for f in config_fields()
                 if f.name not in SWEEP_OWN and getattr(args, f.name, None) is not None}
        plan = TunePlan(args.first_look, args.max_seeds, args.fresh_seeds, args.max_runs, args.alpha, args.primary)
        tune(args.preset, parse_space(args.space, args.points), args.out, given, plan, jobs=args.jobs,
             threads=args.threads, runs_dir=args.runs_dir, overwrite=args.overwrite)
        print((args.out / SUMMARY).read_text(), end="")
        print(f"report: {args.out / SUMMARY}, figure: {args.out / 'race.png'}")
    elif args.command == "report":
        from regulab.sweeps import report_of

        path = report_of(args.folder, args.baseline, args.margin, args.correction, args.primary, args.effect,
                         pair_on=args.pair_on, log=print)
        print(f"report: {path}")
    elif args.command == "evaluate":
        from regulab.trained import CONFUSION, EVALUATION, MISTAKES, RELIABILITY, evaluate_run, evaluation_table

        result = evaluate_run(args.run_dir, args.data, args.tta)
        print(evaluation_table(result))
        print(f"written to {args.run_dir}: {EVALUATION}, {CONFUSION}, {RELIABILITY}, {MISTAKES}")
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
    elif args.command == "data":
        from regulab import data as data_lib
        from regulab.datacheck import data_text, describe_data

        cfg = make_config("seed", data=args.path, **{k: getattr(args, k) for k in DATA_SETTINGS})
        if args.per_class < 1:
            raise RegulabError(f"--per-class must be at least 1, not {args.per_class}")
        raw = data_lib.load_for(cfg)
        out = args.out or Path("runs") / f"data-{Path(args.path).name or 'data'}"
        print(data_text(describe_data(raw, out, args.per_class)))
    elif args.command == "train":
        from regulab.rundir import RunDir
        from regulab.training import train

        overrides = {f.name: getattr(args, f.name, None) for f in config_fields() if f.name != "preset"}
        if args.resume:
            if args.config or args.preset:
                raise RegulabError("--resume takes the run's own settings; drop --config and --preset")
            train(RunDir(args.resume).resumed_config(overrides), resume=True)
        else:
            cfg = config_from(args.preset, args.config, **overrides)
            if args.dry_run:
                import os

                from regulab import data as data_lib
                from regulab.models import build_model, model_summary

                # The data decides the classes and image size; without any named, CIFAR-10's (no download).
                raw = data_lib.load_for(cfg) if cfg.data or os.environ.get(data_lib.ENV_VAR) else None
                shape = (len(raw.classes), raw.image_size) if raw else (len(data_lib.CLASSES), data_lib.CIFAR_SIZE)
                print(to_toml(cfg).split("\n", 1)[1] + "\n" + model_summary(build_model(cfg, *shape), shape[1]))
                return 0
            train(cfg, overwrite=args.overwrite)
        import torch.distributed as dist

        if dist.is_initialized():  # under torchrun: leave the group cleanly
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
