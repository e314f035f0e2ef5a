"""The exceptions and the warning bad input raises, so the CLI can print one line and exit 2."""

from __future__ import annotations

import re

#: Longest error line the CLI prints (``error: `` included), whatever the input holds.
MAX_MESSAGE_CHARS = 480
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shorten(text: str, limit: int) -> str:
    """``text`` on one line (control characters escaped) and at most ``limit`` characters, the
    middle replaced by ``...(N chars)...``.

    >>> shorten("a" * 100, 30)
    'aaaaaaaaa...(100 chars)...aaaa'
    """
    text = _CONTROL.sub(lambda m: repr(m.group())[1:-1], str(text))
    if len(text) <= limit:
        return text
    marker = f"...({len(text)} chars)..."
    keep = max(limit - len(marker), 2)
    head = (keep * 2 + 2) // 3
    return text[:head] + marker + text[len(text) - (keep - head):]


def quoted(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for values quoted in messages (a 20 MB cell
    gives a short message)."""
    return shorten(repr(value), limit)


class InputError(ValueError):
    """Bad input, located as precisely as known: file, row (the line number an editor shows,
    header = line 1), column. The message is one line under :data:`MAX_MESSAGE_CHARS`.

    >>> str(InputError("pred.csv", "EmoClass", "unknown class code 'Q'", row=3))
    "pred.csv: row 3, column 'EmoClass': unknown class code 'Q'"
    """

    def __init__(self, file, column=None, message="invalid input", row=None):
        self.file, self.column, self.row, self.message = str(file), column, row, message
        where = [f"row {row}" if row is not None else None,
                 f"column {quoted(column, 60)}" if column is not None else None]
        where = ", ".join(w for w in where if w)
        file_text = shorten(self.file, 200)
        head = f"{file_text}: {where + ': ' if where else ''}"
        super().__init__(head + shorten(message, MAX_MESSAGE_CHARS - len(head)))

    def __reduce__(self):
        return _restore, (type(self), self.args, dict(self.__dict__))


def _restore(cls, args, state):
    """An error or warning as it was pickled (its message, file, row and column; the
    subclass kept), e.g. one raised in a worker process and raised again in the caller."""
    error = cls.__new__(cls, *args)
    BaseException.__init__(error, *args)
    error.__dict__.update(state)
    return error


class OutputError(InputError):
    """An output folder that cannot be written (read-only, under a file, a mount point, locked
    by another run). A subclass of :class:`InputError`, so the CLI prints one line and exits 2."""

    def __init__(self, path, message: str):
        super().__init__(path, None, message)


class InputWarning(UserWarning):
    """Input that is scored as given but deserves a look (predictions outside 1-7, ``EmoClass``
    differing from the most probable ``P_*``, a system folder without prediction files).
    Located and worded like :class:`InputError`; the CLI prints each as one ``warning:`` line,
    and ``validate --strict`` turns it into an error (:meth:`as_error`).
    """

    def __init__(self, file, column=None, message="", row=None):
        self.file, self.column, self.row, self.message = str(file), column, row, message
        super().__init__(str(InputError(file, column, message, row)))

    def __reduce__(self):
        return _restore, (type(self), self.args, dict(self.__dict__))

    def as_error(self, note: str = "") -> InputError:
        return InputError(self.file, self.column, self.message + note, self.row)


def warn(warning: InputWarning) -> None:
    """Issue ``warning`` through :func:`warnings.warn` (shown once per distinct text)."""
    import warnings

    warnings.warn(warning, stacklevel=3)
