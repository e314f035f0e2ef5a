"""Explore results interactively: from any cell of a figure to the utterances behind it.

Two layers, kept apart so everything but the widgets is testable without a browser:

* :class:`ExplorerState` - plain values (system, comparison system, split, group filter, view,
  bin scheme, selected cell, sort order, "only where the two systems disagree"); no widgets.
* :class:`Explorer` - data and every answer for a state: :meth:`Explorer.figure` (the library's
  Display for the view), :meth:`Explorer.heatmap` (the cells of a confusion or binned view, what
  the clickable figure shows), :meth:`Explorer.headline_table`, :meth:`Explorer.listing` (what the
  rows area shows for the state: a cell's files, the disagreement list, or a message saying why
  there is nothing to list), :meth:`Explorer.cell_utterances`, :meth:`Explorer.disagreement_list`.
  The ipywidgets layer is :mod:`ser_diag.explorer_widgets` (:meth:`Explorer.show`).

>>> ex = Explorer("data/demo", "data/demo/predictions")            # doctest: +SKIP
>>> ex.set(system="sys10_top", view="confusion")                    # doctest: +SKIP
>>> ex.cell_utterances(true="F", pred="A", sort_by="vote_share_pred")  # doctest: +SKIP

One orchestrator: every number comes from :func:`ser_diag.diagnostics.diagnose` run on the
files of the current split and group, cached per (split, group, bin scheme) with the explorer's
bootstrap settings - the same tables the report and the paper figures are made of. Only what
concerns a pair of systems chosen here (the difference of their confusion matrices, taken from
the diagnostics' confusion table, and :func:`ser_diag.analysis.fusion.disagreement_by_true`) is
computed on request. With ``prefetch`` a background thread reads the annotators' votes and
computes the diagnostics a next control change is likely to need (after a draw of a binned or
regression-to-the-mean view, the other bin scheme; when a group column is chosen, each of its
values); a queued job the foreground needs first is taken back and computed at once.

Beyond the paper (:data:`BEYOND_VIEWS`, issue 12): the leaderboard with rank intervals, tiers and
P(best), the pairwise win probabilities, metrics by annotator agreement with the human ceiling,
per-podcast metrics and metrics by duration - each a figure of :mod:`ser_diag.plots` and
:meth:`Explorer.view_tables` below it, or one line (:meth:`Explorer.view_unavailable`) when the
diagnostics could not make it (no ``labels_detailed.csv``, no ``Audios/``). In the agreement and
podcast views (:data:`GROUP_VIEWS`) choosing a bin or podcast lists its files like a cell. Interactive intervals use ``n_boot=200`` resamples by default (the caption says so); the
report and paper figures use 1000.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from ser_diag import io
from ser_diag import resampling as resampling_
from ser_diag.analysis import binned
from ser_diag.analysis.agreement import SD_BINS
from ser_diag.analysis.fusion import disagreement_by_true
from ser_diag.diagnostics import Diagnostics, diagnose, rows_where
from ser_diag.names import human_name
from ser_diag.outputs import atomic_write_text, table_csv
from ser_diag.schema import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    CLASS_CODES,
    CLASS_NAMES,
    SPLITS,
    SYNTHETIC_BANNER,
    TASK_ATTRIBUTES,
    TASK_CATEGORICAL,
    TASKS,
)

__all__ = ["VIEWS", "CELL_VIEWS", "GROUP_VIEWS", "BEYOND_VIEWS", "BIN_SCHEMES", "ExplorerState", "Explorer", "Listing", "view_name",
           "column_name", "format_votes"]

#: Beyond-the-paper views (issue 12), drawn from the diagnostics' ``leaderboard_ranks``,
#: ``leaderboard_pairs``, ``annotator_agreement*``, ``human_ceiling``, ``podcast_metrics``,
#: ``gender_gap_by_podcast`` and ``duration_metrics`` tables.
BEYOND_VIEWS = ("leaderboard_ranks", "win_probability", "annotator_agreement", "podcasts", "durations")
#: Views of the explorer; ``binned_<attr>`` is the paper's Fig. 3b-d matrix of that attribute.
VIEWS = ("confusion", "binned_EmoAct", "binned_EmoVal", "binned_EmoDom", "regression_to_mean",
         "gender_audit", "topk_fusion") + BEYOND_VIEWS
#: Views whose cells list utterances.
CELL_VIEWS = ("confusion", "binned_EmoAct", "binned_EmoVal", "binned_EmoDom")
#: Views whose groups list utterances: ``cell_true`` is an agreement bin (``'majority'``, ``'high SD'``)
#: or a podcast (``'7025'``).
GROUP_VIEWS = ("annotator_agreement", "podcasts")
BIN_SCHEMES = binned.SCHEMES
_VIEW_NAMES = {"confusion": "confusion matrix", "regression_to_mean": "regression to the mean",
               "gender_audit": "gender audit", "topk_fusion": "top-K fusion",
               "leaderboard_ranks": "leaderboard: ranks and tiers",
               "win_probability": "pairwise win probability",
               "annotator_agreement": "annotator agreement and human ceiling",
               "podcasts": "per-podcast metrics", "durations": "metrics by duration"}
#: Table each beyond view needs, and what to say when the diagnostics could not make it.
_BEYOND_NEEDS = {
    "leaderboard_ranks": ("leaderboard_ranks", "the leaderboard needs predictions in this split and group"),
    "win_probability": ("leaderboard_pairs", "win probabilities need at least two systems of one task"),
    "annotator_agreement": ("annotator_agreement_bins", "annotator agreement needs Labels/labels_detailed.csv "
                                                        "next to the consensus labels"),
    "podcasts": ("podcast_metrics", "per-podcast metrics need MSP-PODCAST_<podcast>_<segment> file names with "
                                    "enough files per podcast"),
    "durations": ("duration_metrics", "duration bins need the audio files in Audios/ next to Labels/"),
}
_BEYOND_NOTE_WORDS = {"annotator_agreement": "agreement", "durations": "duration", "podcasts": "podcast"}
_HEADERS = {
    "task": "task", "system": "system", "metric": "metric", "estimate": "estimate", "ci_low": "CI low",
    "ci_high": "CI high", "rank": "rank", "rank_interval": "95% rank interval", "p_best": "P(best)",
    "tier": "tier", "system_a": "system A", "system_b": "system B", "diff": "A - B",
    "win_prob": "P(A beats B)", "p_holm": "p (Holm)", "significant": "significant (Holm, 5%)",
    "group": "group", "n": "files", "n_speakers": "speakers", "overall": "all files",
    "below_overall": "CI below all files", "quantity": "quantity", "n_files": "files",
    "n_judgements": "judgements", "estimator": "estimator", "bias": "known bias",
    "n_podcasts_both": "podcasts with both genders",
}
_QUANTITIES = {"gap_overall": "gender gap, all files", "gap_within_podcast": "gender gap within podcasts",
               "share_explained": "share of the gap explained by podcast", "error_rate": "error rate",
               "plausible_accuracy": "plausible accuracy (prediction among the votes)",
               "expected_agreement": "expected agreement with a random annotator",
               "cross_entropy": "cross-entropy to the votes (nats)", "kl": "KL divergence to the votes (nats)",
               "mse_mean": "squared error (mean of the attributes)"}
#: Cache bounds, least recently used first out: drawn outputs (PNGs, listings; small, many of
#: them pre-rendered) and data (diagnostics, merged frames, rows; large, costly to recompute) are
#: counted apart, so pre-rendered figures never push out the diagnostics they are drawn from.
_CACHE_SIZE = {"drawn": 512, "data": 64}
_DRAWN = {"png", "listing"}
_PINNED = {("detailed",), ("votes",)}   # read once per explorer
_SYNTHETIC_NOTE = SYNTHETIC_BANNER.split(" - ")[0]
_NAME_TO_CODE = {name.lower(): code for code, name in CLASS_NAMES.items()}
_HEADLINE = ["macro_f1", "accuracy", "uar", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"]
_HEADLINE_OF = {TASK_CATEGORICAL: "macro_f1", TASK_ATTRIBUTES: "ccc_mean"}
_SD_BINS = SD_BINS


def view_name(view: str) -> str:
    """The reader's name of a view: ``'binned_EmoVal'`` -> ``'binned valence'``."""
    return _VIEW_NAMES.get(view) or human_name(view)


_COLUMNS = {
    "FileName": "file", "SpkrID": "speaker", "Gender": "gender", "EmoClass_true": "true class",
    "EmoClass_pred": "predicted", "EmoClass_pred_compare": "predicted (compare)",
    "P_pred": "probability of the prediction", "votes": "annotators' votes", "n_votes": "annotators",
    "vote_share_true": "votes for the true class", "vote_share_pred": "votes for the prediction",
    "error": "error (pred - true)", "error_compare": "error (compare)", "right": "right",
    "transcript": "transcript", "audio": "audio",
}
for _attr in ATTRIBUTES:
    _COLUMNS.update({f"{_attr}_true": f"true {ATTRIBUTE_NAMES[_attr]}",
                     f"{_attr}_pred": f"predicted {ATTRIBUTE_NAMES[_attr]}",
                     f"{_attr}_pred_compare": f"predicted {ATTRIBUTE_NAMES[_attr]} (compare)",
                     f"{_attr}_annotators": f"annotators' {ATTRIBUTE_NAMES[_attr]} scores"})


def column_name(column: str, system: str | None = None, compare: str | None = None) -> str:
    """Header a person reads for a column of :meth:`Explorer.cell_utterances` or
    :meth:`Explorer.disagreement_list` (machine names stay in the CSV export); ``system`` /
    ``compare`` name whose prediction a column holds.

    >>> column_name("EmoVal_pred", "sysA"), column_name("EmoClass_pred_compare", "sysA", "sysB")
    ('predicted valence by sysA', 'predicted by sysB')
    """
    text = _COLUMNS.get(column, human_name(column))
    if compare is not None and text.endswith("(compare)"):
        return text.replace("(compare)", f"by {compare}").replace("error by", "error of").replace("  ", " ")
    if system is not None and (column == "EmoClass_pred" or column in {f"{a}_pred" for a in ATTRIBUTES}):
        return f"{text} by {system}"
    return text


def format_votes(counts: np.ndarray) -> np.ndarray:
    """Compact vote text per row of a files x classes count matrix, most votes first:
    ``'F 6 · U 1'``."""
    counts = np.asarray(counts, dtype=np.int64)
    order = np.argsort(-counts, axis=1, kind="stable")
    ranked = np.take_along_axis(counts, order, axis=1)
    pieces = np.where(ranked > 0, np.asarray(CLASS_CODES, dtype=object)[order] + " "
                      + ranked.astype(str).astype(object), None)
    return np.array([" · ".join(p for p in row if p is not None) for row in pieces], dtype=object)


@dataclasses.dataclass
class ExplorerState:
    """What the explorer shows. Plain values only; :meth:`Explorer.set` validates changes.

    ``group_column``/``group_value`` keep only the files whose label column equals the value
    (compared as text, so ``SpkrID`` 127 and ``"127"`` are the same); ``None`` = all files.
    ``cell_true``/``cell_pred`` select a confusion cell (class codes) in the ``confusion`` view
    or a bin (index or label) of the view's attribute in a ``binned_*`` view; ``None`` = any;
    in the agreement and podcast views ``cell_true`` is an agreement bin or a podcast.
    ``disagree_only`` (with a ``compare_system``) lists the files where the two systems
    disagree, filtered by ``cell_true`` when set.
    """

    system: str
    compare_system: str | None = None
    split: str = "Development"
    group_column: str | None = None
    group_value: object = None
    view: str = "confusion"
    bins: str = "unit"
    cell_true: object = None
    cell_pred: object = None
    sort_by: str | None = None
    ascending: bool = True
    disagree_only: bool = False


@dataclasses.dataclass
class Listing:
    """What the rows area shows for one state: ``title`` and ``table`` (the files), or only a
    ``message`` saying why nothing is listed. ``state`` is the state it answers."""

    state: ExplorerState
    title: str
    table: pd.DataFrame | None = None
    message: str = ""

    @property
    def files(self) -> list[str]:
        return [] if self.table is None else self.table["FileName"].astype(str).tolist()


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))


class Explorer:
    """Interactive explorer of a challenge's results (labels + every system's predictions).

    ``labels``: corpus root, ``labels_consensus.csv`` or a labels frame (:func:`ser_diag.io.read_labels`,
    ideally with every split so the split control can switch); ``predictions``: a folder of
    systems, one system's file(s), or a predictions frame (:func:`ser_diag.io.read_systems`).
    ``corpus``: MSP-Podcast root holding ``Audios/``, ``Transcripts/``, ``Labels/labels_detailed.csv``
    (default: the labels path when it is a corpus root or its ``Labels/`` folder). Bootstrap
    settings (``resampling``, a :class:`~ser_diag.resampling.Resampling`, default 200 resamples
    of speakers when known; or the older ``n_boot``, ``level``, ``by_speaker``, ``seed``, ``ddof``) go to
    :func:`ser_diag.diagnostics.diagnose`; the state is in :attr:`state`, changed through
    :meth:`set`; :meth:`wait_prefetch` waits for the background work.
    """

    def __init__(self, labels, predictions, corpus=None, split: str = "Development", *,
                 system: str | None = None, resampling: resampling_.Resampling | None = None,
                 n_boot: int | None = None, level: float | None = None,
                 by_speaker: bool | None = None, seed: int | None = None, ddof: int | None = None,
                 intersection: bool = False,
                 prefetch: bool = True):
        self.labels = labels if isinstance(labels, pd.DataFrame) else io.read_labels(labels, split=None)
        self.predictions = (predictions if isinstance(predictions, pd.DataFrame)
                            else io.read_systems(predictions))
        self.resampling = resampling_.Resampling.of(
            resampling if resampling is not None else resampling_.Resampling(n_boot=200),
            n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed, ddof=ddof)
        self.bootstrap = dict(n_boot=self.resampling.n_boot, resampling=self.resampling)
        self.ddof, self.intersection = self.resampling.ddof, intersection
        self.corpus = Path(corpus) if corpus is not None else self._corpus_from(labels)
        self._cache: OrderedDict = OrderedDict()
        self._pending: dict = {}                  # key -> Future of a background computation
        self._render_jobs: dict = {}              # PNG key -> Future of a queued background render
        self._lock = threading.RLock()
        self._background: ThreadPoolExecutor | None = None
        self.prefetch = prefetch
        present = set(self.predictions["FileName"].astype(str))
        self.splits = [s for s in SPLITS
                       if self.labels.loc[self.labels["Split_Set"] == s, "FileName"].isin(present).any()]
        if not self.splits:
            raise ValueError("no labelled file has a prediction")
        self.systems = [str(s) for s in pd.unique(self.predictions["system"])]
        start_split = split if split in self.splits else self.splits[0]
        self.state = ExplorerState(system=self.systems[0], split=start_split)
        if prefetch:
            self._prefetch(("detailed",), self._read_detailed)
            self._prefetch(("votes",), self._compute_votes)
        if system is None:   # the best system by the headline metric of the diagnostics
            focus = self.diagnostics().settings.get("focus", {})
            system = focus.get(TASK_CATEGORICAL) or focus.get(TASK_ATTRIBUTES) or self.systems[0]
        self.state.system = self._validate_system(system)

    # ------------------------------------------------------------------ cache and background
    def _prefetch(self, key, compute) -> Future | None:
        """Compute ``compute()`` in the background thread and cache it under ``key``; a caller
        that needs ``key`` before it started computes it itself (:meth:`_cached`). Returns the
        queued job (None when ``key`` is cached or queued already)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ser_diag-explore")

        def run():
            value = compute()
            self._store(key, value)
            return value
        with self._lock:
            if key in self._cache or key in self._pending:
                return None
            future = self._background.submit(run)
            self._pending[key] = future
        future.add_done_callback(lambda _: self._settled(key))
        return future

    def _settled(self, key) -> None:
        """A background job is done: forget it, and when none is left let the background thread
        end (a new one starts with the next job). An idle thread kept alive would make every
        later run in this process, e.g. ``figures`` in the same notebook, compute on one core:
        :mod:`ser_diag.parallel` never forks while another thread runs."""
        with self._lock:
            self._pending.pop(key, None)
            if not self._pending and self._background is not None:
                self._background.shutdown(wait=False)
                self._background = None

    def wait_prefetch(self) -> None:
        """Block until the background computations queued so far are done (errors are left
        for the foreground, which recomputes and reports them)."""
        for future in list(self._pending.values()):
            try:
                future.result()
            except CancelledError:   # taken back by the foreground
                pass
            except ValueError:
                pass

    def _cached(self, key, compute):
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            future: Future | None = self._pending.get(key)
        if future is not None and not future.cancel():   # running: wait for it
            try:
                return future.result()
            except CancelledError:
                pass
        value = compute()
        self._store(key, value)
        return value

    def _store(self, key, value) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            kind = "drawn" if key[0] in _DRAWN else "data"
            same = [k for k in self._cache if k not in _PINNED and ("drawn" if k[0] in _DRAWN else "data") == kind]
            if len(same) > _CACHE_SIZE[kind]:    # least recently used of its kind; the votes stay
                del self._cache[same[0]]

    # ------------------------------------------------------------------ data
    @staticmethod
    def _corpus_from(labels) -> Path | None:
        if isinstance(labels, pd.DataFrame):
            source = labels.attrs.get("source")
            return Path(source).parent.parent if source else None
        path = Path(labels)
        return path if path.is_dir() else path.parent.parent

    def _merged_split(self, split: str) -> dict:
        def compute():
            labels = self.labels.loc[self.labels["Split_Set"] == split].reset_index(drop=True)
            labels.attrs = dict(self.labels.attrs, split=split)
            return {task: io.merge(labels, self.predictions, task, intersection=self.intersection)
                    for task in TASKS if io.submitted(self.predictions, task).any()}
        return self._cached(("merged", split), compute)

    @property
    def _data_key(self) -> tuple:
        return self._key_of(self.state)

    @staticmethod
    def _key_of(s: ExplorerState) -> tuple:
        return (s.split, s.group_column, None if s.group_value is None else str(s.group_value))

    def group_files(self, state: ExplorerState | None = None) -> pd.Index | None:
        """FileNames of the split in the group of ``state`` (default: the current one);
        ``None`` when there is no group filter."""
        s = state or self.state
        if s.group_column is None:
            return None
        labels = self.labels.loc[self.labels["Split_Set"] == s.split]
        keep = _as_text(labels[s.group_column]) == str(s.group_value)
        return pd.Index(labels.loc[keep.to_numpy(bool), "FileName"])

    def merged(self, task: str, data_key: tuple | None = None) -> pd.DataFrame | None:
        """The merged frame of ``task`` for the current split and group (all systems), or None.
        ``data_key``: ``(split, group_column, group_value as text)`` instead of the state's."""
        key = data_key or self._data_key

        def compute():
            split, column, value = key
            frame = self._merged_split(split).get(task)
            files = self.group_files(ExplorerState(system="", split=split, group_column=column,
                                                   group_value=value))
            if frame is None or files is None:
                return frame
            kept = frame.loc[files.get_indexer(frame["FileName"]) >= 0].reset_index(drop=True)
            kept.attrs = dict(frame.attrs)
            return kept
        return self._cached(("filtered", task) + key, compute)

    def tasks(self) -> list[str]:
        """Tasks with predictions in the current split and group."""
        return [t for t in TASKS if self.merged(t) is not None and len(self.merged(t))]

    def diagnostics(self, state: ExplorerState | None = None) -> Diagnostics:
        """:func:`ser_diag.diagnostics.diagnose` of the files of ``state``'s split and group
        (default: the current state) with its bin scheme and the explorer's bootstrap
        settings, cached: the tables every view is drawn from."""
        s = state or self.state
        key = self._key_of(s)
        return self._cached(("diag",) + key + (s.bins,), lambda: self._compute_diagnostics(key, s.bins))

    def _compute_diagnostics(self, key: tuple, bins: str) -> Diagnostics:
        frames = {t: self.merged(t, key) for t in TASKS}
        frames = {t: (f if f is not None and len(f) else None) for t, f in frames.items()}
        if all(f is None for f in frames.values()):
            raise ValueError(f"no predictions for split {key[0]!r} and this group")
        return diagnose(frames[TASK_CATEGORICAL], frames[TASK_ATTRIBUTES], labels=self._group_labels(key),
                        split=key[0], scheme=bins, resampling=self.resampling)

    def _group_labels(self, key: tuple) -> pd.DataFrame:
        """Consensus labels of the split and group of ``key`` with the labels' attributes (their
        source path, where the diagnostics find ``labels_detailed.csv`` and ``Audios/``)."""
        split, column, value = key
        labels = self.labels.loc[self.labels["Split_Set"] == split]
        if column is not None:
            labels = labels.loc[(_as_text(labels[column]) == value).to_numpy(bool)]
        labels = labels.reset_index(drop=True)
        labels.attrs = dict(self.labels.attrs, split=split)
        return labels

    def prefetch_next(self) -> None:
        """Queue the diagnostics a next control change is likely to need: in the views the bin
        scheme changes (binned, regression to the mean), the other schemes of this split and group.
        (Each gender is queued by :meth:`prefetch_groups` when a group column is chosen.)"""
        if not self.prefetch:
            return
        s = self.state
        if s.view.startswith("binned_") or s.view == "regression_to_mean":   # the views bins change
            for bins in BIN_SCHEMES:
                self._prefetch_diagnostics(dataclasses.replace(s, bins=bins))
        self._prefetch_figures()

    def _prefetch_figures(self, max_other_systems: int = 12) -> None:
        """Queue the PNG of every other view of the current systems, split, group and bins
        (what the widgets show: the comparison panel beside a clickable matrix, the figure of
        every other view), then of the current view for the other systems (the first
        ``max_other_systems``) and compared with the likely comparisons (each task's best system
        and the baseline), once the diagnostics they are drawn from are computed; renders
        queued for an earlier state and not started yet are taken back. Drawn on figures
        outside pyplot (:meth:`_axes`), so the background thread shares no figure state."""
        s = self.state
        key = ("diag",) + self._key_of(s) + (s.bins,)
        with self._lock:
            ready = key in self._cache
        wanted = []                                      # (state, compare_only), most likely first
        if ready:
            for view in VIEWS:
                if view != s.view:
                    wanted.append((dataclasses.replace(s, view=view), view in CELL_VIEWS))
            others = [o for o in self.systems[:max_other_systems] if o not in (s.system, s.compare_system)]
            for system in others:                        # then this view for the other systems,
                wanted.append((dataclasses.replace(s, system=system), s.view in CELL_VIEWS))
            settings = self.diagnostics().settings       # and compared with the likely ones:
            likely = list(settings.get("focus", {}).values()) + [settings.get("baseline")]  # best, baseline
            for system in [o for o in others if o in likely]:
                wanted.append((dataclasses.replace(s, compare_system=system), s.view in CELL_VIEWS))
            wanted = [(state, c) for state, c in wanted if not (c and state.compare_system is None)]
        keys = {self._png_key(state, 90, c) for state, c in wanted}
        for old_key, future in list(self._render_jobs.items()):
            if old_key not in keys and future.cancel():
                self._render_jobs.pop(old_key, None)
        for state, compare_only in wanted:
            other = copy.copy(self)                      # shares the cache, its own state
            other.state = dataclasses.replace(state, cell_true=None, cell_pred=None)
            if state.view in BEYOND_VIEWS and other.view_unavailable():
                continue
            png_key = self._png_key(other.state, 90, compare_only)
            future = self._prefetch(png_key, lambda other=other, c=compare_only: other._render_png(90, c))
            if future is not None:
                self._render_jobs[png_key] = future
                future.add_done_callback(lambda _, k=png_key: self._render_jobs.pop(k, None))

    def prefetch_groups(self, column: str, max_values: int = 4) -> None:
        """Queue the diagnostics of each value of ``column`` (at most ``max_values`` of them, e.g.
        each gender) in the current split and bins: what the widgets ask for when a person picks a
        group column, before they pick its value; then the current view's figure for each value.
        A full diagnostics run per value is the cost, so it is queued only on that signal (not
        after every draw)."""
        if not self.prefetch or column is None:
            return
        values = self.group_values(column)
        if len(values) > max_values:
            return
        s = self.state
        compare_only = s.view in CELL_VIEWS
        for value in values:
            self._prefetch_diagnostics(dataclasses.replace(s, group_column=column, group_value=value))
        if compare_only and s.compare_system is None:
            return                                       # the widgets draw no PNG in this view
        for value in values:                             # then this view's figure for each value
            other = copy.copy(self)                      # (queued after the diagnostics it needs)
            other.state = dataclasses.replace(s, group_column=column, group_value=value, cell_true=None,
                                              cell_pred=None)
            png_key = self._png_key(other.state, 90, compare_only)
            self._prefetch(png_key, lambda other=other: other._render_png(90, compare_only))

    def _prefetch_diagnostics(self, state: ExplorerState) -> None:
        key = self._key_of(state)
        self._prefetch(("diag",) + key + (state.bins,),
                       lambda key=key, b=state.bins: self._compute_diagnostics(key, b))

    @property
    def synthetic(self) -> bool:
        return any(bool(m.attrs.get("synthetic")) for m in self._merged_split(self.state.split).values())

    # ------------------------------------------------------------------ state
    def _validate_system(self, system):
        if system is not None and str(system) not in self.systems:
            raise ValueError(f"unknown system {system!r}; systems: {self.systems}")
        return None if system is None else str(system)

    def group_columns(self) -> list[str]:
        """Label columns a group filter can use (every column but FileName, the split and the
        attribute values)."""
        return [c for c in self.labels.columns if c not in ("FileName", "Split_Set") + ATTRIBUTES]

    def group_values(self, column: str) -> list:
        """Values of ``column`` among the current split's labelled files, sorted."""
        values = self.labels.loc[self.labels["Split_Set"] == self.state.split, column].dropna().unique()
        return sorted(values.tolist(), key=lambda v: (str(type(v)), v))

    def set(self, **changes) -> "Explorer":
        """Change the state (any :class:`ExplorerState` field) after checking the values.

        Changing the view, split, group or bins clears the selected cell; a selected cell is
        checked against the view's classes or bins.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(ExplorerState)}
        if unknown:
            raise ValueError(f"unknown state fields {sorted(unknown)}")
        new = dataclasses.replace(self.state, **changes)
        new.system = self._validate_system(new.system)
        new.compare_system = self._validate_system(new.compare_system)
        if new.compare_system == new.system:
            new.compare_system = None
        if new.view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, not {new.view!r}")
        if new.bins not in BIN_SCHEMES:
            raise ValueError(f"bins must be one of {BIN_SCHEMES}, not {new.bins!r}")
        if new.split not in self.splits:
            raise ValueError(f"split {new.split!r} has no predictions; splits: {self.splits}")
        if new.group_column is not None and new.group_column not in self.group_columns():
            raise ValueError(f"group column must be one of {self.group_columns()}, not {new.group_column!r}")
        if new.group_column is None:
            new.group_value = None
        moved = any(getattr(new, f) != getattr(self.state, f)
                    for f in ("view", "split", "group_column", "group_value", "bins"))
        if moved and "cell_true" not in changes:
            new.cell_true = None
        if moved and "cell_pred" not in changes:
            new.cell_pred = None
        if moved and "sort_by" not in changes:
            new.sort_by = None
        files = self.group_files(new)
        if files is not None and files.empty:
            raise ValueError(f"no file of split {new.split!r} has {new.group_column} = {new.group_value!r}")
        old, self.state = self.state, new
        try:   # a cell that the view does not have is refused
            if new.view in GROUP_VIEWS:
                if new.cell_pred is not None:
                    raise ValueError(f"the {view_name(new.view)} view selects one group (cell_true), "
                                     "not a predicted cell")
                if new.cell_true is not None:
                    try:
                        new.cell_true = self._group_value(new.cell_true)
                    except ValueError:
                        if "cell_true" in changes:
                            raise
                        new.cell_true = None    # e.g. a podcast the newly chosen system is not scored on
            for value in (new.cell_true, new.cell_pred):
                if value is not None:
                    self._cell_value(value)
        except ValueError:
            self.state = old
            raise
        return self

    @property
    def selected_systems(self) -> list[str]:
        s = self.state
        return [s.system] + ([s.compare_system] if s.compare_system else [])

    @property
    def view_attribute(self) -> str | None:
        """The attribute of a ``binned_*`` view, else None."""
        return self.state.view.removeprefix("binned_") if self.state.view.startswith("binned_") else None

    # ------------------------------------------------------------------ tables from diagnostics
    def metrics_table(self, systems=None) -> pd.DataFrame:
        """Metrics with bootstrap CIs of the selected system(s) (or ``systems``: a list, or
        ``"all"``) on the current split and group: the diagnostics' ``metrics`` table.

        Columns: task, system, metric, estimate, ci_low, ci_high, level, unit, n_boot, n.
        """
        names = self.systems if systems == "all" else (systems or self.selected_systems)
        table = self.diagnostics().tables["metrics"]
        table = table[table["system"].astype(str).isin(names)]
        if table.empty:
            raise ValueError("no predictions for these systems in this split and group")
        return table[["task", "system", "metric", "estimate", "ci_low", "ci_high", "level", "unit",
                      "n_boot", "n"]].reset_index(drop=True)

    def headline_table(self, systems=None) -> pd.DataFrame:
        """:meth:`metrics_table` for reading: one row per system, one column per headline
        metric (human names), cells ``estimate [ci_low, ci_high]``, and the files scored per
        task (``n categorical``, ``n attributes``: the tasks may score different files)."""
        table = self.metrics_table(systems)
        table = table[table["metric"].isin(_HEADLINE)]
        cell = [f"{e:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) and np.isfinite(hi) else f"{e:.3f}"
                for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"])]
        wide = table.assign(cell=cell).pivot(index="system", columns="metric", values="cell")
        wide = wide.reindex(columns=[m for m in _HEADLINE if m in wide.columns])
        for task in TASKS:
            part = table[table["task"] == task]
            if len(part):
                wide[f"n {task}"] = part.groupby("system")["n"].max().reindex(wide.index).astype("Int64")
        wide = wide.rename(columns=lambda c: human_name(c) if not str(c).startswith("n ") else c)
        order = self.selected_systems if systems is None else self.systems if systems == "all" else systems
        wide = wide.reindex([s for s in order if s in wide.index])
        wide.columns.name = None
        return wide

    def _confusion_matrix(self, system: str) -> pd.DataFrame:
        return rows_where(self.diagnostics().tables["confusion"], system=system)

    def confusion_difference(self) -> pd.DataFrame:
        """Row-normalised confusion of the system minus the comparison system, from the
        diagnostics' confusion table (what :func:`ser_diag.analysis.confusion.confusion_difference`
        returns). Columns: system_a, system_b, true, pred, share_a, share_b, difference."""
        s = self.state
        a = self._confusion_matrix(s.system).reset_index(drop=True)
        b = self._confusion_matrix(s.compare_system).reset_index(drop=True)
        return pd.DataFrame({"system_a": s.system, "system_b": s.compare_system, "true": a["true"],
                             "pred": a["pred"], "share_a": a["share"], "share_b": b["share"],
                             "difference": a["share"] - b["share"]})

    def heatmap(self, system: str | None = None) -> dict:
        """The cells of the current confusion or binned view for ``system`` (default: the
        state's), for the clickable figure: ``share`` and ``count`` (rows = true, columns =
        predicted; binned rows from high to low as in the figure), ``rows``/``columns``
        (labels), ``row_values``/``column_values`` (what :meth:`set` takes as ``cell_true``/
        ``cell_pred``), ``title``; None in other views."""
        s, attribute = self.state, self.view_attribute
        system = system or s.system
        if s.view == "confusion":
            frame = self._confusion_matrix(system)
            k = len(CLASS_CODES)
            share = frame["share"].to_numpy(float).reshape(k, k)
            count = frame["count"].to_numpy(np.int64).reshape(k, k)
            names = [CLASS_NAMES[c] for c in CLASS_CODES]
            return dict(share=share, count=count, rows=names, columns=names, row_values=list(CLASS_CODES),
                        column_values=list(CLASS_CODES),
                        title=f"{system}: confusion matrix (share of the true class)")
        if attribute is None:
            return None
        frame = rows_where(self.diagnostics().tables["binned"], system=system, attribute=attribute)
        k = int(np.sqrt(len(frame)))
        frame = frame.sort_values(["true_index", "pred_index"])
        share = frame["share"].to_numpy(float).reshape(k, k)[::-1]
        count = frame["count"].to_numpy(np.int64).reshape(k, k)[::-1]
        labels = self.bin_labels(attribute)
        return dict(share=share, count=count, rows=labels[::-1], columns=labels,
                    row_values=list(range(k))[::-1], column_values=list(range(k)),
                    title=f"{system}: binned {ATTRIBUTE_NAMES[attribute]} (share of the true bin)")

    def figure(self, compare_only: bool = False):
        """The current view as a matplotlib Figure drawn by the library's Display classes from
        the diagnostics' tables.

        ``confusion`` / ``binned_*``: the system's matrix, and with a comparison system the
        difference matrix (confusion) or its matrix (bins) beside it; ``regression_to_mean``:
        mean prediction per true bin with CIs (one panel per attribute when comparing);
        ``gender_audit``: metrics by gender with gap, CI and p-value, per task (and system);
        ``topk_fusion``: Fig. 4 over all systems. ``compare_only``: in a confusion or binned view
        with a comparison system, only the comparison panel (what the widgets show beside the
        clickable matrix of the system).
        """
        fig = self._figure(compare_only)
        self.prefetch_next()
        return fig

    def _figure(self, compare_only: bool = False):
        from ser_diag.plots.bias import GroupGapDisplay
        from ser_diag.plots.binned import BinnedAttributeDisplay
        from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay
        from ser_diag.plots.fusion import FusionCurveDisplay
        from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay

        s = self.state
        view, systems = s.view, self.selected_systems
        diag = self.diagnostics()
        t = diag.tables
        if view == "confusion":
            self._need(t, "confusion", "categorical predictions")
            only = compare_only and s.compare_system is not None
            fig, axes = self._axes(1 if only else len(systems), (7.2, 6.2))
            if not only:
                ConfusionMatrixDisplay.from_frame(self._confusion_matrix(s.system), s.system, ax=axes[0])
            if s.compare_system:
                ConfusionDifferenceDisplay.from_frame(self.confusion_difference(), ax=axes[-1])
        elif view.startswith("binned_"):
            self._need(t, "binned", "attribute predictions")
            attribute = self.view_attribute
            names = systems[1:] if compare_only and s.compare_system is not None else systems
            fig, axes = self._axes(len(names), (6.6, 5.4))
            for ax, name in zip(axes, names):
                BinnedAttributeDisplay.from_frame(rows_where(t["binned"], system=name, attribute=attribute),
                                                  name, attribute, ax=ax)
        elif view == "regression_to_mean":
            self._need(t, "bin_means", "attribute predictions")
            means = t["bin_means"][t["bin_means"]["system"].astype(str).isin(systems)]
            shrink = t["shrinkage"][t["shrinkage"]["system"].astype(str).isin(systems)]
            if s.compare_system:
                fig, axes = self._axes(len(ATTRIBUTES), (5.2, 5.2))
                for ax, attr in zip(axes, ATTRIBUTES):
                    RegressionToMeanDisplay.from_frame(means[means["attribute"] == attr], shrink, ax=ax)
            else:
                fig, axes = self._axes(1, (6.8, 6.0))
                RegressionToMeanDisplay.from_frame(means, shrink, ax=axes[0])
        elif view == "gender_audit":
            self._need(t, "gender_metrics", "a Gender column with values")
            gm, gaps = t["gender_metrics"], t.get("gender_gaps")
            panels = [(n, task) for n in systems for task in TASKS
                      if len(rows_where(gm, task=task, system=n))]
            if not panels:
                raise ValueError("no gender metrics for these systems")
            fig, axes = self._axes(len(panels), (6.2, 4.8), ncols=min(len(panels), 2))
            for ax, (name, task) in zip(axes, panels):
                g = None if gaps is None else rows_where(gaps, task=task, system=name)
                GroupGapDisplay.from_frame(rows_where(gm, task=task, system=name),
                                           g if g is not None and len(g) else None, name, ax=ax,
                                           title=f"{name}: {task} metrics by gender")
            for ax in axes[len(panels):]:
                ax.set_visible(False)
        elif view == "topk_fusion":
            self._need(t, "fusion_curve", "at least two systems")
            panels = t["fusion_curve"]["metric"].nunique()
            fig, axes = self._axes(panels, (3.1 + 0.6 / panels, 3.9))
            FusionCurveDisplay.from_frame(t["fusion_curve"], ax=axes)
        elif view in BEYOND_VIEWS:
            fig = self._beyond_figure(view, t)
        else:  # pragma: no cover - set() validates views
            raise ValueError(view)
        self._caption(fig)
        return fig

    # ------------------------------------------------------------------ beyond the paper
    def view_unavailable(self) -> str | None:
        """One line saying why the current beyond view has nothing to show (e.g. no
        ``labels_detailed.csv``: the diagnostics' note), or None when it has data."""
        s = self.state
        if s.view not in BEYOND_VIEWS:
            return None
        diag = self.diagnostics()
        name, why = _BEYOND_NEEDS[s.view]
        table = diag.tables.get(name)
        if table is None or table.empty:
            word = _BEYOND_NOTE_WORDS.get(s.view)
            notes = [n for n in diag.settings.get("notes", []) if word and word in n]
            return f"No {view_name(s.view)} here: {notes[0] if notes else why}."
        if s.view in ("podcasts", "durations", "annotator_agreement") and \
                not table["system"].astype(str).isin(self.selected_systems).any():
            return (f"No {view_name(s.view)} for {' or '.join(self.selected_systems)}: these tables keep the "
                    f"best systems of each task only (see the diagnostics' notes).")
        return None

    def _beyond_figure(self, view: str, t: dict):
        from ser_diag.plots.agreement import plot_metric_by_agreement
        from ser_diag.plots.ranks import plot_leaderboard_ranks, plot_win_probability
        from ser_diag.plots.where import plot_duration_metrics, plot_podcast_metrics

        message = self.view_unavailable()
        if message:
            raise ValueError(message)
        name = _BEYOND_NEEDS[view][0]
        table = t[name]
        systems = self.selected_systems
        tasks = [task for task in TASKS if ((table["task"] == task) & (table["metric"] == _HEADLINE_OF[task])).any()]
        if view in ("podcasts", "durations", "annotator_agreement"):
            table = table[table["system"].astype(str).isin(systems)]
            tasks = [task for task in tasks if ((table["task"] == task)
                                                & (table["metric"] == _HEADLINE_OF[task])).any()]
        if view == "leaderboard_ranks":
            n = [int(((table["task"] == task) & (table["metric"] == _HEADLINE_OF[task])).sum()) for task in tasks]
            fig, axes = self._axes(len(tasks), (7.4, 1.6 + 0.32 * max(n)))
            for ax, task in zip(axes, tasks):
                plot_leaderboard_ranks(table, metric=_HEADLINE_OF[task], task=task, ceiling=t.get("human_ceiling"),
                                       ax=ax)
                self._mark_systems(ax, systems)
        elif view == "win_probability":
            side = table["system_a"].nunique() + 1
            fig, axes = self._axes(len(tasks), (2.4 + 0.4 * side, 1.8 + 0.36 * side))
            for ax, task in zip(axes, tasks):
                plot_win_probability(table, metric=_HEADLINE_OF[task], task=task, ax=ax)
                self._mark_systems(ax, systems)
        elif view == "annotator_agreement":
            fig, axes = self._axes(len(tasks), (6.0, 4.4))
            for ax, task in zip(axes, tasks):
                plot_metric_by_agreement(table[table["task"] == task], metric=_HEADLINE_OF[task], ax=ax)
        elif view == "podcasts":
            panels = [(system, task) for system in systems for task in tasks
                      if ((table["system"] == system) & (table["task"] == task)).any()]
            rows = max(int(((table["system"] == a) & (table["task"] == b)
                            & (table["metric"] == _HEADLINE_OF[b])).sum()) for a, b in panels)
            fig, axes = self._axes(len(panels), (6.2, 1.4 + 0.28 * min(rows, 25)), ncols=min(len(panels), 2))
            for ax, (system, task) in zip(axes, panels):
                plot_podcast_metrics(table[table["task"] == task], system=system, metric=_HEADLINE_OF[task], ax=ax)
                ax.set_title(f"{ax.get_title()} - {task}", fontsize=10)
            for ax in axes[len(panels):]:
                ax.set_visible(False)
        else:   # durations
            fig, axes = self._axes(len(tasks), (6.0, 4.2))
            for ax, task in zip(axes, tasks):
                plot_duration_metrics(table[table["task"] == task], metric=_HEADLINE_OF[task], ax=ax)
        return fig

    @staticmethod
    def _mark_systems(ax, systems: list[str]) -> None:
        """Bold the tick labels of the chosen systems (the figure shows every system)."""
        for label in ax.get_yticklabels():
            if label.get_text() in systems:
                label.set_fontweight("bold")

    def view_tables(self) -> list[tuple[str, pd.DataFrame]]:
        """``(title, table)`` pairs shown below a beyond view's figure, headers in words
        (machine names stay in the diagnostics' CSVs); empty for other views or without data.

        * leaderboard: every metric of ``leaderboard_ranks`` (system, estimate, CI, rank, 95% rank
          interval, P(best), tier), best first; the human ceiling beside it;
        * win probability: each pair of the headline metrics (difference A - B with CI,
          P(A beats B), Holm-corrected p, significant);
        * agreement: the chosen system(s)' metrics per agreement bin (classes) and per annotator-SD
          bin (attributes), the human ceiling and the soft-label scores;
        * podcasts: the chosen system(s)' metrics per podcast, worst first, and the gender gap
          within podcasts; durations: the chosen system(s)' metrics per duration bin.
        """
        s = self.state
        if s.view not in BEYOND_VIEWS or self.view_unavailable():
            return []
        t = self.diagnostics().tables
        systems = self.selected_systems
        out = []
        if s.view == "leaderboard_ranks":
            board = t["leaderboard_ranks"].sort_values(["task", "metric", "rank", "system"], kind="stable")
            interval = [f"{int(lo)}-{int(hi)}" if np.isfinite(lo) and np.isfinite(hi) else ""
                        for lo, hi in zip(board["rank_ci_low"], board["rank_ci_high"])]
            table = board.assign(rank_interval=interval)
            out.append(("Leaderboard: estimate with CI, rank, 95% rank interval, probability of being best, "
                        "significance tier",
                        self._readable(table, ["task", "metric", "system", "estimate", "ci_low", "ci_high", "rank",
                                               "rank_interval", "p_best", "tier"])))
            if "human_ceiling" in t:
                out.append(self._ceiling(t["human_ceiling"]))
        elif s.view == "win_probability":
            pairs = t["leaderboard_pairs"]
            pairs = pairs[pairs["metric"].isin(_HEADLINE_OF.values())]
            out.append(("Pairs of systems (headline metrics): difference, P(A beats B) over the paired resamples, "
                        "Holm-corrected p-value",
                        self._readable(pairs, ["task", "metric", "system_a", "system_b", "diff", "ci_low", "ci_high",
                                               "win_prob", "p_holm", "significant"])))
        elif s.view == "annotator_agreement":
            bins = t["annotator_agreement_bins"]
            bins = bins[bins["system"].astype(str).isin(systems)]
            bins = bins.assign(group=bins["group"].astype(str))
            table = self._readable(bins, ["task", "system", "metric", "group", "n", "estimate", "ci_low", "ci_high"])
            table = table.rename(columns={"group": "annotator agreement"})
            out.append(("Metric by annotator agreement (classes: votes for the consensus; attributes: tercile "
                        "of the annotators' SD)", table))
            if "human_ceiling" in t:
                out.append(self._ceiling(t["human_ceiling"]))
            soft = t.get("annotator_agreement_soft")
            if soft is not None:
                soft = soft[soft["system"].astype(str).isin(systems)]
                out.append(("Soft-label scores against the annotators' votes",
                            self._readable(soft, ["system", "metric", "estimate", "ci_low", "ci_high", "n"])))
        elif s.view == "podcasts":
            pods = t["podcast_metrics"]
            pods = pods[pods["system"].astype(str).isin(systems)].sort_values(
                ["system", "task", "metric", "estimate", "group"], kind="stable")
            pods = pods.assign(group=pods["group"].astype(str))
            table = self._readable(pods, ["system", "task", "metric", "group", "n", "n_speakers", "estimate",
                                          "ci_low", "ci_high", "overall", "below_overall"])
            out.append(("Per podcast, worst first", table.rename(columns={"group": "podcast"})))
            gaps = t.get("gender_gap_by_podcast")
            if gaps is not None:
                gaps = gaps[gaps["system"].astype(str).isin(systems)]
                if len(gaps):
                    out.append(("Gender gap overall and within podcasts (share explained by podcast)",
                                self._readable(gaps, ["system", "task", "metric", "quantity", "estimate", "ci_low",
                                                      "ci_high", "n_podcasts_both"])))
        else:   # durations
            durations = t["duration_metrics"]
            durations = durations[durations["system"].astype(str).isin(systems)]
            durations = durations.assign(group=durations["group"].astype(str))
            table = self._readable(durations, ["system", "task", "metric", "group", "n", "estimate", "ci_low",
                                               "ci_high"])
            out.append(("Metric by duration (seconds, from the audio headers)",
                        table.rename(columns={"group": "duration"})))
        return out

    def view_table(self) -> pd.DataFrame | None:
        """The first of :meth:`view_tables` (None when there is none)."""
        tables = self.view_tables()
        return tables[0][1] if tables else None

    def _ceiling(self, ceiling: pd.DataFrame) -> tuple[str, pd.DataFrame]:
        first = ceiling.iloc[0]
        return (f"Human ceiling: {first['estimator']}; bias: {first['bias']}",
                self._readable(ceiling, ["task", "metric", "estimate", "ci_low", "ci_high", "n_files",
                                         "n_judgements"]))

    @staticmethod
    def _readable(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        """``columns`` of ``table`` with the headers (and metric names) a person reads."""
        out = table[columns].reset_index(drop=True).copy()
        for column in ("metric", "quantity"):
            if column in out:
                out[column] = [_QUANTITIES.get(m) or human_name(m) for m in out[column]]
        return out.rename(columns=_HEADERS)

    # ------------------------------------------------------------------ groups of the beyond views
    def group_options(self) -> list[tuple[str, str]]:
        """``(label, value)`` choices for ``cell_true`` in the agreement view (the agreement and
        annotator-SD bins) and the podcast view (the podcasts of the diagnostics' table, worst
        first for the system); empty otherwise or without data."""
        s = self.state
        if s.view not in GROUP_VIEWS or self.view_unavailable():
            return []
        t = self.diagnostics().tables
        if s.view == "annotator_agreement":
            table = t["annotator_agreement_bins"]
            labels = {TASK_CATEGORICAL: "classes", TASK_ATTRIBUTES: "attributes"}
            pairs = table[["task", "group"]].drop_duplicates()
            return [(f"{g} ({labels.get(task, task)})", str(g)) for task, g in pairs.itertuples(index=False)]
        return [(f"podcast {g} ({n} files, {'classes' if task == TASK_CATEGORICAL else 'attributes'})", g)
                for g, (task, n) in self._podcast_tasks().items()]

    def _podcast_tasks(self) -> dict[str, tuple[str, int]]:
        """Podcast -> (task its files are listed from, files) for the selected system: the
        podcasts of its classes worst first by macro-F1, then those only its attributes have
        enough files in, worst first by mean CCC."""
        table = self.diagnostics().tables["podcast_metrics"]
        own = table[table["system"].astype(str) == self.state.system]
        out: dict[str, tuple[str, int]] = {}
        for task in TASKS:
            part = own[(own["task"] == task) & (own["metric"] == _HEADLINE_OF[task])]
            part = part.sort_values(["estimate", "group"], kind="stable")
            for group, n in part[["group", "n"]].itertuples(index=False):
                out.setdefault(str(group), (task, int(n)))
        return out

    def group_files_of(self, value) -> pd.Index:
        """FileNames of an agreement bin (from the diagnostics' ``annotator_agreement`` table)
        or of a podcast (:func:`ser_diag.analysis.where.podcast_of` of the split's files)."""
        from ser_diag.analysis.where import podcast_of

        s, value = self.state, str(value)
        if s.view == "annotator_agreement":
            agreement = self.diagnostics().tables["annotator_agreement"]
            column = "sd_bin" if value in _SD_BINS else "agreement_bin"
            return pd.Index(agreement.loc[agreement[column].astype(str) == value, "FileName"])
        files = pd.Index(pd.unique(pd.concat([m["FileName"] for m in (self.merged(t) for t in self.tasks())])))
        return files[(podcast_of(files).astype(object).to_numpy() == value)]

    def group_utterances(self, value=None, *, sort_by: str | None = None,
                         ascending: bool | None = None) -> pd.DataFrame:
        """The files of an agreement bin or podcast (default: the state's ``cell_true``) for the
        selected system, in the listing's columns: the class truth and prediction (annotator
        agreement bins; podcasts in the system's per-podcast macro-F1) or every attribute's truth
        and prediction (annotator-SD bins; podcasts with enough files for attributes only),
        votes, transcript and audio."""
        s = self.state
        value = s.cell_true if value is None else value
        value = self._group_value(value)
        files = self.group_files_of(value)
        if s.view == "annotator_agreement":
            attributes = value in _SD_BINS
        else:
            attributes = self._podcast_tasks()[value][0] == TASK_ATTRIBUTES
        if attributes:
            rows = self._rows(TASK_ATTRIBUTES, s.system)
            rows = rows.loc[rows["FileName"].isin(files)]
            columns = ["FileName", "SpkrID", "Gender"] + [f"{a}_{w}" for a in ATTRIBUTES for w in ("true", "pred")]
            table = rows[columns].reset_index(drop=True)
        else:
            table = self._class_cell(None, None)
            table = table.loc[table["FileName"].isin(files)].reset_index(drop=True)
        table = self._with_votes(table, None)
        table = self._with_corpus(table)
        return self._sorted(table, sort_by or s.sort_by, s.ascending if ascending is None else ascending)

    def _group_value(self, value) -> str:
        options = self.group_options()
        values = [v for _, v in options]
        text = str(value)
        if text in values:
            return text
        by_label = [v for label, v in options if label == text]
        if by_label:
            return by_label[0]
        raise ValueError(f"unknown {'agreement bin' if self.state.view == 'annotator_agreement' else 'podcast'} "
                         f"{value!r}; choose one of {values}")

    @staticmethod
    def _need(tables: dict, name: str, what: str) -> None:
        if name not in tables:
            raise ValueError(f"this view needs {what} in this split and group")

    def figure_png(self, dpi: int = 90, compare_only: bool = False, prefetch: bool = True) -> bytes:
        """:meth:`figure` rendered as PNG bytes, cached per view, systems, bins, split and group:
        what the widgets show, so returning to a state costs no drawing. ``prefetch=False``: the
        caller queues :meth:`prefetch_next` itself (the widgets do, once everything is drawn, so
        the background work does not slow the redraw down)."""
        png = self._cached(self._png_key(self.state, dpi, compare_only), lambda: self._render_png(dpi, compare_only))
        if prefetch:
            self.prefetch_next()
        return png

    def _png_key(self, s: ExplorerState, dpi: int, compare_only: bool) -> tuple:
        return ("png", s.view, s.system, s.compare_system, s.bins, dpi, compare_only) + self._key_of(s)

    def _render_png(self, dpi: int, compare_only: bool) -> bytes:
        fig = self._figure(compare_only)
        buffer = BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    @staticmethod
    def _axes(n: int, size: tuple[float, float], ncols: int | None = None):
        """A constrained-layout figure of ``n`` panels, made outside pyplot (a plain
        :class:`matplotlib.figure.Figure`: nothing to close, safe to draw in the background
        thread while the foreground draws another)."""
        ncols = ncols or n
        nrows = -(-n // ncols)
        fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        return fig, axes.ravel()

    def caption(self) -> str:
        """Where the numbers come from: split, group, the interactive bootstrap."""
        s = self.state
        where = f"split {s.split}"
        if s.group_column is not None:
            where += f", {s.group_column} = {s.group_value}"
        n_boot = self.bootstrap["n_boot"]
        if n_boot and s.view not in CELL_VIEWS:
            unit = self.resampling.unit_for(self.labels["SpkrID"] if "SpkrID" in self.labels else None)
            where += f"  |  CIs: {n_boot} {unit} bootstrap resamples"
        return where + (f"  |  {_SYNTHETIC_NOTE}" if self.synthetic else "")

    def _caption(self, fig) -> None:
        text = self.caption()
        title = fig.get_suptitle()
        fig.suptitle(f"{title}\n{text}" if title else text, fontsize=9 if not title else None,
                     color="0.25")

    # ------------------------------------------------------------------ cells
    def bin_edges(self, attribute: str) -> np.ndarray:
        """Edges of ``attribute`` for the current bins, split and group (the diagnostics' bins)."""
        merged = self.merged(TASK_ATTRIBUTES)
        if merged is None or merged.empty:
            raise ValueError("no attribute predictions in this split and group")
        return self._cached(("edges", attribute, self.state.bins) + self._data_key,
                            lambda: binned.attribute_edges(merged, attribute, self.state.bins))

    def bin_labels(self, attribute: str) -> list[str]:
        return binned.bin_labels(self.bin_edges(attribute), self.state.bins)

    def cell_options(self) -> list[tuple[str, object]]:
        """``(label, value)`` choices for ``cell_true``/``cell_pred`` in the current view
        (class names -> codes, or bin labels -> bin indices); empty for other views."""
        if self.state.view == "confusion":
            return [(CLASS_NAMES[c], c) for c in CLASS_CODES]
        if self.view_attribute:
            return [(label, i) for i, label in enumerate(self.bin_labels(self.view_attribute))]
        if self.state.view in GROUP_VIEWS:
            return self.group_options()
        return []

    def _cell_value(self, value):
        """A cell value of the current view in canonical form (class code, bin index, agreement
        bin or podcast)."""
        if self.state.view in GROUP_VIEWS:
            return self._group_value(value)
        if self.view_attribute:
            return self._bin_index(self.view_attribute, value)
        return self._class_code(value)

    def cell_label(self, value) -> str:
        """How a person reads a class code, bin index, agreement bin or podcast of the view."""
        if value is None:
            return "any"
        value = self._cell_value(value)
        if self.state.view in GROUP_VIEWS:
            return value if self.state.view == "annotator_agreement" else f"podcast {value}"
        return self.bin_labels(self.view_attribute)[value] if self.view_attribute else CLASS_NAMES[value]

    def _bin_index(self, attribute: str, value) -> int:
        labels = self.bin_labels(attribute)
        if isinstance(value, (int, np.integer)) and 0 <= int(value) < len(labels):
            return int(value)
        if str(value) in labels:
            return labels.index(str(value))
        matches = [i for i, label in enumerate(labels) if label.endswith(str(value))]
        if len(matches) == 1:
            return matches[0]
        raise ValueError(f"unknown {attribute} bin {value!r}; bins: {list(enumerate(labels))}")

    @staticmethod
    def _class_code(value) -> str:
        text = str(value)
        code = text if text in CLASS_CODES else _NAME_TO_CODE.get(text.lower())
        if code is None:
            raise ValueError(f"unknown class {value!r}; use a code {CLASS_CODES} or a name")
        return code

    def _rows(self, task: str, system: str) -> pd.DataFrame:
        merged = self.merged(task)
        if merged is None or merged.empty:
            raise ValueError(f"no {task} predictions for split {self.state.split!r} and this group")

        def compute():
            rows = merged.loc[merged["system"].astype(str) == system].reset_index(drop=True)
            if rows.empty:
                raise ValueError(f"system {system!r} has no {task} predictions in this split and group")
            return rows
        return self._cached(("rows", task, system) + self._data_key, compute)

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
        s = self.state
        if true is None and pred is None and attribute is None:
            true, pred = s.cell_true, s.cell_pred
        attribute = attribute or self.view_attribute
        if attribute is None:
            table = self._class_cell(true, pred)
        else:
            table = self._bin_cell(attribute, true, pred)
        table = self._with_votes(table, attribute)
        table = self._with_corpus(table)
        return self._sorted(table, sort_by or s.sort_by, s.ascending if ascending is None else ascending)

    @staticmethod
    def _sorted(table: pd.DataFrame, sort_by: str | None, ascending: bool) -> pd.DataFrame:
        if sort_by is not None:
            if sort_by not in table:
                raise ValueError(f"cannot sort by {sort_by!r}; columns: {list(table.columns)}")
            table = table.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
        return table.reset_index(drop=True)

    def _compare_rows(self, task: str) -> pd.DataFrame | None:
        s = self.state
        return None if s.compare_system is None else self._rows(task, s.compare_system)

    def _aligned_compare(self, rows: pd.DataFrame, task: str) -> pd.DataFrame | None:
        """The comparison system's rows in the order of ``rows`` (by FileName)."""
        other = self._compare_rows(task)
        if other is None:
            return None
        position = pd.Index(other["FileName"]).get_indexer(rows["FileName"])
        if (position < 0).any():
            raise ValueError(f"{self.state.compare_system!r} is not scored on every file of {self.state.system!r}")
        return other.iloc[position].reset_index(drop=True)

    def _class_cell(self, true, pred) -> pd.DataFrame:
        rows = self._rows(TASK_CATEGORICAL, self.state.system)
        keep = np.ones(len(rows), dtype=bool)
        if true is not None:
            keep &= rows["EmoClass_true"].to_numpy(str) == self._class_code(true)
        if pred is not None:
            keep &= rows["EmoClass_pred"].to_numpy(str) == self._class_code(pred)
        cell = rows.loc[keep]
        table = cell[["FileName", "SpkrID", "Gender", "EmoClass_true", "EmoClass_pred"]].copy()
        probs = [f"P_{c}" for c in CLASS_CODES]
        if all(p in cell for p in probs) and cell[probs].notna().all(axis=None):
            k = pd.Index(CLASS_CODES).get_indexer(cell["EmoClass_pred"].to_numpy(str))
            table["P_pred"] = cell[probs].to_numpy(float)[np.arange(len(cell)), k]
        other = self._aligned_compare(cell, TASK_CATEGORICAL)
        if other is not None:
            table["EmoClass_pred_compare"] = other["EmoClass_pred"].to_numpy()
        return table

    def _bin_cell(self, attribute: str, true, pred) -> pd.DataFrame:
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute must be one of {ATTRIBUTES}, not {attribute!r}")
        rows = self._rows(TASK_ATTRIBUTES, self.state.system)
        edges = self.bin_edges(attribute)
        t = rows[f"{attribute}_true"].to_numpy(float)
        p = rows[f"{attribute}_pred"].to_numpy(float)
        keep = ~(np.isnan(t) | np.isnan(p))
        if true is not None:
            keep &= binned.assign_bins(t, edges) == self._bin_index(attribute, true)
        if pred is not None:
            keep &= binned.assign_bins(p, edges) == self._bin_index(attribute, pred)
        cell = rows.loc[keep]
        table = cell[["FileName", "SpkrID", "Gender", f"{attribute}_true", f"{attribute}_pred"]].copy()
        table["error"] = table[f"{attribute}_pred"] - table[f"{attribute}_true"]
        other = self._aligned_compare(cell, TASK_ATTRIBUTES)
        if other is not None:
            table[f"{attribute}_pred_compare"] = other[f"{attribute}_pred"].to_numpy()
            table["error_compare"] = table[f"{attribute}_pred_compare"] - table[f"{attribute}_true"]
        return table

    # ------------------------------------------------------------------ votes and corpus
    def _read_detailed(self) -> pd.DataFrame | None:
        found = io.detailed_labels_file(self.corpus, self.labels.attrs.get("source"))
        return io.read_detailed_labels(found) if found is not None else None

    def detailed_labels(self) -> pd.DataFrame | None:
        """Per-annotator labels (:func:`ser_diag.io.read_detailed_labels`) when found, else None."""
        return self._cached(("detailed",), self._read_detailed)

    def _compute_votes(self):
        """Per file (sorted FileName index): :func:`ser_diag.io.soft_labels`, the compact vote
        text (:func:`format_votes`) and each attribute's annotator scores as text (sorted,
        ``"3 4 4.5"``), all files at once."""
        detailed = self.detailed_labels()
        if detailed is None:
            return None
        soft = io.soft_labels(detailed)
        counts = np.rint(soft[list(CLASS_CODES)].to_numpy() * soft["n_votes"].to_numpy()[:, None]).astype(np.int64)
        votes = pd.Series(format_votes(counts), index=soft.index)
        files, names = pd.factorize(detailed["FileName"], sort=True)
        scores = {}
        for attribute in ATTRIBUTES:
            values = detailed[attribute].to_numpy(float)
            rows = np.lexsort((values, files))                 # by file, then by score
            text = pd.Series(values[rows]).map(lambda x: f"{x:g} ").to_numpy(object)
            starts = np.flatnonzero(np.r_[True, np.diff(files[rows]) != 0])
            joined = np.add.reduceat(text, starts)
            scores[attribute] = pd.Series(joined, index=pd.Index(names[files[rows][starts]])).str.rstrip(" ")
        return soft, votes, scores

    def _votes(self):
        return self._cached(("votes",), self._compute_votes)

    def _with_votes(self, table: pd.DataFrame, attribute: str | None) -> pd.DataFrame:
        votes = self._votes()
        if votes is None:
            return table
        soft, text, scores = votes
        position = soft.index.get_indexer(table["FileName"])
        found = position >= 0
        safe = np.where(found, position, 0)
        table["votes"] = np.where(found, text.to_numpy(object)[safe], None)
        table["n_votes"] = pd.array(np.where(found, soft["n_votes"].to_numpy()[safe], 0), dtype="Int64")
        table.loc[~found, "n_votes"] = pd.NA
        shares = soft[list(CLASS_CODES)].to_numpy()
        for which, column in (("true", "EmoClass_true"), ("pred", "EmoClass_pred")):
            if column in table:
                k = pd.Index(CLASS_CODES).get_indexer(table[column].to_numpy(str))
                table[f"vote_share_{which}"] = np.where(found & (k >= 0), shares[safe, np.maximum(k, 0)], np.nan)
        if attribute is not None:
            table[f"{attribute}_annotators"] = scores[attribute].reindex(table["FileName"]).to_numpy()
        return table

    def _with_corpus(self, table: pd.DataFrame) -> pd.DataFrame:
        extra = io.corpus_files(self.corpus, table["FileName"])
        for column in extra.columns[1:]:
            table[column] = extra[column].to_numpy()
        return table

    # ------------------------------------------------------------------ two systems
    def disagreements(self) -> pd.DataFrame:
        """Where the system and the comparison system disagree, per true class and per true
        bin of each attribute (current bins), and which one is right
        (:func:`ser_diag.analysis.fusion.disagreement_by_true`; ``a`` = system, ``b`` =
        comparison system)."""
        s = self.state
        if s.compare_system is None:
            raise ValueError("select a compare_system first")
        frames = []
        for task in self.tasks():
            def compute(task=task):
                merged = self.merged(task)
                pair = merged.loc[merged["system"].astype(str).isin([s.system, s.compare_system])]
                return disagreement_by_true(pair, s.system, s.compare_system, task, s.bins)
            frames.append(self._cached(("disagreement", task, s.system, s.compare_system, s.bins)
                                       + self._data_key, compute))
        return pd.concat(frames, ignore_index=True)

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
        s = self.state
        if s.compare_system is None:
            raise ValueError("select a system to compare first")
        true = s.cell_true if true is None else true
        attribute = attribute or self.view_attribute
        if attribute is None:
            table = self._class_cell(true, None)
            a, b, t = table["EmoClass_pred"].to_numpy(str), table["EmoClass_pred_compare"].to_numpy(str), \
                table["EmoClass_true"].to_numpy(str)
        else:
            table = self._bin_cell(attribute, true, None)
            edges = self.bin_edges(attribute)
            t = binned.assign_bins(table[f"{attribute}_true"].to_numpy(float), edges)
            a = binned.assign_bins(table[f"{attribute}_pred"].to_numpy(float), edges)
            b = binned.assign_bins(table[f"{attribute}_pred_compare"].to_numpy(float), edges)
        differ = a != b
        table = table.loc[differ].copy()
        table["right"] = np.where(a[differ] == t[differ], s.system,
                                  np.where(b[differ] == t[differ], s.compare_system, "neither"))
        table = self._with_votes(table.reset_index(drop=True), attribute)
        table = self._with_corpus(table)
        return self._sorted(table, sort_by or s.sort_by, s.ascending if ascending is None else ascending)

    # ------------------------------------------------------------------ what the rows area shows
    def listing(self) -> Listing:
        """What the rows area shows for the current state; never the files of another state.

        A confusion or binned view with a chosen cell: its files; with ``disagree_only`` and a
        comparison system: the disagreement list; an agreement bin or a podcast: its files;
        otherwise a message saying why nothing is listed (no cell chosen, a view without cells,
        no comparison system). Cached per state (a copy of the table is returned).
        """
        s = dataclasses.replace(self.state)
        found = self._cached(("listing",) + dataclasses.astuple(s), self._listing)
        table = None if found.table is None else found.table.copy()
        return dataclasses.replace(found, state=s, table=table)

    def _listing(self) -> Listing:
        s = dataclasses.replace(self.state)
        view = view_name(s.view)
        if s.view in GROUP_VIEWS:
            message = self.view_unavailable()
            if message:
                return Listing(s, "", message=message)
            if s.cell_true is None:
                what = "an agreement bin" if s.view == "annotator_agreement" else "a podcast"
                return Listing(s, "", message=f"No {what.split(' ', 1)[1]} chosen: choose {what} (buttons under "
                                                "the figure, or the list) to list its utterances.")
            table = self.group_utterances()
            label = self.cell_label(s.cell_true)
            where = f"annotator agreement '{label}'" if s.view == "annotator_agreement" else label
            return Listing(s, f"{len(table)} utterances of {where} ({s.system})", table)
        if s.view not in CELL_VIEWS:
            return Listing(s, "", message=f"The {view} view has no cells to list; choose the confusion "
                                             "matrix, a binned view, annotator agreement or per-podcast metrics "
                                             "to list utterances.")
        if s.disagree_only:
            if s.compare_system is None:
                return Listing(s, "", message="Choose a system to compare to list the files where the two "
                                                 "systems disagree.")
            table = self.disagreement_list()
            what = "class" if self.view_attribute is None else f"{ATTRIBUTE_NAMES[self.view_attribute]} bin"
            where = "" if s.cell_true is None else f" (true {what} {self.cell_label(s.cell_true)})"
            unit = "predicted classes" if self.view_attribute is None else \
                f"predicted {ATTRIBUTE_NAMES[self.view_attribute]} bins"
            return Listing(s, f"{len(table)} files where {s.system} and {s.compare_system} differ in "
                              f"{unit}{where}", table)
        if s.cell_true is None and s.cell_pred is None:
            return Listing(s, "", message="No cell chosen: click a cell of the figure (or choose true and "
                                             "predicted below) to list its utterances.")
        table = self.cell_utterances()
        what = "class" if self.view_attribute is None else f"{ATTRIBUTE_NAMES[self.view_attribute]} bin"
        parts = [f"{side} {what} {self.cell_label(value)}" for side, value in
                 (("true", s.cell_true), ("predicted", s.cell_pred)) if value is not None]
        return Listing(s, f"{len(table)} utterances with {' and '.join(parts)} ({s.system})", table)

    def to_csv(self, path: str | os.PathLike, **cell) -> Path:
        """Write :meth:`cell_utterances` (``cell``: its arguments; default the state's cell) as
        CSV; with ``disagree_only`` and no arguments, the disagreement list."""
        if not cell and self.state.view in GROUP_VIEWS:
            table = self.group_utterances()
        elif not cell and self.state.disagree_only and self.state.compare_system:
            table = self.disagreement_list()
        else:
            table = self.cell_utterances(**cell)
        return atomic_write_text(path, table_csv(table, self.synthetic))

    # ------------------------------------------------------------------ widgets
    def show(self):
        """The ipywidgets interface (:class:`ser_diag.explorer_widgets.ExplorerWidgets`)."""
        from ser_diag.explorer_widgets import ExplorerWidgets
        return ExplorerWidgets(self).root

    def _ipython_display_(self):
        from IPython.display import display
        display(self.show())

    def __repr__(self) -> str:
        return f"Explorer({len(self.systems)} systems, state={self.state})"
