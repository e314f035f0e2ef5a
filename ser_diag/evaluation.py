"""The aligned evaluation: every system's predictions of a task on one file index, built once.

:class:`Evaluation` is the value every analysis, figure, the report and the explorer read. It
is built once where the data are loaded (:meth:`Evaluation.load`, or :meth:`Evaluation.from_frames`
for frames a user merged) and holds, per task, a :class:`TaskData`:

- ``frame``: the long merged table (one row per system and file, :func:`ser_diag.io.merge`'s
  layout), the column store and the view users read (:meth:`Evaluation.to_frame`);
- the bookkeeping derived from it once, not again by every analysis: the systems in order of
  appearance, each row's system and file code, each system's row positions, each file's first
  row, the blocks of systems scored on the same files;
- systems x files arrays on demand: class codes (:meth:`TaskData.class_codes`) and attribute
  values (:meth:`TaskData.attribute_values`) of a block of systems, in the block's file order.

Analyses accept a :class:`TaskData` or a merged frame (:meth:`TaskData.of` aligns a frame once per
call), so ``bootstrap_metrics(merged)`` still works for a frame a user built by hand.
Compare xarray's ``Dataset`` and fairlearn's ``MetricFrame``: one labelled value, many views.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ser_diag import io
from ser_diag.io import class_index, factorize
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL, TASKS
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["Evaluation", "TaskData", "aligned", "class_codes", "frame_of", "task_of", "vocabulary_of",
           "column_at", "rows_at"]

Block = tuple[list, list]   # (system names, each system's row positions in the same file order)


class TaskData:
    """One task's predictions aligned on its files (see the module docstring).

    ``frame``: a merged frame of one task; ``task``: its task (default: as the frame says,
    :func:`ser_diag.io.task_of`); ``vocabulary``: the corpus' classes and attributes (default:
    the frame's ``attrs["vocabulary"]``, else MSP-Podcast's). The bookkeeping is computed here once; the frame must not
    be changed in place afterwards.

    >>> frame = pd.DataFrame({"system": ["a", "a", "b", "b"], "FileName": ["x", "y", "x", "y"],
    ...                       "EmoClass_true": ["A", "S", "A", "S"], "EmoClass_pred": ["A", "A", "S", "S"]})
    >>> data = TaskData(frame, "categorical")
    >>> data.systems, data.n_files, data.positions["b"].tolist()
    (('a', 'b'), 2, [2, 3])
    >>> [(names, [r.tolist() for r in rows]) for names, rows in data.blocks()]
    [(['a', 'b'], [[0, 1], [2, 3]])]
    >>> data.class_codes("EmoClass_pred", data.blocks()[0][1]).tolist()
    [[0, 0], [1, 1]]
    """

    def __init__(self, frame: pd.DataFrame, task: str | None = None, vocabulary: Vocabulary | None = None):
        self.frame = frame
        self.vocabulary = vocabulary if vocabulary is not None else frame.attrs.get("vocabulary", MSP_PODCAST)
        if not isinstance(self.vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a Vocabulary, not {type(self.vocabulary).__name__}")
        self.task = task if task is not None else io.task_of(frame)
        codes, names = factorize(frame["system"])
        self.system_code = _compact_positions(codes)
        self.systems = tuple(str(name) for name in names)
        by_system = _compact_positions(np.argsort(self.system_code, kind="stable"))
        bounds = np.searchsorted(self.system_code[by_system], np.arange(len(names) + 1))
        by_system.flags.writeable = False                       # shared by every reader
        self.positions: Mapping[str, np.ndarray] = {
            name: by_system[bounds[i]:bounds[i + 1]] for i, name in enumerate(self.systems)}
        file_code, file_names = factorize(frame["FileName"])
        self.file_code = _compact_positions(file_code)
        self.file_names = pd.Index(file_names)                   # by file code
        self.file_code.flags.writeable = False
        # codes by first appearance: the first rows are ascending, one per file
        self.first_rows = np.unique(self.file_code, return_index=True)[1]
        self._blocks: dict = {}
        self._submitted: np.ndarray | None = None
        self._frames: dict[str, pd.DataFrame] | None = None

    @classmethod
    def of(cls, data: TaskData | pd.DataFrame, task: str | None = None,
           vocabulary: Vocabulary | None = None) -> TaskData:
        """``data`` itself when it is aligned already, else a frame aligned once."""
        return data if isinstance(data, TaskData) else cls(data, task, vocabulary)

    @property
    def classes(self) -> tuple[str, ...]:
        """The scored class codes, in macro-F1 order (MSP-Podcast: ``A S H U F D C N``)."""
        return self.vocabulary.classes

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """The attribute columns (MSP-Podcast: ``EmoAct EmoVal EmoDom``)."""
        return self.vocabulary.attribute_names

    def __repr__(self) -> str:
        return (f"TaskData({self.task}: {len(self.systems)} systems, {self.n_files} files, "
                f"{len(self.frame)} rows)")

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_files(self) -> int:
        return len(self.first_rows)

    @property
    def attrs(self) -> dict:
        return self.frame.attrs

    @property
    def columns(self) -> pd.Index:
        return self.frame.columns

    def __getitem__(self, column):
        return self.frame[column]

    def __contains__(self, column) -> bool:
        return column in self.frame

    def column(self, name: str, rows=None) -> pd.Series:
        """``frame[name]`` at row positions ``rows`` (default all), a slice when contiguous."""
        return column_at(self.frame, name, rows)

    def files(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per file (its first row in the frame), index reset: e.g. speaker and gender."""
        frame = self.frame if columns is None else self.frame[list(columns)]
        return frame.iloc[self.first_rows].reset_index(drop=True)

    def speakers(self, rows=None) -> pd.Series | None:
        """``SpkrID`` at ``rows`` (default: each file's first row), or None without the column."""
        if "SpkrID" not in self.frame.columns:
            return None
        return self.column("SpkrID", self.first_rows if rows is None else rows)

    @property
    def prediction_columns(self) -> list[str]:
        """The task's prediction columns: ``EmoClass_pred``, or ``<attribute>_pred`` of each attribute."""
        return ["EmoClass_pred"] if self.task == TASK_CATEGORICAL else [f"{a}_pred" for a in self.attribute_names]

    def submitted(self) -> np.ndarray:
        """Per row: did the system submit this task (any prediction column not missing)."""
        if self._submitted is None:
            columns = [c for c in self.prediction_columns if c in self.frame.columns]
            self._submitted = (self.frame[columns].notna().any(axis=1).to_numpy() if columns
                               else np.zeros(len(self.frame), dtype=bool))
        return self._submitted

    def blocks(self, systems: Sequence[str] | None = None) -> list[Block]:
        """Systems scored on identical file lists: ``[(systems, row positions)]``, each system's
        rows in the same file order; systems that did not submit the task are left out. Computed
        once per list of systems."""
        key = None if systems is None else tuple(systems)
        if key not in self._blocks:
            self._blocks[key] = self._compute_blocks(self.systems if systems is None else list(systems))
        return [(list(names), list(rows)) for names, rows in self._blocks[key]]

    def _compute_blocks(self, names) -> list[Block]:
        submitted, files = self.submitted(), self.file_code
        blocks: list[Block] = []
        for name in names:
            if name not in self.positions:
                raise ValueError(f"system {name!r} is not in the merged frame")
            rows = self.positions[name]
            if not submitted[rows].any():
                continue
            in_rows = files[rows]
            if (np.diff(in_rows) < 0).any():                # io.load's frames are in file order already
                rows = rows[np.argsort(in_rows, kind="stable")]
            del in_rows
            for block_names, block_rows in blocks:
                if np.array_equal(files[block_rows[0]], files[rows]):
                    block_names.append(name)
                    block_rows.append(rows)
                    break
            else:
                blocks.append(([name], [rows]))
        return blocks

    def class_codes(self, column: str, rows=None) -> np.ndarray:
        """:func:`class_codes` of ``column`` at ``rows``; for a list of equally long positions (a
        block's systems) ``(S, n)``."""
        if isinstance(rows, (list, tuple)):
            return class_codes(self.frame, column, np.concatenate(rows), self.classes).reshape(len(rows), -1)
        return class_codes(self.frame, column, rows, self.classes)

    def attribute_values(self, suffix: str, rows) -> np.ndarray:
        """``(n, A)`` values of the ``<attribute>_<suffix>`` columns at ``rows``; for a list of
        equally long positions (a block's systems) ``(S, n, A)``."""
        attributes = self.attribute_names
        if not isinstance(rows, (list, tuple)):
            return np.column_stack([self.frame[f"{a}_{suffix}"].to_numpy(np.float64)[rows] for a in attributes])
        out = np.empty((len(rows[0]), len(rows), len(attributes)))
        for j, a in enumerate(attributes):          # a column at a time, straight into (n, S, A)
            column = self.frame[f"{a}_{suffix}"].to_numpy(np.float64)
            for i, r in enumerate(rows):
                out[:, i, j] = column[r]
        return out.transpose(1, 0, 2)

    def system_frames(self) -> dict[str, pd.DataFrame]:
        """One frame per system that submitted the task (order of first appearance), index reset,
        rows in the shared file order; computed once (callers get shallow copies). A system with
        some predictions missing raises ``ValueError`` (paired analyses need every file)."""
        if self._frames is None:
            missing_rows = self.frame[self.prediction_columns].isna().to_numpy()
            frames = {}
            for system, rows in self.positions.items():
                missing = missing_rows[rows]
                if missing.all():
                    continue
                if missing.any():
                    raise ValueError(f"system {system!r} lacks predictions for some files; "
                                     "merge with intersection=True or complete the submission")
                frames[system] = rows_at(self.frame, rows).reset_index(drop=True)
            if not frames:
                raise ValueError("merged frame holds no system with predictions")
            self._frames = frames
        return {system: frame.copy(deep=False) for system, frame in self._frames.items()}


def class_codes(frame: pd.DataFrame, column: str, rows=None, classes: Sequence[str] | None = None) -> np.ndarray:
    """Class positions (in ``classes``, default the frame's vocabulary's, else MSP-Podcast's
    :data:`~ser_diag.schema.CLASS_CODES`) of ``frame[column]`` at row positions ``rows``
    (default all): only that column is taken, not the rows of the frame.

    >>> class_codes(pd.DataFrame({"c": ["N", "A", "S"]}), "c", [0, 2]).tolist()
    [7, 1]
    >>> class_codes(pd.DataFrame({"c": ["sad", "angry"]}), "c", classes=("angry", "sad")).tolist()
    [1, 0]
    """
    classes = tuple(classes) if classes is not None else vocabulary_of(frame).classes
    values = column_at(frame, column, rows)
    codes = class_index(values, classes)
    if (codes < 0).any():
        bad = values.iloc[int(np.flatnonzero(codes < 0)[0])]
        raise ValueError(f"{column} holds {bad!r}, not one of {classes}")
    return codes.astype(np.int64)


def vocabulary_of(data) -> Vocabulary:
    """The :class:`~ser_diag.vocabulary.Vocabulary` ``data`` were read with: an
    :class:`Evaluation`'s or a :class:`TaskData`'s, a frame's ``attrs["vocabulary"]``;
    MSP-Podcast's for a frame without one (and for None).

    >>> vocabulary_of(pd.DataFrame()).name
    'msp-podcast'
    """
    if isinstance(data, (TaskData, Evaluation)):
        return data.vocabulary
    attrs = getattr(data, "attrs", None) or {}
    return attrs.get("vocabulary", MSP_PODCAST)


def frame_of(data: TaskData | pd.DataFrame | None) -> pd.DataFrame | None:
    """The merged frame of ``data`` (a :class:`TaskData` or a frame already)."""
    return data.frame if isinstance(data, TaskData) else data


def task_of(data: TaskData | pd.DataFrame) -> str:
    """The task of a :class:`TaskData` or a merged frame (:func:`ser_diag.io.task_of`)."""
    return data.task if isinstance(data, TaskData) else io.task_of(data)


def aligned(data: TaskData | pd.DataFrame | None, task: str | None = None,
            vocabulary: Vocabulary | None = None) -> TaskData | None:
    """:meth:`TaskData.of`, passing None through."""
    return None if data is None else TaskData.of(data, task, vocabulary)


@dataclasses.dataclass(eq=False)
class Evaluation:
    """Labels and every system's predictions of the tasks submitted, aligned once.

    ``labels``: one row per file of the split (metadata and truth); ``categorical`` /
    ``attributes``: a :class:`TaskData` each, or None when no system gave that task;
    ``synthetic``: the data carry the synthetic-data marker; ``vocabulary``: the corpus'
    :class:`~ser_diag.vocabulary.Vocabulary` the data were read with (default: the merged
    frames', else MSP-Podcast's): every analysis reads its classes, attributes and scales.
    """

    labels: pd.DataFrame
    categorical: TaskData | None
    attributes: TaskData | None
    synthetic: bool = False
    vocabulary: Vocabulary = MSP_PODCAST

    @classmethod
    def load(cls, labels_path: str | os.PathLike, predictions_path: str | os.PathLike,
             split: str | None = "Development", intersection: bool = False,
             vocabulary: Vocabulary | None = None, **corpus) -> Evaluation:
        """Read and validate labels and predictions (:func:`ser_diag.io.load`) and align them;
        ``vocabulary`` and ``corpus`` (e.g. ``target=``, ``attributes=`` of an audformat
        database) are :func:`ser_diag.io.load`'s."""
        loaded = io.load(labels_path, predictions_path, split=split, intersection=intersection,
                         vocabulary=vocabulary, **corpus)
        return cls.from_frames(loaded.get(TASK_CATEGORICAL), loaded.get(TASK_ATTRIBUTES), loaded.get("labels"),
                               vocabulary=loaded.get("vocabulary"))

    @classmethod
    def from_frames(cls, categorical=None, attributes=None, labels: pd.DataFrame | None = None,
                    vocabulary: Vocabulary | None = None) -> Evaluation:
        """Align merged frames (or pass :class:`TaskData` through); ``vocabulary``: default the
        frames' (:func:`vocabulary_of`)."""
        if vocabulary is None:
            found = {vocabulary_of(d) for d in (categorical, attributes) if d is not None}
            if len(found) > 1:
                raise ValueError("the categorical and attribute frames were read with different vocabularies")
            vocabulary = found.pop() if found else MSP_PODCAST
        if not isinstance(vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be a Vocabulary, not {type(vocabulary).__name__}")
        tasks = {TASK_CATEGORICAL: aligned(categorical, TASK_CATEGORICAL, vocabulary),
                 TASK_ATTRIBUTES: aligned(attributes, TASK_ATTRIBUTES, vocabulary)}
        synthetic = any(bool(d.frame.attrs.get("synthetic")) for d in tasks.values() if d is not None)
        return cls(labels if labels is not None else pd.DataFrame(), tasks[TASK_CATEGORICAL],
                   tasks[TASK_ATTRIBUTES], synthetic, vocabulary)

    def task(self, name: str) -> TaskData | None:
        if name not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {name!r}")
        return getattr(self, name)

    def tasks(self) -> dict[str, TaskData]:
        """The tasks some system submitted, categorical first."""
        return {t: d for t in TASKS if (d := self.task(t)) is not None}

    def to_frame(self, task: str) -> pd.DataFrame | None:
        """The long merged table of ``task`` (one row per system and file), or None."""
        data = self.task(task)
        return None if data is None else data.frame

    @property
    def systems(self) -> list[str]:
        """Every system, in order of appearance (categorical first)."""
        return list(dict.fromkeys(s for d in self.tasks().values() for s in d.systems))


# --------------------------------------------------------------------------- row positions

def _compact_positions(values: np.ndarray) -> np.ndarray:
    """Row codes or positions as int32 (int64 past 2**31 - 1 rows): the memos of a merged
    frame hold 4 bytes a row, not 8 (120 MB less per frame at 400k files x 20 systems)."""
    return values.astype(np.int32) if len(values) < np.iinfo(np.int32).max else values


def rows_at(frame, positions):
    """``frame.iloc[positions]`` (a frame or a column); a slice (no copy of the rows) when the positions are one
    contiguous run, as they are for every system of a merged frame built system by system. A
    take of other positions copies the rows, and an Arrow string column repeated chunk by chunk
    (:func:`ser_diag.io.load`'s label columns) is first joined into one array: 0.3 GB for the
    file names of 400k files x 20 systems, for the 400k rows wanted."""
    run = _run(positions)
    return frame.iloc[run] if run is not None else frame.iloc[positions]


def column_at(frame: pd.DataFrame, column: str, positions=None) -> pd.Series:
    """``frame[column].iloc[positions]`` (default: the whole column), a slice when the positions
    are one contiguous run (:func:`rows_at`)."""
    return frame[column] if positions is None else rows_at(frame[column], positions)


def _run(positions) -> slice | None:
    """``positions`` as a slice when they are ``a, a+1, ..., b`` (else None)."""
    if isinstance(positions, slice):
        return positions
    positions = np.asarray(positions)
    if positions.ndim != 1 or positions.dtype.kind not in "iu" or not len(positions):
        return None
    first, last = int(positions[0]), int(positions[-1])
    if last - first + 1 == len(positions) and (np.diff(positions) == 1).all():
        return slice(first, last + 1)
    return None
