""":class:`Explorer`, what a person (or a notebook) holds: one state and every answer for it.

The facade only decides *what* to ask: the state's rules are in
:mod:`~ser_diag.explorer.state`, the data, cache and background thread in
:mod:`~ser_diag.explorer.engine`, the figures and their tables in
:mod:`~ser_diag.explorer.views`, the rows of a selection in :mod:`~ser_diag.explorer.listing`;
the widgets (:mod:`~ser_diag.explorer.widgets`, :meth:`Explorer.show`) only set the state.

>>> ex = Explorer("data/demo", "data/demo/predictions")            # doctest: +SKIP
>>> ex.set(system="sys10_top", view="confusion")                    # doctest: +SKIP
>>> ex.cell_utterances(true="F", pred="A", sort_by="vote_share_pred")  # doctest: +SKIP

Interactive intervals use ``n_boot=200`` resamples by default (the caption says so); the report
and paper figures use 1000.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pandas as pd

from ser_diag import resampling as resampling_
from ser_diag.diagnostics import Diagnostics
from ser_diag.explorer import views
from ser_diag.explorer.engine import VOTES_KEY, Engine
from ser_diag.explorer.listing import Listing, Rows, compute_votes
from ser_diag.explorer.state import (BEYOND_VIEWS, BIN_SCHEMES, GROUP_VIEWS, ExplorerState, cell_views_of,
                                     is_cell_view, view_name, views_of)
from ser_diag.vocabulary import Vocabulary
from ser_diag.schema import SYNTHETIC_BANNER, TASK_ATTRIBUTES, TASK_CATEGORICAL

__all__ = ["Explorer"]

_SYNTHETIC_NOTE = SYNTHETIC_BANNER.split(" - ")[0]
#: Resolution of the figures the widgets show (and the background pre-renders).
_DPI = 90


def _png_key(s: ExplorerState, dpi: int, compare_only: bool) -> tuple:
    return ("png", s.view, s.system, s.compare_system, s.bins, dpi, compare_only) + s.data_key


class Explorer:
    """Interactive explorer of a challenge's results (labels + every system's predictions).

    ``labels``: corpus root, ``labels_consensus.csv`` or a labels frame (:func:`ser_diag.io.read_labels`,
    ideally with every split so the split control can switch); ``predictions``: a folder of
    systems, one system's file(s), or a predictions frame (:func:`ser_diag.io.read_systems`).
    Or ``labels`` an :class:`~ser_diag.evaluation.Evaluation` of any corpus and ``predictions``
    None. ``vocabulary``: the corpus (default: the Evaluation's or the labels frame's, else
    MSP-Podcast's): its classes, attributes and views (:func:`~ser_diag.explorer.state.views_of`).
    ``corpus``: MSP-Podcast root holding ``Audios/``, ``Transcripts/``, ``Labels/labels_detailed.csv``
    (default: the labels path when it is a corpus root or its ``Labels/`` folder). Bootstrap
    settings (``resampling``, a :class:`~ser_diag.resampling.Resampling`, default 200 resamples
    of speakers when known; or the older ``n_boot``, ``level``, ``by_speaker``, ``seed``, ``ddof``) go to
    :func:`ser_diag.diagnostics.diagnose`; the state is in :attr:`state`, changed through
    :meth:`set`; :meth:`wait_prefetch` waits for the background work. :attr:`engine` holds the
    data and the cache (:class:`~ser_diag.explorer.engine.Engine`).

    With ``prefetch`` a background thread reads the annotators' votes and computes what a next
    control change is likely to need: after a draw of a binned or regression-to-the-mean view,
    the other bin scheme; the figures of the other views and systems (:meth:`prefetch_next`);
    when a group column is chosen, each of its values (:meth:`prefetch_groups`).
    """

    def __init__(self, labels, predictions, corpus=None, split: str = "Development", *,
                 system: str | None = None, resampling: resampling_.Resampling | None = None,
                 n_boot: int | None = None, level: float | None = None,
                 by_speaker: bool | None = None, seed: int | None = None, ddof: int | None = None,
                 intersection: bool = False,
                 prefetch: bool = True, vocabulary: Vocabulary | None = None):
        self.resampling = resampling_.Resampling.of(
            resampling if resampling is not None else resampling_.Resampling(n_boot=200),
            n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed, ddof=ddof)
        self.engine = Engine(labels, predictions, corpus, resampling=self.resampling, intersection=intersection,
                             prefetch=prefetch, vocabulary=vocabulary)
        e = self.engine
        self.vocabulary = e.vocabulary
        self.views, self.cell_views = views_of(self.vocabulary), cell_views_of(self.vocabulary)
        self.labels, self.predictions, self.corpus = e.labels, e.predictions, e.corpus
        self.splits, self.systems, self.prefetch = e.splits, e.systems, prefetch
        self.bootstrap = dict(n_boot=self.resampling.n_boot, resampling=self.resampling)
        self.state = ExplorerState(system=self.systems[0], split=split if split in self.splits else self.splits[0])
        if prefetch:
            e.prefetch_detailed()
            e.prefetch(VOTES_KEY, lambda: compute_votes(e))
        if system is None:   # the best system by the headline metric of the diagnostics
            focus = self.diagnostics().settings.get("focus", {})
            system = focus.get(TASK_CATEGORICAL) or focus.get(TASK_ATTRIBUTES) or self.systems[0]
        self.state = self.state.changed(dict(system=system), systems=self.systems, splits=self.splits,
                                        group_columns=e.group_columns(), views=self.views)

    # ------------------------------------------------------------------ state
    def set(self, **changes) -> Explorer:
        """Change the state (any :class:`~ser_diag.explorer.state.ExplorerState` field) after
        checking the values (:meth:`~ser_diag.explorer.state.ExplorerState.changed`), then
        against the data: the group must have files, a selected cell must be one of the view's
        classes, bins, agreement bins or podcasts (an agreement bin or podcast is kept in its
        canonical form; one the newly chosen system is not scored on is dropped unless this
        change chose it). Changing the view, split, group or bins clears the selected cell."""
        new = self.state.changed(changes, systems=self.systems, splits=self.splits,
                                 group_columns=self.engine.group_columns(), views=self.views)
        files = self.engine.group_files(new.data_key)
        if files is not None and files.empty:
            raise ValueError(f"no file of split {new.split!r} has {new.group_column} = {new.group_value!r}")
        rows = Rows(self.engine, new)
        if new.view in GROUP_VIEWS:
            if new.cell_pred is not None:
                raise ValueError(f"the {view_name(new.view)} view selects one group (cell_true), "
                                 "not a predicted cell")
            if new.cell_true is not None:
                try:
                    new.cell_true = rows.group_value(new.cell_true)
                except ValueError:
                    if "cell_true" in changes:
                        raise
                    new.cell_true = None    # e.g. a podcast the newly chosen system is not scored on
        for value in (new.cell_true, new.cell_pred):   # a cell that the view does not have is refused
            if value is not None:
                rows.cell_value(value)
        self.state = new
        return self

    def cell_options(self) -> list[tuple[str, object]]:
        """``(label, value)`` choices for ``cell_true``/``cell_pred`` in the current view
        (class names -> codes, bin labels -> bin indices, agreement bins, podcasts); empty for
        other views."""
        return Rows(self.engine, self.state).cell_options()

    def group_options(self) -> list[tuple[str, str]]:
        """``(label, value)`` choices of an agreement bin or a podcast in those views (the
        podcasts worst first for the system); empty otherwise or without data."""
        return Rows(self.engine, self.state).group_options()

    def bin_labels(self, attribute: str) -> list[str]:
        """Labels of ``attribute``'s bins for the current bins, split and group."""
        return Rows(self.engine, self.state).bin_labels(attribute)

    # ------------------------------------------------------------------ numbers
    def diagnostics(self, state: ExplorerState | None = None) -> Diagnostics:
        """:func:`ser_diag.diagnostics.diagnose` of the files of ``state``'s split and group
        (default: the current state) with its bin scheme and the explorer's bootstrap
        settings, cached: the tables every view is drawn from."""
        s = state or self.state
        return self.engine.diagnostics(s.data_key, s.bins)

    def merged(self, task: str, data_key: tuple | None = None) -> pd.DataFrame | None:
        """The merged frame of ``task`` for the current split and group (all systems), or None.
        ``data_key``: ``(split, group_column, group_value as text)`` instead of the state's."""
        return self.engine.merged(task, data_key or self.state.data_key)

    @property
    def synthetic(self) -> bool:
        return self.engine.synthetic(self.state.split)

    def metrics_table(self, systems=None) -> pd.DataFrame:
        """Metrics with bootstrap CIs of the selected system(s) (or ``systems``: a list, or
        ``"all"``) on the current split and group: the diagnostics' ``metrics`` table.

        Columns: task, system, metric, estimate, ci_low, ci_high, level, unit, n_boot, n.
        """
        names = self.systems if systems == "all" else (systems or self.state.selected_systems)
        return views.metrics_table(self.diagnostics(), names)

    def headline_table(self, systems=None) -> pd.DataFrame:
        """:meth:`metrics_table` for reading: one row per system, one column per headline
        metric (human names), cells ``estimate [ci_low, ci_high]``, and the files scored per
        task (``n categorical``, ``n attributes``: the tasks may score different files)."""
        names = self.systems if systems == "all" else (systems or self.state.selected_systems)
        return views.headline_table(self.diagnostics(), names)

    def disagreements(self) -> pd.DataFrame:
        """Where the system and the comparison system disagree, per true class and per true
        bin of each attribute (current bins), and which one is right
        (:func:`ser_diag.analysis.fusion.disagreement_by_true`; ``a`` = system, ``b`` =
        comparison system)."""
        return self.engine.disagreements(self.state)

    # ------------------------------------------------------------------ figures
    def _figure(self, s: ExplorerState, compare_only: bool = False):
        """The view of ``s`` with its caption: the one drawing path (foreground and background)."""
        return views.add_caption(views.draw(self.diagnostics(s), s, compare_only), self.caption(s))

    def figure(self, compare_only: bool = False):
        """The current view as a matplotlib Figure drawn by the library's Display classes from
        the diagnostics' tables (:func:`ser_diag.explorer.views.draw`).

        ``confusion`` / ``binned_*``: the system's matrix, and with a comparison system the
        difference matrix (confusion) or its matrix (bins) beside it; ``regression_to_mean``:
        mean prediction per true bin with CIs (one panel per attribute when comparing);
        ``gender_audit``: metrics by gender with gap, CI and p-value, per task (and system);
        ``topk_fusion``: Fig. 4 over all systems; the beyond views. ``compare_only``: in a
        confusion or binned view with a comparison system, only the comparison panel (what the
        widgets show beside the clickable matrix of the system).
        """
        fig = self._figure(self.state, compare_only)
        self.prefetch_next()
        return fig

    def figure_png(self, dpi: int = _DPI, compare_only: bool = False, prefetch: bool = True) -> bytes:
        """:meth:`figure` rendered as PNG bytes, cached per view, systems, bins, split and group:
        what the widgets show, so returning to a state costs no drawing. ``prefetch=False``: the
        caller queues :meth:`prefetch_next` itself (the widgets do, once everything is drawn, so
        the background work does not slow the redraw down)."""
        s = self.state
        png = self.engine.cached(_png_key(s, dpi, compare_only), lambda: views.png(self._figure(s, compare_only), dpi))
        if prefetch:
            self.prefetch_next()
        return png

    def heatmap(self, system: str | None = None) -> dict | None:
        """The cells of the current confusion or binned view for ``system`` (default: the
        state's), for the clickable figure (:func:`ser_diag.explorer.views.heatmap`); None in
        other views."""
        s = self.state
        labels = self.bin_labels(s.view_attribute) if s.view_attribute else None
        return views.heatmap(self.diagnostics(), s, labels, system)

    def caption(self, state: ExplorerState | None = None) -> str:
        """Where the numbers come from: split, group, the interactive bootstrap."""
        s = state or self.state
        where = f"split {s.split}"
        if s.group_column is not None:
            where += f", {s.group_column} = {s.group_value}"
        n_boot = self.bootstrap["n_boot"]
        if n_boot and not is_cell_view(s.view):
            unit = self.resampling.unit_for(self.labels["SpkrID"] if "SpkrID" in self.labels else None)
            where += f"  |  CIs: {n_boot} {unit} bootstrap resamples"
        return where + (f"  |  {_SYNTHETIC_NOTE}" if self.engine.synthetic(s.split) else "")

    def view_unavailable(self) -> str | None:
        """One line saying why the current beyond view has nothing to show (e.g. no
        ``labels_detailed.csv``: the diagnostics' note), or None when it has data."""
        if self.state.view not in BEYOND_VIEWS:
            return None
        return views.unavailable(self.diagnostics(), self.state)

    def view_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """``(title, table)`` pairs shown below a beyond view's figure, headers in words
        (:func:`ser_diag.explorer.views.view_tables`); empty for other views or without data."""
        if self.state.view not in BEYOND_VIEWS:
            return []
        return views.view_tables(self.diagnostics(), self.state)

    def view_table(self) -> pd.DataFrame | None:
        """The first of :meth:`view_tables` (None when there is none)."""
        tables = self.view_tables()
        return tables[0][1] if tables else None

    # ------------------------------------------------------------------ background work
    def prefetch_next(self) -> None:
        """Queue what a next control change is likely to need: in the views the bin scheme
        changes (binned, regression to the mean), the diagnostics of the other schemes; once
        the current diagnostics are computed, the PNG of every other view of the current systems,
        split, group and bins, then of the current view for the other systems and compared with
        the likely comparisons (each task's best system and the baseline:
        :meth:`~ser_diag.explorer.state.ExplorerState.likely_next`). Renders queued for an earlier
        state and not started yet are taken back. (Each gender is queued by
        :meth:`prefetch_groups` when a group column is chosen.)"""
        if not self.prefetch:
            return
        s = self.state
        if s.view.startswith("binned_") or s.view == "regression_to_mean":   # the views bins change
            for bins in BIN_SCHEMES:
                self.engine.prefetch_diagnostics(s.data_key, bins)
        wanted = []
        if self.engine.has(("diag",) + s.data_key + (s.bins,)):
            settings = self.diagnostics().settings
            likely = list(settings.get("focus", {}).values()) + [settings.get("baseline")]
            wanted = s.likely_next(self.systems, likely, views=self.views, cell_views=self.cell_views)
        jobs = {}
        for state, compare_only in wanted:
            if state.view in BEYOND_VIEWS and views.unavailable(self.diagnostics(state), state):
                continue
            jobs.setdefault(_png_key(state, _DPI, compare_only),
                            lambda st=state, c=compare_only: views.png(self._figure(st, c), _DPI))
        self.engine.prefetch_renders(jobs)

    def prefetch_groups(self, column: str, max_values: int = 4) -> None:
        """Queue the diagnostics of each value of ``column`` (at most ``max_values`` of them, e.g.
        each gender) in the current split and bins: what the widgets ask for when a person picks a
        group column, before they pick its value; then the current view's figure for each value.
        A full diagnostics run per value is the cost, so it is queued only on that signal (not
        after every draw)."""
        if not self.prefetch or column is None:
            return
        s = self.state
        values = self.engine.group_values(column, s.split)
        if len(values) > max_values:
            return
        compare_only = is_cell_view(s.view)
        others = [dataclasses.replace(s, group_column=column, group_value=v, cell_true=None, cell_pred=None)
                  for v in values]
        for other in others:
            self.engine.prefetch_diagnostics(other.data_key, other.bins)
        if compare_only and s.compare_system is None:
            return                                       # the widgets draw no PNG in this view
        for other in others:                             # then this view's figure for each value
            self.engine.prefetch(_png_key(other, _DPI, compare_only),
                                 lambda other=other: views.png(self._figure(other, compare_only), _DPI))

    def wait_prefetch(self) -> None:
        """Block until the background computations queued so far are done (errors are left
        for the foreground, which recomputes and reports them)."""
        self.engine.wait()

    # ------------------------------------------------------------------ rows
    def cell_utterances(self, true=None, pred=None, attribute: str | None = None, *,
                        sort_by: str | None = None, ascending: bool | None = None) -> pd.DataFrame:
        """The files in one cell of the current view, for the selected system.

        Confusion cell: ``true``/``pred`` class codes or names; attribute bin: ``attribute`` (or
        the ``binned_*`` view's) with ``true``/``pred`` bin indices or labels. Without
        arguments the state's ``cell_true``/``cell_pred`` are used; ``None`` means any class/bin.
        Columns: FileName, SpkrID, Gender, true and predicted class (``EmoClass_true``,
        ``EmoClass_pred``, ``P_pred`` when probabilities exist) or values (``<attr>_true``,
        ``<attr>_pred``, ``error`` = pred - true, and the annotators' scores
        ``<attr>_annotators``), the comparison system's prediction (``*_compare``) when one is
        selected, the annotators' class votes (``votes`` e.g. ``"F 6 · U 1"``, ``n_votes``,
        ``vote_share_true``, ``vote_share_pred``) when detailed labels exist, ``transcript``
        and ``audio`` (path) when the corpus has them (:func:`ser_diag.io.corpus_files`).
        """
        return Rows(self.engine, self.state).cell_utterances(true, pred, attribute, sort_by=sort_by,
                                                             ascending=ascending)

    def disagreement_list(self, true=None, attribute: str | None = None, *, sort_by: str | None = None,
                          ascending: bool | None = None) -> pd.DataFrame:
        """The files where the system and the comparison system disagree: both predictions,
        the truth, who is right, the annotators' votes (and transcript/audio).

        Categorical (``confusion`` view, or ``attribute=None`` outside binned views): the two
        predicted classes differ; ``true`` keeps one true class. Attributes (``attribute`` or
        the ``binned_*`` view's): the two predictions fall in different bins of the current
        scheme; ``true`` keeps one true bin. ``right``: ``'A'``, ``'B'`` or ``'neither'`` (named
        by system). Without ``true`` the state's ``cell_true`` is used.
        """
        return Rows(self.engine, self.state).disagreement_list(true, attribute, sort_by=sort_by,
                                                               ascending=ascending)

    def listing(self) -> Listing:
        """What the rows area shows for the current state; never the files of another state.

        A confusion or binned view with a chosen cell: its files; with ``disagree_only`` and a
        comparison system: the disagreement list; an agreement bin or a podcast: its files;
        otherwise a message saying why nothing is listed (no cell chosen, a view without cells,
        no comparison system). Cached per state (a copy of the table is returned).
        """
        s = dataclasses.replace(self.state)
        found = self.engine.cached(("listing",) + dataclasses.astuple(s), Rows(self.engine, s).listing)
        table = None if found.table is None else found.table.copy()
        return dataclasses.replace(found, state=s, table=table)

    def to_csv(self, path: str | os.PathLike, **cell) -> Path:
        """Write :meth:`cell_utterances` (``cell``: its arguments; default the state's cell) as
        CSV; in an agreement or podcast view the group's files; with ``disagree_only`` and no
        arguments, the disagreement list."""
        return Rows(self.engine, self.state).to_csv(path, **cell)

    # ------------------------------------------------------------------ widgets
    def show(self):
        """The ipywidgets interface (:class:`ser_diag.explorer.widgets.ExplorerWidgets`)."""
        from ser_diag.explorer.widgets import ExplorerWidgets
        return ExplorerWidgets(self).root

    def _ipython_display_(self):
        from IPython.display import display
        display(self.show())

    def __repr__(self) -> str:
        return f"Explorer({len(self.systems)} systems, state={self.state})"
