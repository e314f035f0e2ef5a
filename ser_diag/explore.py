"""Explore results interactively: from any cell of a figure to the utterances behind it.

Two layers, kept apart so everything but the widgets is testable without a browser:

* :class:`ExplorerState` - plain values (system, comparison system, split, group filter, view,
  bin scheme, selected cell); no widgets.
* :class:`Explorer` - data, caches and every answer: :meth:`Explorer.figure` (the library's
  own Display for the view, with the CIs the analysis computes), :meth:`Explorer.metrics_table`,
  :meth:`Explorer.cell_utterances` (the files of a confusion cell or attribute bin, with the
  annotators' votes, transcript and audio path when the corpus has them),
  :meth:`Explorer.disagreements` (where two systems differ and which is right).
  :meth:`Explorer.show` builds ipywidgets that only copy widget values onto the state.

>>> ex = Explorer("data/demo", "data/demo/predictions")            # doctest: +SKIP
>>> ex.set(system="sys10_top", view="confusion")                    # doctest: +SKIP
>>> ex.cell_utterances(true="F", pred="A", sort_by="vote_share_pred")  # doctest: +SKIP
>>> ex                                                              # doctest: +SKIP

Analyses are computed for the files of the current split and group only and cached, keyed by
(split, group, bins) and the system(s) they need: the regression-to-the-mean tables are computed for
every system in one joint bootstrap, so a system change only slices them; returning to a state,
or a figure change that needs no new analysis, is a redraw. At construction a background thread
reads ``labels_detailed.csv`` (annotators' votes) and computes the top-K fusion curve of the
split and group and every system's regression-to-the-mean tables; after each figure is drawn
it queues the same for a new split, group or bins, and in the gender audit the other systems'
audits (``prefetch=False`` turns that off; a queued job that the foreground needs before it
started is taken back and computed at once). Interactive intervals use ``n_boot=200``
resamples by default (the figure caption says so); the report and paper figures use 1000.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from io import BytesIO as _BytesIO
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ser_diag import io, resampling
from ser_diag.analysis import binned, bias, confusion, fusion, regression_to_mean
from ser_diag.outputs import atomic_write_text
from ser_diag.plots.binned import BinnedAttributeDisplay
from ser_diag.plots.bias import GroupGapDisplay
from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay
from ser_diag.plots.fusion import FusionCurveDisplay
from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay
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

__all__ = ["VIEWS", "BIN_SCHEMES", "ExplorerState", "Explorer", "disagreement_by_true"]

#: Views of the explorer; ``binned_<attr>`` is the paper's Fig. 3b-d matrix of that attribute.
VIEWS = ("confusion", "binned_EmoAct", "binned_EmoVal", "binned_EmoDom", "regression_to_mean",
         "gender_audit", "topk_fusion")
BIN_SCHEMES = binned.SCHEMES
_CACHE_SIZE = 256
_PINNED = {("detailed",), ("votes",)}   # read once per explorer
_SYNTHETIC_NOTE = SYNTHETIC_BANNER.split(" - ")[0]
_NAME_TO_CODE = {name.lower(): code for code, name in CLASS_NAMES.items()}


@dataclasses.dataclass
class ExplorerState:
    """What the explorer shows. Plain values only; :meth:`Explorer.set` validates changes.

    ``group_column``/``group_value`` keep only the files whose label column equals the value
    (compared as text, so ``SpkrID`` 127 and ``"127"`` are the same); ``None`` = all files.
    ``cell_true``/``cell_pred`` select a confusion cell (class codes) in the ``confusion`` view
    or a bin (index or label) of the view's attribute in a ``binned_*`` view.
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


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))


def disagreement_by_true(merged: pd.DataFrame, system_a: str, system_b: str, task: str,
                         bins: str = "unit") -> pd.DataFrame:
    """Where two systems disagree, per true class (categorical) or per true bin of each attribute,
    and which one is right.

    Categorical: right = predicted class equals the consensus class. Attributes: both values are
    put in the bins of :mod:`ser_diag.analysis.binned` (``bins`` scheme); right = predicted bin
    equals the true bin. Counts per true class/bin: ``n = agree_right + agree_wrong + a_right +
    b_right + neither_right`` where the last three split the ``disagree`` files.
    Columns: task, attribute, true, n, disagree, share_disagree, a_right, b_right,
    neither_right, agree_right, agree_wrong, system_a, system_b.
    """
    rows_a = confusion.system_rows(merged, system_a).reset_index(drop=True)
    rows_b = confusion.system_rows(merged, system_b).reset_index(drop=True)
    if not np.array_equal(rows_a["FileName"].to_numpy(str), rows_b["FileName"].to_numpy(str)):
        raise ValueError(f"{system_a!r} and {system_b!r} are not scored on the same files")
    parts = []
    if task == TASK_CATEGORICAL:
        parts.append((None, list(CLASS_CODES), rows_a["EmoClass_true"].to_numpy(str),
                      rows_a["EmoClass_pred"].to_numpy(str), rows_b["EmoClass_pred"].to_numpy(str)))
    else:
        for attr in binned.attributes_of(merged):
            edges = binned.attribute_edges(merged, attr, bins)
            labels = binned.bin_labels(edges, bins)
            true = binned.assign_bins(rows_a[f"{attr}_true"].to_numpy(float), edges)
            parts.append((attr, labels, np.asarray(labels, dtype=object)[true],
                          np.asarray(labels, dtype=object)[binned.assign_bins(rows_a[f"{attr}_pred"].to_numpy(float), edges)],
                          np.asarray(labels, dtype=object)[binned.assign_bins(rows_b[f"{attr}_pred"].to_numpy(float), edges)]))
    records = []
    for attr, order, true, pred_a, pred_b in parts:
        for value in order:
            here = true == value
            if not here.any():
                continue
            t, a, b = true[here], pred_a[here], pred_b[here]
            agree, a_ok, b_ok = a == b, a == t, b == t
            records.append({
                "task": task, "attribute": attr, "true": value, "n": int(here.sum()),
                "disagree": int((~agree).sum()), "share_disagree": float((~agree).mean()),
                "a_right": int((~agree & a_ok).sum()), "b_right": int((~agree & b_ok).sum()),
                "neither_right": int((~agree & ~a_ok & ~b_ok).sum()),
                "agree_right": int((agree & a_ok).sum()), "agree_wrong": int((agree & ~a_ok).sum()),
                "system_a": system_a, "system_b": system_b,
            })
    return pd.DataFrame(records)


class Explorer:
    """Interactive explorer of a challenge's results (labels + every system's predictions).

    ``labels``: corpus root, ``labels_consensus.csv`` or a labels frame (:func:`ser_diag.io.read_labels`,
    ideally with every split so the split control can switch); ``predictions``: a folder of
    systems, one system's file(s), or a predictions frame (:func:`ser_diag.io.read_systems`).
    ``corpus``: MSP-Podcast root holding ``Audios/``, ``Transcripts/``, ``Labels/labels_detailed.csv``
    (default: the labels path when it is a corpus root or its ``Labels/`` folder). Bootstrap
    settings (``n_boot``, ``level``, ``by_speaker``, ``seed``, ``ddof``) are passed to every
    analysis; the state is in :attr:`state`, changed through :meth:`set`. ``prefetch``: compute
    in one background thread what the next control change is likely to need (the detailed
    labels, the fusion curve, the regression-to-the-mean tables, after a gender audit the
    other systems' audits);
    :meth:`wait_prefetch` waits for it.
    """

    def __init__(self, labels, predictions, corpus=None, split: str = "Development", *,
                 system: str | None = None, n_boot: int = 200, level: float = 0.95,
                 by_speaker: bool = False, seed: int = 0, ddof: int = 0, intersection: bool = False,
                 prefetch: bool = True):
        self.labels = labels if isinstance(labels, pd.DataFrame) else io.read_labels(labels, split=None)
        self.predictions = (predictions if isinstance(predictions, pd.DataFrame)
                            else io.read_systems(predictions))
        self.bootstrap = dict(n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed)
        self.ddof, self.intersection = ddof, intersection
        self.corpus = Path(corpus) if corpus is not None else self._corpus_from(labels)
        self._cache: OrderedDict = OrderedDict()
        self._pending: dict = {}                  # key -> Future of a background computation
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
        self.state = ExplorerState(system=self._validate_system(system or self._ranked(start_split)),
                                   split=start_split)
        self.merged(TASK_CATEGORICAL)  # fail early on files that do not merge
        if prefetch:
            self._prefetch(("detailed",), self._read_detailed)
            self._prefetch(("votes",), self._compute_votes)
        self._prefetch_data()

    def _prefetch_data(self) -> None:
        """Queue the system-independent analyses of the current split, group and bins: the
        fusion curve and every system's regression-to-the-mean tables."""
        if not self.prefetch:
            return
        key, bins = self._data_key, self.state.bins
        self._prefetch(("fusion",) + key, lambda: self._compute_fusion(key))
        attributes = self.merged(TASK_ATTRIBUTES, key)
        if attributes is not None and len(attributes):
            self._prefetch(("bin_means_all", bins) + key, lambda: self._compute_bin_means_all(key, bins))

    def _prefetch(self, key, compute) -> None:
        """Compute ``compute()`` in the background thread and cache it under ``key``; a caller
        that needs ``key`` before it is done waits for it (:meth:`_cached`)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ser_diag-explore")

        def run():
            value = compute()
            self._store(key, value)
            return value
        with self._lock:
            if key in self._cache or key in self._pending:
                return
            future = self._background.submit(run)
            self._pending[key] = future
        future.add_done_callback(lambda _: self._pending.pop(key, None))

    def wait_prefetch(self) -> None:
        """Block until the background computations started so far are done (re-raises their errors)."""
        for future in list(self._pending.values()):
            try:
                future.result()
            except CancelledError:   # taken back by the foreground
                pass

    # ------------------------------------------------------------------ data
    @staticmethod
    def _corpus_from(labels) -> Path | None:
        if isinstance(labels, pd.DataFrame):
            source = labels.attrs.get("source")
            return Path(source).parent.parent if source else None
        path = Path(labels)
        return path if path.is_dir() else path.parent.parent

    def _ranked(self, split: str) -> str:
        """The best system by macro-F1 (or mean CCC) on ``split``, the default ``system``."""
        for task, metric in ((TASK_CATEGORICAL, "macro_f1"), (TASK_ATTRIBUTES, "ccc_mean")):
            merged = self._merged_split(split).get(task)
            if merged is not None:
                scores = resampling.bootstrap_metrics(merged, n_boot=0, ddof=self.ddof)
                scores = scores[scores["metric"] == metric]
                return str(scores.sort_values("estimate", ascending=False)["system"].iloc[0])
        return self.systems[0]

    def _cached(self, key, compute):
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            future: Future | None = self._pending.get(key)
        if future is not None and not future.cancel():   # queued, not started: compute it here
            return future.result()
        value = compute()
        self._store(key, value)
        return value

    def _store(self, key, value) -> None:
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            if len(self._cache) > _CACHE_SIZE:   # least recently used, but keep the files' votes
                del self._cache[next(k for k in self._cache if k not in _PINNED)]

    def _merged_split(self, split: str) -> dict:
        def compute():
            labels = self.labels.loc[self.labels["Split_Set"] == split].reset_index(drop=True)
            labels.attrs = dict(self.labels.attrs, split=split)
            return {task: io.merge(labels, self.predictions, task, intersection=self.intersection)
                    for task in TASKS if io._submitted(self.predictions, task).any()}
        return self._cached(("merged", split), compute)

    @property
    def _data_key(self) -> tuple:
        s = self.state
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

    def _rows(self, task: str, systems, data_key: tuple | None = None) -> pd.DataFrame:
        data_key = data_key or self._data_key
        merged = self._require(task, data_key)
        key = ("rows", task, tuple(systems)) + data_key

        def compute():
            rows = merged.loc[merged["system"].isin(list(systems))].reset_index(drop=True)
            rows.attrs = dict(merged.attrs)
            if rows.empty:
                raise ValueError(f"no {task} rows for {list(systems)} in this split and group")
            return rows
        return self._cached(key, compute)

    def _require(self, task: str, data_key: tuple | None = None) -> pd.DataFrame:
        merged = self.merged(task, data_key)
        if merged is None or merged.empty:
            raise ValueError(f"no {task} predictions for split {(data_key or self._data_key)[0]!r} and this group")
        return merged

    @property
    def synthetic(self) -> bool:
        return any(bool(m.attrs.get("synthetic")) for m in self._merged_split(self.state.split).values())

    # ------------------------------------------------------------------ state
    def _validate_system(self, system):
        if system is not None and str(system) not in self.systems:
            raise ValueError(f"unknown system {system!r}; systems: {self.systems}")
        return None if system is None else str(system)

    def group_columns(self) -> list[str]:
        """Label columns a group filter can use (every column but FileName and the attribute values)."""
        return [c for c in self.labels.columns if c not in ("FileName",) + ATTRIBUTES]

    def group_values(self, column: str) -> list:
        """Values of ``column`` among the current split's labelled files, sorted."""
        values = self.labels.loc[self.labels["Split_Set"] == self.state.split, column].dropna().unique()
        return sorted(values.tolist(), key=lambda v: (str(type(v)), v))

    def set(self, **changes) -> "Explorer":
        """Change the state (any :class:`ExplorerState` field) after checking the values.

        Changing the view, split, group or bins clears the selected cell.
        """
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
        files = self.group_files(new)
        if files is not None and files.empty:
            raise ValueError(f"no file of split {new.split!r} has {new.group_column} = {new.group_value!r}")
        self.state = new
        return self

    @property
    def selected_systems(self) -> list[str]:
        s = self.state
        return [s.system] + ([s.compare_system] if s.compare_system else [])

    @property
    def view_attribute(self) -> str | None:
        """The attribute of a ``binned_*`` view, else None."""
        return self.state.view.removeprefix("binned_") if self.state.view.startswith("binned_") else None

    # ------------------------------------------------------------------ analyses (cached)
    def _analysis(self, name: str, compute, *extra):
        return self._cached((name,) + extra + self._data_key, compute)

    def _confusion(self, system):
        return self._analysis("confusion", lambda: confusion.confusion_table(
            self._rows(TASK_CATEGORICAL, [system]), normalize="true"), system)

    def _binned(self, system, attribute):
        return self._analysis("binned", lambda: binned.binned_matrix(
            self._rows(TASK_ATTRIBUTES, [system]), attribute, scheme=self.state.bins, normalize="true"),
            system, attribute, self.state.bins)

    def bin_edges(self, attribute: str) -> np.ndarray:
        """Edges of ``attribute`` for the current bins, split and group (same as the figure's)."""
        return self._analysis("edges", lambda: binned.attribute_edges(
            self._require(TASK_ATTRIBUTES), attribute, self.state.bins), attribute, self.state.bins)

    def bin_labels(self, attribute: str) -> list[str]:
        return binned.bin_labels(self.bin_edges(attribute), self.state.bins)

    def _compute_bin_means_all(self, data_key: tuple, bins: str):
        merged = self._require(TASK_ATTRIBUTES, data_key)
        return (regression_to_mean.bin_means(merged, scheme=bins, **self.bootstrap),
                regression_to_mean.shrinkage_table(merged, ddof=self.ddof, **self.bootstrap))

    def _bin_means_all(self):
        """:func:`~ser_diag.analysis.regression_to_mean.bin_means` and ``shrinkage_table`` of
        every system at once (one joint bootstrap: same resamples, one matrix product)."""
        key, bins = self._data_key, self.state.bins
        return self._analysis("bin_means_all", lambda: self._compute_bin_means_all(key, bins), bins)

    def _bin_means(self, system):
        """The rows of ``system`` in :meth:`_bin_means_all`."""
        def compute():
            return tuple(frame.loc[frame["system"] == system].reset_index(drop=True)
                         for frame in self._bin_means_all())
        return self._analysis("bin_means", compute, system, self.state.bins)

    def _compute_group_audit(self, system: str, task: str, data_key: tuple):
        rows = self._rows(task, [system], data_key)
        frame = bias.group_metrics(rows, by="Gender", ddof=self.ddof, **self.bootstrap)
        present = set(rows["Gender"].dropna().astype(str))
        gaps = (bias.group_gaps(rows, by="Gender", n_permutations=self.bootstrap["n_boot"],
                                ddof=self.ddof, **self.bootstrap)
                if {"Female", "Male"} <= present else None)
        return frame, gaps

    def _group_audit(self, system, task):
        key = self._data_key
        return self._analysis("gender_audit", lambda: self._compute_group_audit(system, task, key),
                              system, task)

    def _prefetch_after_draw(self) -> None:
        """Queue in the background what the next control change is likely to need (after the
        figure is drawn, so it does not slow the drawing): the analyses of the split, group
        and bins (:meth:`_prefetch_data`) and, in the gender audit, every other system's audit."""
        self._prefetch_data()
        if self.state.view == "gender_audit":
            self._prefetch_group_audits([t for t in TASKS if self.merged(t) is not None and len(self.merged(t))])

    def _prefetch_group_audits(self, tasks) -> None:
        if not self.prefetch:
            return
        key = self._data_key
        for task in tasks:
            present = self._cached(("systems", task) + key,
                                   lambda t=task: set(pd.unique(self.merged(t, key)["system"])))
            for other in self.systems:
                if other in present:
                    self._prefetch(("gender_audit", other, task) + key,
                                   lambda o=other, t=task: self._compute_group_audit(o, t, key))

    def _compute_fusion(self, data_key: tuple) -> pd.DataFrame:
        cat, att = self.merged(TASK_CATEGORICAL, data_key), self.merged(TASK_ATTRIBUTES, data_key)
        return fusion.topk_fusion_curve(cat if cat is not None and len(cat) else None,
                                        att if att is not None and len(att) else None,
                                        ddof=self.ddof, **self.bootstrap)

    def _fusion(self):
        """Top-K fusion curve (system-independent: one per split and group)."""
        key = self._data_key
        return self._analysis("fusion", lambda: self._compute_fusion(key))

    def _metrics(self, task, system):
        return self._analysis("metrics", lambda: resampling.bootstrap_metrics(
            self._rows(task, [system]), ddof=self.ddof, **self.bootstrap).assign(task=task), task, system)

    # ------------------------------------------------------------------ answers
    def metrics_table(self, systems=None) -> pd.DataFrame:
        """Metrics with bootstrap CIs (:func:`ser_diag.resampling.bootstrap_metrics`) of the
        selected system(s) (or ``systems``: a list, or ``"all"``) on the current split and group.

        Columns: task, system, metric, estimate, ci_low, ci_high, level, unit, n_boot, n.
        """
        names = self.systems if systems == "all" else (systems or self.selected_systems)
        frames = [self._metrics(task, s) for task in TASKS for s in names
                  if self.merged(task) is not None and (self.merged(task)["system"] == s).any()]
        if not frames:
            raise ValueError("no predictions for these systems in this split and group")
        table = pd.concat(frames, ignore_index=True)
        return table[["task", "system", "metric", "estimate", "ci_low", "ci_high", "level", "unit",
                      "n_boot", "n"]]

    def headline_table(self, systems=None) -> pd.DataFrame:
        """:meth:`metrics_table` in wide form for reading: one row per system, one column per
        headline metric, cells ``estimate [ci_low, ci_high]``."""
        table = self.metrics_table(systems)
        wanted = ["macro_f1", "accuracy", "uar", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"]
        table = table[table["metric"].isin(wanted)]
        cell = table.apply(lambda r: f"{r['estimate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                           if np.isfinite(r["ci_low"]) else f"{r['estimate']:.3f}", axis=1)
        wide = table.assign(cell=cell).pivot(index="system", columns="metric", values="cell")
        wide = wide.reindex(columns=[m for m in wanted if m in wide.columns])
        wide["n"] = table.groupby("system")["n"].max()
        return wide.reindex([s for s in (self.selected_systems if systems is None else
                                         self.systems if systems == "all" else systems) if s in wide.index])

    def figure(self):
        """The current view as a matplotlib Figure drawn by the library's Display classes.

        ``confusion`` / ``binned_*``: the system's matrix, and with a comparison system the
        difference matrix (confusion) or its matrix (bins) beside it; ``regression_to_mean``:
        mean prediction per true bin with CIs (one panel per attribute when comparing);
        ``gender_audit``: metrics by gender with gap, CI and p-value, per task (and system);
        ``topk_fusion``: Fig. 4 over all systems.
        """
        fig = self._figure()
        self._prefetch_after_draw()
        return fig

    def _figure(self):
        s = self.state
        view, systems = s.view, self.selected_systems
        if view == "confusion":
            fig, axes = self._axes(len(systems), (7.2, 6.2))
            ConfusionMatrixDisplay.from_frame(self._confusion(s.system), s.system, ax=axes[0])
            if s.compare_system:
                frame = self._analysis("confusion_difference", lambda: confusion.confusion_difference(
                    self._rows(TASK_CATEGORICAL, systems), s.system, s.compare_system), *systems)
                ConfusionDifferenceDisplay.from_frame(frame, ax=axes[1])
        elif view.startswith("binned_"):
            attribute = self.view_attribute
            fig, axes = self._axes(len(systems), (6.6, 5.4))
            for ax, name in zip(axes, systems):
                BinnedAttributeDisplay.from_frame(self._binned(name, attribute), name, attribute, ax=ax)
        elif view == "regression_to_mean":
            parts = [self._bin_means(name) for name in systems]
            means = pd.concat([p[0] for p in parts], ignore_index=True)
            shrink = pd.concat([p[1] for p in parts], ignore_index=True)
            if s.compare_system:
                fig, axes = self._axes(len(ATTRIBUTES), (5.2, 5.2))
                for ax, attr in zip(axes, ATTRIBUTES):
                    RegressionToMeanDisplay.from_frame(means[means["attribute"] == attr], shrink, ax=ax)
            else:
                fig, axes = self._axes(1, (6.8, 6.0))
                RegressionToMeanDisplay.from_frame(means, shrink, ax=axes[0])
        elif view == "gender_audit":
            tasks = [t for t in TASKS if self.merged(t) is not None and len(self.merged(t))]
            fig, axes = self._axes(len(tasks) * len(systems), (6.2, 4.8),
                                   ncols=len(tasks) if len(systems) > 1 else None)
            for ax, (name, task) in zip(axes, [(n, t) for n in systems for t in tasks]):
                frame, gaps = self._group_audit(name, task)
                GroupGapDisplay.from_frame(frame, gaps, name, ax=ax, title=f"{name}: {task} metrics by gender")
        elif view == "topk_fusion":
            fig = FusionCurveDisplay.from_frame(self._fusion()).figure_
        else:  # pragma: no cover - set() validates views
            raise ValueError(view)
        self._caption(fig)
        return fig

    def figure_png(self, dpi: int = 90) -> bytes:
        """:meth:`figure` rendered as PNG bytes, cached per view, systems, bins, split and group:
        what the widgets show, so returning to a state costs no drawing."""
        s = self.state

        def render():
            fig = self._figure()
            buffer = _BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi)
            plt.close(fig)
            return buffer.getvalue()
        png = self._analysis("png", render, s.view, s.system, s.compare_system, s.bins, dpi)
        self._prefetch_after_draw()
        return png

    @staticmethod
    def _axes(n: int, size: tuple[float, float], ncols: int | None = None):
        ncols = ncols or n
        nrows = -(-n // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows),
                                 layout="constrained", squeeze=False)
        return fig, axes.ravel()

    def _caption(self, fig) -> None:
        s = self.state
        where = f"split {s.split}"
        if s.group_column is not None:
            where += f", {s.group_column} = {s.group_value}"
        n_boot = self.bootstrap["n_boot"]
        if n_boot and s.view != "confusion" and not s.view.startswith("binned_"):
            unit = "speaker" if self.bootstrap["by_speaker"] else "utterance"
            where += f"  |  CIs: {n_boot} {unit} bootstrap resamples"
        text = where + (f"  |  {_SYNTHETIC_NOTE}" if self.synthetic else "")
        title = fig.get_suptitle()
        fig.suptitle(f"{title}\n{text}" if title else text, fontsize=9 if not title else None,
                     color="0.25")

    # ------------------------------------------------------------------ utterances
    def cell_options(self) -> list[tuple[str, object]]:
        """``(label, value)`` choices for ``cell_true``/``cell_pred`` in the current view
        (class codes, or bin indices of the view's attribute); empty for other views."""
        if self.state.view == "confusion":
            return [(f"{c} {CLASS_NAMES[c]}", c) for c in CLASS_CODES]
        if self.view_attribute:
            return [(label, i) for i, label in enumerate(self.bin_labels(self.view_attribute))]
        return []

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

    def cell_utterances(self, true=None, pred=None, attribute: str | None = None, *,
                        sort_by: str | None = None, ascending: bool = True) -> pd.DataFrame:
        """The files in one cell of the current view, for the selected system.

        Confusion cell: ``true``/``pred`` class codes or names; attribute bin: ``attribute`` (or
        the ``binned_*`` view's) with ``true``/``pred`` bin indices or labels. Without
        arguments the state's ``cell_true``/``cell_pred`` are used; ``None`` means any class/bin.
        Columns: FileName, SpkrID, Gender, true and predicted class (``EmoClass_true``,
        ``EmoClass_pred``, ``P_pred`` when probabilities exist) or values (``<attr>_true``,
        ``<attr>_pred``, ``error`` = pred - true, and the annotators' scores
        ``<attr>_annotators``), the comparison system's prediction (``*_compare``) when one is
        selected, the annotators' class votes (``votes`` e.g. ``"N:4 S:1"``, ``n_votes``,
        ``vote_share_true``, ``vote_share_pred``) when detailed labels exist, ``transcript``
        when the corpus has ``Transcripts/`` and ``audio`` (path) when it has ``Audios/``.
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
        sort_by = sort_by or s.sort_by
        if sort_by is not None:
            if sort_by not in table:
                raise ValueError(f"cannot sort by {sort_by!r}; columns: {list(table.columns)}")
            table = table.sort_values(sort_by, ascending=ascending, kind="stable", na_position="last")
        return table.reset_index(drop=True)

    def _compare_rows(self, task: str) -> pd.DataFrame | None:
        s = self.state
        return None if s.compare_system is None else self._rows(task, [s.compare_system])

    def _class_cell(self, true, pred) -> pd.DataFrame:
        rows = self._rows(TASK_CATEGORICAL, [self.state.system])
        keep = np.ones(len(rows), dtype=bool)
        if true is not None:
            keep &= rows["EmoClass_true"].to_numpy(str) == self._class_code(true)
        if pred is not None:
            keep &= rows["EmoClass_pred"].to_numpy(str) == self._class_code(pred)
        cell = rows.loc[keep]
        table = cell[["FileName", "SpkrID", "Gender", "EmoClass_true", "EmoClass_pred"]].copy()
        probs = [f"P_{c}" for c in CLASS_CODES]
        if all(p in cell for p in probs):
            k = pd.Index(CLASS_CODES).get_indexer(cell["EmoClass_pred"].to_numpy(str))
            table["P_pred"] = cell[probs].to_numpy(float)[np.arange(len(cell)), k]
        other = self._compare_rows(TASK_CATEGORICAL)
        if other is not None:
            table["EmoClass_pred_compare"] = other["EmoClass_pred"].to_numpy()[np.flatnonzero(keep)]
        return table

    def _bin_cell(self, attribute: str, true, pred) -> pd.DataFrame:
        if attribute not in ATTRIBUTES:
            raise ValueError(f"attribute must be one of {ATTRIBUTES}, not {attribute!r}")
        rows = self._rows(TASK_ATTRIBUTES, [self.state.system])
        edges = self.bin_edges(attribute)
        t = rows[f"{attribute}_true"].to_numpy(float)
        p = rows[f"{attribute}_pred"].to_numpy(float)
        keep = ~(np.isnan(t) | np.isnan(p))
        if true is not None:
            keep &= binned.assign_bins(t, edges) == self._bin_index(attribute, true)
        if pred is not None:
            keep &= binned.assign_bins(p, edges) == self._bin_index(attribute, pred)
        table = rows.loc[keep, ["FileName", "SpkrID", "Gender", f"{attribute}_true", f"{attribute}_pred"]].copy()
        table["error"] = table[f"{attribute}_pred"] - table[f"{attribute}_true"]
        other = self._compare_rows(TASK_ATTRIBUTES)
        if other is not None:
            table[f"{attribute}_pred_compare"] = other[f"{attribute}_pred"].to_numpy()[np.flatnonzero(keep)]
            table["error_compare"] = table[f"{attribute}_pred_compare"] - table[f"{attribute}_true"]
        return table

    def _detailed_file(self) -> Path | None:
        candidates = []
        if self.corpus is not None:
            candidates.append(self.corpus / "Labels" / "labels_detailed.csv")
        source = self.labels.attrs.get("source")
        if source:
            candidates.append(Path(source).parent / "labels_detailed.csv")
        return next((c for c in candidates if c.is_file()), None)

    def _read_detailed(self) -> pd.DataFrame | None:
        found = self._detailed_file()
        return io.read_detailed_labels(found) if found is not None else None

    def detailed_labels(self) -> pd.DataFrame | None:
        """Per-annotator labels (:func:`ser_diag.io.read_detailed_labels`) when found, else None."""
        return self._cached(("detailed",), self._read_detailed)

    def _compute_votes(self):
        """Per file (sorted FileName index): :func:`ser_diag.io.soft_labels`, vote counts, the
        vote text (``"N:4 S:1"``, most votes first) and each attribute's annotator scores as
        text (sorted, ``"3 4 4.5"``), all files at once."""
        detailed = self.detailed_labels()
        if detailed is None:
            return None
        soft = io.soft_labels(detailed)
        counts = np.rint(soft[list(CLASS_CODES)].to_numpy() * soft["n_votes"].to_numpy()[:, None]).astype(np.int64)
        order = np.argsort(-counts, axis=1, kind="stable")
        ranked = np.take_along_axis(counts, order, axis=1)
        pieces = np.where(ranked > 0, np.asarray(CLASS_CODES, dtype=object)[order] + ":"
                          + ranked.astype(str).astype(object) + " ", "")
        votes = pd.Series(pieces.sum(axis=1), index=soft.index).str.rstrip(" ")
        files, names = pd.factorize(detailed["FileName"], sort=True)
        scores = {}
        for attribute in ATTRIBUTES:
            values = detailed[attribute].to_numpy(float)
            rows = np.lexsort((values, files))                 # by file, then by score
            text = pd.Series(values[rows]).map(lambda x: f"{x:g} ").to_numpy(object)
            starts = np.flatnonzero(np.r_[True, np.diff(files[rows]) != 0])
            joined = np.add.reduceat(text, starts)
            scores[attribute] = pd.Series(joined, index=pd.Index(names[files[rows][starts]])).str.rstrip(" ")
        return soft, counts, votes, scores

    def _votes(self):
        return self._cached(("votes",), self._compute_votes)

    def _with_votes(self, table: pd.DataFrame, attribute: str | None) -> pd.DataFrame:
        votes = self._votes()
        if votes is None:
            return table
        soft, counts, text, scores = votes
        position = soft.index.get_indexer(table["FileName"])
        found = position >= 0
        table["votes"] = np.where(found, text.to_numpy(object)[np.where(found, position, 0)], None)
        table["n_votes"] = pd.array(np.where(found, soft["n_votes"].to_numpy()[position], 0), dtype="Int64")
        table.loc[~found, "n_votes"] = pd.NA
        shares = soft[list(CLASS_CODES)].to_numpy()
        for which, column in (("true", "EmoClass_true"), ("pred", "EmoClass_pred")):
            if column in table:
                k = pd.Index(CLASS_CODES).get_indexer(table[column].to_numpy(str))
                value = np.where(found & (k >= 0), shares[np.where(found, position, 0), np.maximum(k, 0)], np.nan)
                table[f"vote_share_{which}"] = value
        if attribute is not None:
            table[f"{attribute}_annotators"] = scores[attribute].reindex(table["FileName"]).to_numpy()
        return table

    def _with_corpus(self, table: pd.DataFrame) -> pd.DataFrame:
        if self.corpus is None:
            return table
        transcripts, audios = self.corpus / "Transcripts", self.corpus / "Audios"
        if transcripts.is_dir():
            def read(name):
                path = transcripts / f"{Path(name).stem}.txt"
                return path.read_text(encoding="utf-8").strip() if path.is_file() else None
            table["transcript"] = [read(n) for n in table["FileName"]]
        if audios.is_dir():
            table["audio"] = [str(audios / n) if (audios / n).is_file() else None for n in table["FileName"]]
        return table

    def to_csv(self, path: str | os.PathLike, **cell) -> Path:
        """Write :meth:`cell_utterances` (``cell``: its arguments; default the state's cell) as CSV."""
        table = self.cell_utterances(**cell)
        return atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))

    def disagreements(self) -> pd.DataFrame:
        """Where the system and the comparison system disagree, per true class and per true
        bin of each attribute (current bins), and which one is right (:func:`disagreement_by_true`;
        ``a`` = system, ``b`` = comparison system)."""
        s = self.state
        if s.compare_system is None:
            raise ValueError("select a compare_system first")
        frames = [self._analysis("disagreement", lambda t=task: disagreement_by_true(
            self._rows(t, self.selected_systems), s.system, s.compare_system, t, s.bins),
            task, s.system, s.compare_system, s.bins)
            for task in TASKS if self.merged(task) is not None and len(self.merged(task))]
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ widgets
    def show(self):
        """The ipywidgets interface (a VBox); controls write onto :attr:`state`, outputs redraw."""
        return _ExplorerWidgets(self).root

    def _ipython_display_(self):
        from IPython.display import display
        display(self.show())

    def __repr__(self) -> str:
        return f"Explorer({len(self.systems)} systems, state={self.state})"


class _ExplorerWidgets:
    """Widget layer only: copies widget values onto the state and shows what the Explorer answers."""

    N_AUDIO = 3

    def __init__(self, explorer: Explorer):
        import ipywidgets as w

        self.ex, self.w = explorer, w
        s = explorer.state
        none = [("(none)", None)]
        self.controls = {
            "system": w.Dropdown(options=explorer.systems, value=s.system, description="system"),
            "compare_system": w.Dropdown(options=none + [(n, n) for n in explorer.systems],
                                         value=s.compare_system, description="compare"),
            "split": w.Dropdown(options=explorer.splits, value=s.split, description="split"),
            "group_column": w.Dropdown(options=none + [(c, c) for c in explorer.group_columns()],
                                       value=s.group_column, description="group by"),
            "group_value": w.Dropdown(options=none, value=None, description="group"),
            "view": w.Dropdown(options=VIEWS, value=s.view, description="view"),
            "bins": w.Dropdown(options=BIN_SCHEMES, value=s.bins, description="bins"),
        }
        self.cell = {
            "cell_true": w.Dropdown(options=none, value=None, description="true"),
            "cell_pred": w.Dropdown(options=none, value=None, description="predicted"),
        }
        self.export_path = w.Text(value="cell_utterances.csv", description="CSV")
        self.export = w.Button(description="export cell")
        self.message = w.HTML()
        self.out_figure, self.out_metrics, self.out_cell = w.Output(), w.Output(), w.Output()
        banner = w.HTML(f"<b style='color:#a00'>{SYNTHETIC_BANNER}</b>") if explorer.synthetic else w.HTML()
        layout = w.Layout(width="260px")
        for widget in list(self.controls.values()) + list(self.cell.values()):
            widget.layout = layout
        for name, widget in {**self.controls, **self.cell}.items():
            widget.observe(lambda change, name=name: self.on_change(name, change["new"]), names="value")
        self.export.on_click(lambda _: self.on_export())
        controls = list(self.controls.values())
        self.root = w.VBox([
            banner,
            w.HBox(controls[:4]), w.HBox(controls[4:]),
            self.message,
            w.Tab(children=[self.out_figure, self.out_metrics], titles=["figure", "metrics"]),
            w.HBox([self.cell["cell_true"], self.cell["cell_pred"], self.export_path, self.export]),
            self.out_cell,
        ])
        self._syncing = False
        self.sync_options()
        self.redraw()

    def on_change(self, name, value):
        if self._syncing:
            return
        try:
            changes = {name: value}
            if name == "group_column":
                if value is not None:
                    return self.sync_options()   # a column alone filters nothing: wait for a value
                changes["group_value"] = None
            if name == "group_value":
                changes["group_column"] = None if value is None else self.controls["group_column"].value
            self.ex.set(**changes)
            self.message.value = ""
        except ValueError as err:
            self.message.value = f"<span style='color:#a00'>{err}</span>"
            return
        self.sync_options()
        if name.startswith("cell_"):
            self.show_cell()
        else:
            self.redraw()

    def sync_options(self):
        """Options that depend on the state: group values, cell choices."""
        self._syncing = True
        try:
            column = self.controls["group_column"].value
            values = self.ex.group_values(column) if column is not None else []
            self.controls["group_value"].options = [("(none)", None)] + [(str(v), v) for v in values]
            state = self.ex.state
            self.controls["group_value"].value = (state.group_value if column is not None
                                                  and column == state.group_column else None)
            options = [("(any)", None)] + self.ex.cell_options()
            for name, widget in self.cell.items():
                widget.options = options
                value = getattr(state, name)
                widget.value = value if value in [v for _, v in options] else None
        finally:
            self._syncing = False

    def redraw(self):
        from IPython.display import display
        for out, render in ((self.out_figure, self._figure), (self.out_metrics, self._metrics)):
            with out:
                out.clear_output(wait=True)
                try:
                    render(display)
                except ValueError as err:
                    print(err)
        self.show_cell()

    def _figure(self, display):
        from IPython.display import Image
        display(Image(data=self.ex.figure_png()))

    def _metrics(self, display):
        display(self.ex.headline_table())
        if self.ex.state.compare_system:
            display(self.ex.disagreements())

    def show_cell(self):
        from IPython.display import Audio, display
        with self.out_cell:
            self.out_cell.clear_output(wait=True)
            if not self.ex.cell_options():
                return
            try:
                table = self.ex.cell_utterances()
            except ValueError as err:
                print(err)
                return
            print(f"{len(table)} utterances in this cell")
            display(table.head(50))
            if "audio" in table:
                for name, path in table[["FileName", "audio"]].dropna().head(self.N_AUDIO).itertuples(index=False):
                    print(name)
                    display(Audio(filename=path))

    def on_export(self):
        try:
            path = self.ex.to_csv(self.export_path.value)
            self.message.value = f"wrote {path}"
        except (ValueError, OSError) as err:
            self.message.value = f"<span style='color:#a00'>{err}</span>"
