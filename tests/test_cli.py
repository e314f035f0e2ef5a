"""The command line as a user meets it: the installed `ser-diag` script from any folder, help
that shows every default, one-line errors, quiet ends on Ctrl-C and closed pipes, progress on
stderr, and the options that every command shares."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ser_diag.cli import DEFAULT_BOOTSTRAP, build_parser

SCRIPT = shutil.which("ser-diag")


def ser_diag(*args, cwd=None, timeout=300, **kw) -> subprocess.CompletedProcess:
    """Run the installed console script (what `pip install` puts on PATH)."""
    assert SCRIPT, "the ser-diag console script is not installed"
    return subprocess.run([SCRIPT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, MPLBACKEND="Agg"), **kw)


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "challenge"
    run = ser_diag("simulate", "--out", out, "--n", 600, "--systems", 3)
    assert run.returncode == 0, run.stderr
    return out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_from_any_folder_and_no_arguments(tmp_path):
    run = ser_diag("--help", cwd=tmp_path)
    assert run.returncode == 0 and "usage: ser-diag" in run.stdout
    assert "figures" in run.stdout and "evaluate" in run.stdout
    bare = ser_diag(cwd=tmp_path)
    assert bare.returncode == 2 and "usage: ser-diag" in bare.stderr and "Traceback" not in bare.stderr
    module = subprocess.run([sys.executable, "-m", "ser_diag", "--help"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout == run.stdout


def test_every_option_has_help_and_shows_its_default():
    for name, sub in subcommands(build_parser()).items():
        text = sub.format_help()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


def test_one_bootstrap_default_for_every_interval_command():
    subs = subcommands(build_parser())
    defaults = {name: subs[name].parse_args(["--labels", "x", "--predictions", "y"]
                                            + (["--out", "o"] if name != "evaluate" else [])).bootstrap
                for name in ("evaluate", "figures", "report")}
    assert set(defaults.values()) == {DEFAULT_BOOTSTRAP} == {1000}


@pytest.mark.parametrize("option, value, fragment", [
    ("--level", "1.5", "not between 0 and 1"), ("--level", "0", "not between 0 and 1"),
    ("--bootstrap", "-1", "negative"), ("--bootstrap", "many", "not a whole number"),
])
@pytest.mark.parametrize("command", ["evaluate", "figures", "report"])
def test_bad_option_values_are_one_line_exit_2(tmp_path, command, option, value, fragment):
    extra = ["--out", tmp_path / "out"] if command != "evaluate" else []
    run = ser_diag(command, "--labels", tmp_path, "--predictions", tmp_path, option, value, *extra)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and option in lines[0], run.stderr
    assert not (tmp_path / "out").exists()


def test_evaluate_names_split_unit_and_convention(challenge):
    run = ser_diag("evaluate", "--labels", challenge, "--predictions", challenge / "predictions",
                   "--bootstrap", 50)
    assert run.returncode == 0, run.stderr
    assert "split: Development" in run.stdout
    assert "resamples of speakers" in run.stdout          # the default unit where speakers are known
    utter = ser_diag("evaluate", "--labels", challenge, "--predictions", challenge / "predictions",
                     "--bootstrap", 50, "--by-utterance")
    assert "resamples of utterances" in utter.stdout


def test_closed_pipe_ends_quietly(challenge):
    proc = subprocess.Popen([SCRIPT, "evaluate", "--labels", str(challenge), "--predictions",
                             str(challenge / "predictions"), "--bootstrap", "0", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                                  # like `| head` exiting at once
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_ctrl_c_exits_130_and_writes_nothing(challenge, tmp_path):
    out = tmp_path / "figs"
    proc = subprocess.Popen([SCRIPT, "figures", "--labels", str(challenge), "--predictions",
                             str(challenge / "predictions"), "--bootstrap", "4000", "--out", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, MPLBACKEND="Agg"))
    first = proc.stderr.readline()                       # the first progress line: work has begun
    assert first.startswith("ser-diag: "), first
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


def test_figures_talks_and_names_what_it_wrote(challenge, tmp_path):
    out = tmp_path / "figs"
    run = ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions",
                   "--bootstrap", 30, "--out", out)
    assert run.returncode == 0, run.stderr
    progress = [line for line in run.stderr.splitlines() if line.startswith("ser-diag: ")]
    assert len(progress) >= 3
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]  # not the marker
    assert run.stderr.strip().splitlines()[-1] == f"wrote {len(files)} files to {out}"
    quiet = ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions",
                     "--bootstrap", 30, "--out", tmp_path / "quiet", "--quiet")
    assert quiet.returncode == 0 and not [l for l in quiet.stderr.splitlines() if l.startswith("ser-diag: ")]
    # every table made from synthetic data says so, and the rest of the table is untouched
    for csv in (out / "tables").glob("*.csv"):
        table = pd.read_csv(csv)
        assert "synthetic" in table.columns and table["synthetic"].all(), csv.name
    metrics = pd.read_csv(out / "tables" / "metrics.csv")
    assert (metrics["n_boot"] == 30).all() and set(metrics["unit"]) == {"speaker"}


@pytest.mark.parametrize("command", ["figures", "report"])
def test_bootstrap_zero_draws_no_intervals(challenge, tmp_path, command):
    out = tmp_path / command
    run = ser_diag(command, "--labels", challenge, "--predictions", challenge / "predictions",
                   "--bootstrap", 0, "--out", out)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    if command == "figures":
        metrics = pd.read_csv(out / "tables" / "metrics.csv")
        assert metrics["estimate"].notna().any()
        assert metrics["ci_low"].isna().all() and metrics["ci_high"].isna().all()
        assert (out / "gender_audit_attributes.png").stat().st_size > 1000
    else:
        assert (out / "index.html").stat().st_size > 10_000


def test_human_p_values_in_summary(challenge, tmp_path):
    out = tmp_path / "figs"
    assert ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions",
                    "--bootstrap", 50, "--out", out).returncode == 0
    summary = (out / "summary.md").read_text()
    p_values = re.findall(r"\bp ([<=]) ([0-9.e-]+)", summary)
    assert p_values, summary
    for sign, number in p_values:
        assert re.fullmatch(r"\d\.\d{3}", number), number    # 0.042 or < 0.001, never 6.057e-01
    assert "ccc_mean" not in summary and "macro_f1" not in summary
