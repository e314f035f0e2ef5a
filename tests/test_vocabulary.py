"""The corpus vocabulary as a value: presets, validation, vocabulary files (JSON, YAML)."""

import dataclasses
import json

import pandas as pd
import pytest

from ser_diag import schema
from ser_diag.errors import InputError
from ser_diag.evaluation import Evaluation
from ser_diag.vocabulary import (CREMA_D, EMODB, IEMOCAP, MSP_IMPROV, MSP_PODCAST, PRESETS, Attribute,
                                 Vocabulary, VocabularyError, VocabularyFileError, preset)

import yaml   # a dependency (pyproject.toml): vocabulary files may be YAML


# --------------------------------------------------------------------------- presets

def test_msp_podcast_is_schema():
    """The default preset is schema.py's constants, field by field."""
    v = MSP_PODCAST
    assert v.classes == schema.CLASS_CODES == ("A", "S", "H", "U", "F", "D", "C", "N")
    assert dict(v.class_names) == schema.CLASS_NAMES
    assert v.excluded == schema.EXTRA_CODES and set(v.excluded) == {"X", "O"}
    assert v.label_codes == schema.ALL_CODES
    assert v.attribute_names == schema.ATTRIBUTES == ("EmoAct", "EmoVal", "EmoDom")
    assert all((a.low, a.high) == (schema.ATTRIBUTE_MIN, schema.ATTRIBUTE_MAX) == (1.0, 7.0) for a in v.attributes)
    assert {a.name: a.display for a in v.attributes} == schema.ATTRIBUTE_NAMES
    assert v.splits == schema.SPLITS
    assert (v.file_column, v.class_column, v.speaker_column, v.gender_column, v.split_column) == (
        "FileName", "EmoClass", "SpkrID", "Gender", "Split_Set")
    assert {v.file_column, v.class_column, v.speaker_column, v.gender_column, v.split_column,
            *v.attribute_names} == set(schema.CONSENSUS_COLUMNS)
    assert dict(v.merged) == {}


def test_presets_are_the_corpora_conventions():
    assert list(PRESETS) == ["msp-podcast", "iemocap", "crema-d", "emodb", "msp-improv"]
    assert IEMOCAP.classes == ("neutral", "happy", "sad", "angry")
    assert IEMOCAP.resolve("excited") == "happy" and IEMOCAP.resolve("frustrated") is None
    assert [(a.low, a.high) for a in IEMOCAP.attributes] == [(1.0, 5.0)] * 3
    assert IEMOCAP.splits == ("Session1", "Session2", "Session3", "Session4", "Session5")
    assert CREMA_D.classes == ("anger", "disgust", "fear", "happy", "neutral", "sad") and CREMA_D.attributes == ()
    assert EMODB.classes == ("anger", "boredom", "disgust", "fear", "happiness", "neutral", "sadness")
    assert EMODB.attributes == ()
    assert len(MSP_IMPROV.classes) == 4 and [(a.name, a.low, a.high) for a in MSP_IMPROV.attributes] == [
        ("arousal", 1.0, 5.0), ("valence", 1.0, 5.0), ("dominance", 1.0, 5.0)]
    for v in PRESETS.values():
        assert 2 <= len(v.classes) <= 20 and set(v.class_names) == set(v.classes)
        assert v.description, v.name
        assert Vocabulary.from_dict(v.to_dict()) == v          # re-validated from plain data


@pytest.mark.parametrize("name, expected", [("msp-podcast", MSP_PODCAST), ("MSP_Podcast", MSP_PODCAST),
                                            ("IEMOCAP", IEMOCAP), ("Crema-D", CREMA_D), ("emodb", EMODB),
                                            ("msp improv", MSP_IMPROV)])
def test_preset_by_name(name, expected):
    assert preset(name) is expected


def test_unknown_preset_names_the_presets():
    with pytest.raises(ValueError, match=r"no preset vocabulary 'ravdess'; presets: msp-podcast, iemocap"):
        preset("ravdess")


def test_vocabulary_is_a_frozen_hashable_value():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MSP_PODCAST.classes = ("A", "S")
    with pytest.raises(TypeError):
        MSP_PODCAST.class_names["A"] = "Angry"                 # read-only mapping
    same = Vocabulary.from_dict(MSP_PODCAST.to_dict())
    assert same == MSP_PODCAST and hash(same) == hash(MSP_PODCAST)
    assert dataclasses.replace(MSP_PODCAST, description="mine") == MSP_PODCAST   # description not compared
    assert dataclasses.replace(MSP_PODCAST, classes=("A", "S"), class_names={}) != MSP_PODCAST
    assert {MSP_PODCAST: 1}[same] == 1


# --------------------------------------------------------------------------- validation

GOOD = dict(name="mine", classes=("calm", "tense", "angry"))


@pytest.mark.parametrize("change, key", [
    (dict(classes=("calm", "tense", "calm")), "classes"),
    (dict(classes=("calm",)), "classes"),
    (dict(classes=()), "classes"),
    (dict(classes=tuple(f"c{i}" for i in range(21))), "classes"),
    (dict(classes="calm"), "classes"),
    (dict(classes=("calm", 1)), "classes"),
    (dict(classes=("calm", " tense")), "classes"),
    (dict(classes=("calm", "")), "classes"),
    (dict(excluded=("other", "calm")), "excluded"),
    (dict(excluded=("other", "other")), "excluded"),
    (dict(merged={"excited": "happy"}), "merged['excited']"),
    (dict(merged={"calm": "tense"}), "merged"),
    (dict(class_names={"happy": "Happiness"}), "class_names"),
    (dict(attributes=(Attribute("a", 1, 5), Attribute("a", 0, 1))), "attributes"),
    (dict(attributes=tuple(Attribute(f"a{i}", 0, 1) for i in range(4))), "attributes"),
    (dict(attributes=(Attribute("speaker", 0, 1),)), "attributes"),
    (dict(splits=("train", "train")), "splits"),
    (dict(gender_column="speaker"), "gender_column"),
    (dict(file_column=None), "file_column"),
    (dict(name=""), "name"),
])
def test_bad_vocabulary_is_one_sentence_naming_the_field(change, key):
    with pytest.raises(ValueError) as info:
        Vocabulary(**{**GOOD, **change})
    assert isinstance(info.value, VocabularyError) and info.value.key == key
    assert str(info.value).startswith(f"{key}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("low, high, key", [(5, 1, "high"), (1, 1, "high"), (float("nan"), 1, "low"),
                                            (0, float("inf"), "high"), ("1", 5, "low"), (True, 5, "low")])
def test_bad_scale(low, high, key):
    with pytest.raises(VocabularyError) as info:
        Attribute("arousal", low, high)
    assert info.value.key == key


def test_good_vocabulary_without_optional_parts():
    v = Vocabulary(**GOOD, attributes=(Attribute("valence", -1, 1),), speaker_column=None,
                   gender_column=None, split_column=None)
    assert v.class_names["calm"] == "calm" and v.attribute("valence").low == -1.0
    assert v.label_codes == ("calm", "tense", "angry")
    with pytest.raises(ValueError, match="not a label code"):
        v.resolve("joy")
    with pytest.raises(ValueError, match="not an attribute"):
        v.attribute("arousal")


# --------------------------------------------------------------------------- files

def _write(tmp_path, text, name="corpus.json"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _file_error(path) -> InputError:
    with pytest.raises(InputError) as info:
        Vocabulary.from_file(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return info.value


@pytest.mark.parametrize("vocabulary", list(PRESETS.values()), ids=list(PRESETS))
def test_json_round_trip(tmp_path, vocabulary):
    path = _write(tmp_path, json.dumps(vocabulary.to_dict(), indent=2))
    read = Vocabulary.from_file(path)
    assert read == vocabulary and read.description == vocabulary.description
    assert read.classes == vocabulary.classes                  # macro-F1 order kept
    assert read.to_dict() == vocabulary.to_dict()


@pytest.mark.parametrize("vocabulary", [MSP_PODCAST, IEMOCAP, CREMA_D], ids=["msp-podcast", "iemocap", "crema-d"])
def test_yaml_round_trip(tmp_path, vocabulary):
    path = _write(tmp_path, yaml.safe_dump(vocabulary.to_dict(), sort_keys=False), "corpus.yaml")
    assert Vocabulary.from_file(path) == vocabulary


def test_short_file_with_defaults(tmp_path):
    path = _write(tmp_path, '{"classes": ["angry", "happy", "neutral", "sad"],'
                            ' "attributes": [{"name": "arousal", "low": 0, "high": 1}]}', "my_corpus.json")
    v = Vocabulary.from_file(path)
    assert v.name == "my_corpus" and v.classes == ("angry", "happy", "neutral", "sad")
    assert v.attribute("arousal").high == 1.0 and v.speaker_column == "speaker" and v.file_column == "file"


def test_short_yaml_file(tmp_path):
    path = _write(tmp_path, "name: lab\nclasses:\n  angry: Anger\n  calm: Calm\nexcluded: [other]\n"
                            "attributes:\n  - {name: valence, low: -1, high: 1}\ngender_column: null\n", "lab.yml")
    v = Vocabulary.from_file(path)
    assert (v.name, v.classes, v.class_names["angry"], v.excluded) == ("lab", ("angry", "calm"), "Anger", ("other",))
    assert v.gender_column is None and v.attribute("valence").low == -1.0


@pytest.mark.parametrize("text, key, words", [
    ('{"classes": ["A", "S", "A"]}', "classes", "'A' appears twice"),
    ('{"classes": {"A": "Anger", "S": "Sadness", "A": "Angry"}}', "classes['A']", "appears twice"),
    ('{"classes": ["A", "S"], "classes": ["A", "H"]}', "classes", "appears twice"),
    ('{"classes": ["A", "S"], "atributes": []}', "atributes", "did you mean 'attributes'"),
    ('{"classes": ["A", "S"], "attributes": [{"name": "v", "low": 1, "high": 5, "scale": 3}]}',
     "attributes[0].scale", "unknown key"),
    ('{"name": "x"}', "classes", "missing"),
    ('{"classes": ["A", "S"], "attributes": [{"name": "v", "low": 5, "high": 1}]}', "attributes[0].high",
     "not above low"),
    ('{"classes": ["A", "S"], "attributes": [{"name": "v", "low": 1, "high": 5}, {"name": "w", "high": 5}]}',
     "attributes[1].low", "missing"),
    ('{"classes": ["A", "S"], "attributes": [{"name": "v", "low": "one", "high": 5}]}', "attributes[0].low",
     "not a finite number"),
    ('{"classes": ["A", "S"], "excluded": ["S"]}', "excluded", "also a scored class"),
    ('{"classes": ["A", 2]}', "classes", "quote it"),
    ('{"classes": ["A"]}', "classes", "1 classes"),
    ('{"classes": {"A": "Anger", "S": ""}}', "classes['S']", "empty"),
    ('{"classes": ["A", "S"], "speaker_column": "file"}', "speaker_column", "also the file_column"),
])
def test_bad_json_file_names_file_and_key(tmp_path, text, key, words):
    path = _write(tmp_path, text)
    error = _file_error(path)
    assert isinstance(error, VocabularyFileError) and error.column == key and words in error.message
    assert str(error).startswith(f"{path}: key {key!r}: ")


@pytest.mark.parametrize("text, key, words", [
    ("classes:\n  A: Anger\n  S: Sadness\n  A: Angry\n", "classes['A']", "appears twice"),
    ("classes: [A, S]\nsplit: [train]\n", "split", "did you mean 'splits'"),
    ("classes: [A, S]\nattributes:\n  - {name: v, low: 3, high: 3}\n", "attributes[0].high", "not above low"),
    ("classes: [yes, no]\n", "classes", "quote it"),              # YAML 1.1 reads them as booleans
])
def test_bad_yaml_file_names_file_and_key(tmp_path, text, key, words):
    error = _file_error(_write(tmp_path, text, "corpus.yaml"))
    assert error.column == key and words in error.message


@pytest.mark.parametrize("text, name, row, words", [
    ('{"classes": ["A", "S"],\n "splits": [}', "corpus.json", 2, "not valid JSON"),
    ("  \n", "corpus.json", None, "empty"),
    ('["A", "S"]', "corpus.json", None, "mapping"),
    ('{"classes": ["A", "S"]}', "corpus.txt", None, ".json, .yaml or .yml"),
])
def test_unreadable_file(tmp_path, text, name, row, words):
    error = _file_error(_write(tmp_path, text, name))
    assert error.row == row and words in error.message


def test_invalid_yaml_names_the_line(tmp_path):
    error = _file_error(_write(tmp_path, "classes: [A, S]\nsplits: [a, b\n", "corpus.yaml"))
    assert error.row is not None and "not valid YAML" in error.message


def test_missing_file(tmp_path):
    assert "cannot read" in _file_error(tmp_path / "absent.json").message


def test_a_planted_wrong_file_is_rejected(tmp_path):
    """The checks can fail: the MSP-Podcast preset's own file loads, the same file with one
    planted mistake (a scored code listed again as excluded) does not."""
    data = MSP_PODCAST.to_dict()
    assert Vocabulary.from_file(_write(tmp_path, json.dumps(data), "good.json")) == MSP_PODCAST
    data["excluded"] = ["O", "X", "N"]
    error = _file_error(_write(tmp_path, json.dumps(data), "planted.json"))
    assert error.column == "excluded" and "'N' is also a scored class" in error.message
    assert str(error) == f"{tmp_path / 'planted.json'}: key 'excluded': 'N' is also a scored class"


# --------------------------------------------------------------------------- the Evaluation carries it

def test_evaluation_carries_its_vocabulary():
    frame = pd.DataFrame({"system": ["a", "a"], "FileName": ["x", "y"],
                          "EmoClass_true": ["A", "S"], "EmoClass_pred": ["A", "A"]})
    assert Evaluation.from_frames(frame).vocabulary is MSP_PODCAST
    assert Evaluation.from_frames(frame, vocabulary=IEMOCAP).vocabulary is IEMOCAP
    with pytest.raises(TypeError, match="must be a Vocabulary"):
        Evaluation.from_frames(frame, vocabulary="iemocap")


def test_readme_example_is_a_valid_vocabulary_file(tmp_path):
    """The README's example vocabulary file loads as written."""
    import re
    from pathlib import Path
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Corpus vocabulary.*?```json\n(.*?)```", readme, re.S).group(1)
    v = Vocabulary.from_file(_write(tmp_path, block))
    assert v.name == "my-corpus" and v.classes == ("angry", "happy", "neutral", "sad") and v.gender_column is None
