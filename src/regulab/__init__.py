"""regulab: train CNNs on CIFAR-10 and measure what stops them overfitting.

The Python API (the same engine as the `regulab` command):

    import regulab
    run = regulab.train("seed", epochs=5, data="cifar10-mini")   # any train option as a keyword
    run.history["val_acc"]; run.metrics["test_acc"]; run.path
    fig = run.plot(); run.model; run.evaluate(); run.predict(["cat.jpg"])
    run = regulab.train("seed", data=(x_train, y_train), callbacks=[MyCallback()])
    run = regulab.load("runs/seed-...")
    study = regulab.compare(["seed-noreg", "seed-dropout"], seeds=3, data="cifar10-mini")
    study = regulab.sweep("seed-noreg", {"l2": [0, 1e-4, 1e-3]}, seeds=2, data="cifar10-mini")
    parts = regulab.factorial(["seed-noreg", "seed-all"], seeds=2, data="cifar10-mini")  # which part does what
    regulab.presets()

    @regulab.register_model
    def my_net(dropout_head: float = 0.0) -> torch.nn.Module: ...   # then train(model="my-net")

    @regulab.register_regularizer
    class RandomErasing(regulab.Regularizer):                          # then train(erasing=0.5)
        settings = {"erasing": regulab.Strength("share of images with a box erased")}
        def before_batch(self, x, target): ...
    tuned = regulab.tune("seed-noreg", {"erasing": [0, 0.25, 0.5]}, data="cifar10-mini")
"""

from regulab.errors import RegulabError

__version__ = "0.1.0"
_API = ("train", "load", "compare", "sweep", "factorial", "tune", "presets", "register_model", "register_regularizer",
        "Regularizer", "Strength", "Run", "Study", "Factorial", "Tuning")
__all__ = ["RegulabError", "__version__", *_API]


def __getattr__(name: str):
    # The API imports PyTorch; `regulab --help` and `regulab --version` should not wait for it.
    if name in _API:
        from regulab import api

        return getattr(api, name)
    raise AttributeError(f"module 'regulab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
