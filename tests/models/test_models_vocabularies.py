"""Training, fusion heads, ensembles and leave-one-session-out folds on a corpus' own vocabulary
(issue 22): a 4-class IEMOCAP-like corpus (10 speakers, 5 sessions, attributes 1-5), a 6-class
CREMA-D-like corpus without attributes, a vocabulary file on a 0-1 scale; MSP-Podcast stays
the default."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ser_diag import io, metrics
from ser_diag.errors import InputError
from ser_diag.models.comparison import fusion_vs_single_modality, seed_run_name
from ser_diag.models.ensemble import ensemble
from ser_diag.models.folds import HELD_OUT, session_folds, speaker_folds, train_folds
from ser_diag.models.heads import build_model
from ser_diag.models.prediction_files import prediction_frame, read_predictions, write_predictions
from ser_diag.models.toy_task import make_corpus_task
from ser_diag.models.train import TrainConfig, train
from ser_diag.resampling import Resampling
from ser_diag.vocabulary import CREMA_D, IEMOCAP, MSP_PODCAST, Attribute, Vocabulary

HEAD = {"kind": "late_fusion", "hidden": 32, "dropout": 0.2}


def config(out_dir, vocabulary, **overrides):
    return dict(dict(system_name="fusion", out_dir=str(out_dir), modalities={"audio": {}, "text": {}}, model=HEAD,
                     epochs=4, batch_size=16, lr=3e-3, patience=100, progress=False, sampler="balanced",
                     vocabulary=vocabulary), **overrides)


def lin_ccc(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    return 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def check_scores(labels, predictions, vocabulary):
    """The pooled predictions merge with the corpus' vocabulary and score: macro-F1 as
    scikit-learn's over the vocabulary's classes, CCC as Lin's (ddof 0)."""
    merged = io.merge(labels, predictions, "categorical", vocabulary=vocabulary)
    scored = labels[labels["EmoClass"].isin(vocabulary.classes)]
    assert sorted(merged["FileName"]) == sorted(scored["FileName"])
    true, pred = merged["EmoClass_true"].astype(str), merged["EmoClass_pred"].astype(str)
    expected = f1_score(true, pred, average="macro", labels=list(vocabulary.classes), zero_division=0)
    assert metrics.macro_f1(true, pred, labels=vocabulary.classes) == pytest.approx(expected, abs=1e-9)
    assert list(merged.filter(like="P_").columns) == list(vocabulary.prob_columns)
    if vocabulary.attributes:
        merged = io.merge(labels, predictions, "attributes", vocabulary=vocabulary)
        assert len(merged) == len(labels)              # unscored classes keep their attributes
        for a in vocabulary.attributes:
            value = merged[f"{a.name}_pred"]
            assert value.between(a.low, a.high).all()
            assert metrics.ccc(merged[f"{a.name}_true"], value) == pytest.approx(
                lin_ccc(merged[f"{a.name}_true"], value), abs=1e-9)


# --------------------------------------------------------------------------- IEMOCAP-like, LOSO

@pytest.fixture(scope="module")
def iemocap_loso(tmp_path_factory):
    labels, feats = make_corpus_task(IEMOCAP, n_speakers=10, n_sessions=5, files_per_speaker=16)
    result = train_folds(config(tmp_path_factory.mktemp("iemocap"), "iemocap"), labels, features=feats)
    return labels, feats, result


def test_loso_predicts_every_file_once_by_the_model_that_did_not_see_its_session(iemocap_loso):
    labels, _, result = iemocap_loso
    assert labels["SpkrID"].nunique() == 10 and list(labels["Split_Set"].unique()) == list(IEMOCAP.splits)
    assert [f.held_out for f in result.folds] == list(IEMOCAP.splits) and len(result.results) == 5
    pooled = result.predictions
    assert pooled["FileName"].is_unique and sorted(pooled["FileName"]) == sorted(labels["FileName"])
    session = labels.set_index("FileName")["Split_Set"]
    assert (result.held_out == session.reindex(result.held_out.index)).all()
    for fold in result.folds:
        own = set(labels.loc[labels["Split_Set"] == fold.held_out, "FileName"])
        assert fold.files(HELD_OUT) == own
        assert not own & (fold.files("Train") | fold.files("Development"))
        assert fold.files("Development") == set(labels.loc[labels["Split_Set"] == fold.development, "FileName"])
    # a fold's model saw only its Train rows: its Train normalisation and head sizes
    model = result.results[0].model
    assert model.outputs.classes.out_features == 4 and model.outputs.attributes.out_features == 3
    assert set(result.results[0].dev_metrics) >= {"macro_f1", "ccc_activation", "ccc_valence", "ccc_dominance"}


def test_loso_predictions_are_written_with_the_corpus_codes_and_read_back(iemocap_loso):
    labels, _, result = iemocap_loso
    folder = result.predictions_dir
    assert folder.name == "fusion" and folder.parent.name == "predictions_loso"
    # the corpus' own names on disk (io.corpora reads them so), the internal ones in memory
    assert (folder / "categorical.csv").read_text().splitlines()[0] == "file,emotion,P_neutral,P_happy,P_sad,P_angry"
    assert (folder / "attributes.csv").read_text().splitlines()[0] == "file,activation,valence,dominance"
    back = read_predictions(folder, IEMOCAP)
    assert list(back.columns) == ["system", "FileName", "EmoClass", *IEMOCAP.prob_columns,
                                  *IEMOCAP.attribute_names]
    assert set(back["EmoClass"]) <= set(IEMOCAP.classes)
    pd.testing.assert_frame_equal(back[["FileName", "EmoClass"]], result.predictions[["FileName", "EmoClass"]])
    numbers = list(IEMOCAP.prob_columns + IEMOCAP.attribute_names)
    np.testing.assert_allclose(back[numbers].to_numpy(float), result.predictions[numbers].to_numpy(float),
                               rtol=1e-5)
    check_scores(labels, back, IEMOCAP)


def test_session_folds_without_development_and_bad_sessions(iemocap_loso):
    labels = iemocap_loso[0]
    folds = session_folds(labels, development=None)
    assert [f.development for f in folds] == [None] * 5
    assert all(len(f.files("Train")) + len(f.files(HELD_OUT)) == len(labels) for f in folds)
    with pytest.raises(ValueError, match="Session9"):
        session_folds(labels, sessions=["Session1", "Session9"])
    with pytest.raises(ValueError, match="no leave-one-session-out"):
        session_folds(labels, sessions=["Session1", "Session2"])
    with pytest.raises(ValueError, match="column 'session'"):
        session_folds(labels, column="session")


def test_fusion_comparison_on_the_corpus_vocabulary(iemocap_loso):
    labels, _, result = iemocap_loso
    frames = []
    for k in (0, 1):
        fused = result.predictions.assign(system=seed_run_name("late_fusion", k))
        frames += [fused, fused.assign(system=seed_run_name("audio_egemaps", k)),
                   fused.assign(system=seed_run_name("text_minilm", k))]
    table = fusion_vs_single_modality(labels, pd.concat(frames, ignore_index=True), seeds=[0, 1],
                                      resampling=Resampling(n_boot=20, seed=0), vocabulary=IEMOCAP)
    assert list(table["metric"].unique()) == ["macro_f1", "ccc_activation", "ccc_valence", "ccc_dominance"]
    assert (table["estimate"] == 0).all() and (table["verdict"] == "tie").all() and (table["n_speakers"] == 10).all()


# --------------------------------------------------------------------------- CREMA-D-like, no attributes

def test_six_classes_without_attributes_train_and_fuse(tmp_path):
    labels, feats = make_corpus_task(CREMA_D, n_speakers=10, files_per_speaker=16)
    assert CREMA_D.excluded == () and set(labels["Split_Set"]) == {"Train", "Development", "Test"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config(tmp_path, "crema-d", predict_splits=("Development", "Test")), features=feats,
                       labels=labels)
    said = [str(w.message) for w in caught if "attributes" in str(w.message)]
    assert said == ["vocabulary crema-d has no attributes: training the categorical task only"]
    assert result.model.outputs.classes.out_features == 6 and result.model.outputs.attributes is None
    assert set(result.dev_metrics) == {"macro_f1", "accuracy", "uar"}
    config_json = json.loads((result.run_dir / "config.json").read_text())
    assert config_json["tasks"] == ["categorical"] and config_json["vocabulary"] == "crema-d"
    for split, folder in result.prediction_dirs.items():
        assert sorted(p.name for p in folder.iterdir()) == ["categorical.csv"]
        back = read_predictions(folder, CREMA_D)
        assert list(back.columns) == ["system", "FileName", "EmoClass", *CREMA_D.prob_columns]
        part = labels[labels["Split_Set"] == split]
        assert sorted(back["FileName"]) == sorted(part["FileName"])
        check_scores(part, back, CREMA_D)


def test_ensemble_with_speaker_folds_on_a_corpus_without_sessions(tmp_path):
    labels, feats = make_corpus_task(CREMA_D, n_speakers=10, files_per_speaker=12, seed=1)
    labels = speaker_folds(labels, k=5)
    assert (labels.groupby("SpkrID")["Split_Set"].nunique() == 1).all() and labels["Split_Set"].nunique() == 5
    team = tmp_path / "team_x"
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(6), len(labels))
    write_predictions(prediction_frame(labels["FileName"], probs, None, CREMA_D), team, CREMA_D)
    cfg = {"out_dir": str(tmp_path / "ens"), "vocabulary": "crema-d", "folds": {"development": "next"},
           "defaults": {k: v for k, v in config(tmp_path, None, epochs=2).items() if k not in ("out_dir", "vocabulary")},
           "systems": [{"system_name": "fusion"}, {"system_name": "team_x", "predictions": str(team)}]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summaries = ensemble(cfg, features=feats, labels=labels)
    assert [s["system_name"] for s in summaries] == ["fusion", "team_x"]
    assert [f["held_out"] for f in summaries[0]["folds"]] == [f"Fold{i}" for i in range(1, 6)]
    systems = pd.concat([read_predictions(s["predictions_dir"], CREMA_D, system=s["system_name"])
                         for s in summaries], ignore_index=True)
    merged = io.merge(labels, systems, "categorical", vocabulary=CREMA_D)
    assert merged.groupby("system").size().tolist() == [len(labels), len(labels)]
    check_scores(labels, systems[systems["system"] == "fusion"], CREMA_D)


# --------------------------------------------------------------------------- a vocabulary file, other scales

def test_vocabulary_file_with_a_zero_one_scale(tmp_path):
    vocabulary = Vocabulary("lab", classes=("calm", "tense", "sad"), excluded=("mixed",),
                            attributes=(Attribute("arousal", 0, 1), Attribute("valence", -1, 1)))
    path = tmp_path / "lab.json"
    path.write_text(json.dumps(vocabulary.to_dict()))
    labels, feats = make_corpus_task(vocabulary, n_speakers=6, n_sessions=3, files_per_speaker=20)
    assert labels["valence"].between(-1, 1).all() and "mixed" in set(labels["EmoClass"])
    result = train_folds(config(tmp_path / "run", str(path), attribute_loss="mean_penalty_mse",
                                class_weighting="sqrt_inverse"), labels, features=feats)
    back = read_predictions(result.predictions_dir, vocabulary)
    assert back["arousal"].between(0, 1).all() and back["valence"].between(-1, 1).all()
    assert back["valence"].min() < 0                 # mapped back to -1..1, not clipped at the low end
    check_scores(labels, back, vocabulary)
    saved = json.loads((result.results[0].run_dir / "config.json").read_text())
    assert saved["vocabulary"] == vocabulary.to_dict()     # the run records the vocabulary it used


def test_prediction_files_refuse_what_the_vocabulary_does_not_have(tmp_path):
    good = prediction_frame(["a.wav", "b.wav"], np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]]),
                            np.array([[1.5, 2, 3], [4, 5, 5]]), IEMOCAP)
    write_predictions(good, tmp_path / "ok", IEMOCAP)
    assert read_predictions(tmp_path / "ok", IEMOCAP)["EmoClass"].tolist() == ["neutral", "angry"]
    write_predictions(good, tmp_path / "internal", IEMOCAP, columns="internal")
    assert (tmp_path / "internal" / "categorical.csv").read_text().startswith("FileName,EmoClass,P_neutral")
    pd.testing.assert_frame_equal(read_predictions(tmp_path / "internal", IEMOCAP, system="ok"),
                                  read_predictions(tmp_path / "ok", IEMOCAP), check_like=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "categorical.csv").write_text("file,emotion\na.wav,neutral\nb.wav,excited\n")
    with pytest.raises(InputError, match=r"row 3, column 'emotion': class 'excited' is not one of the classes"):
        read_predictions(tmp_path / "bad", IEMOCAP)
    (tmp_path / "bad" / "categorical.csv").write_text("FileName,EmoClass\na.wav,neutral\nb.wav,excited\n")
    with pytest.raises(InputError, match=r"row 3, column 'EmoClass': class 'excited' is not one of the classes"):
        read_predictions(tmp_path / "bad", IEMOCAP)
    (tmp_path / "bad" / "categorical.csv").write_text("file,activation,valence\na.wav,1,2\n")
    with pytest.raises(InputError, match="column 'dominance': missing attribute column"):
        read_predictions(tmp_path / "bad", IEMOCAP)
    (tmp_path / "bad" / "categorical.csv").write_text("file,emotion,P_A\na.wav,neutral,1\n")
    with pytest.raises(InputError, match="column 'P_A': unknown column; a categorical file of vocabulary iemocap "
                                         "has file, emotion, P_neutral"):
        read_predictions(tmp_path / "bad", IEMOCAP)


# --------------------------------------------------------------------------- MSP-Podcast stays the default

def test_msp_podcast_is_the_default():
    config = TrainConfig()
    assert config.vocabulary is None and config.corpus_vocabulary is MSP_PODCAST
    assert config.to_dict()["vocabulary"] is None
    assert TrainConfig.from_dict({"vocabulary": "IEMOCAP"}).corpus_vocabulary is IEMOCAP
    assert TrainConfig(vocabulary=IEMOCAP).to_dict()["vocabulary"] == IEMOCAP.to_dict()
    with pytest.raises(ValueError, match="no preset vocabulary 'ravdess'"):
        TrainConfig.from_dict({"vocabulary": "ravdess"})
    head = build_model("late_fusion", {"audio": 5})
    assert head.outputs.classes.out_features == 8 and head.outputs.attributes.out_features == 3


def test_folds_from_a_json_config_with_the_labels_in_the_corpus(tmp_path, monkeypatch):
    """A JSON config (TrainConfig keys + "folds") whose labels come from config.corpus."""
    from ser_diag.models import folds as folds_module
    from ser_diag.models.train import data as train_data

    labels, feats = make_corpus_task(IEMOCAP, n_speakers=6, n_sessions=3, files_per_speaker=10)
    read = []
    monkeypatch.setattr(train_data, "_read_labels", lambda path, vocabulary: read.append((path, vocabulary)) or labels)
    real = folds_module.train_folds
    monkeypatch.setattr(folds_module, "train_folds", lambda config, **kw: real(config, features=feats, **kw))
    path = tmp_path / "loso.json"
    path.write_text(json.dumps(config(tmp_path / "out", "iemocap", epochs=2, corpus="somewhere/labels.csv",
                                      folds={"development": None})))
    result = folds_module.train_folds_from_config(path)
    assert read == [("somewhere/labels.csv", IEMOCAP)]
    assert [f.development for f in result.folds] == [None] * 3 and len(result.predictions) == len(labels)
    saved = json.loads((tmp_path / "out" / "folds.json").read_text())
    assert [f["held_out"] for f in saved["folds"]] == ["Session1", "Session2", "Session3"]
    assert all(f["best_score"] is None and f["n_development"] == 0 for f in saved["folds"])


# --------------------------------------------------------------------------- a corpus on disk, both routes

@pytest.mark.parametrize("route", ("audformat", "csv"))
def test_loso_on_a_simulated_corpus_read_through_each_route(tmp_path, route):
    """`simulate --corpus iemocap` on disk, its labels read through the audformat or the CSV +
    vocabulary-file route, features planted from the truth, leave-one-session-out training,
    and the pooled predictions written in the corpus' names then scored through the same route
    as any team's (macro-F1 as scikit-learn's, CCC as Lin's)."""
    from ser_diag.evaluation import Evaluation
    from ser_diag.io.audformat_db import read_database
    from ser_diag.io.corpora import read_corpus_labels
    from ser_diag.models.train import ArrayFeatures
    from ser_diag.simulate import simulate_corpus
    from ser_diag.vocabulary import Vocabulary as Voc

    simulate_corpus(tmp_path / "iemocap", corpus="iemocap", seed=2)
    if route == "audformat":
        labels, vocabulary = read_database(tmp_path / "iemocap" / "audformat", split=None)
    else:
        vocabulary = Voc.from_file(tmp_path / "iemocap" / "csv" / "vocabulary.json")
        labels = read_corpus_labels(tmp_path / "iemocap" / "csv" / "labels.csv", vocabulary)
    assert labels["SpkrID"].nunique() == 10 and labels["Split_Set"].nunique() == 5
    rng = np.random.default_rng(0)
    n, k = len(labels), len(vocabulary.classes)
    cue = np.eye(k)[pd.Index(vocabulary.classes).get_indexer(labels["EmoClass"]).clip(0)]
    attrs = labels[list(vocabulary.attribute_names)].to_numpy(float)
    feats = {"audio": ArrayFeatures(labels["FileName"], np.hstack([attrs, rng.normal(size=(n, 4))])),
             "text": ArrayFeatures(labels["FileName"], np.hstack([cue, rng.normal(size=(n, 4))]))}
    result = train_folds(config(tmp_path / "run", vocabulary.to_dict()), labels, features=feats)
    pooled = result.predictions
    assert pooled["FileName"].is_unique and sorted(pooled["FileName"]) == sorted(labels["FileName"])
    check_scores(labels, pooled, vocabulary)
    # the written predictions read back through the route the labels came from
    labels_path = (tmp_path / "iemocap" / "audformat" if route == "audformat"
                   else tmp_path / "iemocap" / "csv" / "labels.csv")
    data = Evaluation.load(labels_path, result.predictions_dir.parent, split=None, vocabulary=vocabulary)
    merged = data.categorical.frame
    scored = merged[merged["system"] == result.system_name]
    assert scored["EmoClass_pred"].isin(vocabulary.classes).all() and len(scored) > 0
    assert data.vocabulary.classes == vocabulary.classes
