"""A study's plan, as pure code below both the launcher (`sweeps`) and the reports: what
identifies a run, the grid, the groups (runs that differ only in their seed), which group each
is compared with, the plan file (sweep.json), and the finished runs a plan lists.

A run is identified by its full resolved settings (less where and how fast it runs), so the
same training reached from two sweeps, or under two names (`l2=0` of seed-noreg is seed-noreg;
`train_fraction=1` is the preset itself), is trained once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

from regulab.config import PRESETS, SWEEP_OWN, Config, config_fields, make_config
from regulab.errors import RegulabError, unknown_name
from regulab.rundir import CONFIG, HISTORY_JSON, METRICS, PROVENANCE, TEST_PREDICTIONS, RunDir
from regulab.runtime import machine_of

MANIFEST = "sweep.json"
# Settings that change where a run is written or how fast it goes, never what it computes; and the
# preset's name, which only records where the values came from.
NOT_IDENTITY = {"out", "preset", "threads", "eval_batch_size", "tensorboard", "mlflow"}


def run_key(cfg: Config) -> str:
    """The folder name of the run `cfg` describes: readable parts, and a hash of everything it
    computes. Only values that differ from `Config`'s defaults enter the hash, so a setting
    added to regulab later (at its default) leaves the names of earlier runs as they were."""
    defaults = Config()
    identity = {k: v for k, v in sorted(cfg.settings().items()) if k not in NOT_IDENTITY and v != getattr(defaults, k)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    return f"{cfg.model}-seed{cfg.seed}-{digest}"


def parse_grid(specs: list[str]) -> dict[str, list]:
    """`["l2=0,1e-4", "dropout_head=0,0.5"]` as {setting: [values]}, each value of the setting's type."""
    fields = {f.name: f for f in config_fields() if f.name not in SWEEP_OWN}
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip().lstrip("-").replace("-", "_")
        if not sep:
            raise RegulabError(f"--grid {spec!r} needs the form SETTING=V1,V2,... (for example --grid l2=0,1e-4,1e-3)")
        if name in SWEEP_OWN:
            raise RegulabError(f"--grid cannot vary {name}: use {'--seeds' if name == 'seed' else 'the PRESET arguments'}")
        if name not in fields:
            raise unknown_name("setting", name, fields, "--grid takes any `regulab train` option, with _ or -")
        if name in grid:
            raise RegulabError(f"--grid names {name} twice; give all its values in one --grid {name}=V1,V2")
        items = [v.strip() for v in values.split(",") if v.strip()]
        if not items:
            raise RegulabError(f"--grid {name}= has no values; give at least one, as in --grid {name}=V1,V2")
        grid[name] = [setting_value(fields[name], v) for v in items]
        if len(set(map(str, grid[name]))) < len(grid[name]):
            raise RegulabError(f"--grid {name} repeats a value; give each value once")
    return grid


def setting_value(field: dataclasses.Field, text: str, option: str = "--grid"):
    """`text` as a value of the setting `field`, else a one-line error naming `option`."""
    kind = type(field.default) if field.default is not None else str
    try:
        if kind is bool:
            return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}[text.lower()]
        return kind(text)
    except (KeyError, ValueError):
        expected = "true or false" if kind is bool else {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
        raise RegulabError(f"{option} {field.name}: {text!r} is not {expected}") from None


def value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class Group:
    """The runs that differ only in their seed: one preset at one point of the grid."""

    label: str
    preset: str
    point: dict
    runs: dict[int, str]  # seed: run key

    @classmethod
    def from_manifest(cls, entry: dict) -> "Group":
        return cls(entry["label"], entry["preset"], entry["point"], {int(s): k for s, k in entry["runs"].items()})

    def config(self, overrides: dict, seed: int) -> Config:
        return make_config(self.preset, **overrides, **self.point, seed=seed)

    @classmethod
    def planned(cls, label: str, preset: str, point: dict, seeds: int, overrides: dict, named: str = "") -> "Group":
        """The group with its runs for seeds 0..seeds-1 resolved: a bad value fails here, in one
        line that names the group (as `named`, else its label)."""
        group = cls(label, preset, point, {})
        try:
            group.runs = {s: run_key(group.config(overrides, s)) for s in range(seeds)}
        except RegulabError as exc:
            raise RegulabError(f"{named or label}: {exc}") from None
        return group

    def same_as(self, overrides: dict) -> str | None:
        """The other preset whose trainings this group's runs are (`l2=1e-3` of seed-noreg is the
        seed preset), for a report to say so; None when there is none."""
        for name in PRESETS:
            if name == self.preset:
                continue
            try:
                if all(run_key(make_config(name, **overrides, seed=int(s))) == key for s, key in self.runs.items()):
                    return name
            except RegulabError:  # the sweep's fixed settings do not apply to that preset (say, fast has no validation set)
                continue
        return None


def plan(presets: list[str], grid: dict[str, list], seeds: int, overrides: dict) -> list[Group]:
    """Every group's resolved runs, checked before anything runs: a bad value fails here, in one line."""
    for preset in presets:
        if preset not in PRESETS:
            raise unknown_name("preset", preset, PRESETS, "`regulab presets` lists them")
    if seeds < 1:
        raise RegulabError(f"--seeds must be at least 1, not {seeds}")
    if len(set(presets)) < len(presets):
        raise RegulabError("a preset is named twice; name each once")
    shared = sorted(set(grid) & set(overrides))
    if shared:
        raise RegulabError(f"{shared[0]} is both a --grid axis and a fixed option; give it one way")
    groups = []
    for preset in presets:
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values))
            words = ([preset] if len(presets) > 1 or not grid else []) + [f"{k}={value_text(v)}" for k, v in point.items()]
            groups.append(Group.planned(" ".join(words), preset, point, seeds, overrides))
    return groups


def baseline_of(groups: list[Group], baseline: str) -> dict[str, Group]:
    """For each group, the group it is compared with: `baseline` names a preset (the same grid
    point of that preset) or a grid value such as `l2=0` (the same preset at that value)."""
    name, sep, value = baseline.partition("=")
    by_key = {(g.preset, json.dumps(g.point, sort_keys=True)): g for g in groups}
    matched = {}
    for g in groups:
        if sep:
            axis = name.replace("-", "_")
            if axis not in g.point:
                raise RegulabError(f"--baseline {baseline}: {axis} is not a --grid axis of this sweep")
            point = {**g.point, axis: setting_value(next(f for f in config_fields() if f.name == axis), value)}
            base = by_key.get((g.preset, json.dumps(point, sort_keys=True)))
        else:
            base = by_key.get((name, json.dumps(g.point, sort_keys=True)))
        if base is None:
            choices = "a preset of this sweep" if not sep else f"one of the values of its --grid {name}"
            raise RegulabError(f"--baseline {baseline} is not part of this sweep; name {choices}")
        matched[g.label] = base
    return matched


def read_manifest(folder: Path) -> dict | None:
    file = Path(folder) / MANIFEST
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise RegulabError(f"{file} is unreadable ({exc}); delete it and run the sweep again") from None


def describe(manifest: dict) -> str:
    parts = [" ".join(manifest.get("presets") or [])]
    parts += [f"--grid {k}={','.join(map(str, v))}" for k, v in (manifest.get("grid") or {}).items()]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in (manifest.get("settings") or {}).items()]
    return " ".join(parts)


def load_study(folder: Path) -> tuple[dict, list[dict]]:
    """A sweep folder's plan (sweep.json) and its finished runs, one dict per (group, seed)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise RegulabError(f"{folder} holds no {MANIFEST}; run `regulab compare` or `regulab sweep` with --out {folder} first")
    runs_dir = folder / manifest["runs_dir"]
    runs = []
    for group in manifest["groups"]:
        for seed, key in sorted(group["runs"].items(), key=lambda item: int(item[0])):
            run = RunDir(runs_dir / key)
            if not run.finished():
                continue
            metrics = run.read_json(METRICS)
            final_val = metrics.get("final_val_acc")
            metrics["gap"] = None if final_val is None else metrics["final_acc"] - final_val
            provenance = run.read_json(PROVENANCE) if (run.path / PROVENANCE).is_file() else None
            metrics["machine"] = machine_of(metrics, provenance)
            predictions = run.path / TEST_PREDICTIONS
            runs.append({"group": group["label"], "preset": group["preset"], "point": group["point"], "seed": int(seed),
                         "key": key, "path": run.path, "config": run.read_json(CONFIG),
                         "history": run.read_json(HISTORY_JSON), "metrics": metrics,
                         "predictions": predictions if predictions.is_file() else None})
    return manifest, runs
