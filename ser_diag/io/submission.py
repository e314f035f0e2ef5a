"""Checking a submission before it is sent (:func:`validate_submission`), against the labels of
a split or a list of expected file names (:func:`_read_file_list`)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, warn
from ser_diag.io.corpora import _prediction_file, is_audformat, read_corpus_labels, with_columns
from ser_diag.io.audformat_db import read_database
from ser_diag.io.labels import read_labels
from ser_diag.io.predictions import _csv_files, _read_prediction_file, out_of_range
from ser_diag.io.reading import (
    _FILE_NAME_COLUMNS,
    _N_EXAMPLES,
    _decode,
    _first_bad,
    _more,
    _read_bytes,
    _row_of,
)
from ser_diag.schema import CLASS_CODES, TASK_ATTRIBUTES, TASK_CATEGORICAL, TASKS
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def _is_in(names: pd.Series, allowed) -> pd.Series:
    """``names.isin(allowed)`` through a hash index (``isin`` on arrow strings is slow for 10^5 names)."""
    return pd.Series(pd.Index(pd.unique(pd.Series(allowed))).get_indexer(names) >= 0, index=names.index)


def _read_file_list(path: Path) -> dict[str, int]:
    """Expected file names -> line number; blank lines, ``#`` comments and a header are skipped."""
    names: dict[str, int] = {}
    for line, text in enumerate(_decode(path, _read_bytes(path)).splitlines(), start=1):
        name = text.split(",")[0].strip()
        if name and not name.startswith("#") and name not in _FILE_NAME_COLUMNS:
            names.setdefault(name, line)
    if not names:
        raise InputError(path, None, "no file names in the file list")
    return names


def validate_submission(predictions_path: str | os.PathLike, labels=None, file_list=None,
                        split: str | None = "Development", strict: bool = False,
                        vocabulary: Vocabulary | None = None, target: str | None = None, attributes=None) -> str:
    """Check a submission before sending it; return a one-line ``"OK: ..."`` or raise InputError.

    Checks the format (layout by header), one row per expected file, no duplicates, no files
    outside the expected set, known class codes, finite attributes. The expected set is every
    file of ``split`` in ``labels`` (corpus root, CSV or a labels frame) -- for the categorical
    task the ``O``/``X`` files may be present but are not required -- or the names in
    ``file_list`` (one per line). With neither, only the format is checked.

    Attribute predictions outside [1, 7] (model output the challenge scores as given) and an
    ``EmoClass`` that is not the argmax of ``P_*`` are :class:`~ser_diag.errors.InputWarning` s;
    ``strict=True`` makes every such warning an InputError.

    Another corpus (a ``vocabulary`` other than MSP-Podcast's, or ``labels`` an audformat
    database; ``target``/``attributes`` as for :func:`ser_diag.io.load_corpus`): the files use
    the corpus' own column names and are checked by :func:`_validate_corpus`.
    """
    corpus = (vocabulary is not None and vocabulary != MSP_PODCAST) or (
        labels is not None and not isinstance(labels, pd.DataFrame) and is_audformat(labels))
    if corpus:
        def check():
            return _validate_corpus(predictions_path, labels, file_list, split, vocabulary, target, attributes)
    else:
        if target is not None or attributes is not None:
            raise TypeError("target, attributes: only for an audformat database or a corpus vocabulary")

        def check():
            return _validate_submission(predictions_path, labels, file_list, split)
    if not strict:
        return check()
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        try:
            return check()
        except InputWarning as warning:
            raise warning.as_error(" (an error with --strict)") from None


def _validate_submission(predictions_path, labels, file_list, split) -> str:
    if labels is not None and file_list is not None:
        raise ValueError("give labels or file_list, not both")
    path = Path(predictions_path)
    if path.is_dir():
        files = _csv_files(path)
        if not files:
            raise InputError(path, None, "no *.csv prediction files in this folder")
    else:
        files = [path]
    expected = None
    if labels is not None:
        frame = labels if isinstance(labels, pd.DataFrame) else read_labels(labels, split=split)
        source = frame.attrs.get("source", "labels")
        expected, scope = _expected_files(frame, CLASS_CODES, split)
        allowed = expected[TASK_ATTRIBUTES]

        def locate(name: str) -> int | None:
            return _row_of(source, name)
    elif file_list is not None:
        source = Path(file_list)
        listed = _read_file_list(source)
        allowed = pd.Index(sorted(listed))
        expected = dict.fromkeys(TASKS, allowed)
        scope = f"file list {source}"
        locate = listed.get
    reports, seen = [], {}
    for file in files:
        frame, tasks, name_column = _read_prediction_file(file)
        if TASK_ATTRIBUTES in tasks and (found := out_of_range(frame)) is not None:
            warn(InputWarning(file, found["column"], f"{found['count']} attribute predictions outside [1, 7] "
                              f"(min {found['min']:.4g}, max {found['max']:.4g}); allowed and scored as given "
                              "(validate --strict makes this an error)", row=int(found["row"])))
        for task in tasks:
            _first_file_of(task, file, seen)
        if expected is not None:
            extra = ~_is_in(frame["FileName"], allowed)
            if extra.any():
                line, count = _first_bad(frame, extra)
                raise InputError(file, name_column, f"{quoted(frame.at[line, 'FileName'])} is not an expected "
                                 f"file ({scope}){_more(count)}", row=line)
            for task in tasks:
                _check_none_missing(file, name_column, frame, expected[task], scope, locate)
        reports.append(f"{file}: {len(frame)} rows, task {' + '.join(tasks)}")
    status = "all expected files present" if expected is not None else "format only (no expected files given)"
    return f"OK: {'; '.join(reports)}, {status}"


def _expected_files(labels: pd.DataFrame, classes, split: str | None) -> tuple[dict, str]:
    """The files each task must predict (every labelled file for attributes, those of a scored
    class for categorical), sorted, and the scope errors name (the labels' split and source)."""
    source = labels.attrs.get("source", "labels")
    expected = {TASK_ATTRIBUTES: pd.Index(labels["FileName"]).sort_values(),
                TASK_CATEGORICAL: pd.Index(labels.loc[labels["EmoClass"].isin(classes), "FileName"]).sort_values()}
    return expected, f"labels of split {split} ({source})" if split else f"labels ({source})"


def _first_file_of(task: str, file: Path, seen: dict) -> None:
    """Record ``file`` as the one file of ``task``; a second one is an InputError."""
    if task in seen:
        raise InputError(file, None, f"a second {task} file (the first is {seen[task]})", row=1)
    seen[task] = file


def _check_none_missing(file: Path, column: str, frame: pd.DataFrame, expected: pd.Index, scope: str,
                        locate=None) -> None:
    """An InputError when ``frame`` lacks some of the ``expected`` files (``locate``: a missing
    file's row in the labels or file list, named when known)."""
    missing = expected.difference(frame["FileName"])
    if not len(missing):
        return
    where = locate(missing[0]) if locate is not None else None
    examples = ", ".join(quoted(f) for f in missing[:_N_EXAMPLES])
    raise InputError(file, column, f"{len(missing)} of {len(expected)} expected files missing, e.g. {examples} "
                                   f"({scope}{f', row {where}' if where else ''})")


def _validate_corpus(predictions_path, labels, file_list, split, vocabulary, target, attributes) -> str:
    """:func:`validate_submission` for another corpus: the vocabulary's column names (an
    audformat database's: ``file``, the schemes), class codes and scales."""
    if labels is not None and file_list is not None:
        raise ValueError("give labels or file_list, not both")
    path = Path(predictions_path)
    files = _csv_files(path) if path.is_dir() else [path]
    if not files:
        raise InputError(path, None, "no *.csv prediction files in this folder")
    expected = None
    if labels is not None and is_audformat(labels):
        frame, voc = read_database(labels, split=split, vocabulary=vocabulary, target=target, attributes=attributes)
    elif labels is not None:
        voc = with_columns(vocabulary, target, attributes)
        frame = read_corpus_labels(labels, voc, split=split)
    else:
        voc, frame = with_columns(vocabulary, target, attributes), None
    if frame is not None:
        expected, scope = _expected_files(frame, voc.classes, frame.attrs.get("split"))
    elif file_list is not None:
        listed = _read_file_list(Path(file_list))
        expected = dict.fromkeys(TASKS, pd.Index(sorted(listed)))
        scope = f"file list {file_list}"
    known = expected[TASK_ATTRIBUTES] if expected is not None else None
    reports, seen = [], {}
    for file in files:
        frame, tasks = _prediction_file(file, voc, known, scope, intersection=False, hint="")
        if TASK_ATTRIBUTES in tasks:
            ranges = [voc.attribute_ranges[a] for a in voc.attribute_names]
            found = out_of_range(frame, list(voc.attribute_names), ranges)
            if found is not None:
                scale = ", ".join(f"{a} [{lo:g}, {hi:g}]" for a, (lo, hi) in zip(voc.attribute_names, ranges))
                warn(InputWarning(file, found["column"], f"{found['count']} attribute predictions outside their "
                                  f"scale ({scale}; min {found['min']:.4g}, max {found['max']:.4g}); allowed and "
                                  "scored as given (validate --strict makes this an error)", row=int(found["row"])))
        for task in tasks:
            _first_file_of(task, file, seen)
            if expected is not None:
                _check_none_missing(file, voc.file_column, frame, expected[task], scope)
        reports.append(f"{file}: {len(frame)} rows, task {' + '.join(tasks)}")
    status = "all expected files present" if expected is not None else "format only (no expected files given)"
    return f"OK: {'; '.join(reports)}, {status} (vocabulary {voc.name})"
