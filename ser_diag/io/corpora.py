"""Any emotion corpus: labels and predictions read with a :class:`~ser_diag.vocabulary.Vocabulary`.

Two routes lead into the same frames as MSP-Podcast's (:mod:`ser_diag.schema`): a plain CSV
route (labels and prediction CSVs whose columns a vocabulary names) and an audformat database
(:mod:`ser_diag.io.audformat_db`). Both rename the corpus' columns to the internal ones
(``FileName``, ``EmoClass``, ``SpkrID``, ``Gender``, ``Split_Set``; attributes keep the
vocabulary's names), keep the corpus' own class codes (merged codes resolved: IEMOCAP's
``excited`` is read as ``happy``; excluded codes kept, so their files still score the
attributes), and merge each task with :func:`ser_diag.io.merge` under the vocabulary.

The CSV route (:func:`read_corpus_labels`): one labels CSV with the vocabulary's
``file_column``, ``class_column`` and attribute columns (required) and its speaker, gender and
split columns (optional: a missing one is ``<NA>``). Predictions (:func:`read_corpus_predictions`,
both routes): one CSV, or a folder with one sub-folder per system (``categorical.csv`` /
``attributes.csv``, as for MSP-Podcast), with the corpus' own names: the file column, the class
column (+ optional ``P_<code>``) and/or the attribute columns. Every bad cell is one
:class:`~ser_diag.errors.InputError` naming file, row (header = line 1) and column; attribute
predictions outside the scale are model output: scored as given, warned about once.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, warn
from ser_diag.io.audformat_db import DEFAULT_SPLIT, GENDER_WORDS, read_database
from ser_diag.io.corpus import is_synthetic
from ser_diag.io.merge import merge
from ser_diag.io.predictions import (
    ARGMAX_TOLERANCE,
    PROB_RANGE_TOLERANCE,
    PROB_SUM_TOLERANCE,
    _not_a_file,
    _prediction_groups,
    submitted,
)
from ser_diag.io.reading import (
    _check_codes,
    _check_not_empty,
    _check_unique,
    _first_bad,
    _more,
    _numbers,
    _read_table,
    _require_columns,
)
from ser_diag.schema import GENDERS, TASK_ATTRIBUTES, TASK_CATEGORICAL, TASKS
from ser_diag.vocabulary import Vocabulary

__all__ = ["is_audformat", "load_corpus", "read_corpus_labels", "read_corpus_predictions", "with_columns"]

_UNKNOWN_WORDS = ("", "unknown", "na", "n/a", "none")
#: The internal label columns every corpus is read into (attributes keep the vocabulary's names).
_INTERNAL = ("FileName", "EmoClass", "SpkrID", "Gender", "Split_Set")
_STR = "str"


def is_audformat(path: str | os.PathLike) -> bool:
    """``path`` is an audformat database: a folder holding ``db.yaml``, or that file."""
    path = Path(path)
    return (path.is_dir() and (path / "db.yaml").is_file()) or (path.name == "db.yaml" and path.is_file())


def with_columns(vocabulary: Vocabulary, target: str | None = None, attributes=None,
                 source: str = "vocabulary") -> Vocabulary:
    """``vocabulary`` with ``target`` as its class column and only the ``attributes`` named
    (each one of its attributes, by name or display name); an unknown one is an InputError."""
    changes = {}
    if target is not None:
        changes["class_column"] = target
    if attributes is not None:
        chosen = []
        for name in attributes:
            found = [a for a in vocabulary.attributes if name in (a.name, a.display)]
            if not found:
                raise InputError(source, name, f"not an attribute of vocabulary {vocabulary.name} "
                                 f"({', '.join(vocabulary.attribute_names) or 'it has none'})")
            chosen.append(found[0])
        changes["attributes"] = tuple(chosen)
    try:
        return dataclasses.replace(vocabulary, **changes) if changes else vocabulary
    except ValueError as exc:
        raise InputError(source, target, str(exc)) from None


# --------------------------------------------------------------------------- labels (CSV route)

def _labels_csv(path: Path) -> Path:
    if path.is_dir():
        for name in ("labels.csv", "labels_consensus.csv"):
            if (path / name).is_file():
                return path / name
        raise InputError(path / "labels.csv", None, "no such file (expected a labels CSV or its folder)")
    return path


def _optional_text(table: pd.DataFrame, column: str | None) -> pd.Series:
    """A metadata column as text (empty and ``Unknown`` cells <NA>), all <NA> when absent."""
    if column is None or column not in table:
        return pd.Series(pd.array([None] * len(table), dtype=_STR), index=table.index)
    text = table[column].astype(_STR)
    return text.where(~text.str.lower().isin(_UNKNOWN_WORDS))


def _genders(table: pd.DataFrame, file: Path, column: str | None) -> pd.Series:
    """``Female`` / ``Male`` / <NA> (see :data:`GENDER_WORDS`); anything else an InputError."""
    text = _optional_text(table, column)
    words = text.str.lower()
    known = words.isin(list(GENDER_WORDS)) | text.isna()
    if not known.all():
        line, count = _first_bad(table, ~known)
        raise InputError(file, column, f"unknown gender {quoted(table.at[line, column])}; expected "
                         f"{' or '.join(GENDERS)} (or empty / Unknown){_more(count)}", row=line)
    return pd.Series(pd.array(words.map(GENDER_WORDS), dtype=_STR), index=table.index)


def read_corpus_labels(path: str | os.PathLike, vocabulary: Vocabulary, split: str | None = None) -> pd.DataFrame:
    """Read and validate a corpus' labels CSV (``path``: the file, or a folder holding
    ``labels.csv``) with ``vocabulary``'s column names into the internal labels frame
    (``FileName, EmoClass, <attributes>, SpkrID, Gender, Split_Set, <other columns>``).

    Every row is checked before ``split`` filters (None: every file; see
    :data:`DEFAULT_SPLIT`): unique non-empty file names, class codes of the vocabulary
    (``label_codes``: scored, excluded, merged; merged ones resolved), attributes finite on
    their scale, genders, split names (the vocabulary's, when it lists any).
    ``attrs``: ``source``, ``split``, ``synthetic``.
    """
    file = _labels_csv(Path(path))
    table = _read_table(file)
    voc = vocabulary
    _require_columns(table, file, [voc.file_column, voc.class_column, *voc.attribute_names])
    _check_not_empty(table, file, voc.file_column)
    _check_unique(table, file, voc.file_column)
    _check_not_empty(table, file, voc.class_column)
    _check_codes(table, file, voc.class_column, voc.label_codes)
    labels = {"FileName": table[voc.file_column].astype(_STR),
              "EmoClass": table[voc.class_column].replace(dict(voc.merged)).astype(_STR)}
    for attribute in voc.attributes:
        labels[attribute.name] = _numbers(table, file, attribute.name, attribute.low, attribute.high)
    labels["SpkrID"] = _optional_text(table, voc.speaker_column)
    labels["Gender"] = _genders(table, file, voc.gender_column)
    if voc.split_column in table and voc.splits:
        _check_codes(table, file, voc.split_column, voc.splits + ("",))
    labels["Split_Set"] = _optional_text(table, voc.split_column)
    used = {voc.file_column, voc.class_column, voc.speaker_column, voc.gender_column, voc.split_column,
            *voc.attribute_names}
    for column in table.columns:
        if column not in used and column not in labels and not column.startswith("Unnamed: "):
            labels[column] = table[column]
    frame = pd.DataFrame(labels, index=table.index)
    frame, split = _select_split(frame, table, file, voc, split)
    frame = frame.reset_index(drop=True)
    frame.attrs.update(source=str(file), split=split, synthetic=is_synthetic(file))
    return frame


def _select_split(frame: pd.DataFrame, table: pd.DataFrame, file: Path, voc: Vocabulary,
                  split: str | None) -> tuple[pd.DataFrame, str | None]:
    """The rows of ``split`` and the split scored (None: every file)."""
    if split is None:
        return frame, None
    present = sorted(frame["Split_Set"].dropna().unique())
    known = list(voc.splits) + [s for s in present if s not in voc.splits]
    if split not in known or voc.split_column not in table:
        if split == DEFAULT_SPLIT:
            return frame, None
        if voc.split_column not in table:
            raise InputError(file, voc.split_column, f"split {split!r} asked for, but the labels have no "
                             f"{voc.split_column!r} column; leave the split out to score every file", row=1)
        raise InputError(file, voc.split_column, f"no split {split!r}; the corpus has "
                         f"{', '.join(known) or 'no split names'}", row=1)
    chosen = frame.loc[(frame["Split_Set"] == split).to_numpy()]
    if chosen.empty:
        raise InputError(file, voc.split_column, f"no rows of split {split!r} (the file has "
                         f"{', '.join(present) or 'none'})")
    return chosen, split


# --------------------------------------------------------------------------- predictions (both routes)

def _prediction_file(file: Path, voc: Vocabulary, known: pd.Index | None, scope: str, intersection: bool,
                     hint: str = "; use --intersection (intersection=True) to score only the files both have"
                     ) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """One prediction CSV in the corpus' names -> (frame in internal names, its tasks); a file
    not in ``known`` (unless ``intersection``) is an InputError ending with ``hint``."""
    table = _read_table(file)
    columns = set(table.columns)
    has_class = voc.class_column in columns
    has_attributes = any(a in columns for a in voc.attribute_names)
    if voc.file_column not in columns or not (has_class or has_attributes):
        wanted = [f"{voc.file_column},{voc.class_column}[,{voc.prob_columns[0]}..{voc.prob_columns[-1]}]"]
        if voc.attributes:
            wanted.append(",".join((voc.file_column,) + voc.attribute_names))
        raise InputError(file, None, f"unrecognised header {quoted(','.join(table.columns), 120)}; expected "
                         f"{' or '.join(wanted)} (vocabulary {voc.name})", row=1)
    _check_not_empty(table, file, voc.file_column)
    _check_unique(table, file, voc.file_column)
    names = table[voc.file_column].astype(_STR)
    if known is not None and not intersection:
        unknown = pd.Index(known).get_indexer(names) < 0
        if unknown.any():
            line, count = _first_bad(table, unknown)
            raise InputError(file, voc.file_column, f"{quoted(table.at[line, voc.file_column])} is not in the "
                             f"{scope}{_more(count)}{hint}", row=line)
    out = {"FileName": names.array}
    tasks = []
    if has_class:
        _check_not_empty(table, file, voc.class_column)
        _check_codes(table, file, voc.class_column, voc.classes)
        out["EmoClass"] = table[voc.class_column].astype(_STR).array
        given = [c for c in voc.prob_columns if c in columns]
        if given:
            _require_columns(table, file, voc.prob_columns)
            for column in voc.prob_columns:
                out[column] = _numbers(table, file, column, 0.0, 1.0, tolerance=PROB_RANGE_TOLERANCE).to_numpy()
            total = np.sum([out[c] for c in voc.prob_columns], axis=0)
            off = np.abs(total - 1.0) > PROB_SUM_TOLERANCE
            if off.any():
                line, count = _first_bad(table, off)
                raise InputError(file, f"{voc.prob_columns[0]}..{voc.prob_columns[-1]}",
                                 f"probabilities sum to {total[np.argmax(off)]:.6g}, not 1{_more(count)}", row=line)
            _check_argmax(table, file, voc, out)
        tasks.append(TASK_CATEGORICAL)
    if has_attributes:
        _require_columns(table, file, voc.attribute_names)
        for attribute in voc.attribute_names:   # any finite value: outside the scale is model output
            out[attribute] = _numbers(table, file, attribute, -np.inf, np.inf).to_numpy()
        tasks.append(TASK_ATTRIBUTES)
    return pd.DataFrame(out, index=table.index, copy=False), tuple(tasks)


def _check_argmax(table: pd.DataFrame, file: Path, voc: Vocabulary, out: dict) -> None:
    """Warn when the class column is not the most probable ``P_<code>`` (ties agree): a file
    whose label column and probabilities disagree usually has a bug; the class is scored."""
    probs = np.column_stack([out[c] for c in voc.prob_columns])
    chosen = probs[np.arange(len(probs)), pd.Index(voc.classes).get_indexer(out["EmoClass"])]
    differs = chosen < probs.max(axis=1) - ARGMAX_TOLERANCE
    if differs.any():
        line, count = _first_bad(table, differs)
        top = voc.classes[int(probs[np.argmax(differs)].argmax())]
        warn(InputWarning(file, voc.class_column, f"{voc.class_column} is not the most probable class of "
                          f"{voc.prob_columns[0]}..{voc.prob_columns[-1]} in {count} of {len(probs)} rows (here "
                          f"{quoted(table.at[line, voc.class_column])}, highest P_{top}); scored as given", row=line))


def read_corpus_predictions(path: str | os.PathLike, vocabulary: Vocabulary, known=None,
                            scope: str = "labels", intersection: bool = False) -> pd.DataFrame:
    """Every system's predictions under ``path`` (one CSV, or a folder with one sub-folder per
    system, see :func:`ser_diag.io.read_systems`) in ``vocabulary``'s column names, as the tidy
    predictions frame (``system, FileName, EmoClass, P_<code>..., <attributes>``).

    ``known``: the labelled file names; a prediction for another file is an InputError naming
    its row (unless ``intersection``). ``attrs``: ``path``, ``sources`` ({system: {task: file}}),
    ``synthetic``.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(path, None, "no such file or folder")
    if path.is_symlink() and not path.exists():
        raise InputError(path, None, _not_a_file(path))
    groups = _prediction_groups(path)
    known = pd.Index(known) if known is not None else None
    frames, sources = [], {}
    for system, files in groups:
        per_task: dict[str, Path] = {}
        parts = []
        for file in files:
            frame, tasks = _prediction_file(file, vocabulary, known, scope, intersection)
            for task in tasks:
                if task in per_task:
                    raise InputError(file, None, f"a second {task} prediction file for system {system!r} "
                                     f"(the first is {per_task[task]})", row=1)
                per_task[task] = file
            parts.append(frame.reset_index(drop=True))
        frame = parts[0]
        for other in parts[1:]:
            frame = frame.merge(other, on="FileName", how="outer")
        frame.insert(0, "system", system)
        frames.append(frame.sort_values("FileName", kind="stable"))
        sources[system] = {task: str(file) for task, file in per_task.items()}
    predictions = pd.concat(frames, ignore_index=True)
    value_columns = ["EmoClass", *vocabulary.prob_columns, *vocabulary.attribute_names]
    predictions = predictions.loc[:, ["system", "FileName"] + [c for c in value_columns if c in predictions]]
    predictions["system"] = predictions["system"].astype(_STR)
    predictions.attrs.update(path=str(path), sources=sources, synthetic=is_synthetic(path))
    return predictions


# --------------------------------------------------------------------------- both routes merged

def load_corpus(labels_path, predictions_path, split: str | None = None, intersection: bool = False,
                vocabulary: Vocabulary | None = None, target: str | None = None,
                attributes=None) -> dict:
    """``dict(categorical=merged or None, attributes=merged or None, labels=labels,
    vocabulary=vocabulary)`` of a corpus (see the module docstring).

    ``labels_path``: an audformat database (a folder holding ``db.yaml``; read by
    :func:`ser_diag.io.audformat_db.read_database`, the vocabulary built from its schemes when
    none is given) or a labels CSV read with ``vocabulary`` (required). ``target``: the class
    column / scheme; ``attributes``: the attributes scored (default: the vocabulary's, or the
    database's arousal/valence/dominance schemes). ``split``: a split name (None: every file;
    MSP-Podcast's default ``"Development"`` also means every file for a corpus without it).
    Each task is merged (:func:`ser_diag.io.merge`) under the vocabulary (``attrs["vocabulary"]``).
    """
    if is_audformat(labels_path):
        labels, voc = read_database(labels_path, split=split, vocabulary=vocabulary, target=target,
                                    attributes=attributes)
    else:
        if vocabulary is None:
            raise InputError(labels_path, None, "a labels CSV of a corpus other than MSP-Podcast needs its "
                             "vocabulary (--vocabulary NAME or a JSON/YAML file)")
        voc = with_columns(vocabulary, target, attributes)
        labels = read_corpus_labels(labels_path, voc, split=split)
    split = labels.attrs.get("split")
    source = labels.attrs.get("source", "labels")
    scope = f"labels of split {split} ({source})" if split else f"labels ({source})"
    predictions = read_corpus_predictions(predictions_path, voc, known=labels["FileName"], scope=scope,
                                          intersection=intersection)
    result = {}
    for task in TASKS:
        result[task] = (merge(labels, predictions, task, intersection, vocabulary=voc)
                        if submitted(predictions, task, voc).any() else None)
    result["labels"] = labels
    result["vocabulary"] = voc
    return result
