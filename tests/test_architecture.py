"""The house rules of the architecture, checked: the diagnostics wing never pulls in torch or
transformers, and every public module's doctests pass."""

import ast
import doctest
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ser_diag

DIAGNOSTIC_MODULES = sorted(
    m.name for m in pkgutil.walk_packages(ser_diag.__path__, "ser_diag.")
    if not m.name.startswith("ser_diag.models") and m.name != "ser_diag.__main__"
)


def test_diagnostics_wing_is_import_light():
    code = ("import sys, importlib\n"
            f"for name in {DIAGNOSTIC_MODULES!r}: importlib.import_module(name)\n"
            "heavy = [k for k in ('torch', 'transformers') if k in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "ser_diag.figures" in DIAGNOSTIC_MODULES and "ser_diag.analysis.bias" in DIAGNOSTIC_MODULES
    assert out.stdout.strip() == "", f"diagnostics import {out.stdout.strip()}"


#: Modules (or packages: their modules together) whose docstrings teach by example (audmetric
#: style), with the least number of examples each must keep.
MODULES_WITH_EXAMPLES = {"ser_diag.metrics": 16, "ser_diag.names": 3, "ser_diag.precision": 12,
                         "ser_diag.resampling": 6}


def _doctest(name):
    module = importlib.import_module(name)
    return doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)


@pytest.mark.parametrize("name", DIAGNOSTIC_MODULES)
def test_doctests(name):
    """Every example in every diagnostics module's docstrings runs and prints what it shows."""
    assert _doctest(name).failed == 0


@pytest.mark.parametrize("name", sorted(MODULES_WITH_EXAMPLES))
def test_modules_keep_their_examples(name):
    modules = [m for m in DIAGNOSTIC_MODULES if m == name or m.startswith(name + ".")]
    attempted = sum(_doctest(m).attempted for m in modules)
    assert attempted >= MODULES_WITH_EXAMPLES[name], f"{name}: {attempted} examples"


def test_doctests_are_really_run():
    """The doctest run above can fail: a planted wrong example is reported as a failure."""
    import types
    planted = types.ModuleType("planted")
    planted.__doc__ = ">>> 1 + 1\n3\n"
    result = doctest.testmod(planted, report=False)
    assert (result.attempted, result.failed) == (1, 1)


# --------------------------------------------------------------------------- the house's shape

#: The layers of ser_diag, lowest first: a module imports only modules of its own layer or
#: below (and no two modules import each other, directly or around a circle). The modelling
#: wing sits beside the diagnostics: it writes with io, and only demo/cli above it import it.
LAYERS = (
    ("schema", "errors", "memory", "names", "outputs", "parallel", "metrics", "precision", "vocabulary"),
    ("io",),
    ("evaluation",),
    ("resampling",),
    ("analysis",),
    ("plots",),
    ("evaluate", "simulate"),
    ("diagnostics",),
    ("figures", "report", "explorer"),
    ("models",),
    ("demo", "cli", "__main__"),
)
MAX_LINES, HARD_MAX_LINES, MAX_METHODS = 600, 800, 30


def _modules() -> dict[str, Path]:
    root = Path(ser_diag.__file__).parent
    found = {}
    for file in root.rglob("*.py"):
        parts = file.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the ser_diag modules it imports (anywhere in the file, lazy imports included)."""
    edges = {}
    for name, file in modules.items():
        found = set()
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                          for a in node.names}
        edges[name] = {m for m in found if m in modules and m != name and not name.startswith(m + ".")}
    return edges


def _layer(module: str) -> int:
    """The layer of a module; the package's face (``import ser_diag``) stands above them all."""
    if module == "ser_diag":
        return len(LAYERS)
    top = module.split(".")[1]
    return next((i for i, names in enumerate(LAYERS) if top in names), -1)


def test_every_module_has_a_layer():
    assert [m for m in _modules() if _layer(m) < 0] == []


def test_imports_only_go_down_the_layers():
    up = [(a, b) for a, targets in _imports(_modules()).items() for b in targets if _layer(b) > _layer(a)]
    assert up == [], "imports from a lower layer to a higher one"


def test_no_import_circle():
    edges = _imports(_modules())
    state: dict[str, int] = {}
    circles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_checks_above_can_fail():
    """A planted circle and an upward import are found by the same functions."""
    edges = {"ser_diag.io": {"ser_diag.analysis.bias"}, "ser_diag.analysis.bias": {"ser_diag.io"}}
    assert _layer("ser_diag.io") < _layer("ser_diag.analysis.bias")
    assert [(a, b) for a, t in edges.items() for b in t if _layer(b) > _layer(a)] == [
        ("ser_diag.io", "ser_diag.analysis.bias")]


def test_rooms_are_small():
    """No module above 600 non-blank lines (800 lines at most), no class above 30 methods."""
    big, wide = [], []
    for name, file in _modules().items():
        text = file.read_text(encoding="utf-8")
        lines = text.splitlines()
        if sum(1 for line in lines if line.strip()) > MAX_LINES or len(lines) > HARD_MAX_LINES:
            big.append((name, len(lines)))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) for b in node.body)
                if methods > MAX_METHODS:
                    wide.append((f"{name}.{node.name}", methods))
    assert big == [] and wide == []
