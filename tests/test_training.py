import json
import math

import pytest
import torch

from regulab import data as data_lib
from regulab import optim, runtime
from regulab import training as train_lib
from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.evaluation import evaluate, tta_views
from regulab.models import build_model, create_model, whitening_weights
from regulab.optim import KerasAdam
from regulab.rundir import RunDir
from regulab.training import train


def keras_adam_steps(w, g, lr, steps, b1=0.9, b2=0.999, eps=1e-7):
    """Keras's Adam written out: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t); w -= alpha * m / (sqrt(v) + eps)."""
    m = [0.0] * len(w)
    v = [0.0] * len(w)
    w = list(w)
    for t in range(1, steps + 1):
        alpha = lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        for i, gi in enumerate(g):
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi * gi
            w[i] -= alpha * m[i] / (math.sqrt(v[i]) + eps)
    return w


# Gradients from tiny (where epsilon dominates) to large (where it does not).
W0, GRAD = [0.5, -0.25, 1.0, 2.0], [1e-6, -3e-7, 0.02, -4.0]


@pytest.mark.parametrize("dtype, fused, tol", [(torch.float64, False, 1e-15), (torch.float32, True, 1e-6)])
def test_keras_adam_matches_keras_formula(dtype, fused, tol):
    w = torch.tensor(W0, dtype=dtype, requires_grad=True)
    opt = KerasAdam([w], lr=1e-3, fused=fused)
    for _ in range(3):
        opt.zero_grad()
        (w * torch.tensor(GRAD, dtype=dtype)).sum().backward()
        opt.step()
    assert torch.allclose(w.detach(), torch.tensor(keras_adam_steps(W0, GRAD, 1e-3, 3), dtype=dtype), rtol=tol, atol=0)


def test_keras_epsilon_placement_differs_from_pytorch_adam():
    """Why KerasAdam exists: PyTorch's Adam with the same epsilon takes a different first step."""
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([w], lr=1e-3, eps=1e-7)
    (w * torch.tensor(GRAD, dtype=torch.float64)).sum().backward()
    opt.step()
    keras = keras_adam_steps(W0, GRAD, 1e-3, 1)
    assert abs(w[0].item() - keras[0]) > 1e-4  # tiny gradient: the two rules disagree by far


def test_precision_falls_back_to_fp32_without_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)
    precision, note = runtime.resolve_precision("auto", cpu)
    assert precision == "fp32" and "slower" in note
    assert runtime.resolve_precision("fp32", cpu) == ("fp32", None)
    assert "emulated" in runtime.resolve_precision("bf16", cpu)[1]


def test_cuda_requested_without_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RegulabError, match="no CUDA GPU"):
        runtime.resolve_device("cuda")
    assert runtime.resolve_device("auto").type == "cpu"


@pytest.fixture(scope="module")
def sample_splits(cifar_sample):
    return data_lib.prepare(data_lib.load_data(cifar_sample))


@pytest.mark.slow
def test_short_run_learns_and_writes_its_folder(tmp_path):
    lines = []
    cfg = make_config("seed", epochs=3, train_fraction=0.5, out=str(tmp_path / "run"), data="cifar10-mini")
    metrics = train(cfg, log=lines.append, progress=False)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["data_loss"] < history[0]["data_loss"]
    assert history[-1]["val_acc"] > 0.25  # well above chance (0.1) after three short epochs on 1,400 images
    assert all(r["steps"] == math.ceil(1400 / 32) for r in history)  # the last partial batch is kept
    for r in history:
        assert r["loss"] == pytest.approx(r["data_loss"] + r["penalty"])
        assert r["penalty"] > 0
    assert sum(line.startswith("Epoch ") for line in lines) == 3
    assert set(metrics) >= {"best_epoch", "best_val_acc", "test_loss", "test_acc"}
    assert metrics["best_val_acc"] == max(r["val_acc"] for r in history)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert set(best) == {k for k, _ in create_model("seed-cnn").state_dict().items()}


def test_progress_bar_shows_inside_the_epoch(sample_splits, tmp_path, capsys):
    train(make_config("seed", epochs=1, out=str(tmp_path / "r")), splits=sample_splits, log=lambda *_: None, progress=True)
    bar = capsys.readouterr().err
    assert "Epoch 1/1" in bar and "/7 [" in bar  # ceil(210 / 32) steps


def test_epoch_metrics_are_averaged_over_every_sample(sample_splits, tmp_path):
    """With a learning rate too small to move the weights, the epoch's running metrics must equal
    an evaluation of the whole training set: every sample counted once, the partial batch too."""
    cfg = make_config("seed", epochs=1, lr=1e-30, batch_size=48, precision="fp32", out=str(tmp_path / "r"))
    train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)  # 210 images: 4 batches and 18 more
    row = json.loads((tmp_path / "r" / "history.json").read_text())[0]
    model = create_model("seed-cnn")
    model.load_state_dict(torch.load(tmp_path / "r" / "last.pt", weights_only=True))
    data_loss, acc, _ = evaluate(model, *sample_splits.train, 1000, "fp32")
    assert row["data_loss"] == pytest.approx(data_loss, rel=1e-5)
    assert row["acc"] == pytest.approx(acc, abs=1e-9)


def test_decoupled_weight_decay_shrinks_kernels_by_lr_times_wd():
    cfg = make_config("seed-wd", lr=1e-3, weight_decay=0.5)
    model = create_model("seed-cnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = optim.build_optimizer(cfg, model)
    (0 * sum(p.sum() for p in model.parameters())).backward()  # zero gradients: decay alone moves weights
    optimizer.step()
    for name, value in model.state_dict().items():
        factor = 1 - 1e-3 * 0.5 if name.endswith("weight") else 1.0  # kernels decay, biases do not
        assert torch.allclose(value, before[name] * factor, rtol=0, atol=1e-9), name


def test_fast_sgd_preset_optimizer_groups_follow_airbench():
    cfg = make_config("fast-sgd")
    model = create_model("fast-net")
    model.whiten_(torch.randn(64, 3, 32, 32))
    optimizer = optim.build_optimizer(cfg, model)
    kernels, norms, others = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    convs = {f"group{i}.{j}.weight" for i in (1, 2, 3) for j in (0, 4)}
    assert {names[id(p)] for p in kernels["params"]} == convs | {"head.weight"}
    assert "whiten.weight" not in {names[id(p)] for g in optimizer.param_groups for p in g["params"]}  # frozen
    assert {names[id(p)] for p in others["params"]} == {"whiten.bias"}
    assert all(names[id(p)].endswith(".bias") for p in norms["params"]) and len(norms["params"]) == 6
    assert norms["lr"] == 64 * kernels["lr"] and norms["weight_decay"] == kernels["weight_decay"] / 64
    # airbench's decoupled values: a shrink of 0.0153 per 1,024 examples per step, whatever the lr.
    assert kernels["lr"] * kernels["weight_decay"] == pytest.approx(0.0153 * 1000 / (1024 * (1 + 1 / 0.15)))
    assert optimizer.defaults["nesterov"] and optimizer.defaults["momentum"] == 0.85


def test_fast_preset_moves_filters_by_muon_and_the_rest_by_sgd_at_airbench_rates():
    cfg = make_config("fast")
    model = create_model("fast-net")
    model.whiten_(torch.randn(64, 3, 32, 32))
    optimizer = optim.build_optimizer(cfg, model)
    muon, sgd = optimizer.optimizers
    names = {id(p): n for n, p in model.named_parameters()}
    assert isinstance(muon, optim.Muon) and isinstance(sgd, torch.optim.SGD)
    assert {names[id(p)] for p in muon.param_groups[0]["params"]} == {f"group{i}.{j}.weight" for i in (1, 2, 3) for j in (0, 4)}
    head, norms, others, whiten_bias = sgd.param_groups
    assert [names[id(p)] for p in head["params"]] == ["head.weight"] and others["params"] == []
    assert [names[id(p)] for p in whiten_bias["params"]] == ["whiten.bias"] and whiten_bias["until_epoch"] == 3
    # airbench94_muon's summed-loss rates, for the mean loss: biases 0.053 * 2000; a shrink of 2e-6 * 2000 a step.
    assert norms["lr"] == pytest.approx(0.053 * 2000) and head["lr"] * head["weight_decay"] == pytest.approx(0.004)
    assert norms["lr"] * norms["weight_decay"] == pytest.approx(0.004)
    assert {k: whiten_bias[k] for k in ("lr", "weight_decay")} == {k: norms[k] for k in ("lr", "weight_decay")}
    assert muon.param_groups[0]["lr"] == 0.24 and muon.param_groups[0]["momentum"] == 0.6
    assert [g["initial_lr"] for g in optimizer.param_groups] == [g["lr"] for g in optimizer.param_groups]


def test_orthogonalize_flattens_the_spectrum():
    update = torch.randn(64, 576) * torch.logspace(-3, 0, 576)  # singular values spread over decades
    s = torch.linalg.svdvals(optim.orthogonalize(update))
    assert s.min() > 0.3 and s.max() < 1.3  # near 1, as U V^T's are, after only three steps
    tall = torch.linalg.svdvals(optim.orthogonalize(update.T))
    assert torch.allclose(tall, s, atol=1e-4)  # the same for the transpose


def test_muon_keeps_each_filter_bank_at_norm_sqrt_out_and_steps_by_lr():
    conv = torch.nn.Conv2d(8, 16, 3)
    muon = optim.Muon([conv.weight], lr=0.1, momentum=0.0)
    conv.weight.grad = torch.randn_like(conv.weight)
    before = conv.weight.detach().clone()
    muon.step()
    rescaled = before * 4 / before.norm()  # sqrt(16 out channels)
    step = (conv.weight.detach() - rescaled).flatten(1)
    assert torch.allclose(step, -0.1 * optim.orthogonalize(conv.weight.grad.flatten(1)), atol=1e-6)
    after = conv.weight.detach().clone()
    conv.weight.grad = None
    muon.step()  # no gradient: nothing moves
    assert torch.equal(conv.weight.detach(), after)


def test_learning_rate_schedules():
    factor = lambda schedule, t, **kw: optim.lr_factor(make_config("seed", schedule=schedule, epochs=10, **kw), t)  # noqa: E731
    assert factor("constant", 7.3) == 1
    assert factor("constant", 0.5, warmup_epochs=2) == 0.25
    assert factor("step", 9.9, step_epochs=5, step_gamma=0.1) == pytest.approx(0.1)
    assert factor("cosine", 0) == 1 and factor("cosine", 5) == pytest.approx(0.5) and factor("cosine", 10) == pytest.approx(0)
    assert factor("cosine", 1, warmup_epochs=1) == 1
    assert factor("onecycle", 1.5) == pytest.approx(0.5) and factor("onecycle", 3) == 1  # 30% warm-up by default
    assert factor("onecycle", 10) == pytest.approx(0)
    # The fast preset's triangle: 0.2 rising to 1 at 23% of the run, then down to 0.07.
    triangle = dict(warmup_epochs=2.3, warmup_from=0.2, decay_to=0.07)
    assert factor("onecycle", 0, **triangle) == pytest.approx(0.2) and factor("onecycle", 2.3, **triangle) == pytest.approx(1)
    assert factor("onecycle", 10, **triangle) == pytest.approx(0.07)
    assert factor("onecycle", 6.15, **triangle) == pytest.approx((1 + 0.07) / 2)
    assert factor("cosine", 10, decay_to=0.1) == pytest.approx(0.1)
    assert factor("linear", 0) == 1 and factor("linear", 2.5) == pytest.approx(0.75) and factor("linear", 10) == 0


def test_early_stopping_keeps_and_evaluates_the_best_epoch(sample_splits, tmp_path):
    # No regularizer, a fast learning rate and 210 images: validation loss turns up within a few epochs.
    cfg = make_config("seed-noreg", epochs=20, lr=1e-3, early_stop=2, monitor="val_loss", out=str(tmp_path / "r"))
    metrics = train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    best = min(history, key=lambda r: r["val_data_loss"])
    assert metrics["epochs_run"] == len(history) == best["epoch"] + 2 < 20
    model = create_model("seed-cnn")
    model.load_state_dict(torch.load(tmp_path / "r" / "best.pt", weights_only=True))
    val = evaluate(model, *sample_splits.val, 1000, metrics["precision"])
    assert val.acc == best["val_acc"] and val.loss == pytest.approx(best["val_data_loss"], rel=1e-6)
    assert metrics["test_acc"] == evaluate(model, *sample_splits.test, 1000, "fp32").acc  # the test is scored in fp32


def test_monitor_val_loss_ranks_by_the_logged_val_loss_penalty_included(sample_splits, tmp_path):
    """Keras's val_loss, as logged, includes the penalty; the best epoch is the one with the lowest of it."""
    cfg = make_config("seed", epochs=4, lr=1e-3, l2=0.05, monitor="val_loss", out=str(tmp_path / "r"))
    metrics = train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert metrics["best_epoch"] == min(history, key=lambda r: r["val_loss"])["epoch"] == metrics["min_val_loss_epoch"]
    assert metrics["best_val_loss"] == min(r["val_loss"] for r in history)


def test_ema_weights_are_the_ones_saved_and_evaluated(sample_splits, tmp_path):
    cfg = make_config("seed", epochs=1, ema=0.99, batch_norm=True, out=str(tmp_path / "r"))
    train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)
    saved = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    checkpoint = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    raw = checkpoint["model"]
    assert set(saved) == set(raw)
    assert not torch.equal(saved["0.weight"], raw["0.weight"])  # averaged, not the raw weights
    assert torch.equal(saved["0.weight"], checkpoint["regularizers"]["weight-average"]["0.weight"])


@pytest.mark.parametrize("preset", ["seed-dropout", "seed-bn", "seed-augment", "seed-wd", "seed-all"])
def test_every_lab_preset_trains(preset, sample_splits, tmp_path):
    cfg = make_config(preset, epochs=2, out=str(tmp_path / preset))
    train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)
    history = json.loads((tmp_path / preset / "history.json").read_text())
    assert history[1]["data_loss"] < history[0]["data_loss"]


def test_tta_averages_mirror_and_one_pixel_shifts():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    assert [w for w, _ in tta_views(x, 0)] == [1.0]
    views = tta_views(x, 2)
    assert sum(w for w, _ in views) == pytest.approx(1.0)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    up_left, down_right = padded[..., 2:, 2:], padded[..., :8, :8]
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:]) and torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])
    expected = [(0.25, x), (0.25, x.flip(3)), (0.125, up_left), (0.125, up_left.flip(3)),
                (0.125, down_right), (0.125, down_right.flip(3))]
    assert len(views) == len(expected)
    for (w, view), (w_expected, view_expected) in zip(views, expected):
        assert w == w_expected and torch.equal(view, view_expected)
    # evaluate() scores the weighted mean of the views' logits.
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    y = torch.tensor([0, 1])
    logits = sum(w * model(v) for w, v in expected)
    loss, acc, _ = evaluate(model, x, y, 1000, "fp32", tta=2)
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == (logits.argmax(1) == y).float().mean().item()


@pytest.mark.slow
def test_fast_preset_short_run_on_mini(monkeypatch, tmp_path):
    monkeypatch.setattr(runtime, "native_bf16", lambda device: False)  # as on a CPU without bf16: it says so
    lines = []
    # A quarter of the subset in batches of 250: 8 steps, at a quarter of the full subset's cost.
    cfg = make_config("fast", data="cifar10-mini", epochs=2, train_fraction=0.25, batch_size=250, out=str(tmp_path / "fast"))
    metrics = train(cfg, log=lines.append, progress=False)
    history = json.loads((tmp_path / "fast" / "history.json").read_text())
    assert metrics["train_size"] == 1000 and metrics["val_size"] == 0  # no validation set
    assert history[1]["data_loss"] < history[0]["data_loss"]
    assert metrics["test_acc"] > 0.2 and metrics["test_acc_tta"] > 0.2  # chance is 0.1
    assert metrics["wall_seconds"] >= metrics["train_seconds"] + metrics["eval_seconds"] > 0
    text = "\n".join(lines)
    assert "training on all 1,000 training images" in text and "test-time augmentation" in text and "wall time" in text
    assert any(line.startswith("note: no native bf16") and "fp32" in line and "slower" in line for line in lines)
    assert metrics["precision"] == "fp32"
    # The whitening layer stayed as the data set it; the rest trained.
    weights = torch.load(tmp_path / "fast" / "last.pt", weights_only=True)
    images = data_lib.prepare(data_lib.load_mini(), 0.0, cfg.split_seed, cfg.train_fraction).train[0][:5000]
    assert torch.equal(weights["whiten.weight"], whitening_weights(images)[0])


@pytest.mark.slow
def test_the_whitening_bias_learns_for_its_epochs_then_holds_still(tmp_path):
    cfg = make_config("fast", data="cifar10-mini", epochs=3, whiten_bias_epochs=1, batch_size=100, train_fraction=0.1)
    splits = data_lib.prepare(data_lib.load_mini(), 0.0, cfg.split_seed, cfg.train_fraction)
    state = train_lib.TrainState.start(cfg, build_model(cfg), splits.train[0], len(splits.classes))
    biases = [state.model.whiten.bias.detach().clone()]
    ctx = train_lib.RunContext(RunDir(tmp_path), torch.device("cpu"), "fp32", train_lib.Workers(),
                               runtime.CoreShare(torch.get_num_threads()), runtime.StopOnSignal(), print, net=state.model)
    for epoch in (1, 2):
        train_lib.train_one_epoch(state, cfg, ctx, epoch, *splits.train)
        biases.append(state.model.whiten.bias.detach().clone())
    assert not torch.equal(biases[1], biases[0])  # epoch 1: it moved
    assert torch.equal(biases[2], biases[1])  # epoch 2: frozen, momentum and weight decay included


def test_whiten_needs_a_model_with_a_whitening_layer(tmp_path):
    with pytest.raises(RegulabError, match="whitening layer"):
        train(make_config("seed", whiten=True, data="cifar10-mini", out=str(tmp_path / "r")), log=lambda *_: None)
    assert not (tmp_path / "r").exists()


def test_lookahead_pulls_a_slow_copy_and_restarts_from_it():
    model = torch.nn.Linear(3, 2)
    lookahead = optim.Lookahead(every=5)
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.finish(model)  # no pull yet: the trained weights stay, not the initial ones
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    lookahead.update(model, progress=0.01)  # the first pull starts the slow copy here
    assert all(torch.equal(model.state_dict()[k], trained[k]) for k in trained)
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.update(model, progress=1.0)  # late: it moves (1 - 0.95^5) of the way
    expected = trained["weight"] + (1 - 0.95**5) * 1.0
    assert torch.allclose(model.weight, expected) and torch.allclose(lookahead.state_dict()["weight"], expected)
    assert torch.equal(model.bias, trained["bias"])
    with torch.no_grad():
        model.weight.add_(1.0)
    lookahead.finish(model)  # the run ends on the slow weights
    assert torch.allclose(model.weight, expected)


def test_an_early_stop_with_lookahead_ends_on_the_slow_weights(sample_splits, tmp_path):
    cfg = make_config("seed-noreg", epochs=20, lr=1e-3, early_stop=1, monitor="val_loss", lookahead=3,
                      out=str(tmp_path / "r"))
    metrics = train(cfg, splits=sample_splits, log=lambda *_: None, progress=False)
    assert metrics["epochs_run"] < 20
    slow = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)["lookahead"]
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert all(torch.equal(last[k], slow[k]) for k in slow)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: waiting for one is what this checks")
@pytest.mark.parametrize("preset, options", [
    ("fast", dict(ema=0.9, lookahead=3, augment="translate,altflip,flip,cutout", mixup=0.2, cutmix=1.0)),
    ("seed", dict(batch_norm=True, dropout_head=0.5)),  # Keras's Adam (fused), the L2 penalty, dropout
])
def test_the_step_loop_never_waits_for_the_gpu(preset, options, monkeypatch, tmp_path):
    """Every step on the device without a read-back: only the NaN checks every CHECK_EVERY steps may wait."""
    cfg = make_config(preset, data="cifar10-mini", epochs=1, batch_size=50, device="cuda", **options)
    splits = data_lib.prepare(data_lib.load_mini(), 0.0, cfg.split_seed)
    x_train, y_train = (t.cuda() for t in splits.train)
    state = train_lib.TrainState.start(cfg, build_model(cfg), x_train, len(splits.classes))
    checks = []
    real_check = train_lib.EpochSums.check_finite

    def allowed_sync(sums, *args):
        torch.cuda.set_sync_debug_mode(0)
        real_check(sums, *args)
        checks.append(args[2])
        torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(train_lib.EpochSums, "check_finite", allowed_sync)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronizing call in the loop raises
    try:
        precision = runtime.resolve_precision("auto", x_train.device)[0]
        sums = train_lib.train_one_epoch(state, state.model, cfg, 1, x_train, y_train, precision, train_lib.Workers(),
                                         runtime.StopOnSignal(), runtime.CoreShare(torch.get_num_threads()), tmp_path)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(checks) == math.ceil(len(y_train) / cfg.batch_size / train_lib.CHECK_EVERY)
    assert sums.seen == len(y_train) and torch.isfinite(sums.data_loss)
    # The augmentation's generator lives on the GPU and its state goes into the checkpoint.
    assert state.augment.generator.device.type == "cuda" and state.augment.state_dict()["device"] == "cuda"
