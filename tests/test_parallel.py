"""ser_diag.parallel.fork_map: the results of a serial loop, computed on forked processes."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest

from ser_diag import parallel


def test_results_in_order_and_computed_by_several_processes():
    parent = os.getpid()
    import time

    def square(x):
        time.sleep(0.2)
        return x * x, os.getpid()

    out = parallel.fork_map(square, range(12), costs=[1.0] * 12, workers=2)
    assert [value for value, _ in out] == [x * x for x in range(12)]
    pids = {pid for _, pid in out}
    assert parent not in pids and len(pids) == 2              # two workers, each took items; the caller waits
    assert multiprocessing.active_children() == []


def test_the_costliest_items_go_first_one_to_each_process():
    import time

    def timed(x):
        start = time.monotonic()
        time.sleep(0.3)
        return x, os.getpid(), start, time.monotonic()

    out = parallel.fork_map(timed, [0, 1, 2], costs=[1.0, 5.0, 3.0], workers=2)
    at = {x: (pid, start, end) for x, pid, start, end in out}
    # items 1 (cost 5) and 2 (cost 3) start first, one in each worker; item 0 once one is free
    assert at[1][0] != at[2][0] and os.getpid() not in (at[1][0], at[2][0])
    assert at[0][1] >= min(at[1][2], at[2][2]) - 0.05
    assert [r[0] for r in out] == [0, 1, 2]


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


def test_worker_limit_one_computes_everything_in_this_process():
    with parallel.worker_limit(1):
        out = parallel.fork_map(lambda x: os.getpid(), range(6), workers=4)
    assert set(out) == {os.getpid()}


def test_the_pool_is_gone_after_each_call():
    """No worker and no pool thread outlives a call, so the next call may fork again."""
    import time

    def pid(x):
        time.sleep(0.2)
        return os.getpid()

    for _ in range(2):
        out = parallel.fork_map(pid, range(6), workers=2)
        assert len(set(out)) == 2 and os.getpid() not in out
        assert multiprocessing.active_children() == [] and threading.active_count() == 1
        assert parallel.workers_for(2, 10) == 2


def test_the_original_exception_type_comes_back():
    from ser_diag.errors import InputError

    parent = os.getpid()

    def fail_in_child(x):
        if os.getpid() != parent:
            raise InputError("pred.csv", "EmoClass", f"bad item {x}", row=3)
        import time
        time.sleep(0.2)
        return x

    with pytest.raises(InputError) as raised:
        parallel.fork_map(fail_in_child, range(6), workers=2)
    error = raised.value                   # the same one line, file, row and column as raised there
    assert str(error).startswith("pred.csv: row 3, column 'EmoClass': bad item ")
    assert (error.file, error.row, error.column) == ("pred.csv", 3, "EmoClass")
    assert multiprocessing.active_children() == []


class _Unpicklable(Exception):
    def __init__(self, a, b):  # pickles, but cannot be rebuilt from its args
        super().__init__(f"{a}-{b}")


def test_an_exception_that_cannot_come_back_becomes_a_runtime_error_with_its_traceback():
    parent = os.getpid()

    def fail_in_child(x):
        if os.getpid() != parent:
            raise _Unpicklable(1, 2)
        import time
        time.sleep(0.2)
        return x

    with pytest.raises(RuntimeError, match="_Unpicklable: 1-2"):
        parallel.fork_map(fail_in_child, range(6), workers=2)
    assert multiprocessing.active_children() == []


def test_heavy_items_never_overlap_across_processes(tmp_path):
    """Each heavy item writes its start and end times to a file; no two heavy spans overlap
    however many processes run, and light items run meanwhile."""
    import time

    def item(x):
        start = time.time()
        time.sleep(0.2 if x % 2 == 0 else 0.05)
        end = time.time()
        (tmp_path / f"{x}.span").write_text(f"{start} {end} {os.getpid()}")
        return x

    heavy = [x % 2 == 0 for x in range(10)]
    out = parallel.fork_map(item, range(10), costs=list(range(10, 0, -1)), workers=3, heavy=heavy)
    assert out == list(range(10))
    spans = {x: tuple(map(float, (tmp_path / f"{x}.span").read_text().split())) for x in range(10)}
    heavy_spans = sorted(spans[x][:2] for x in range(10) if heavy[x])
    assert all(later[0] >= earlier[1] for earlier, later in zip(heavy_spans, heavy_spans[1:]))
    assert len({int(s[2]) for s in spans.values()}) == 3      # every process computed
    # a light item ran while a heavy one did
    assert any(h[0] < s[1] and s[0] < h[1] for x, s in spans.items() if not heavy[x] for h in heavy_spans)


def _pids_gone(pids) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


@pytest.mark.parametrize("where", ["signal", "alarm"])
def test_ctrl_c_in_the_caller_leaves_no_live_worker(tmp_path, where):
    """Ctrl-C while the caller waits for the workers (SIGINT sent to it, or a KeyboardInterrupt
    raised in it): the workers (which ignore SIGINT) are terminated and reaped before
    KeyboardInterrupt propagates, and none writes anything afterwards."""
    import signal
    import time

    parent = os.getpid()

    def item(x):
        (tmp_path / f"{os.getpid()}.pid").write_text("")
        if where == "signal" and x == 0:
            time.sleep(0.5)
            os.kill(parent, signal.SIGINT)          # what a terminal's Ctrl-C sends the caller
        time.sleep(3)
        (tmp_path / f"{x}.late").write_text("")
        return x

    previous = signal.getsignal(signal.SIGALRM)
    if where == "alarm":
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        signal.setitimer(signal.ITIMER_REAL, 1.0)
    start = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            parallel.fork_map(item, range(8), workers=3)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < 3
    pids = [int(p.stem) for p in tmp_path.glob("*.pid")]
    assert len(pids) == 3 and parent not in pids and _pids_gone(pids)
    assert multiprocessing.active_children() == [] and threading.active_count() == 1
    time.sleep(3.5)
    assert list(tmp_path.glob("*.late")) == []


def test_nothing_big_is_pickled_on_the_way_in(monkeypatch):
    """The workers inherit ``fn`` and the items: what goes to them is an index, whatever the
    items weigh (here 4 x 40 MB)."""
    from multiprocessing.reduction import ForkingPickler

    sent = []
    dumps = ForkingPickler.dumps

    def counting(obj, protocol=None):
        data = dumps(obj, protocol)
        sent.append(len(data))
        return data

    monkeypatch.setattr(ForkingPickler, "dumps", counting)
    big = [bytes([k]) * 40_000_000 for k in range(4)]
    def item(b):
        import time
        time.sleep(0.2)                          # long enough that both workers get one
        return len(b), b[0], os.getpid()

    out = parallel.fork_map(item, big, workers=2)
    assert [(n, k) for n, k, _ in out] == [(40_000_000, k) for k in range(4)]
    assert len({pid for *_, pid in out}) == 2
    assert sent and sum(sent) < 10_000


def test_only_heavy_items_run_one_after_the_other(tmp_path):
    """Every item heavy: one runs at a time (the next is handed out once the running one is
    done), whichever worker takes it, and no two overlap."""
    import time

    def item(x):
        start = time.time()
        time.sleep(0.1)
        return x, start, time.time()

    out = parallel.fork_map(item, range(5), workers=2, heavy=[True] * 5)
    assert [x for x, *_ in out] == list(range(5))
    spans = sorted(span for _, *span in out)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(not os.path.exists("/proc/self"), reason="Linux only (PR_SET_PDEATHSIG)")
def test_workers_die_with_a_killed_caller(tmp_path):
    """SIGKILL to the caller (nothing to clean up with): its workers get SIGKILL too, so no
    orphan writes into an output folder afterwards."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from ser_diag import parallel
        def item(x):
            Path({str(tmp_path)!r}, f"{{os.getpid()}}.pid").write_text("")
            time.sleep(30)
        parallel.fork_map(item, range(3), workers=3)
    """)
    caller = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("*.pid"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = [int(p.stem) for p in tmp_path.glob("*.pid") if int(p.stem) != caller.pid]
        assert len(pids) == 3                         # three workers; the caller only waits
    finally:
        caller.send_signal(signal.SIGKILL)
        caller.wait()
    deadline = time.monotonic() + 10
    while not _pids_gone(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _pids_gone(pids)


def test_ctrl_c_at_any_moment_never_hangs():
    """Ctrl-Cs at random moments while the caller computes, waits for a heavy item or for the
    workers: each call ends with KeyboardInterrupt and no worker left, none hangs between the
    caller and the pool's thread (a smoke test: the window that once left a Condition locked
    is too narrow to hit on purpose). In a subprocess, so a hang is a failure."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import multiprocessing, random, signal, time
        from ser_diag import parallel
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        random.seed(0)
        def item(x):
            time.sleep(0.002 * (x % 5))
            return x
        for k in range(25):
            signal.setitimer(signal.ITIMER_REAL, random.uniform(0.01, 0.3))
            try:
                parallel.fork_map(item, range(400), workers=3, heavy=[x % 3 == 0 for x in range(400)])
            except KeyboardInterrupt:
                pass
            signal.setitimer(signal.ITIMER_REAL, 0)
            assert multiprocessing.active_children() == []
        print("ok")
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
