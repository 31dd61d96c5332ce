"""Training images/s of regulab's seed epoch against a bare PyTorch loop and against Keras.

    python bench/throughput.py [--data PATH] [--repeats 2] [--precisions bf16,fp32] [--threads 2]

Every side trains the seed network at batch 32 on the same data for whole epochs (a short burst
hides the slow-down some CPUs show as training goes on). The bare loop is the floor of what
PyTorch can do here: a random permutation, gather, forward, loss, backward, fused Adam, and
nothing else. regulab's epoch adds its L2 penalty, Keras's Adam epsilon, per-sample metrics and
its run folder. Where TensorFlow is installed (pip install 'regulab[keras]'), the seed's own
stack runs too: Keras 3, the same layers, L2 and Adam, model.fit for one epoch with validation,
in float32 (as the seed runs it) and with the mixed_bfloat16 policy; its second epoch is timed,
so that tracing the graph is not counted. Runs alternate so drift in the machine hits all alike;
the table gives medians, and the ratio of Keras's epoch time (with validation) to regulab's.
The same sitting measures each precision's ceiling (seed_profile.matmul_rate: a 2048x2048 matrix
product on the same threads), and regulab's training rate in GFLOP/s (its images/s times the
FLOPs of a training step counted by torch.utils.flop_counter) is printed as a share of it, so
that both ratios travel to other CPUs. JSON goes to bench/results/throughput.json.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from regulab import data as data_lib
from regulab.config import make_config
from regulab.evaluation import autocast
from regulab.models import create_model
from regulab.runtime import device_name, native_bf16
from regulab.training import train

from seed_profile import matmul_rate

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}

RESULTS = Path(__file__).resolve().parent / "results"


def bare_epoch(splits, precision: str, batch_size: int) -> float:
    """One epoch of the plainest fast loop; returns training images/s."""
    torch.manual_seed(0)
    device = torch.device("cpu")
    model = create_model("seed-cnn").to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    x, y = splits.train
    started = time.perf_counter()
    for idx in torch.randperm(len(y)).split(batch_size):
        with autocast(device, precision):
            loss = F.cross_entropy(model(x[idx].contiguous(memory_format=torch.channels_last)).float(), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return len(y) / (time.perf_counter() - started)


def flops_per_image(batch_size: int = 32) -> float:
    """The seed network's training FLOPs an image (one forward and backward), counted exactly."""
    model = create_model("seed-cnn")
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch_size, 3, 32, 32)).sum().backward()
    return counter.get_total_flops() / batch_size


def regulab_epoch(splits, precision: str, data: str, threads: int) -> tuple[float, float]:
    """One epoch of regulab's own training; returns (training images/s, epoch seconds with validation)."""
    with tempfile.TemporaryDirectory() as out:
        cfg = make_config("seed", epochs=1, precision=precision, device="cpu", out=out, data=data,
                          threads=threads)
        train(cfg, splits=splits, log=lambda *_: None, progress=False)
        row = json.loads((Path(out) / "history.json").read_text())[0]
    return row["images_per_s"], row["seconds"]


def keras_epoch(splits, precision: str, threads: int) -> float | None:
    """Seconds of the second epoch (training and validation) of the seed in Keras on `threads`
    threads, or None where TensorFlow is not installed."""
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    if tf.config.threading.get_intra_op_parallelism_threads() != threads:  # settable once, before TF starts
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    keras.utils.set_random_seed(0)
    layers, l2 = keras.layers, keras.regularizers.l2(1e-3)

    def conv(width, regularized):
        return layers.Conv2D(width, 3, padding="same", activation="relu", kernel_regularizer=l2 if regularized else None)

    model = keras.Sequential([keras.Input((32, 32, 3))] + [
        layer for width in (32, 64, 128) for layer in (conv(width, False), conv(width, True), layers.MaxPooling2D())
    ] + [layers.Flatten(), layers.Dense(256, activation="relu", kernel_regularizer=l2),
         layers.Dense(10, activation="softmax", dtype="float32")])
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    (x, y), (x_val, y_val) = [(t[0].permute(0, 2, 3, 1).numpy(), t[1].numpy()) for t in (splits.train, splits.val)]

    class EpochTimes(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):  # Keras validates before this call
            self.seconds = time.perf_counter() - self.started

    timer = EpochTimes()
    model.fit(x, y, batch_size=32, epochs=2, validation_data=(x_val, y_val), verbose=0, callbacks=[timer])
    keras.mixed_precision.set_global_policy("float32")
    return timer.seconds


def keras_version() -> str | None:
    try:
        import keras
        import tensorflow as tf
    except ImportError:
        return None
    return f"Keras {keras.__version__}, TensorFlow {tf.__version__}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 archive (default: $REGULAB_DATA, cache, or download)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="bf16,fp32")
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    raw = data_lib.load_data(args.data)
    splits = data_lib.prepare(raw)
    cpu = torch.device("cpu")
    rows = []
    flops = flops_per_image()
    for precision in args.precisions.split(","):
        if precision == "bf16" and not native_bf16(cpu):
            print("skipping bf16: this CPU has no native bf16 (emulated, neither regulab nor Keras would be "
                  "measured at its best)", file=sys.stderr)
            continue
        bare, tool, epoch_s, keras_s = [], [], [], []
        for _ in range(args.repeats):
            bare.append(bare_epoch(splits, precision, 32))
            ips, seconds = regulab_epoch(splits, precision, raw.source, torch.get_num_threads())
            tool.append(ips)
            epoch_s.append(seconds)
            keras_s.append(keras_epoch(splits, precision, torch.get_num_threads()))
        keras_median = statistics.median(keras_s) if None not in keras_s else None
        ceiling = matmul_rate(DTYPES[precision]) * 1e9
        rows.append({"precision": precision, "ceiling_gflops": ceiling / 1e9,
                     "regulab_share_of_ceiling": statistics.median(tool) * flops / ceiling,
                     "bare_images_per_s": statistics.median(bare),
                     "regulab_images_per_s": statistics.median(tool),
                     "regulab_over_bare": statistics.median(tool) / statistics.median(bare),
                     "regulab_epoch_seconds": statistics.median(epoch_s), "keras_epoch_seconds": keras_median,
                     "keras_over_regulab": keras_median / statistics.median(epoch_s) if keras_median else None,
                     "runs": {"bare": bare, "regulab": tool, "regulab_epoch_seconds": epoch_s, "keras_epoch_seconds": keras_s}})

    print(f"{device_name(cpu)}, {torch.get_num_threads()} threads, PyTorch {torch.__version__}; "
          f"a training step: {flops / 1e6:.0f} MFLOP an image")
    print(f"{'precision':<10}{'bare img/s':>12}{'regulab img/s':>15}{'ratio':>8}{'ceiling GFLOP/s':>17}{'share':>7}"
          f"{'epoch s (with val)':>20}{'Keras epoch s':>15}{'Keras / regulab':>17}")
    for r in rows:
        keras_columns = (f"{r['keras_epoch_seconds']:>15.1f}{r['keras_over_regulab']:>17.2f}" if r["keras_epoch_seconds"]
                         else f"{'(no TensorFlow)':>15}{'':>17}")
        print(f"{r['precision']:<10}{r['bare_images_per_s']:>12,.0f}{r['regulab_images_per_s']:>15,.0f}"
              f"{r['regulab_over_bare']:>8.2f}{r['ceiling_gflops']:>17,.0f}{r['regulab_share_of_ceiling']:>7.0%}"
              f"{r['regulab_epoch_seconds']:>20.1f}{keras_columns}")
    RESULTS.mkdir(exist_ok=True)
    info = {"machine": device_name(torch.device("cpu")), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "keras": keras_version(),
            "flops_per_image": flops, "train_images": len(splits.train[1]), "repeats": args.repeats, "rows": rows}
    (RESULTS / "throughput.json").write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
