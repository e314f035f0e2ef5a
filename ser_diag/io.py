"""Read and write MSP-Podcast labels and challenge prediction files.

The only module that knows file layouts (see ``../shared/reference/msp_podcast_format.md``).
Readers validate everything and raise :class:`ser_diag.errors.InputError` naming file, row (the
line number in the file, header = line 1) and column. Writers produce exactly the official
layouts and write atomically.

Frames (see :mod:`ser_diag.schema`): ``labels`` one row per file; ``predictions`` one row per
``(system, FileName)``; ``merged`` one row per ``(system, FileName)`` for one task, with
``<col>_true`` / ``<col>_pred`` pairs.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.errors import InputError, InputWarning, quoted, shorten, warn
from ser_diag.memory import release_free_memory
from ser_diag.outputs import atomic_write_text
from ser_diag.schema import (
    ALL_CODES,
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTE_PREDICTION_COLUMNS,
    ATTRIBUTES,
    BASELINE_PREDICTION_COLUMNS,
    CATEGORICAL_PREDICTION_COLUMNS,
    CLASS_CODES,
    CLASS_NAMES,
    CONSENSUS_COLUMNS,
    DETAILED_V1_COLUMNS,
    DETAILED_V2_COLUMNS,
    GENDERS,
    LONG_NAME_TO_CODE,
    PROB_COLUMNS,
    SPLITS,
    TASK_ATTRIBUTES,
    TASK_CATEGORICAL,
    TASKS,
)

#: Marker file that every synthetic data root carries.
SYNTHETIC_MARKER = "SYNTHETIC_DEMO.txt"
LABELS_CONSENSUS = Path("Labels") / "labels_consensus.csv"
LABELS_DETAILED = Path("Labels") / "labels_detailed.csv"
#: Written for a missing speaker or gender by older releases.
UNKNOWN = "Unknown"
#: Tolerance on a probability row sum (files store about 6 significant digits).
PROB_SUM_TOLERANCE = 1e-3
#: How far a probability may lie outside [0, 1] (rounding in the file) and still be read.
PROB_RANGE_TOLERANCE = 1e-6
_FILE_NAME_COLUMNS = ("FileName", "Filename")
_TASK_STEMS = (TASK_CATEGORICAL, TASK_ATTRIBUTES)
_N_EXAMPLES = 3
#: pandas' default ``str`` dtype, what ``read_csv(dtype=str)`` gives: the fast readers give the same.
_STR = pd.StringDtype("pyarrow", na_value=np.nan)


# --------------------------------------------------------------------------------------------
# Reading CSV text into a validated string table whose index is the line number in the file
# --------------------------------------------------------------------------------------------

def _not_a_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file, in words."""
    if path.is_symlink() and not path.exists():
        return "a symbolic link that loops or points nowhere"
    if path.is_dir():
        return "a folder, not a CSV file"
    return "no such file" if not path.exists() else "not a regular file"


def _record_start_lines(text: str, count: int) -> list[int]:
    """Line (1-based, in ``text``) on which each of the first ``count`` CSV records starts; a
    quoted field with a line break spans several lines (the slow path, for error messages)."""
    reader = csv.reader(StringIO(text))
    starts, line = [], 1
    for _ in range(count):
        starts.append(line)
        try:
            next(reader)
        except (StopIteration, csv.Error):
            break
        line = reader.line_num + 1
    return starts


def _editor_line(text: str, record: int, offset: int) -> int:
    """Line an editor shows for the 1-based CSV ``record`` of ``text`` (after ``offset`` skipped lines)."""
    starts = _record_start_lines(text, record)
    return offset + (starts[record - 1] if len(starts) >= record else record)


def _decode(path: Path, data: bytes) -> str:
    """``data`` as UTF-8 text (a BOM is dropped); a byte that is not UTF-8 raises an InputError
    naming the line and character an editor shows."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(path, None, "UTF-16 text (a byte-order mark FF FE); save the file as UTF-8", row=1)
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as err:
        start = bom + err.start
        line_start = data.rfind(b"\n", 0, start) + 1
        character = len(data[line_start:start].decode("utf-8", errors="replace")) + 1
        raise InputError(path, None, f"not UTF-8 text: byte 0x{data[start]:02x} at character {character} "
                         "(Windows-1252 or Latin-1? save the file as UTF-8)",
                         row=data.count(b"\n", 0, start) + 1) from None


def _byte_positions(data: np.ndarray, byte: int, block: int = 1 << 24) -> np.ndarray:
    """Positions of ``byte`` in ``data`` (uint8), scanned in blocks (no mask as long as the file)."""
    found = [np.flatnonzero(data[i:i + block] == byte) + i for i in range(0, len(data), block)]
    return np.concatenate(found) if found else np.empty(0, dtype=np.intp)


def _quotes_are_whole_fields(body: bytes) -> bool:
    r"""True when every quote in ``body`` opens or closes a whole quoted field without quotes or
    line breaks inside: quotes pair up in order, a comma or a line start before each opening
    quote, a comma or a line end after each closing one, no line break between them.

    >>> _quotes_are_whole_fields(b'a,b\n"x,y",2\n""\n'), _quotes_are_whole_fields(b'a\n"x""y"\n')
    (True, False)
    >>> _quotes_are_whole_fields(b'a\nx"y"\n'), _quotes_are_whole_fields(b'a\n"x\ny"\n')
    (False, False)
    """
    data = np.frombuffer(body, dtype=np.uint8)
    quotes = _byte_positions(data, ord('"'))
    if len(quotes) % 2:
        return False
    opens, closes, last = quotes[0::2], quotes[1::2], len(data) - 1
    before, after = data[np.maximum(opens - 1, 0)], data[np.minimum(closes + 1, last)]
    if not (((opens == 0) | (before == ord(",")) | (before == ord("\n"))).all()
            and ((closes == last) | (after == ord(",")) | (after == ord("\n"))).all()):
        return False
    lines = _byte_positions(data, ord("\n"))
    return bool((np.searchsorted(lines, opens) == np.searchsorted(lines, closes)).all())


def _plain_table(body: bytes) -> pd.DataFrame | None:
    """The frame ``pd.read_csv(body, header=None, dtype=str, na_filter=False)`` gives, read by
    pyarrow's CSV reader (several times faster, a fraction of the memory) when ``body`` is plain:
    no carriage return, no blank line, every line with the header's number of fields, and every
    quote part of a whole quoted field without quotes or line breaks inside (``"Angry; A:5"``).
    ``None`` otherwise, and the pandas reader (with its line-exact errors) takes over."""
    if b"\r" in body or b"\n\n" in body:
        return None
    quotes = b'"' in body
    if quotes and not _quotes_are_whole_fields(body):
        return None
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pandas' str dtype comes with pyarrow here
        return None
    first_line = body[: body.find(b"\n")] if b"\n" in body else body
    fields = len(next(csv.reader([first_line.decode("utf-8", errors="replace")]))) if quotes \
        else first_line.count(b",") + 1
    names = [f"f{i}" for i in range(fields)]
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(body),
            read_options=pa_csv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pa_csv.ParseOptions(quote_char='"' if quotes else False, double_quote=False,
                                              newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    return pd.DataFrame({i: pd.array(table.column(i), dtype=_STR) for i in range(fields)})


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise InputError(path, None, _not_a_file(path))
    try:
        return path.read_bytes()
    except OSError as err:
        raise InputError(path, None, f"cannot read ({err.strerror})") from None


def _read_table(path: Path, data: bytes | None = None) -> pd.DataFrame:
    """All cells as stripped strings (``""`` when empty); index = line number (header = 1).

    The index is the line an editor shows: blank lines are dropped but still counted, and a
    quoted cell with a line break counts its lines. A header naming a column twice, an empty or
    blank file and a byte that is not UTF-8 are :class:`InputError` s. ``data``: the file's
    bytes when already read.
    """
    if data is None:
        data = _read_bytes(path)
    text = _decode(path, data)
    if not text or text.isspace():
        raise InputError(path, None, "empty file (no header)" if not text else
                         "blank file (only white space, no header)", row=1)
    body = text.lstrip("\r\n\t ")
    skipped = len(text) - len(body)  # ASCII characters: as many bytes
    offset = text[:skipped].count("\n")  # blank lines above the header
    del text
    start = (3 if data.startswith(b"\xef\xbb\xbf") else 0) + skipped
    raw = _plain_table(data[start:] if start else data)
    del data
    try:
        if raw is None:
            raw = pd.read_csv(StringIO(body), header=None, dtype=str, na_filter=False, skip_blank_lines=False)
    except pd.errors.ParserError as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else "parser error"
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
        if found is not None:
            expected, record, seen = (int(g) for g in found.groups())
            raise InputError(path, None, f"{seen} fields where the header has {expected}",
                             row=_editor_line(body, record, offset)) from None
        found = re.search(r"EOF inside string starting at row (\d+)", message)
        if found is not None:
            raise InputError(path, None, "a quote (\") that is never closed",
                             row=_editor_line(body, int(found.group(1)) + 1, offset)) from None
        raise InputError(path, None, f"not a readable CSV file: {message}") from None
    raw = raw.fillna("")
    header = [str(c).strip() for c in raw.iloc[0]]
    named = [c for c in header if c]
    for column in named:
        if named.count(column) > 1:
            positions = [i + 1 for i, c in enumerate(header) if c == column]
            raise InputError(path, column, f"the header names this column {len(positions)} times "
                             f"(columns {', '.join(map(str, positions))})", row=offset + 1)
    header = [c if c else f"Unnamed: {i}" for i, c in enumerate(header)]
    lines = np.arange(len(raw), dtype=np.int64) + 1
    if body.count("\n") + (not body.endswith("\n")) != len(raw):  # quoted line breaks
        breaks = sum(raw[c].str.count("\n").to_numpy(dtype=np.int64) for c in raw.columns)
        lines = 1 + np.concatenate([[0], np.cumsum(1 + breaks)[:-1]])
    table = raw.iloc[1:]
    table.columns = header
    table.index = lines[1:] + offset
    for column in table.columns:
        table[column] = table[column].str.strip()
    table = table.loc[(table != "").any(axis=1)]
    if table.empty:
        raise InputError(path, None, "no data rows (header only)", row=offset + 2)
    return table


def _require_columns(table: pd.DataFrame, path: Path, columns) -> None:
    present = list(table.columns)
    for column in columns:
        if column not in present:
            near = [c for c in present if c.lower() == column.lower()]
            hint = f" (found {quoted(near[0])}; names are case-sensitive)" if near else ""
            if len(present) == 1 and (";" in present[0] or "\t" in present[0]):
                hint = " (separated by ';' or tabs? the challenge files use commas)"
            raise InputError(path, column, f"missing column; header is {shorten(','.join(present), 200)}{hint}", row=1)


def _first_bad(table: pd.DataFrame, bad: pd.Series) -> tuple[int, int]:
    """(line of the first flagged row, number of flagged rows)."""
    bad = np.asarray(bad, dtype=bool)
    return int(table.index[np.argmax(bad)]), int(bad.sum())


def _more(count: int) -> str:
    return f" (and {count - 1} more rows)" if count > 1 else ""


def _check_not_empty(table: pd.DataFrame, path: Path, column: str) -> None:
    empty = table[column] == ""
    if empty.any():
        line, count = _first_bad(table, empty)
        raise InputError(path, column, f"empty value{_more(count)}", row=line)


def _check_unique(table: pd.DataFrame, path: Path, column: str) -> None:
    repeated = table[column].duplicated()
    if repeated.any():
        line, count = _first_bad(table, repeated)
        value = table.at[line, column]
        first = int(table.index[np.argmax((table[column] == value).to_numpy())])
        raise InputError(path, column, f"duplicate {column} {quoted(value)}, also on row {first}{_more(count)}",
                         row=line)


def _check_codes(table: pd.DataFrame, path: Path, column: str, allowed) -> None:
    unknown = ~table[column].isin(allowed)
    if unknown.any():
        line, count = _first_bad(table, unknown)
        raise InputError(path, column, f"unknown value {quoted(table.at[line, column])}; expected one of "
                         f"{', '.join(a for a in allowed if a)}{_more(count)}", row=line)


#: A plain decimal number (what the writers produce); such text parses to the same float in
#: pyarrow's cast and :func:`pandas.to_numeric`.
_PLAIN_DECIMAL = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"


def _plain_decimals(text: pd.Series) -> pd.Series | None:
    """``text`` as float64 through pyarrow's vectorised cast (~20x faster than
    :func:`pandas.to_numeric` on Arrow strings) when every cell is a plain decimal number;
    None otherwise, so anything else (empty, NaN, typos) takes the ``to_numeric`` path with its
    error messages."""
    if not hasattr(text.array, "__arrow_array__"):
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pandas' "str" dtype implies pyarrow
        return None
    arrow = text.array.__arrow_array__()
    if arrow.null_count or not pc.all(pc.match_substring_regex(arrow, _PLAIN_DECIMAL)).as_py():
        return None
    return pd.Series(pc.cast(arrow, pa.float64()).to_numpy(zero_copy_only=False), index=text.index,
                     name=text.name, dtype="float64")


def _numbers(table: pd.DataFrame, path: Path, column: str, low: float, high: float,
             tolerance: float = 0.0) -> pd.Series:
    """Column as float64, raising at the first value that is not a finite number in [low, high]."""
    text = table[column]
    values = _plain_decimals(text)
    if values is None:
        values = pd.to_numeric(text, errors="coerce").astype("float64")
    ok = np.isfinite(values) & (values >= low - tolerance) & (values <= high + tolerance)
    if not ok.all():
        line, count = _first_bad(table, ~ok)
        raw, value = text.at[line], values.at[line]
        if raw == "":
            problem = "empty value"
        elif np.isnan(value):
            problem = f"{quoted(raw)} is not a number" if raw.lower() != "nan" else "NaN value"
        else:
            problem = f"{shorten(raw, 40)} outside [{low:g}, {high:g}]"
        raise InputError(path, column, problem + _more(count), row=line)
    return values


def _locate(path: Path, column: str, value: str) -> int | None:
    """Line number of the first row whose ``column`` equals ``value`` (for error messages)."""
    try:
        table = _read_table(path)
    except InputError:
        return None
    columns = [column] if column in table else [c for c in _FILE_NAME_COLUMNS if c in table]
    for name in columns:
        hits = table.index[(table[name] == value).to_numpy()]
        if len(hits):
            return int(hits[0])
    return None


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------

def _labels_file(path: str | os.PathLike, relative: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        for candidate in (path / relative, path / relative.name):
            if candidate.is_file():
                return candidate
        raise InputError(path / relative, None, "no such file (expected a corpus root or the CSV path)")
    return path


def is_synthetic(path: str | os.PathLike) -> bool:
    """True if ``SYNTHETIC_DEMO.txt`` is in ``path`` (a folder), its folder, or up to 4 parents."""
    path = Path(path).absolute()
    folder = path if path.is_dir() else path.parent
    return any((d / SYNTHETIC_MARKER).is_file() for d in [folder, *folder.parents[:4]])


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
    bad = (values.isna() & ~missing) | (values.notna() & (values != values.round()))
    if bad.any():
        line, count = _first_bad(table, bad)
        raise InputError(file, "SpkrID", f"{quoted(text.at[line])} is not an integer speaker id or "
                         f"{UNKNOWN!r}{_more(count)}", row=line)
    return values.astype("Int64")


# --------------------------------------------------------------------------------------------
# Detailed (per-annotator) labels and soft labels
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------

_PREDICTION_VALUE_COLUMNS = ("EmoClass",) + PROB_COLUMNS + ATTRIBUTES
_TASK_SUFFIX = re.compile(r"[_.-](categorical|attributes)$", re.IGNORECASE)


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


#: Characters :meth:`str.strip` removes from ASCII text (the typed reader accepts a cell only
#: when stripping would not change it).
_ASCII_WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"


#: The file-name column the typed reader last found regular (non-empty, unique, nothing to
#: strip): systems list the same files in the same order, so the next file's usually equals it
#: (one comparison of buffers instead of a hash of every name).
_CHECKED_NAMES: list = [None]


def _typed_prediction_file(path: Path, data: bytes) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
    """A regular ``FileName,EmoClass[,P_A..P_N]`` or ``FileName,EmoAct,EmoVal,EmoDom`` file read
    by pyarrow's CSV reader straight into numbers (~9x faster than text cells then validation).

    Only a file that passes every check of the text path is returned, as the same frame: ASCII,
    no quote, carriage return or blank line, the header on line 1 naming each known column once,
    no cell that stripping would change, unique non-empty file names, known class codes, finite
    numbers, probabilities in [0, 1] summing to 1. Anything else gives ``None`` and the text path
    reads the file again, with its line-exact messages.
    """
    if not data.isascii() or b'"' in data or b"\r" in data or b"\n\n" in data or data.lstrip(b" \t")[:1] in (b"\n", b""):
        return None
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv
    except ImportError:  # pragma: no cover - pandas' str dtype comes with pyarrow here
        return None
    header = [c.strip(_ASCII_WHITESPACE) for c in data[: data.find(b"\n")].decode("ascii").split(",")]
    known = ("FileName",) + _PREDICTION_VALUE_COLUMNS
    if len(set(header)) != len(header) or "FileName" not in header or "" in header:
        return None
    has_class, probabilities = "EmoClass" in header, [c for c in PROB_COLUMNS if c in header]
    attributes = [c for c in ATTRIBUTES if c in header]
    if (not has_class and not attributes) or (probabilities and (not has_class or len(probabilities) < len(PROB_COLUMNS))) \
            or (attributes and len(attributes) < len(ATTRIBUTES)):
        return None
    names = [f"f{i}" for i in range(len(header))]
    wanted = [c for c in known if c in header]
    field = {c: names[header.index(c)] for c in wanted}
    types = {field[c]: pa.string() if c in ("FileName", "EmoClass") else pa.float64() for c in wanted}
    try:
        table = pa_csv.read_csv(
            pa.py_buffer(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, use_threads=True),
            parse_options=pa_csv.ParseOptions(quote_char=False, newlines_in_values=False),
            convert_options=pa_csv.ConvertOptions(column_types=types, include_columns=[field[c] for c in wanted],
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    if table.num_rows == 0 or any(table.column(field[c]).null_count for c in wanted):
        return None
    columns = {c: table.column(field[c]).combine_chunks() for c in wanted}
    file_names = columns["FileName"]
    if _CHECKED_NAMES[0] is None or not file_names.equals(_CHECKED_NAMES[0]):   # else checked with the last file
        if not pc.all(pc.equal(file_names, pc.ascii_trim(file_names, _ASCII_WHITESPACE))).as_py() or \
                pc.min(pc.utf8_length(file_names)).as_py() == 0 or \
                pc.count_distinct(file_names).as_py() != len(file_names):
            return None
        _CHECKED_NAMES[0] = file_names
    # class codes hold no white space: known codes only also means nothing to strip
    if has_class and not set(pc.unique(columns["EmoClass"]).to_pylist()) <= set(CLASS_CODES):
        return None
    numbers = {c: columns[c].to_numpy() for c in probabilities + attributes}
    if not all(np.isfinite(v).all() for v in numbers.values()):
        return None
    if probabilities:
        block = np.column_stack([numbers[c] for c in PROB_COLUMNS])
        if block.min() < -PROB_RANGE_TOLERANCE or block.max() > 1 + PROB_RANGE_TOLERANCE or \
                (np.abs(block.sum(axis=1) - 1.0) > PROB_SUM_TOLERANCE).any():
            return None
    index = pd.Index(np.arange(2, table.num_rows + 2, dtype=np.int64))
    out = pd.DataFrame({"FileName": pd.array(file_names, dtype=_STR)}, index=index)
    if has_class:
        out["EmoClass"] = pd.array(columns["EmoClass"], dtype=_STR)
    for c in probabilities + attributes:
        out[c] = numbers[c]
    tasks = ((TASK_CATEGORICAL,) if has_class else ()) + ((TASK_ATTRIBUTES,) if attributes else ())
    return out, tasks


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
    table = _read_table(path, data)
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
    out = table.loc[:, ["FileName"]]
    tasks = []
    if has_class:
        _check_codes(table, path, "EmoClass", CLASS_CODES)
        out["EmoClass"] = table["EmoClass"]
        if any(c in columns for c in PROB_COLUMNS):
            _require_columns(table, path, PROB_COLUMNS)
            for column in PROB_COLUMNS:
                out[column] = _numbers(table, path, column, 0.0, 1.0, tolerance=PROB_RANGE_TOLERANCE)
            total = out[list(PROB_COLUMNS)].sum(axis=1)
            off = (total - 1.0).abs() > PROB_SUM_TOLERANCE
            if off.any():
                line, count = _first_bad(table, off)
                raise InputError(path, "P_A..P_N", f"probabilities sum to {total.at[line]:.6g}, not 1"
                                 f"{_more(count)}", row=line)
            _check_argmax(out, path)
        tasks.append(TASK_CATEGORICAL)
    if has_attributes:
        _require_columns(table, path, ATTRIBUTES)
        for attribute in ATTRIBUTES:  # any finite value: outside 1-7 is model output, warned about
            out[attribute] = _numbers(table, path, attribute, -np.inf, np.inf)
        tasks.append(TASK_ATTRIBUTES)
    return out, tuple(tasks), "FileName"


#: Largest gap between the probability of ``EmoClass`` and the highest ``P_*`` still counted as
#: agreement (files store about 6 significant digits).
ARGMAX_TOLERANCE = 1e-6


def class_index(classes: pd.Series) -> np.ndarray:
    """Position of each class code in :data:`CLASS_CODES` (``-1`` for anything else, missing
    included), by Arrow's hash lookup for Arrow strings (no Python string per row); other
    columns are compared as text.

    >>> class_index(pd.Series(["N", "A", "O"], dtype="str")).tolist()
    [7, 0, -1]
    """
    return index_in(classes, CLASS_CODES, as_text=True)


def index_in(values: pd.Series, universe, as_text: bool = False) -> np.ndarray:
    """Position of each of ``values`` in ``universe`` (distinct values; ``-1`` when absent or
    missing), as ``pd.Index(universe).get_indexer(values)``, by Arrow's hash lookup when
    ``values`` are Arrow strings: no Python string per row (2.6M judgements' file names: no
    0.2 GB of ``str`` objects). ``as_text``: other values are compared as text.

    >>> index_in(pd.Series(["b.wav", "c.wav", None], dtype="str"), ["a.wav", "b.wav"]).tolist()
    [1, -1, -1]
    """
    array = values.array
    if isinstance(array, pd.arrays.ArrowStringArray):
        import pyarrow as pa
        import pyarrow.compute as pc

        universe = universe.array if isinstance(universe, (pd.Series, pd.Index)) else universe
        value_set = (universe.__arrow_array__() if isinstance(universe, pd.arrays.ArrowStringArray)
                     else pa.array(list(universe), type=pa.large_string()))
        if isinstance(value_set, pa.ChunkedArray):
            value_set = value_set.combine_chunks()
        found = pc.index_in(array.__arrow_array__(), value_set=value_set)
        return pc.fill_null(found, -1).to_numpy().astype(np.intp)
    return pd.Index(universe).get_indexer(pd.Series(values).astype(str) if as_text else values)


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


def out_of_range(values: pd.DataFrame, columns=ATTRIBUTES) -> dict | None:
    """Attribute values outside [1, 7] in ``columns`` of ``values``: ``dict(count, min, max,
    row, column)`` (``row``: index label of the first such row) or None when all are inside."""
    found = None
    for column in columns:   # one column at a time: no copy of the whole block
        value = values[column].to_numpy(dtype="float64")
        outside = (value < ATTRIBUTE_MIN) | (value > ATTRIBUTE_MAX)
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


# --------------------------------------------------------------------------------------------
# Joining labels and predictions
# --------------------------------------------------------------------------------------------

def _task_columns(task: str) -> list[str]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    return ["EmoClass"] if task == TASK_CATEGORICAL else list(ATTRIBUTES)


def _submitted(predictions: pd.DataFrame, task: str) -> pd.Series:
    """Rows that carry a prediction for ``task``."""
    columns = _task_columns(task)
    if not set(columns) <= set(predictions.columns):
        return pd.Series(False, index=predictions.index)
    return predictions[columns].notna().all(axis=1)


def _source(sources: dict, system: str, task: str) -> str:
    """The file a system's ``task`` predictions came from (``sources``: ``attrs["sources"]``)."""
    return sources.get(system, {}).get(task, f"predictions of system {system!r}")


def _is_in(names: pd.Series, allowed) -> pd.Series:
    """``names.isin(allowed)`` through a hash index (``isin`` on arrow strings is slow for 10^5 names)."""
    return pd.Series(pd.Index(pd.unique(pd.Series(allowed))).get_indexer(names) >= 0, index=names.index)


def _row_of(file: str, value: str) -> int | None:
    return _locate(Path(file), "FileName", value) if Path(file).is_file() else None


def task_of(merged: pd.DataFrame) -> str:
    """The task of a merged frame: ``merged.attrs["task"]``, else inferred from its columns."""
    task = merged.attrs.get("task")
    if task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
        return task
    if "EmoClass_pred" in merged:
        return TASK_CATEGORICAL
    if all(f"{a}_pred" in merged for a in ATTRIBUTES):
        return TASK_ATTRIBUTES
    raise ValueError("merged frame has neither EmoClass_pred nor EmoAct/EmoVal/EmoDom_pred columns")


def merge(labels: pd.DataFrame, predictions: pd.DataFrame, task: str, intersection: bool = False) -> pd.DataFrame:
    """Join labels and predictions for one task into the tidy ``merged`` frame.

    Columns ``system, FileName, SpkrID, Gender, Split_Set, <extra label columns>`` then
    ``EmoClass_true, EmoClass_pred`` (+ ``P_A..P_N``) for ``"categorical"`` (``O``/``X`` label
    rows dropped; predictions for them ignored) or ``EmoAct_true, EmoAct_pred, EmoVal_true, ...``
    for ``"attributes"``; sorted by system then FileName, the same files for every system.

    A prediction for a file absent from ``labels``, or a labelled file missing from a system, is
    an :class:`InputError` -- unless ``intersection=True``: then only the files every system and
    the labels share are kept. ``attrs``: ``task``, ``synthetic``, ``split``, ``dropped``
    (labelled files left out), ``dropped_predictions`` (prediction rows for unlabelled files).
    """
    value_columns = _task_columns(task)
    submitted = _submitted(predictions, task)
    if not submitted.any():
        raise InputError(predictions.attrs.get("path", "predictions"), value_columns[0],
                         f"no system has {task} predictions")
    sources = predictions.attrs.get("sources", {})
    preds = predictions.loc[submitted]
    groups = preds.groupby("system", sort=True)
    rows = _TaskRows(labels, task, groups.ngroups)
    for system, frame in groups:
        repeated = frame["FileName"].duplicated()
        if repeated.any():
            raise InputError(_source(sources, system, task), "FileName",
                             f"duplicate FileName {quoted(frame['FileName'][repeated].iloc[0])} "
                             f"for system {quoted(system)}")
        rows.add(system, _source(sources, system, task), frame)
    return rows.finish(intersection, predictions.attrs.get("path", "predictions"),
                       bool(predictions.attrs.get("synthetic")))


def _warn_out_of_range(merged: pd.DataFrame, sources: dict, task: str) -> None:
    """One warning for every attribute prediction outside [1, 7]: model output, scored as given."""
    found = out_of_range(merged, [f"{a}_pred" for a in ATTRIBUTES])
    if found is None:
        return
    columns = [f"{a}_pred" for a in ATTRIBUTES]
    block = merged[columns].to_numpy(dtype="float64")
    per_row = ((block < ATTRIBUTE_MIN) | (block > ATTRIBUTE_MAX)).any(axis=1)
    systems = pd.unique(merged.loc[per_row, "system"])
    others = f" and {len(systems) - 1} more system{'s' if len(systems) > 2 else ''}" if len(systems) > 1 else ""
    warn(InputWarning(_source(sources, systems[0], task), None,
                      f"{found['count']} attribute predictions outside [1, 7] (min {found['min']:.4g}, "
                      f"max {found['max']:.4g}; system {quoted(systems[0])}{others}); scored as given, "
                      "as the challenge's CCC scores them"))


class _TaskRows:
    """One task's merged frame, written system by system: :func:`load` adds each file as it is
    read (no frame of every system's predictions, no intermediate copies), :func:`merge` each
    system's rows of a predictions frame; both get their checks and messages from :meth:`finish`.

    Row ``k * n + j`` of the result holds system ``k`` (in name order) on the ``j``-th file of
    the task in FileName order (``n`` files); values go straight into one float block
    (``P_*`` or ``<attribute>_true/_pred`` pairs) and class codes into an int8 array.
    """

    def __init__(self, labels: pd.DataFrame, task: str, max_systems: int):
        self.labels, self.task = labels, task
        self.names = pd.Index(labels["FileName"])
        in_task = (labels["EmoClass"].isin(CLASS_CODES).to_numpy() if task == TASK_CATEGORICAL
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
            self.values = np.empty((2 * len(ATTRIBUTES), max_systems * n), dtype=np.float64)

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
            self.codes[target] = class_index(frame["EmoClass"])[rows]
            has_probabilities = all(c in frame.columns for c in PROB_COLUMNS) and \
                bool(frame[PROB_COLUMNS[0]].notna().any())   # a system without them: NaN in a frame of several
            self.with_values.append(has_probabilities)
            if has_probabilities:
                if self.values is None:
                    self.values = np.empty((len(PROB_COLUMNS), self.covered.shape[0] * n), dtype=np.float64)
                for i, column in enumerate(PROB_COLUMNS):
                    self.values[i, target] = frame[column].to_numpy(dtype=np.float64)[rows]
        else:
            for i, column in enumerate(ATTRIBUTES):
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
        value_columns = _task_columns(task)
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
                             "has one of the 8 classes "
                             f"({', '.join(CLASS_CODES)}); all are O (other) or X (no agreement)")
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
            float_columns = list(PROB_COLUMNS) if self.values is not None else []
            if self.values is not None:
                for k, has in enumerate(self.with_values):
                    if not has:
                        self.values[:, k * n:(k + 1) * n] = np.nan
        else:
            float_columns = [f"{a}_{side}" for a in ATTRIBUTES for side in ("true", "pred")]
        block = self.values[:, rows] if self.values is not None else np.empty((0, size))
        self.values = None
        if task == TASK_ATTRIBUTES:
            for i, column in enumerate(ATTRIBUTES):
                true_values = labels[column].to_numpy(dtype=np.float64)[truth]
                for k in range(n_systems):
                    block[2 * i, k * len(truth):(k + 1) * len(truth)] = true_values
        merged = pd.DataFrame(block.T, columns=float_columns, copy=False)
        del block
        extra = [c for c in labels.columns if c not in CONSENSUS_COLUMNS]
        front = {"system": pd.array(self.systems, dtype="str").take(np.repeat(np.arange(n_systems), len(truth)))}
        front.update({c: _repeated(labels[c].array.take(truth), n_systems)
                      for c in ["FileName", "SpkrID", "Gender", "Split_Set"] + extra})
        if task == TASK_CATEGORICAL:
            front["EmoClass_true"] = _repeated(labels["EmoClass"].array.take(truth), n_systems)
            front["EmoClass_pred"] = pd.array(list(CLASS_CODES), dtype="str").take(self.codes[rows].astype(np.intp))
        self.codes = None
        for i, (column, values) in enumerate(front.items()):
            merged.insert(i, column, values)
        if task == TASK_ATTRIBUTES:
            _warn_out_of_range(merged, self.sources, task)
        merged.attrs = {"task": task, "split": split,
                        "synthetic": bool(labels.attrs.get("synthetic") or synthetic),
                        "dropped": n - len(truth),
                        "dropped_predictions": sum(count for _, count, _ in self.unknown)}
        return merged


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


def _prediction_groups(path: Path) -> list[tuple[str, list[Path]]]:
    """``(system, files)`` for a predictions folder (:func:`read_systems`) or one system's file."""
    if path.is_dir():
        return _system_groups(path)
    if path.is_file():
        return [(_system_name(path), [path])]
    raise InputError(path, None, _not_a_file(path) if path.is_symlink() else "no such file or folder")


def load(labels_path: str | os.PathLike, predictions_path: str | os.PathLike, split: str | None = "Development",
         intersection: bool = False) -> dict:
    """Read and validate labels and every system's predictions, and merge each task.

    Returns ``dict(categorical=merged or None, attributes=merged or None, labels=labels)``
    (``None`` for a task no system submitted); each merged frame equals
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
    release_free_memory()
    return result


# --------------------------------------------------------------------------------------------
# Submission check
# --------------------------------------------------------------------------------------------

def _read_file_list(path: Path) -> dict[str, int]:
    """Expected file names -> line number; blank lines, ``#`` comments and a header are skipped."""
    if not path.is_file():
        raise InputError(path, None, _not_a_file(path))
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(path, None, f"cannot read ({err.strerror})") from None
    names: dict[str, int] = {}
    for line, text in enumerate(_decode(path, data).splitlines(), start=1):
        name = text.split(",")[0].strip()
        if name and not name.startswith("#") and name not in _FILE_NAME_COLUMNS:
            names.setdefault(name, line)
    if not names:
        raise InputError(path, None, "no file names in the file list")
    return names


def validate_submission(predictions_path: str | os.PathLike, labels=None, file_list=None,
                        split: str | None = "Development", strict: bool = False) -> str:
    """Check a submission before sending it; return a one-line ``"OK: ..."`` or raise InputError.

    Checks the format (layout by header), one row per expected file, no duplicates, no files
    outside the expected set, known class codes, finite attributes. The expected set is every
    file of ``split`` in ``labels`` (corpus root, CSV or a labels frame) -- for the categorical
    task the ``O``/``X`` files may be present but are not required -- or the names in
    ``file_list`` (one per line). With neither, only the format is checked.

    Attribute predictions outside [1, 7] (model output the challenge scores as given) and an
    ``EmoClass`` that is not the argmax of ``P_*`` are :class:`~ser_diag.errors.InputWarning` s;
    ``strict=True`` makes every such warning an InputError.
    """
    if not strict:
        return _validate_submission(predictions_path, labels, file_list, split)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputWarning)
        try:
            return _validate_submission(predictions_path, labels, file_list, split)
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
        expected = {TASK_ATTRIBUTES: pd.Index(frame["FileName"]).sort_values(),
                    TASK_CATEGORICAL: pd.Index(frame.loc[frame["EmoClass"].isin(CLASS_CODES), "FileName"]).sort_values()}
        allowed = expected[TASK_ATTRIBUTES]
        scope = f"labels of split {split} ({source})" if split else f"labels ({source})"

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
            if task in seen:
                raise InputError(file, None, f"a second {task} file (the first is {seen[task]})", row=1)
            seen[task] = file
        if expected is not None:
            extra = ~_is_in(frame["FileName"], allowed)
            if extra.any():
                line, count = _first_bad(frame, extra)
                raise InputError(file, name_column, f"{quoted(frame.at[line, 'FileName'])} is not an expected "
                                 f"file ({scope}){_more(count)}", row=line)
            for task in tasks:
                missing = expected[task].difference(frame["FileName"])
                if len(missing):
                    where = locate(missing[0])
                    examples = ", ".join(quoted(f) for f in missing[:_N_EXAMPLES])
                    raise InputError(file, name_column, f"{len(missing)} of {len(expected[task])} expected "
                                     f"files missing, e.g. {examples} ({scope}"
                                     f"{f', row {where}' if where else ''})")
        reports.append(f"{file}: {len(frame)} rows, task {' + '.join(tasks)}")
    status = "all expected files present" if expected is not None else "format only (no expected files given)"
    return f"OK: {'; '.join(reports)}, {status}"



# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

def _write_csv(df: pd.DataFrame, path: str | os.PathLike, float_format: str = "%.6g") -> Path:
    return atomic_write_text(path, df.to_csv(index=False, float_format=float_format, lineterminator="\n"))


def write_labels_consensus(labels: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``Labels/labels_consensus.csv`` with the exact challenge header.

    Missing speaker/gender are written as ``Unknown`` as older releases do.
    """
    out = labels.loc[:, list(CONSENSUS_COLUMNS)].copy()
    out["SpkrID"] = out["SpkrID"].astype("object").where(out["SpkrID"].notna(), "Unknown")
    out["Gender"] = out["Gender"].astype("object").where(out["Gender"].notna(), "Unknown")
    return _write_csv(out, path, float_format="%.4g")


def write_labels_detailed(detailed: pd.DataFrame, path: str | os.PathLike, layout: str = "1.x") -> Path:
    """Write per-annotator labels in the release-1.x (``EmoDetail`` string) or 2.0 layout.

    ``detailed`` has columns ``FileName, WorkerID, EmoClass_Major, EmoClass_Second, EmoAct,
    EmoVal, EmoDom`` where ``EmoClass_Major`` is a long name (``Angry`` ... or ``Other-...``).
    1.x string: ``"WORKER00012; Angry; Frustrated,Annoyed; A:5.0; V:2.0; D:6.0;"``.
    """
    if layout == "2.0":
        return _write_csv(detailed.loc[:, list(DETAILED_V2_COLUMNS)], path, float_format="%.1f")
    if layout != "1.x":
        raise ValueError(f"layout must be '1.x' or '2.0', not {layout!r}")
    second = detailed["EmoClass_Second"].fillna("").astype(str)
    detail = (detailed["WorkerID"].astype(str) + "; " + detailed["EmoClass_Major"].astype(str) + "; "
              + second + "; A:" + detailed["EmoAct"].map("{:.1f}".format)
              + "; V:" + detailed["EmoVal"].map("{:.1f}".format)
              + "; D:" + detailed["EmoDom"].map("{:.1f}".format) + ";")
    out = pd.DataFrame({DETAILED_V1_COLUMNS[0]: detailed["FileName"].to_numpy(),
                        DETAILED_V1_COLUMNS[1]: detail.to_numpy()})
    return _write_csv(out, path)


def write_categorical_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``FileName,EmoClass`` (+ ``P_A..P_N`` when present) for one system."""
    cols = list(CATEGORICAL_PREDICTION_COLUMNS) + [c for c in PROB_COLUMNS if c in predictions]
    return _write_csv(predictions.loc[:, cols], path)


def write_attribute_predictions(predictions: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``FileName,EmoAct,EmoVal,EmoDom`` (1-7 scale) for one system."""
    return _write_csv(predictions.loc[:, list(ATTRIBUTE_PREDICTION_COLUMNS)], path)


__all__ = [
    "is_synthetic",
    "load",
    "merge",
    "read_detailed_labels",
    "read_labels",
    "read_predictions",
    "read_systems",
    "soft_labels",
    "task_of",
    "validate_submission",
    "write_attribute_predictions",
    "write_categorical_predictions",
    "write_labels_consensus",
    "write_labels_detailed",
]


# --------------------------------------------------------------------------- public readers for the explorer

def submitted(predictions: pd.DataFrame, task: str) -> pd.Series:
    """Rows of a predictions frame (:func:`read_systems`) that carry a prediction for ``task``
    (``EmoClass`` for categorical; all of ``EmoAct``, ``EmoVal``, ``EmoDom`` for attributes)."""
    columns = ["EmoClass"] if task == TASK_CATEGORICAL else list(ATTRIBUTES)
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    if not set(columns) <= set(predictions.columns):
        return pd.Series(False, index=predictions.index)
    return predictions[columns].notna().all(axis=1)


def corpus_files(corpus: str | os.PathLike | None, file_names) -> pd.DataFrame:
    """Transcript text and audio path of each file of an MSP-Podcast-layout corpus.

    ``corpus``: the root holding ``Transcripts/<stem>.txt`` and ``Audios/<FileName>``. Returns
    one row per name in order, columns ``FileName``, ``transcript`` (stripped text, None when
    the file is missing) and ``audio`` (path as text, None when missing); a column is left out
    when the corpus has no such folder.
    """
    names = [str(n) for n in file_names]
    out = pd.DataFrame({"FileName": names})
    if corpus is None:
        return out
    root = Path(corpus)
    transcripts, audios = root / "Transcripts", root / "Audios"
    if transcripts.is_dir():
        def text(name):
            path = transcripts / f"{Path(name).stem}.txt"
            return path.read_text(encoding="utf-8", errors="replace").strip() if path.is_file() else None
        out["transcript"] = [text(n) for n in names]
    if audios.is_dir():
        out["audio"] = [str(audios / n) if (audios / n).is_file() else None for n in names]
    return out


def detailed_labels_file(corpus: str | os.PathLike | None = None,
                         labels_source: str | os.PathLike | None = None) -> Path | None:
    """Where the annotators' votes are: ``<corpus>/Labels/labels_detailed.csv`` or
    ``labels_detailed.csv`` beside the consensus labels file; None when neither exists.
    Read it with :func:`read_detailed_labels` and :func:`soft_labels`."""
    candidates = []
    if corpus is not None:
        candidates.append(Path(corpus) / "Labels" / "labels_detailed.csv")
    if labels_source:
        candidates.append(Path(labels_source).parent / "labels_detailed.csv")
    return next((c for c in candidates if c.is_file()), None)


__all__ += ["corpus_files", "detailed_labels_file", "submitted"]
