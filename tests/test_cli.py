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
import threading
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


def _figures(challenge: Path, out: Path, *args) -> subprocess.CompletedProcess:
    return ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions", *args,
                    "--out", out)


# Each `figures` run draws and saves the whole figure set (seconds of CPU): the runs that several
# tests read are made once per module; no test writes into them.

@pytest.fixture(scope="module")
def figures_30(challenge, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`figures --bootstrap 30` with the default workers (the cores)."""
    out = tmp_path_factory.mktemp("figures_30") / "figs"
    run = _figures(challenge, out, "--bootstrap", 30)
    assert run.returncode == 0, run.stderr
    return run, out


@pytest.fixture(scope="module")
def figures_0(challenge, tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`figures --bootstrap 0`: no intervals, no permutations."""
    out = tmp_path_factory.mktemp("figures_0") / "figs"
    run = _figures(challenge, out, "--bootstrap", 0)
    return run, out


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
    watchdog = threading.Timer(120, proc.kill)           # a hang after Ctrl-C fails (exit -9), not blocks
    watchdog.start()
    try:
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 130
    finally:
        watchdog.cancel()
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if "staging" in p.name]


@pytest.mark.slow
def test_figures_talks_and_names_what_it_wrote(challenge, figures_30, tmp_path):
    run, out = figures_30
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


@pytest.mark.slow
def test_workers_switch_limits_the_processes_and_changes_no_number(challenge, figures_30, tmp_path):
    """--workers 1 computes everything in one process and writes the same
    tables as the default, which uses the cores; --workers 0 is one line and exit 2."""
    runs, outs = {None: figures_30[0]}, {None: figures_30[1], 1: tmp_path / "workers_1"}
    runs[1] = _figures(challenge, outs[1], "--bootstrap", 30, "--workers", 1)
    for workers in (None, 1):
        assert runs[workers].returncode == 0, runs[workers].stderr
    assert "analyses on 1 process ..." in runs[1].stderr
    tables = sorted(p.name for p in (outs[None] / "tables").glob("*.csv"))
    assert tables == sorted(p.name for p in (outs[1] / "tables").glob("*.csv")) and tables
    for name in tables:
        assert (outs[None] / "tables" / name).read_bytes() == (outs[1] / "tables" / name).read_bytes(), name
    bad = ser_diag("report", "--labels", challenge, "--predictions", challenge / "predictions",
                   "--workers", 0, "--out", tmp_path / "bad")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--workers" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["figures", "report"])
def test_bootstrap_zero_draws_no_intervals(challenge, tmp_path, command, request):
    if command == "figures":
        run, out = request.getfixturevalue("figures_0")
    else:
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


@pytest.mark.slow
def test_human_p_values_in_summary(figures_30):
    run, out = figures_30
    assert run.returncode == 0
    summary = (out / "summary.md").read_text()
    p_values = re.findall(r"\bp ([<=]) ([0-9.e-]+)", summary)
    assert p_values, summary
    for sign, number in p_values:
        assert re.fullmatch(r"\d\.\d{3}", number), number    # 0.042 or < 0.001, never 6.057e-01
    assert "ccc_mean" not in summary and "macro_f1" not in summary


def test_predictions_outside_1_to_7_are_scored_with_one_warning(challenge, tmp_path):
    """A regression head may predict 7.3 or 0.8: scored as given (CCC of the raw values), one
    warning with the count and range; `validate` warns, `validate --strict` refuses."""
    systems = tmp_path / "systems"
    shutil.copytree(challenge / "predictions", systems)
    path = systems / "sys02_mid" / "attributes.csv"
    table = pd.read_csv(path)
    table.loc[3, "EmoAct"], table.loc[10, "EmoVal"], table.loc[11, "EmoVal"] = 7.3, 0.8, 9.25
    table.to_csv(path, index=False)
    run = ser_diag("evaluate", "--labels", challenge, "--predictions", systems, "--bootstrap", 0, "--json")
    assert run.returncode == 0, run.stderr
    warnings_ = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1, run.stderr
    assert "3 attribute predictions outside [1, 7]" in warnings_[0] and "0.8" in warnings_[0] and "9.25" in warnings_[0]
    import json as json_
    from reference_metrics import reference_ccc
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"].set_index("FileName")
    scored = json_.loads(run.stdout)["systems"]["sys02_mid"]["ccc"]["EmoVal"]
    assert scored == pytest.approx(reference_ccc(labels["EmoVal"], table.set_index("FileName").loc[labels.index, "EmoVal"]), abs=1e-9)
    check = ser_diag("validate", "--predictions", path, "--labels", challenge)
    assert check.returncode == 0 and "outside [1, 7]" in check.stdout + check.stderr
    strict = ser_diag("validate", "--predictions", path, "--labels", challenge, "--strict")
    assert strict.returncode == 2 and len(strict.stderr.strip().splitlines()) == 1
    assert str(path) in strict.stderr


@pytest.mark.slow
def test_baseline_is_named_or_found_by_name_never_the_worst(challenge, figures_0, tmp_path):
    def baseline_rows(out):
        curve = pd.read_csv(out / "tables" / "fusion_curve.csv")
        return curve[curve["method"] == "baseline"]

    run, default = figures_0                     # no --baseline
    assert run.returncode == 0
    named = tmp_path / "named"
    run = ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions",
                   "--bootstrap", 0, "--baseline", "sys03_top", "--out", named)
    assert run.returncode == 0, run.stderr
    assert set(baseline_rows(default)["systems"]) == {"sys01_baseline"}
    assert set(baseline_rows(named)["systems"]) == {"sys03_top"}
    assert len(baseline_rows(named)) == len(baseline_rows(default)) == 4   # macro-F1 + 3 CCCs
    # no system called baseline: no baseline line at all (the worst system is not promoted)
    renamed = tmp_path / "renamed"
    shutil.copytree(challenge / "predictions", renamed)
    (renamed / "sys01_baseline").rename(renamed / "sys01_first")
    none = tmp_path / "none"
    assert ser_diag("figures", "--labels", challenge, "--predictions", renamed, "--bootstrap", 0,
                    "--out", none).returncode == 0
    assert baseline_rows(none).empty
    unknown = ser_diag("figures", "--labels", challenge, "--predictions", challenge / "predictions",
                       "--baseline", "nosuch", "--out", tmp_path / "x")
    assert unknown.returncode == 2 and "nosuch" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()
