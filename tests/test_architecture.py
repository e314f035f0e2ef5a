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


#: Modules whose docstrings teach by example (audmetric style), with the least number of
#: examples each must keep.
MODULES_WITH_EXAMPLES = {"ser_diag.metrics": 16, "ser_diag.names": 3, "ser_diag.precision": 12, "ser_diag.resampling": 6}


@pytest.mark.parametrize("name", DIAGNOSTIC_MODULES)
def test_doctests(name):
    """Every example in every diagnostics module's docstrings runs and prints what it shows."""
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted >= MODULES_WITH_EXAMPLES.get(name, 0), f"{name}: {result.attempted} examples"


def test_doctests_are_really_run():
    """The doctest run above can fail: a planted wrong example is reported as a failure."""
    import types
    planted = types.ModuleType("planted")
    planted.__doc__ = ">>> 1 + 1\n3\n"
    result = doctest.testmod(planted, report=False)
    assert (result.attempted, result.failed) == (1, 1)
