"""A run described by one TOML file: read, written beside every run, and repeated from it."""

import json

import pytest

from regulab.cli import main
from regulab.config import make_config, read_toml, to_toml
from regulab.errors import RegulabError


def test_toml_round_trip_keeps_every_setting(tmp_path):
    cfg = make_config("fast", seed=3, data="cifar10-mini", out="somewhere")
    (tmp_path / "c.toml").write_text(to_toml(cfg))
    values = read_toml(tmp_path / "c.toml")
    assert "out" not in values  # repeating a run writes a new folder
    assert make_config(values.pop("preset"), **values, out="somewhere") == cfg


def test_train_from_a_config_file_with_overrides_then_repeat_from_the_run(cifar_sample, tmp_path, capsys):
    (tmp_path / "my.toml").write_text(f'preset = "seed-dropout"\ndata = "{cifar_sample}"\nepochs = 1\nbatch_size = 128\n'
                                      'dropout_head = 0.25\n')
    first = tmp_path / "first"
    assert main(["train", "--config", str(tmp_path / "my.toml"), "--batch-size", "256", "--out", str(first)]) == 0
    saved = json.loads((first / "config.json").read_text())
    assert saved["preset"] == "seed-dropout" and saved["dropout_blocks"] == 0.25  # from the preset
    assert saved["dropout_head"] == 0.25 and saved["epochs"] == 1  # from the file
    assert saved["batch_size"] == 256  # the command line wins
    assert (first / "config.toml").read_text().startswith("# A regulab run. Repeat it with")

    second = tmp_path / "second"
    assert main(["train", "--config", str(first / "config.toml"), "--out", str(second)]) == 0
    again = json.loads((second / "config.json").read_text())
    assert {**again, "out": None} == {**saved, "out": None}
    history = [json.loads((d / "history.json").read_text())[0] for d in (first, second)]
    assert history[0]["loss"] == pytest.approx(history[1]["loss"], rel=1e-5)


@pytest.mark.parametrize("text, message", [
    ("epocs = 3\n", "unknown setting in"),
    ("epochs = 'three'\n", "epochs must be int, not str"),
    ("lr = true\n", "lr must be float, not bool"),
    ("epochs = \n", "is not valid TOML"),
])
def test_bad_config_files_are_one_line_errors(tmp_path, text, message, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RegulabError, match=message):
        read_toml(path)
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    if "epocs" in text:
        assert "did you mean 'epochs'?" in err


def test_missing_config_file(tmp_path):
    with pytest.raises(RegulabError, match="does not exist"):
        read_toml(tmp_path / "none.toml")
