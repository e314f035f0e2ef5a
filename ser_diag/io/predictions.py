"""Prediction files: the three layouts, system folders, reading every system.

Layouts (detected by header): ``FileName,EmoClass`` (+ ``P_A..P_N``), ``FileName,EmoAct,EmoVal,
EmoDom``, and the baseline's ``Filename,Prediction`` (8 logits). One validation path,
:func:`_check_prediction_table`, checks a file whichever reader gave its table: a regular file
is read by the typed reader straight into numbers (:func:`_typed_prediction_file`), and when
it is irregular or a check fails there, the text reader reads it again and the same checks
name the line (:func:`_read_prediction_file`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, warn
from ser_diag.io.corpus import is_synthetic
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary
from ser_diag.io.reading import (
    _check_codes,
    _check_not_empty,
    _check_unique,
    _first_bad,
    _more,
    _not_a_file,
    _numbers,
    _read_bytes,
    _read_table,
    _require_columns,
    _typed_table,
    class_index,
)
from ser_diag.schema import (
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTE_PREDICTION_COLUMNS,
    ATTRIBUTES,
    BASELINE_PREDICTION_COLUMNS,
    CATEGORICAL_PREDICTION_COLUMNS,
    CLASS_CODES,
    PROB_COLUMNS,
    TASK_ATTRIBUTES,
    TASK_CATEGORICAL,
    TASKS,
)

#: Tolerance on a probability row sum (files store about 6 significant digits).
PROB_SUM_TOLERANCE = 1e-3
#: How far a probability may lie outside [0, 1] (rounding in the file) and still be read.
PROB_RANGE_TOLERANCE = 1e-6
_PREDICTION_VALUE_COLUMNS = ("EmoClass",) + PROB_COLUMNS + ATTRIBUTES
_TASK_STEMS = (TASK_CATEGORICAL, TASK_ATTRIBUTES)
_TASK_SUFFIX = re.compile(r"[_.-](categorical|attributes)$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------
# One prediction file: read by either reader, checked by one path
# --------------------------------------------------------------------------------------------

def _check_prediction_table(table: pd.DataFrame, path: Path, argmax: bool = True
                            ) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """Validate one prediction file's table (from :func:`~ser_diag.io.reading._read_table` or
    :func:`~ser_diag.io.reading._typed_table`), layout detected by header.

    Returns (frame with ``FileName`` + value columns, index = line numbers; tasks it gives;
    name of its file-name column). ``argmax``: warn here when ``EmoClass`` is not the most
    probable class (:func:`_check_argmax`), else the caller does.
    """
    columns = set(table.columns)
    if set(BASELINE_PREDICTION_COLUMNS) <= columns and "FileName" not in columns:
        _check_not_empty(table, path, "Filename")
        _check_unique(table, path, "Filename")
        return _read_baseline(table, path), (TASK_CATEGORICAL,), "Filename"
    has_class = "EmoClass" in columns
    has_attributes = any(a in columns for a in ATTRIBUTES)
    if "FileName" not in columns or not (has_class or has_attributes):
        raise InputError(path, None, f"unrecognised header {quoted(','.join(table.columns), 120)}; expected "
                         f"{','.join(CATEGORICAL_PREDICTION_COLUMNS)}[,P_A..P_N], "
                         f"{','.join(ATTRIBUTE_PREDICTION_COLUMNS)} or "
                         f"{','.join(BASELINE_PREDICTION_COLUMNS)}", row=1)
    _check_not_empty(table, path, "FileName")
    _check_unique(table, path, "FileName")
    out = {"FileName": table["FileName"].array}   # columns of the frame, built once at the end
    tasks = []
    if has_class:
        _check_codes(table, path, "EmoClass", CLASS_CODES)
        out["EmoClass"] = table["EmoClass"].array
        if any(c in columns for c in PROB_COLUMNS):
            _require_columns(table, path, PROB_COLUMNS)
            for column in PROB_COLUMNS:
                out[column] = _numbers(table, path, column, 0.0, 1.0, tolerance=PROB_RANGE_TOLERANCE).to_numpy()
            total = pd.DataFrame({c: out[c] for c in PROB_COLUMNS}, index=table.index).sum(axis=1)
            off = (total - 1.0).abs() > PROB_SUM_TOLERANCE
            if off.any():
                line, count = _first_bad(table, off)
                raise InputError(path, "P_A..P_N", f"probabilities sum to {total.at[line]:.6g}, not 1"
                                 f"{_more(count)}", row=line)
            if argmax:
                _check_argmax(pd.DataFrame(out, index=table.index, copy=False), path)
        tasks.append(TASK_CATEGORICAL)
    if has_attributes:
        _require_columns(table, path, ATTRIBUTES)
        for attribute in ATTRIBUTES:  # any finite value: outside 1-7 is model output, warned about
            out[attribute] = _numbers(table, path, attribute, -np.inf, np.inf).to_numpy()
        tasks.append(TASK_ATTRIBUTES)
    return pd.DataFrame(out, index=table.index, copy=False), tuple(tasks), "FileName"


def _typed_prediction_file(path: Path, data: bytes) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
    """A regular ``FileName,EmoClass[,P_A..P_N]`` or ``FileName,EmoAct,EmoVal,EmoDom`` file read
    by the typed reader straight into numbers (~9x faster than text cells), then validated by
    :func:`_check_prediction_table`: the frame and tasks the text path gives.

    ``None`` when the typed reader declines the file (not ASCII, quotes, carriage returns, blank
    lines, cells to strip, empty numbers, ...) or a check fails: the text path then reads the
    file again, and the same checks give their line-exact messages from its text cells.
    """
    table = _typed_table(data, strings=("FileName", "EmoClass"), numbers=PROB_COLUMNS + ATTRIBUTES)
    if table is None:
        return None
    try:
        frame, tasks, _ = _check_prediction_table(table, path, argmax=False)
    except InputError:
        return None
    return frame, tasks


def _read_prediction_file(path: Path) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """One prediction CSV, layout detected by header.

    Returns (frame with ``FileName`` + value columns, index = line numbers; tasks it gives;
    name of its file-name column).
    """
    data = _read_bytes(path)
    typed = _typed_prediction_file(path, data)
    if typed is not None:
        frame, tasks = typed
        if TASK_CATEGORICAL in tasks and "P_A" in frame.columns:
            _check_argmax(frame, path)
        return frame, tasks, "FileName"
    return _check_prediction_table(_read_table(path, data), path)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _read_baseline(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``Filename,Prediction`` with 8 logits (A,S,H,U,F,D,C,N order) -> argmax class and softmax."""
    text = table["Prediction"].str.strip("[] ")
    n_fields = text.str.count(",") + 1
    wrong = (n_fields != len(CLASS_CODES)) | (text == "")
    if wrong.any():
        line, count = _first_bad(table, wrong)
        raise InputError(path, "Prediction", f"expected {len(CLASS_CODES)} logits joined by ', ', found "
                         f"{quoted(table.at[line, 'Prediction'])}{_more(count)}", row=line)
    fields = text.str.split(",", expand=True)
    fields.columns = list(CLASS_CODES)
    logits = np.column_stack([pd.to_numeric(fields[c].str.strip(), errors="coerce").to_numpy(dtype="float64")
                              for c in CLASS_CODES])
    bad = ~np.isfinite(logits).all(axis=1)
    if bad.any():
        line, count = _first_bad(table, bad)
        raise InputError(path, "Prediction", f"logits {quoted(table.at[line, 'Prediction'])} are not all finite "
                         f"numbers{_more(count)}", row=line)
    out = pd.DataFrame({"FileName": table["Filename"],
                        "EmoClass": np.asarray(CLASS_CODES)[logits.argmax(axis=1)]}, index=table.index)
    out[list(PROB_COLUMNS)] = _softmax(logits)
    return out


#: Largest gap between the probability of ``EmoClass`` and the highest ``P_*`` still counted as
#: agreement (files store about 6 significant digits).
ARGMAX_TOLERANCE = 1e-6


def _check_argmax(frame: pd.DataFrame, path: Path) -> None:
    """Warn when ``EmoClass`` is not the most probable class of ``P_A..P_N`` (ties agree): a
    submission whose label column and probabilities disagree usually has a bug."""
    probs = frame[list(PROB_COLUMNS)].to_numpy(dtype="float64")
    chosen = probs[np.arange(len(frame)), class_index(frame["EmoClass"])]
    differs = chosen < probs.max(axis=1) - ARGMAX_TOLERANCE
    if differs.any():
        line, count = _first_bad(frame, differs)
        top = CLASS_CODES[int(probs[np.argmax(differs)].argmax())]
        warn(InputWarning(path, "EmoClass", f"EmoClass is not the most probable class of P_A..P_N in {count} "
                          f"of {len(frame)} rows (here {quoted(frame.at[line, 'EmoClass'])}, highest P_{top}); "
                          "EmoClass is scored as given", row=line))


def out_of_range(values: pd.DataFrame, columns=ATTRIBUTES, ranges=None) -> dict | None:
    """Attribute values outside their scale in ``columns`` of ``values`` (``ranges``: each
    column's ``(low, high)``, default [1, 7]): ``dict(count, min, max, row, column)`` (``row``:
    index label of the first such row) or None when all are inside."""
    found = None
    ranges = ranges or [(ATTRIBUTE_MIN, ATTRIBUTE_MAX)] * len(columns)
    for column, (low, high) in zip(columns, ranges):   # one column at a time: no copy of the whole block
        value = values[column].to_numpy(dtype="float64")
        outside = (value < low) | (value > high)
        if not outside.any():
            continue
        row, chosen = int(np.argmax(outside)), value[outside]
        if found is None:
            found = {"count": 0, "min": np.inf, "max": -np.inf, "first": row, "column": column}
        elif row < found["first"]:
            found.update(first=row, column=column)
        found.update(count=found["count"] + int(outside.sum()), min=min(found["min"], float(chosen.min())),
                     max=max(found["max"], float(chosen.max())))
    if found is None:
        return None
    return {"count": found["count"], "min": found["min"], "max": found["max"],
            "row": values.index[found["first"]], "column": found["column"]}


# --------------------------------------------------------------------------------------------
# System folders and every system
# --------------------------------------------------------------------------------------------

def _entries(folder: Path) -> list[Path]:
    """Visible entries of ``folder`` (names starting with ``.`` are skipped), sorted."""
    try:
        return sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise InputError(folder, None, f"cannot list this folder ({err.strerror})") from None


def _csv_files(folder: Path) -> list[Path]:
    """The ``*.csv`` files of ``folder``; a ``*.csv`` that is a folder, a broken link or a link
    loop is an InputError (the system would silently lose a task)."""
    files = [p for p in _entries(folder) if p.suffix.lower() == ".csv"]
    for file in files:
        if not file.is_file():
            raise InputError(file, None, _not_a_file(file))
    return files


def _check_no_deeper(folder: Path) -> None:
    """A folder without CSV files whose sub-folder has some: the system folder is one level too deep."""
    for inner in _entries(folder):
        if inner.is_dir() and any(p.suffix.lower() == ".csv" for p in _entries(inner)):
            raise InputError(folder, None, f"no prediction CSV files here, but its sub-folder "
                             f"{quoted(inner.name)} has some: put a system's categorical.csv/attributes.csv "
                             "directly in its folder (predictions/<system>/categorical.csv)")


def _system_name(file: Path) -> str:
    """``sysA.csv`` / ``sysA_categorical.csv`` -> ``sysA``; ``sysA/categorical.csv`` -> ``sysA``."""
    if file.stem.lower() in _TASK_STEMS:
        return file.absolute().parent.name
    return _TASK_SUFFIX.sub("", file.stem) or file.stem


def _system_files(name: str, files: list[Path]):
    """Yield ``(file, frame, tasks)`` for each prediction file of system ``name``; a second file
    for a task already read is an :class:`InputError`."""
    sources: dict[str, Path] = {}
    for file in files:
        frame, tasks, _ = _read_prediction_file(file)
        for task in tasks:
            if task in sources:
                raise InputError(file, None, f"a second {task} prediction file for system {name!r} "
                                 f"(the first is {sources[task]})", row=1)
            sources[task] = file
        yield file, frame, tasks
        del frame  # one file's frame alive at a time while the next is read


def _read_system(name: str, files: list[Path]) -> tuple[pd.DataFrame, dict[str, str]]:
    frames, sources = [], {}
    for file, frame, tasks in _system_files(name, files):
        sources.update({task: str(file) for task in tasks})
        frames.append(frame.reset_index(drop=True))
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.merge(other, on="FileName", how="outer")
    frame.insert(0, "system", name)
    return frame, sources


def _predictions_frame(systems: list[tuple[pd.DataFrame, dict[str, str]]], path: Path) -> pd.DataFrame:
    # sorted by system then FileName one system at a time (most are sorted already: an outer merge
    # sorts its keys), so no sorted copy of the whole frame is made next to it
    order = sorted(range(len(systems)), key=lambda i: str(systems[i][0]["system"].iat[0]))
    parts = [f if f["FileName"].is_monotonic_increasing else f.sort_values("FileName", kind="stable")
             for f, _ in (systems[i] for i in order)]
    frame = pd.concat(parts, ignore_index=True)
    del parts
    columns = ["system", "FileName"] + [c for c in _PREDICTION_VALUE_COLUMNS if c in frame.columns]
    frame = frame.loc[:, columns]
    frame.attrs.update(path=str(path), sources={str(f["system"].iat[0]): s for f, s in systems},
                       synthetic=is_synthetic(path))
    return frame


def read_predictions(path: str | os.PathLike, system: str | None = None) -> pd.DataFrame:
    """One system's predictions: a CSV file, or a folder of CSVs (``categorical.csv``,
    ``attributes.csv`` or any name; each file's layout is detected by its header).

    Layouts: ``FileName,EmoClass`` (+ ``P_A..P_N``, each in [0, 1], rows summing to 1),
    the baseline's ``Filename,Prediction`` (8 logits; ``EmoClass`` = argmax, ``P_*`` = softmax),
    ``FileName,EmoAct,EmoVal,EmoDom`` (1-7). ``system`` defaults to the file stem (without a
    ``_categorical``/``_attributes`` suffix), or the folder name for ``categorical.csv`` /
    ``attributes.csv`` or a folder. Returns the tidy ``predictions`` frame; ``attrs["sources"]``
    maps ``{system: {task: file}}``.
    """
    path = Path(path)
    if path.is_dir():
        files = _csv_files(path)
        if not files:
            _check_no_deeper(path)
            raise InputError(path, None, "no *.csv prediction files in this folder")
        name = system or path.absolute().name
    elif path.is_file():
        files, name = [path], system or _system_name(path)
    else:
        raise InputError(path, None, _not_a_file(path) if path.is_symlink() else "no such file or folder")
    return _predictions_frame([_read_system(name, files)], path)


def read_systems(path: str | os.PathLike) -> pd.DataFrame:
    """Predictions of every system under ``path`` as one tidy frame.

    ``path`` is a directory of systems -- one sub-folder per system (name = folder name) and/or
    files directly in it (``sysB.csv`` or the pair ``sysB_categorical.csv`` +
    ``sysB_attributes.csv``) -- or one system's file or folder (see :func:`read_predictions`).
    """
    path = Path(path)
    if not path.is_dir():
        return read_predictions(path)
    return _predictions_frame([_read_system(name, files) for name, files in _system_groups(path)], path)


def _system_groups(path: Path) -> list[tuple[str, list[Path]]]:
    """``(system, its CSV files)`` under the folder ``path`` (see :func:`read_systems`), sorted by
    system name; folders without CSVs and entries that are not files are warned about."""
    groups: dict[str, list[Path]] = {}
    for entry in _entries(path):
        if entry.is_dir():
            if files := _csv_files(entry):
                groups[entry.name] = files
            else:
                _check_no_deeper(entry)
                warn(InputWarning(entry, None, "a folder without prediction CSV files; ignored"))
        elif not entry.is_file():
            warn(InputWarning(entry, None, f"{_not_a_file(entry)}; ignored"))
    folders = set(groups)
    for file in _csv_files(path):
        name = _system_name(file)
        if name in folders:
            raise InputError(file, None, f"system {name!r} is given both by this file and by the folder "
                             f"{path / name}")
        groups.setdefault(name, []).append(file)
    if not groups:
        raise InputError(path, None, "no prediction CSV files in this folder or its sub-folders")
    return sorted(groups.items())


def _prediction_groups(path: Path) -> list[tuple[str, list[Path]]]:
    """``(system, files)`` for a predictions folder (:func:`read_systems`) or one system's file."""
    if path.is_dir():
        return _system_groups(path)
    if path.is_file():
        return [(_system_name(path), [path])]
    raise InputError(path, None, _not_a_file(path) if path.is_symlink() else "no such file or folder")


def _task_columns(task: str, vocabulary: Vocabulary = MSP_PODCAST) -> list[str]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return ["EmoClass"] if task == TASK_CATEGORICAL else list(vocabulary.attribute_names)


def submitted(predictions: pd.DataFrame, task: str, vocabulary: Vocabulary = MSP_PODCAST) -> pd.Series:
    """Rows of a predictions frame (:func:`read_systems`) that carry a prediction for ``task``
    (``EmoClass`` for categorical; all of the vocabulary's attributes, MSP-Podcast's ``EmoAct``,
    ``EmoVal``, ``EmoDom``, for attributes)."""
    columns = _task_columns(task, vocabulary)
    if not columns or not set(columns) <= set(predictions.columns):
        return pd.Series(False, index=predictions.index)
    return predictions[columns].notna().all(axis=1)
