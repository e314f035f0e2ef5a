"""Row positions of a frame as slices: a system's rows without a copy of every system's."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
