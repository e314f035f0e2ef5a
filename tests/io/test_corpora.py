"""The plain-CSV corpus route: a labels CSV and prediction files in a vocabulary's column names,
validated cell by cell (one line naming file, row and column), merged under the vocabulary;
macro-F1 and CCC of the merged frames checked against scikit-learn and Lin's formula."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from reference_metrics import reference_ccc
from ser_diag import io
from ser_diag.errors import InputError, InputWarning
from ser_diag.metrics import ccc, macro_f1
from ser_diag.simulate import simulate_corpus
from ser_diag.vocabulary import CREMA_D, IEMOCAP, MSP_PODCAST, Vocabulary, preset


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpora")
    return {name: simulate_corpus(root / name, corpus=name, n_speakers=speakers, files_per_speaker=12)
            for name, speakers in (("iemocap", 10), ("crema-d", 6), ("msp-podcast", 6))}


def _load(out, voc, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return io.load(out / "csv" / "labels.csv", out / "csv" / "predictions", vocabulary=voc,
                       **{"split": None, **kw})


def check_scores(loaded, voc):
    """Every system's macro-F1 and CCC from the merged frames equal the independent formulas."""
    categorical, attributes = loaded["categorical"], loaded["attributes"]
    assert categorical is not None
    for _, frame in categorical.groupby("system"):
        truth, pred = frame["EmoClass_true"].to_numpy(str), frame["EmoClass_pred"].to_numpy(str)
        assert set(truth) <= set(voc.classes)
        expected = f1_score(truth, pred, average="macro", labels=list(voc.classes), zero_division=0)
        assert abs(macro_f1(truth, pred, labels=voc.classes) - expected) < 1e-9
    assert (attributes is None) == (not voc.attributes)
    if attributes is not None:
        for _, frame in attributes.groupby("system"):
            for name in voc.attribute_names:
                x, y = frame[f"{name}_true"].to_numpy(float), frame[f"{name}_pred"].to_numpy(float)
                assert abs(ccc(x, y) - reference_ccc(x, y)) < 1e-9


@pytest.mark.parametrize("name", ["iemocap", "crema-d", "msp-podcast"])
def test_csv_route_scores_and_frames(corpora, name):
    out = corpora[name]
    voc = Vocabulary.from_file(out / "csv" / "vocabulary.json")
    assert voc == preset(name)
    loaded = _load(out, voc, split=None if name != "msp-podcast" else "Development")
    check_scores(loaded, voc)
    labels = loaded["labels"]
    assert list(labels.columns[:2]) == ["FileName", "EmoClass"] and labels.attrs["synthetic"]
    merged = loaded["categorical"]
    assert merged.attrs["synthetic"] is True
    assert list(merged.columns[:5]) == ["system", "FileName", "SpkrID", "Gender", "Split_Set"]
    assert list(merged.columns[-len(voc.classes):]) == list(voc.prob_columns)
    if voc != MSP_PODCAST:
        assert merged.attrs["vocabulary"] == voc and loaded["vocabulary"] == voc
        assert merged["SpkrID"].notna().all() and set(merged["Gender"]) == {"Female", "Male"}


def test_iemocap_merged_and_excluded_codes(corpora):
    loaded = _load(corpora["iemocap"], IEMOCAP)
    labels = loaded["labels"]
    raw = pd.read_csv(corpora["iemocap"] / "csv" / "labels.csv", dtype=str)
    assert "excited" not in set(labels["EmoClass"]) and "excited" in set(raw["emotion"])
    excited = raw.loc[raw["emotion"] == "excited", "file"]
    assert (labels.set_index("FileName").loc[excited, "EmoClass"] == "happy").all()
    n_scored = labels["EmoClass"].isin(IEMOCAP.classes).sum()
    per_system = loaded["categorical"].groupby("system").size()
    assert (per_system == n_scored).all() and n_scored < len(labels)
    assert (loaded["attributes"].groupby("system").size() == len(labels)).all()   # excluded files score attributes


def test_split_selects_a_session_and_unknown_split_is_one_line(corpora):
    loaded = _load(corpora["iemocap"], IEMOCAP, split="Session2", intersection=True)
    assert set(loaded["labels"]["Split_Set"]) == {"Session2"}
    assert loaded["labels"]["SpkrID"].nunique() == 2
    assert loaded["categorical"].attrs["split"] == "Session2"
    with pytest.raises(InputError) as err:
        _load(corpora["iemocap"], IEMOCAP, split="Session9")
    assert "no split 'Session9'" in str(err.value) and "Session1" in str(err.value)
    assert err.value.column == "session" and "\n" not in str(err.value)
    with pytest.raises(InputError, match="is not in the labels of split Session2") as err:
        _load(corpora["iemocap"], IEMOCAP, split="Session2")
    assert err.value.row == 2 and err.value.column == "file"


def test_development_default_means_every_file_without_such_split(corpora):
    everything = _load(corpora["crema-d"], CREMA_D)
    default = _load(corpora["crema-d"], CREMA_D, split="Development")
    assert len(default["labels"]) == len(everything["labels"]) and default["labels"].attrs["split"] is None


# --------------------------------------------------------------------------- bad input: one line each

LABELS = """file,emotion,activation,valence,dominance,speaker,gender,session
a.wav,angry,4,2,4,Ses01F,Female,Session1
b.wav,happy,4,4,3,Ses01M,Male,Session1
c.wav,excited,5,4.5,3.5,Ses01F,Female,Session1
d.wav,frustrated,3,2,3,Ses01M,Male,Session1
e.wav,sad,2,2,2,Ses02F,Female,Session2
f.wav,neutral,3,3,3,Ses02M,Male,Session2
"""
CATEGORICAL = """file,emotion
a.wav,angry
b.wav,happy
c.wav,happy
d.wav,sad
e.wav,sad
f.wav,neutral
"""
ATTRIBUTES = """file,activation,valence,dominance
a.wav,4,2,4
b.wav,3.5,3.5,3
c.wav,4.5,4,3
d.wav,3,2.5,3
e.wav,2,2.5,2.5
f.wav,3,3,6.5
"""


def _corpus(tmp_path, labels=LABELS, categorical=CATEGORICAL, attributes=ATTRIBUTES):
    (tmp_path / "labels.csv").write_text(labels)
    system = tmp_path / "predictions" / "sysA"
    system.mkdir(parents=True)
    if categorical is not None:
        (system / "categorical.csv").write_text(categorical)
    if attributes is not None:
        (system / "attributes.csv").write_text(attributes)
    return tmp_path / "labels.csv", tmp_path / "predictions"


def test_small_corpus_reads_merges_and_warns_once(tmp_path):
    labels, predictions = _corpus(tmp_path)
    with pytest.warns(InputWarning, match=r"1 attribute predictions outside \[1, 5\]") as caught:
        loaded = io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    assert len([w for w in caught if issubclass(w.category, InputWarning)]) == 1
    assert loaded["categorical"]["FileName"].tolist() == ["a.wav", "b.wav", "c.wav", "e.wav", "f.wav"]
    assert loaded["categorical"]["EmoClass_true"].tolist() == ["angry", "happy", "happy", "sad", "neutral"]
    assert loaded["attributes"]["dominance_pred"].max() == 6.5           # scored as given
    assert loaded["labels"]["SpkrID"].tolist()[:2] == ["Ses01F", "Ses01M"]
    assert loaded["categorical"].attrs["synthetic"] is False
    check_scores(loaded, IEMOCAP)


def test_missing_optional_columns_are_na(tmp_path):
    text = "\n".join(",".join(line.split(",")[:5]) for line in LABELS.splitlines()) + "\n"
    labels, predictions = _corpus(tmp_path, labels=text, attributes=ATTRIBUTES.replace("6.5", "3"))
    loaded = io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    for column in ("SpkrID", "Gender", "Split_Set"):
        assert loaded["labels"][column].isna().all()
    with pytest.raises(InputError, match="no 'session' column"):
        io.load(labels, predictions, split="Session1", vocabulary=IEMOCAP)


def test_a_single_prediction_csv_is_one_system(tmp_path):
    labels, _ = _corpus(tmp_path)
    (tmp_path / "mine.csv").write_text(CATEGORICAL)
    loaded = io.load(labels, tmp_path / "mine.csv", split=None, vocabulary=IEMOCAP)
    assert loaded["attributes"] is None and set(loaded["categorical"]["system"]) == {"mine"}


def _one_line(error: InputError, file: str, row, column) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 480
    assert error.file.endswith(file) and error.row == row and error.column == column, text
    return text


@pytest.mark.parametrize("where, old, new, row, column, fragment", [
    ("labels", "a.wav,angry", "a.wav,furious", 2, "emotion", "unknown value 'furious'"),
    ("labels", "e.wav,sad,2,2,2", "e.wav,sad,2,7,2", 6, "valence", "outside [1, 5]"),
    ("labels", "e.wav,sad,2,2,2", "e.wav,sad,2,NaN,2", 6, "valence", "NaN value"),
    ("labels", "b.wav,happy", "a.wav,happy", 3, "file", "duplicate file 'a.wav'"),
    ("labels", "b.wav,happy", ",happy", 3, "file", "empty value"),
    ("labels", "b.wav,happy", "b.wav,", 3, "emotion", "empty value"),
    ("labels", "Ses01M,Male", "Ses01M,robot", 3, "gender", "unknown gender 'robot'"),
    ("labels", "file,emotion,activation,valence,", "file,emotion,activation,valance,", 1, "valence",
     "missing column"),
    ("labels", "f.wav,neutral,3,3,3,Ses02M,Male,Session2", "f.wav,neutral,3,3,3,Ses02M,Male,Session7", 7,
     "session", "unknown value 'Session7'"),
    ("categorical", "d.wav,sad", "d.wav,excited", 5, "emotion", "unknown value 'excited'"),
    ("categorical", "b.wav,happy", "b.wav,hapy", 3, "emotion", "unknown value 'hapy'"),
    ("categorical", "c.wav,happy", "b.wav,happy", 4, "file", "duplicate file 'b.wav'"),
    ("categorical", "f.wav,neutral", "g.wav,neutral", 7, "file", "'g.wav' is not in the labels"),
    ("attributes", "c.wav,4.5,4,3", "c.wav,4.5,nan,3", 4, "valence", "NaN value"),
    ("attributes", "c.wav,4.5,4,3", "c.wav,4.5,,3", 4, "valence", "empty value"),
    ("attributes", "file,activation,valence,dominance", "file,activation,valence", 1, "dominance",
     "missing column"),
])
def test_each_bad_cell_is_one_line(tmp_path, where, old, new, row, column, fragment):
    texts = {"labels": LABELS, "categorical": CATEGORICAL, "attributes": ATTRIBUTES}
    assert old in texts[where]
    texts[where] = texts[where].replace(old, new, 1)
    if where == "attributes" and column == "dominance":
        texts[where] = "\n".join(line.rsplit(",", 1)[0] if i else line
                                 for i, line in enumerate(texts[where].splitlines())) + "\n"
    labels, predictions = _corpus(tmp_path, *texts.values())
    with pytest.raises(InputError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    file = "labels.csv" if where == "labels" else f"{where}.csv"
    assert fragment in _one_line(err.value, file, row, column)


def test_probabilities_and_empty_files(tmp_path):
    bad = CATEGORICAL.replace("file,emotion", "file,emotion,P_neutral,P_happy,P_sad,P_angry")
    bad = "\n".join(line + (",0.1,0.1,0.1,0.7" if i else "") for i, line in enumerate(bad.splitlines())) + "\n"
    bad = bad.replace("e.wav,sad,0.1,0.1,0.1,0.7", "e.wav,sad,0.1,0.1,0.5,0.7")
    labels, predictions = _corpus(tmp_path, categorical=bad, attributes=None)
    with pytest.raises(InputError) as err:
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    assert "sum to 1.4" in _one_line(err.value, "categorical.csv", 6, "P_neutral..P_angry")
    (tmp_path / "labels.csv").write_text("")
    with pytest.raises(InputError, match="empty file") as err:
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    assert err.value.row == 1
    with pytest.raises(InputError, match="needs its vocabulary"):
        io.load_corpus(labels, predictions)


def test_intersection_keeps_the_shared_files(tmp_path):
    labels, predictions = _corpus(tmp_path, categorical=CATEGORICAL.replace("f.wav,neutral", "g.wav,neutral"),
                                  attributes=None)
    loaded = io.load(labels, predictions, split=None, vocabulary=IEMOCAP, intersection=True)
    assert "f.wav" not in set(loaded["categorical"]["FileName"])
    assert loaded["categorical"].attrs["dropped_predictions"] == 1


def test_target_and_attributes_choose_columns(tmp_path):
    labels, predictions = _corpus(tmp_path, categorical=None,
                                  attributes=ATTRIBUTES.replace("6.5", "3"))
    loaded = io.load(labels, predictions, split=None, vocabulary=IEMOCAP, attributes=["arousal"])
    assert [c for c in loaded["attributes"].columns if c.endswith("_pred")] == ["activation_pred"]
    with pytest.raises(InputError, match="not an attribute of vocabulary iemocap"):
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP, attributes=["pleasure"])
    with pytest.raises(InputError, match="missing column") as err:
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP, target="label")
    assert err.value.column == "label"


def test_unrecognised_prediction_header(tmp_path):
    labels, predictions = _corpus(tmp_path, categorical="FileName,EmoClass\na.wav,A\n", attributes=None)
    with pytest.raises(InputError, match="unrecognised header") as err:
        io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    assert err.value.row == 1 and "file,emotion" in str(err.value)


def test_msp_vocabulary_file_names_match_its_layout(corpora):
    out = corpora["msp-podcast"]
    with pytest.warns(InputWarning, match="outside"):
        msp = io.load(out / "csv" / "labels.csv", out / "csv" / "predictions", split="Development")
    assert msp["labels"]["SpkrID"].dtype == "Int64"            # the MSP-Podcast route, unchanged
    assert np.isclose(msp["attributes"]["EmoAct_pred"].mean(),
                      _load(out, MSP_PODCAST)["attributes"]["EmoAct_pred"].mean())


def test_class_column_disagreeing_with_probabilities_is_warned(tmp_path):
    text = CATEGORICAL.replace("file,emotion", "file,emotion,P_neutral,P_happy,P_sad,P_angry")
    rows = text.splitlines()
    text = "\n".join([rows[0]] + [r + ",0.1,0.1,0.1,0.7" for r in rows[1:]]) + "\n"
    labels, predictions = _corpus(tmp_path, categorical=text, attributes=None)
    with pytest.warns(InputWarning, match=r"not the most probable class .* in 5 of 6 rows") as caught:
        loaded = io.load(labels, predictions, split=None, vocabulary=IEMOCAP)
    assert caught[0].message.row == 3 and caught[0].message.column == "emotion"
    assert loaded["categorical"]["P_angry"].eq(0.7).all()
