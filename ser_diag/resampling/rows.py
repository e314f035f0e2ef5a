"""The merged frames' row bookkeeping: which rows belong to which system and file.

System codes, each system's row positions, file codes, each file's first row, the blocks of
systems scored on the same files, class positions; ``rows_at``/``column_at`` take a system's rows
as a slice (never a copy of every system's rows). Remembered per frame inside
:func:`~ser_diag.resampling.draws.shared_weights` (:func:`~ser_diag.resampling.draws.frame_memo`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.io import class_index, factorize
from ser_diag.resampling.draws import frame_memo
from ser_diag.resampling.frames import _compact_positions, column_at, rows_at
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, TASK_CATEGORICAL

def system_codes(merged: pd.DataFrame) -> tuple[np.ndarray, list]:
    """``(code per row, system names)`` of ``merged["system"]`` (codes in order of first
    appearance, :func:`pandas.factorize`); remembered per frame (:func:`frame_memo`)."""
    def compute():
        codes, names = factorize(merged["system"])
        return _compact_positions(codes), names
    codes, names = frame_memo(merged, "system_codes", compute)
    return codes, list(names)




def system_positions(merged: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{system: row positions (ascending)}`` of every system of ``merged`` in order of first
    appearance (as ``merged.groupby("system", sort=False).indices``), from one stable sort;
    remembered per frame (:func:`frame_memo`)."""
    def compute():
        codes, names = system_codes(merged)
        by_system = _compact_positions(np.argsort(codes, kind="stable"))
        bounds = np.searchsorted(codes[by_system], np.arange(len(names) + 1))
        by_system.flags.writeable = False      # shared by every caller
        return {str(name): by_system[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}
    return dict(frame_memo(merged, "system_positions", compute))








def file_codes(merged: pd.DataFrame) -> np.ndarray:
    """Integer code of every row's ``FileName`` (:func:`pandas.factorize`; once per distinct
    chunk of :func:`ser_diag.io.load`'s repeated label columns, :func:`ser_diag.io.factorize`);
    remembered per frame."""
    return frame_memo(merged, "file_codes", lambda: _compact_positions(factorize(merged["FileName"])[0]))


def first_rows(merged: pd.DataFrame) -> np.ndarray:
    """Position of each file's first row, ascending (the files in order of first appearance):
    one row per file, e.g. its speaker, without the other systems' copies."""
    return np.unique(file_codes(merged), return_index=True)[1]   # codes by first appearance: ascending


def _system_blocks(merged: pd.DataFrame, task: str, systems=None) -> list[tuple[list, list]]:
    """Group systems scored on identical file lists: ``[(systems, row positions)]``, each
    system's rows in the same file order. Systems without predictions for ``task`` are skipped.
    Remembered per frame, task and systems (:func:`frame_memo`)."""
    blocks = frame_memo(merged, ("system_blocks", task, None if systems is None else tuple(systems)),
                        lambda: _compute_system_blocks(merged, task, systems))
    return [(list(names), list(rows)) for names, rows in blocks]


def _compute_system_blocks(merged: pd.DataFrame, task: str, systems=None) -> list[tuple[list, list]]:
    pred_cols = ["EmoClass_pred"] if task == TASK_CATEGORICAL else [f"{a}_pred" for a in ATTRIBUTES]
    pred_cols = [c for c in pred_cols if c in merged.columns]
    submitted = merged[pred_cols].notna().any(axis=1).to_numpy() if pred_cols else \
        np.zeros(len(merged), dtype=bool)
    _, system_names = system_codes(merged)
    files = file_codes(merged)
    names = list(system_names) if systems is None else list(systems)
    # every system's rows (ascending) from one stable sort, not one scan of the frame per system
    by_name = system_positions(merged)
    position = {name: str(name) for name in system_names}
    blocks: list[tuple[list, list]] = []
    for name in names:
        if name not in position:
            raise ValueError(f"system {name!r} is not in the merged frame")
        rows = by_name[position[name]]
        if not submitted[rows].any():
            continue  # the system did not submit this task
        in_rows = files[rows]
        if (np.diff(in_rows) < 0).any():                    # io.load's frames are in file order already
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


def _class_indices(merged: pd.DataFrame, column: str, rows=None) -> np.ndarray:
    """Class positions (in :data:`CLASS_CODES`) of ``merged[column]``, at row positions ``rows``
    (default all): only that column is taken, not the rows of the whole frame."""
    values = column_at(merged, column, rows)
    codes = class_index(values)
    if (codes < 0).any():
        bad = values.iloc[int(np.flatnonzero(codes < 0)[0])]
        raise ValueError(f"{column} holds {bad!r}, not one of {CLASS_CODES}")
    return codes.astype(np.int64)

