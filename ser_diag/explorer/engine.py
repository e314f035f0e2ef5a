"""The explorer's data engine: the challenge's data, the diagnostics of each selection, one cache
and one background thread.

One orchestrator: every number comes from :func:`ser_diag.diagnostics.diagnose` run on the
files of a split and group, cached per (split, group, bin scheme) with the explorer's bootstrap
settings - the same tables the report and the paper figures are made of. Only what concerns a
pair of systems chosen in the explorer (:func:`ser_diag.analysis.fusion.disagreement_by_true`,
:meth:`Engine.disagreements`) is computed on request.

With ``prefetch`` a background thread computes what a next control change is likely to need
(:meth:`Engine.prefetch`; what that is, the :class:`~ser_diag.explorer.Explorer` decides); a
queued job the foreground needs first is taken back and computed at once (:meth:`Engine.cached`).
The thread lives only while it has work. Everything here is keyed by a selection's
:attr:`~ser_diag.explorer.state.ExplorerState.data_key` ``(split, group_column, group_value
as text)``, never by a current state, so background work for another state is safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from ser_diag import io
from ser_diag.analysis import binned
from ser_diag.analysis.fusion import disagreement_by_true
from ser_diag.diagnostics import Diagnostics, diagnose
from ser_diag.evaluation import Evaluation, vocabulary_of
from ser_diag.explorer.state import ExplorerState
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL, TASKS
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["Engine", "DETAILED_KEY", "VOTES_KEY"]

#: Cache keys of the annotators' labels and of the vote table built from them
#: (:func:`ser_diag.explorer.listing.compute_votes`): read once per explorer, never evicted.
DETAILED_KEY, VOTES_KEY = ("detailed",), ("votes",)
#: Cache bounds, least recently used first out: drawn outputs (PNGs, listings; small, many of
#: them pre-rendered) and data (diagnostics, merged frames, rows; large, costly to recompute) are
#: counted apart, so pre-rendered figures never push out the diagnostics they are drawn from.
_CACHE_SIZE = {"drawn": 512, "data": 64}
_DRAWN = {"png", "listing"}
_PINNED = {DETAILED_KEY, VOTES_KEY}
_THREAD_NAME = "ser_diag-explore"
#: The one split of a corpus whose files name no split (``Split_Set`` empty): every file.
ALL_FILES = "all files"


def as_text(values: pd.Series) -> pd.Series:
    """Values as text (None stays None): how a group value is compared."""
    return values.astype(object).where(values.notna(), None).map(lambda v: None if v is None else str(v))


def _corpus_from(labels) -> Path | None:
    if isinstance(labels, pd.DataFrame):
        source = labels.attrs.get("source")
        return Path(source).parent.parent if source else None
    path = Path(labels)
    return path if path.is_dir() else path.parent.parent


def in_split(frame: pd.DataFrame, split: str) -> pd.Series:
    """Per row of a labels or merged frame: is its file in ``split`` (:data:`ALL_FILES`: every file)."""
    if split == ALL_FILES or "Split_Set" not in frame.columns:
        return pd.Series(True, index=frame.index)
    return (frame["Split_Set"] == split).fillna(False).astype(bool)


def splits_of(labels: pd.DataFrame, present, vocabulary: Vocabulary) -> list[str]:
    """The splits with a predicted file: the vocabulary's in its order, then any other split the
    labels name; :data:`ALL_FILES` when the labels name none."""
    if "Split_Set" not in labels.columns or not labels["Split_Set"].notna().any():
        return [ALL_FILES] if labels["FileName"].isin(present).any() else []
    named = [str(v) for v in pd.unique(labels["Split_Set"].dropna())]
    order = list(vocabulary.splits) + sorted(v for v in named if v not in vocabulary.splits)
    return [s for s in order if labels.loc[in_split(labels, s), "FileName"].isin(present).any()]


def _merge_split(labels: pd.DataFrame, predictions: pd.DataFrame, split: str, intersection: bool,
                 vocabulary: Vocabulary = MSP_PODCAST) -> dict:
    """Task -> the merged frame of every system on the files of ``split``."""
    labels_of = labels.loc[in_split(labels, split)].reset_index(drop=True)
    labels_of.attrs = dict(labels.attrs, split=split)
    return {task: io.merge(labels_of, predictions, task, intersection=intersection, vocabulary=vocabulary)
            for task in TASKS if io.submitted(predictions, task, vocabulary).any()}


def _evaluation_split(data: Evaluation, split: str) -> dict:
    """Task -> the rows of an :class:`~ser_diag.evaluation.Evaluation`'s merged frame on the
    files of ``split``."""
    out = {}
    for task, frame in ((t, data.to_frame(t)) for t in TASKS):
        if frame is not None:
            kept = frame.loc[in_split(frame, split).to_numpy(bool)].reset_index(drop=True)
            kept.attrs = dict(frame.attrs)
            out[task] = kept
    return out


def _labels_of(data: Evaluation) -> pd.DataFrame:
    """The labels of an :class:`~ser_diag.evaluation.Evaluation` (its own, else each file's first
    row of its merged frames: metadata and truth)."""
    if len(data.labels):
        return data.labels
    parts = []
    for frame in (data.to_frame(t) for t in TASKS):
        if frame is not None:
            part = frame.drop(columns=[c for c in frame.columns if c == "system" or c.endswith("_pred")
                                       or c.startswith("P_")]).drop_duplicates("FileName")
            parts.append(part.rename(columns=lambda c: c.removesuffix("_true")).set_index("FileName"))
    labels = parts[0]
    for part in parts[1:]:
        labels = labels.combine_first(part)
    labels = labels.reset_index()
    labels.attrs = {"synthetic": data.synthetic}
    return labels


def _in_group(frame: pd.DataFrame | None, files: pd.Index | None) -> pd.DataFrame | None:
    """The rows of ``frame`` whose file is in ``files`` (all rows when ``files`` is None)."""
    if frame is None or files is None:
        return frame
    kept = frame.loc[files.get_indexer(frame["FileName"]) >= 0].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    return kept


def _system_rows(merged: pd.DataFrame, task: str, system: str) -> pd.DataFrame:
    rows = merged.loc[merged["system"].astype(str) == system].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"system {system!r} has no {task} predictions in this split and group")
    return rows


def _pair_disagreement(merged: pd.DataFrame, s: ExplorerState, task: str) -> pd.DataFrame:
    pair = merged.loc[merged["system"].astype(str).isin([s.system, s.compare_system])]
    return disagreement_by_true(pair, s.system, s.compare_system, task, s.bins)


class Engine:
    """The data of one explorer and every computed value, cached.

    ``labels``/``predictions``/``corpus``: as :class:`ser_diag.explorer.Explorer` takes them, or
    an :class:`~ser_diag.evaluation.Evaluation` as ``labels`` (then ``predictions`` is None: its
    merged frames are the data); ``vocabulary``: the corpus (default: the Evaluation's, else the
    labels frame's ``attrs["vocabulary"]``, else MSP-Podcast's); ``resampling``: the bootstrap
    settings of every diagnostics run. :attr:`splits`: the splits with predictions (the
    vocabulary's order; :data:`ALL_FILES` when no file names a split); :attr:`systems`: every
    system, in the predictions' order.
    """

    def __init__(self, labels, predictions, corpus=None, *, resampling, intersection: bool = False,
                 prefetch: bool = True, vocabulary: Vocabulary | None = None):
        self.evaluation = labels if isinstance(labels, Evaluation) else None
        if self.evaluation is not None:
            if predictions is not None:
                raise ValueError("an Evaluation holds the predictions: pass predictions=None")
            vocabulary = vocabulary if vocabulary is not None else self.evaluation.vocabulary
            labels = _labels_of(self.evaluation)
            predictions = pd.concat([self.evaluation.to_frame(t)[["system", "FileName"]]
                                     for t in self.evaluation.tasks()], ignore_index=True)
        self.labels = labels if isinstance(labels, pd.DataFrame) else io.read_labels(labels, split=None)
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(self.labels)
        self.predictions = (predictions if isinstance(predictions, pd.DataFrame)
                            else io.read_systems(predictions))
        self.resampling, self.intersection, self.prefetch_on = resampling, intersection, prefetch
        self.corpus = Path(corpus) if corpus is not None else _corpus_from(labels)
        self.cache: OrderedDict = OrderedDict()
        self._pending: dict = {}                  # key -> Future of a background computation
        self._render_jobs: dict = {}              # PNG key -> Future of a queued background render
        self._lock = threading.RLock()
        self._background: ThreadPoolExecutor | None = None
        present = set(self.predictions["FileName"].astype(str))
        self.splits = splits_of(self.labels, present, self.vocabulary)
        if not self.splits:
            raise ValueError("no labelled file has a prediction")
        self.systems = [str(s) for s in pd.unique(self.predictions["system"])]

    # ------------------------------------------------------------------ cache and background
    def prefetch(self, key, compute) -> Future | None:
        """Compute ``compute()`` in the background thread and cache it under ``key``; a caller
        that needs ``key`` before it started computes it itself (:meth:`cached`). Returns the
        queued job (None when ``key`` is cached or queued already)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_THREAD_NAME)

        def run():
            value = compute()
            self.store(key, value)
            return value
        with self._lock:
            if key in self.cache or key in self._pending:
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

    def prefetch_renders(self, jobs: dict) -> None:
        """Queue ``jobs`` (PNG key -> render) in order; renders queued earlier for keys not in
        ``jobs`` and not started yet are taken back (they were for an earlier state)."""
        for old_key, future in list(self._render_jobs.items()):
            if old_key not in jobs and future.cancel():
                self._render_jobs.pop(old_key, None)
        for key, render in jobs.items():
            future = self.prefetch(key, render)
            if future is not None:
                self._render_jobs[key] = future
                future.add_done_callback(lambda _, k=key: self._render_jobs.pop(k, None))

    def wait(self) -> None:
        """Block until the background computations queued so far are done (errors are left
        for the foreground, which recomputes and reports them)."""
        for future in list(self._pending.values()):
            try:
                future.result()
            except CancelledError:   # taken back by the foreground
                pass
            except ValueError:
                pass

    def has(self, key) -> bool:
        """Whether ``key`` is computed (not merely queued)."""
        with self._lock:
            return key in self.cache

    def cached(self, key, compute):
        """The value under ``key``: cached, or the queued job's result, or ``compute()`` now."""
        with self._lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
            future: Future | None = self._pending.get(key)
        if future is not None and not future.cancel():   # running: wait for it
            try:
                return future.result()
            except CancelledError:
                pass
        value = compute()
        self.store(key, value)
        return value

    def store(self, key, value) -> None:
        """Cache ``value`` under ``key``; the least recently used value of its kind goes."""
        with self._lock:
            self.cache[key] = value
            self.cache.move_to_end(key)
            kind = "drawn" if key[0] in _DRAWN else "data"
            same = [k for k in self.cache if k not in _PINNED and ("drawn" if k[0] in _DRAWN else "data") == kind]
            if len(same) > _CACHE_SIZE[kind]:    # least recently used of its kind; the votes stay
                del self.cache[same[0]]

    # ------------------------------------------------------------------ data of a selection
    def _merged_split(self, split: str) -> dict:
        if self.evaluation is not None:
            return self.cached(("merged", split), lambda: _evaluation_split(self.evaluation, split))
        return self.cached(("merged", split), lambda: _merge_split(self.labels, self.predictions, split,
                                                                   self.intersection, self.vocabulary))

    def group_labels(self, key: tuple) -> pd.DataFrame:
        """Consensus labels of the split and group of ``key`` with the labels' attributes (their
        source path, where the diagnostics find ``labels_detailed.csv`` and ``Audios/``)."""
        split, column, value = key
        labels = self.labels.loc[in_split(self.labels, split)]
        if column is not None:
            labels = labels.loc[(as_text(labels[column]) == value).to_numpy(bool)]
        labels = labels.reset_index(drop=True)
        labels.attrs = dict(self.labels.attrs, split=split)
        return labels

    def group_files(self, key: tuple) -> pd.Index | None:
        """FileNames of the split in the group of ``key``; ``None`` when there is no group filter."""
        split, column, value = key
        if column is None:
            return None
        labels = self.labels.loc[in_split(self.labels, split)]
        keep = as_text(labels[column]) == str(value)
        return pd.Index(labels.loc[keep.to_numpy(bool), "FileName"])

    def merged(self, task: str, key: tuple) -> pd.DataFrame | None:
        """The merged frame of ``task`` for the split and group of ``key`` (all systems), or None."""
        return self.cached(("filtered", task) + key,
                           lambda: _in_group(self._merged_split(key[0]).get(task), self.group_files(key)))

    def tasks(self, key: tuple) -> list[str]:
        """Tasks with predictions in the split and group of ``key``."""
        return [t for t in TASKS if self.merged(t, key) is not None and len(self.merged(t, key))]

    def synthetic(self, split: str) -> bool:
        return any(bool(m.attrs.get("synthetic")) for m in self._merged_split(split).values())

    def diagnostics(self, key: tuple, bins: str) -> Diagnostics:
        """:func:`ser_diag.diagnostics.diagnose` of the files of the split and group of ``key``
        with the bin scheme ``bins`` and the explorer's bootstrap settings, cached."""
        return self.cached(("diag",) + key + (bins,), lambda: self._compute_diagnostics(key, bins))

    def prefetch_diagnostics(self, key: tuple, bins: str) -> None:
        self.prefetch(("diag",) + key + (bins,), lambda: self._compute_diagnostics(key, bins))

    def _compute_diagnostics(self, key: tuple, bins: str) -> Diagnostics:
        frames = {t: self.merged(t, key) for t in TASKS}
        frames = {t: (f if f is not None and len(f) else None) for t, f in frames.items()}
        if all(f is None for f in frames.values()):
            raise ValueError(f"no predictions for split {key[0]!r} and this group")
        return diagnose(frames[TASK_CATEGORICAL], frames[TASK_ATTRIBUTES], labels=self.group_labels(key),
                        split=key[0], scheme=bins, resampling=self.resampling,
                        vocabulary=None if self.vocabulary == MSP_PODCAST else self.vocabulary)

    def group_columns(self) -> list[str]:
        """Label columns a group filter can use (every column but FileName, the split and the
        attribute values)."""
        return [c for c in self.labels.columns if c not in ("FileName", "Split_Set") + self.vocabulary.attribute_names]

    def group_values(self, column: str, split: str) -> list:
        """Values of ``column`` among the labelled files of ``split``, sorted."""
        values = self.labels.loc[in_split(self.labels, split), column].dropna().unique()
        return sorted(values.tolist(), key=lambda v: (str(type(v)), v))

    def rows(self, task: str, system: str, key: tuple) -> pd.DataFrame:
        """The merged rows of one system in the split and group of ``key``."""
        merged = self.merged(task, key)
        if merged is None or merged.empty:
            raise ValueError(f"no {task} predictions for split {key[0]!r} and this group")
        return self.cached(("rows", task, system) + key, lambda: _system_rows(merged, task, system))

    def bin_edges(self, attribute: str, bins: str, key: tuple):
        """Edges of ``attribute`` for the bin scheme, split and group (the diagnostics' bins)."""
        merged = self.merged(TASK_ATTRIBUTES, key)
        if merged is None or merged.empty:
            raise ValueError("no attribute predictions in this split and group")
        return self.cached(("edges", attribute, bins) + key, lambda: binned.attribute_edges(merged, attribute, bins))

    def bin_labels(self, attribute: str, bins: str, key: tuple) -> list[str]:
        return binned.bin_labels(self.bin_edges(attribute, bins, key), bins)

    def _read_detailed(self) -> pd.DataFrame | None:
        found = io.detailed_labels_file(self.corpus, self.labels.attrs.get("source"))
        return io.read_detailed_labels(found) if found is not None else None

    def detailed_labels(self) -> pd.DataFrame | None:
        """Per-annotator labels (:func:`ser_diag.io.read_detailed_labels`) when found, else None."""
        return self.cached(DETAILED_KEY, self._read_detailed)

    def prefetch_detailed(self) -> None:
        self.prefetch(DETAILED_KEY, self._read_detailed)

    def disagreements(self, state: ExplorerState):
        """Where the system and the comparison system of ``state`` disagree, per true class and
        per true bin of each attribute (its bins), and which one is right
        (:func:`ser_diag.analysis.fusion.disagreement_by_true`; ``a`` = system, ``b`` =
        comparison system)."""
        s, key = state, state.data_key
        if s.compare_system is None:
            raise ValueError("select a compare_system first")
        frames = []
        for task in self.tasks(key):
            frames.append(self.cached(("disagreement", task, s.system, s.compare_system, s.bins) + key,
                                      lambda task=task: _pair_disagreement(self.merged(task, key), s, task)))
        return pd.concat(frames, ignore_index=True)
