"""Output folders that are whole or absent.

A command writes into a staging folder beside ``out`` (same parent, hence same device) while
holding a lock file for ``out``; on success the staging folder *becomes* ``out`` by one
rename -- an atomic exchange (Linux ``renameat2(RENAME_EXCHANGE)``) where the file system
offers it, else rename-old-away then rename-new-in, with the old set kept until the new one
is in place. A reader sees the old set or the new set, never a mix, and a rerun that writes
fewer files (categorical only) leaves none of the old ones behind.

* Checked before any computing (:func:`check_writable`): a path under a regular file, a
  read-only or unwritable parent, a mount point (it cannot be renamed), the current folder.
  Each is an :class:`~ser_diag.errors.OutputError` (one line, exit 2 on the CLI).
* A second run into the same ``out`` while one holds the lock exits with an OutputError
  naming the holder's pid (or waits ``wait`` seconds first).
* Staging (``.NAME.staging-*``) and replaced (``.NAME.old-*``) folders left by a killed run are
  removed by the next run into ``out``; a run killed between the two renames of the fallback
  leaves the old set under ``.NAME.old-*``, which the next run puts back first.
* Every published folder holds :data:`MARKER`. A folder without it is only replaced when all
  of its top-level entries are names the new output also has (outputs of older versions), so
  ``--out ~`` or ``--out`` a folder of inputs never deletes anything.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from ser_diag.errors import OutputError, quoted

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock
    fcntl = None

_UMASK = os.umask(0)
os.umask(_UMASK)

#: File in every published output folder; its presence allows replacing the folder as a whole.
MARKER = ".ser_diag-output"
_MARKER_TEXT = "Written by ser_diag. The whole folder is replaced when a command writes here again.\n"
_STAGING, _OLD, _LOCK = ".staging-", ".old-", ".ser_diag-lock"


def _sibling(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}{kind}{secrets.token_hex(4)}"


def _leftovers(out: Path, kind: str) -> list[Path]:
    """Staging or old folders of ``out`` in its parent (``.NAME.staging-<8 chars>``)."""
    pattern = re.compile(re.escape(f".{out.name}{kind}") + r"[A-Za-z0-9_]{8}")
    try:
        names = os.listdir(out.parent)
    except OSError:
        return []
    return sorted(out.parent / n for n in names if pattern.fullmatch(n))


def _existing_ancestor(path: Path, given) -> Path:
    """The nearest existing folder of ``path`` (itself or a parent); a regular file on the way
    is an OutputError."""
    for folder in [path, *path.parents]:
        if os.path.lexists(folder):
            if not folder.is_dir():
                what = "a symbolic link that loops or points nowhere" if folder.is_symlink() else "a file"
                if folder == path:
                    raise OutputError(given, f"exists and is {what}, not a folder")
                raise OutputError(given, f"{folder} is {what}, not a folder, so nothing can be written under it")
            return folder
    raise OutputError(given, "no existing folder above it")  # pragma: no cover - / exists


def check_writable(out_dir: str | os.PathLike) -> Path:
    """Check, before any computing, that ``out_dir`` can be published; return its real path.

    OutputError (one line) when a parent is a regular file, ``out_dir`` is a file, a mount
    point or the current folder (or above it), or the folder that would hold it is not
    writable (read-only file system, permissions). Nothing is left on disk.
    """
    given = out_dir
    out = Path(os.path.realpath(out_dir))
    if out.parent == out or os.path.ismount(out):
        raise OutputError(given, "is a mount point, which cannot be replaced by renaming; "
                          f"write into a sub-folder such as {Path(given) / 'results'}")
    cwd = Path(os.getcwd())
    if out == cwd or out in cwd.parents:
        raise OutputError(given, "is the current folder or contains it; write into a sub-folder")
    ancestor = _existing_ancestor(out, given)
    if ancestor == out:  # staging, lock and the swap happen in the parent
        ancestor = out.parent
    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.probe-", dir=ancestor))
    except OSError as err:
        raise OutputError(given, f"cannot write in {ancestor} ({err.strerror})") from None
    return out


@contextlib.contextmanager
def _locked(out: Path, given, wait: float):
    """Hold ``.NAME.ser_diag-lock`` beside ``out`` (flock, released by the kernel if the process
    dies); a held lock is an OutputError after ``wait`` seconds."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    lock = out.parent / f".{out.name}{_LOCK}"
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if time.monotonic() >= deadline:
                raise OutputError(given, f"another ser_diag run (pid {holder}) is writing this folder; "
                                  "wait for it to finish or choose another --out") from None
            time.sleep(0.05)
            continue
        try:  # the previous holder may have unlinked the file between our open and flock
            current = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _recover(out: Path) -> None:
    """Under the lock: put back an old set a killed run left renamed away, remove the rest."""
    olds = _leftovers(out, _OLD)
    if olds and not os.path.lexists(out):
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, out)
        olds.remove(newest)
    for stale in olds + _leftovers(out, _STAGING):
        shutil.rmtree(stale, ignore_errors=True)


def _exchange(new: Path, old: Path) -> bool:
    """Atomically swap the two paths (``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(old))


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _publish(stage: Path, out: Path, given) -> None:
    """Make ``stage`` the folder ``out`` (see the module docstring)."""
    Path(stage, MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
    if os.path.lexists(out):
        old_names = set(os.listdir(out))
        if old_names and MARKER not in old_names:
            foreign = sorted(old_names - set(os.listdir(stage)))
            if foreign:
                raise OutputError(given, f"holds {quoted(foreign[0])}" + (f" and {len(foreign) - 1} more"
                                  if len(foreign) > 1 else "") + " that ser_diag did not write; the folder "
                                  "is replaced as a whole, so move them away or choose another --out")
        if not _exchange(stage, out):
            old = _sibling(out, _OLD)
            os.rename(out, old)
            try:
                os.rename(stage, out)
            except BaseException:
                os.rename(old, out)
                raise
            stage = old
        shutil.rmtree(stage, ignore_errors=True)  # the old set, now beside the new one
    else:
        os.rename(stage, out)
    _fsync_folder(out.parent)


def _as_output_error(err: OSError, out: Path, given) -> OutputError | None:
    """An OSError about ``out``, its staging or old folder, as one line naming ``out``."""
    names = [os.fsdecode(n) for n in (err.filename, err.filename2) if n is not None]
    if any(n.startswith((str(out), str(out.parent / f".{out.name}."))) for n in names):
        return OutputError(given, f"cannot write ({err.strerror or err})")
    return None


@contextlib.contextmanager
def staged_output(out_dir: str | os.PathLike, wait: float = 0.0):
    """Yield an empty staging folder beside ``out_dir``; on success it replaces ``out_dir`` as a
    whole (see the module docstring).

    Enter it *before* computing: the checks of :func:`check_writable` and the lock come first.
    On any exception the staging folder (and any parent folder this call created) is removed
    and ``out_dir`` is left as it was; an OSError while writing or publishing becomes an
    OutputError. ``wait``: seconds to wait for another run holding ``out_dir``.
    """
    given = out_dir
    out = check_writable(out_dir)
    created = [p for p in reversed(out.parents) if not p.exists()]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with _locked(out, given, wait):
            _recover(out)
            stage = Path(tempfile.mkdtemp(prefix=f".{out.name}{_STAGING}", dir=out.parent))
            try:
                os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes 0700; the published folder gets the usual mode
                yield stage
                _publish(stage, out, given)
            except BaseException as err:
                shutil.rmtree(stage, ignore_errors=True)
                if isinstance(err, OSError) and not isinstance(err, OutputError):
                    mapped = _as_output_error(err, out, given)
                    if mapped is not None:
                        raise mapped from None
                raise
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


#: Column added to every table written from synthetic data (value ``True`` on every row).
SYNTHETIC_COLUMN = "synthetic"


def table_csv(table, synthetic: bool) -> str:
    """A tidy table as CSV text, every float at :data:`ser_diag.precision.STATISTIC_DIGITS`
    significant digits (:func:`ser_diag.precision.csv_text`: the bytes do not depend on the
    machine's summation order); a table made from synthetic data gets a last column
    ``synthetic`` = ``True``, so a table copied out of its folder still says where it came from.

    >>> import pandas as pd
    >>> print(table_csv(pd.DataFrame({"system": ["a"], "estimate": [0.6670106250017008]}), synthetic=True), end="")
    system,estimate,synthetic
    a,0.667010625,True
    """
    from ser_diag.precision import csv_text

    if synthetic:
        table = table.assign(**{SYNTHETIC_COLUMN: True})
    return csv_text(table)
