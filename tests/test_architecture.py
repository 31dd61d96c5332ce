"""The modules' dependencies point one way: read from every import in src/regulab, those inside
functions included, each module imports only modules of lower layers (so there is no cycle)."""

import ast
from pathlib import Path

import regulab

SOURCE = Path(regulab.__file__).parent
# Bottom to top. Run folders, figures and statistics sit below the engine: its callbacks write
# them, and statistics are plain numbers. The package's face (__init__, __main__) is not a layer.
LAYERS = [
    {"errors", "evaluation", "parallel", "stats", "measures"},
    {"files", "config", "augment", "racing"},
    {"runtime", "models", "rundir", "placement"},
    {"folders", "optim", "figures", "tracking", "regularizers"},
    {"data"},
    {"callbacks", "datacheck"},
    {"training"},
    {"trained", "launch", "study"},
    {"designs"},
    {"analysis"},
    {"effects"},
    {"report"},
    {"effects_report"},
    {"sweeps"},
    {"tuning"},
    {"api", "cli"},
]
FACE = {"__init__", "__main__"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "regulab":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("regulab.")}
    return found - {path.stem, "__version__"}


def test_every_module_has_a_layer():
    modules = {p.stem for p in SOURCE.glob("*.py")} - FACE
    layered = set().union(*LAYERS)
    assert modules == layered, f"place {sorted(modules - layered)} in LAYERS; drop {sorted(layered - modules)}"


def test_imports_only_point_down():
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    upward = [f"{path.stem} (layer {layer[path.stem]}) imports {dep} (layer {layer[dep]})"
              for path in sorted(SOURCE.glob("*.py")) if path.stem not in FACE
              for dep in sorted(imports_of(path)) if dep not in FACE and layer[dep] >= layer[path.stem]]
    assert not upward, "\n".join(upward)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "report.py"
    module.write_text("import os\n\ndef f():\n    from regulab.sweeps import sweep\n    import regulab.cli\n")
    assert imports_of(module) == {"sweeps", "cli"}


def test_the_command_line_is_built_without_importing_torch():
    """`regulab --help` answers at once: building every command's options imports no PyTorch,
    numpy or scipy (the lazy imports in cli.py and the package's face exist for this)."""
    import subprocess
    import sys

    code = ("import sys; from regulab.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
