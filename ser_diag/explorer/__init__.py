"""Explore results interactively: from any cell of a figure to the utterances behind it.

>>> from ser_diag.explorer import Explorer                           # doctest: +SKIP
>>> ex = Explorer("data/demo", "data/demo/predictions")            # doctest: +SKIP
>>> ex.set(system="sys10_top", view="confusion", cell_true="F", cell_pred="A").listing().table  # doctest: +SKIP

Rooms, each with one idea; imports go one way only, from the top of this list down (a test
checks), and nothing below the explorer (diagnostics, plots, io, analysis) imports it:

* :mod:`~ser_diag.explorer.facade` - :class:`Explorer`, what a notebook holds: one state and
  every answer for it, by asking the rooms below; :meth:`Explorer.show` builds the widgets
  (imported there, lazily).
* :mod:`~ser_diag.explorer.widgets` - the ipywidgets face (:class:`ExplorerWidgets`): controls
  that only set the state, areas redrawn as a whole from the answers of the explorer it is
  handed (it never imports the facade). The only module that imports ipywidgets, and it does
  so inside its classes.
* :mod:`~ser_diag.explorer.listing` - the rows behind a selection (:class:`Listing`; a cell's,
  an agreement bin's or a podcast's files, or where two systems disagree), with the annotators'
  votes, transcript and audio path; CSV export.
* :mod:`~ser_diag.explorer.views` - one function per view, drawn on given Axes by
  :mod:`ser_diag.plots` from the diagnostics' tables, and the tables shown beside them.
* :mod:`~ser_diag.explorer.engine` - the data engine: the challenge's data, the diagnostics of
  each split x group x bins (:func:`ser_diag.diagnostics.diagnose`, never another analysis but
  the two-system :func:`~ser_diag.analysis.fusion.disagreement_by_true`), one cache, one
  background thread that lives only while it has work.
* :mod:`~ser_diag.explorer.state` - :class:`ExplorerState`, the selection as plain values, and
  the views; pure (no data, no matplotlib, no widgets).

So ``facade -> widgets -> listing -> views, engine -> state`` (the facade also asks the rooms
below the widgets directly). Importing this package imports only :mod:`~ser_diag.explorer.state`;
the other names below are loaded on first use.
"""

from __future__ import annotations

import importlib

from ser_diag.explorer.state import BEYOND_VIEWS, BIN_SCHEMES, CELL_VIEWS, GROUP_VIEWS, VIEWS, ExplorerState, view_name

#: Public names of the rooms above this package's pure state, loaded on first use.
_LAZY = {"Explorer": "facade", "Engine": "engine", "Listing": "listing", "column_name": "listing",
         "format_votes": "listing", "ExplorerWidgets": "widgets", "CellGrid": "widgets",
         "GroupButtons": "widgets", "PAGE_SIZE": "widgets", "rows_html": "widgets", "tables_html": "widgets"}

__all__ = ["VIEWS", "CELL_VIEWS", "GROUP_VIEWS", "BEYOND_VIEWS", "BIN_SCHEMES", "ExplorerState", "view_name",
           *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
