"""Issue 22, the output half: evaluate, summary.md, the figure set and the plots on any corpus'
vocabulary (MSP-Podcast, IEMOCAP: 4 classes and three attributes on 1-5 with 10 speakers,
CREMA-D: 6 classes without attributes), from small frames built in memory.

Most tables here come from :func:`vocabulary_frames.translated_diagnostics` (the MSP-Podcast
analyses on a corpus that uses only some of its codes, every table translated into the corpus'
names): they test what the output modules make of a corpus' tables on their own.
:func:`test_diagnose_on_a_corpus_own_frames` runs the analyses on a corpus' own frames.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pytest
from sklearn.metrics import f1_score

from reference_metrics import reference_ccc
from vocabulary_frames import corpus_frames, translated_diagnostics

from ser_diag.diagnostics import binned_figures, build_figures, diagnose, dropped_sections
from ser_diag.evaluate import evaluate_merged, format_text
from ser_diag.figures import summary_markdown, write_figures_from
from ser_diag.names import human_name
from ser_diag.resampling import Resampling
from ser_diag.schema import ATTRIBUTES, CLASS_CODES
from ser_diag.vocabulary import CREMA_D, IEMOCAP, MSP_PODCAST, Attribute, Vocabulary

NOTE_ATTRIBUTES = "has no dimensional attributes"
NOTE_GENDER = "no file has a known gender"
NOTE_SPEAKERS = "no file has a known speaker"


@pytest.fixture(scope="module")
def iemocap():
    return translated_diagnostics(IEMOCAP)


@pytest.fixture(scope="module")
def crema():
    return translated_diagnostics(CREMA_D, gender=False)


@pytest.fixture(scope="module")
def anonymous():
    """IEMOCAP without speakers and without gender."""
    return translated_diagnostics(IEMOCAP, speakers=False, gender=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- evaluate

def test_evaluate_keys_per_class_f1_and_ccc_by_the_corpus_names(iemocap):
    voc, result = IEMOCAP, iemocap.evaluation
    for system, obj in result["systems"].items():
        assert list(obj["per_class_f1"]) == list(voc.classes)
        assert list(obj["ccc"]) == list(voc.attribute_names)
        assert set(obj["ci"]) >= {f"f1_{c}" for c in voc.classes} | {f"ccc_{a}" for a in voc.attribute_names}
        assert "audmetric averages all 4 classes" in obj["uar_convention"]
        cat = iemocap.categorical[iemocap.categorical["system"] == system]
        expected = f1_score(cat["EmoClass_true"], cat["EmoClass_pred"], average=None, labels=list(voc.classes))
        assert np.allclose([obj["per_class_f1"][c] for c in voc.classes], expected, atol=1e-9)
        att = iemocap.attributes[iemocap.attributes["system"] == system]
        for a in voc.attribute_names:                  # CCC by the corpus' name: systems.<name>.ccc.<attribute>
            assert obj["ccc"][a] == pytest.approx(reference_ccc(att[f"{a}_true"], att[f"{a}_pred"]), abs=1e-9)
    json.dumps(result)                                 # JSON-ready


def test_evaluate_without_attributes_has_no_ccc(crema):
    for obj in crema.evaluation["systems"].values():
        assert list(obj["per_class_f1"]) == list(CREMA_D.classes)
        assert obj["ccc"] is None and obj["ccc_mean"] is None and obj["n_attributes"] is None


def test_msp_podcast_evaluate_keeps_its_keys():
    categorical, attributes, _ = corpus_frames(MSP_PODCAST, n_speakers=4, per_speaker=10)
    result = evaluate_merged(categorical, attributes, Resampling(n_boot=0))
    obj = result["systems"]["alpha"]
    assert list(obj["per_class_f1"]) == list(CLASS_CODES)
    assert list(obj["ccc"]) == list(ATTRIBUTES)
    assert obj["uar_convention"].endswith("audmetric averages all 8 classes")
    text = format_text(result)
    assert "CCC arousal" in text and "  A  " in text


def test_format_text_reads_the_corpus_names(iemocap, crema):
    text = format_text(iemocap.evaluation, IEMOCAP)
    assert "CCC arousal" in text and "CCC valence" in text         # activation's display name
    header = next(line for line in text.splitlines()[text.splitlines().index("Per-class F1"):]
                  if line.startswith("system"))
    assert header.split() == ["system", *IEMOCAP.classes]
    plain = format_text(crema.evaluation)                          # no vocabulary: the keys
    assert "anger" in plain and "CCC" not in plain.split("CCC:")[0]


# --------------------------------------------------------------------------- names

def test_human_name_reads_the_vocabulary():
    assert human_name("ccc_activation", IEMOCAP) == "CCC arousal"
    assert human_name("f1_angry", IEMOCAP) == "F1 Anger"
    assert human_name("recall_anger", CREMA_D) == "recall Anger"
    assert human_name("ccc_EmoAct") == human_name("ccc_EmoAct", MSP_PODCAST) == "CCC arousal"
    odd = Vocabulary("odd", classes=("a_b", "b"), attributes=(Attribute("x_y", 0, 1, "tension"),))
    assert human_name("f1_a_b", odd) == "F1 a_b" and human_name("ccc_x_y", odd) == "CCC tension"


# --------------------------------------------------------------------------- notes and summary.md

def test_dropped_sections_one_line_each(iemocap, crema, anonymous):
    assert dropped_sections(iemocap.data) == []
    assert [n for n in crema.settings["notes"] if NOTE_ATTRIBUTES in n] == [
        "crema-d has no dimensional attributes: the attribute sections (CCC, binned attributes, "
        "regression to the mean) are dropped"]
    assert sum(NOTE_GENDER in n for n in crema.settings["notes"]) == 1
    notes = anonymous.settings["notes"]
    assert sum(NOTE_GENDER in n for n in notes) == 1 and sum(NOTE_SPEAKERS in n for n in notes) == 1
    assert not any("per-speaker analyses skipped" in n for n in notes)   # one line, not one per task


def test_diagnose_states_dropped_sections_on_msp_frames():
    categorical, attributes, labels = corpus_frames(MSP_PODCAST, n_speakers=4, per_speaker=10, gender=False,
                                                    speakers=False)
    diag = diagnose(categorical, attributes, labels, resampling=Resampling(n_boot=10), workers=1)
    notes = diag.settings["notes"]
    assert sum(NOTE_GENDER in n for n in notes) == 1 and sum(NOTE_SPEAKERS in n for n in notes) == 1
    assert "gender_metrics" not in diag.tables and "speaker_metrics" not in diag.tables
    assert not any("corpus:" in line for line in summary_markdown(diag).splitlines())   # MSP: as before


def test_summary_states_the_corpus_and_its_names(iemocap):
    text = summary_markdown(iemocap)
    assert ("- corpus: iemocap (4 classes: Neutral, Happiness, Sadness, Anger; attributes: arousal 1-5, "
            "valence 1-5, dominance 1-5)") in text
    assert "| system | macro-F1 | CCC arousal | CCC valence | CCC dominance | mean CCC |" in text
    assert "| arousal | " in text and "| valence | " in text          # regression to the mean rows
    assert "## Gender gap" in text and "EmoAct" not in text and "Fear" not in text


def test_summary_drops_what_the_corpus_cannot_have(crema, anonymous):
    text = summary_markdown(crema)
    assert "- corpus: crema-d (6 classes: Anger, Disgust, Fear, Happiness, Neutral, Sadness; no attributes)" in text
    assert "CCC" not in text.split("## Scores")[1].split("##")[0]
    assert "Regression to the mean" not in text and "## Gender gap" not in text
    assert text.count(NOTE_ATTRIBUTES) == 1 and text.count(NOTE_GENDER) == 1
    text = summary_markdown(anonymous)
    assert text.count(NOTE_SPEAKERS) == 1 and "## Gender gap" not in text
    assert "resamples of utterances" in text


# --------------------------------------------------------------------------- figures and plots

def test_binned_figures_follow_the_attributes():
    assert binned_figures(MSP_PODCAST) == {"EmoAct": ("fig3b", "fig3b_binned_arousal"),
                                           "EmoVal": ("fig3c", "fig3c_binned_valence"),
                                           "EmoDom": ("fig3d", "fig3d_binned_dominance")}
    assert [stem for _, stem in binned_figures(IEMOCAP).values()] == [
        "fig3b_binned_arousal", "fig3c_binned_valence", "fig3d_binned_dominance"]
    assert binned_figures(CREMA_D) == {}


def test_figures_label_classes_and_attributes_by_the_corpus(iemocap):
    figures = build_figures(iemocap)
    assert {"fig3a_confusion_categorical", "fig3a_confusion_difference", "fig3b_binned_arousal",
            "fig3c_binned_valence", "fig3d_binned_dominance", "regression_to_mean_extremes",
            "gender_audit_categorical", "gender_audit_attributes"} <= set(figures)
    names = [IEMOCAP.class_names[c] for c in IEMOCAP.classes]
    for stem in ("fig3a_confusion_categorical", "fig3a_confusion_difference"):
        ax = figures[stem].axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names
    ax = figures["fig3b_binned_arousal"].axes[0]
    assert ax.get_xlabel() == "Predicted arousal bin" and "True arousal bin" in ax.get_ylabel()
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks[0].startswith("[1,") and ticks[-1].endswith("5]")       # the corpus' scale, 1-5
    ax = figures["regression_to_mean_extremes"].axes[0]
    low, high = ax.get_xlim()
    assert 1 - 0.2 < low < 1.5 and 4.5 < high < 5 + 0.2                  # within the 1-5 scale's margin
    ax = figures["gender_audit_attributes"].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CCC arousal", "CCC valence", "CCC dominance",
                                                            "mean CCC"]
    fusion = figures["fig4_topk_fusion"]
    assert "CCC arousal" in [ax.get_title() for ax in fusion.axes]


def test_figures_without_attributes_or_gender(crema, anonymous):
    figures = build_figures(crema)
    assert not any(stem.startswith(("fig3b", "fig3c", "fig3d", "regression_to_mean", "gender_audit"))
                   for stem in figures)
    assert [t.get_text() for t in figures["fig3a_confusion_categorical"].axes[0].get_xticklabels()] == [
        CREMA_D.class_names[c] for c in CREMA_D.classes]
    assert not any(stem.startswith(("gender_audit", "speaker_distribution")) for stem in build_figures(anonymous))


def test_figure_set_is_written_with_its_summary(crema, tmp_path):
    written = write_figures_from(crema, tmp_path / "out")
    names = {p.name for p in written}
    assert {"fig3a_confusion_categorical.png", "summary.md", "confusion.csv"} <= names
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "corpus: crema-d" in summary and summary.count(NOTE_ATTRIBUTES) == 1


def test_diagnose_on_a_corpus_own_frames():
    categorical, attributes, labels = corpus_frames(IEMOCAP, n_speakers=10, per_speaker=8)
    diag = diagnose(categorical, attributes, labels, resampling=Resampling(n_boot=20), workers=1)
    assert set(diag.tables["confusion"]["true"]) == set(IEMOCAP.classes)
    obj = diag.evaluation["systems"]["alpha"]
    cat = categorical[categorical["system"] == "alpha"]
    assert obj["macro_f1"] == pytest.approx(f1_score(cat["EmoClass_true"], cat["EmoClass_pred"], average="macro",
                                                     labels=list(IEMOCAP.classes)), abs=1e-9)
    assert "fig3b_binned_arousal" in build_figures(diag)
