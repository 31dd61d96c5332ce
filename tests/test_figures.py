import numpy as np
from PIL import Image

from regulab.callbacks import epoch_line
from regulab.figures import plot_curves

ROW = {"epoch": 3, "loss": 1.4717, "acc": 0.6112, "val_loss": 1.4253, "val_acc": 0.6213, "data_loss": 1.1,
       "penalty": 0.37, "val_data_loss": 1.05, "seconds": 27.04, "images_per_s": 1402.6}


def test_epoch_line_reads_like_keras():
    assert epoch_line(ROW, 30) == ("Epoch 3/30 - 27.0s - loss: 1.4717 - acc: 0.6112 - val_loss: 1.4253 "
                                   "- val_acc: 0.6213 - 1,403 img/s")
    no_val = {**ROW, "val_loss": None, "val_acc": None}
    assert "val_" not in epoch_line(no_val, 30)


def test_curves_have_two_panels_in_the_seeds_colours(tmp_path):
    history = [{**ROW, "epoch": e, "loss": 2 / e, "val_loss": 1 + 0.1 * e} for e in range(1, 6)]
    path = plot_curves(history, tmp_path / "curves.png")
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    left, right = pixels[:, :500], pixels[:, 500:]
    blue = lambda p: ((p[..., 2] > 200) & (p[..., 0] < 60) & (p[..., 1] < 60)).sum()  # noqa: E731
    orange = lambda p: ((p[..., 0] > 230) & (abs(p[..., 1] - 165) < 30) & (p[..., 2] < 60)).sum()  # noqa: E731
    for panel in (left, right):  # train in blue and validation in orange, in both panels
        assert blue(panel) > 100 and orange(panel) > 100
