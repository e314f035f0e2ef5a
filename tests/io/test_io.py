"""ser_diag.io: readers against planted fixtures, writer -> reader round trips, one test per bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.errors import InputError
from ser_diag.schema import ALL_CODES, ATTRIBUTES, CLASS_CODES, CONSENSUS_COLUMNS, PROB_COLUMNS

HEADER = ",".join(CONSENSUS_COLUMNS)


def make_labels(n: int = 40) -> pd.DataFrame:
    """Planted labels: classes cycle over all 10 codes, every 7th speaker and 5th gender unknown,
    files 0..n/2-1 Development, the rest Train."""
    i = np.arange(n)
    return pd.DataFrame({
        "FileName": [f"MSP-PODCAST_{k:04d}_0001.wav" for k in i],
        "EmoClass": [ALL_CODES[k % len(ALL_CODES)] for k in i],
        "EmoAct": 1.0 + (i % 13) * 0.5,
        "EmoVal": 7.0 - (i % 7) * 0.8,
        "EmoDom": 1.0 + (i % 25) * 0.25,
        "SpkrID": pd.array([pd.NA if k % 7 == 3 else 100 + k % 9 for k in i], dtype="Int64"),
        "Gender": pd.array([None if k % 5 == 4 else ("Female" if k % 2 else "Male") for k in i], dtype=object),
        "Split_Set": ["Development" if k < n // 2 else "Train" for k in i],
    })


def write_corpus(root: Path, labels: pd.DataFrame | None = None) -> Path:
    io.write_labels_consensus(make_labels() if labels is None else labels, root / "Labels" / "labels_consensus.csv")
    return root


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def consensus_lines() -> list[str]:
    """A small hand-written labels_consensus.csv (header = line 1)."""
    return [HEADER,
            "MSP-PODCAST_0001_0001.wav,A,5.2,2.0,5.8,12,Female,Development",
            "MSP-PODCAST_0001_0002.wav,N,4.0,4.2,4.0,12,Female,Development",
            "MSP-PODCAST_0002_0001.wav,X,3.0,3.5,3.0,Unknown,Unknown,Development",
            "MSP-PODCAST_0003_0001.wav,H,5.0,6.0,4.4,31,Male,Train"]


def assert_located(err: pytest.ExceptionInfo, file: Path | str, row: int | None, column: str | None) -> str:
    """The message is one line naming the file, the row and the column."""
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(file))
    assert err.value.row == row
    if row is not None:
        assert f"row {row}" in message
    assert err.value.column == column
    if column is not None:
        assert repr(column) in message
    return message


# ------------------------------------------------------------------------------------ labels

def test_read_labels_round_trip_from_root_and_csv(tmp_path):
    labels = make_labels()
    root = write_corpus(tmp_path / "MSP-PODCAST_1.12", labels)
    for path in (root, root / "Labels" / "labels_consensus.csv"):
        got = io.read_labels(path)
        pd.testing.assert_frame_equal(got.loc[:, ["FileName", "EmoClass", "Split_Set"]].astype(object),
                                      labels.loc[:, ["FileName", "EmoClass", "Split_Set"]].astype(object))
        np.testing.assert_allclose(got[list(ATTRIBUTES)].to_numpy(), labels[list(ATTRIBUTES)].to_numpy())
        assert got["SpkrID"].dtype == "Int64"
        assert got["SpkrID"].isna().tolist() == labels["SpkrID"].isna().tolist()
        assert got["SpkrID"].dropna().tolist() == labels["SpkrID"].dropna().tolist()
        assert got["Gender"].isna().tolist() == labels["Gender"].isna().tolist()
        assert got["Gender"].dropna().tolist() == labels["Gender"].dropna().tolist()
        assert list(got.columns) == list(CONSENSUS_COLUMNS)
        assert got.attrs["source"] == str(root / "Labels" / "labels_consensus.csv")


def test_unknown_speaker_and_gender_are_missing_not_errors(tmp_path):
    file = write_text(tmp_path / "labels.csv", "\n".join(consensus_lines()) + "\n")
    labels = io.read_labels(file)
    row = labels.set_index("FileName").loc["MSP-PODCAST_0002_0001.wav"]
    assert pd.isna(row["SpkrID"]) and pd.isna(row["Gender"])
    assert labels["SpkrID"].tolist()[:2] == [12, 12]
    assert labels["Gender"].tolist()[-1] == "Male"


def test_extra_columns_are_kept(tmp_path):
    lines = [line + ("," + ("Transcript" if i == 0 else f"text {i}")) for i, line in enumerate(consensus_lines())]
    labels = io.read_labels(write_text(tmp_path / "labels.csv", "\n".join(lines)))
    assert list(labels.columns) == list(CONSENSUS_COLUMNS) + ["Transcript"]
    assert labels["Transcript"].tolist() == ["text 1", "text 2", "text 3", "text 4"]


def test_split_and_task_filters(tmp_path):
    labels = make_labels(40)
    root = write_corpus(tmp_path, labels)
    dev = io.read_labels(root, split="Development")
    assert dev["FileName"].tolist() == labels["FileName"][:20].tolist()
    categorical = io.read_labels(root, task="categorical")
    assert set(categorical["EmoClass"]) == set(CLASS_CODES)
    assert len(categorical) == int(labels["EmoClass"].isin(CLASS_CODES).sum())
    both = io.read_labels(root, split="Train", task="categorical")
    expected = labels.loc[(labels["Split_Set"] == "Train") & labels["EmoClass"].isin(CLASS_CODES), "FileName"]
    assert both["FileName"].tolist() == expected.tolist()
    assert len(io.read_labels(root, task="attributes")) == 40


def test_split_without_rows_is_an_error(tmp_path):
    root = write_corpus(tmp_path)
    with pytest.raises(InputError, match="no rows of split 'Test3'"):
        io.read_labels(root, split="Test3")


def _mutate(lines: list[str], line: int, column: str, value: str) -> list[str]:
    header = lines[0].split(",")
    fields = lines[line - 1].split(",")
    fields[header.index(column)] = value
    return lines[:line - 1] + [",".join(fields)] + lines[line:]


@pytest.mark.parametrize("line, column, value, fragment", [
    (3, "EmoClass", "Q", "unknown value 'Q'"),
    (2, "EmoAct", "7.5", "7.5 outside [1, 7]"),
    (4, "EmoVal", "0.9", "0.9 outside [1, 7]"),
    (3, "EmoDom", "NaN", "NaN value"),
    (5, "EmoAct", "", "empty value"),
    (2, "EmoVal", "high", "'high' is not a number"),
    (4, "SpkrID", "12.5", "not an integer speaker id"),
    (3, "SpkrID", "inf", "not an integer speaker id"),
    (2, "SpkrID", "-Infinity", "not an integer speaker id"),
    (3, "Gender", "female", "unknown value 'female'"),
    (5, "Split_Set", "Validation", "unknown value 'Validation'"),
    (2, "FileName", "", "empty value"),
])
def test_bad_label_values_name_file_row_and_column(tmp_path, line, column, value, fragment):
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(_mutate(consensus_lines(), line, column, value)))
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert fragment in assert_located(err, file, line, column)


def test_missing_column_is_named(tmp_path):
    lines = [",".join(f for f in line.split(",")[:7]) for line in consensus_lines()]
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "missing column" in assert_located(err, file, 1, "Split_Set")


def test_wrong_case_column_gets_a_hint(tmp_path):
    lines = consensus_lines()
    lines[0] = lines[0].replace("FileName", "Filename")
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "found 'Filename'" in assert_located(err, file, 1, "FileName")


def test_duplicate_file_name_names_both_rows(tmp_path):
    lines = consensus_lines() + [consensus_lines()[2].replace(",N,", ",S,")]
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    message = assert_located(err, file, 6, "FileName")
    assert "'MSP-PODCAST_0001_0002.wav', also on row 3" in message


def test_blank_lines_do_not_shift_row_numbers(tmp_path):
    lines = consensus_lines()
    lines = lines[:2] + ["", ""] + _mutate(lines, 3, "EmoClass", "Z")[2:]
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert_located(err, file, 5, "EmoClass")


@pytest.mark.parametrize("text, row, fragment", [("", 1, "empty file"), (HEADER + "\n", 2, "no data rows")])
def test_empty_file_is_an_error(tmp_path, text, row, fragment):
    file = write_text(tmp_path / "labels_consensus.csv", text)
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert fragment in assert_located(err, file, row, None)


def test_ragged_row_is_an_input_error(tmp_path):
    lines = consensus_lines()
    lines[3] += ",extra"
    file = write_text(tmp_path / "labels_consensus.csv", "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.read_labels(file)
    assert "9 fields where the header has 8" in assert_located(err, file, 4, None)


def test_missing_labels_file_in_corpus_root(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        io.read_labels(tmp_path)


# ------------------------------------------------------------------------- detailed labels

def make_detailed() -> pd.DataFrame:
    """Planted votes: file 0: A,A,S,Other; file 1: N,N,N; file 2: only Other votes; file 3: C,F."""
    rows = [("f0.wav", "W1", "Angry", "Frustrated,Annoyed", 5.0, 2.0, 6.0),
            ("f0.wav", "W2", "Angry", "", 6.0, 1.0, 5.0),
            ("f0.wav", "W3", "Sad", "Dissapointed", 3.0, 2.0, 3.0),
            ("f0.wav", "W4", "Other-Worried", "Concerned", 4.0, 3.0, 4.0),
            ("f1.wav", "W1", "Neutral", "", 4.0, 4.0, 4.0),
            ("f1.wav", "W5", "Neutral", "Amused", 4.0, 5.0, 4.0),
            ("f1.wav", "W6", "Neutral", "", 3.0, 4.0, 4.0),
            ("f2.wav", "W2", "Other-Bored", "", 2.0, 4.0, 3.0),
            ("f3.wav", "W3", "Contempt", "Disgust", 4.0, 2.0, 5.0),
            ("f3.wav", "W7", "Fear", "", 6.0, 2.0, 2.0)]
    return pd.DataFrame(rows, columns=["FileName", "WorkerID", "EmoClass_Major", "EmoClass_Second",
                                       "EmoAct", "EmoVal", "EmoDom"])


def test_both_detailed_layouts_round_trip_to_the_same_table(tmp_path):
    detailed = make_detailed()
    v1 = io.read_detailed_labels(io.write_labels_detailed(detailed, tmp_path / "v1" / "Labels" / "labels_detailed.csv"))
    v2 = io.read_detailed_labels(io.write_labels_detailed(detailed, tmp_path / "v2.csv", layout="2.0"))
    pd.testing.assert_frame_equal(v1, v2, check_dtype=False)
    for column in ("FileName", "WorkerID", "EmoClass_Major", "EmoClass_Second"):
        assert v1[column].tolist() == detailed[column].tolist()
    np.testing.assert_allclose(v1[list(ATTRIBUTES)].to_numpy(), detailed[list(ATTRIBUTES)].to_numpy())
    assert v1["EmoClass"].tolist() == ["A", "A", "S", "O", "N", "N", "N", "O", "C", "F"]
    assert io.read_detailed_labels(tmp_path / "v1")["WorkerID"].tolist() == detailed["WorkerID"].tolist()
    pd.testing.assert_frame_equal(io.soft_labels(v1), io.soft_labels(v2))


def test_soft_labels_match_planted_votes():
    votes = pd.DataFrame({"FileName": ["f0.wav"] * 4 + ["f1.wav"] * 3 + ["f2.wav", "f3.wav", "f3.wav"],
                          "EmoClass": ["A", "A", "S", "O", "N", "N", "N", "O", "C", "F"]})
    soft = io.soft_labels(votes)
    assert list(soft.columns) == list(CLASS_CODES) + ["n_votes"]
    assert soft.index.tolist() == ["f0.wav", "f1.wav", "f3.wav"]  # f2 has only Other votes
    assert soft.attrs["only_other"] == 1
    expected = np.zeros((3, 8))
    expected[0, [0, 1]] = [2 / 3, 1 / 3]
    expected[1, 7] = 1.0
    expected[2, [6, 4]] = 0.5
    np.testing.assert_allclose(soft[list(CLASS_CODES)].to_numpy(), expected)
    assert soft["n_votes"].tolist() == [3, 3, 2]


def test_emo_detail_strings_tolerate_spacing_empty_secondary_and_misspellings(tmp_path):
    text = ("FileName,EmoDetail\n"
            'a.wav,"WORKER00012; Angry; Frustrated,Annoyed; A:5.0; V:2.0; D:6.0;"\n'
            'a.wav,"WORKER00013;Sad;;A:2.0;V:1.5;D:3.0;"\n'
            'a.wav,"  WORKER00014 ;  Other-kind of sad ;  Dissapointed , Concerned ; A: 3 ; V: 2 ; D: 4 "\n'
            'a.wav,"WORKER00015; Neutral; A:4.0; V:4.0; D:4.0;"\n')
    detailed = io.read_detailed_labels(write_text(tmp_path / "labels_detailed.csv", text))
    assert detailed["WorkerID"].tolist() == ["WORKER00012", "WORKER00013", "WORKER00014", "WORKER00015"]
    assert detailed["EmoClass"].tolist() == ["A", "S", "O", "N"]
    assert detailed["EmoClass_Major"].tolist()[2] == "Other-kind of sad"
    assert detailed["EmoClass_Second"].tolist() == ["Frustrated,Annoyed", "", "Dissapointed,Concerned", ""]
    np.testing.assert_allclose(detailed[list(ATTRIBUTES)].to_numpy(),
                               [[5, 2, 6], [2, 1.5, 3], [3, 2, 4], [4, 4, 4]])


@pytest.mark.parametrize("detail, fragment", [
    ("WORKER1; Angry; ; A:5.0; V:2.0;", "cannot parse"),
    ("WORKER1; Furious; ; A:5.0; V:2.0; D:6.0;", "unknown primary emotion 'Furious'"),
    ("WORKER1; Angry; ; A:9.0; V:2.0; D:6.0;", "EmoAct 9.0 outside [1, 7]"),
])
def test_bad_emo_detail_names_row(tmp_path, detail, fragment):
    text = 'FileName,EmoDetail\na.wav,"WORKER0; Sad; ; A:2; V:2; D:2;"\n' + f'b.wav,"{detail}"\n'
    file = write_text(tmp_path / "labels_detailed.csv", text)
    with pytest.raises(InputError) as err:
        io.read_detailed_labels(file)
    assert fragment in assert_located(err, file, 3, "EmoDetail")


def test_bad_detailed_v2_value_names_column(tmp_path):
    detailed = make_detailed()
    file = io.write_labels_detailed(detailed, tmp_path / "labels_detailed.csv", layout="2.0")
    lines = file.read_text().splitlines()
    assert lines[3].endswith(",3.0,2.0,3.0")
    lines[3] = lines[3].replace(",3.0,2.0,3.0", ",3.0,nan,3.0")
    write_text(file, "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.read_detailed_labels(file)
    assert "EmoVal NaN value" in assert_located(err, file, 4, "EmoVal")


# ----------------------------------------------------------------------------- predictions

def make_categorical(files, seed=0, probabilities=True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(8), size=len(files))
    frame = pd.DataFrame({"FileName": list(files), "EmoClass": np.asarray(CLASS_CODES)[p.argmax(axis=1)]})
    if probabilities:
        frame[list(PROB_COLUMNS)] = p
    return frame


def make_attributes(files, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"FileName": list(files),
                         **{a: rng.uniform(1, 7, len(files)).round(3) for a in ATTRIBUTES}})


def test_categorical_predictions_round_trip(tmp_path):
    files = [f"x{k}.wav" for k in range(25)]
    planted = make_categorical(files)
    got = io.read_predictions(io.write_categorical_predictions(planted, tmp_path / "sysA_categorical.csv"))
    assert got["system"].unique().tolist() == ["sysA"]
    assert got["FileName"].tolist() == sorted(files)
    got = got.set_index("FileName").loc[files]
    assert got["EmoClass"].tolist() == planted["EmoClass"].tolist()
    np.testing.assert_allclose(got[list(PROB_COLUMNS)].to_numpy(), planted[list(PROB_COLUMNS)].to_numpy(), atol=1e-6)


def test_baseline_logits_give_argmax_and_softmax(tmp_path):
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, size=(12, 8))
    lines = ["Filename,Prediction"] + [f'f{k}.wav,"{", ".join(repr(float(v)) for v in row)}"'
                                       for k, row in enumerate(logits)]
    got = io.read_predictions(write_text(tmp_path / "baseline" / "categorical.csv", "\n".join(lines)))
    assert got["system"].unique().tolist() == ["baseline"]
    got = got.set_index("FileName").loc[[f"f{k}.wav" for k in range(12)]]
    assert got["EmoClass"].tolist() == [CLASS_CODES[k] for k in logits.argmax(axis=1)]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got[list(PROB_COLUMNS)].to_numpy(), expected, rtol=1e-12)


def test_baseline_with_wrong_number_of_logits(tmp_path):
    text = 'Filename,Prediction\na.wav,"1, 2, 3, 4, 5, 6, 7, 8"\nb.wav,"1, 2, 3"\n'
    file = write_text(tmp_path / "baseline.csv", text)
    with pytest.raises(InputError) as err:
        io.read_predictions(file)
    assert "expected 8 logits" in assert_located(err, file, 3, "Prediction")


def test_attribute_predictions_round_trip(tmp_path):
    files = [f"x{k}.wav" for k in range(10)]
    planted = make_attributes(files)
    got = io.read_predictions(io.write_attribute_predictions(planted, tmp_path / "s" / "attributes.csv"))
    assert got["system"].unique().tolist() == ["s"]
    np.testing.assert_allclose(got.set_index("FileName").loc[files, list(ATTRIBUTES)].to_numpy(),
                               planted[list(ATTRIBUTES)].to_numpy())
    assert "EmoClass" not in got


@pytest.mark.parametrize("text, row, column, fragment", [
    ("FileName,EmoClass\na.wav,A\nb.wav,X\n", 3, "EmoClass", "unknown value 'X'"),
    ("FileName,EmoClass\na.wav,A\nb.wav,\n", 3, "EmoClass", "unknown value ''"),
    ("FileName,EmoClass\na.wav,A\nb.wav,S\na.wav,N\n", 4, "FileName", "also on row 2"),
    ("FileName,EmoAct,EmoVal,EmoDom\na.wav,4,4,4\nb.wav,4,nan,4\n", 3, "EmoVal", "NaN value"),
    ("FileName,EmoAct,EmoVal\na.wav,4,4\n", 1, "EmoDom", "missing column"),
    ("FileName,EmoClass," + ",".join(PROB_COLUMNS) + "\na.wav,A,1,0,0,0,0,0,0,0\nb.wav,A,0.9,0.2,0,0,0,0,0,0\n",
     3, "P_A..P_N", "sum to 1.1"),
    ("FileName,EmoClass," + ",".join(PROB_COLUMNS) + "\na.wav,A,1.5,-0.5,0,0,0,0,0,0\n", 2, "P_A", "outside [0, 1]"),
    ("FileName,EmoClass,P_A\na.wav,A,1\n", 1, "P_S", "missing column"),
    ("File,Class\na.wav,A\n", 1, None, "unrecognised header"),
])
def test_bad_prediction_files_name_file_row_and_column(tmp_path, text, row, column, fragment):
    file = write_text(tmp_path / "sys1.csv", text)
    with pytest.raises(InputError) as err:
        io.read_predictions(file)
    assert fragment in assert_located(err, file, row, column)


def write_systems(root: Path, files, n_systems=3, tasks=("categorical", "attributes")) -> Path:
    for k in range(n_systems):
        if "categorical" in tasks:
            io.write_categorical_predictions(make_categorical(files, seed=k), root / f"sys{k}" / "categorical.csv")
        if "attributes" in tasks:
            io.write_attribute_predictions(make_attributes(files, seed=k), root / f"sys{k}" / "attributes.csv")
    return root


def test_read_systems_layouts(tmp_path):
    files = [f"x{k}.wav" for k in range(6)]
    root = write_systems(tmp_path / "predictions", files)
    io.write_categorical_predictions(make_categorical(files, seed=9, probabilities=False),
                                     root / "top_categorical.csv")
    io.write_attribute_predictions(make_attributes(files, seed=9), root / "top_attributes.csv")
    io.write_attribute_predictions(make_attributes(files, seed=8), root / "solo.csv")
    predictions = io.read_systems(root)
    assert sorted(predictions["system"].unique()) == ["solo", "sys0", "sys1", "sys2", "top"]
    assert predictions.groupby("system").size().tolist() == [6] * 5
    assert predictions.loc[predictions["system"] == "solo", "EmoClass"].isna().all()
    assert predictions.loc[predictions["system"] == "top", "P_A"].isna().all()
    assert predictions.loc[predictions["system"] == "top", "EmoClass"].notna().all()
    assert predictions.attrs["sources"]["sys1"]["attributes"] == str(root / "sys1" / "attributes.csv")
    assert predictions.attrs["sources"]["top"]["categorical"] == str(root / "top_categorical.csv")
    one = io.read_systems(root / "sys2")
    assert one["system"].unique().tolist() == ["sys2"]
    assert list(one.columns) == ["system", "FileName", "EmoClass", *PROB_COLUMNS, *ATTRIBUTES]
    pd.testing.assert_frame_equal(one, predictions.loc[predictions["system"] == "sys2", one.columns]
                                  .reset_index(drop=True), check_dtype=False)


def test_two_files_for_one_task_in_a_system_folder(tmp_path):
    files = ["a.wav", "b.wav"]
    io.write_categorical_predictions(make_categorical(files), tmp_path / "s" / "categorical.csv")
    io.write_categorical_predictions(make_categorical(files), tmp_path / "s" / "other.csv")
    with pytest.raises(InputError) as err:
        io.read_predictions(tmp_path / "s")
    assert "second categorical prediction file" in assert_located(err, tmp_path / "s" / "other.csv", 1, None)


# ---------------------------------------------------------------------------------- merge

def corpus_and_systems(tmp_path, n=40, n_systems=3):
    labels = make_labels(n)
    root = write_corpus(tmp_path / "corpus", labels)
    dev = labels.loc[labels["Split_Set"] == "Development", "FileName"].tolist()
    write_systems(tmp_path / "predictions", dev[::-1], n_systems=n_systems)
    return root, tmp_path / "predictions", labels


def test_load_merges_both_tasks_in_contract_layout(tmp_path):
    root, predictions, labels = corpus_and_systems(tmp_path)
    result = io.load(root, predictions, split="Development")
    dev = labels.loc[labels["Split_Set"] == "Development"].sort_values("FileName")
    categorical, attributes = result["categorical"], result["attributes"]
    assert list(categorical.columns) == ["system", "FileName", "SpkrID", "Gender", "Split_Set",
                                         "EmoClass_true", "EmoClass_pred", *PROB_COLUMNS]
    assert list(attributes.columns) == ["system", "FileName", "SpkrID", "Gender", "Split_Set",
                                        "EmoAct_true", "EmoAct_pred", "EmoVal_true", "EmoVal_pred",
                                        "EmoDom_true", "EmoDom_pred"]
    dev8 = dev.loc[dev["EmoClass"].isin(CLASS_CODES)]
    for merged, truth, task in ((categorical, dev8, "categorical"), (attributes, dev, "attributes")):
        assert merged.attrs["task"] == task and merged.attrs["dropped"] == 0
        assert merged.attrs["synthetic"] is False
        assert merged["system"].tolist() == sorted(["sys0", "sys1", "sys2"] * len(truth))
        for _, group in merged.groupby("system"):
            assert group["FileName"].tolist() == truth["FileName"].tolist()
    assert (categorical.groupby("system")["EmoClass_true"].apply(list).map(tuple).nunique()) == 1
    assert set(categorical["EmoClass_true"]) <= set(CLASS_CODES)
    # values joined to the right file: compare with the planted frames
    sys1 = attributes.loc[attributes["system"] == "sys1"].set_index("FileName")
    planted = make_attributes(dev["FileName"].tolist()[::-1], seed=1).set_index("FileName")
    np.testing.assert_allclose(sys1["EmoVal_pred"], planted.loc[sys1.index, "EmoVal"], atol=1e-6)
    np.testing.assert_allclose(sys1["EmoVal_true"], dev.set_index("FileName").loc[sys1.index, "EmoVal"])
    assert sys1["SpkrID"].dtype == "Int64"
    assert result["labels"]["Split_Set"].eq("Development").all()


def test_load_gives_none_for_a_task_nobody_submitted(tmp_path):
    labels = make_labels(20)
    root = write_corpus(tmp_path / "corpus", labels)
    dev = labels.loc[labels["Split_Set"] == "Development", "FileName"].tolist()
    write_systems(tmp_path / "p", dev, n_systems=2, tasks=("attributes",))
    result = io.load(root, tmp_path / "p")
    assert result["categorical"] is None
    assert result["attributes"]["system"].nunique() == 2


def test_prediction_for_unlabelled_file_names_prediction_file_row_column(tmp_path):
    root, predictions, labels = corpus_and_systems(tmp_path)
    file = predictions / "sys1" / "attributes.csv"
    lines = file.read_text().splitlines()
    lines.insert(3, lines[2].replace("MSP-PODCAST", "MSP-NOT-LABELLED"))
    write_text(file, "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        io.load(root, predictions)
    message = assert_located(err, file, 4, "FileName")
    assert "not in the labels of split Development" in message
    result = io.load(root, predictions, intersection=True)
    assert result["attributes"].attrs["dropped_predictions"] == 1
    assert result["attributes"].attrs["dropped"] == 0


def test_prediction_for_train_file_is_not_in_the_development_labels(tmp_path):
    root, predictions, labels = corpus_and_systems(tmp_path)
    file = predictions / "sys0" / "categorical.csv"
    train_file = labels.loc[labels["Split_Set"] == "Train", "FileName"].iloc[0]
    write_text(file, file.read_text() + f"{train_file},A,1,0,0,0,0,0,0,0\n")
    with pytest.raises(InputError) as err:
        io.load(root, predictions, split="Development")
    assert train_file in assert_located(err, file, 22, "FileName")


def test_partial_coverage_is_an_error_unless_intersection(tmp_path):
    root, predictions, labels = corpus_and_systems(tmp_path)
    dev = labels.loc[labels["Split_Set"] == "Development"]
    dev_all = dev["FileName"].sort_values().tolist()
    dev_8 = dev.loc[dev["EmoClass"].isin(CLASS_CODES), "FileName"].sort_values().tolist()
    # sys1 drops two classified files, sys2 drops one other
    lost1, lost2 = dev_8[0], dev_8[5]
    for system, lost in (("sys1", [lost1, dev_8[3]]), ("sys2", [lost2])):
        for task in ("categorical", "attributes"):
            file = predictions / system / f"{task}.csv"
            kept = [line for line in file.read_text().splitlines() if line.split(",")[0] not in lost]
            write_text(file, "\n".join(kept) + "\n")
    with pytest.raises(InputError) as err:
        io.load(root, predictions)
    file = predictions / "sys1" / "categorical.csv"
    message = assert_located(err, file, None, "FileName")
    assert f"2 of {len(dev_8)} files" in message and repr(lost1) in message
    assert f"labels row {labels['FileName'].tolist().index(lost1) + 2}" in message
    assert "intersection" in message
    result = io.load(root, predictions, intersection=True)
    for task, expected in (("categorical", dev_8), ("attributes", dev_all)):
        merged = result[task]
        common = [f for f in expected if f not in (lost1, dev_8[3], lost2)]
        assert merged.attrs["dropped"] == 3
        for _, group in merged.groupby("system"):
            assert group["FileName"].tolist() == common


def test_merge_in_memory_frames_without_sources():
    labels = make_labels(20)
    files = labels["FileName"].tolist()
    predictions = pd.concat([make_categorical(files, seed=k, probabilities=False).assign(system=f"s{k}")
                             for k in range(2)], ignore_index=True)
    merged = io.merge(labels, predictions, "categorical")
    expected = sorted(labels.loc[labels["EmoClass"].isin(CLASS_CODES), "FileName"])
    assert merged["FileName"].tolist() == expected * 2
    assert "P_A" not in merged
    with pytest.raises(InputError, match="no system has attributes predictions"):
        io.merge(labels, predictions, "attributes")
    with pytest.raises(InputError, match="predictions of system 's1'"):
        io.merge(labels, predictions.loc[predictions.index != 25], "categorical")


def _load_by_merge(labels_path, predictions_path, split, intersection):
    """What load returns, through the public frames: merge(read_labels, read_systems)."""
    labels, predictions = io.read_labels(labels_path, split=split), io.read_systems(predictions_path)
    return {task: io.merge(labels, predictions, task, intersection=intersection)
            if io.submitted(predictions, task).any() else None for task in ("categorical", "attributes")}


@pytest.mark.parametrize("intersection", [False, True])
@pytest.mark.parametrize("defect", ["none", "missing", "unlabelled", "train", "no_common"])
def test_load_equals_merge_of_read_systems(tmp_path, defect, intersection):
    """load writes each file's rows straight into the merged frames (no frame of all systems);
    the result -- values, dtypes, order, attrs, warnings and error messages -- equals merge() of
    read_systems() on a mix of layouts: baseline logits, no probabilities, attributes only,
    one-file systems, unsorted rows and an extra labels column."""
    labels = make_labels(60).assign(Extra=[f"e{k % 4}" for k in range(60)])
    root = write_corpus(tmp_path / "corpus", labels.drop(columns="Extra"))
    text = (root / "Labels" / "labels_consensus.csv").read_text().splitlines()
    write_text(root / "Labels" / "labels_consensus.csv",
               "\n".join([text[0] + ",Extra"] + [f"{t},{e}" for t, e in zip(text[1:], labels["Extra"])]) + "\n")
    dev = labels.loc[labels["Split_Set"] == "Development", "FileName"].tolist()
    train = labels.loc[labels["Split_Set"] == "Train", "FileName"].tolist()
    pred = tmp_path / "predictions"
    rng = np.random.default_rng(5)
    shuffled = [dev[k] for k in rng.permutation(len(dev))]
    io.write_categorical_predictions(make_categorical(shuffled, seed=1), pred / "b_full" / "categorical.csv")
    io.write_attribute_predictions(make_attributes(shuffled, seed=1), pred / "b_full" / "attributes.csv")
    io.write_categorical_predictions(make_categorical(dev, seed=2, probabilities=False), pred / "c_noprob.csv")
    io.write_attribute_predictions(make_attributes(dev, seed=3), pred / "a_attr_only" / "attributes.csv")
    logits = rng.normal(0, 2, size=(len(dev), 8))
    write_text(pred / "d_baseline" / "categorical.csv", "\n".join(
        ["Filename,Prediction"] + [f'{f},"{", ".join(f"{v:.5f}" for v in row)}"' for f, row in zip(dev, logits)]))
    target = pred / "b_full" / "categorical.csv"
    lines = target.read_text().splitlines()
    if defect == "missing":
        lines = [line for line in lines if line.split(",")[0] not in dev[2:5]]
    elif defect == "unlabelled":
        lines += [lines[3].replace("MSP-PODCAST", "MSP-ZZ"), lines[4].replace("MSP-PODCAST", "MSP-AA")]
    elif defect == "train":
        lines.append(f"{train[0]},A,1,0,0,0,0,0,0,0")
    elif defect == "no_common":
        lines = lines[:1] + [line for line in lines[1:] if line.split(",")[0] in dev[:15]]
        write_text(pred / "c_noprob.csv", "FileName,EmoClass\n" + "".join(f"{f},A\n" for f in dev[15:]))
    write_text(target, "\n".join(lines) + "\n")

    def outcome(function):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = function(root, pred, "Development", intersection)
            except InputError as err:
                result = ("InputError", str(err))
        return result, [str(w.message) for w in caught]

    (expected, expected_warnings), (got, got_warnings) = outcome(_load_by_merge), outcome(io.load)
    assert got_warnings == expected_warnings
    if isinstance(expected, tuple) or isinstance(got, tuple):
        assert got == expected and isinstance(got, tuple)
        assert defect != "none" and not (intersection and defect != "no_common")
        if defect == "no_common":
            assert ("prediction from every system" if intersection else "use --intersection") in got[1]
        return
    assert defect in ("none", "no_common") or intersection
    for task in ("categorical", "attributes"):
        pd.testing.assert_frame_equal(got[task], expected[task], check_exact=True)
        assert got[task].attrs == expected[task].attrs
    assert got["categorical"]["system"].unique().tolist() == ["b_full", "c_noprob", "d_baseline"]
    assert got["categorical"].loc[got["categorical"]["system"] == "c_noprob", "P_A"].isna().all()
    assert list(got["attributes"].columns[:6]) == ["system", "FileName", "SpkrID", "Gender", "Split_Set", "Extra"]
    if defect == "missing":
        assert got["categorical"].attrs["dropped"] == sum(f in dev[2:5] for f in got["labels"]["FileName"]
                                                          [got["labels"]["EmoClass"].isin(CLASS_CODES)]) > 0
    if defect in ("unlabelled", "train"):
        assert got["categorical"].attrs["dropped_predictions"] == (2 if defect == "unlabelled" else 1)


def test_load_fails_on_a_bad_file_of_any_system(tmp_path):
    root, predictions, _ = corpus_and_systems(tmp_path)
    file = predictions / "sys2" / "attributes.csv"
    lines = file.read_text().splitlines()
    lines[7] = ",".join(lines[7].split(",")[:3] + ["inf"])
    write_text(file, "\n".join(lines))
    with pytest.raises(InputError) as err:
        io.load(root, predictions)
    assert_located(err, file, 8, "EmoDom")


# ---------------------------------------------------------------------- submission check

def test_validate_submission_ok_with_labels_and_file_list(tmp_path):
    labels = make_labels(40)
    root = write_corpus(tmp_path / "corpus", labels)
    dev = labels.loc[labels["Split_Set"] == "Development"]
    only8 = dev.loc[dev["EmoClass"].isin(CLASS_CODES), "FileName"]
    cat = io.write_categorical_predictions(make_categorical(only8), tmp_path / "cat.csv")
    message = io.validate_submission(cat, labels=root)
    assert message == f"OK: {cat}: {len(only8)} rows, task categorical, all expected files present"
    att = io.write_attribute_predictions(make_attributes(dev["FileName"]), tmp_path / "att.csv")
    assert "20 rows, task attributes" in io.validate_submission(att, labels=root / "Labels" / "labels_consensus.csv")
    listing = write_text(tmp_path / "test3.txt", "FileName\n" + "\n".join(dev["FileName"]) + "\n\n")
    assert io.validate_submission(att, file_list=listing).startswith(f"OK: {att}: 20 rows")


def test_validate_submission_missing_and_extra_files(tmp_path):
    labels = make_labels(40)
    root = write_corpus(tmp_path / "corpus", labels)
    dev = labels.loc[labels["Split_Set"] == "Development", "FileName"].tolist()
    att = io.write_attribute_predictions(make_attributes(dev[:-2]), tmp_path / "att.csv")
    with pytest.raises(InputError) as err:
        io.validate_submission(att, labels=root)
    message = assert_located(err, att, None, "FileName")
    assert f"2 of 20 expected files missing, e.g. {dev[-2]!r}" in message and "row 20" in message
    extra = io.write_attribute_predictions(make_attributes(dev + ["stray.wav"]), tmp_path / "extra.csv")
    with pytest.raises(InputError) as err:
        io.validate_submission(extra, labels=root)
    assert "'stray.wav' is not an expected file" in assert_located(err, extra, 22, "FileName")
    listing = write_text(tmp_path / "list.txt", "\n".join(dev[:5]))
    with pytest.raises(InputError) as err:
        io.validate_submission(att, file_list=listing)
    assert_located(err, att, 7, "FileName")


# ------------------------------------------------------------------------------ synthetic

def test_is_synthetic_looks_up_to_four_parents(tmp_path):
    deep = tmp_path / "a" / "b" / "c" / "d" / "e"
    deep.mkdir(parents=True)
    file = write_text(deep / "categorical.csv", "FileName,EmoClass\n")
    assert not io.is_synthetic(file)
    write_text(tmp_path / "a" / io.SYNTHETIC_MARKER, "synthetic")
    assert io.is_synthetic(file)  # e, d, c, b, a: the folder and 4 parents
    assert io.is_synthetic(deep)
    assert not io.is_synthetic(deep / "f" / "g.csv")
    assert io.is_synthetic(tmp_path / "a")


def test_synthetic_flag_reaches_merged(tmp_path):
    root, predictions, _ = corpus_and_systems(tmp_path)
    write_text(root / io.SYNTHETIC_MARKER, "synthetic")
    result = io.load(root, predictions)
    assert result["labels"].attrs["synthetic"] is True
    assert result["attributes"].attrs["synthetic"] is True


def test_fast_number_parsing_equals_to_numeric_and_falls_back():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(1, 7, 2000), rng.normal(0, 1e-5, 100), [0.0, 7.0, 1e-300]])
    texts = [f"{v:.17g}" for v in values] + [f"{v:.5f}" for v in values] + ["1.", ".5", "+2", "1E+3", "-0.25e-2"]
    text = pd.Series(texts, dtype="str")
    fast = io.reading._plain_decimals(text)
    np.testing.assert_array_equal(fast.to_numpy(), pd.to_numeric(text).astype("float64").to_numpy())
    for odd in ("", "nan", "inf", "0x1", "1_0", "high", " 1"):
        assert io.reading._plain_decimals(pd.Series(["1.5", odd], dtype="str")) is None, odd


@pytest.mark.parametrize("body, plain", [
    ("FileName,EmoClass\nf1.wav,A\nf2.wav,NA\n", True),        # "NA" stays a string
    ("a,b\n1,\n x , y \n", True),                               # empty cell, spaces kept for the caller to strip
    ("a,b,c\n1,2,3", True),                                      # no final line break
    ("a,,c\n1,2,3\n", True),                                     # unnamed header cell
    ("FileName,EmoAct\nMSP-PODCAST_0001_0001.wav,1e400\n", True),  # numbers stay text
    ('a,b\n"1,5",2\n', True),                                    # whole quoted fields
    ('FileName,EmoDetail\nf.wav,"W1; Angry; Sad,Tired; A:5; V:2; D:6;"\n"g.wav",""\n', True),
    ("a,b\n1\n", False),                                         # too few fields: pandas' reader
    ("a,b\n1,2,3\n", False),                                     # too many fields: pandas' reader (its error)
    ('a,b\n"x""y",2\n', False),                                  # a quote inside quotes: pandas' reader
    ('a,b\n"x\ny",2\n', False),                                  # a line break inside quotes: pandas' reader
    ('a,b\nx"y",2\n', False),                                    # a quote inside a field: pandas' reader
    ('a,b\n"x"y,2\n', False),                                    # text after the closing quote: pandas' reader
    ('a,b\n"x,2\n', False),                                      # a quote never closed: pandas' reader
    ("a,b\r\n1,2\r\n", False),                                   # carriage returns: pandas' reader
    ("a,b\n1,2\n\n3,4\n", False),                                # blank line: pandas' reader
])
def test_plain_table_reads_what_pandas_reads_or_leaves_it_to_pandas(body, plain):
    """The pyarrow fast path gives read_csv(header=None, dtype=str, na_filter=False)'s frame,
    or ``None`` (then pandas' reader runs, with its line-exact errors)."""
    from io import StringIO
    fast = io.reading._plain_table(body.encode("utf-8"))
    assert (fast is not None) == plain
    if fast is not None:
        expected = pd.read_csv(StringIO(body), header=None, dtype=str, na_filter=False, skip_blank_lines=False)
        pd.testing.assert_frame_equal(fast, expected)


@pytest.mark.parametrize("cells, re2", [
    (["W1; Angry; ; A:5.0; V:2.0; D:6.0;", "  W2 ;Happy;Amused, Excited ;a: 7 ;v:1;d:4", "W3; Sad; A:1; V:2; D:3",
      "W4; Other-bored; ; A:5; V:5; D:5;  ", "not a judgement", "W5; ; ; A:; V:; D:;", ""], True),
    (["W1;\u00a0Angry; ; A:5.0; V:2.0; D:6.0;", "W2; Happy; ; A:5; V:5; D:5;"], False),   # non-ASCII space
    (["W1;\x1fAngry; ; A:5.0; V:2.0; D:6.0;", "W2; Happy; ; A:5; V:5;\x0bD:5;"], False),  # \s differs
])
def test_extract_through_re2_equals_python_re(cells, re2, monkeypatch):
    """Per-annotator details parsed by Arrow's RE2 kernel equal Python's ``re`` (after the
    reader's fillna("")), or Python's ``re`` runs."""
    text = pd.Series(cells, dtype="str", index=np.arange(10, 10 + len(cells)))
    expected = text.str.extract(io.labels._EMO_DETAIL)
    calls = []
    real = pd.core.strings.accessor.StringMethods.extract
    monkeypatch.setattr(pd.core.strings.accessor.StringMethods, "extract",
                        lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    got = io.labels._extract(text, io.labels._EMO_DETAIL)
    assert (not calls) == re2
    pd.testing.assert_frame_equal(got.isna(), expected.isna() & expected["WorkerID"].isna().to_numpy()[:, None])
    pd.testing.assert_frame_equal(got.fillna(""), expected.fillna(""))


def test_detailed_labels_read_the_same_without_the_fast_paths(tmp_path, monkeypatch):
    from ser_diag.simulate import simulate_challenge
    simulate_challenge(tmp_path, seed=4, n_systems=1, split="Development", n=300)
    fast = io.read_detailed_labels(tmp_path)
    assert fast["EmoClass_Second"].str.contains(",").any()  # quoted fields were read
    monkeypatch.setattr(io.reading, "_plain_table", lambda body: None)
    monkeypatch.setattr(io.labels, "_extract", lambda text, pattern: text.str.extract(pattern))
    slow = io.read_detailed_labels(tmp_path)
    pd.testing.assert_frame_equal(fast, slow)


def test_load_reads_the_same_frames_with_and_without_the_fast_path(tmp_path, monkeypatch):
    from ser_diag.simulate import simulate_challenge
    simulate_challenge(tmp_path, seed=3, n_systems=3, split="Development", n=400)
    labels, predictions = tmp_path / "Labels" / "labels_consensus.csv", tmp_path / "predictions"
    fast = io.load(labels, predictions)
    calls = []
    monkeypatch.setattr(io.reading, "_plain_table", lambda body: calls.append(1))
    slow = io.load(labels, predictions)
    assert calls  # the pandas reader ran
    for key in ("categorical", "attributes", "labels"):
        pd.testing.assert_frame_equal(fast[key], slow[key])


_P = "0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.3"
_TYPED_BODIES = {
    # regular files: the typed reader takes them
    "classes": ("FileName,EmoClass\nf1.wav,A\nf2.wav,N\n", True),
    "probabilities": (f"FileName,EmoClass,{','.join(PROB_COLUMNS)}\nf1.wav,N,{_P}\nf2.wav,N,{_P}", True),
    "argmax warning": (f"FileName,EmoClass,{','.join(PROB_COLUMNS)}\nf1.wav,A,{_P}\nf2.wav,N,{_P}\n", True),
    "attributes": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,1e0,+.5,-3.25e-2\nf2.wav,7.,9,0\n", True),
    "both, reordered, extra column": ("EmoDom,FileName,note,EmoVal,EmoClass,EmoAct\n2,f1.wav,x,3,S,4\n", True),
    "spaces in header and numbers": (" FileName , EmoAct,EmoVal,EmoDom\nf1.wav, 2.5 ,3,4\n", True),
    "tiny probability overshoot": (f"FileName,EmoClass,{','.join(PROB_COLUMNS)}\nf1.wav,N,0,0,0,0,0,0,0,1.0000005\n", True),
    # anything else: the text reader, with its messages
    "padded file name": ("FileName,EmoClass\n f1.wav,A\n", False),
    "padded class": ("FileName,EmoClass\nf1.wav,A \n", False),
    "unknown class": ("FileName,EmoClass\nf1.wav,Z\n", False),
    "duplicate file": ("FileName,EmoClass\nf1.wav,A\nf1.wav,S\n", False),
    "empty file name": ("FileName,EmoClass\n,A\n", False),
    "NaN": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,nan,3,4\n", False),
    "NA": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,NA,3,4\n", False),
    "inf": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,inf,3,4\n", False),
    "huge": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,1e400,3,4\n", False),
    "text number": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,high,3,4\n", False),
    "empty number": ("FileName,EmoAct,EmoVal,EmoDom\nf1.wav,,3,4\n", False),
    "probabilities off": (f"FileName,EmoClass,{','.join(PROB_COLUMNS)}\nf1.wav,N,{_P.replace('0.3', '0.5')}\n", False),
    "probability below 0": (f"FileName,EmoClass,{','.join(PROB_COLUMNS)}\nf1.wav,N,0.4,0.4,0.3,0.1,0.1,0.1,0.1,-0.2\n",
                            False),
    "some probabilities": ("FileName,EmoClass,P_A\nf1.wav,A,1\n", False),
    "two attributes": ("FileName,EmoAct,EmoVal\nf1.wav,3,4\n", False),
    "short row": ("FileName,EmoClass\nf1.wav\n", False),
    "quotes": ('FileName,EmoClass\n"f1.wav",A\n', False),
    "CRLF": ("FileName,EmoClass\r\nf1.wav,A\r\n", False),
    "blank line": ("FileName,EmoClass\nf1.wav,A\n\nf2.wav,S\n", False),
    "blank line above header": ("\nFileName,EmoClass\nf1.wav,A\n", False),
    "non-ASCII": ("FileName,EmoClass\nf\u00e9.wav,A\n", False),
    "unit separator": ("FileName,EmoClass\nf1.wav\x1f,A\n", False),
    "header only": ("FileName,EmoClass\n", False),
    "header twice": ("FileName,EmoClass,EmoClass\nf1.wav,A,S\n", False),
    "baseline": ("Filename,Prediction\nf1.wav,\"[1, 2, 3, 4, 5, 6, 7, 8]\"\n", False),
}


@pytest.mark.parametrize("name", list(_TYPED_BODIES))
def test_typed_reader_gives_the_text_readers_frame_or_leaves_the_file_to_it(name, tmp_path, monkeypatch):
    """Prediction files read straight into numbers by pyarrow equal the text path's frames,
    warnings included; a file the typed reader declines gets the text path's error or frame."""
    body, typed = _TYPED_BODIES[name]
    path = tmp_path / "system.csv"
    path.write_bytes(body.encode("utf-8"))
    assert (io.predictions._typed_prediction_file(path, path.read_bytes()) is not None) == typed

    def read():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = io.predictions._read_prediction_file(path)
            except InputError as err:
                result = str(err)
        return result, [str(w.message) for w in caught]

    fast, fast_warnings = read()
    monkeypatch.setattr(io.predictions, "_typed_prediction_file", lambda path, data: None)
    slow, slow_warnings = read()
    assert fast_warnings == slow_warnings
    if isinstance(slow, str):
        assert fast == slow
    else:
        pd.testing.assert_frame_equal(fast[0], slow[0])
        assert fast[1:] == slow[1:]
    if name == "argmax warning":
        assert len(fast_warnings) == 1 and "EmoClass is not the most probable" in fast_warnings[0]


def test_typed_reader_reads_simulated_systems_as_the_text_reader_does(tmp_path, monkeypatch):
    from ser_diag.simulate import simulate_challenge
    simulate_challenge(tmp_path, seed=5, n_systems=4, split="Development", n=300)
    files = sorted((tmp_path / "predictions").glob("*/*.csv"))
    typed = [io.predictions._typed_prediction_file(f, f.read_bytes()) for f in files]
    assert all(t is not None for t in typed)
    monkeypatch.setattr(io.predictions, "_typed_prediction_file", lambda path, data: None)
    for file, (frame, tasks) in zip(files, typed):
        text_frame, text_tasks, _ = io.predictions._read_prediction_file(file)
        pd.testing.assert_frame_equal(frame, text_frame)
        assert tasks == text_tasks


def test_out_of_range_reports_count_extremes_and_the_first_cell():
    rng = np.random.default_rng(2)
    values = pd.DataFrame(rng.uniform(1, 7, (500, 3)), columns=list(ATTRIBUTES), index=np.arange(500) + 2)
    assert io.out_of_range(values) is None
    values.iloc[40, 2], values.iloc[40, 1], values.iloc[7, 2], values.iloc[300, 0] = 9.5, -1.0, 0.25, 12.0
    block = values.to_numpy()
    outside = (block < 1) | (block > 7)
    expected = {"count": int(outside.sum()), "min": float(block[outside].min()), "max": float(block[outside].max()),
                "row": 9, "column": ATTRIBUTES[2]}
    assert io.out_of_range(values) == expected
    values.iloc[7, 0] = 0.0   # the same row: the first column in order
    assert io.out_of_range(values)["column"] == ATTRIBUTES[0]
