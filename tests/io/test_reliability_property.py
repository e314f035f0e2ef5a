"""Property: whatever a corrupted labels or prediction file holds, `validate`, `evaluate`,
`figures` and `report` exit 0 or 2, never with a traceback; on 2 the error is one line under
500 characters naming a file of the input, and no output folder or staging leftover exists.

Corruptions of a valid simulated challenge (200 files, 2 systems) are drawn by hypothesis:
truncation, dropped/duplicated/swapped lines, a cell replaced by odd text (empty, NaN, inf,
out of range, quotes, line breaks, a 1 MB value, CJK, NUL), inserted raw bytes (not UTF-8),
dropped or renamed header columns, blank files, CRLF/CR line ends, a BOM, and the file turned
into a folder, a symlink loop or removed. The CLI runs in-process (`ser_diag.cli.main`) for
speed; a few cases run through the `ser-diag` console script as users run it.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from ser_diag.cli import main

SYSTEM = "sys01_baseline"
TARGETS = ("Labels/labels_consensus.csv", f"predictions/{SYSTEM}/categorical.csv",
           f"predictions/{SYSTEM}/attributes.csv")
ODD_CELLS = ["", " ", "nan", "NaN", "inf", "-inf", "1e400", "0", "0.99", "7.0001", "-3", "8", "1e-300",
             "X", "O", "Q", "Unknown", "a,b", '"', '"x\ny"', "Développement", "系统", "\x00", "True",
             "4.0.0", "0x10", "1_000", "Development", "Female", "A" * 1_000_000]
LEFTOVER_MARKS = (".staging-", ".old-", ".probe-", ".ser_diag-lock")


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("valid") / "sim"
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["simulate", "--out", str(root), "--n", "200", "--systems", "2", "--seed", "3", "-q"]) == 0
    return root


# ------------------------------------------------------------------- corruptions

def _cells(line: bytes) -> list[bytes]:
    return line.split(b",")


KINDS = ("truncate", "drop_line", "dup_line", "swap_lines", "cell_labels", "cell_categorical", "cell_attributes",
         "bytes", "drop_column", "header", "blank", "line_ends", "bom", "fs")


@st.composite
def corruptions(draw, kind: str):
    """(target file, description, function bytes -> bytes or a file-system operation name)."""
    target = draw(st.sampled_from(TARGETS))
    if kind.startswith("cell_"):  # odd cells get one strategy per file
        target = next(t for t in TARGETS if kind.split("_")[1] in t.lower())
        kind = "cell"
    if kind == "truncate":
        fraction = draw(st.floats(0, 1))
        return target, f"truncate at {fraction:.3f}", lambda d: d[: int(len(d) * fraction)]
    if kind in ("drop_line", "dup_line", "swap_lines"):
        i, j = draw(st.integers(0, 400)), draw(st.integers(0, 400))

        def lines_op(data: bytes) -> bytes:
            lines = data.split(b"\n")
            a, b = i % len(lines), j % len(lines)
            if kind == "drop_line":
                del lines[a]
            elif kind == "dup_line":
                lines.insert(b, lines[a])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            return b"\n".join(lines)
        return target, f"{kind} {i} {j}", lines_op
    if kind in ("cell", "header"):
        row = 0 if kind == "header" else draw(st.integers(1, 400))
        column = draw(st.integers(0, 11))
        value = draw(st.one_of(st.sampled_from(ODD_CELLS), st.text(max_size=12)))

        def cell_op(data: bytes) -> bytes:
            lines = data.split(b"\n")
            k = row % max(len(lines) - 1, 1) if row else 0
            cells = _cells(lines[k])
            cells[column % len(cells)] = value.encode("utf-8", errors="surrogatepass")
            lines[k] = b",".join(cells)
            return b"\n".join(lines)
        return target, f"{kind} {row}:{column} = {value[:40]!r}", cell_op
    if kind == "bytes":
        fraction, raw = draw(st.floats(0, 1)), draw(st.binary(min_size=1, max_size=4))
        return target, f"insert {raw!r} at {fraction:.3f}", \
            lambda d: d[: int(len(d) * fraction)] + raw + d[int(len(d) * fraction):]
    if kind == "drop_column":
        column = draw(st.integers(0, 11))

        def drop(data: bytes) -> bytes:
            out = []
            for line in data.split(b"\n"):
                cells = _cells(line)
                if len(cells) > 1:
                    del cells[column % len(cells)]
                out.append(b",".join(cells))
            return b"\n".join(out)
        return target, f"drop column {column}", drop
    if kind == "blank":
        text = draw(st.sampled_from([b"", b"\n", b"\n\n\n", b"   \n\t\n", b"\r\n \r\n"]))
        return target, f"blank {text!r}", lambda d: text
    if kind == "line_ends":
        end = draw(st.sampled_from([b"\r\n", b"\r"]))
        return target, f"line ends {end!r}", lambda d: d.replace(b"\n", end)
    if kind == "bom":
        return target, "BOM", lambda d: b"\xef\xbb\xbf" + d
    return target, draw(st.sampled_from(["folder", "loop", "missing"])), None


def corrupt(root: Path, target: str, operation) -> Path:
    """Apply one corruption to ``root / target``; return the corrupted path."""
    path = root / target
    if callable(operation):
        path.write_bytes(operation(path.read_bytes()))
    elif operation == "folder":
        path.unlink()
        path.mkdir()
    elif operation == "loop":
        path.unlink()
        path.symlink_to(path)
    else:
        path.unlink()
    return path


# ------------------------------------------------------------------- running and checking

def run(argv: list[str]) -> tuple[int, str]:
    """``ser-diag ARGV`` in-process: (exit status, stderr). An exception escaping main (a
    traceback for a user) fails the test."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
    return code, err.getvalue()


def leftovers(parent: Path) -> list[str]:
    return [n for n in os.listdir(parent) if any(mark in n for mark in LEFTOVER_MARKS)] if parent.is_dir() else []


def check(code: int, stderr: str, root: Path, out: Path | None = None, what: str = "") -> None:
    assert code in (0, 2), f"{what}: exit {code}\n{stderr}"
    assert "Traceback" not in stderr, f"{what}\n{stderr}"
    lines = stderr.splitlines()
    assert all(line.startswith(("error: ", "warning: ", "ser-diag: ", "wrote ")) for line in lines), \
        f"{what}: a line that is neither error, warning nor progress\n{stderr[:2000]}"
    errors = [line for line in lines if line.startswith("error: ")]
    if code == 2:
        assert len(errors) == 1 and lines[-1] == errors[0], f"{what}\n{stderr[:2000]}"
        assert len(errors[0]) < 500, f"{what}: {len(errors[0])} characters"
        assert str(root) in errors[0], f"{what}: the error names no input file: {errors[0]}"
    else:
        assert errors == [], f"{what}\n{stderr[:2000]}"
    if out is not None:
        assert out.is_dir() == (code == 0), f"{what}: exit {code} but output folder {'absent' if code == 0 else 'present'}"
        assert leftovers(out.parent) == [], f"{what}: {leftovers(out.parent)}"


@contextlib.contextmanager
def corrupted_copy(challenge: Path, target: str, operation):
    with tempfile.TemporaryDirectory(prefix="ser_diag_prop_") as folder:
        root = Path(folder) / "sim"
        shutil.copytree(challenge, root, symlinks=True)
        corrupt(root, target, operation)
        yield root


PROPERTY = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", KINDS)
@PROPERTY
@given(data=st.data())
def test_validate_and_evaluate_exit_0_or_one_line_2(challenge, kind, data):
    target, description, operation = data.draw(corruptions(kind))
    event(f"corruption: {description[:30]}")
    with corrupted_copy(challenge, target, operation or description) as root:
        submission = root / target if target.startswith("predictions") else root / TARGETS[1]
        code, stderr = run(["validate", "--predictions", str(submission), "--labels", str(root)])
        check(code, stderr, root, what=f"validate after {description} of {target}")
        event(f"validate exit {code}")
        code, stderr = run(["evaluate", "--labels", str(root), "--predictions", str(root / "predictions"),
                            "--bootstrap", "5", "--json", "-q"])
        check(code, stderr, root, what=f"evaluate after {description} of {target}")
        event(f"evaluate exit {code}")


@settings(PROPERTY, max_examples=15)
@given(st.sampled_from(KINDS).flatmap(corruptions))
def test_figures_and_report_on_rejected_input_write_nothing(challenge, case):
    """Inputs `evaluate` rejects: `figures` and `report` exit 2 with one line, before computing,
    and leave no output folder and no staging, lock or probe folder (a full run on accepted
    input costs ~15 s; those are covered in test_reliability_fonts and test_outputs)."""
    target, description, operation = case
    with corrupted_copy(challenge, target, operation or description) as root:
        code, _ = run(["evaluate", "--labels", str(root), "--predictions", str(root / "predictions"),
                       "--bootstrap", "0", "-q"])
        assume(code == 2)
        for command in ("figures", "report"):
            out = root.parent / "results" / command
            code, stderr = run([command, "--labels", str(root), "--predictions", str(root / "predictions"),
                                "--out", str(out), "--bootstrap", "5", "-q"])
            check(code, stderr, root, out, what=f"{command} after {description} of {target}")
            assert code == 2
            assert not (root.parent / "results").exists()


# ------------------------------------------------------------------- as users run it

@pytest.mark.parametrize("target, operation, commands", [
    (TARGETS[0], lambda d: b"   \n\n", ("validate", "evaluate", "figures", "report")),
    (TARGETS[2], lambda d: d.replace(b"\n", b"\n\xe9", 1), ("evaluate",)),
    (TARGETS[1], "loop", ("validate",)),
])
def test_the_console_script_gives_one_line_and_writes_nothing(challenge, target, operation, commands, tmp_path):
    with corrupted_copy(challenge, target, operation) as root:
        for command in commands:
            argv = ["ser-diag", command, "--labels", str(root), "-q"]
            argv += (["--predictions", str(root / TARGETS[1])] if command == "validate" else
                     ["--predictions", str(root / "predictions"), "--bootstrap", "5"])
            out = tmp_path / command if command in ("figures", "report") else None
            if out is not None:
                argv += ["--out", str(out)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            check(done.returncode, done.stderr, root, out, what=f"ser-diag {command}")
            assert done.returncode == 2 and done.stdout == ""
            assert str(root / target) in done.stderr


@pytest.mark.slow
def test_accepted_odd_input_gives_exit_0_and_whole_outputs(challenge, tmp_path):
    """The other side of the property: input that is odd but valid (CRLF line ends, a BOM,
    shuffled rows, a blank line, an attribute prediction of 7.6) is scored, with one warning
    line, and each output folder is whole with nothing beside it."""
    def odd(data: bytes) -> bytes:
        head, *rows = data.rstrip(b"\n").split(b"\n")
        rows = rows[1::2] + rows[::2]
        return b"\xef\xbb\xbf" + b"\r\n".join([head] + rows[:7] + [b""] + rows[7:]) + b"\r\n"

    with corrupted_copy(challenge, TARGETS[0], odd) as root:
        attributes = root / TARGETS[2]
        lines = attributes.read_bytes().split(b"\n")
        cells = lines[9].split(b",")
        cells[2] = b"7.6"
        lines[9] = b",".join(cells)
        attributes.write_bytes(b"\n".join(lines))
        for command in ("figures", "report"):
            out = tmp_path / command
            code, stderr = run([command, "--labels", str(root), "--predictions", str(root / "predictions"),
                                "--out", str(out), "--bootstrap", "5", "-q"])
            check(code, stderr, root, out, what=command)
            assert code == 0
            warned = [line for line in stderr.splitlines() if line.startswith("warning: ")]
            assert len(warned) == 1 and "1 attribute predictions outside [1, 7] (min 7.6, max 7.6" in warned[0]
            assert (out / ("summary.md" if command == "figures" else "index.html")).is_file()


@settings(PROPERTY, max_examples=12)
@given(k=st.integers(1, 40), constant=st.sampled_from([None, "EmoAct", "EmoVal", "EmoDom"]),
       unknown_speakers=st.booleans(), one_class=st.sampled_from([None, "A", "N", "X"]))
def test_degenerate_but_valid_data_evaluates_or_exits_2(challenge, k, constant, unknown_speakers, one_class):
    """Few files, a constant attribute, no speaker IDs, a single class: `evaluate` and `validate`
    still exit 0 or 2 with one line (undefined statistics are NaN, never a traceback)."""
    import pandas as pd

    with corrupted_copy(challenge, TARGETS[0], lambda d: d) as root:
        labels_file = root / TARGETS[0]
        labels = pd.read_csv(labels_file, dtype=str, keep_default_na=False)
        labels = labels[labels["Split_Set"] == "Development"].head(k).copy()
        if constant:
            labels[constant] = "4.0"
        if unknown_speakers:
            labels["SpkrID"] = "Unknown"
        if one_class:
            labels["EmoClass"] = one_class
        labels.to_csv(labels_file, index=False)
        for file in (root / "predictions").glob("*/*.csv"):
            table = pd.read_csv(file, dtype=str, keep_default_na=False)
            table[table["FileName"].isin(labels["FileName"])].to_csv(file, index=False)
        what = f"k={k} constant={constant} unknown_speakers={unknown_speakers} one_class={one_class}"
        code, stderr = run(["evaluate", "--labels", str(root), "--predictions", str(root / "predictions"),
                            "--bootstrap", "5", "--json", "-q"])
        check(code, stderr, root, what=f"evaluate {what}")
        event(f"evaluate exit {code}")
        code, stderr = run(["validate", "--predictions", str(root / TARGETS[2]), "--labels", str(root)])
        check(code, stderr, root, what=f"validate {what}")
