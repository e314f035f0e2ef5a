"""Consensus labels, per-annotator (detailed) labels, soft labels and speakers.

:func:`read_labels` reads ``Labels/labels_consensus.csv`` (one row per file),
:func:`read_detailed_labels` ``Labels/labels_detailed.csv`` in the 1.x or 2.0 layout (one row
per judgement), :func:`soft_labels` turns judgements into each file's vote distribution.
Cells come from :func:`~ser_diag.io.reading._read_table` and are checked by its shared checks.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, quoted
from ser_diag.io.corpus import LABELS_CONSENSUS, LABELS_DETAILED, _labels_file, is_synthetic
from ser_diag.io.reading import (
    _check_codes,
    _check_not_empty,
    _check_unique,
    _first_bad,
    _more,
    _numbers,
    _read_table,
    _require_columns,
    class_index,
)
from ser_diag.memory import release_free_memory
from ser_diag.schema import (
    ALL_CODES,
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTES,
    CLASS_CODES,
    CLASS_NAMES,
    CONSENSUS_COLUMNS,
    DETAILED_V1_COLUMNS,
    DETAILED_V2_COLUMNS,
    GENDERS,
    LONG_NAME_TO_CODE,
    SPLITS,
    TASK_CATEGORICAL,
    TASKS,
)

#: Written for a missing speaker or gender by older releases.
UNKNOWN = "Unknown"


def read_labels(path: str | os.PathLike, split: str | None = None, task: str | None = None) -> pd.DataFrame:
    """Read and validate ``Labels/labels_consensus.csv`` (``path``: corpus root or the CSV).

    Every row is checked (header, class codes, attributes finite in [1, 7], speaker, gender,
    split, unique FileName) before ``split`` (e.g. ``"Development"``) and ``task`` filters apply:
    ``task="categorical"`` drops the ``O``/``X`` rows, ``"attributes"`` or ``None`` keeps all.
    ``SpkrID`` is ``Int64`` and ``Gender`` ``Female``/``Male``, both ``<NA>`` for ``Unknown``.
    ``attrs``: ``source`` (path), ``split``, ``task``, ``synthetic``.
    """
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, not {split!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, not {task!r}")
    file = _labels_file(path, LABELS_CONSENSUS)
    table = _read_table(file)
    _require_columns(table, file, CONSENSUS_COLUMNS)
    _check_not_empty(table, file, "FileName")
    _check_unique(table, file, "FileName")
    _check_codes(table, file, "EmoClass", ALL_CODES)
    labels = table.copy()
    for attribute in ATTRIBUTES:
        labels[attribute] = _numbers(table, file, attribute, ATTRIBUTE_MIN, ATTRIBUTE_MAX)
    labels["SpkrID"] = _speakers(table, file)
    _check_codes(table, file, "Gender", GENDERS + (UNKNOWN, ""))
    labels["Gender"] = table["Gender"].where(table["Gender"].isin(GENDERS))
    _check_codes(table, file, "Split_Set", SPLITS)
    extra = [c for c in table.columns if c not in CONSENSUS_COLUMNS]
    labels = labels.loc[:, list(CONSENSUS_COLUMNS) + extra]
    if split is not None:
        labels = labels.loc[labels["Split_Set"] == split]
        if labels.empty:
            found = ", ".join(sorted(table["Split_Set"].unique()))
            raise InputError(file, "Split_Set", f"no rows of split {split!r} (the file has {found})")
    if task == TASK_CATEGORICAL:
        labels = labels.loc[labels["EmoClass"].isin(CLASS_CODES)]
    labels = labels.reset_index(drop=True)
    labels.attrs.update(source=str(file), split=split, task=task, synthetic=is_synthetic(file))
    return labels


def _speakers(table: pd.DataFrame, file: Path) -> pd.Series:
    text = table["SpkrID"]
    missing = text.isin([UNKNOWN, ""])
    values = pd.to_numeric(text.where(~missing), errors="coerce")
    finite = np.isfinite(values.to_numpy(np.float64, na_value=np.nan))      # "inf" parses, but is no id
    bad = (values.isna() & ~missing) | (values.notna() & (~finite | (values != values.round())))
    if bad.any():
        line, count = _first_bad(table, bad)
        raise InputError(file, "SpkrID", f"{quoted(text.at[line])} is not an integer speaker id or "
                         f"{UNKNOWN!r}{_more(count)}", row=line)
    return values.astype("Int64")


_EMO_DETAIL = re.compile(
    r"^\s*(?P<WorkerID>[^;]*?)\s*;\s*(?P<EmoClass_Major>[^;]*?)\s*;"
    r"(?:\s*(?P<EmoClass_Second>[^;]*?)\s*;)?"
    r"\s*[Aa]\s*:\s*(?P<EmoAct>[^;]*?)\s*;\s*[Vv]\s*:\s*(?P<EmoVal>[^;]*?)\s*;"
    r"\s*[Dd]\s*:\s*(?P<EmoDom>[^;]*?)\s*;?\s*$"
)
_PRIMARY_TO_CODE = {name.lower(): code for name, code in LONG_NAME_TO_CODE.items()}
_PRIMARY_TO_CODE.update({name.lower(): code for code, name in CLASS_NAMES.items()})
DETAILED_COLUMNS = ("FileName", "WorkerID", "EmoClass", "EmoClass_Major", "EmoClass_Second") + ATTRIBUTES


def _extract(text: pd.Series, pattern: re.Pattern) -> pd.DataFrame:
    """``text.str.extract(pattern)`` (named groups; ``NaN`` in every column of a row that does not
    match), through Arrow's RE2 kernel (~4x faster than Python's ``re`` row by row) when every
    cell is ASCII without ``\\v`` or ``\\x1c``-``\\x1f``: there RE2's ``\\s`` and Python's are the
    same set. An optional group that takes no part in a match is ``""`` there, ``NaN`` here."""
    if isinstance(text.array, pd.arrays.ArrowStringArray):
        import pyarrow.compute as pc

        arrow = text.array.__arrow_array__()
        if pc.all(pc.string_is_ascii(arrow)).as_py() is not False and \
                not pc.any(pc.match_substring_regex(arrow, "[\x0b\x1c-\x1f]")).as_py():
            parts = pc.extract_regex(arrow, pattern.pattern)
            return pd.DataFrame({name: pd.array(pc.struct_field(parts, name), dtype=text.dtype)
                                 for name in pattern.groupindex}, index=text.index)
    return text.str.extract(pattern)


def read_detailed_labels(path: str | os.PathLike) -> pd.DataFrame:
    """Read ``Labels/labels_detailed.csv`` in the 1.x or the 2.0 layout (detected by header).

    1.x: ``FileName,EmoDetail`` with ``"WORKER00012; Angry; Frustrated,Annoyed; A:5.0; V:2.0;
    D:6.0;"`` (extra spaces and an empty secondary field are fine); 2.0: ``FileName, WorkerID,
    EmoClass_Major, EmoClass_Second, EmoAct, EmoVal, EmoDom``. Returns one row per judgement with
    columns ``FileName, WorkerID, EmoClass`` (code; ``O`` for free text ``Other...``),
    ``EmoClass_Major`` (long name as in the file), ``EmoClass_Second`` (comma-joined, ``""`` when
    none; free text, misspellings kept), ``EmoAct, EmoVal, EmoDom`` (float, 1-7).
    """
    file = _labels_file(path, LABELS_DETAILED)
    table = _read_table(file)
    v2_only = set(DETAILED_V2_COLUMNS) - set(DETAILED_V1_COLUMNS) - set(ATTRIBUTES)
    if DETAILED_V1_COLUMNS[1] in table.columns or not v2_only & set(table.columns):
        _require_columns(table, file, DETAILED_V1_COLUMNS)
        parts = _extract(table["EmoDetail"], _EMO_DETAIL)
        unparsed = parts["WorkerID"].isna()
        if unparsed.any():
            line, count = _first_bad(table, unparsed)
            raise InputError(file, "EmoDetail", f"cannot parse {quoted(table.at[line, 'EmoDetail'])}; expected "
                             f"'WORKER; Primary; Second,...; A:x; V:x; D:x;'{_more(count)}", row=line)
        detail = parts.fillna("")
        detail.insert(0, "FileName", table["FileName"])
        del parts, table   # the EmoDetail text: ~200 MB at 2.6M judgements
        columns = {"WorkerID": "EmoDetail", "EmoClass_Major": "EmoDetail"} | dict.fromkeys(ATTRIBUTES, "EmoDetail")
    else:
        _require_columns(table, file, DETAILED_V2_COLUMNS)
        detail = table.loc[:, list(DETAILED_V2_COLUMNS)]
        del table
        columns = {c: c for c in DETAILED_V2_COLUMNS}
    columns["FileName"] = "FileName"
    for name in ("FileName", "WorkerID", "EmoClass_Major"):
        empty = detail[name] == ""
        if empty.any():
            line, count = _first_bad(detail, empty)
            raise InputError(file, columns[name], f"empty {name}{_more(count)}", row=line)
    major = detail["EmoClass_Major"]
    codes = major.str.lower().map(_PRIMARY_TO_CODE)
    codes = codes.where(~major.str.lower().str.startswith("other"), "O")
    if codes.isna().any():
        line, count = _first_bad(detail, codes.isna())
        raise InputError(file, columns["EmoClass_Major"], f"unknown primary emotion {quoted(major.at[line])}; expected "
                         f"{', '.join(LONG_NAME_TO_CODE)} or 'Other-...'{_more(count)}", row=line)
    out = pd.DataFrame({"FileName": detail["FileName"], "WorkerID": detail["WorkerID"], "EmoClass": codes,
                        "EmoClass_Major": major,
                        "EmoClass_Second": detail["EmoClass_Second"].str.replace(r"\s*(,\s*)+", ",", regex=True)
                        .str.strip(",")})
    for attribute in ATTRIBUTES:
        values = detail.loc[:, [attribute]]
        try:
            out[attribute] = _numbers(values, file, attribute, ATTRIBUTE_MIN, ATTRIBUTE_MAX)
        except InputError as err:
            raise InputError(file, columns[attribute], f"{attribute} {err.message}", row=err.row) from None
    repeated = out.duplicated(keep="first")
    if repeated.any():
        line, count = _first_bad(out, repeated)
        same = (out == out.loc[line]).all(axis=1).to_numpy()
        raise InputError(file, columns["WorkerID"], f"judgement {quoted(out.at[line, 'WorkerID'])} on "
                         f"{quoted(out.at[line, 'FileName'])} repeats row {int(out.index[np.argmax(same)])} "
                         f"exactly (same file, worker and ratings){_more(count)}", row=line)
    out = out.loc[:, list(DETAILED_COLUMNS)].reset_index(drop=True)
    out.attrs.update(source=str(file), synthetic=is_synthetic(file))
    del detail
    release_free_memory()
    return out


def soft_labels(detailed: pd.DataFrame) -> pd.DataFrame:
    """Per-file distribution of annotators' primary votes over the 8 classes.

    ``p_c = n_c / sum_k n_k`` over :data:`CLASS_CODES`; ``Other`` (``O``) votes are not counted.
    Returns index ``FileName`` (sorted), columns ``A..N`` (rows sum to 1) and ``n_votes`` (the
    8-class votes counted). Files whose votes are all ``Other`` have no distribution and are
    left out; ``attrs["only_other"]`` counts them.

    >>> votes = pd.DataFrame({"FileName": ["a.wav", "a.wav", "a.wav", "a.wav", "b.wav"],
    ...                       "EmoClass": ["A", "A", "S", "O", "O"]})
    >>> soft = soft_labels(votes)
    >>> soft.loc["a.wav", ["A", "S", "N"]].round(3).tolist(), soft["n_votes"].tolist(), soft.attrs["only_other"]
    ([0.667, 0.333, 0.0], [3], 1)
    """
    files, names = pd.factorize(detailed["FileName"], sort=True)
    code = class_index(detailed["EmoClass"])
    vote = code >= 0
    counts = np.bincount(files[vote] * len(CLASS_CODES) + code[vote],
                         minlength=len(names) * len(CLASS_CODES)).reshape(len(names), len(CLASS_CODES))
    n_votes = counts.sum(axis=1)
    kept = n_votes > 0
    soft = pd.DataFrame(counts[kept] / n_votes[kept, None], columns=list(CLASS_CODES),
                        index=pd.Index(names[kept], name="FileName"))
    soft["n_votes"] = n_votes[kept].astype("int64")
    soft.attrs["only_other"] = int((~kept).sum())
    return soft
