"""Part 18's regularizer protocol: the built-ins on it against independent computations, a user's
regularizer registered in a file or in Python, its strengths as options, axes and factors, and
the one-line errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import regulab
from regulab import config as config_lib
from regulab import regularizers as reg_lib
from regulab.cli import build_parser
from regulab.config import config_fields, make_config
from regulab.designs import parse_factors
from regulab.errors import RegulabError
from regulab.regularizers import RunInfo
from regulab.study import parse_grid

EXAMPLE = Path(__file__).parent.parent / "examples" / "random_erasing.py"


@pytest.fixture
def registry():
    """Leave the registries as they were: a test's regularizers are not the next test's options."""
    saved = (dict(reg_lib.REGULARIZERS), dict(config_lib.USER_SETTINGS), set(config_lib._DECLARED_BY),
             dict(config_lib._IMPORTED_FILES))
    yield
    for live, kept in zip((reg_lib.REGULARIZERS, config_lib.USER_SETTINGS, config_lib._DECLARED_BY,
                           config_lib._IMPORTED_FILES), saved):
        live.clear()
        live.update(kept)


def run_info(cfg, model=None, classes=10):
    model = model or torch.nn.Linear(2, 2)
    return RunInfo(cfg, model, classes, torch.Generator().manual_seed(1), np.random.default_rng(1))


# --- the built-ins on the protocol ------------------------------------------------------------------

def test_label_smoothing_targets_give_torchs_smoothed_loss():
    cfg = make_config("seed", label_smoothing=0.1)
    smoothing = reg_lib.LabelSmoothing(run_info(cfg, classes=5))
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    x, target = smoothing.before_batch(torch.zeros(8, 3), labels)
    ours = F.cross_entropy(logits, target, reduction="sum")
    assert torch.allclose(ours, F.cross_entropy(logits, labels, label_smoothing=0.1, reduction="sum"), rtol=1e-6)
    assert torch.allclose(target.sum(1), torch.ones(8)) and target.max() == pytest.approx(0.9 + 0.1 / 5)


def test_the_moving_average_starts_from_the_first_weights_and_reads_old_checkpoints():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    average = reg_lib.WeightAverage(run_info(make_config("seed", ema=0.9), model))
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model(torch.randn(4, 2))  # moves the batch-norm statistics and its counter
    average.after_step(model)
    live, averaged = model.state_dict(), average.state_dict()
    assert torch.allclose(averaged["0.weight"], 0.9 * first["0.weight"] + 0.1 * live["0.weight"])
    assert torch.allclose(averaged["1.running_mean"], 0.9 * first["1.running_mean"] + 0.1 * live["1.running_mean"])
    assert averaged["1.num_batches_tracked"] == 1 and average.evaluated(model) is average.module
    # A checkpoint written by torch's AveragedModel (regulab before 0.2) resumes.
    old = {"n_averaged": torch.tensor(7), **{f"module.{k}": v + 1 for k, v in averaged.items() if v.is_floating_point()},
           "module.1.num_batches_tracked": torch.tensor(3)}
    average.load_state_dict(old)
    assert torch.equal(average.state_dict()["0.weight"], averaged["0.weight"])


def test_only_the_regularizers_switched_on_act_and_the_penalties_add_up():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    off = reg_lib.Regularizers(run_info(make_config("seed-noreg"), model))
    assert off.active == {} and not off.penalizes and off.penalty(model).item() == 0
    on = reg_lib.Regularizers(run_info(make_config("seed-noreg", l2=0.01, l1=0.001, penalty_scope="all",
                                                   mixup=0.2, ema=0.9), model))
    assert list(on.active) == ["kernel-penalty", "mixing", "weight-average"]
    kernels = [model[0].weight, model[2].weight]
    by_hand = sum(0.01 * (k ** 2).sum() + 0.001 * k.abs().sum() for k in kernels)
    assert on.penalty(model).item() == pytest.approx(by_hand.item(), rel=1e-6)
    x, target = on.before_batch(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 0, 1]))
    assert target.shape == (4, 10) and torch.allclose(target.sum(1), torch.ones(4))  # mixed: probability rows


# --- a user's regularizer ----------------------------------------------------------------------------

def test_a_file_regularizer_adds_an_option_a_grid_axis_and_a_factor(registry):
    config_lib.import_user_file(EXAMPLE, "regularizer")
    assert "erasing" in {f.name for f in config_fields()}
    cfg = make_config("seed-noreg", erasing=0.5, regularizer_file=str(EXAMPLE))
    assert cfg.erasing == 0.5 and cfg.user_settings == {"erasing": 0.5} and len(cfg.regularizer_file_sha256) == 64
    assert make_config("seed-noreg", erasing=0.0).user_settings == {}  # off is the default: one identity
    assert "random-erasing" in reg_lib.Regularizers(run_info(cfg)).active
    args = build_parser().parse_args(["train", "--erasing", "0.25"])
    assert args.erasing == 0.25
    assert parse_grid(["erasing=0,0.5"]) == {"erasing": [0.0, 0.5]}
    assert parse_factors(["erase=erasing:0/0.5"])[0].high == {"erasing": 0.5}
    assert "erasing = 0.5" in config_lib.to_toml(cfg)
    with pytest.raises(RegulabError, match=r"--erasing must be in \[0, 1\], not 1.5"):
        make_config("seed-noreg", erasing=1.5)


def test_the_example_erases_boxes_of_noise_on_the_device_draws(registry):
    config_lib.import_user_file(EXAMPLE, "regularizer")
    cls = reg_lib.REGULARIZERS["random-erasing"]
    x = torch.zeros(256, 3, 32, 32)
    erased, _ = cls(run_info(make_config("seed-noreg", erasing=1.0))).before_batch(x, torch.zeros(256))
    area = (erased != 0).any(1).float().mean(dim=(1, 2))  # the share of each image in its box
    assert (area > 0.01).all() and (area < 0.45).all()  # the paper's 2-40% of the area, boxes cut to whole pixels
    half, _ = cls(run_info(make_config("seed-noreg", erasing=0.5))).before_batch(x, torch.zeros(256))
    assert 0.35 < (half != 0).flatten(1).any(1).float().mean() < 0.65


def test_a_registration_that_cannot_work_is_refused_in_one_line(registry):
    with pytest.raises(RegulabError, match="declares no strength"):
        @regulab.register_regularizer
        class Nothing(regulab.Regularizer):
            pass
    with pytest.raises(RegulabError, match="setting l2 is already a regulab setting; rename it"):
        @regulab.register_regularizer
        class Shadow(regulab.Regularizer):
            settings = {"l2": regulab.Strength("a second l2")}
    with pytest.raises(RegulabError, match="subclass of regulab.Regularizer"):
        regulab.register_regularizer(object)


def test_a_regularizer_registered_in_python_trains(registry, cifar_sample, tmp_path):
    seen = []

    @regulab.register_regularizer
    class Shrink(regulab.Regularizer):
        """Pull every parameter toward zero after each step (a decay written as a hook)."""

        settings = {"shrink": regulab.Strength("the share taken off every parameter after each step", high=0.1)}

        @torch.no_grad()
        def after_step(self, model):
            for p in model.parameters():
                p.mul_(1 - self.cfg.shrink)

        def on_epoch_end(self, model, epoch):
            seen.append(epoch)

    run = regulab.train("seed-noreg", data=str(cifar_sample), epochs=2, shrink=0.05, out=str(tmp_path / "r"))
    assert seen == [1, 2] and run.config["user_settings"] == {"shrink": 0.05}
    plain = regulab.train("seed-noreg", data=str(cifar_sample), epochs=2, out=str(tmp_path / "plain"))
    assert seen == [1, 2]  # switched off, it is not called
    # 14 steps of 5% less: 0.95 ** 14 = 0.49 of the kernels' size, whatever Adam's small steps add
    assert run.history["norm_conv1"][-1] < 0.7 * plain.history["norm_conv1"][-1]


def test_regularizer_file_errors_are_one_line(tmp_path):
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    broken = tmp_path / "broken.py"
    broken.write_text("import regulab\n@regulab.register_regularizer\nclass A(regulab.Regularizer):\n  settings = {\n")
    for path, message in ((empty, "registers no regularizer; decorate a regulab.Regularizer subclass"),
                          (broken, "failed to load (line 4): SyntaxError"),
                          (tmp_path / "gone.py", "does not exist; pass an existing .py file")):
        done = subprocess.run([sys.executable, "-m", "regulab", "train", "--regularizer-file", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.slow
def test_the_example_trains_is_compared_with_a_baseline_and_is_a_factor(cifar_sample, tmp_path):
    quick = ["--data", str(cifar_sample), "--epochs", "1", "--regularizer-file", str(EXAMPLE)]
    swept = subprocess.run([sys.executable, "-m", "regulab", "sweep", "seed-noreg", "--grid", "erasing=0,0.5",
                            "--baseline", "erasing=0", "--seeds", "2", "--out", str(tmp_path / "s"), *quick],
                           capture_output=True, text=True, timeout=600)
    assert swept.returncode == 0, swept.stderr
    summary = (tmp_path / "s" / "summary.md").read_text()
    assert "erasing=0.5" in summary and "erasing=0" in summary
    parts = regulab.factorial("seed-noreg", factors={"erase": {"erasing": (0.0, 0.5)}, "bn": {"batch_norm": (False, True)}},
                              seeds=2, out=str(tmp_path / "f"), data=str(cifar_sample), epochs=1,
                              regularizer_file=str(EXAMPLE))
    assert [e["name"] for e in parts.effects()][:2] == ["erase", "bn"]


def test_a_tune_strength_outside_its_range_is_refused_before_anything_runs(registry, tmp_path):
    with pytest.raises(RegulabError, match=r"erasing=1.5: --erasing must be in \[0, 1\], not 1.5"):
        regulab.tune("seed-noreg", {"erasing": [0, 1.5]}, out=tmp_path / "t", regularizer_file=str(EXAMPLE))
    assert not (tmp_path / "t").exists()
