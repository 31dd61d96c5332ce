"""Every training setting in one place, and the named presets built from them.

A preset is a function in the registry returning the values it changes from `Config`'s
defaults; its docstring is the one line `regulab presets` shows. The command line can then
override any single value (`--epochs 5`), so a run is always: defaults < preset < options.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from regulab.errors import RegulabError, unknown_name


def setting(default, help: str):
    """A Config field with the help text that `regulab train --help` shows for it."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Strength:
    """A setting that a registered regularizer adds: a number in [low, high] whose default, 0,
    is off. It becomes an option of train, compare and sweep, a keyword of `regulab.train`, a
    --grid axis, a factorial factor and a tune dimension, as the built-in settings are."""

    help: str
    low: float = 0.0
    high: float = 1.0
    default: float = 0.0
    log: bool = False  # strengths that matter by their order of magnitude: tune spreads its candidates on a log scale

    def describe(self) -> str:
        return f"{self.help} (in [{self.low:g}, {self.high:g}]; {self.default:g} is off)"


# The settings of the regularizers registered at run time (`regularizers.register_regularizer`
# declares them here), by name; a Config holds the values that differ from the default in
# `user_settings` and reads them as attributes, as its own fields.
USER_SETTINGS: dict[str, Strength] = {}
_DECLARED_BY: set[str] = set()  # the modules that declared strengths, so a regularizer file that declares none is told


def declare_strengths(settings: dict[str, Strength], module: str) -> None:
    """Make `settings` settings of every command (a registered regularizer's, from `module`)."""
    USER_SETTINGS.update(settings)
    _DECLARED_BY.add(module)


@dataclass
class Config:
    # -- data: the seed's pipeline
    data: str | None = setting(None, "the images: a CIFAR-10 or CIFAR-100 archive (.tar.gz or its folder), a folder of "
                               "class folders of images, cifar10-mini (bundled), or cifar10/cifar100 (cache, else "
                               "download); default: $REGULAB_DATA, else CIFAR-10 from the cache folder, else a download")
    image_size: int = setting(32, "image folders: the side every image is centre-cropped and resized to (CIFAR's "
                              "images stay 32x32)")
    labels: str = setting("fine", "CIFAR-100's classes: fine (100) or coarse (20)")
    test_fraction: float = setting(0.2, "image folders without train/ and test/ folders: the stratified share of "
                                   "each class held out as the test set, drawn by --split-seed")
    skip_bad: bool = setting(False, "image folders: leave out files that are not readable images (and say how many) "
                             "instead of stopping at the first")
    val_fraction: float = setting(0.3, "share of the 50,000 training images held out for validation, as the seed's "
                                  "train_test_split(test_size=0.3); 0 trains on all of them and validates on nothing")
    split_seed: int = setting(777, "seed of the train/validation split (the seed's random_state=777), so every run "
                              "validates on the same images")
    split_by_seed: bool = setting(False, "each seed draws its own train/validation split (seed k: split k, in place of "
                                  "--split-seed), so a study over seeds varies which images train and validate too "
                                  "(Bouthillier et al. 2021); the test set stays fixed")
    label_noise: float = setting(0.0, "share of the training labels replaced by a wrong class (symmetric), drawn once "
                                 "from the split seed: the same images and wrong labels for every preset and seed, "
                                 "nested across shares (0.2's inside 0.4's); validation and test labels stay clean")
    train_fraction: float = setting(1.0, "train on this stratified share of the training split, the same images for "
                                    "every run with the same split seed (0.1 lies inside 0.25); validation and test unchanged")
    # -- model
    model: str = setting("seed-cnn", "the network: seed-cnn (the notebook's), fast-net (airbench-style), or one "
                         "registered with @regulab.register_model (in --model-file)")
    model_file: str = setting("", "a Python file whose @regulab.register_model functions define models to train; "
                              "its hash is recorded, so a trained run notices when it changes")
    model_file_sha256: str = setting("", "the model file's SHA-256 when the run was set up (filled in by regulab)")
    regularizer_file: str = setting("", "a Python file whose @regulab.register_regularizer classes add regularizers, "
                                    "and their strengths as options; its hash is recorded, as --model-file's")
    regularizer_file_sha256: str = setting("", "the regularizer file's SHA-256 when the run was set up (filled in by "
                                           "regulab)")
    init_from: str = setting("", "start from the best weights of this finished run folder (the same model): "
                             "fine-tuning, or a longer schedule from a finished run; recorded in config.json")
    whiten: bool = setting(False, "set the model's first layer from a whitening of 2x2 training patches, then freeze it "
                           "(fast-net only)")
    whiten_bias_epochs: float = setting(0.0, "with --whiten: train the whitening layer's bias at the batch-norm shifts' "
                                        "rate for this many epochs, then freeze it (airbench); 0 trains it with the "
                                        "head all run")
    batch_norm: bool = setting(False, "batch normalization after every convolution, before its ReLU")
    dropout_blocks: float = setting(0.0, "dropout rate after each conv block's pooling (0 is off)")
    dropout_head: float = setting(0.0, "dropout rate before the classifier (0 is off)")
    # -- penalties added to the loss, as Keras regularizers are
    l2: float = setting(1e-3, "L2 penalty C * sum(w**2) added to the loss per kernel, as the seed's "
                        "kernel_regularizer=l2(0.001); 0 is off")
    l1: float = setting(0.0, "L1 penalty C * sum(|w|) on the same kernels; 0 is off")
    penalty_scope: str = setting("seed", "which kernels the penalties cover: seed (the four the notebook marks) or all")
    # -- data augmentation, on whole batches
    augment: str = setting("", "comma list of crop (pad with zeros, cut back at random), translate (the same with "
                           "mirrored edges), flip, altflip (flip on alternate epochs), cutout, trivial (TrivialAugment: "
                           "one random operation at a random strength per image, first); empty is off")
    crop_pad: int = setting(4, "crop and translate: pixels of padding on each side before cutting 32x32 back")
    cutout_size: int = setting(8, "cutout: side of the zeroed square (DeVries & Taylor use 8-16 on CIFAR)")
    mixup: float = setting(0.0, "mixup: alpha of the Beta(alpha, alpha) mixing weight; 0 is off")
    cutmix: float = setting(0.0, "cutmix: alpha of the Beta(alpha, alpha) area; 0 is off (with mixup, each batch picks one)")
    label_smoothing: float = setting(0.0, "share of each target spread evenly over all classes (0 is off)")
    # -- optimization: the seed's Keras settings
    epochs: int = setting(30, "passes over the training images (the seed: 30)")
    batch_size: int = setting(32, "images per step; the seed's 32 gives 1,094 steps over 35,000, the last one partial")
    optimizer: str = setting("adam", "adam (Keras's update rule and epsilon), adamw (decoupled weight decay), "
                             "sgd (Nesterov momentum), muon (Muon on the conv filters, Nesterov SGD on the rest)")
    lr: float = setting(1e-4, "learning rate (the seed: Adam 1e-4, Keras's betas 0.9/0.999 and epsilon 1e-7)")
    weight_decay: float = setting(0.0, "weight decay on kernels and batch norm; adamw: decoupled, w -= lr * wd * w "
                                  "each step; sgd: added to the gradient")
    momentum: float = setting(0.9, "momentum of sgd (with muon: of the parameters that are not conv filters)")
    muon_lr: float = setting(0.24, "muon: the conv filters' step, relative to their size (each filter bank is kept at "
                             "norm sqrt(out_channels)); the schedule scales it as it does --lr")
    muon_momentum: float = setting(0.6, "muon: Nesterov momentum of the conv filters' updates")
    norm_lr_scale: float = setting(1.0, "learning-rate multiplier for batch-norm parameters (their weight decay is "
                                   "divided by it, so they shrink at the same rate per step)")
    schedule: str = setting("constant", "learning-rate schedule, applied every step: constant, step, cosine, onecycle "
                            "(warm-up, 30% of the run unless --warmup-epochs says, then straight down to --decay-to), "
                            "linear (the same without a default warm-up)")
    warmup_epochs: float = setting(0.0, "epochs of linear warm-up (onecycle: 30% of the run when 0)")
    warmup_from: float = setting(0.0, "the fraction of lr the warm-up starts from")
    decay_to: float = setting(0.0, "the fraction of lr that onecycle and cosine end at")
    step_epochs: int = setting(10, "step schedule: multiply lr by --step-gamma every this many epochs")
    step_gamma: float = setting(0.1, "step schedule: the factor applied every --step-epochs")
    sam: float = setting(0.0, "sharpness-aware minimization's radius rho (0 is off): each step takes its gradient at "
                         "the weights moved rho along the normalized gradient, around whichever optimizer is chosen; "
                         "two passes a step (Foret et al. 2021)")
    sam_adaptive: bool = setting(False, "adaptive SAM: the step up scaled by each weight's size (Kwon et al. 2021); "
                                 "rho is then larger, 0.5 to 2")
    ema: float = setting(0.0, "decay of an exponential moving average of the weights, which is then evaluated and "
                         "saved instead; 0 is off")
    lookahead: int = setting(0, "every this many steps, pull a slow copy of the weights toward the trained ones and "
                             "restart from it; the run ends on the slow weights; 0 is off")
    # -- model selection
    monitor: str = setting("val_acc", "what picks best.pt and what early stopping watches: val_acc, or val_loss "
                           "(Keras's: the data loss plus any penalty, as logged)")
    early_stop: int = setting(0, "stop after this many epochs without a better --monitor (0: never); the best "
                              "epoch's weights are kept and tested")
    seed: int = setting(0, "random seed of the weights, shuffling, dropout and augmentation (the split has its own)")
    # -- execution: change speed, never results beyond rounding
    device: str = setting("auto", "where to train: auto (a CUDA GPU when PyTorch sees one, else the CPU), cpu, cuda")
    precision: str = setting("auto", "auto (bf16 autocast where the chip has native bf16, else fp32), fp32 (IEEE, no "
                             "TF32 on a GPU), bf16; the final test is scored in fp32 either way")
    threads: int = setting(0, "CPU threads for PyTorch; 0 keeps its default (one per core)")
    deterministic: bool = setting(False, "only deterministic kernels, so equal seeds give bit-equal runs")
    eval_batch_size: int = setting(1000, "images per batch when evaluating; it changes the speed, and the scores by "
                                   "rounding at most")
    tta: int = setting(0, "test-time augmentation of the final test: 0 off, 1 mirror, 2 mirror and 1-pixel shifts")
    tta_unsure: float = setting(1.0, "the share of test images that test-time augmentation re-scores: those the plain "
                                "prediction is least confident of (1: all)")
    out: str | None = setting(None, "the run folder (default runs/<preset>-<date>-<time>)")
    # -- tracking: where else the history goes (pip install 'regulab[tracking]')
    tensorboard: str = setting("", "also log to TensorBoard in this folder ('auto': RUN_DIR/tensorboard)")
    mlflow: str = setting("", "also log to MLflow at this tracking URI ('auto': ./mlruns), experiment 'regulab'")
    preset: str = setting("seed", "the preset the values came from, recorded in the run folder")
    # -- the registered regularizers' strengths that differ from their defaults (USER_SETTINGS)
    user_settings: dict = field(default_factory=dict, metadata={"help": "registered regularizers' strengths"})

    def __getattr__(self, name: str):
        # Only for names that are not fields: a registered regularizer's strength reads as one.
        if name in USER_SETTINGS:
            return self.__dict__.get("user_settings", {}).get(name, USER_SETTINGS[name].default)
        raise AttributeError(f"'Config' object has no attribute {name!r}")

    def settings(self) -> dict:
        """Every setting by name, the registered regularizers' strengths beside the fields."""
        values = {k: v for k, v in vars(self).items() if k != "user_settings"}
        return {**values, **self.user_settings}

    def validate(self) -> "Config":
        def need(ok: bool, what: str):
            if not ok:
                raise RegulabError(what)
        if self.regularizer_file:  # the file declares the strengths checked below
            import_user_file(self.regularizer_file, "regularizer", self.regularizer_file_sha256)
        for name, value in self.user_settings.items():
            strength = USER_SETTINGS.get(name)
            if strength is None:
                raise RegulabError(f"{name} is a strength of no registered regularizer; pass --regularizer-file with the "
                                   "file that registers it")
            need(strength.low <= value <= strength.high,
                 f"--{name.replace('_', '-')} must be in [{strength.low:g}, {strength.high:g}], not {value:g}")
        need(self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}")
        need(self.eval_batch_size >= 1, f"--eval-batch-size must be at least 1, not {self.eval_batch_size}")
        need(self.lr > 0, f"--lr must be positive, not {self.lr}")
        need(self.l2 >= 0, f"--l2 must be zero or positive, not {self.l2}")
        need(0 <= self.val_fraction < 1, f"--val-fraction must be in [0, 1), not {self.val_fraction}")
        need(8 <= self.image_size <= 512, f"--image-size must be between 8 and 512 pixels, not {self.image_size}")
        need(0 < self.test_fraction < 1, f"--test-fraction must be in (0, 1), not {self.test_fraction}")
        need(self.sam >= 0, f"--sam takes a radius rho >= 0 (0 is off), not {self.sam}")
        need(self.sam or not self.sam_adaptive, "--sam-adaptive needs --sam RHO")
        need(0 <= self.label_noise < 1, f"--label-noise must be in [0, 1), not {self.label_noise}")
        need(0 < self.train_fraction <= 1, f"--train-fraction must be in (0, 1], not {self.train_fraction}")
        need(self.threads >= 0, f"--threads must be 0 (default) or more, not {self.threads}")
        need(self.l1 >= 0 and self.weight_decay >= 0, "--l1 and --weight-decay must be zero or positive")
        for name in ("dropout_blocks", "dropout_head"):
            need(0 <= getattr(self, name) < 1, f"--{name.replace('_', '-')} must be in [0, 1), not {getattr(self, name)}")
        need(0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), not {self.label_smoothing}")
        need(self.mixup >= 0 and self.cutmix >= 0, "--mixup and --cutmix take a Beta alpha >= 0 (0 is off)")
        need(0 <= self.ema < 1, f"--ema must be in [0, 1) (0 is off), not {self.ema}")
        need(self.lookahead >= 0, f"--lookahead must be 0 (off) or a number of steps, not {self.lookahead}")
        need(self.tta in (0, 1, 2), f"--tta must be 0 (off), 1 (mirror) or 2 (mirror and shifts), not {self.tta}")
        need(0 < self.tta_unsure <= 1, f"--tta-unsure must be in (0, 1], not {self.tta_unsure}")
        need(self.muon_lr > 0 and 0 <= self.muon_momentum < 1, "--muon-lr must be positive and --muon-momentum in [0, 1)")
        need(self.whiten_bias_epochs >= 0, f"--whiten-bias-epochs must be zero or positive, not {self.whiten_bias_epochs}")
        need(self.whiten or not self.whiten_bias_epochs, "--whiten-bias-epochs needs --whiten")
        need(self.norm_lr_scale > 0, f"--norm-lr-scale must be positive, not {self.norm_lr_scale}")
        need(0 <= self.warmup_from <= 1 and 0 <= self.decay_to <= 1, "--warmup-from and --decay-to must be in [0, 1]")
        need(self.crop_pad >= 0 and self.cutout_size >= 1, "--crop-pad must be >= 0 and --cutout-size >= 1")
        need(self.warmup_epochs >= 0 and self.early_stop >= 0 and self.step_epochs >= 1,
             "--warmup-epochs and --early-stop must be >= 0, --step-epochs >= 1")
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise unknown_name(name.replace("_", " "), value, allowed, f"choose one of {', '.join(allowed)}")
        for op in filter(None, self.augment.split(",")):
            if op not in AUGMENTATIONS:
                raise unknown_name("augmentation", op, AUGMENTATIONS,
                                   f"--augment takes a comma list of {', '.join(AUGMENTATIONS)}")
        need(not (self.optimizer == "adam" and self.weight_decay), "--weight-decay needs --optimizer adamw "
             "(decoupled) or sgd; with Keras's Adam, use --l2 for a penalty")
        need(self.monitor != "val_loss" or self.val_fraction > 0,
             "--monitor val_loss needs a validation set (--val-fraction > 0)")
        return self


# The values a string setting may take; the command line offers them as choices.
CHOICES = {
    "device": ("auto", "cpu", "cuda"),
    "precision": ("auto", "fp32", "bf16"),
    "optimizer": ("adam", "adamw", "sgd", "muon"),
    "schedule": ("constant", "step", "cosine", "onecycle", "linear"),
    "monitor": ("val_acc", "val_loss"),
    "penalty_scope": ("seed", "all"),
    "labels": ("fine", "coarse"),
}
AUGMENTATIONS = ("crop", "translate", "flip", "altflip", "cutout", "trivial")
# Settings `sweep` and `compare` decide per run themselves: no grid axis, no shared option.
SWEEP_OWN = ("preset", "seed", "out", "threads", "model_file_sha256", "regularizer_file_sha256")


def config_fields() -> list[dataclasses.Field]:
    """Every setting as a field: Config's own, then one for each registered regularizer's strength."""
    own = [f for f in dataclasses.fields(Config) if f.name != "user_settings"]
    return own + [_strength_field(name, strength) for name, strength in USER_SETTINGS.items()]


def _strength_field(name: str, strength: Strength) -> dataclasses.Field:
    made = field(default=strength.default, metadata={"help": strength.describe()})
    made.name, made.type = name, float
    return made


# ---------------------------------------------------------------------------------------------
# Presets

PRESETS: dict[str, Callable[[], dict]] = {}


def register_preset(fn: Callable[[], dict]) -> Callable[[], dict]:
    PRESETS[fn.__name__.replace("_", "-")] = fn
    return fn


def preset_description(name: str) -> str:
    return (PRESETS[name].__doc__ or "").strip().splitlines()[0]


def user_file_digest(path: str | Path, kind: str, expected_sha256: str = "") -> str:
    """The SHA-256 of a user's `kind` file (model, regularizer), which a run records; with
    `expected_sha256` (a run's record), a changed or missing file is an error: the run's weights
    belong to the code the file held then."""
    path = Path(path)
    try:
        source = path.read_bytes()
    except FileNotFoundError:
        gone = "the run was trained with it; restore it to use the run" if expected_sha256 else "pass an existing .py file"
        raise RegulabError(f"{kind} file {path} does not exist; {gone}") from None
    except OSError as exc:
        raise RegulabError(f"cannot read {kind} file {path} ({exc.strerror}); pass a readable .py file") from None
    digest = hashlib.sha256(source).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise RegulabError(f"{kind} file {path} has changed since the run was set up (sha256 {digest[:12]}, recorded "
                           f"{expected_sha256[:12]}); restore that version, or train a new run")
    return digest


def import_user_file(path: str | Path, kind: str, expected_sha256: str = "") -> str:
    """Import a user's Python file once, so that what it registers (`@register_model`,
    `@register_regularizer`) is known by name; its SHA-256, checked against `expected_sha256`."""
    path = Path(path)
    digest = user_file_digest(path, kind, expected_sha256)
    if digest not in _IMPORTED_FILES:
        spec = importlib.util.spec_from_file_location(f"regulab_user_{kind}s_{digest[:12]}", path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except RegulabError as exc:  # a registration refused: its own words
            raise RegulabError(f"{kind} file {path}: {exc}") from None
        except Exception as exc:  # the user's code: any error there is theirs to fix, named in one line
            where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) else ""
            raise RegulabError(f"{kind} file {path} failed to load{where}: {type(exc).__name__}: {exc}") from None
        if kind == "regularizer" and module.__name__ not in _DECLARED_BY:
            raise RegulabError(f"regularizer file {path} registers no regularizer; decorate a regulab.Regularizer "
                               "subclass in it with @regulab.register_regularizer")
        _IMPORTED_FILES[digest] = module
    return digest


_IMPORTED_FILES: dict = {}  # SHA-256: the module it defined


def config_from(preset: str | None = None, toml: str | Path | None = None, **given) -> Config:
    """A run's settings as `regulab train` assembles them: the preset (named, else the TOML
    file's, else seed), then the file's settings, then the options `given` that are not None."""
    from_file = read_toml(toml) if toml else {}
    file_preset = from_file.pop("preset", None)
    return make_config(preset or file_preset or "seed", **{**from_file, **{k: v for k, v in given.items() if v is not None}})


def default_out(cfg: Config) -> Config:
    """`cfg` with its run folder named, where it names none: runs/PRESET-YYYYmmdd-HHMMSS."""
    return cfg if cfg.out else dataclasses.replace(cfg, out=str(Path("runs") / f"{cfg.preset}-{datetime.now():%Y%m%d-%H%M%S}"))


def make_config(preset: str = "seed", **overrides) -> Config:
    """Defaults, then the preset's values, then the overrides that are not None."""
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    values = {**PRESETS[preset](), **{k: v for k, v in overrides.items() if v is not None}}
    for kind in ("model", "regularizer"):
        if values.get(f"{kind}_file") and not values.get(f"{kind}_file_sha256"):
            values[f"{kind}_file"] = str(Path(values[f"{kind}_file"]).expanduser().resolve())
            values[f"{kind}_file_sha256"] = user_file_digest(values[f"{kind}_file"], kind)
    if values.get("regularizer_file"):  # its strengths are settings from here on
        import_user_file(values["regularizer_file"], "regularizer", values["regularizer_file_sha256"])
    # A strength at its default is off, and off names no strength: equal settings, one identity.
    user = {**values.pop("user_settings", {}), **{k: values.pop(k) for k in list(values) if k in USER_SETTINGS}}
    user = {k: float(v) for k, v in user.items() if k not in USER_SETTINGS or v != USER_SETTINGS[k].default}
    return Config(**values, user_settings=user, preset=preset).validate()


# ---------------------------------------------------------------------------------------------
# TOML: a run described by one file (`regulab train --config my.toml`)

TOML_HEADER = "# A regulab run. Repeat it with: regulab train --config THIS_FILE (options given after it win).\n"


def read_toml(path: str | Path) -> dict:
    """The settings in a TOML file of `Config` field names (and `preset`), checked by name and type."""
    import tomllib

    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RegulabError(f"config file {path} does not exist; pass a TOML file such as a run folder's config.toml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegulabError(f"cannot read config file {path} ({exc}); pass a readable TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegulabError(f"{path} is not valid TOML ({exc}); fix that line") from None
    return checked_settings(values, f"setting in {path}:", "its keys are `regulab train` option names with _")


def checked_settings(values: dict, what: str = "option", hint: str = "`regulab train --help` lists them") -> dict:
    """`values` named as `Config` fields (or `preset`) and of their types (ints pass as floats),
    else a one-line error naming the nearest name or the type wanted."""
    if values.get("regularizer_file"):  # it declares settings that may follow
        import_user_file(values["regularizer_file"], "regularizer")
    fields = {f.name: f for f in config_fields()}
    for key, value in values.items():
        if key not in fields:
            raise unknown_name(what, key, fields, hint)
        default = fields[key].default
        kind = type(default) if default is not None else str
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        ok = ok or (kind is float and isinstance(value, int) and not isinstance(value, bool))
        ok = ok or (value is None and default is None)
        if not ok:
            raise RegulabError(f"{key} must be {kind.__name__}, not {type(value).__name__} {value!r}")
    return {k: float(v) if type(fields[k].default) is float else v for k, v in values.items()}


def to_toml(cfg: Config) -> str:
    """Every setting of the run except where it was written, so the file repeats it into a new folder."""
    import tomli_w

    values = {k: v for k, v in cfg.settings().items() if v is not None and k != "out"}
    return TOML_HEADER + tomli_w.dumps(values)


@register_preset
def seed() -> dict:
    """The notebook exactly: VGG-style CNN, L2(0.001) on 4 layers, Adam 1e-4, batch 32, 30 epochs."""
    return {}


# Each single-regularizer preset drops the seed's L2 so its effect is measured alone against
# seed-noreg; seed-all combines what the measurements in docs/results.md found to work.

@register_preset
def seed_noreg() -> dict:
    """The seed network with no regularizer at all (the earlier post's overfitting baseline)."""
    return {"l2": 0.0}


@register_preset
def seed_dropout() -> dict:
    """No L2; dropout 0.25 after each conv block and 0.5 before the classifier."""
    return {"l2": 0.0, "dropout_blocks": 0.25, "dropout_head": 0.5}


@register_preset
def seed_bn() -> dict:
    """No L2; batch normalization after every convolution."""
    return {"l2": 0.0, "batch_norm": True}


@register_preset
def seed_augment() -> dict:
    """No L2; random crop (pad 4) and horizontal flip on every batch."""
    return {"l2": 0.0, "augment": "crop,flip"}


@register_preset
def seed_wd() -> dict:
    """No L2 penalty; AdamW's decoupled weight decay 0.5 on the kernels instead (lr 1e-4 as the seed)."""
    return {"l2": 0.0, "optimizer": "adamw", "weight_decay": 0.5}


@register_preset
def seed_sam() -> dict:
    """No L2; sharpness-aware minimization around Keras's Adam, radius 0.05 (Foret et al.'s CIFAR value)."""
    return {"l2": 0.0, "sam": 0.05}


@register_preset
def seed_trivial() -> dict:
    """No L2; TrivialAugment (one random operation at a random strength per image), nothing else."""
    return {"l2": 0.0, "augment": "trivial"}


@register_preset
def seed_all() -> dict:
    """BN, dropout 0.1/0.3, crop+flip, label smoothing 0.1, Adam 1e-3 cosine: 0.88 val_acc (docs/results.md)."""
    return {"l2": 0.0, "batch_norm": True, "dropout_blocks": 0.1, "dropout_head": 0.3, "augment": "crop,flip",
            "label_smoothing": 0.1, "lr": 1e-3, "schedule": "cosine", "warmup_epochs": 1.0}


# The fast recipes: Keller Jordan's airbench94 ideas rebuilt on regulab's trainer. airbench
# publishes its values for a loss summed over the batch, or decoupled from each other (lr 11.5
# per 1,024 examples whatever the momentum; weight decay per 1,024 examples whatever the lr);
# regulab's loss is the batch mean, so each value below says how it converts.

# fast-sgd (airbench94, 2024): with k = 1024 * (1 + 1 / (1 - momentum)), PyTorch's SGD on a mean
# loss over batches of B takes lr = 11.5 * B / k, and a shrink of 0.0153 * B / k per step, that
# is weight_decay = that / lr.
_SGD_BATCH, _SGD_MOMENTUM = 1000, 0.85  # 1,000 divides 50,000: no ragged last batch
_SGD_K = 1024 * (1 + 1 / (1 - _SGD_MOMENTUM))

# fast (airbench94_muon): a summed loss over batches of 2,000, head lr 0.67, bias lr 0.053, and a
# shrink of 2e-6 * 2,000 per step. For the mean loss, a bias's lr is 2,000 times larger. The
# head's also changes with the parametrization: airbench divides logits by 256 behind unit-std
# weights, fast-net by 9 behind PyTorch's default init (std 1/sqrt(3 * 256)); the same function
# and the same steps in it take lr_head = 0.67 * 2,000 * 81 / 256^2.
_MUON_BATCH = 2000
_MUON_HEAD_LR = 0.67 * _MUON_BATCH * 81 / 256**2
_MUON_BIAS_LR = 0.053 * _MUON_BATCH


@register_preset
def fast() -> dict:
    """fast-net, whitened input, Muon on the filters, 9 epochs, TTA on the unsure quarter; all 50,000 images."""
    return {
        "val_fraction": 0.0,       # train on all 50,000 as the published records do; test only at the end
        "model": "fast-net", "whiten": True, "l2": 0.0,
        "whiten_bias_epochs": 3,   # as airbench; measured no different from training it all run
        "augment": "translate,altflip", "crop_pad": 2,  # 2-pixel shifts with mirrored edges; flips alternate by epoch
        "label_smoothing": 0.2,    # with logits scaled by 1/9 this keeps the net from overconfidence in a short run
        # Muon orthogonalizes the filters' updates: every direction of a filter bank learns at
        # once, which is what lets 9 epochs do the work of 10. airbench94_muon stops at 8; here 8
        # gave 93.98% over 20 seeds and 9 gave 94.18% over 10 (bench/results/fast_cuda_variants.json).
        "epochs": 9, "batch_size": _MUON_BATCH,
        "optimizer": "muon", "muon_lr": 0.24, "muon_momentum": 0.6,
        "lr": _MUON_HEAD_LR, "momentum": 0.85,
        "norm_lr_scale": _MUON_BIAS_LR / _MUON_HEAD_LR,  # batch-norm shifts at the bias lr
        "weight_decay": 2e-6 * _MUON_BATCH / _MUON_HEAD_LR,  # a shrink of 0.004 per step, whatever the lr
        "schedule": "linear", "decay_to": 0.0,  # straight down from the first step: no warm-up, no lookahead
        "tta": 2, "tta_unsure": 0.25,  # mirror and shifts, where the plain prediction is least sure
        "eval_batch_size": 2000,
    }


@register_preset
def fast_sgd() -> dict:
    """The earlier fast recipe: Nesterov SGD and lookahead, 10 epochs, TTA on every test image (airbench94)."""
    return {
        "val_fraction": 0.0, "model": "fast-net", "whiten": True, "l2": 0.0,
        "augment": "translate,altflip", "crop_pad": 2, "label_smoothing": 0.2,
        "epochs": 10, "batch_size": _SGD_BATCH, "optimizer": "sgd", "momentum": _SGD_MOMENTUM,
        "lr": 11.5 * _SGD_BATCH / _SGD_K, "weight_decay": 0.0153 / 11.5,
        "norm_lr_scale": 64.0,     # batch-norm shifts learn 64x faster than kernels (airbench's bias scaler)
        # Triangle: 20% of lr rising to full at 23% of the run, then straight down to 7%.
        "schedule": "onecycle", "warmup_epochs": 2.3, "warmup_from": 0.2, "decay_to": 0.07,
        "lookahead": 5,            # airbench94's weight averaging: every 5 steps, ramping in over the run
        "tta": 2,                  # mirror and 1-pixel shifts at test time: about +0.8 point
        "eval_batch_size": 2000,
    }
