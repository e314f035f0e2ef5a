"""Independent pieces of work on several cores: :func:`fork_map`.

pandas and matplotlib hold the GIL, so threads do not help; processes do. Each call starts a
:class:`concurrent.futures.ProcessPoolExecutor` with the ``fork`` context after putting ``fn``
and the items in a module-level registry, so the workers inherit them copy-on-write and only an
item's index is pickled on the way in; results come back pickled. The calling process hands the
items out and waits (``n`` workers compute: a caller computing beside ``n - 1`` workers held its
own item's memory on top of theirs, 4.04 vs 3.85 GB at 400k files x 20 systems,
``bench/bench_memory.py``). Items are handed out one at a time, the most costly first, to
whichever worker is free; an item marked heavy (much memory) is not started while another heavy one runs (a
process takes a light one meanwhile). ``fn`` must give the same result whichever process runs
it, so the output equals ``[fn(x) for x in items]``.

Used for the diagnostics' independent analyses (:mod:`ser_diag.diagnostics`) and for drawing
and saving figures (:mod:`ser_diag.plots.saving`).

Failures and signals: an exception in a worker is raised again in the caller (the original
exception when it can be pickled, else a RuntimeError with the worker's traceback); on any
exception in the caller, KeyboardInterrupt included, the pending items are cancelled and the
workers terminated and reaped before it propagates, so a staging folder
(:func:`ser_diag.outputs.staged_output`) is removed only after nothing writes into it any more.
Workers ignore SIGINT (the caller handles Ctrl-C once) and on Linux die with the caller
(``PR_SET_PDEATHSIG``) when it is killed. A process with other threads running never forks (a
lock held by another thread would stay locked in the child): it computes serially.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ser_diag.memory import release_free_memory

__all__ = ["MAX_WORKERS", "fork_map", "fork_workers", "parts_by_cost", "worker_limit", "workers_for"]

#: At most this many processes compute at once.
MAX_WORKERS = 4

_limit: int | None = None   # set by worker_limit
#: ``(fn, items)`` of the running :func:`fork_map`, set before its pool forks: what the workers
#: compute, inherited rather than pickled.
_registry: tuple[Callable, list] | None = None


@contextlib.contextmanager
def worker_limit(n: int | None):
    """Within the block every :func:`fork_map` uses at most ``n`` computing processes
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


def _init_worker(parent: int, name: str) -> None:
    """In each worker: ignore Ctrl-C (the caller handles it), take ``name``, and (Linux) get
    SIGKILL when the caller dies (an orphan must not write into a folder the next run cleans
    up); exit at once if it is already gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    multiprocessing.current_process().name = name
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def _call(i: int):
    """In a worker: ``fn(items[i])`` from the inherited registry. An exception that would not
    come back intact (pickling fails either way) becomes a RuntimeError with its traceback."""
    fn, items = _registry
    try:
        return fn(items[i])
    except BaseException as err:
        try:
            pickle.loads(pickle.dumps(err))
        except Exception:
            text = "".join(traceback.format_exception(err))
            raise RuntimeError(f"a worker process (pid {os.getpid()}) failed:\n{text}") from None
        raise
    finally:
        release_free_memory()


class _Schedule:
    """The items not yet started, the costliest first, handed out to the pool's workers (one
    item per idle worker, submitted from this process): the first item in
    the order that may start now, where a heavy item may not while another heavy one runs.

    Shared by the caller and the pool's manager thread (which runs :meth:`_done`): a plain lock
    for the state and a :class:`queue.SimpleQueue` to wake the caller, whose ``with`` and waits
    a KeyboardInterrupt cannot leave locked (a :class:`threading.Condition` can: its Python-level
    acquire may be interrupted half-way, and the manager thread then waits for it forever)."""

    def __init__(self, order: list[int], heavy: list[bool], pool_size: int):
        self.pending, self.heavy = order, heavy
        self.lock = threading.Lock()
        self.wake: queue.SimpleQueue = queue.SimpleQueue()
        self.heavy_running = False
        self.left = len(order)        # items not finished
        self.idle = pool_size         # workers without an item
        self.error: BaseException | None = None
        self.results: list = [None] * len(heavy)
        self.executor: ProcessPoolExecutor | None = None
        self.processes: list = []     # the pool's workers, once forked (by the first submit)

    def take(self) -> int | None:
        """(Holding the lock) an item that may start now, -1 when the next one must wait for a
        heavy item, None when every item has started."""
        if not self.pending:
            return None
        for k, i in enumerate(self.pending):
            if not (self.heavy[i] and self.heavy_running):
                del self.pending[k]
                self.heavy_running |= self.heavy[i]
                return i
        return -1

    def finished(self, i: int, result=None, error: BaseException | None = None) -> None:
        """Item ``i`` ended (or could not be submitted): its worker slot is free again."""
        with self.lock:
            self.results[i] = result
            if error is not None and self.error is None:
                self.error = error
            self.heavy_running &= not self.heavy[i]
            self.left -= 1
            self.idle += 1
        self.wake.put(i)

    def fill(self) -> None:
        """Give each idle worker an item that may start now."""
        while True:
            with self.lock:
                if self.error is not None or not self.idle:
                    return
                i = self.take()
                if i is None or i == -1:
                    return
                self.idle -= 1
            try:
                future = self.executor.submit(_call, i)
            except BaseException as err:  # shut down or broken: the caller raises it
                self.finished(i, error=err)
                return
            if not self.processes:
                self.processes = list((getattr(self.executor, "_processes", None) or {}).values())
            future.add_done_callback(lambda f, i=i: self._done(i, f))

    def _done(self, i: int, future: Future) -> None:
        """A worker's item ended (run by the pool's manager thread): keep its result and give
        the worker the next item."""
        error = future.exception() if not future.cancelled() else RuntimeError(f"item {i} was cancelled")
        self.finished(i, None if error is not None else future.result(), error)
        self.fill()

    def _sleep(self) -> None:
        with contextlib.suppress(queue.Empty):
            self.wake.get(timeout=0.1)

    def wait_all(self) -> None:
        while True:
            with self.lock:
                if self.error is not None:
                    raise self.error
                if not self.left:
                    return
            self._sleep()


def _stop(executor: ProcessPoolExecutor, processes: list) -> None:
    """Cancel the items not started, terminate the workers and wait for them."""
    for work_item in list((getattr(executor, "_pending_work_items", None) or {}).values()):
        work_item.future.cancel()
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    executor.shutdown(wait=True, cancel_futures=True)
    for process in processes:
        process.join()


def _died(processes: list, err: BrokenProcessPool) -> RuntimeError:
    """The error for a worker that died without a word (killed, out of memory, ``os._exit``):
    its exit code (the others were terminated after it)."""
    died = [p for p in processes if p.exitcode not in (0, -signal.SIGTERM)] or processes
    codes = ", ".join(f"pid {p.pid} exit code {p.exitcode}" for p in died)
    return RuntimeError(f"a worker process ended before finishing its item ({codes}): {err}")


def fork_map(fn: Callable, items: Sequence, costs: Sequence[float] | None = None,
             workers: int | None = None, name: str = "ser_diag-worker",
             heavy: Sequence[bool] | None = None) -> list:
    """``[fn(x) for x in items]``, computed by up to ``workers`` processes (default
    :func:`fork_workers`): a pool of forked ones, while this one hands out the items and waits. Items are handed
    out one at a time, the most costly first (``costs``, default the items' order), each to
    whichever process is free, so the processes finish close together even when the costs are
    rough; every worker starts with one. ``heavy``: items that need much memory, never run two
    at a time (a process takes a light item meanwhile), which bounds the peak memory of all
    processes together. ``fn`` and the items are inherited by the workers (never pickled); the
    results of workers come back pickled (they must pickle). Serial with one worker, one item,
    or other threads running."""
    global _registry
    items = list(items)
    n = workers_for(workers, len(items))
    if n == 1:
        return [fn(item) for item in items]
    if _registry is not None:  # a fork_map inside a worker's item: serial (no pool in a pool)
        return [fn(item) for item in items]
    order = list(range(len(items))) if costs is None else sorted(range(len(items)), key=lambda i: (-costs[i], i))
    schedule = _Schedule(order, [False] * len(items) if heavy is None else [bool(h) for h in heavy], n)
    release_free_memory()                             # before the workers inherit the heap
    _registry = (fn, items)
    executor = None
    try:  # from the first fork on: whatever happens, no worker outlives this call
        executor = schedule.executor = ProcessPoolExecutor(
            n, mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker, initargs=(os.getpid(), name))
        gc.freeze()  # the workers' garbage collector leaves the inherited objects (and pages) alone
        try:
            schedule.fill()                           # the first submit forks every worker
        finally:
            gc.unfreeze()
        schedule.wait_all()
        executor.shutdown(wait=True)
    except BaseException as err:
        if executor is not None:
            _stop(executor, schedule.processes)
        if isinstance(err, BrokenProcessPool):
            raise _died(schedule.processes, err) from err
        raise
    finally:
        _registry = None
    return schedule.results
