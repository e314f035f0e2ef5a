"""The one exception bad input raises, so the CLI can print one line and exit 2."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, located as precisely as known: file, row (the line number an editor shows,
    header = line 1), column.

    >>> str(InputError("pred.csv", "EmoClass", "unknown class code 'Q'", row=3))
    "pred.csv: row 3, column 'EmoClass': unknown class code 'Q'"
    """

    def __init__(self, file, column=None, message="invalid input", row=None):
        self.file, self.column, self.row, self.message = str(file), column, row, message
        where = [f"row {row}" if row is not None else None,
                 f"column {column!r}" if column is not None else None]
        where = ", ".join(w for w in where if w)
        super().__init__(f"{self.file}: {where + ': ' if where else ''}{message}")
