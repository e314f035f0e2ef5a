"""The command line on other corpora: `simulate --corpus`, `--vocabulary NAME|FILE`,
`--target`, `--attributes`, `--split` as free text; every bad corpus input one line, exit 2,
never a traceback (the installed `ser-diag` script, as a user runs it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

#: The console script installed beside this interpreter (a virtual environment's), else the one on PATH.
SCRIPT = next((str(p) for p in (Path(sys.executable).parent / "ser-diag",) if p.is_file()), None) or shutil.which("ser-diag")


def ser_diag(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    assert SCRIPT, "the ser-diag console script is not installed"
    return subprocess.run([SCRIPT, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, MPLBACKEND="Agg"))


def one_line_error(run: subprocess.CompletedProcess, *fragments: str) -> str:
    assert run.returncode == 2, (run.returncode, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_corpora") / "iemocap"
    run = ser_diag("simulate", "--corpus", "iemocap", "--speakers", 4, "--out", out)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith("wrote ") and str(out) in run.stderr
    return out


def test_simulate_corpus_writes_both_routes(iemocap, tmp_path):
    assert (iemocap / "audformat" / "db.yaml").is_file() and (iemocap / "SYNTHETIC_DEMO.txt").is_file()
    labels = pd.read_csv(iemocap / "csv" / "labels.csv")
    assert labels["speaker"].nunique() == 4
    assert sorted(p.name for p in (iemocap / "csv" / "predictions").iterdir()) == ["baseline", "sys2", "sys3"]
    crema = tmp_path / "crema"
    run = ser_diag("simulate", "--corpus", "crema-d", "--speakers", 3, "--systems", 2, "--out", crema, "-q")
    assert run.returncode == 0, run.stderr
    assert not (crema / "csv" / "predictions" / "baseline" / "attributes.csv").exists()
    one_line_error(ser_diag("simulate", "--speakers", 3, "--out", tmp_path / "x"), "--speakers", "only with --corpus")
    one_line_error(ser_diag("simulate", "--corpus", "emodb", "--n", 30, "--out", tmp_path / "x"), "--n")
    one_line_error(ser_diag("simulate", "--corpus", "ravdess", "--out", tmp_path / "x"), "invalid choice")
    assert not (tmp_path / "x").exists()


def test_validate_a_corpus_submission(iemocap):
    run = ser_diag("validate", "--labels", iemocap / "audformat",
                   "--predictions", iemocap / "audformat_predictions" / "sys2")
    assert run.returncode == 0 and run.stdout.startswith("OK: ") and "vocabulary iemocap" in run.stdout, run.stderr
    run = ser_diag("validate", "--labels", iemocap / "csv" / "labels.csv", "--vocabulary",
                   iemocap / "csv" / "vocabulary.json", "--predictions",
                   iemocap / "csv" / "predictions" / "sys3" / "categorical.csv")
    assert run.returncode == 0 and "all expected files present" in run.stdout, run.stderr
    run = ser_diag("validate", "--labels", iemocap / "csv" / "labels.csv", "--vocabulary", "iemocap",
                   "--split", "Session2", "--predictions", iemocap / "csv" / "predictions" / "sys3" / "categorical.csv")
    one_line_error(run, "categorical.csv: row 2, column 'file'", "not in the labels of split Session2")
    run = ser_diag("validate", "--labels", iemocap / "csv" / "labels.csv", "--vocabulary", "iemocap",
                   "--strict", "--predictions", iemocap / "csv" / "predictions" / "baseline" / "attributes.csv")
    one_line_error(run, "attributes.csv: row ", "outside their scale", "--strict")


def test_evaluate_an_audformat_database(iemocap):
    run = ser_diag("evaluate", "--labels", iemocap / "audformat", "--predictions",
                   iemocap / "audformat_predictions", "--bootstrap", 0, "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert sorted(result["systems"]) == ["baseline", "sys2", "sys3"]
    assert all(s["synthetic"] is True for s in result["systems"].values())
    warnings_ = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings_) == 1 and "outside [1, 5]" in warnings_[0]


def ser_diag_all(cases) -> list[subprocess.CompletedProcess]:
    """Run several ``ser-diag`` command lines at once (each a fresh process, as a user runs it)."""
    env = dict(os.environ, MPLBACKEND="Agg")
    procs = [subprocess.Popen([SCRIPT, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for args, _ in cases]
    runs = []
    for proc, (args, _) in zip(procs, cases):
        out, err = proc.communicate(timeout=300)
        runs.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return runs


def test_bad_corpus_input_is_one_line_exit_2(iemocap, tmp_path):
    db, csv = iemocap / "audformat", iemocap / "csv" / "labels.csv"
    system = iemocap / "audformat_predictions" / "sys2"
    bad_vocabulary = tmp_path / "bad.json"
    bad_vocabulary.write_text('{"name": "x", "classes": ["calm", "calm", "tense"]}')
    wrong_class = tmp_path / "p" / "sys2"
    wrong_class.mkdir(parents=True)
    frame = pd.read_csv(system / "categorical.csv")
    frame.loc[3, "emotion"] = "excited"            # a label code of IEMOCAP, but not a class a system predicts
    frame.to_csv(wrong_class / "categorical.csv", index=False)
    (wrong_class / "attributes.csv").write_bytes((system / "attributes.csv").read_bytes())
    no_valence = tmp_path / "q" / "sys2"
    no_valence.mkdir(parents=True)
    pd.read_csv(system / "attributes.csv").drop(columns="valence").to_csv(no_valence / "attributes.csv", index=False)
    validate = ("validate", "--labels", db, "--predictions")
    evaluate = ("evaluate", "--bootstrap", 0, "--labels", db, "--predictions")
    cases = [
        ((*validate, system, "--target", "mood"), ("db.yaml", "unknown scheme 'mood'", "emotion")),
        ((*validate, system, "--attributes", "arousal", "pleasure"), ("db.yaml", "unknown scheme 'pleasure'")),
        ((*validate, system, "--split", "Session9"), ("db.yaml", "no split 'Session9'", "Session1, Session2")),
        ((*validate, system, "--vocabulary", "ravdess"), ("neither a preset", "iemocap")),
        ((*validate, system, "--vocabulary", bad_vocabulary), ("bad.json", "'calm' appears twice")),
        ((*validate, wrong_class), ("categorical.csv: row 5, column 'emotion'", "unknown value 'excited'")),
        ((*validate, no_valence), ("attributes.csv: row 1, column 'valence'", "missing column")),
        (("validate", "--labels", csv, "--predictions", system, "--split", "Dev"),
         ("--split 'Dev' is not an MSP-Podcast split",)),
        (("validate", "--labels", csv, "--predictions", system, "--target", "emotion"),
         ("--target is for an audformat database",)),
        ((*evaluate, iemocap / "audformat_predictions", "--split", "Session9"), ("db.yaml", "no split 'Session9'")),
        ((*evaluate, wrong_class.parent), ("categorical.csv: row 5, column 'emotion'", "unknown value 'excited'")),
        ((*evaluate, no_valence.parent), ("attributes.csv: row 1, column 'valence'", "missing column")),
        (("evaluate", "--labels", csv, "--predictions", system, "--split", "Session1"),
         ("--split 'Session1' is not an MSP-Podcast split",)),
    ]
    for run, (_, fragments) in zip(ser_diag_all(cases), cases):
        one_line_error(run, *fragments)


def test_attributes_choose_the_schemes_validated(iemocap):
    system = iemocap / "audformat_predictions" / "sys2"
    run = ser_diag("validate", "--labels", iemocap / "audformat", "--predictions", system / "attributes.csv",
                   "--attributes", "arousal")
    assert run.returncode == 0 and "task attributes" in run.stdout, run.stderr
