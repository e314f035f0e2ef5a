"""Independent pieces of work on several cores: :func:`fork_map`.

pandas and matplotlib hold the GIL, so threads do not help; forked processes do. The calling
process and forked children (``fork``: the inputs are inherited copy-on-write, nothing is
pickled on the way in) take the items one at a time, the most costly first, until none is left;
a child's results come back pickled. ``fn`` must give the same result whichever process runs it, so the
output equals ``[fn(x) for x in items]``.

Used for the diagnostics' independent analyses (:mod:`ser_diag.diagnostics`) and for drawing
and saving figures (:mod:`ser_diag.plots.saving`).

Failures and signals: an exception in a child is raised again in the caller (the original
exception when it can be pickled, else a RuntimeError with the child's traceback); on any
exception in the caller, KeyboardInterrupt included, the children are killed and reaped before
it propagates, so a staging folder (:func:`ser_diag.outputs.staged_output`) is removed only
after nothing writes into it any more. Children ignore SIGINT (the caller handles Ctrl-C once)
and on Linux die with the caller (``PR_SET_PDEATHSIG``) when it is killed. A process with other
threads running never forks (a lock held by another thread would stay locked in the child):
it computes serially.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence

from ser_diag.memory import release_free_memory

__all__ = ["MAX_WORKERS", "fork_map", "fork_workers", "parts_by_cost", "worker_limit", "workers_for"]

#: At most this many processes compute at once (the caller included).
MAX_WORKERS = 4

_limit: int | None = None   # set by worker_limit


@contextlib.contextmanager
def worker_limit(n: int | None):
    """Within the block every :func:`fork_map` uses at most ``n`` processes, the caller included
    (``1``: everything in this process; None: no limit beyond the cores).
    What the command line's ``--workers`` sets; the results are the same for any ``n``.

    >>> with worker_limit(1):
    ...     workers_for(4, 10)
    1
    """
    global _limit
    if n is not None and int(n) < 1:
        raise ValueError(f"worker limit must be at least 1, not {n}")
    previous, _limit = _limit, None if n is None else int(n)
    try:
        yield
    finally:
        _limit = previous


def fork_workers() -> int:
    """Processes :func:`fork_map` uses by default: the cores this process may run on (at most
    :data:`MAX_WORKERS` and any :func:`worker_limit`); 1 where ``fork`` is unavailable or other
    threads are running."""
    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS, _limit or MAX_WORKERS))


def workers_for(workers: int | None, n_items: int) -> int:
    """Processes :func:`fork_map` runs ``n_items`` items on: ``workers`` (None: :func:`fork_workers`),
    at most one per item, and 1 where ``fork`` is unavailable or other threads are running."""
    n = fork_workers() if workers is None else max(1, int(workers))
    if _limit is not None:
        n = min(n, _limit)
    if n > 1 and ("fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1):
        n = 1
    return max(1, min(n, n_items))


def parts_by_cost(costs: Sequence[float], n: int) -> list[list[int]]:
    """Indices split into ``n`` parts of similar total cost (largest first onto the lightest
    part; deterministic), each part in the original order; no empty part.

    >>> parts_by_cost([100, 1, 1, 1, 97], 2)
    [[0], [1, 2, 3, 4]]
    """
    loads, parts = [0.0] * n, [[] for _ in range(n)]
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




class _Queue:
    """Items handed out across forked processes (shared memory, one lock): the first free item
    in ``order``, except that a ``heavy`` item (large memory) is not started while another heavy
    item runs; a process then takes a light one, or waits when only heavy ones are left."""

    def __init__(self, ctx, order: list[int], heavy: list[bool]):
        self.order, self.heavy = order, heavy
        self.lock = ctx.Lock()
        self.taken = ctx.RawArray("b", len(order))      # by position in order
        self.heavy_running = ctx.RawValue("i", 0)

    def take(self) -> int | None:
        """An item to run now, -1 when one must wait, None when every item is taken."""
        with self.lock:
            free = [k for k in range(len(self.order)) if not self.taken[k]]
            if not free:
                return None
            for k in free:
                i = self.order[k]
                if self.heavy[i] and self.heavy_running.value:
                    continue
                self.taken[k] = 1
                if self.heavy[i]:
                    self.heavy_running.value = 1
                return i
            return -1

    def done(self, i: int) -> None:
        if self.heavy[i]:
            with self.lock:
                self.heavy_running.value = 0

    def run(self, fn, items: list, first: int | None, keep_waiting) -> Iterator[tuple[int, object]]:
        """``(i, fn(items[i]))`` for ``first`` and then the items this process takes."""
        i = first
        while True:
            if i is None:
                return
            if i == -1:
                if not keep_waiting():
                    return
                time.sleep(0.02)
            else:
                try:
                    result = fn(items[i])
                finally:
                    self.done(i)
                release_free_memory()
                yield i, result
            i = self.take()


def _child(conn, parent: int, fn, items: list, first: int | None, queue: _Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    try:
        results = list(queue.run(fn, items, first, lambda: os.getppid() == parent))
        conn.send_bytes(pickle.dumps((True, results), protocol=pickle.HIGHEST_PROTOCOL))
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
        raise RuntimeError(f"a worker process (pid {process.pid}) failed:\n{text}")
    raise err


def fork_map(fn: Callable, items: Sequence, costs: Sequence[float] | None = None,
             workers: int | None = None, name: str = "ser_diag-worker",
             heavy: Sequence[bool] | None = None) -> list:
    """``[fn(x) for x in items]``, computed by up to ``workers`` processes (default
    :func:`fork_workers`): this one and forked children. Items are handed out one at a time,
    the most costly first (``costs``, default the items' order), each to whichever process is
    free (shared memory), so the processes finish close together even when the costs are rough;
    every process starts with one. ``heavy``: items that need much memory, never run two at a
    time (a process takes a light item meanwhile), which bounds the peak memory of all processes
    together. Results of children come back pickled (they must pickle). Serial with one worker,
    one item, or other threads running."""
    items = list(items)
    n = workers_for(workers, len(items))
    if n == 1:
        return [fn(item) for item in items]
    order = list(range(len(items))) if costs is None else sorted(range(len(items)), key=lambda i: (-costs[i], i))
    results: list = [None] * len(items)
    ctx = multiprocessing.get_context("fork")
    queue = _Queue(ctx, order, [False] * len(items) if heavy is None else [bool(h) for h in heavy])
    release_free_memory()                                    # before the children inherit the heap
    firsts = [queue.take() for _ in range(n)]           # one each to start with, taken before forking
    firsts = [i if i != -1 else queue.take() for i in firsts]
    children = []
    try:  # from the first fork on: whatever happens, no child outlives this call
        gc.freeze()  # the children's garbage collector leaves the inherited objects (and pages) alone
        try:
            for j in range(1, n):
                receive, send = ctx.Pipe(duplex=False)
                process = ctx.Process(target=_child, args=(send, os.getpid(), fn, items, firsts[j], queue),
                                      daemon=True, name=name)
                children.append((process, receive))
                process.start()
                send.close()
        finally:
            gc.unfreeze()
        for i, result in queue.run(fn, items, firsts[0], lambda: all(p.is_alive() for p, _ in children)):
            results[i] = result
        for process, receive in children:
            try:
                payload = receive.recv_bytes()
            except EOFError:  # died without a word (killed, out of memory)
                process.join()
                raise RuntimeError(f"a worker process (pid {process.pid}) ended with exit code "
                                   f"{process.exitcode} before finishing its part") from None
            for i, result in _result_of_child(payload, process):
                results[i] = result
        for process, _ in children:
            process.join()
    finally:
        for process, receive in children:
            if process.pid is not None:  # started
                if process.is_alive():
                    process.kill()
                process.join()
            receive.close()
    return results
