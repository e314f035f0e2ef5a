"""Save a whole figure set as PDF + PNG on several cores: :func:`save_figures`.

Drawing text and rasterising are single-threaded in matplotlib, so a figure set is split into
disjoint parts saved side by side: the calling process saves one part while forked children
(``fork``: the figures are inherited, nothing is pickled) save the others. Each file is written
by :func:`~ser_diag.plots._style.save_figure` exactly as a serial run writes it (same bytes;
only which process writes it differs). Where ``fork`` is unavailable, or for a few figures or
one core, it saves serially.

Failures and signals: an exception in a child is raised again in the caller (the original
exception when it can be pickled, else a RuntimeError with the child's traceback); on any
exception in the caller, KeyboardInterrupt included, the children are killed and reaped before
it propagates, so a staging folder (:func:`ser_diag.outputs.staged_output`) is removed only
after nothing writes into it any more. Children ignore SIGINT (the caller handles Ctrl-C once)
and on Linux die with the caller (``PR_SET_PDEATHSIG``) when it is killed.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import traceback
from pathlib import Path

from matplotlib.text import Text

from ser_diag.plots._style import readable_text, save_figure

__all__ = ["save_figures", "save_workers"]

#: Below this many figures a set is saved serially (forking costs more than it saves).
MIN_PARALLEL_FIGURES = 4
#: At most this many processes save at once (the caller included).
MAX_WORKERS = 4


def save_workers() -> int:
    """Processes :func:`save_figures` uses by default: the cores this process may run on
    (at most :data:`MAX_WORKERS`), or 1 where ``fork`` is unavailable."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def _cost(fig) -> int:
    """Rough saving cost of ``fig``: a fixed part plus one unit per text artist (text layout
    dominates the time of saving)."""
    return 60 + len(fig.findobj(Text))


def _parts(costs: list[int], n: int) -> list[list[int]]:
    """Indices split into ``n`` parts of similar total cost (largest first onto the lightest
    part; deterministic), each part in the original order."""
    loads, parts = [0] * n, [[] for _ in range(n)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        k = loads.index(min(loads))
        loads[k] += costs[i]
        parts[k].append(i)
    return [sorted(p) for p in parts if p]


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL when the parent dies (an orphan must not write into a folder the
    next run cleans up); exit at once if it is already gone."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _child(conn, parent: int, items: list, out: Path, dpi: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        for stem, fig in items:
            save_figure(fig, out, stem, dpi=dpi)
        conn.send_bytes(b"")
    except BaseException as err:  # report any failure to the parent, which raises it
        text = "".join(traceback.format_exception(err))
        try:
            payload = pickle.dumps((err, text))
            pickle.loads(payload)  # some exceptions pickle but cannot be rebuilt
        except Exception:
            payload = pickle.dumps((None, text))
        conn.send_bytes(payload)
    finally:
        conn.close()


def _raise_from_child(payload: bytes, process) -> None:
    err, text = pickle.loads(payload)
    if err is None:
        raise RuntimeError(f"saving figures failed in a worker process (pid {process.pid}):\n{text}")
    raise err


def save_figures(figures: dict, out_dir: str | os.PathLike, dpi: int = 150, workers: int | None = None) -> list[Path]:
    """Write every ``{stem: Figure}`` of ``figures`` as ``<out_dir>/<stem>.pdf`` and ``.png``
    (:func:`~ser_diag.plots._style.save_figure`), using up to ``workers`` processes (default
    :func:`save_workers`); returns the paths in the order of ``figures`` (PDF, PNG per figure).
    The files are byte-identical to a serial run (``workers=1``). The figures saved by a child
    are left unsaved in this process (no layout run), their texts made readable."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = list(figures.items())
    written = [out / f"{stem}{suffix}" for stem, _ in items for suffix in (".pdf", ".png")]
    n = save_workers() if workers is None else max(1, int(workers))
    if n > 1 and "fork" not in multiprocessing.get_all_start_methods():
        n = 1
    if n == 1 or len(items) < MIN_PARALLEL_FIGURES:
        for stem, fig in items:
            save_figure(fig, out, stem, dpi=dpi)
        return written
    for _, fig in items:  # before forking, so every process sees the same texts
        readable_text(fig)
    parts = _parts([_cost(fig) for _, fig in items], min(n, len(items)))
    mine, theirs = parts[0], parts[1:]
    ctx = multiprocessing.get_context("fork")
    children = []
    try:  # from the first fork on: whatever happens, no child outlives this call
        gc.freeze()  # the children's garbage collector leaves the inherited objects (and pages) alone
        try:
            for part in theirs:
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(send, os.getpid(), [items[i] for i in part], out, dpi),
                                      daemon=True, name="ser_diag-save")
                children.append((process, receive))
                process.start()
                send.close()
        finally:
            gc.unfreeze()
        for i in mine:
            save_figure(items[i][1], out, items[i][0], dpi=dpi)
        for process, receive in children:
            try:
                payload = receive.recv_bytes()
            except EOFError:  # died without a word (killed, out of memory)
                process.join()
                raise RuntimeError(f"a figure-saving worker process (pid {process.pid}) ended with exit "
                                   f"code {process.exitcode} before saving its figures") from None
            if payload:
                _raise_from_child(payload, process)
        for process, _ in children:
            process.join()
    finally:
        for process, receive in children:
            if process.pid is not None:  # started
                if process.is_alive():
                    process.kill()
                process.join()
            receive.close()
    return written
