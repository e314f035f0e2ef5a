"""Save a whole figure set as PDF + PNG on several cores: :func:`save_figures`.

Drawing text and rasterising are single-threaded in matplotlib, so a figure set is split into
disjoint parts saved side by side (:func:`ser_diag.parallel.fork_map`): the calling process
saves one part while forked children (``fork``: the figures are inherited, nothing is pickled)
save the others. Each file is written by :func:`~ser_diag.plots._style.save_figure` exactly as
a serial run writes it (same bytes; only which process writes it differs). Where ``fork`` is
unavailable, for a few figures, one core or while other threads run, it saves serially.

Failures and signals (see :mod:`ser_diag.parallel`): an exception in a child is raised again in
the caller; on any exception in the caller, KeyboardInterrupt included, the children are killed
and reaped before it propagates, so a staging folder (:func:`ser_diag.outputs.staged_output`)
is removed only after nothing writes into it any more.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.text import Text

from ser_diag.parallel import MAX_WORKERS, fork_map, fork_workers, parts_by_cost
from ser_diag.plots._style import readable_text, save_figure

__all__ = ["map_figures", "save_figures", "save_workers"]

#: Below this many figures a set is saved serially (forking costs more than it saves).
MIN_PARALLEL_FIGURES = 4
_parts = parts_by_cost  # older private name


def save_workers() -> int:
    """Processes :func:`save_figures` uses by default: the cores this process may run on
    (at most :data:`~ser_diag.parallel.MAX_WORKERS`), or 1 where ``fork`` is unavailable
    (:func:`ser_diag.parallel.fork_workers`)."""
    return fork_workers()


def _cost(fig) -> int:
    """Rough saving cost of ``fig``: a fixed part plus one unit per text artist (text layout
    dominates the time of saving)."""
    return 60 + len(fig.findobj(Text))


def map_figures(fn, figures: dict, workers: int | None = None, jobs: list | None = None) -> list:
    """``[fn(stem, fig) for stem, fig in figures.items()]`` followed by ``[run() for *_, run in
    jobs]``, computed by up to ``workers`` processes (default :func:`save_workers`): this one
    and forked children, the costliest first (:func:`ser_diag.parallel.fork_map`); a child's
    results come back pickled. ``fn`` must not depend on which process runs it (it draws or
    writes a figure). ``jobs``: other work ``(label, name, cost, run)`` to share the cores with
    (e.g. writing tables; cost in the units of :func:`_cost`). The texts of every figure are
    made readable first (:func:`~ser_diag.plots._style.readable_text`); a figure handled by a
    child is otherwise left as it was in this process (no layout run)."""
    items = [(fn, stem, fig) for stem, fig in figures.items()] + [(None, None, run) for *_, run in jobs or ()]
    costs = [None] * len(figures) + [cost for _, _, cost, _ in jobs or ()]
    n = save_workers() if workers is None else max(1, int(workers))
    if n == 1 or len(figures) + len(jobs or ()) < MIN_PARALLEL_FIGURES:
        return [_run(item) for item in items]
    for _, fig in figures.items():  # before forking, so every process sees the same texts
        readable_text(fig)
    costs = [_cost(fig) for fig in figures.values()] + costs[len(figures):]
    return fork_map(_run, items, costs=costs, workers=n, name="ser_diag-figures")


def _run(item):
    fn, stem, target = item
    return target() if fn is None else fn(stem, target)


def save_figures(figures: dict, out_dir: str | os.PathLike, dpi: int = 150, workers: int | None = None,
                 jobs: list | None = None) -> list[Path]:
    """Write every ``{stem: Figure}`` of ``figures`` as ``<out_dir>/<stem>.pdf`` and ``.png``
    (:func:`~ser_diag.plots._style.save_figure`), on up to ``workers`` processes
    (:func:`map_figures`), with ``jobs`` (``(label, name, cost, run)``, each ``run()`` giving a
    list of paths) shared out too; returns the paths in the order of ``figures`` (PDF, PNG per
    figure), then those of the jobs. The files are byte-identical to a serial run
    (``workers=1``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = map_figures(lambda stem, fig: save_figure(fig, out, stem, dpi=dpi), figures, workers, jobs)
    return [path for paths in written for path in paths]
