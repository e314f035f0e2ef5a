"""Display objects for confusion matrices, binned attributes and regression to the mean."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ser_diag.analysis.binned import binned_matrix  # noqa: E402
from ser_diag.analysis.confusion import confusion_difference, confusion_table  # noqa: E402
from ser_diag.analysis.regression_to_mean import bin_means, shrinkage_table  # noqa: E402
from ser_diag.plots._style import save_figure  # noqa: E402
from ser_diag.plots.binned import BinnedAttributeDisplay  # noqa: E402
from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay  # noqa: E402
from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay  # noqa: E402
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, CLASS_NAMES  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def categorical():
    rng = np.random.default_rng(0)
    n = 600
    true = rng.choice(list(CLASS_CODES), n)
    frames = []
    for name, acc in (("sysA", 0.7), ("sysB", 0.4)):
        pred = np.where(rng.random(n) < acc, true, rng.choice(list(CLASS_CODES), n))
        frames.append(pd.DataFrame({"system": name, "FileName": [f"f{i:04d}.wav" for i in range(n)],
                                    "SpkrID": pd.array(rng.integers(0, 20, n), dtype="Int64"), "Gender": "Male",
                                    "Split_Set": "Development", "EmoClass_true": true, "EmoClass_pred": pred}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def attributes():
    rng = np.random.default_rng(1)
    n = 600
    true = {a: rng.uniform(1, 7, n) for a in ATTRIBUTES}
    frames = []
    for name, s in (("shrunk", 0.6), ("good", 0.95)):
        data = {"system": name, "FileName": [f"f{i:04d}.wav" for i in range(n)],
                "SpkrID": pd.array(rng.integers(0, 20, n), dtype="Int64"), "Gender": "Female", "Split_Set": "Development"}
        for a in ATTRIBUTES:
            t = true[a]
            data[f"{a}_true"], data[f"{a}_pred"] = t, t.mean() + s * (t - t.mean()) + 0.2 * rng.standard_normal(n)
        frames.append(pd.DataFrame(data))
    return pd.concat(frames, ignore_index=True)


def check_saved(fig, tmp_path, stem):
    paths = save_figure(fig, tmp_path, stem)
    assert [p.suffix for p in paths] == [".pdf", ".png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_confusion_matrix_display(categorical, tmp_path):
    disp = ConfusionMatrixDisplay.from_predictions(categorical, system="sysA")
    assert disp.figure_ is disp.ax_.figure
    names = [CLASS_NAMES[c] for c in CLASS_CODES]
    assert [t.get_text() for t in disp.ax_.get_xticklabels()] == names
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == names
    rows = categorical[categorical["system"] == "sysA"]
    n_fear_as_anger = int(((rows["EmoClass_true"] == "F") & (rows["EmoClass_pred"] == "A")).sum())
    n_fear = int((rows["EmoClass_true"] == "F").sum())
    assert disp.text_[4, 0].get_text() == f"{n_fear_as_anger}\n{100 * n_fear_as_anger / n_fear:.0f}%"
    np.testing.assert_allclose(np.asarray(disp.im_.get_array()).sum(axis=1), 1.0)
    check_saved(disp.figure_, tmp_path, "fig3a_confusion_categorical")
    with pytest.raises(ValueError, match="several systems"):
        ConfusionMatrixDisplay.from_predictions(categorical)


def test_confusion_displays_accept_external_axes_and_frames(categorical, tmp_path):
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), layout="constrained")
    table = confusion_table(categorical)
    left = ConfusionMatrixDisplay.from_frame(table, system="sysB", ax=axes[0], colorbar=False)
    right = ConfusionDifferenceDisplay.from_frame(confusion_difference(categorical, "sysA", "sysB"), ax=axes[1])
    assert left.ax_ is axes[0] and right.ax_ is axes[1] and left.figure_ is fig is right.figure_
    assert left.frame["system"].eq("sysB").all()
    diag = np.diag(np.asarray(right.im_.get_array()))
    assert (diag > 0).sum() >= 6  # sysA recalls most classes better
    norm = right.im_.norm
    assert norm.vmin == -norm.vmax
    same = ConfusionDifferenceDisplay.from_predictions(categorical, "sysA", "sysA")
    assert {t.get_text() for t in same.text_.ravel()} == {"0"}
    check_saved(fig, tmp_path, "confusion_pair")


def test_binned_display_low_values_at_the_bottom(attributes, tmp_path):
    disp = BinnedAttributeDisplay.from_predictions(attributes, system="shrunk", attribute="EmoAct")
    assert disp.figure_ is disp.ax_.figure
    y0, y1 = disp.ax_.get_ylim()
    assert y0 < y1  # row 0 (lowest true bin) drawn at the bottom
    labels = [t.get_text() for t in disp.ax_.get_yticklabels()]
    assert labels[0].startswith("[1, 2)") and labels[-1].startswith("[6, 7]")
    assert "arousal" in disp.ax_.get_ylabel()
    shares = np.asarray(disp.im_.get_array())
    np.testing.assert_allclose(np.nansum(shares, axis=1), 1.0)
    check_saved(disp.figure_, tmp_path, "fig3b_binned_arousal")

    fig, ax = plt.subplots()
    frame = binned_matrix(attributes, scheme="quantile")
    q = BinnedAttributeDisplay.from_frame(frame, system="good", attribute="EmoVal", ax=ax)
    assert q.ax_ is ax and q.text_.shape == (3, 3)
    assert q.ax_.get_xticklabels()[0].get_text().startswith("bottom 25%")
    with pytest.raises(ValueError, match="exactly one"):
        BinnedAttributeDisplay.from_frame(frame)


def test_regression_to_mean_display(attributes, tmp_path):
    disp = RegressionToMeanDisplay.from_predictions(attributes, attribute="EmoAct", n_boot=100)
    legend = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    slope = shrinkage_table(attributes, "EmoAct", n_boot=0)
    slopes = slope[slope["metric"] == "slope"].set_index("system")["estimate"]
    expected = {f"{name} (slope {slopes[name]:.2f})" for name in ("shrunk", "good")}
    assert set(disp.lines_) == expected
    assert expected < set(legend) and any("identity" in text for text in legend)
    assert slopes["shrunk"] == pytest.approx(0.6, abs=0.03)
    check_saved(disp.figure_, tmp_path, "rtm_arousal")

    fig, ax = plt.subplots()
    per_attribute = RegressionToMeanDisplay.from_frame(bin_means(attributes, n_boot=50).query("system == 'good'"), ax=ax)
    assert per_attribute.ax_ is ax and per_attribute.figure_ is fig
    assert set(per_attribute.lines_) == {"arousal", "valence", "dominance"}
    with pytest.raises(ValueError):
        RegressionToMeanDisplay(bin_means(attributes, n_boot=0).iloc[0:0])


def test_regression_to_mean_display_without_intervals(attributes):
    """``n_boot=0`` (NaN intervals): the means alone, finite axis limits, nothing raised."""
    means = bin_means(attributes, n_boot=0)
    assert means["mean_pred_ci_low"].isna().all()
    disp = RegressionToMeanDisplay.from_frame(means.query("system == 'good'"),
                                              shrinkage_table(attributes, n_boot=0))
    low, high = disp.ax_.get_ylim()
    assert np.isfinite(low) and np.isfinite(high)
    good = attributes[attributes["system"] == "good"]
    top_bin = good[good["EmoAct_true"] >= 6]["EmoAct_pred"].mean()   # the unit bin [6, 7]
    shown = means.query("system == 'good' and attribute == 'EmoAct'")
    assert np.isclose(shown["mean_pred"].iloc[-1], top_bin)
