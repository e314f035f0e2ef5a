"""Confusion tables, minority destinations and system differences (issue 3, analysis 1)."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score

from ser_diag.analysis.confusion import (
    confusion_difference,
    confusion_matrix_frame,
    confusion_table,
    minority_destinations,
)
from ser_diag.schema import CLASS_CODES, CLASS_NAMES

MIX = [0.2, 0.1, 0.2, 0.05, 0.04, 0.04, 0.07, 0.3]


def categorical_merged(n=1500, seed=0, to_anger=0.6):
    """A merged categorical frame (contract layout) with two systems; system "a" sends
    ``to_anger`` of fear/disgust/contempt files to anger, "perfect" is always right."""
    rng = np.random.default_rng(seed)
    files = [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)]
    speakers = pd.array(rng.integers(0, 60, n), dtype="Int64")
    speakers[:5] = pd.NA
    true = rng.choice(list(CLASS_CODES), n, p=MIX)
    noisy = np.where(rng.random(n) < 0.6, true, rng.choice(list(CLASS_CODES), n))
    noisy = np.where(np.isin(true, ["F", "D", "C"]) & (rng.random(n) < to_anger), "A", noisy)
    frames = [pd.DataFrame({"system": name, "FileName": files, "SpkrID": speakers,
                            "Gender": np.where(np.arange(n) % 2, "Female", "Male"),
                            "Split_Set": "Development", "EmoClass_true": true, "EmoClass_pred": pred})
              for name, pred in (("a", noisy), ("perfect", true.copy()))]
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="categorical", synthetic=True)
    return merged


@pytest.fixture(scope="module")
def merged():
    return categorical_merged()


def test_counts_match_pandas_crosstab(merged):
    table = confusion_table(merged, normalize=None)
    assert len(table) == 2 * 64
    rows = merged[merged["system"] == "a"]
    expected = (pd.crosstab(rows["EmoClass_true"], rows["EmoClass_pred"])
                .reindex(index=list(CLASS_CODES), columns=list(CLASS_CODES), fill_value=0))
    got = table[table["system"] == "a"].pivot(index="true", columns="pred", values="count")
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert list(table["true"].cat.categories) == list(CLASS_CODES)
    assert table.loc[table["system"] == "a", "share"].sum() == pytest.approx(1.0)


def test_row_normalised_shares_sum_to_one_and_equal_recall(merged):
    table = confusion_table(merged, normalize="true")
    sums = table.groupby(["system", "true"], observed=True)["share"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    rows = merged[merged["system"] == "a"]
    recall = recall_score(rows["EmoClass_true"], rows["EmoClass_pred"], labels=list(CLASS_CODES), average=None)
    diag = table[(table["system"] == "a") & (table["true"] == table["pred"])]["share"].to_numpy()
    np.testing.assert_allclose(diag, recall)


def test_perfect_system_gives_identity(merged):
    frame = confusion_matrix_frame(merged, "perfect", normalize="true")
    np.testing.assert_allclose(frame.to_numpy(), np.eye(8))
    assert list(frame.index) == [CLASS_NAMES[c] for c in CLASS_CODES]
    assert list(frame.columns) == [CLASS_NAMES[c] for c in CLASS_CODES]


def test_matrix_frame_counts_and_errors(merged):
    frame = confusion_matrix_frame(merged, "a")
    assert frame.to_numpy().sum() == (merged["system"] == "a").sum()
    with pytest.raises(ValueError, match="several systems"):
        confusion_matrix_frame(merged)
    with pytest.raises(ValueError, match="not in merged"):
        confusion_matrix_frame(merged, "nope")
    with pytest.raises(ValueError, match="normalize"):
        confusion_table(merged, normalize="rows")


def test_minority_destinations_find_planted_anger_route(merged):
    dest = minority_destinations(merged, "a", top=3, n_boot=300, seed=1)
    assert set(dest["true"].astype(str)) == set(CLASS_CODES)
    assert (dest.groupby("true", observed=True)["rank"].max() == 3).all()
    rows = merged[merged["system"] == "a"]
    for code in ("F", "D", "C"):
        first = dest[(dest["true"] == code) & (dest["rank"] == 1)].iloc[0]
        assert first["pred"] == "A" and first["minority"]
        mine = rows[rows["EmoClass_true"] == code]
        share = (mine["EmoClass_pred"] == "A").mean()
        assert first["share"] == pytest.approx(share)
        assert first["n_true"] == len(mine)
        # planted: 0.6 + 0.4 * 0.4 / 8 of these files go to anger
        assert first["ci_low"] <= first["share"] <= first["ci_high"]
        assert first["ci_low"] < 0.62 < first["ci_high"]
    # never the diagonal, shares sorted within a class
    assert (dest["true"].astype(str) != dest["pred"].astype(str)).all()
    for _, group in dest.groupby("true", observed=True):
        assert np.all(np.diff(group.sort_values("rank")["share"].to_numpy()) <= 0)


def test_minority_destinations_by_speaker_resamples_speakers(merged):
    utt = minority_destinations(merged, "a", top=1, n_boot=300, seed=2, unit="utterance")
    spk = minority_destinations(merged, "a", top=1, n_boot=300, seed=2, by_speaker=True)
    assert set(spk["unit"]) == {"speaker"} and set(utt["unit"]) == {"utterance"}
    np.testing.assert_allclose(spk["share"], utt["share"])
    assert (spk["ci_high"] - spk["ci_low"]).mean() > 0


def test_confusion_difference(merged):
    same = confusion_difference(merged, "a", "a")
    np.testing.assert_allclose(same["difference"].fillna(0), 0.0)
    diff = confusion_difference(merged, "perfect", "a")
    rows = merged[merged["system"] == "a"]
    recall = recall_score(rows["EmoClass_true"], rows["EmoClass_pred"], labels=list(CLASS_CODES), average=None)
    diag = diff[diff["true"] == diff["pred"]]["difference"].to_numpy()
    np.testing.assert_allclose(diag, 1.0 - recall)
    np.testing.assert_allclose(diff.groupby("true", observed=True)["difference"].sum(), 0.0, atol=1e-12)
