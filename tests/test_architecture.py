"""The house rules of the architecture, checked: the diagnostics wing never pulls in torch or
transformers, and every public module's doctests pass."""

import doctest
import importlib
import pkgutil
import subprocess
import sys

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
MODULES_WITH_EXAMPLES = {"ser_diag.metrics": 16, "ser_diag.names": 3, "ser_diag.resampling": 6}


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
