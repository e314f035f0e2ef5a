"""Issue 22: the explorer's state and engine on any corpus' vocabulary: views, classes and
attributes by the corpus' names, an :class:`~ser_diag.evaluation.Evaluation` of another corpus
as the data, a corpus without named splits. The diagnostics of the selection are
:func:`vocabulary_frames.translated_diagnostics` (stored in the engine's cache: the analyses
read the vocabulary on another branch); no widgets are driven."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from vocabulary_frames import corpus_frames, translated_diagnostics

from ser_diag.evaluation import Evaluation
from ser_diag.explorer import CELL_VIEWS, VIEWS, ExplorerState
from ser_diag.explorer.engine import ALL_FILES, Engine
from ser_diag.explorer.facade import Explorer
from ser_diag.explorer.state import class_code, cell_views_of, is_cell_view, view_name, views_of
from ser_diag.resampling import Resampling
from ser_diag.vocabulary import CREMA_D, IEMOCAP, MSP_PODCAST


@pytest.fixture(scope="module")
def explorer():
    diag = translated_diagnostics(IEMOCAP)
    ex = Explorer(diag.data, None, system="gamma", prefetch=False)
    ex.engine.store(("diag",) + ex.state.data_key + (ex.state.bins,), diag)
    yield ex
    plt.close("all")


def test_views_and_classes_of_a_vocabulary():
    assert views_of(MSP_PODCAST) == VIEWS and cell_views_of(MSP_PODCAST) == CELL_VIEWS
    assert views_of(IEMOCAP)[:5] == ("confusion", "binned_activation", "binned_valence", "binned_dominance",
                                     "regression_to_mean")
    assert not any(v.startswith("binned_") or v == "regression_to_mean" for v in views_of(CREMA_D))
    assert cell_views_of(CREMA_D) == ("confusion",)
    assert all(is_cell_view(v) == (v in CELL_VIEWS) for v in VIEWS)
    assert view_name("binned_activation", IEMOCAP) == "binned arousal"
    assert [class_code(v, IEMOCAP) for v in ("Happiness", "happy", "ANGER")] == ["happy", "happy", "angry"]
    with pytest.raises(ValueError, match="unknown class 'F'"):
        class_code("F", IEMOCAP)


def test_state_checks_views_against_the_corpus():
    state = ExplorerState(system="a", split="Session1")
    changed = state.changed(dict(view="binned_valence", cell_true=1), systems=["a"], splits=["Session1"],
                            group_columns=[], views=views_of(IEMOCAP))
    assert changed.view_attribute == "valence" and changed.cell_true == 1
    with pytest.raises(ValueError, match="view must be one of"):
        state.changed(dict(view="binned_EmoAct"), systems=["a"], splits=["Session1"], group_columns=[],
                      views=views_of(IEMOCAP))
    with pytest.raises(ValueError, match="view must be one of"):
        state.changed(dict(view="binned_valence"), systems=["a"], splits=["Session1"], group_columns=[],
                      views=views_of(CREMA_D))
    nxt = state.likely_next(["a", "b"], [], views=views_of(CREMA_D), cell_views=cell_views_of(CREMA_D))
    assert {s.view for s, _ in nxt} <= set(views_of(CREMA_D))


def test_explorer_on_an_evaluation_of_another_corpus(explorer):
    ex = explorer
    assert ex.vocabulary == IEMOCAP and ex.views == views_of(IEMOCAP)
    assert ex.splits == ["Test"] and ex.systems == ["alpha", "beta", "gamma"]
    assert "activation" not in ex.engine.group_columns() and "Gender" in ex.engine.group_columns()
    ex.set(view="confusion")
    assert ex.cell_options() == [("Neutral", "neutral"), ("Happiness", "happy"), ("Sadness", "sad"),
                                 ("Anger", "angry")]
    assert ex.heatmap()["rows"] == ["Neutral", "Happiness", "Sadness", "Anger"]
    ex.set(cell_true="Happiness", cell_pred="sad")
    listing = ex.listing()
    assert "true class Happiness and predicted class Sadness" in listing.title
    assert set(listing.table["EmoClass_true"]) <= {"happy"} and set(listing.table["EmoClass_pred"]) <= {"sad"}
    headline = ex.headline_table()
    assert {"CCC arousal", "CCC valence", "CCC dominance", "mean CCC"} <= set(headline.columns)
    for view in ("binned_activation", "regression_to_mean", "gender_audit"):
        ex.set(view=view, cell_true=None, cell_pred=None)
        assert ex.figure() is not None
    ex.set(view="binned_activation")
    assert ex.figure().axes[0].get_xlabel() == "Predicted arousal bin"


def test_engine_of_a_corpus_without_splits():
    categorical, _, labels = corpus_frames(CREMA_D, n_speakers=4, per_speaker=6, split=None)
    data = Evaluation.from_frames(categorical, None, labels)
    assert data.vocabulary == CREMA_D
    engine = Engine(data, None, resampling=Resampling(n_boot=0), prefetch=False)
    assert engine.splits == [ALL_FILES]
    key = (ALL_FILES, None, None)
    merged = engine.merged("categorical", key)
    assert len(merged) == len(categorical) and merged.attrs["vocabulary"] == CREMA_D
    assert len(engine.group_labels(key)) == len(labels)
    assert list(engine.group_files((ALL_FILES, "Gender", "Female"))) == list(
        labels.loc[labels["Gender"] == "Female", "FileName"])
    assert engine.tasks(key) == ["categorical"]
