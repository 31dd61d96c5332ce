"""docs/results.md and the README's findings are built from the committed runs
(scripts/build_results.py): a committed page that differs from what its runs give fails here,
with the lines that differ, so no number on them can drift from the runs or be typed by hand."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import build_results  # noqa: E402  (scripts are not a package)


@pytest.fixture(scope="module")
def pages():
    return build_results.built()


def test_the_committed_pages_are_what_their_runs_give(pages):
    stale = build_results.differences(pages)
    assert not stale, "run python scripts/build_results.py:\n" + "".join(stale[:60])


def test_a_number_edited_by_hand_is_caught(pages, tmp_path, monkeypatch):
    """The seed question's CPU difference typed one hundredth of a point higher on a copy of the page."""
    page = build_results.PAGE
    text = page.read_text()
    number = build_results.pts_ci(build_results.study("seed-question")["seed"].d("test_acc"))
    assert number in text
    shown = number.split(" ")[0]
    typed = number.replace(shown, f"{float(shown) + 0.01:+.2f}", 1)
    edited = tmp_path / "results.md"
    edited.write_text(text.replace(number, typed, 1))
    stale = build_results.differences({edited: pages[page]})
    assert any(line.startswith("-") and typed in line for line in stale[2:])  # the committed copy's line
    assert any(line.startswith("+") and number in line for line in stale[2:])  # what the runs give
