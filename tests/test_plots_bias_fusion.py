"""Displays for the bias audit and fusion (issue 3, analyses 4-5)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_bias import attribute_merged as attribute_by_gender  # noqa: E402
from test_bias import categorical_merged as categorical_by_gender  # noqa: E402
from test_fusion import attribute_merged, categorical_merged  # noqa: E402

from ser_diag.analysis.bias import group_gaps, group_metrics, speaker_metrics, worst_speakers  # noqa: E402
from ser_diag.analysis.fusion import topk_fusion_curve  # noqa: E402
from ser_diag.plots._style import save_figure  # noqa: E402
from ser_diag.plots.bias import GroupGapDisplay, SpeakerDistributionDisplay  # noqa: E402
from ser_diag.plots.fusion import DisagreementDisplay, FusionCurveDisplay  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def assert_saved(fig, tmp_path, stem):
    paths = save_figure(fig, tmp_path, stem)
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_group_gap_display(tmp_path):
    merged = categorical_by_gender(0.45, 0.65, n_speakers=30, per_speaker=15, systems=("a", "b"))
    disp = GroupGapDisplay.from_predictions(merged, system="a", n_boot=50, n_permutations=50,
                                            by_speaker=True)
    assert disp.figure_ is disp.ax_.figure and set(disp.frame["system"]) == {"a"}
    assert set(disp.gap_text_) == {"macro_f1", "accuracy", "uar"}
    gap = disp.gaps.set_index("metric").loc["accuracy", "gap"]
    assert f"{gap:+.3f}" in disp.gap_text_["accuracy"].get_text()
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == ["macro-F1", "accuracy", "UAR"]
    assert_saved(disp.figure_, tmp_path, "gender_gap_categorical")

    fig, ax = plt.subplots()
    frame, gaps = group_metrics(merged, n_boot=20), group_gaps(merged, n_boot=20, n_permutations=20)
    recalls = [f"recall_{c}" for c in "ASHUFDCN"]
    disp = GroupGapDisplay.from_frame(frame, gaps, system="b", ax=ax, metrics=recalls)
    assert disp.ax_ is ax and len(disp.gap_text_) == 8
    with pytest.raises(ValueError, match="several systems"):
        GroupGapDisplay.from_frame(frame)
    attrs = attribute_by_gender(0.8, 0.4, n_speakers=20, per_speaker=10)
    disp = GroupGapDisplay.from_predictions(attrs, n_boot=20, n_permutations=20)
    assert set(disp.gap_text_) == {"ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"}


def test_speaker_distribution_display(tmp_path):
    merged = categorical_by_gender(0.5, 0.7, n_speakers=30, per_speaker=12, systems=("a",))
    disp = SpeakerDistributionDisplay.from_predictions(merged, min_utterances=10, n_worst=4)
    assert disp.metric == "accuracy" and disp.min_utterances == 10
    pd.testing.assert_frame_equal(disp.worst_, worst_speakers(merged, n=4, min_utterances=10))
    labels = [t.get_text() for t in disp.ax_.texts]
    assert all(any(f"spk {s} " in t for t in labels) for s in disp.worst_["SpkrID"])
    assert_saved(disp.figure_, tmp_path, "speaker_distribution")

    attrs = attribute_by_gender(0.6, 0.6, n_speakers=12, per_speaker=10)
    fig, ax = plt.subplots()
    disp = SpeakerDistributionDisplay.from_frame(speaker_metrics(attrs, min_utterances=5), metric="bias_EmoVal",
                                                 ax=ax)
    assert disp.ax_ is ax and disp.metric == "bias_EmoVal" and len(disp.frame) == 12


def test_fusion_curve_display(tmp_path):
    cat = categorical_merged([0.35, 0.55, 0.45], n=400)
    att = attribute_merged([0.9, 0.5, 0.7], n=400)
    disp = FusionCurveDisplay.from_predictions(cat, att, n_boot=30)
    assert disp.metrics_ == ["macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom"]
    assert len(disp.ax_) == 4 and disp.figure_ is disp.ax_[0].figure
    baseline_line = [ln for ln in disp.ax_[0].lines if ln.get_linestyle() == "--"]
    base = disp.frame[(disp.frame["metric"] == "macro_f1") & (disp.frame["method"] == "baseline")]
    assert len(baseline_line) == 1 and np.isclose(baseline_line[0].get_ydata()[0], base["estimate"].item())
    assert_saved(disp.figure_, tmp_path, "fig4_topk_fusion")

    frame = topk_fusion_curve(categorical=cat, n_boot=20)
    frame.to_csv(tmp_path / "curve.csv", index=False)
    fig, ax = plt.subplots()
    disp = FusionCurveDisplay.from_frame(pd.read_csv(tmp_path / "curve.csv"), ax=ax)
    assert disp.ax_[0] is ax
    with pytest.raises(ValueError, match="Axes"):
        FusionCurveDisplay.from_frame(disp.frame, ax=[ax, ax])


def test_disagreement_display(tmp_path):
    cat = categorical_merged([0.6, 0.5, 0.4], n=200)
    disp = DisagreementDisplay.from_predictions(cat)
    assert disp.metric == "disagreement" and disp.im_.get_array().shape == (3, 3)
    assert_saved(disp.figure_, tmp_path, "disagreement")
    fig, ax = plt.subplots()
    att = attribute_merged([0.3, 0.6], n=100)
    disp = DisagreementDisplay.from_predictions(att, metric="pearson_EmoVal", ax=ax)
    assert disp.ax_ is ax
    shown = disp.im_.get_array()
    assert np.ma.is_masked(shown[0, 0])                       # diagonal left blank
    x, y = (att[att["system"] == s]["EmoVal_pred"].to_numpy() for s in ("att0", "att1"))
    assert np.isclose(shown[0, 1], np.corrcoef(x, y)[0, 1])
