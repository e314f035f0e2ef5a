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

__all__ = ["map_figures", "save_figures", "save_workers"]

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


def _child(conn, parent: int, fn, items: list) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        results = [fn(stem, fig) for stem, fig in items]
        conn.send_bytes(pickle.dumps((True, results)))
    except BaseException as err:  # report any failure to the parent, which raises it
        text = "".join(traceback.format_exception(err))
        try:
            payload = pickle.dumps((False, (err, text)))
            pickle.loads(payload)  # some exceptions pickle but cannot be rebuilt
        except Exception:
            payload = pickle.dumps((False, (None, text)))
        conn.send_bytes(payload)
    finally:
        conn.close()


def _result_of_child(payload: bytes, process) -> list:
    ok, result = pickle.loads(payload)
    if ok:
        return result
    err, text = result
    if err is None:
        raise RuntimeError(f"saving figures failed in a worker process (pid {process.pid}):\n{text}")
    raise err


def map_figures(fn, figures: dict, workers: int | None = None) -> list:
    """``[fn(stem, fig) for stem, fig in figures.items()]``, computed by up to ``workers``
    processes (default :func:`save_workers`): this one and forked children, each on a part of
    similar cost; a child's results come back pickled. ``fn`` must not depend on which process
    runs it (it draws or writes a figure). The texts of every figure are made readable first
    (:func:`~ser_diag.plots._style.readable_text`); a figure handled by a child is otherwise left
    as it was in this process (no layout run)."""
    items = list(figures.items())
    n = save_workers() if workers is None else max(1, int(workers))
    if n > 1 and "fork" not in multiprocessing.get_all_start_methods():
        n = 1
    if n == 1 or len(items) < MIN_PARALLEL_FIGURES:
        return [fn(stem, fig) for stem, fig in items]
    for _, fig in items:  # before forking, so every process sees the same texts
        readable_text(fig)
    parts = _parts([_cost(fig) for _, fig in items], min(n, len(items)))
    results: list = [None] * len(items)
    ctx = multiprocessing.get_context("fork")
    children = []
    try:  # from the first fork on: whatever happens, no child outlives this call
        gc.freeze()  # the children's garbage collector leaves the inherited objects (and pages) alone
        try:
            for part in parts[1:]:
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(send, os.getpid(), fn, [items[i] for i in part]),
                                      daemon=True, name="ser_diag-figures")
                children.append((process, receive, part))
                process.start()
                send.close()
        finally:
            gc.unfreeze()
        for i in parts[0]:
            results[i] = fn(*items[i])
        for process, receive, part in children:
            try:
                payload = receive.recv_bytes()
            except EOFError:  # died without a word (killed, out of memory)
                process.join()
                raise RuntimeError(f"a figure worker process (pid {process.pid}) ended with exit "
                                   f"code {process.exitcode} before finishing its figures") from None
            for i, result in zip(part, _result_of_child(payload, process)):
                results[i] = result
        for process, _, _ in children:
            process.join()
    finally:
        for process, receive, _ in children:
            if process.pid is not None:  # started
                if process.is_alive():
                    process.kill()
                process.join()
            receive.close()
    return results


def save_figures(figures: dict, out_dir: str | os.PathLike, dpi: int = 150, workers: int | None = None) -> list[Path]:
    """Write every ``{stem: Figure}`` of ``figures`` as ``<out_dir>/<stem>.pdf`` and ``.png``
    (:func:`~ser_diag.plots._style.save_figure`), on up to ``workers`` processes
    (:func:`map_figures`); returns the paths in the order of ``figures`` (PDF, PNG per figure).
    The files are byte-identical to a serial run (``workers=1``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = map_figures(lambda stem, fig: save_figure(fig, out, stem, dpi=dpi), figures, workers)
    return [path for paths in written for path in paths]
