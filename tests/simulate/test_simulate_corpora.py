"""simulate_corpus: a seeded synthetic corpus in a preset vocabulary, written as an audformat
database and as CSVs with a vocabulary file, marked synthetic, small and fast."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from ser_diag.io import is_synthetic
from ser_diag.simulate import CORPORA, simulate_corpus
from ser_diag.vocabulary import Vocabulary, preset


def _bytes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("corpus", CORPORA)
def test_layout_vocabulary_and_marker(tmp_path, corpus):
    out = simulate_corpus(tmp_path / corpus, corpus=corpus, n_speakers=4, files_per_speaker=6, n_systems=2)
    voc = preset(corpus)
    assert (out / "SYNTHETIC_DEMO.txt").is_file() and is_synthetic(out / "csv" / "labels.csv")
    assert (out / "audformat" / "db.yaml").is_file()
    assert Vocabulary.from_file(out / "csv" / "vocabulary.json") == voc
    labels = pd.read_csv(out / "csv" / "labels.csv", dtype=str)
    assert list(labels.columns[:2]) == [voc.file_column, voc.class_column]
    assert set(voc.attribute_names) <= set(labels.columns) and len(labels) == 24
    assert labels[voc.speaker_column].nunique() == 4
    assert set(labels[voc.gender_column]) == {"Female", "Male"}
    for side, names in (("csv/predictions", (voc.file_column, voc.class_column)),
                        ("audformat_predictions", ("file", "emotion"))):
        systems = sorted(p.name for p in (out / side).iterdir())
        assert systems == ["baseline", "sys2"]
        categorical = pd.read_csv(out / side / "baseline" / "categorical.csv")
        assert list(categorical.columns) == [*names, *voc.prob_columns]
        assert (out / side / "baseline" / "attributes.csv").is_file() == bool(voc.attributes)
    truth = json.loads((out / "simulation_truth.json").read_text())
    assert truth["synthetic"] is True and truth["corpus"] == corpus and truth["n_speakers"] == 4


def test_iemocap_defaults_fast_planted_and_seeded(tmp_path):
    start = time.perf_counter()
    out = simulate_corpus(tmp_path / "a", corpus="iemocap")
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0, elapsed     # < 1 s unloaded; slack for a shared machine
    labels = pd.read_csv(out / "csv" / "labels.csv", dtype=str)
    voc = preset("iemocap")
    assert labels["speaker"].nunique() == 10
    assert set(labels["session"]) == set(voc.splits)
    assert {"excited", "frustrated"} <= set(labels["emotion"])        # merged and excluded codes
    values = labels[list(voc.attribute_names)].astype(float)
    assert values.min().min() >= 1 and values.max().max() <= 5
    baseline = pd.read_csv(out / "csv" / "predictions" / "baseline" / "attributes.csv")
    outside = ((baseline[list(voc.attribute_names)] < 1) | (baseline[list(voc.attribute_names)] > 5)).to_numpy()
    assert outside.any()                                            # model output outside the scale
    best = pd.read_csv(out / "csv" / "predictions" / "sys3" / "attributes.csv")
    assert best[list(voc.attribute_names)].to_numpy().min() >= 1
    truth = json.loads((out / "simulation_truth.json").read_text())
    assert len(truth["speaker_difficulty"]) == 10 and truth["speaker_effect"] > 0
    again = simulate_corpus(tmp_path / "b", corpus="iemocap")
    other = simulate_corpus(tmp_path / "c", corpus="iemocap", seed=1)
    assert _bytes(out) == _bytes(again) and _bytes(out) != _bytes(other)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="corpus must be one of"):
        simulate_corpus(tmp_path / "x", corpus="ravdess")
    with pytest.raises(ValueError, match="at least 2 speakers"):
        simulate_corpus(tmp_path / "x", corpus="emodb", n_speakers=1)
    assert not (tmp_path / "x").exists()
