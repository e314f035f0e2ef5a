"""`python -m ser_diag validate`: one OK line and exit 0, or one stderr line and exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.schema import ATTRIBUTES, CLASS_CODES

REPO = Path(__file__).resolve().parents[1]


def validate(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ser_diag", "validate", *map(str, args)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def corpus(tmp_path) -> tuple[Path, list[str]]:
    """Development split of 12 files (8 classes + O + X + 2 more), 4 Train files."""
    codes = list(CLASS_CODES) + ["O", "X", "A", "N"]
    n = len(codes) + 4
    labels = pd.DataFrame({
        "FileName": [f"MSP-PODCAST_{k:04d}_0001.wav" for k in range(n)],
        "EmoClass": codes + ["S"] * 4,
        "EmoAct": np.linspace(1, 7, n), "EmoVal": np.linspace(7, 1, n), "EmoDom": np.full(n, 4.0),
        "SpkrID": pd.array([k % 3 for k in range(n)], dtype="Int64"),
        "Gender": ["Female", "Male"] * (n // 2),
        "Split_Set": ["Development"] * len(codes) + ["Train"] * 4,
    })
    io.write_labels_consensus(labels, tmp_path / "corpus" / "Labels" / "labels_consensus.csv")
    return tmp_path / "corpus", labels["FileName"][: len(codes)].tolist()


def attribute_file(path: Path, files: list[str]) -> Path:
    values = {a: np.linspace(2, 6, len(files)) for a in ATTRIBUTES}
    return io.write_attribute_predictions(pd.DataFrame({"FileName": files, **values}), path)


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def test_valid_submission_prints_one_ok_line(tmp_path, corpus):
    root, dev = corpus
    submission = attribute_file(tmp_path / "team" / "attributes.csv", dev)
    result = validate("--predictions", submission, "--labels", root, "--split", "Development")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"OK: {submission}: {len(dev)} rows, task attributes, all expected files present\n"
    assert result.stderr == ""


def test_valid_categorical_submission_against_a_file_list(tmp_path, corpus):
    _, dev = corpus
    submission = tmp_path / "categorical.csv"
    submission.write_text("FileName,EmoClass\n" + "".join(f"{f},N\n" for f in dev))
    listing = tmp_path / "expected.txt"
    listing.write_text("\n".join(dev) + "\n")
    result = validate("--predictions", submission, "--file-list", listing)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"OK: {submission}: {len(dev)} rows, task categorical, "
                                          "all expected files present"]


def test_unknown_class_code_exits_2_with_one_line(tmp_path, corpus):
    root, dev = corpus
    submission = tmp_path / "categorical.csv"
    rows = [f"{f},{'Q' if k == 4 else 'A'}" for k, f in enumerate(dev)]
    submission.write_text("FileName,EmoClass\n" + "\n".join(rows) + "\n")
    result = validate("--predictions", submission, "--labels", root)
    assert_one_error_line(result, str(submission), "row 6", "'EmoClass'", "'Q'")


def test_missing_files_exit_2_with_one_line(tmp_path, corpus):
    root, dev = corpus
    submission = attribute_file(tmp_path / "attributes.csv", dev[:-3])
    result = validate("--predictions", submission, "--labels", root)
    assert_one_error_line(result, str(submission), "'FileName'", "3 of 12 expected files missing", dev[-3])


def test_unparseable_csv_exits_2_with_one_line(tmp_path, corpus):
    root, dev = corpus
    submission = tmp_path / "attributes.csv"
    submission.write_text(f"FileName,EmoAct,EmoVal,EmoDom\n{dev[0]},4,4,4\n{dev[1]},4,4,4,4,4\n")
    result = validate("--predictions", submission, "--labels", root)
    assert_one_error_line(result, str(submission), "row 3", "6 fields")


def test_predictions_outside_1_7_are_one_warning_line_and_exit_0(tmp_path, corpus):
    root, dev = corpus
    values = {a: np.linspace(2, 6, len(dev)) for a in ATTRIBUTES}
    values["EmoVal"][3], values["EmoDom"][7] = 7.4, 0.6
    submission = io.write_attribute_predictions(pd.DataFrame({"FileName": dev, **values}),
                                                tmp_path / "attributes.csv")
    result = validate("--predictions", submission, "--labels", root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {submission}: {len(dev)} rows")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (f"warning: {submission}: row 5, column 'EmoVal': 2 attribute predictions outside [1, 7] "
                        "(min 0.6, max 7.4); allowed and scored as given (validate --strict makes this an error)")


def test_strict_makes_the_warning_an_error(tmp_path, corpus):
    root, dev = corpus
    values = {a: np.linspace(2, 6, len(dev)) for a in ATTRIBUTES}
    values["EmoAct"][0] = 7.25
    submission = io.write_attribute_predictions(pd.DataFrame({"FileName": dev, **values}),
                                                tmp_path / "attributes.csv")
    result = validate("--predictions", submission, "--labels", root, "--strict")
    assert_one_error_line(result, str(submission), "row 2", "'EmoAct'", "outside [1, 7]", "--strict")


def test_non_finite_prediction_is_an_error_even_without_strict(tmp_path, corpus):
    root, dev = corpus
    submission = tmp_path / "attributes.csv"
    submission.write_text("FileName,EmoAct,EmoVal,EmoDom\n" + "".join(
        f"{f},4,{'inf' if k == 2 else 4},4\n" for k, f in enumerate(dev)))
    result = validate("--predictions", submission, "--labels", root)
    assert_one_error_line(result, str(submission), "row 4", "'EmoVal'")


def test_emoclass_not_the_argmax_is_a_warning_and_strict_an_error(tmp_path, corpus):
    root, dev = corpus
    probs = np.full((len(dev), len(CLASS_CODES)), 0.02)
    probs[:, 0] = 0.86  # argmax A everywhere
    codes = ["A"] * len(dev)
    codes[2] = "N"
    frame = pd.DataFrame({"FileName": dev, "EmoClass": codes})
    frame[[f"P_{c}" for c in CLASS_CODES]] = probs
    submission = io.write_categorical_predictions(frame, tmp_path / "categorical.csv")
    result = validate("--predictions", submission, "--labels", root)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: {submission}: row 4, column 'EmoClass': EmoClass is not the most probable class of P_A..P_N "
        f"in 1 of {len(dev)} rows (here 'N', highest P_A); EmoClass is scored as given"]
    result = validate("--predictions", submission, "--labels", root, "--strict")
    assert_one_error_line(result, str(submission), "row 4", "most probable", "--strict")
