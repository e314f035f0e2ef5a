"""ser_diag.parallel.fork_map: the results of a serial loop, computed on forked processes."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from ser_diag import parallel


def test_results_in_order_and_computed_by_several_processes():
    parent = os.getpid()
    out = parallel.fork_map(lambda x: (x * x, os.getpid()), range(12), costs=[1.0] * 12, workers=2)
    assert [value for value, _ in out] == [x * x for x in range(12)]
    pids = {pid for _, pid in out}
    assert parent in pids and len(pids) == 2                  # each process took at least one item
    assert multiprocessing.active_children() == []


def test_the_costliest_items_go_first_one_to_each_process():
    out = parallel.fork_map(lambda x: (x, os.getpid()), [0, 1, 2], costs=[1.0, 5.0, 3.0], workers=2)
    by_pid = {}
    for x, pid in out:
        by_pid.setdefault(pid, []).append(x)
    # item 1 (cost 5) starts in the caller, item 2 (cost 3) in the child
    assert 1 in by_pid[os.getpid()] and any(2 in xs for pid, xs in by_pid.items() if pid != os.getpid())
    assert sorted(x for x, _ in out) == [0, 1, 2]


def test_an_error_in_a_child_is_raised_in_the_caller():
    parent = os.getpid()

    def fail_in_child(x):
        if os.getpid() != parent:
            raise ValueError(f"bad item {x}")
        return x

    with pytest.raises(ValueError, match="bad item"):
        parallel.fork_map(fail_in_child, range(4), workers=2)
    assert multiprocessing.active_children() == []


def test_serial_while_another_thread_runs():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert parallel.workers_for(2, 10) == 1
        out = parallel.fork_map(lambda x: os.getpid(), range(4), workers=2)
        assert set(out) == {os.getpid()}
    finally:
        stop.set()
        thread.join()
    assert parallel.workers_for(2, 10) == 2 and parallel.workers_for(3, 2) == 2


def test_parts_by_cost():
    assert parallel.parts_by_cost([100, 1, 1, 1, 97], 2) == [[0], [1, 2, 3, 4]]
    assert parallel.parts_by_cost([5, 5, 5], 4) == [[0], [1], [2]]


def test_heavy_items_never_run_at_the_same_time():
    """Items marked heavy (much memory) run one at a time; light items fill the other process."""
    import time

    def timed(x):
        start = time.monotonic()
        time.sleep(0.15)
        return x, os.getpid(), start, time.monotonic()

    heavy = [True, True, False, True, False, False]
    out = parallel.fork_map(timed, range(6), costs=[5, 4, 3, 2, 1, 1], workers=2, heavy=heavy)
    assert [x for x, *_ in out] == list(range(6))
    spans = sorted((start, end) for (x, _, start, end), h in zip(out, heavy) if h)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert len({pid for _, pid, _, _ in out}) == 2
