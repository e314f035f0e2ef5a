"""The committed outputs do not depend on the machine (issue 23).

Another machine sums floating-point numbers in another order; we cannot borrow one, but the
thread counts of BLAS and of ser_diag's own processes change the summation order too, and the
row order of the input files changes the order in which every row is read. So the diagnostics
stage runs under different thread and worker counts and on inputs with shuffled rows, and every
output file (tables, summary.md, PNG, PDF) must be the same bytes. The README's main command in
a fresh clone, which must leave ``git status`` empty, is in ``tests/test_main_command.py``.
"""

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _ser_diag(args, cwd, threads=None):
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    env["MPLBACKEND"] = "Agg"
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_VARIABLES})
    run = subprocess.run([shutil.which("ser-diag"), *map(str, args)], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def _shuffled_copy(source: Path, dest: Path, seed: int = 1) -> None:
    """``source`` copied with the data rows of every CSV file in a random order."""
    rng = np.random.default_rng(seed)
    for path in sorted(source.rglob("*")):
        target = dest / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.suffix == ".csv":
            target.parent.mkdir(parents=True, exist_ok=True)
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            body = lines[1:]
            order = rng.permutation(len(body))
            target.write_text(lines[0] + "".join(body[i] for i in order), encoding="utf-8")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _assert_same_bytes(a: Path, b: Path, what: str) -> None:
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys(), what
    kinds = {Path(k).suffix for k in fa}
    assert {".csv", ".md", ".png", ".pdf"} <= kinds
    different = [k for k in fa if not filecmp.cmp(fa[k], fb[k], shallow=False)]
    assert not different, f"{what}: {len(different)} of {len(fa)} files differ, e.g. {different[:5]}"


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    root = tmp_path_factory.mktemp("reproducible")
    _ser_diag(["simulate", "--out", root / "challenge", "--n", 1200, "--systems", 4, "--seed", 3], cwd=root)
    _shuffled_copy(root / "challenge", root / "shuffled")
    return root


def test_shuffled_copy_really_reorders(challenge):
    first = pd.read_csv(challenge / "challenge" / "Labels" / "labels_consensus.csv")
    moved = pd.read_csv(challenge / "shuffled" / "Labels" / "labels_consensus.csv")
    assert not first["FileName"].equals(moved["FileName"])
    assert sorted(first["FileName"]) == sorted(moved["FileName"])


@pytest.mark.slow
def test_figures_are_the_same_bytes_for_any_threads_workers_and_row_order(challenge):
    """Figures command (the demo's diagnostics stage) on the simulated challenge: BLAS on 1 vs 2
    threads, 1 worker process vs the default, and every input CSV with its rows shuffled."""
    outs = {}
    for name, data, threads, workers in (("one_thread_one_worker", "challenge", 1, ["--workers", 1]),
                                         ("two_threads_default_workers", "challenge", 2, []),
                                         ("shuffled_rows", "shuffled", None, [])):
        outs[name] = challenge / "out" / name
        _ser_diag(["figures", "--labels", challenge / data, "--predictions", challenge / data / "predictions",
                   "--out", outs[name], "--bootstrap", 100, *workers], cwd=challenge, threads=threads)
    reference = outs.pop("one_thread_one_worker")
    for name, out in outs.items():
        _assert_same_bytes(reference, out, name)
