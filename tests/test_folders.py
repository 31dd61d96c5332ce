"""Folders of your own images: layouts, conversions, bad data, the cache, and equivalence with
the bundled subset."""

import os

import numpy as np
import pytest
from PIL import Image

from regulab import data as data_lib
from regulab import folders
from regulab.config import make_config
from regulab.errors import RegulabError
from regulab.training import train
from tests.conftest import colour_folder, write


def test_held_out_split_is_stratified_deterministic_and_said(tmp_path):
    root = colour_folder(tmp_path / "colours", per_class=10)
    raw = data_lib.load_data(root, image_size=8, test_fraction=0.2, split_seed=777)
    assert raw.classes == ("blue", "green", "red")
    assert raw.x_train.shape == (24, 3, 8, 8) and raw.x_test.shape == (6, 3, 8, 8)
    assert np.bincount(raw.y_test).tolist() == [2, 2, 2]  # 20% of each class
    assert any("held out 20% of each class" in note for note in raw.notes)
    again = data_lib.load_data(root, image_size=8, test_fraction=0.2, split_seed=777)
    assert raw.test_files == again.test_files
    other = data_lib.load_data(root, image_size=8, test_fraction=0.2, split_seed=1)
    assert other.test_files != raw.test_files


def test_train_and_test_folders_are_the_split(tmp_path):
    root = colour_folder(tmp_path / "d", per_class=4, split="train")
    colour_folder(root, per_class=2, split="test")
    raw = data_lib.load_data(root, image_size=12)
    assert (len(raw.y_train), len(raw.y_test)) == (12, 6) and not raw.notes
    assert all(f.startswith("test/") for f in raw.test_files)
    assert raw.x_train[0].tolist() == np.asarray(Image.open(root / "train/blue/000.png")).transpose(2, 0, 1).tolist()


def test_odd_sizes_and_modes_become_rgb_squares(tmp_path):
    root = tmp_path / "odd"
    colour_folder(root, per_class=2, size=8)
    grey = np.full((10, 30), 100, np.uint8)
    write(root / "blue" / "grey.png", grey)  # wide and grey: replicated, centre-cropped
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black: white once composited
    write(root / "green" / "clear.png", rgba)
    write(root / "red" / "deep.png", np.full((8, 8), 65535, np.uint16))  # 16-bit white
    Image.new("CMYK", (9, 7), (0, 0, 0, 0)).save(root / "red" / "print.jpg")
    palette = Image.new("P", (8, 8), 0)
    palette.info["transparency"] = 0
    palette.save(root / "blue" / "palette.png", transparency=0)
    raw = data_lib.load_data(root, image_size=8, test_fraction=0.4)
    pixels = dict(zip(raw.train_files + raw.test_files, np.concatenate([raw.x_train, raw.x_test])))
    assert (pixels["blue/grey.png"] == 100).all()
    assert (pixels["green/clear.png"] == 255).all()
    assert (pixels["red/deep.png"] == 255).all()
    assert (pixels["blue/palette.png"] == 255).all()
    assert pixels["red/print.jpg"].shape == (3, 8, 8)
    assert raw.found.modes["CMYK"] == 1 and raw.found.sizes[(30, 10)] == 1


@pytest.mark.parametrize("make, message", [
    (lambda r: (r / "red" / "notes.jpg").write_text("not an image"), "red/notes.jpg is not a readable image"),
    (lambda r: (r / "red" / "cut.png").write_bytes((r / "red" / "000.png").read_bytes()[:60]), r"red/cut.png is not a readable "
                                                                                           r"image \(truncated or corrupt"),
    (lambda r: (r / "empty").mkdir(), "class folder .*empty has no images"),
])
def test_bad_files_are_named_in_one_line(tmp_path, make, message):
    root = colour_folder(tmp_path / "d", per_class=5)
    make(root)
    with pytest.raises(RegulabError, match=message):
        data_lib.load_data(root, image_size=8)


def test_skip_bad_leaves_bad_files_out_and_says_how_many(tmp_path):
    root = colour_folder(tmp_path / "d", per_class=5)
    (root / "red" / "a.png").write_text("junk")
    (root / "red" / "b.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(RegulabError, match=r"pass --skip-bad .*\(1 more\)"):
        data_lib.load_data(root, image_size=8)
    raw = data_lib.load_data(root, image_size=8, skip_bad=True)
    assert len(raw.y_train) + len(raw.y_test) == 15
    assert any("--skip-bad left out 2 unreadable files" in note for note in raw.notes)


def test_a_decompression_bomb_is_refused_by_name(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "d", per_class=3, size=8)
    write(root / "red" / "huge.png", np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x40 claims more than this
    with pytest.raises(RegulabError, match=r"red/huge.png is not a readable image \(its header claims 40x40 pixels"):
        data_lib.load_data(root, image_size=8)


@pytest.mark.parametrize("layout, message", [
    ({"only": 3}, "one class folder \\(only\\); a classifier needs two or more"),
    ({}, "has no class folders"),
])
def test_folders_that_cannot_make_a_classifier(tmp_path, layout, message):
    root = tmp_path / "d"
    root.mkdir()
    for name, n in layout.items():
        for i in range(n):
            write(root / name / f"{i}.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RegulabError, match=message):
        data_lib.load_data(root, image_size=8)


def test_a_class_in_train_but_not_in_test_is_named(tmp_path):
    root = colour_folder(tmp_path / "d", per_class=2, split="train")
    colour_folder(root, classes=("blue", "green"), per_class=2, split="test")
    with pytest.raises(RegulabError, match="class 'red' is in .*train but not in .*test"):
        data_lib.load_data(root, image_size=8)


def test_a_class_too_small_to_split_is_named(tmp_path):
    root = colour_folder(tmp_path / "d", per_class=3)
    write(root / "solo" / "one.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(RegulabError, match="class 'solo' has no training images \\(1 in all\\)"):
        data_lib.load_data(root, image_size=8)


def test_data_too_big_for_memory_is_refused_before_decoding(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "d", per_class=3)
    monkeypatch.setattr(folders, "available_memory", lambda: 10_000_000)
    monkeypatch.setattr(folders, "_read_many", lambda *_: pytest.fail("decoded before the memory check"))
    with pytest.raises(RegulabError, match=r"9 images at 512x512 need about .* GiB .*pass --image-size \d+ or less"):
        data_lib.load_data(root, image_size=512)


def test_symlinks_that_leave_the_folder_are_not_followed(tmp_path):
    outside = colour_folder(tmp_path / "elsewhere", per_class=2)
    root = colour_folder(tmp_path / "d", per_class=5)
    os.symlink(outside / "red", root / "stolen")  # a whole class from outside
    os.symlink(outside / "red" / "000.png", root / "red" / "link.png")
    os.symlink(root / "red" / "000.png", root / "blue" / "inside.png")  # inside the folder: followed
    raw = data_lib.load_data(root, image_size=8)
    assert raw.classes == ("blue", "green", "red")
    assert len(raw.y_train) + len(raw.y_test) == 16
    assert any("2 symlinks lead outside" in note for note in raw.notes)


def test_decoded_once_then_read_from_the_cache_until_a_file_changes(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "d", per_class=4)
    first = data_lib.load_data(root, image_size=8)
    real_read = folders._read_many
    monkeypatch.setattr(folders, "_read_many", lambda *_: pytest.fail("decoded again"))
    second = data_lib.load_data(root, image_size=8)
    assert np.array_equal(first.x_train, second.x_train) and first.train_files == second.train_files
    write(root / "red" / "000.png", np.zeros((12, 12, 3), np.uint8))  # replaced: size and age change
    os.utime(root / "red" / "000.png", ns=(1, 1))
    monkeypatch.setattr(folders, "_read_many", real_read)
    third = data_lib.load_data(root, image_size=8)
    changed = third.train_files.index("red/000.png") if "red/000.png" in third.train_files else None
    assert changed is None or (third.x_train[changed] == 0).all()


def test_parallel_decoding_gives_the_same_images(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "d", per_class=12)
    serial = data_lib.load_data(root, image_size=8)
    monkeypatch.setattr(folders, "PARALLEL_FROM", 1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other-cache"))
    parallel = data_lib.load_data(root, image_size=8)
    assert np.array_equal(serial.x_train, parallel.x_train) and serial.train_files == parallel.train_files


def mini_as_folder(root):
    raw = data_lib.load_mini()
    for split, (x, y) in {"train": (raw.x_train, raw.y_train), "test": (raw.x_test, raw.y_test)}.items():
        for i, (image, label) in enumerate(zip(x, y)):
            write(root / split / raw.classes[label] / f"{i:05d}.png", image.transpose(1, 2, 0))
    return root


@pytest.mark.slow
def test_the_bundled_subset_as_a_folder_is_the_same_data_and_the_same_run(tmp_path):
    folder = mini_as_folder(tmp_path / "mini")
    mini, from_folder = data_lib.load_mini(), data_lib.load_data(folder)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(mini, name), getattr(from_folder, name)), name
    assert from_folder.classes == data_lib.CLASSES
    a, b = data_lib.prepare(mini), data_lib.prepare(from_folder)
    assert a.mean == b.mean and a.std == b.std
    histories = []
    for data in ("cifar10-mini", str(folder)):
        cfg = make_config("seed", data=data, epochs=1, train_fraction=0.25, deterministic=True, precision="fp32",
                          threads=1, out=str(tmp_path / f"run-{len(histories)}"))
        train(cfg, log=lambda *_: None, progress=False)
        histories.append(__import__("json").loads((tmp_path / f"run-{len(histories)}" / "history.json").read_text()))
    keys = ("loss", "acc", "val_loss", "val_acc")
    assert [histories[0][0][k] for k in keys] == [histories[1][0][k] for k in keys]
