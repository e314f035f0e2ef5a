"""ser_diag is a package a user installs: a wheel with the code and the model configs (no
tests), importable from anywhere once installed, and no path manipulation anywhere in the
repository standing in for packaging."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the sources (no stale build/ folder can leak into it)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(ROOT / "ser_diag", src / "ser_diag", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                          "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    (wheel,) = out.glob("ser_diag-*.whl")
    return wheel


def test_wheel_has_code_and_configs_not_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ser_diag/__init__.py" in names and "ser_diag/cli.py" in names
    configs = {Path(n).name for n in names if n.startswith("ser_diag/models/configs/")}
    assert configs == {p.name for p in (ROOT / "ser_diag/models/configs").glob("*.json")}
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ser-diag = ser_diag.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_wheel_installs_elsewhere_and_imports_itself(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    run = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    probe = ("import ser_diag, ser_diag.cli, importlib.resources as r; print(ser_diag.__file__); "
             "print(sorted(p.name for p in r.files('ser_diag.models').joinpath('configs').iterdir()))")
    shown = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    location, configs = shown.stdout.splitlines()
    assert Path(location).resolve().is_relative_to(env_dir.resolve()), location
    assert "late_fusion.json" in configs
    help_run = subprocess.run([str(env_dir / "bin" / "ser-diag"), "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0 and "usage: ser-diag" in help_run.stdout


def test_dependencies_match_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values()
                                          for d in extra if not d.startswith("ser-diag")]
    name = lambda spec: re.split(r"[<>=!\[ ;]", spec, maxsplit=1)[0].lower()  # noqa: E731
    pinned = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith(("#", "-e"))]
    assert {name(s) for s in pinned} == {name(s) for s in declared}
    assert "torch==2.13.0" in pinned                   # the CPU wheel; a looser spec pulls CUDA
    assert any(line.startswith("-e .") for line in (ROOT / "requirements.txt").read_text().splitlines())


def test_no_path_manipulation_anywhere():
    """The package, tests and notebooks rely on the installed package: no sys.path edits, no
    PYTHONPATH. (Benchmarks may point PYTHONPATH at an old checkout they measure as baseline.)"""
    offenders = []
    for path in [*ROOT.glob("ser_diag/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*"),
                 *ROOT.glob("notebooks/*.ipynb")]:
        if path.name == Path(__file__).name or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        pattern = r"sys\.path\.(insert|append)"
        if path.parent.name != "bench":
            pattern += r"|PYTHONPATH[\"']?\]?\s*=|setenv\([\"']PYTHONPATH"
        if re.search(pattern, text):
            offenders.append(path.relative_to(ROOT))
    assert not offenders


def test_every_notebook_is_executed_from_its_own_folder():
    """Every notebook is run by some test, and every test run of a notebook starts the kernel in
    notebooks/ (where JupyterLab starts it when a person opens the notebook)."""
    sources = {p.name: p.read_text() for p in ROOT.glob("tests/**/test_*.py")}
    calls = [(name, m.group(0)) for name, text in sources.items()
             for m in re.finditer(r"execute_notebook\((?:[^()]|\([^()]*\))*\)", text)]
    assert calls
    for name, call in calls:
        cwd = re.search(r"cwd=([^,)]*)", call)
        assert cwd and re.search(r"NOTEBOOKS|notebooks", cwd.group(1)), (name, call)
    everything = "\n".join(sources.values())
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert notebook.name in everything or notebook.stem in everything, notebook.name
