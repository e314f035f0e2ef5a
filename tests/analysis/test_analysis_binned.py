"""Binned attribute matrices and per-bin tables (issue 3, analysis 2)."""

import numpy as np
import pandas as pd
import pytest

from ser_diag import metrics
from ser_diag.analysis.binned import assign_bins, bin_edges, bin_labels, binned_matrix, per_bin_table
from ser_diag.schema import ATTRIBUTES


def attribute_merged(n=900, seed=0, shrinkage=0.6, noise=0.15):
    """Merged attributes frame (contract layout): "shrunk" = mean + s (true - mean) + noise,
    "perfect" = truth, "valence_only" submitted valence only (other attributes NaN)."""
    rng = np.random.default_rng(seed)
    files = [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)]
    true = {a: np.round(rng.uniform(1, 7, n), 1) for a in ATTRIBUTES}
    frames = []
    for name in ("shrunk", "perfect", "valence_only"):
        data = {"system": name, "FileName": files, "SpkrID": pd.array(rng.integers(0, 50, n), dtype="Int64"),
                "Gender": "Female", "Split_Set": "Development"}
        for a in ATTRIBUTES:
            t = true[a]
            pred = {"shrunk": t.mean() + shrinkage * (t - t.mean()) + noise * rng.standard_normal(n),
                    "perfect": t.copy(), "valence_only": t + 0.3 if a == "EmoVal" else np.full(n, np.nan)}[name]
            data[f"{a}_true"], data[f"{a}_pred"] = t, pred
        frames.append(pd.DataFrame(data))
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="attributes", synthetic=True)
    return merged


@pytest.fixture(scope="module")
def merged():
    return attribute_merged()


def test_bin_edges_schemes():
    np.testing.assert_array_equal(bin_edges(None), np.arange(1.0, 8.0))
    values = np.random.default_rng(0).normal(4, 1, 4000)
    q = bin_edges(values, "quantile")
    shares = np.bincount(assign_bins(values, q), minlength=3) / len(values)
    np.testing.assert_allclose(shares, [0.25, 0.5, 0.25], atol=1e-3)
    np.testing.assert_array_equal(bin_edges(None, edges=[1, 3, 5, 7]), [1.0, 3.0, 5.0, 7.0])
    for bad in ([3, 2], [1], [1, 1, 2]):
        with pytest.raises(ValueError):
            bin_edges(None, edges=bad)
    with pytest.raises(ValueError, match="scheme"):
        bin_edges(None, "deciles")
    with pytest.raises(ValueError, match="collapse"):
        bin_edges(np.r_[np.full(90, 4.0), 1.0, 7.0], "quantile")
    assert bin_labels(np.arange(1.0, 8.0))[0] == "[1, 2)" and bin_labels(np.arange(1.0, 8.0))[-1] == "[6, 7]"
    assert bin_labels(q, "quantile")[0].startswith("bottom 25%")


def test_assign_bins_matches_pandas_cut():
    values = np.random.default_rng(1).uniform(0.5, 7.5, 2000)
    edges = np.arange(1.0, 8.0)
    clipped = np.clip(values, 1.0, 6.999999)
    expected = pd.cut(clipped, edges, right=False, labels=False)
    np.testing.assert_array_equal(assign_bins(values, edges), expected)
    assert assign_bins([7.0], edges)[0] == 5


def test_binned_rows_sum_to_one_and_counts_match(merged):
    table = binned_matrix(merged)
    assert set(table["system"]) == {"shrunk", "perfect", "valence_only"}
    assert set(table.loc[table["system"] == "valence_only", "attribute"]) == {"EmoVal"}
    sums = table.groupby(["system", "attribute", "true_bin"], observed=True)["share"].sum(min_count=1)
    np.testing.assert_allclose(sums.dropna().to_numpy(), 1.0)
    rows = merged[merged["system"] == "shrunk"]
    cut = lambda v: pd.cut(np.clip(v, 1.0, 6.999), np.arange(1.0, 8.0), right=False, labels=False)  # noqa: E731
    expected = pd.crosstab(cut(rows["EmoAct_true"].to_numpy()), cut(rows["EmoAct_pred"].to_numpy()))
    expected = expected.reindex(index=range(6), columns=range(6), fill_value=0)
    got = table[(table["system"] == "shrunk") & (table["attribute"] == "EmoAct")]
    got = got.pivot(index="true_index", columns="pred_index", values="count")
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert list(table["true_bin"].cat.categories)[:2] == ["[1, 2)", "[2, 3)"]


def test_perfect_system_gives_identity_and_zero_bias(merged):
    for scheme in ("unit", "quantile"):
        table = binned_matrix(merged, scheme=scheme)
        perfect = table[table["system"] == "perfect"]
        for _, cells in perfect.groupby("attribute"):
            k = int(cells["true_index"].max()) + 1
            matrix = cells.sort_values(["true_index", "pred_index"])["share"].to_numpy().reshape(k, k)
            np.testing.assert_allclose(matrix, np.eye(k))
    per_bin = per_bin_table(merged, scheme="quantile")
    perfect = per_bin[per_bin["system"] == "perfect"]
    np.testing.assert_allclose(perfect[["bias", "mae"]].to_numpy(), 0.0)
    np.testing.assert_allclose(perfect["ccc"], 1.0)
    assert (perfect.groupby("attribute")["n"].sum() == 900).all()


def test_quantile_edges_come_from_true_values(merged):
    table = binned_matrix(merged, "EmoDom", scheme="quantile")
    n_per_bin = table[table["system"] == "shrunk"].groupby("true_index")["count"].sum().to_numpy() / 900
    np.testing.assert_allclose(n_per_bin, [0.25, 0.5, 0.25], atol=0.02)


def test_per_bin_table_against_groupby(merged):
    table = per_bin_table(merged, "EmoVal", edges=[1, 3, 5, 7])
    rows = merged[merged["system"] == "shrunk"]
    bins = np.digitize(rows["EmoVal_true"], [3, 5])
    for b, group in rows.groupby(bins):
        got = table[(table["system"] == "shrunk") & (table["bin_index"] == b)].iloc[0]
        error = group["EmoVal_pred"] - group["EmoVal_true"]
        assert got["n"] == len(group)
        assert got["mean_pred"] == pytest.approx(group["EmoVal_pred"].mean())
        assert got["bias"] == pytest.approx(error.mean())
        assert got["mae"] == pytest.approx(error.abs().mean())
        assert got["ccc"] == pytest.approx(metrics.ccc(group["EmoVal_true"], group["EmoVal_pred"]))
    # shrinkage: over-predicts the low bin, under-predicts the high bin
    shrunk = table[table["system"] == "shrunk"].set_index("bin_index")
    assert shrunk.loc[0, "bias"] > 0.3 and shrunk.loc[2, "bias"] < -0.3
    with pytest.raises(ValueError, match="attribute"):
        per_bin_table(merged, "Arousal")


def test_categorical_frame_is_refused():
    categorical = pd.DataFrame({"system": ["a"], "FileName": ["f.wav"], "EmoClass_true": ["A"], "EmoClass_pred": ["A"]})
    with pytest.raises(ValueError, match="no attribute predictions"):
        binned_matrix(categorical)
