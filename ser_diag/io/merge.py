"""Labels and predictions joined into one tidy frame per task.

:func:`merge` joins a labels frame and a predictions frame; :func:`load` reads the labels and
every system's files and places each file's rows straight into the merged frames
(:class:`_TaskRows`: no frame of every system's predictions). Both raise the same messages.
:func:`factorize` codes the merged frames' label columns (one Arrow chunk repeated per
system) without hashing every row; :func:`task_of` tells a merged frame's task.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, warn
from ser_diag.io.corpus import is_synthetic
from ser_diag.io.labels import read_labels
from ser_diag.io.predictions import (
    _prediction_groups,
    _system_files,
    _task_columns,
    out_of_range,
    submitted,
)
from ser_diag.io.reading import _N_EXAMPLES, _more, _row_of, class_index
from ser_diag.memory import release_free_memory
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary
from ser_diag.schema import (
    CONSENSUS_COLUMNS,
    TASK_ATTRIBUTES,
    TASK_CATEGORICAL,
    TASKS,
)


def _source(sources: dict, system: str, task: str) -> str:
    """The file a system's ``task`` predictions came from (``sources``: ``attrs["sources"]``)."""
    return sources.get(system, {}).get(task, f"predictions of system {system!r}")



def task_of(merged: pd.DataFrame) -> str:
    """The task of a merged frame: ``merged.attrs["task"]``, else inferred from its columns."""
    task = merged.attrs.get("task")
    if task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
        return task
    if "EmoClass_pred" in merged:
        return TASK_CATEGORICAL
    attributes = merged.attrs.get("vocabulary", MSP_PODCAST).attribute_names
    if attributes and all(f"{a}_pred" in merged for a in attributes):
        return TASK_ATTRIBUTES
    raise ValueError(f"merged frame has neither EmoClass_pred nor {'/'.join(attributes) or 'attribute'}_pred columns")


def merge(labels: pd.DataFrame, predictions: pd.DataFrame, task: str, intersection: bool = False,
          vocabulary: Vocabulary = MSP_PODCAST) -> pd.DataFrame:
    """Join labels and predictions for one task into the tidy ``merged`` frame.

    Columns ``system, FileName, SpkrID, Gender, Split_Set, <extra label columns>`` then
    ``EmoClass_true, EmoClass_pred`` (+ ``P_A..P_N``) for ``"categorical"`` (``O``/``X`` label
    rows dropped; predictions for them ignored) or ``EmoAct_true, EmoAct_pred, EmoVal_true, ...``
    for ``"attributes"``; sorted by system then FileName, the same files for every system.

    A prediction for a file absent from ``labels``, or a labelled file missing from a system, is
    an :class:`InputError` -- unless ``intersection=True``: then only the files every system and
    the labels share are kept. ``attrs``: ``task``, ``synthetic``, ``split``, ``dropped``
    (labelled files left out), ``dropped_predictions`` (prediction rows for unlabelled files),
    ``vocabulary`` (the corpus' :class:`~ser_diag.vocabulary.Vocabulary`: its classes replace
    the 8 codes, its attribute names ``EmoAct..``, its scales [1, 7]).
    """
    value_columns = _task_columns(task, vocabulary)
    rows_with = submitted(predictions, task, vocabulary)
    if not rows_with.any():
        raise InputError(predictions.attrs.get("path", "predictions"), value_columns[0],
                         f"no system has {task} predictions")
    sources = predictions.attrs.get("sources", {})
    preds = predictions.loc[rows_with]
    groups = preds.groupby("system", sort=True)
    rows = _TaskRows(labels, task, groups.ngroups, vocabulary)
    for system, frame in groups:
        repeated = frame["FileName"].duplicated()
        if repeated.any():
            raise InputError(_source(sources, system, task), "FileName",
                             f"duplicate FileName {quoted(frame['FileName'][repeated].iloc[0])} "
                             f"for system {quoted(system)}")
        rows.add(system, _source(sources, system, task), frame)
    return rows.finish(intersection, predictions.attrs.get("path", "predictions"),
                       bool(predictions.attrs.get("synthetic")))


def _warn_out_of_range(merged: pd.DataFrame, sources: dict, task: str, vocabulary: Vocabulary = MSP_PODCAST) -> None:
    """One warning for every attribute prediction outside its scale (MSP-Podcast: [1, 7]):
    model output, scored as given."""
    columns = [f"{a}_pred" for a in vocabulary.attribute_names]
    ranges = [vocabulary.attribute_ranges[a] for a in vocabulary.attribute_names]
    found = out_of_range(merged, columns, ranges)
    if found is None:
        return
    per_row = np.zeros(len(merged), dtype=bool)
    for column, (low, high) in zip(columns, ranges):
        value = merged[column].to_numpy(dtype="float64")
        per_row |= (value < low) | (value > high)
    systems = pd.unique(merged.loc[per_row, "system"])
    others = f" and {len(systems) - 1} more system{'s' if len(systems) > 2 else ''}" if len(systems) > 1 else ""
    warn(InputWarning(_source(sources, systems[0], task), None,
                      f"{found['count']} attribute predictions outside {_scales(ranges)} (min {found['min']:.4g}, "
                      f"max {found['max']:.4g}; system {quoted(systems[0])}{others}); scored as given, "
                      "as the challenge's CCC scores them"))


def _scales(ranges) -> str:
    """``[1, 7]``, or each attribute's scale when they differ."""
    text = [f"[{low:g}, {high:g}]" for low, high in ranges]
    return text[0] if len(set(text)) == 1 else "their scales " + "/".join(text)


class _TaskRows:
    """One task's merged frame, written system by system: :func:`load` adds each file as it is
    read (no frame of every system's predictions, no intermediate copies), :func:`merge` each
    system's rows of a predictions frame; both get their checks and messages from :meth:`finish`.

    Row ``k * n + j`` of the result holds system ``k`` (in name order) on the ``j``-th file of
    the task in FileName order (``n`` files); values go straight into one float block
    (``P_*`` or ``<attribute>_true/_pred`` pairs) and class codes into an int8 array.
    """

    def __init__(self, labels: pd.DataFrame, task: str, max_systems: int, vocabulary: Vocabulary = MSP_PODCAST):
        self.labels, self.task, self.vocabulary = labels, task, vocabulary
        self.classes, self.attributes = vocabulary.classes, vocabulary.attribute_names
        self.prob_columns = list(vocabulary.prob_columns)
        self.names = pd.Index(labels["FileName"])
        in_task = (labels["EmoClass"].isin(self.classes).to_numpy() if task == TASK_CATEGORICAL
                   else np.ones(len(self.names), dtype=bool))
        rank = np.empty(len(self.names), dtype=np.int64)
        rank[self.names.argsort()] = np.arange(len(self.names))
        files = np.flatnonzero(in_task)
        self.files = files[np.argsort(rank[files], kind="stable")]   # labels rows of the task, by FileName
        self.slot = np.full(len(self.names), -1, dtype=np.int64)
        self.slot[self.files] = np.arange(len(self.files))
        n = len(self.files)
        self.systems: list[str] = []
        self.sources: dict[str, dict[str, str]] = {}
        self.unknown: list[tuple[str, int, str]] = []   # (system, rows not in the labels, first such name)
        self._last_names = None   # (Arrow file names, their label rows) of the last file added
        self.covered = np.zeros((max_systems, n), dtype=bool)
        # np.empty: pages of systems that never come are never touched (no memory)
        if task == TASK_CATEGORICAL:
            self.codes = np.empty(max_systems * n, dtype=np.int8)
            self.values, self.with_values = None, []   # P_* block made at the first system that has them
        else:
            self.values = np.empty((2 * len(self.attributes), max_systems * n), dtype=np.float64)

    def add(self, system: str, source: str, frame: pd.DataFrame) -> None:
        """Place one prediction file's rows (FileName + this task's columns) in their final rows."""
        k, n = len(self.systems), len(self.files)
        self.systems.append(system)
        self.sources[system] = {self.task: source}
        position = self._positions(frame["FileName"])
        known = position >= 0
        if not known.all():
            self.unknown.append((system, int((~known).sum()), min(frame["FileName"].to_numpy()[~known])))
        slot = self.slot[np.where(known, position, 0)]
        rows = np.flatnonzero(known & (slot >= 0))
        target = k * n + slot[rows]
        self.covered[k, slot[rows]] = True
        if self.task == TASK_CATEGORICAL:
            self.codes[target] = class_index(frame["EmoClass"], self.classes)[rows]
            prob_columns = self.prob_columns
            has_probabilities = all(c in frame.columns for c in prob_columns) and \
                bool(frame[prob_columns[0]].notna().any())   # a system without them: NaN in a frame of several
            self.with_values.append(has_probabilities)
            if has_probabilities:
                if self.values is None:
                    self.values = np.empty((len(prob_columns), self.covered.shape[0] * n), dtype=np.float64)
                for i, column in enumerate(prob_columns):
                    self.values[i, target] = frame[column].to_numpy(dtype=np.float64)[rows]
        else:
            for i, column in enumerate(self.attributes):
                self.values[2 * i + 1, target] = frame[column].to_numpy(dtype=np.float64)[rows]

    def _positions(self, file_names: pd.Series) -> np.ndarray:
        """Rows of the labels holding ``file_names`` (-1 where absent). Systems usually list the
        same files in the same order, so the last answer is reused when the names are equal
        (one comparison of the Arrow buffers instead of a hash lookup of every name)."""
        names = file_names.array
        arrow = names.__arrow_array__() if hasattr(names, "__arrow_array__") else None
        last = self._last_names
        if arrow is not None and last is not None and len(arrow) == len(last[0]) and arrow.equals(last[0]):
            return last[1]
        position = self.names.get_indexer(file_names)
        if arrow is not None:
            self._last_names = (arrow, position)
        return position

    def finish(self, intersection: bool, path: Path, synthetic: bool) -> pd.DataFrame:
        """The merged frame (see :func:`merge`), or the InputError :func:`merge` would raise."""
        task, labels, names = self.task, self.labels, self.names
        label_file = labels.attrs.get("source", "labels")
        split = labels.attrs.get("split")
        scope = f"labels of split {split} ({label_file})" if split else f"labels ({label_file})"
        if not names.is_unique:
            raise InputError(label_file, "FileName", f"duplicate FileName {quoted(names[names.duplicated()][0])}")
        if self.unknown and not intersection:
            system, count, name = self.unknown[0]
            file = self.sources[system][task]
            raise InputError(file, "FileName", f"{quoted(name)} is not in the {scope}{_more(count)}",
                             row=_row_of(file, name))
        n, n_systems = len(self.files), len(self.systems)
        if n == 0:
            raise InputError(label_file, "EmoClass", f"no file of {f'split {split}' if split else 'the labels'} "
                             f"has one of the {len(self.classes)} classes "
                             f"({', '.join(self.classes)}); all are {_unscored(self.vocabulary)}")
        covered = self.covered[:n_systems]
        for k, system in enumerate(self.systems):
            missing = np.flatnonzero(~covered[k])
            if len(missing) and not intersection:
                where = _row_of(label_file, names[self.files[missing[0]]])
                examples = ", ".join(quoted(f) for f in names[self.files[missing[:_N_EXAMPLES]]])
                raise InputError(self.sources[system][task], "FileName",
                                 f"{len(missing)} of {n} files of the {scope} have no {task} "
                                 f"prediction, e.g. {examples}"
                                 f"{f' (labels row {where})' if where else ''}; "
                                 "use --intersection (intersection=True) to score only the files all share")
        common = covered.all(axis=0)
        if not common.any():
            raise InputError(str(path), "FileName",
                             f"no file of the {scope} has a {task} prediction from every system")
        kept = np.flatnonzero(common)
        rows = slice(0, n_systems * n) if len(kept) == n else (
            (np.arange(n_systems)[:, None] * n + kept[None, :]).ravel())
        truth = self.files[kept]
        size = n_systems * len(truth)
        if task == TASK_CATEGORICAL:
            float_columns = list(self.prob_columns) if self.values is not None else []
            if self.values is not None:
                for k, has in enumerate(self.with_values):
                    if not has:
                        self.values[:, k * n:(k + 1) * n] = np.nan
        else:
            float_columns = [f"{a}_{side}" for a in self.attributes for side in ("true", "pred")]
        block = self.values[:, rows] if self.values is not None else np.empty((0, size))
        self.values = None
        if task == TASK_ATTRIBUTES:
            for i, column in enumerate(self.attributes):
                true_values = labels[column].to_numpy(dtype=np.float64)[truth]
                for k in range(n_systems):
                    block[2 * i, k * len(truth):(k + 1) * len(truth)] = true_values
        merged = pd.DataFrame(block.T, columns=float_columns, copy=False)
        del block
        extra = [c for c in labels.columns if c not in CONSENSUS_COLUMNS and c not in self.attributes]
        front = {"system": pd.array(self.systems, dtype="str").take(np.repeat(np.arange(n_systems), len(truth)))}
        front.update({c: _repeated(labels[c].array.take(truth), n_systems)
                      for c in ["FileName", "SpkrID", "Gender", "Split_Set"] + extra})
        if task == TASK_CATEGORICAL:
            front["EmoClass_true"] = _repeated(labels["EmoClass"].array.take(truth), n_systems)
            front["EmoClass_pred"] = pd.array(list(self.classes), dtype="str").take(self.codes[rows].astype(np.intp))
        self.codes = None
        for i, (column, values) in enumerate(front.items()):
            merged.insert(i, column, values)
        if task == TASK_ATTRIBUTES:
            _warn_out_of_range(merged, self.sources, task, self.vocabulary)
        merged.attrs = {"task": task, "split": split,
                        "synthetic": bool(labels.attrs.get("synthetic") or synthetic),
                        "dropped": n - len(truth),
                        "dropped_predictions": sum(count for _, count, _ in self.unknown)}
        if self.vocabulary != MSP_PODCAST:
            merged.attrs["vocabulary"] = self.vocabulary
        return merged


def _unscored(vocabulary: Vocabulary) -> str:
    """What the label codes outside the scored classes are (MSP-Podcast: O other, X no agreement)."""
    if vocabulary == MSP_PODCAST:
        return "O (other) or X (no agreement)"
    return "unscored codes" + (f" ({', '.join(vocabulary.excluded)})" if vocabulary.excluded else "")


def _repeated(values, times: int):
    """``values`` ``times`` times one after the other. An Arrow string array repeats by reference
    (one chunk per repeat, all the same buffers): the label columns of a merged frame repeat
    the same files once per system, so they cost one system's worth of memory, not ``times``."""
    if isinstance(values, pd.arrays.ArrowStringArray):
        import pyarrow as pa  # pandas' "str" dtype is pyarrow-backed

        chunked = values.__arrow_array__()
        return pd.arrays.ArrowStringArray(pa.chunked_array(list(chunked.chunks) * times, type=chunked.type),
                                          dtype=values.dtype)
    return values.take(np.tile(np.arange(len(values)), times))


def factorize(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """:func:`pandas.factorize` of a column (codes by first appearance, ``-1`` for missing),
    hashing each distinct chunk once: the label columns of :func:`load`'s merged frames repeat
    one Arrow chunk per system (:func:`_repeated`), so their codes are the first chunk's codes
    tiled, not a hash of every row.

    >>> column = pd.Series(_repeated(pd.array(["b.wav", "a.wav", "b.wav"], dtype="str"), 3))
    >>> codes, names = factorize(column)
    >>> codes.tolist(), list(names)
    ([0, 1, 0, 0, 1, 0, 0, 1, 0], ['b.wav', 'a.wav'])
    """
    array = values.array
    chunked = array.__arrow_array__() if isinstance(array, pd.arrays.ArrowStringArray) else None
    if chunked is not None and chunked.num_chunks > 1:
        first = chunked.chunk(0)
        if all(chunk.equals(first) for chunk in chunked.chunks[1:]):
            codes, names = pd.factorize(pd.arrays.ArrowStringArray(first, dtype=array.dtype))
            return np.tile(codes, chunked.num_chunks), pd.Index(names)
    codes, names = pd.factorize(values)
    return codes, pd.Index(names)


def load_podcast(labels_path: str | os.PathLike, predictions_path: str | os.PathLike,
                 split: str | None = "Development", intersection: bool = False) -> dict:
    """Read and validate MSP-Podcast labels and every system's predictions, and merge each task
    (:func:`ser_diag.io.load`'s MSP-Podcast route).

    Returns ``dict(categorical=merged or None, attributes=merged or None, labels=labels,
    vocabulary=MSP_PODCAST)`` (``None`` for a task no system submitted); each merged frame equals
    ``merge(labels, read_systems(predictions_path), task, intersection)``. Everything is
    validated before it returns, so a command can fail before writing any output.

    Memory: each file's rows go to their final place in the merged frames as it is read (no frame
    of every system's predictions), so the peak is about the merged frames plus one file.
    """
    labels = read_labels(labels_path, split=split)
    path = Path(predictions_path)
    groups = _prediction_groups(path)
    tasks = {task: _TaskRows(labels, task, len(groups)) for task in TASKS}
    for name, files in groups:
        for file, frame, file_tasks in _system_files(name, files):
            for task in file_tasks:
                tasks[task].add(name, str(file), frame)
            del frame
    synthetic = is_synthetic(path)
    result = {}
    for task in TASKS:
        rows = tasks.pop(task)
        result[task] = rows.finish(intersection, path, synthetic) if rows.systems else None
        del rows
    result["labels"] = labels
    result["vocabulary"] = MSP_PODCAST
    release_free_memory()
    return result
