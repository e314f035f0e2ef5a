"""The explorer's selection state without data or widgets, and the explorer's rooms: state imports
no matplotlib or ipywidgets, imports go one way, no class or module grows past its bound."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from ser_diag.explorer.state import (BEYOND_VIEWS, BIN_SCHEMES, CELL_VIEWS, GROUP_VIEWS, VIEWS, ExplorerState,
                                     bin_index, choice, class_code)

CHOICES = dict(systems=["sysA", "sysB", "sysC"], splits=["Development", "Test1"], group_columns=["Gender", "SpkrID"])
PACKAGE = Path(__file__).resolve().parents[2] / "ser_diag" / "explorer"
#: Each room and the rooms it may import (``widgets`` only the ones below the facade).
ROOMS = {"state": set(), "engine": {"state"}, "views": {"state"}, "listing": {"state", "engine", "views"},
         "facade": {"state", "engine", "views", "listing", "widgets"}, "widgets": {"state", "listing"},
         "__init__": {"state", "engine", "views", "listing", "facade", "widgets"}}


def test_a_state_changes_without_data_or_widgets():
    s = ExplorerState(system="sysA")
    cell = s.changed(dict(view="binned_EmoVal", cell_true=2, cell_pred=1, sort_by="error"), **CHOICES)
    assert (cell.view_attribute, cell.cell_true, cell.cell_pred, cell.sort_by) == ("EmoVal", 2, 1, "error")
    assert s.view == "confusion", "changed() returns a new state"
    # a change of view, split, group or bins clears the cell and the sort order; others keep them
    for change in (dict(view="binned_EmoAct"), dict(bins="quantile"), dict(split="Test1"),
                   dict(group_column="Gender", group_value="Female")):
        moved = cell.changed(change, **CHOICES)
        assert (moved.cell_true, moved.cell_pred, moved.sort_by) == (None, None, None), change
    kept = cell.changed(dict(compare_system="sysB", ascending=False), **CHOICES)
    assert (kept.cell_true, kept.cell_pred, kept.selected_systems) == (2, 1, ["sysA", "sysB"])
    assert cell.changed(dict(bins="quantile", cell_true=0), **CHOICES).cell_true == 0
    # comparing a system with itself compares nothing; no group column, no group value
    assert kept.changed(dict(system="sysB"), **CHOICES).compare_system is None
    grouped = s.changed(dict(group_column="Gender", group_value="Male"), **CHOICES)
    assert grouped.data_key == ("Development", "Gender", "Male")
    assert grouped.changed(dict(group_column=None), **CHOICES).group_value is None
    assert ExplorerState(system="a", group_column="SpkrID", group_value=127).data_key[2] == "127"


@pytest.mark.parametrize("change, message", [
    (dict(colour="red"), "unknown state fields"), (dict(system="nope"), "unknown system"),
    (dict(compare_system="nope"), "unknown system"), (dict(view="pie"), "view must be one of"),
    (dict(bins="deciles"), "bins must be one of"), (dict(split="Train"), "has no predictions"),
    (dict(group_column="Mood"), "group column must be one of"),
])
def test_a_wrong_change_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        ExplorerState(system="sysA").changed(change, **CHOICES)


def test_the_likely_next_states_are_the_other_views_then_the_other_systems():
    s = ExplorerState(system="sysA", view="regression_to_mean", cell_true=1)
    wanted = s.likely_next(CHOICES["systems"], likely=["sysC", None])
    assert all(n.cell_true is None and n.cell_pred is None for n, _ in wanted)
    assert [n.view for n, _ in wanted[:len(VIEWS) - 1 - len(CELL_VIEWS)]] == \
        [v for v in VIEWS if v not in CELL_VIEWS and v != s.view]     # cell views need a comparison
    assert [(n.system, n.compare_system) for n, _ in wanted[-3:]] == [("sysB", None), ("sysC", None),
                                                                       ("sysA", "sysC")]
    compared = dataclasses.replace(s, view="confusion", compare_system="sysB").likely_next(CHOICES["systems"], [])
    assert {n.view for n, c in compared if c} == set(CELL_VIEWS) and all(n.compare_system for n, c in compared if c)
    assert set(GROUP_VIEWS) <= set(BEYOND_VIEWS) <= set(VIEWS) and BIN_SCHEMES == ("unit", "quantile")


def test_cells_are_read_as_codes_names_indices_and_labels():
    assert class_code("Fear") == class_code("fear") == class_code("F") == "F"
    labels = ["[1, 2)", "[2, 3)", "[3, 7]"]
    assert bin_index(labels, 2, "EmoVal") == bin_index(labels, "[3, 7]", "EmoVal") == bin_index(labels, "7]", "EmoVal")
    assert choice([("majority (classes)", "majority")], "majority (classes)", "agreement bin") == "majority"
    for wrong in (lambda: class_code("Boredom"), lambda: bin_index(labels, 3, "EmoVal"),
                  lambda: choice([("a", "a")], "b", "podcast")):
        with pytest.raises(ValueError):
            wrong()


def test_the_state_imports_no_plotting_widgets_or_data_engine():
    code = ("import sys\nimport ser_diag.explorer.state, ser_diag.explorer\n"
            "print(','.join(m for m in ('matplotlib', 'ipywidgets', 'IPython', 'ser_diag.diagnostics',"
            " 'ser_diag.explorer.engine', 'ser_diag.explorer.facade') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    code = "import sys\nfrom ser_diag.explorer import Explorer, ExplorerWidgets\nprint('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "the widgets import ipywidgets only when built"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_rooms_import_one_way_and_stay_small():
    modules = {p.stem: p for p in PACKAGE.glob("*.py")}
    assert set(modules) == set(ROOMS)
    for name, path in modules.items():
        rooms = {i.split(".")[2] for i in _imports(path) if i.startswith("ser_diag.explorer.")} & set(ROOMS)
        assert rooms <= ROOMS[name], f"{name} imports {rooms - ROOMS[name]}"
        assert (name == "widgets") or not any(i.startswith("ipywidgets") for i in _imports(path)), name
        tree = ast.parse(path.read_text())
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            methods = sum(isinstance(b, (ast.FunctionDef, ast.AsyncFunctionDef)) for b in cls.body)
            assert methods <= 30, f"{name}.{cls.name} has {methods} methods"
        assert sum(1 for line in path.read_text().splitlines() if line.strip()) <= 500, name
    below = [p for p in PACKAGE.parent.rglob("*.py") if PACKAGE not in p.parents and p.stem not in ("cli", "__main__")]
    assert not [p for p in below if any(i.startswith("ser_diag.explorer") for i in _imports(p))], \
        "the diagnostics, plots, io and analysis never import the explorer"
