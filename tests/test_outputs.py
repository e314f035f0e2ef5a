"""Outputs whole or absent (issue 10): checks before computing, a lock per output folder, the
folder published as a whole, leftovers of killed runs cleaned, same-device staging."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from ser_diag import outputs
from ser_diag.cli import main
from ser_diag.errors import InputError, OutputError
from ser_diag.outputs import MARKER, check_writable, staged_output


def publish(out: Path, names, text: str = "x") -> None:
    with staged_output(out) as stage:
        for name in names:
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text)


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {MARKER}


def leftovers(parent: Path) -> list[str]:
    """Staging, old, probe folders and lock files of ser_diag in ``parent``."""
    return sorted(n for n in os.listdir(parent) if n.startswith(".") and
                  any(k in n for k in (".staging-", ".old-", ".probe-", ".ser_diag-lock")))


# ------------------------------------------------------------------- the folder as a whole

def test_a_rerun_replaces_the_folder_as_a_whole(tmp_path):
    out = tmp_path / "figs"
    publish(out, ["a.pdf", "tables/attributes.csv", "tables/categorical.csv"], "old")
    assert listing(out) == {"a.pdf", "tables/attributes.csv", "tables/categorical.csv"}
    publish(out, ["a.pdf", "tables/categorical.csv"], "new")  # categorical only
    assert listing(out) == {"a.pdf", "tables/categorical.csv"}
    assert {p.read_text() for p in out.rglob("*") if p.is_file() and p.name != MARKER} == {"new"}
    assert (out / MARKER).is_file() and leftovers(tmp_path) == []
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~outputs._UMASK)


def test_a_failure_leaves_the_old_set_and_nothing_else(tmp_path):
    out = tmp_path / "figs"
    publish(out, ["a.pdf", "b.pdf"], "old")
    with pytest.raises(RuntimeError):
        with staged_output(out) as stage:
            (stage / "c.pdf").write_text("new")
            raise RuntimeError("computation failed")
    assert listing(out) == {"a.pdf", "b.pdf"} and leftovers(tmp_path) == []
    deep = tmp_path / "new" / "deeper" / "figs"
    with pytest.raises(InputError):
        with staged_output(deep):
            raise InputError("labels.csv", None, "bad")
    assert not (tmp_path / "new").exists()  # parents this run created are removed too


def test_a_folder_ser_diag_did_not_write_is_never_replaced(tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match="'thesis.tex' that ser_diag did not write"):
        publish(out, ["a.pdf"])
    assert (out / "thesis.tex").read_text() == "years of work" and leftovers(tmp_path) == []
    # an output of an older version (same names, no marker) is replaced
    old = tmp_path / "old_version"
    old.mkdir()
    (old / "a.pdf").write_text("old")
    publish(old, ["a.pdf", "b.pdf"], "new")
    assert (old / "a.pdf").read_text() == "new"


def test_an_os_error_while_writing_is_one_output_error(tmp_path):
    out = tmp_path / "figs"
    with pytest.raises(OutputError, match="No space left on device"):
        with staged_output(out) as stage:
            raise OSError(28, "No space left on device", str(stage / "a.png"))
    assert not out.exists() and leftovers(tmp_path) == []


# ------------------------------------------------------------------- checks before computing

def test_a_path_under_a_regular_file_is_refused_before_computing(tmp_path, monkeypatch):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file")
    for out in (blocker, blocker / "figs", blocker / "a" / "b"):
        with pytest.raises(OutputError) as err:
            check_writable(out)
        assert str(err.value).startswith(str(out)) and "not a folder" in str(err.value)
    import ser_diag.figures as figures

    def must_not_run(*args, **kwargs):
        raise AssertionError("computed before checking --out")

    monkeypatch.setattr(figures, "compute_diagnostics", must_not_run)
    with pytest.raises(OutputError):
        figures.write_paper_figures(tmp_path / "labels", tmp_path / "predictions", blocker / "figs")
    assert leftovers(tmp_path) == [] and blocker.read_text() == "a file"


def test_simulate_into_a_path_under_a_file_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "results.txt"
    blocker.write_text("a file")
    assert main(["simulate", "--out", str(blocker / "sim"), "--n", "30", "--systems", "1", "-q"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {blocker / 'sim'}") and len(lines[0]) < 500
    assert leftovers(tmp_path) == []


@contextlib.contextmanager
def mounted(path: Path, options: str):
    """A tmpfs mounted at ``path`` (needs root); None when this machine does not allow it."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_read_only_folder_is_refused_before_computing(tmp_path):
    if os.geteuid() != 0:
        readonly = tmp_path / "ro"
        readonly.mkdir(mode=0o555)
        context = contextlib.nullcontext(readonly)
    else:  # root writes into 0555 folders: use a read-only mount
        context = mounted(tmp_path / "ro", "ro")
    with context as readonly:
        if readonly is None:
            pytest.skip("root without permission to mount a read-only tmpfs: no read-only folder to test")
        for out in (readonly / "figs", readonly / "a" / "figs"):
            with pytest.raises(OutputError) as err:
                check_writable(out)
            assert "cannot write in" in str(err.value) and str(err.value).startswith(str(out))
        assert os.listdir(readonly) == []


def test_a_mount_point_and_the_current_folder_are_refused(tmp_path, monkeypatch):
    for point in ("/", "/dev/shm", "/proc"):
        if os.path.ismount(point):
            with pytest.raises(OutputError, match="mount point"):
                check_writable(point)
    with mounted(tmp_path / "mnt", "rw,size=1m") as point:
        if point is not None:
            with pytest.raises(OutputError, match="mount point"):
                publish(point, ["a.pdf"])
            assert os.listdir(point) == [] and leftovers(tmp_path) == []
    monkeypatch.chdir(tmp_path)
    for out in (".", tmp_path, tmp_path.parent):
        with pytest.raises(OutputError, match="current folder"):
            check_writable(out)


# ------------------------------------------------------------------- same device

def test_staging_is_on_the_device_of_the_target(tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("this machine has one file system for /dev/shm and the temporary folder: "
                    "no second device to publish across")
    remote = Path(tempfile.mkdtemp(prefix="ser_diag_test_", dir=shm))
    try:
        link = tmp_path / "sim"  # on /tmp's device, pointing at tmpfs
        link.symlink_to(remote / "sim", target_is_directory=True)
        (remote / "sim").mkdir()
        done = subprocess.run(["ser-diag", "simulate", "--out", str(link), "--n", "30", "--systems", "1", "-q"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert link.is_symlink() and (remote / "sim" / "Labels" / "labels_consensus.csv").is_file()
        assert os.stat(remote / "sim").st_dev != os.stat(tmp_path).st_dev
        assert leftovers(tmp_path) == [] and leftovers(remote) == []
        direct = remote / "figs"  # an output on the other device, staged there
        publish(direct, ["a.pdf"])
        assert listing(direct) == {"a.pdf"} and leftovers(remote) == []
    finally:
        shutil.rmtree(remote, ignore_errors=True)


# ------------------------------------------------------------------- killed runs

KILLED_RUN = r"""
import os, signal, sys
from pathlib import Path
import ser_diag.outputs as outputs

out, moment = Path(sys.argv[1]), sys.argv[2]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

exchange, rename = outputs._exchange, os.rename
if moment == "before-swap":
    outputs._exchange = lambda new, old: die()
elif moment == "after-swap":
    outputs._exchange = lambda new, old: (exchange(new, old), die())
elif moment == "between-renames":
    outputs._exchange = lambda new, old: False
    outputs.os.rename = lambda a, b: (rename(a, b), die())
with outputs.staged_output(out) as stage:
    for k in range(4):
        (stage / f"new{k}.pdf").write_text("new")
    if moment == "staging":
        die()
"""


def killed_run(out: Path, moment: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(out), moment], capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr


OLD = {"old0.pdf", "old1.pdf", "tables/old.csv"}
NEW = {f"new{k}.pdf" for k in range(4)}


@pytest.mark.parametrize("moment, after", [("staging", OLD), ("before-swap", OLD), ("after-swap", NEW),
                                           ("between-renames", None)])
def test_sigkill_leaves_old_or_new_never_a_mix_and_the_next_run_cleans(tmp_path, moment, after):
    out = tmp_path / "figs"
    publish(out, sorted(OLD), "old")
    killed_run(out, moment)
    if after is None:  # killed between the two renames of the fallback: absent, old set beside it
        assert not out.exists()
        (old,) = [p for p in tmp_path.iterdir() if ".old-" in p.name]
        assert listing(old) == OLD
    else:
        assert listing(out) == after
        assert leftovers(tmp_path)  # the killed run's staging (or the swapped-out old set)
    with pytest.raises(RuntimeError):  # a failed rerun still puts the old set back / keeps it
        with staged_output(out):
            raise RuntimeError("rerun failed")
    assert listing(out) == (OLD if after is None else after)
    assert leftovers(tmp_path) == []
    publish(out, ["c.pdf"])
    assert listing(out) == {"c.pdf"} and leftovers(tmp_path) == []


def test_a_reader_sees_the_old_or_the_new_set_never_a_mix(tmp_path):
    out = tmp_path / "figs"
    sets = [{f"a{k}.png" for k in range(30)}, {f"b{k}.png" for k in range(3)}]
    publish(out, sets[0])
    stop, seen, errors = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                names = set(os.listdir(out)) - {MARKER}
            except FileNotFoundError as err:  # never: the exchange is atomic
                errors.append(err)
                continue
            seen.append(names)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for k in range(40):
            publish(out, sets[k % 2])
    finally:
        stop.set()
        thread.join()
    assert errors == [] and len(seen) > 10
    # never names of both sets in one listing; a listing that began before a swap may see the
    # replaced set while it is deleted (a subset of it), never a new name beside an old one
    mixed = [names for names in seen if names & sets[0] and names & sets[1]]
    assert mixed == []
    assert sum(names in sets for names in seen) > len(seen) / 2


# ------------------------------------------------------------------- concurrent runs

HOLDER = r"""
import sys
from pathlib import Path
from ser_diag.outputs import staged_output
with staged_output(Path(sys.argv[1])) as stage:
    (stage / "first.pdf").write_text("first")
    print("holding", flush=True)
    sys.stdin.readline()
"""


def test_a_second_run_into_the_same_folder_exits_2_naming_the_first(tmp_path):
    out = tmp_path / "sim"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(OutputError, match=f"another ser_diag run \\(pid {holder.pid}\\) is writing"):
            publish(out, ["second.pdf"])
        done = subprocess.run(["ser-diag", "simulate", "--out", str(out), "--n", "30", "--systems", "1"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert lines[-1] == (f"error: {out}: another ser_diag run (pid {holder.pid}) is writing this folder; "
                             "wait for it to finish or choose another --out"), done.stderr
        assert "Traceback" not in done.stderr
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert listing(out) == {"first.pdf"} and leftovers(tmp_path) == []


def test_a_second_run_may_wait_for_the_first(tmp_path):
    out = tmp_path / "figs"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        threading.Timer(0.5, lambda: (holder.stdin.write("\n"), holder.stdin.flush())).start()
        publish_waiting = staged_output(out, wait=30)
        with publish_waiting as stage:
            (stage / "second.pdf").write_text("second")
        assert holder.wait(timeout=60) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
    assert listing(out) == {"second.pdf"} and leftovers(tmp_path) == []


def test_a_lock_of_a_killed_run_does_not_block(tmp_path):
    out = tmp_path / "figs"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert any(".ser_diag-lock" in n for n in leftovers(tmp_path))
    publish(out, ["a.pdf"])
    assert listing(out) == {"a.pdf"} and leftovers(tmp_path) == []
