"""Displays for the bias audit and fusion: what they draw is checked against numbers computed
here with numpy from planted data (this module builds its own data; it imports no other test)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ser_diag.analysis.bias import group_gaps, group_metrics, speaker_metrics  # noqa: E402
from ser_diag.analysis.fusion import topk_fusion_curve  # noqa: E402
from ser_diag.plots._style import save_figure  # noqa: E402
from ser_diag.plots.bias import STRIP_BELOW, GroupGapDisplay, SpeakerDistributionDisplay  # noqa: E402
from ser_diag.plots.fusion import DisagreementDisplay, FusionCurveDisplay  # noqa: E402
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, PROB_COLUMNS  # noqa: E402

CODES = np.array(CLASS_CODES)


def _base(n_speakers: int, per_speaker: int) -> pd.DataFrame:
    spk = np.repeat(np.arange(n_speakers), per_speaker)
    return pd.DataFrame({
        "FileName": [f"MSP-PODCAST_{s:04d}_{i:04d}.wav" for s, i in zip(spk, np.tile(np.arange(per_speaker), n_speakers))],
        "SpkrID": pd.array(spk + 100, dtype="Int64"),
        "Gender": np.where(spk % 2 == 0, "Female", "Male"),
        "Split_Set": "Development",
    })


def categorical(acc_female, acc_male, n_speakers=30, per_speaker=12, systems=("a",), seed=0,
                probabilities=False) -> pd.DataFrame:
    """Each system right with probability ``acc_<gender>``, else a uniformly drawn class."""
    rng = np.random.default_rng(seed)
    base = _base(n_speakers, per_speaker)
    true = rng.choice(CODES, len(base))
    acc = np.where(base["Gender"] == "Female", acc_female, acc_male)
    frames = []
    for system in systems:
        pred = np.where(rng.random(len(base)) < acc, true, rng.choice(CODES, len(base)))
        frame = base.assign(system=system, EmoClass_true=true, EmoClass_pred=pred)
        if probabilities:
            p = np.full((len(base), 8), 0.02)
            p[np.arange(len(base)), [CLASS_CODES.index(c) for c in pred]] = 0.86
            frame[list(PROB_COLUMNS)] = p
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="categorical", synthetic=True)
    return merged


def attributes(noise_female, noise_male, n_speakers=20, per_speaker=10, systems=("a",), seed=1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = _base(n_speakers, per_speaker)
    true = rng.normal(4.0, 1.0, (len(base), 3))
    sd = np.where(base["Gender"] == "Female", noise_female, noise_male)[:, None]
    frames = []
    for system in systems:
        pred = true + sd * rng.normal(size=true.shape)
        frame = base.assign(system=system)
        for j, a in enumerate(ATTRIBUTES):
            frame[f"{a}_true"], frame[f"{a}_pred"] = true[:, j], pred[:, j]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="attributes", synthetic=True)
    return merged


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def assert_saved(fig, tmp_path, stem):
    paths = save_figure(fig, tmp_path, stem)
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_group_gap_display(tmp_path):
    merged = categorical(0.45, 0.65, systems=("a", "b"))
    disp = GroupGapDisplay.from_predictions(merged, system="a", n_boot=50, n_permutations=50,
                                            by_speaker=True)
    assert disp.figure_ is disp.ax_.figure and set(disp.frame["system"]) == {"a"}
    assert set(disp.gap_text_) == {"macro_f1", "accuracy", "uar"}
    a = merged[merged["system"] == "a"]
    accuracy = {g: (rows["EmoClass_true"] == rows["EmoClass_pred"]).mean() for g, rows in a.groupby("Gender")}
    gap = accuracy["Female"] - accuracy["Male"]
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


def test_group_gap_display_without_intervals():
    """``n_boot=0``: NaN intervals; the points, finite axis limits and "(no CI)" instead."""
    merged = categorical(0.45, 0.65, systems=("a",))
    frame, gaps = group_metrics(merged, n_boot=0), group_gaps(merged, n_boot=0, n_permutations=0)
    assert frame["ci_low"].isna().all()
    disp = GroupGapDisplay.from_frame(frame, gaps, system="a")
    low, high = disp.ax_.get_ylim()
    assert np.isfinite(low) and np.isfinite(high)
    estimates = frame[frame["metric"].isin(["macro_f1", "accuracy", "uar"])]["estimate"]
    assert low < estimates.min() and high > estimates.max()
    assert "(no CI)" in disp.gap_text_["accuracy"].get_text()


def _box_patches(ax) -> int:
    return sum(type(p).__name__ == "PathPatch" for p in ax.patches)


def test_speaker_distribution_display(tmp_path):
    many = 2 * STRIP_BELOW + 4          # speakers per gender: STRIP_BELOW + 2
    merged = categorical(0.5, 0.7, n_speakers=many, per_speaker=12)
    disp = SpeakerDistributionDisplay.from_predictions(merged, min_utterances=10, n_worst=4)
    assert disp.metric == "accuracy" and disp.min_utterances == 10
    right = (merged["EmoClass_true"] == merged["EmoClass_pred"]).groupby(merged["SpkrID"]).mean()
    expected = right.sort_values(kind="stable").index[:4]
    assert sorted(disp.worst_["SpkrID"].astype(int)) == sorted(int(s) for s in expected)
    labels = [t.get_text() for t in disp.ax_.texts]
    assert all(any(f"spk {s} " in t for t in labels) for s in disp.worst_["SpkrID"])
    assert _box_patches(disp.ax_) == 2                       # enough speakers: one box per group
    assert_saved(disp.figure_, tmp_path, "speaker_distribution")


def test_few_speakers_are_points_and_at_most_a_third_is_worst():
    merged = categorical(0.5, 0.7, n_speakers=6, per_speaker=12)    # the reference split's size
    disp = SpeakerDistributionDisplay.from_predictions(merged, min_utterances=10, n_worst=5)
    assert _box_patches(disp.ax_) == 0                       # strip plot: every speaker a point
    points = sum(len(c.get_offsets()) for c in disp.ax_.collections if c.get_facecolor().size)
    assert points >= 6
    assert len(disp.worst_) == 2                             # 6 speakers: at most 2 circled
    assert "every speaker a point" in disp.ax_.get_title()

    attrs = attributes(0.6, 0.6, n_speakers=12, per_speaker=10)
    fig, ax = plt.subplots()
    disp = SpeakerDistributionDisplay.from_frame(speaker_metrics(attrs, min_utterances=5), metric="bias_EmoVal",
                                                 ax=ax)
    assert disp.ax_ is ax and disp.metric == "bias_EmoVal" and len(disp.frame) == 12
    assert len(disp.worst_) <= 4


def test_fusion_curve_display(tmp_path):
    cat = categorical(0.4, 0.4, n_speakers=40, per_speaker=10, systems=("sys0", "sys1", "sys2"),
                      probabilities=True)
    att = attributes(0.5, 0.5, n_speakers=40, per_speaker=10, systems=("sys0", "sys1", "sys2"))
    disp = FusionCurveDisplay.from_predictions(cat, att, n_boot=30, baseline="sys0")
    assert disp.metrics_ == ["macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom"]
    assert len(disp.ax_) == 4 and disp.figure_ is disp.ax_[0].figure
    baseline_line = [ln for ln in disp.ax_[0].lines if ln.get_linestyle() == "--"]
    base = cat[cat["system"] == "sys0"]
    scoring = disp.frame[(disp.frame["metric"] == "macro_f1") & (disp.frame["method"] == "baseline")]
    assert len(baseline_line) == 1 and np.isclose(baseline_line[0].get_ydata()[0], scoring["estimate"].item())
    assert 0.0 < scoring["estimate"].item() < 1.0 and len(base) == 400
    legend = [t.get_text() for t in disp.figure_.legends[0].get_texts()]
    assert "baseline system (sys0)" in legend
    assert_saved(disp.figure_, tmp_path, "fig4_topk_fusion")

    frame = topk_fusion_curve(categorical=cat, n_boot=0)     # no baseline named, no intervals
    assert not (frame["method"] == "baseline").any() and frame["ci_low"].isna().all()
    frame.to_csv(tmp_path / "curve.csv", index=False)
    fig, ax = plt.subplots()
    disp = FusionCurveDisplay.from_frame(pd.read_csv(tmp_path / "curve.csv"), ax=ax)
    assert disp.ax_[0] is ax
    assert "no baseline system" in [t.get_text() for t in ax.get_legend().get_texts()]
    low, high = ax.get_ylim()
    assert np.isfinite(low) and np.isfinite(high)
    with pytest.raises(ValueError, match="Axes"):
        FusionCurveDisplay.from_frame(disp.frame, ax=[ax, ax])


def test_disagreement_display(tmp_path):
    cat = categorical(0.6, 0.4, n_speakers=20, per_speaker=10, systems=("s0", "s1", "s2"))
    disp = DisagreementDisplay.from_predictions(cat)
    shown = disp.im_.get_array()
    pred = {s: cat.loc[cat["system"] == s, "EmoClass_pred"].to_numpy() for s in ("s0", "s1", "s2")}
    for i, a in enumerate(pred):
        for j, b in enumerate(pred):
            if i != j:
                assert np.isclose(shown[i, j], np.mean(pred[a] != pred[b])), (a, b)
    assert (disp.im_.norm.vmin, disp.im_.norm.vmax) == (0.0, 1.0)   # fixed scale from 0
    assert_saved(disp.figure_, tmp_path, "disagreement")
    fig, ax = plt.subplots()
    att = attributes(0.3, 0.6, systems=("att0", "att1"))
    disp = DisagreementDisplay.from_predictions(att, metric="pearson_EmoVal", ax=ax)
    assert disp.ax_ is ax
    shown = disp.im_.get_array()
    assert np.ma.is_masked(shown[0, 0])                       # diagonal left blank
    x, y = (att[att["system"] == s]["EmoVal_pred"].to_numpy() for s in ("att0", "att1"))
    assert np.isclose(shown[0, 1], np.corrcoef(x, y)[0, 1])
    assert (disp.im_.norm.vmin, disp.im_.norm.vmax) == (0.0, 1.0)
