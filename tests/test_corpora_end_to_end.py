"""Issue 22 end to end: `ser-diag simulate --corpus`, then evaluate, figures, report and the
explorer on three vocabularies (MSP-Podcast; IEMOCAP: 4 classes, attributes on 1-5, 10
speakers; CREMA-D: 6 classes, no attributes), through the audformat route and the CSV +
vocabulary-file route, as a user runs them (the installed console script).

Every score is checked against an independent computation from the written files: the labels
and prediction CSVs read with pandas alone, the vocabulary file's merged and excluded codes
applied by hand, macro-F1 by scikit-learn and CCC by Lin's formula (ddof 0), to 1e-9.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference_metrics import reference_ccc
from sklearn.metrics import f1_score

SCRIPT = shutil.which("ser-diag")
CORPORA = ("iemocap", "crema-d", "msp-podcast")


def ser_diag(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpora")
    out = {}
    for corpus in CORPORA:
        speakers = ["--speakers", "12"] if corpus != "iemocap" else []   # IEMOCAP: its own 10
        run = ser_diag("simulate", "--corpus", corpus, "--out", root / corpus, "-q", *speakers)
        assert run.returncode == 0, run.stderr
        out[corpus] = root / corpus
    return out


def routes(folder: Path) -> dict[str, list]:
    """The command-line data options of each route into the same corpus."""
    csv = folder / "csv"
    return {"audformat": ["--labels", folder / "audformat", "--predictions", folder / "audformat_predictions"],
            "csv": ["--labels", csv / "labels.csv", "--vocabulary", csv / "vocabulary.json",
                    "--predictions", csv / "predictions"]}


def expected_scores(folder: Path) -> dict:
    """Each system's macro-F1, per-class F1 and CCC per attribute from the CSV files alone."""
    csv = folder / "csv"
    vocabulary = json.loads((csv / "vocabulary.json").read_text())
    classes = list(vocabulary["classes"])
    merged = vocabulary.get("merged", {})
    file_col = vocabulary.get("file_column", "file")
    class_col = vocabulary.get("class_column", "emotion")
    labels = pd.read_csv(csv / "labels.csv", keep_default_na=False, na_values=[""])
    truth = labels[class_col].map(lambda c: merged.get(c, c))
    scored = labels.loc[truth.isin(classes), file_col]
    truth_by_file = pd.Series(truth.to_numpy(), index=labels[file_col])
    out = {}
    for system in sorted(p.name for p in (csv / "predictions").iterdir()):
        result = {}
        cat_file = csv / "predictions" / system / "categorical.csv"
        if cat_file.exists():
            pred = pd.read_csv(cat_file).set_index(file_col)[class_col]
            y_true = truth_by_file[scored].to_numpy()
            y_pred = pred[scored].to_numpy()
            result["macro_f1"] = f1_score(y_true, y_pred, average="macro", labels=classes)
            result["per_class_f1"] = dict(zip(classes, f1_score(y_true, y_pred, average=None, labels=classes)))
        att_file = csv / "predictions" / system / "attributes.csv"
        if att_file.exists():
            pred = pd.read_csv(att_file).set_index(file_col)
            files = labels[file_col]
            result["ccc"] = {a["name"]: reference_ccc(labels[a["name"]].to_numpy(float),
                                                      pred.loc[files, a["name"]].to_numpy(float))
                             for a in vocabulary["attributes"]}
        out[system] = result
    return out, vocabulary


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("route", ("audformat", "csv"))
def test_evaluate_equals_sklearn_and_lin_on_every_route(corpora, corpus, route):
    expected, vocabulary = expected_scores(corpora[corpus])
    run = ser_diag("evaluate", *routes(corpora[corpus])[route], "--bootstrap", 20, "--json")
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    result = json.loads(run.stdout)
    assert set(result["systems"]) == set(expected)
    attribute_names = {a["name"] for a in vocabulary["attributes"]}
    for system, want in expected.items():
        got = result["systems"][system]
        assert got["synthetic"] is True
        if "macro_f1" in want:
            assert got["macro_f1"] == pytest.approx(want["macro_f1"], abs=1e-9)
            assert list(got["per_class_f1"]) == list(vocabulary["classes"])     # keyed by the corpus' codes
            for code, value in want["per_class_f1"].items():
                assert got["per_class_f1"][code] == pytest.approx(value, abs=1e-9)
        if "ccc" in want:
            # the audformat route names attributes by their schemes, the CSV route by the vocabulary
            values = list(got["ccc"].values())
            assert len(values) == len(want["ccc"]) and (route == "audformat" or set(got["ccc"]) == attribute_names)
            for value, expected_value in zip(values, want["ccc"].values()):
                assert value == pytest.approx(expected_value, abs=1e-9)
            assert got["ccc_mean"] == pytest.approx(np.mean(list(want["ccc"].values())), abs=1e-9)
        else:
            assert not got.get("ccc")
    if corpus == "iemocap":        # 10 speakers: the intervals say they cannot be trusted
        assert any("rest on 10 speakers" in note for note in result["notes"])


@pytest.mark.slow   # three figure sets and a report; the quick loop draws a corpus' outputs in memory (test_vocabulary_outputs)
def test_figures_and_report_on_three_vocabularies(corpora, tmp_path):
    for corpus, route in (("iemocap", "audformat"), ("crema-d", "csv"), ("msp-podcast", "csv")):
        out = tmp_path / f"fig-{corpus}"
        run = ser_diag("figures", *routes(corpora[corpus])[route], "--bootstrap", 30, "--out", out, "-q",
                       "--workers", 1)
        assert run.returncode == 0, run.stderr
        names = {p.name for p in out.iterdir()}
        summary = (out / "summary.md").read_text()
        assert {"fig3a_confusion_categorical.png", "fig3a_confusion_categorical.pdf", "summary.md"} <= names
        assert "SYNTHETIC DEMO DATA" in summary
        confusion = pd.read_csv(out / "tables" / "confusion.csv")
        vocabulary = json.loads((corpora[corpus] / "csv" / "vocabulary.json").read_text())
        assert set(confusion["true"].astype(str)) <= set(vocabulary["classes"])
        if corpus == "iemocap":
            assert "corpus: iemocap" in summary
            assert {"fig3b_binned_arousal.png", "regression_to_mean_extremes.png"} <= names
            binned = pd.read_csv(out / "tables" / "binned.csv")
            assert set(binned["true_bin"]) == set(binned["pred_bin"]) == {"[1, 2)", "[2, 3)", "[3, 4)", "[4, 5]"}
            assert "rest on 10 speakers" in summary          # the stated refusal reaches the reader
        if corpus == "crema-d":
            assert not any(n.startswith(("fig3b", "regression_to_mean")) for n in names)
            assert summary.count("no dimensional attributes") == 1
    # one IEMOCAP session: 1 female and 1 male speaker; the gap has no interval, and says why
    out = tmp_path / "session"
    run = ser_diag("figures", *routes(corpora["iemocap"])["audformat"], "--split", "Session1", "--intersection", "--bootstrap", 20,
                   "--out", out, "-q", "--workers", 1)
    assert run.returncode == 0, run.stderr
    gaps = pd.read_csv(out / "tables" / "gender_gaps.csv")
    assert gaps["ci_low"].isna().all() and gaps["p_value"].notna().all()
    assert "(1 Female and 1 Male speakers)" in (out / "summary.md").read_text()
    report = tmp_path / "report"
    run = ser_diag("report", *routes(corpora["crema-d"])["audformat"], "--bootstrap", 20, "--out", report, "-q",
                   "--workers", 1)
    assert run.returncode == 0, run.stderr
    page = (report / "index.html").read_text()
    assert "crema-d" in page and "no dimensional attributes" in page and "Traceback" not in page


def test_explorer_reads_an_audformat_database(corpora):
    from ser_diag.evaluation import Evaluation
    from ser_diag.explorer.facade import Explorer
    from ser_diag.resampling import Resampling

    folder = corpora["iemocap"]
    data = Evaluation.load(folder / "audformat", folder / "audformat_predictions", split=None)
    assert data.vocabulary.classes == ("neutral", "happy", "sad", "angry") and data.synthetic
    ex = Explorer(data, None, system="sys3", prefetch=False, resampling=Resampling(n_boot=0))
    ex.set(view="confusion")
    assert [code for _, code in ex.cell_options()] == list(data.vocabulary.classes)
    ex.set(cell_true="happy", cell_pred="sad")
    listing = ex.listing()
    assert set(listing.table["EmoClass_true"]) <= {"happy"} and set(listing.table["EmoClass_pred"]) <= {"sad"}
    frame = data.categorical.frame
    rows = frame[(frame["system"] == "sys3") & (frame["EmoClass_true"] == "happy") & (frame["EmoClass_pred"] == "sad")]
    assert len(listing.table) == min(len(rows), len(listing.table)) and len(rows) > 0


def test_bad_corpus_input_is_one_line_and_exit_2(corpora, tmp_path):
    folder = corpora["iemocap"]
    csv = folder / "csv"
    bad_vocabulary = tmp_path / "vocabulary.json"
    data = json.loads((csv / "vocabulary.json").read_text())
    bad_vocabulary.write_text(json.dumps(data).replace('"classes": {', '"classes": {"sad": "Sad", ', 1))
    bad_prediction = tmp_path / "bad"
    shutil.copytree(csv / "predictions" / "sys2", bad_prediction / "sys2")
    table = pd.read_csv(bad_prediction / "sys2" / "categorical.csv")
    table.loc[3, "emotion"] = "bored"
    table.to_csv(bad_prediction / "sys2" / "categorical.csv", index=False)
    cases = [
        (["--labels", folder / "audformat", "--predictions", folder / "audformat_predictions", "--target", "mood"],
         "mood"),
        (["--labels", csv / "labels.csv", "--vocabulary", csv / "vocabulary.json", "--predictions", bad_prediction],
         "bored"),
        (["--labels", folder / "audformat", "--predictions", folder / "audformat_predictions", "--split", "Session9"],
         "Session9"),
        (["--labels", csv / "labels.csv", "--vocabulary", bad_vocabulary, "--predictions", csv / "predictions"],
         "sad"),
    ]
    for args, fragment in cases:
        run = ser_diag("evaluate", *args)
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, (args, run.stderr)
        assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in run.stderr, run.stderr
