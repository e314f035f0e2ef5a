"""Saving a figure set on several processes (ser_diag.plots.saving): the same bytes as one by
one, every figure once, failures and interrupts surface in the caller, no worker outlives it."""

from __future__ import annotations

import multiprocessing
import os
import pickle

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from ser_diag.outputs import staged_output
from ser_diag.plots import saving


def figure_set(n: int = 6) -> dict:
    """``n`` different figures: lines, an annotated heatmap, a bar chart with a non-ASCII title."""
    rng = np.random.default_rng(0)
    figures = {}
    for i in range(n):
        fig, ax = plt.subplots(figsize=(4, 3), layout="constrained")
        if i % 3 == 0:
            ax.plot(rng.normal(size=50).cumsum(), label=f"series {i}")
            ax.legend()
        elif i % 3 == 1:
            matrix = rng.uniform(size=(5, 5))
            ax.imshow(matrix)
            for (r, c), v in np.ndenumerate(matrix):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6)
        else:
            ax.bar(["a", "b", "c"], rng.uniform(size=3))
            ax.set_title(f"Système {i} – ü")
        figures[f"figure_{i}"] = fig
    return figures


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def record_writers(tmp_path, monkeypatch):
    """Wrap save_figure so each save appends ``pid stem`` to a log (inherited by forked workers)."""
    log = tmp_path / "writers.log"
    original = saving.save_figure

    def recording(fig, out, stem, dpi=150):
        paths = original(fig, out, stem, dpi=dpi)
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()} {stem}\n")
        return paths

    monkeypatch.setattr(saving, "save_figure", recording)
    return lambda: [line.split() for line in log.read_text().splitlines()] if log.exists() else []


def test_parallel_files_are_byte_identical_to_serial(tmp_path, record_writers):
    serial = saving.save_figures(figure_set(), tmp_path / "serial", workers=1)
    assert {pid for pid, _ in record_writers()} == {str(os.getpid())}
    parallel = saving.save_figures(figure_set(), tmp_path / "parallel", workers=2)
    assert [p.name for p in serial] == [p.name for p in parallel]
    assert [p.name for p in serial][:2] == ["figure_0.pdf", "figure_0.png"]
    for a, b in zip(serial, parallel):
        assert a.read_bytes() == b.read_bytes(), a.name
    writes = record_writers()[6:]
    assert sorted(stem for _, stem in writes) == sorted(figure_set())  # every figure once
    pids = {pid for pid, _ in writes}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two workers saved, the caller waited
    assert multiprocessing.active_children() == []
    assert sorted(os.listdir(tmp_path / "parallel")) == sorted(p.name for p in parallel)


def test_work_is_split_by_cost():
    assert saving._parts([100, 1, 1, 1, 97], 2) == [[0], [1, 2, 3, 4]]
    assert saving._parts([5, 5, 5], 4) == [[0], [1], [2]]  # no empty parts


def test_few_figures_or_one_worker_are_saved_here(tmp_path, record_writers):
    saving.save_figures(figure_set(saving.MIN_PARALLEL_FIGURES - 1), tmp_path / "few", workers=2)
    assert {pid for pid, _ in record_writers()} == {str(os.getpid())}


def _fail_in_worker(monkeypatch, error):
    parent, original = os.getpid(), saving.save_figure

    def failing(fig, out, stem, dpi=150):
        if os.getpid() != parent:
            raise error
        return original(fig, out, stem, dpi=dpi)

    monkeypatch.setattr(saving, "save_figure", failing)


def test_a_worker_error_is_raised_in_the_caller(tmp_path, monkeypatch):
    _fail_in_worker(monkeypatch, OSError(28, "No space left on device"))
    with pytest.raises(OSError, match="No space left"):
        saving.save_figures(figure_set(), tmp_path / "out", workers=2)
    assert multiprocessing.active_children() == []


class Unpicklable(Exception):
    def __reduce__(self):
        raise pickle.PicklingError("no")


def test_an_unpicklable_worker_error_keeps_its_traceback(tmp_path, monkeypatch):
    _fail_in_worker(monkeypatch, Unpicklable("odd failure"))
    with pytest.raises(RuntimeError, match="(?s)worker process.*Unpicklable: odd failure"):
        saving.save_figures(figure_set(), tmp_path / "out", workers=2)


def test_a_worker_that_dies_is_an_error(tmp_path, monkeypatch):
    parent = os.getpid()
    monkeypatch.setattr(saving, "save_figure", lambda *a, **k: os._exit(9) if os.getpid() != parent else [])
    with pytest.raises(RuntimeError, match="exit code 9"):
        saving.save_figures(figure_set(), tmp_path / "out", workers=2)


def test_interrupt_kills_workers_and_leaves_no_folder(tmp_path, monkeypatch):
    """Ctrl-C while saving: the workers are gone before the staging folder is removed, and the
    output folder is absent (whole or absent).

    The items go out costliest first (figure_1 and figure_4, then figure_3 and figure_0), so the
    interrupt comes when the first two are saved and both workers are in the middle of the next
    two; each item pauses `pause` seconds, far longer than the caller takes to stop its workers
    (milliseconds), so a worker the caller did not kill would still be alive at the checks."""
    parent = os.getpid()
    original = saving.save_figure
    pause = 5  # seconds

    def slow_or_interrupted(fig, out, stem, dpi=150):
        import signal
        import time

        if stem == "figure_0":
            os.kill(parent, signal.SIGINT)  # Ctrl-C reaches the caller while the workers save
        time.sleep(pause)  # a worker still saving when the caller is interrupted
        return original(fig, out, stem, dpi=dpi)

    monkeypatch.setattr(saving, "save_figure", slow_or_interrupted)
    out = tmp_path / "figures"
    with pytest.raises(KeyboardInterrupt):
        with staged_output(out) as stage:
            saving.save_figures(figure_set(), stage, workers=2)
    assert multiprocessing.active_children() == []
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_report_images_drawn_in_parallel_equal_serial(record_writers):
    """The report draws every figure up front with map_figures: same SVG/PNG text as one by one."""
    from ser_diag.report.markup import _figure_image

    serial = saving.map_figures(lambda stem, fig: _figure_image(fig), figure_set(), workers=1)
    parallel = saving.map_figures(lambda stem, fig: (os.getpid(), _figure_image(fig)), figure_set(), workers=2)
    assert [image for _, image in parallel] == serial
    assert len({pid for pid, _ in parallel}) == 2                  # a child drew a part
    assert {kind for kind, _ in serial} <= {"svg", "png"} and len(serial) == 6
