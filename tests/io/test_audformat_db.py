"""audformat databases as labels: schemes, speaker and gender, split ids, the vocabulary built
from the schemes or checked against a preset, prediction files in the corpus' own names; every
problem one line; macro-F1 and CCC of the merged frames against scikit-learn and Lin."""

from __future__ import annotations

import subprocess
import sys
import warnings

import audformat
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.errors import InputError, InputWarning
from ser_diag.io.audformat_db import read_database
from ser_diag.simulate import simulate_corpus
from ser_diag.vocabulary import CREMA_D, EMODB, IEMOCAP, MSP_PODCAST, preset

from test_corpora import check_scores   # tests/io is on the path of its own test modules

FILES = [f"wav/{s}a0{i}{c}.wav" for s, c in (("03", "W"), ("08", "L"), ("09", "N"), ("10", "T")) for i in range(3)]


def _database(root, with_gender_column=True, minimum=0.0):
    """A small database: emotion (labels) and arousal/valence (float 0-1) in one table per split,
    speakers as integers, gender in a column (or in the speaker scheme's dictionary)."""
    db = audformat.Database("tiny", source="test", usage="unrestricted")
    db.schemes["emotion"] = audformat.Scheme(labels=["anger", "calm", "joy"])
    db.schemes["arousal"] = audformat.Scheme("float", minimum=minimum, maximum=1.0)
    db.schemes["valence"] = audformat.Scheme("float", minimum=minimum, maximum=1.0)
    db.schemes["speaker"] = audformat.Scheme("int", labels={3: {"gender": "male"}, 8: {"gender": "female"},
                                                            9: {"gender": "female"}, 10: {"gender": "male"}})
    db.schemes["gender"] = audformat.Scheme(labels=["female", "male"])
    db.splits["train"] = audformat.Split("train")
    db.splits["test"] = audformat.Split("test")
    speakers = [int(f[4:6]) for f in FILES]
    db["files"] = audformat.Table(audformat.filewise_index(FILES))
    db["files"]["speaker"] = audformat.Column(scheme_id="speaker")
    db["files"]["speaker"].set(speakers)
    if with_gender_column:
        db["files"]["gender"] = audformat.Column(scheme_id="gender")
        db["files"]["gender"].set(["male" if s in (3, 10) else "female" for s in speakers])
    codes = ["anger", "calm", "joy"]
    for split, files in (("train", FILES[:6]), ("test", FILES[6:])):
        table = f"emotion.{split}"
        db[table] = audformat.Table(audformat.filewise_index(files), split_id=split)
        db[table]["emotion"] = audformat.Column(scheme_id="emotion")
        db[table]["emotion"].set([codes[i % 3] for i in range(len(files))])
        for k, name in enumerate(("arousal", "valence")):
            db[table][name] = audformat.Column(scheme_id=name)
            db[table][name].set([round(0.1 + 0.07 * ((i + k) % 11), 2) for i in range(len(files))])
    db.save(str(root), storage_format="csv")
    return root


def _predictions(folder, files=FILES, emotion=None, attributes=("arousal", "valence")):
    folder.mkdir(parents=True, exist_ok=True)
    emotion = emotion or [("anger", "calm", "joy")[(i + 1) % 3 if i % 4 == 0 else i % 3] for i in range(len(files))]
    pd.DataFrame({"file": files, "emotion": emotion}).to_csv(folder / "categorical.csv", index=False)
    if attributes:
        frame = pd.DataFrame({"file": files})
        for k, name in enumerate(attributes):
            frame[name] = [0.15 + 0.05 * ((i + 2 * k) % 9) for i in range(len(files))]
        frame.to_csv(folder / "attributes.csv", index=False)
    return folder.parent


@pytest.fixture
def tiny(tmp_path):
    return _database(tmp_path / "db"), _predictions(tmp_path / "predictions" / "sysA")


def test_schemes_speakers_genders_and_a_built_vocabulary(tiny):
    db, _ = tiny
    labels, voc = read_database(db)
    assert voc.classes == ("anger", "calm", "joy") and voc.attribute_names == ("arousal", "valence")
    assert voc.attribute_ranges == {"arousal": (0.0, 1.0), "valence": (0.0, 1.0)}
    assert voc.splits == ("test", "train") and (voc.file_column, voc.class_column) == ("file", "emotion")
    assert labels["FileName"].tolist() == sorted(FILES)                     # relative paths kept
    assert list(labels.columns) == ["FileName", "EmoClass", "arousal", "valence", "SpkrID", "Gender", "Split_Set"]
    row = labels.set_index("FileName").loc["wav/08a01L.wav"]
    assert (row["SpkrID"], row["Gender"], row["Split_Set"]) == ("8", "Female", "train")
    assert labels.attrs["source"].endswith("db.yaml") and labels.attrs["synthetic"] is False


def test_gender_from_the_speaker_scheme_dictionary(tmp_path):
    labels, _ = read_database(_database(tmp_path / "db", with_gender_column=False))
    genders = dict(zip(labels["SpkrID"], labels["Gender"]))
    assert genders == {"3": "Male", "8": "Female", "9": "Female", "10": "Male"}


def test_split_ids_select_their_tables_files(tiny):
    db, predictions = tiny
    labels, _ = read_database(db, split="test")
    assert labels["FileName"].tolist() == FILES[6:] and labels.attrs["split"] == "test"
    loaded = io.load(db, predictions, split="test", intersection=True)
    assert set(loaded["categorical"]["FileName"]) == set(FILES[6:])
    with pytest.raises(InputError) as err:
        read_database(db, split="dev")
    text = str(err.value)
    assert "no split 'dev'" in text and "test, train" in text and err.value.column == "split_id"
    assert read_database(db, split="Development")[0].attrs["split"] is None   # io.load's default: every file


def test_load_merges_under_the_database_vocabulary(tiny):
    db, predictions = tiny
    loaded = io.load(db, predictions, split=None)
    voc = loaded["vocabulary"]
    assert loaded["categorical"].attrs["vocabulary"] == voc == loaded["attributes"].attrs["vocabulary"]
    assert list(loaded["attributes"].columns[-4:]) == ["arousal_true", "arousal_pred", "valence_true", "valence_pred"]
    check_scores(loaded, voc)
    only = io.load(db, predictions, split=None, attributes=["valence"])
    assert only["vocabulary"].attribute_names == ("valence",)


def _error(call) -> InputError:
    with pytest.raises(InputError) as err, warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        call()
    assert "\n" not in str(err.value) and len(str(err.value)) < 480
    return err.value


def test_bad_databases_and_predictions_are_one_line(tiny, tmp_path):
    db, predictions = tiny
    err = _error(lambda: io.load(db, predictions, split=None, target="mood"))
    assert "unknown scheme 'mood'" in str(err) and "emotion" in str(err) and err.file.endswith("db.yaml")
    err = _error(lambda: io.load(db, predictions, split=None, attributes=["pleasure"]))
    assert "unknown scheme 'pleasure'" in str(err) and err.column == "pleasure"
    err = _error(lambda: io.load(db, predictions, split=None, attributes=["emotion"]))
    assert "not a float or int scheme" in str(err)
    bad = _predictions(tmp_path / "p1" / "sysA", emotion=["anger"] * 11 + ["fear"])
    err = _error(lambda: io.load(db, bad, split=None))
    assert (err.row, err.column) == (13, "emotion") and "unknown value 'fear'" in str(err)
    assert err.file.endswith("categorical.csv")
    bad = _predictions(tmp_path / "p2" / "sysA", attributes=("arousal",))
    err = _error(lambda: io.load(db, bad, split=None))
    assert (err.row, err.column) == (1, "valence") and "missing column" in str(err)
    bad = _predictions(tmp_path / "p3" / "sysA", files=FILES[:-1] + ["wav/99a01X.wav"])
    err = _error(lambda: io.load(db, bad, split=None))
    assert (err.row, err.column) == (13, "file") and "'wav/99a01X.wav' is not in the labels" in str(err)
    err = _error(lambda: io.load(db, predictions, split=None, vocabulary=CREMA_D))
    assert "scheme 'emotion' has label 'calm', not a code of vocabulary crema-d" in str(err)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "db.yaml").write_text("name: [unclosed\n")
    err = _error(lambda: io.load(tmp_path / "broken", predictions, split=None))
    assert "cannot load the audformat database" in str(err)


def test_scales_from_schemes_or_the_vocabulary(tmp_path):
    db = _database(tmp_path / "db", minimum=None)
    err = _error(lambda: read_database(db))
    assert "has no minimum/maximum" in str(err) and err.column == "arousal"
    voc = preset("emodb")
    err = _error(lambda: read_database(db, vocabulary=voc))
    assert "not a code of vocabulary emodb" in str(err)


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("simulated")
    return {name: simulate_corpus(root / name, corpus=name, n_speakers=speakers, files_per_speaker=12)
            for name, speakers in (("iemocap", 10), ("crema-d", 6), ("msp-podcast", 6))}


@pytest.mark.parametrize("name, preset_voc", [("iemocap", IEMOCAP), ("crema-d", CREMA_D), ("msp-podcast", MSP_PODCAST)])
def test_simulated_databases_both_routes_agree(simulated, name, preset_voc):
    out = simulated[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        built = io.load(out / "audformat", out / "audformat_predictions", split=None)
        given = io.load(out / "audformat", out / "audformat_predictions", split=None, vocabulary=preset_voc)
        csv = io.load(out / "csv" / "labels.csv", out / "csv" / "predictions", split=None, vocabulary=preset_voc)
    voc = built["vocabulary"]
    # the scheme's labels are the preset's codes: its scored/excluded/merged codes apply
    assert voc.classes == preset_voc.classes and voc.excluded == preset_voc.excluded
    assert voc.attribute_names == ("arousal", "valence", "dominance")[:len(preset_voc.attributes)]
    assert [a.display for a in voc.attributes] == [a.display for a in preset_voc.attributes]
    assert given["vocabulary"] == voc
    check_scores(built, voc)
    for task in ("categorical", "attributes"):
        if built[task] is None:
            assert csv[task] is None
            continue
        a, b = built[task].reset_index(drop=True), csv[task].reset_index(drop=True)
        b.columns = a.columns     # the CSV side names attributes as its vocabulary does (activation, EmoAct)
        for frame in (a, b):      # MSP-Podcast's CSV route reads speakers as Int64
            frame["SpkrID"] = frame["SpkrID"].astype(str)
        assert a.drop(columns="Split_Set").astype(object).equals(b.drop(columns="Split_Set").astype(object))


def test_iemocap_sessions_are_split_ids(simulated):
    labels, voc = read_database(simulated["iemocap"] / "audformat", split="Session3")
    assert voc.splits == IEMOCAP.splits and set(labels["Split_Set"]) == {"Session3"}
    assert labels["SpkrID"].nunique() == 2 and set(labels["Gender"]) == {"Female", "Male"}
    assert labels.attrs["synthetic"] is True


def test_emodb_database_takes_the_emodb_preset(tmp_path):
    out = simulate_corpus(tmp_path / "emodb", corpus="emodb", n_speakers=3, files_per_speaker=7)
    labels, voc = read_database(out / "audformat")
    assert voc.classes == EMODB.classes and voc.attributes == () and labels["SpkrID"].tolist()[0] == "03"


def test_import_ser_diag_does_not_import_audformat():
    code = "import sys, ser_diag, ser_diag.io, ser_diag.simulate; print('audformat' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_vocabulary_attributes_without_schemes_are_one_warning(tmp_path):
    out = simulate_corpus(tmp_path / "crema", corpus="crema-d", n_speakers=2, files_per_speaker=4)
    voc = CREMA_D.__class__.from_dict({**CREMA_D.to_dict(), "name": "crema-dim",
                                       "attributes": [{"name": "arousal", "low": 1, "high": 5}]})
    with pytest.warns(InputWarning, match="no scheme for the attributes arousal of vocabulary crema-dim") as caught:
        labels, read = read_database(out / "audformat", vocabulary=voc)
    assert len(caught) == 1 and read.attributes == () and "arousal" not in labels
