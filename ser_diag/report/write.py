"""Writing the report: ``index.html`` and every table as CSV, staged (all or nothing), from
inputs (:func:`write_report`) or from computed diagnostics (:func:`write_report_from`).
Imports :mod:`~ser_diag.report.layout`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ser_diag.diagnostics import Diagnostics, build_figures, compute_diagnostics
from ser_diag.outputs import atomic_write_text, staged_output, table_csv
from ser_diag.report.layout import render_html
from ser_diag.resampling import Resampling
from ser_diag.vocabulary import Vocabulary

def write_report(labels, predictions, out, split: str | None = "Development",
                 resampling: Resampling | None = None, intersection: bool = False,
                 baseline: str | None = None, *, diagnostics: Diagnostics | None = None,
                 figures: dict | None = None, vocabulary: Vocabulary | None = None, target: str | None = None,
                 attributes=None, **legacy) -> Path:
    """Validate inputs, compute the diagnostics once and write ``out/index.html`` plus
    ``out/tables/*.csv``; returns the path of ``index.html``. ``resampling``:
    :class:`~ser_diag.resampling.Resampling` (older keywords ``n_boot, level, by_speaker,
    seed, ddof`` override it); ``baseline``: see :func:`compute_diagnostics`; ``vocabulary``,
    ``target``, ``attributes``: the corpus (:meth:`~ser_diag.evaluation.Evaluation.load`).

    ``diagnostics``: an already computed :class:`~ser_diag.diagnostics.Diagnostics` (then
    ``labels``/``predictions`` and the settings are not used; see :func:`write_report_from`).
    """
    if diagnostics is not None:
        return write_report_from(diagnostics, out, figures=figures)
    with staged_output(out) as stage:  # checks and locks `out` before computing
        diag = compute_diagnostics(labels, predictions, split=split, resampling=Resampling.of(resampling, **legacy),
                                   intersection=intersection, baseline=baseline, vocabulary=vocabulary,
                                   target=target, attributes=attributes)
        _write(diag, stage, figures)
    return Path(out) / "index.html"


def write_report_from(diag: Diagnostics, out, figures: dict | None = None) -> Path:
    """Write the report of already computed diagnostics into ``out`` (staged: all or nothing);
    ``figures``: :func:`~ser_diag.diagnostics.build_figures` of ``diag`` when the caller has
    them (they are then left open), else they are built and closed here. Returns the path of
    ``index.html``::

        diag = compute_diagnostics(labels, predictions)
        write_report_from(diag, "report")
    """
    with staged_output(out) as stage:
        _write(diag, stage, figures)
    return Path(out) / "index.html"


def _write(diag: Diagnostics, stage: Path, figures: dict | None) -> None:
    own = figures is None
    figures = build_figures(diag) if own else figures
    try:
        names = []
        for name, table in diag.tables.items():
            atomic_write_text(stage / "tables" / f"{name}.csv", table_csv(table, diag.synthetic))
            names.append(name)
        atomic_write_text(stage / "index.html", render_html(diag, figures, names))
    finally:
        if own:
            for fig in figures.values():
                plt.close(fig)
