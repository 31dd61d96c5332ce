"""Build docs/results.md (from docs/results.md.j2) and the README's findings (from
docs/findings.md.j2) out of the committed study folders: every number and verdict on them is
computed here from the runs under docs/study/, as `regulab report` computes its tables (the same
summaries, designs and pairing by machine); the prose is written by hand in the templates.
tests/test_results_page.py rebuilds both and fails where the committed ones differ.

    python scripts/build_results.py            # writes docs/results.md and README.md's findings
    python scripts/build_results.py --check    # exit 1, with the lines that differ, if either is stale
"""

from __future__ import annotations

import difflib
import functools
import sys
from pathlib import Path

import jinja2

from regulab.analysis import Design, summarize
from regulab.effects_report import effect_table, factorial_result, notes
from regulab.files import between_markers
from regulab.measures import MEASURES
from regulab.stats import SequentialDesign
from regulab.study import load_study

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "docs" / "study"
TEMPLATE, PAGE = ROOT / "docs" / "results.md.j2", ROOT / "docs" / "results.md"
FINDINGS_TEMPLATE, README = ROOT / "docs" / "findings.md.j2", ROOT / "README.md"
sys.path.insert(0, str(ROOT / "scripts"))
from device_effect import device_effect  # noqa: E402  (scripts are not a package)
from weight_norms import norm_ratios  # noqa: E402


class Row(dict):
    """One group of a study as `analysis.summarize` gives it; `d(measure)` its paired cell."""

    def d(self, key: str) -> dict:
        return self["paired"][key]

    def per_seed(self, key: str) -> list[float]:
        """This group's per-seed values of a measure, in seed order (its finished runs)."""
        return [r["metrics"][key] for r in sorted(self["_runs"], key=lambda r: r["seed"])]

    def diffs(self, key: str) -> list[float]:
        """The paired differences of a measure, in seed order."""
        base = {r["seed"]: r["metrics"][key] for r in self["_base_runs"]}
        mine = {r["seed"]: r["metrics"][key] for r in self["_runs"]}
        return [mine[s] - base[s] for s in self["pair_seeds"]]


def study(name: str, bootstrap: bool = False, **design) -> dict:
    """A study folder's rows by group label, under its own design, or with the `Design` fields
    named (pair_on="device"; seeds and max_seeds where a study's seeds were looked at before);
    with `bootstrap`, the paired bootstrap over seeds and test images as the report has it."""
    return _study(name, bootstrap, tuple(sorted(design.items())))


@functools.lru_cache(maxsize=None)
def _study(name: str, bootstrap: bool, given: tuple) -> dict:
    manifest, runs = load_study(STUDY / name)
    design = Design.of(manifest, **dict(given))
    rows = summarize(manifest, runs, design=design, bootstrap=2000 if bootstrap else 0)
    by_label = {r["group"]: r for r in rows}
    out = {}
    for r in rows:
        row = Row(r)
        row["_runs"] = [x for x in runs if x["group"] == r["group"]]
        row["_base_runs"] = [x for x in runs if x["group"] == r.get("baseline")]
        row["_baseline_row"] = by_label.get(r.get("baseline"))
        out[r["group"]] = row
    return out


@functools.lru_cache(maxsize=None)
def factorial(name: str) -> dict:
    return factorial_result(STUDY / name)


# -- how numbers are written on the page -------------------------------------------------------

def pts(x: float, digits: int = 2) -> str:
    """A difference in accuracy as signed points: 0.0072 -> +0.72."""
    return f"{x * 100:+.{digits}f}"


def pts_ci(cell: dict, digits: int = 2) -> str:
    """'+0.72 [+0.44, +1.00]' in points."""
    return f"{pts(cell['mean'], digits)} [{pts(cell['low'], digits)}, {pts(cell['high'], digits)}]"


def effect_ci(e: dict) -> str:
    """A factorial effect in points with its interval: '+3.53 [+3.19, +3.86]'."""
    return pts_ci({"mean": e["effect"], "low": e["low"], "high": e["high"]})


def num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


def sgn(x: float, digits: int = 4) -> str:
    return f"{x:+.{digits}f}"


def ci(cell: dict, digits: int = 4, signed: bool = False) -> str:
    """'0.7234 [0.7188, 0.7280]' (signed: '+0.0072 [+0.0044, +0.0100]')."""
    f = sgn if signed else num
    return f"{f(cell['mean'], digits)} [{f(cell['low'], digits)}, {f(cell['high'], digits)}]"


def p(x: float | None) -> str:
    if x is None:
        return "n/a"
    return "<0.0001" if x < 1e-4 else f"{x:.4f}" if x < 0.001 else f"{x:.3f}" if x < 0.01 else f"{x:.2f}"


def word(cell: dict) -> str:
    """The verdict, in bold where decided."""
    return f"**{cell['verdict']}**" if cell["verdict"] in ("better", "worse", "equivalent") else cell["verdict"]


def heading(key: str) -> str:
    return next(m.heading for m in MEASURES if m.key == key)


PENALIZED = ("conv2", "conv4", "conv6", "dense1")  # the kernels the notebook's L2 covers (penalty_scope "seed")


def ratios(found: dict, penalized: bool | None = None) -> list[float]:
    """The mean norm ratios of `norm_ratios`'s kernels: the penalized ones, the others, or all."""
    return [k["ratio"]["mean"] for name, k in found["kernels"].items()
            if penalized is None or (name in PENALIZED) == penalized]


def verdicts(rows: dict, key: str, keys: tuple[str, ...] = ()) -> set[str]:
    """The verdicts a study's paired rows got on a measure (on every measure in `keys` as well)."""
    return {r.d(k)["verdict"] for r in rows.values() if "paired" in r for k in (key, *keys)}


def said(words) -> str:
    """'better' where every row got it, else the verdicts joined: a sentence's verdict, computed."""
    return " or ".join(sorted(set(words)))


def cells(rows: dict, groups: list[str], key: str) -> list[dict]:
    """The paired cells of a measure for the named groups."""
    return [rows[g].d(key) for g in groups]


def render(template: str) -> str:
    """One template rendered with the studies, the number formats and the helpers above."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATE.parent), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pts=pts, pts_ci=pts_ci, effect_ci=effect_ci, num=num, sgn=sgn, ci=ci, p=p, word=word, heading=heading)
    env.globals.update(
        study=study, factorial=factorial, ratios=ratios, penalized=PENALIZED, verdicts=verdicts, said=said, cells=cells,
        nominal_level=lambda looks: SequentialDesign(tuple(looks)).nominal_level(),
        norms=lambda folder, group, baseline: norm_ratios(STUDY / folder, group, baseline),
        device_effect=lambda first, second: device_effect(STUDY / first, STUDY / second), min=min, max=max,
        effect_table=effect_table, factorial_notes=notes)
    return env.get_template(template).render()


FINDINGS = ("<!-- findings: built by scripts/build_results.py from docs/findings.md.j2; edit that file -->",
            "<!-- end of findings -->")


def readme(findings: str) -> str:
    """README.md with its findings section replaced by `findings`."""
    return between_markers(README.read_text(), *FINDINGS, findings)


def built() -> dict[Path, str]:
    """The page and the README as their templates and runs give them."""
    return {PAGE: render(TEMPLATE.name), README: readme(render(FINDINGS_TEMPLATE.name))}


def differences(pages: dict[Path, str]) -> list[str]:
    """The lines in which the committed files differ from `pages` (a unified diff; empty: none)."""
    out = []
    for path, text in pages.items():
        old = path.read_text() if path.is_file() else ""
        out += difflib.unified_diff(old.splitlines(True), text.splitlines(True), f"{path.name} (committed)",
                                    f"{path.name} (built from the runs)")
    return out


def main(argv: list[str]) -> int:
    pages = built()
    if "--check" in argv:
        stale = differences(pages)
        sys.stdout.writelines(stale)
        if stale:
            print("\nthe pages differ from what their runs give: run python scripts/build_results.py")
        return 1 if stale else 0
    for path, text in pages.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
