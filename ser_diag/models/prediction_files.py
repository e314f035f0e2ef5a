"""Prediction files of any corpus: written and read back with the corpus' vocabulary.

MSP-Podcast (the default) goes through :mod:`ser_diag.io`'s writers and reader unchanged, so its
files stay the challenge's. Any other :class:`~ser_diag.vocabulary.Vocabulary` writes its
corpus' own codes and column names (as the corpus route of :mod:`ser_diag.io.corpora` reads
prediction files, and as MSP-Podcast's ``FileName,EmoClass`` are its own), one file per task
in a system's folder::

    categorical.csv   <file_column>,<class_column>,P_<code>...   (IEMOCAP: file,emotion,P_neutral,...)
    attributes.csv    <file_column>,<attribute>...               (IEMOCAP: file,activation,valence,dominance)

(``columns="internal"``: ``FileName``/``EmoClass`` instead), numbers at
:data:`~ser_diag.precision.PREDICTION_FLOAT_FORMAT`, written atomically. :func:`read_predictions`
reads such a folder (or file; either header) back into the tidy internal predictions frame
(``system, FileName, EmoClass, P_<code>..., <attribute>...``) that
``ser_diag.io.merge(labels, predictions, task, vocabulary=vocabulary)`` joins; a class code
outside the vocabulary, a missing or unknown column, a duplicate file or a number that is not
one is an :class:`~ser_diag.errors.InputError` naming the file, the row and the column.

Torch-free.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, quoted
from ser_diag.outputs import atomic_write_text
from ser_diag.precision import PREDICTION_FLOAT_FORMAT
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["prediction_frame", "read_predictions", "write_predictions"]

#: The file of each task in a system's folder.
TASK_FILES = {TASK_CATEGORICAL: "categorical.csv", TASK_ATTRIBUTES: "attributes.csv"}
_PROB_TOLERANCE = 1e-3


def prediction_frame(names, probs: np.ndarray | None, attrs: np.ndarray | None,
                     vocabulary: Vocabulary = MSP_PODCAST) -> pd.DataFrame:
    """``FileName, EmoClass, P_<code>..., <attribute>...`` from class probabilities ``(n, K)``
    (``EmoClass`` their argmax) and attributes ``(n, A)``; either may be ``None``."""
    frame = pd.DataFrame({"FileName": np.asarray(names, dtype=object).astype(str)})
    if probs is not None:
        probs = np.asarray(probs)
        frame["EmoClass"] = np.asarray(vocabulary.classes, dtype=object)[probs.argmax(axis=1)]
        for j, column in enumerate(vocabulary.prob_columns):
            frame[column] = probs[:, j]
    if attrs is not None and vocabulary.attributes:
        attrs = np.asarray(attrs)
        for j, name in enumerate(vocabulary.attribute_names):
            frame[name] = attrs[:, j]
    return frame


def write_predictions(frame: pd.DataFrame, folder: str | os.PathLike,
                      vocabulary: Vocabulary = MSP_PODCAST, columns: str = "corpus") -> dict:
    """Write one system's predictions (``frame``: :func:`prediction_frame`'s columns, any
    subset of tasks) into ``folder``; returns ``{task: file}``. Rows without a prediction for
    a task are left out of that task's file. ``columns``: ``"corpus"`` (the vocabulary's file
    and class column names) or ``"internal"`` (``FileName``, ``EmoClass``)."""
    if columns not in ("corpus", "internal"):
        raise ValueError(f"columns must be 'corpus' or 'internal', not {columns!r}")
    names = {"FileName": vocabulary.file_column, "EmoClass": vocabulary.class_column} if columns == "corpus" else {}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    if "EmoClass" in frame and frame["EmoClass"].notna().any():
        cat = frame[frame["EmoClass"].notna()]
        probs = [c for c in vocabulary.prob_columns if c in cat and cat[c].notna().all()]
        path = folder / TASK_FILES[TASK_CATEGORICAL]
        if vocabulary == MSP_PODCAST:
            from ser_diag.io import write_categorical_predictions
            written[TASK_CATEGORICAL] = write_categorical_predictions(
                cat.loc[:, ["FileName", "EmoClass"] + probs], path)
        else:
            written[TASK_CATEGORICAL] = _write_csv(cat.loc[:, ["FileName", "EmoClass"] + probs].rename(
                columns=names), path)
    attributes = list(vocabulary.attribute_names)
    if attributes and all(a in frame for a in attributes) and frame[attributes].notna().all(axis=1).any():
        att = frame[frame[attributes].notna().all(axis=1)]
        path = folder / TASK_FILES[TASK_ATTRIBUTES]
        if vocabulary == MSP_PODCAST:
            from ser_diag.io import write_attribute_predictions
            written[TASK_ATTRIBUTES] = write_attribute_predictions(att, path)
        else:
            written[TASK_ATTRIBUTES] = _write_csv(att.loc[:, ["FileName"] + attributes].rename(columns=names), path)
    return written


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return atomic_write_text(path, frame.to_csv(index=False, float_format=PREDICTION_FLOAT_FORMAT,
                                                lineterminator="\n"))


# --------------------------------------------------------------------------- reading

def read_predictions(path: str | os.PathLike, vocabulary: Vocabulary = MSP_PODCAST,
                     system: str | None = None) -> pd.DataFrame:
    """One system's predictions from a folder of CSVs (or one CSV file) in the layout
    :func:`write_predictions` writes, checked against ``vocabulary``: the tidy frame
    ``system, FileName, EmoClass, P_<code>..., <attribute>...`` sorted by file (columns of a
    task no file holds are absent), ``attrs`` ``path``, ``sources`` ``{system: {task: file}}``,
    ``synthetic``. ``system`` defaults to the folder's (or the file's) name. MSP-Podcast files
    are read by :func:`ser_diag.io.read_predictions` (every challenge layout)."""
    if vocabulary == MSP_PODCAST:
        from ser_diag.io import read_predictions as read_challenge
        return read_challenge(path, system=system)
    from ser_diag.io.corpus import is_synthetic

    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise InputError(path, None, "no *.csv prediction files in this folder")
        name = system or path.absolute().name
    elif path.is_file():
        files, name = [path], system or path.stem
    else:
        raise InputError(path, None, "no such file or folder")
    parts, sources = {}, {}
    for file in files:
        task, frame = _read_file(file, vocabulary)
        if task in parts:
            raise InputError(file, None, f"a second {task} file for system {quoted(name)} "
                                         f"(the first: {sources[task]})")
        parts[task], sources[task] = frame, str(file)
    frame = None
    for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
        if task in parts:
            frame = parts[task] if frame is None else frame.merge(parts[task], on="FileName", how="outer")
    frame = frame.sort_values("FileName", kind="stable").reset_index(drop=True)
    frame.insert(0, "system", name)
    frame.attrs.update(path=str(path), sources={name: sources}, synthetic=is_synthetic(path))
    return frame


def _read_file(file: Path, vocabulary: Vocabulary) -> tuple[str, pd.DataFrame]:
    """``(task, frame)`` of one prediction CSV, every cell checked."""
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(file, None, f"not a readable CSV file ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.apply(lambda column: column.str.strip())
    header = list(frame.columns)
    internal = {vocabulary.file_column: "FileName", vocabulary.class_column: "EmoClass"}
    if "FileName" not in header and "EmoClass" not in header:       # the corpus' names
        frame = frame.rename(columns=internal)
    columns = list(frame.columns)
    shown = {v: k for k, v in internal.items()} if columns != header else {}

    def _error(column, message, row):
        return InputError(file, shown.get(column, column), message, row=row)

    def named(column):
        return shown.get(column, column)

    if "FileName" not in columns:
        raise _error("FileName", f"missing column (a prediction file starts {named('FileName')},...)", row=1)
    attributes = list(vocabulary.attribute_names)
    if "EmoClass" in columns:
        task, allowed = TASK_CATEGORICAL, ["FileName", "EmoClass"] + list(vocabulary.prob_columns)
    elif any(a in columns for a in attributes):
        task, allowed = TASK_ATTRIBUTES, ["FileName"] + attributes
        missing = [a for a in attributes if a not in columns]
        if missing:
            raise _error(missing[0], f"missing attribute column (vocabulary {vocabulary.name} has "
                                     f"{', '.join(attributes)})", row=1)
    else:
        wanted = f"{vocabulary.class_column}/EmoClass" + (f" or {', '.join(attributes)}" if attributes else "")
        raise _error(None, f"neither a categorical nor an attribute prediction file: no column {wanted}", row=1)
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise _error(unknown[0], f"unknown column; a {task} file of vocabulary {vocabulary.name} has "
                                 f"{', '.join(named(c) for c in allowed)}", row=1)
    empty = frame["FileName"] == ""
    if empty.any():
        raise _error("FileName", "empty file name", row=int(np.flatnonzero(empty)[0]) + 2)
    repeated = frame["FileName"].duplicated()
    if repeated.any():
        raise _error("FileName", f"duplicate file {quoted(frame['FileName'][repeated].iloc[0])}",
                     row=int(np.flatnonzero(repeated)[0]) + 2)
    out = frame[["FileName"]].copy()
    if task == TASK_CATEGORICAL:
        bad = ~frame["EmoClass"].isin(vocabulary.classes)
        if bad.any():
            raise _error("EmoClass", f"class {quoted(frame['EmoClass'][bad].iloc[0])} is not one of the "
                                     f"classes of {vocabulary.name} ({' '.join(vocabulary.classes)})",
                         row=int(np.flatnonzero(bad)[0]) + 2)
        out["EmoClass"] = frame["EmoClass"].astype(object)
    numbers = [c for c in columns if c not in ("FileName", "EmoClass")]
    for column in numbers:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            raise _error(column, f"{quoted(frame[column].iloc[np.flatnonzero(bad)[0]])} is not a number",
                         row=int(np.flatnonzero(bad)[0]) + 2)
        if column.startswith("P_") and ((values < 0) | (values > 1)).any():
            row = int(np.flatnonzero((values < 0) | (values > 1))[0])
            raise _error(column, f"probability {values[row]:g} outside [0, 1]", row=row + 2)
        out[column] = values
    probs = [c for c in numbers if c.startswith("P_")]
    if probs:
        total = out[probs].sum(axis=1).to_numpy()
        off = np.abs(total - 1.0) > _PROB_TOLERANCE * max(1, len(probs))
        if len(probs) == len(vocabulary.classes) and off.any():
            row = int(np.flatnonzero(off)[0])
            raise _error(None, f"class probabilities sum to {total[row]:.6g}, not 1", row=row + 2)
    return task, out
