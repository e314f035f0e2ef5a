"""Regression to the mean: bin means, shrinkage slope, Lin decomposition, recalibration."""

import numpy as np
import pandas as pd
import pytest

from ser_diag import io, metrics, simulate
from ser_diag.analysis.regression_to_mean import (
    SHRINKAGE_METRICS,
    bin_means,
    extreme_bin_recall,
    holdout_files,
    lin_loss_parts,
    recalibration_whatif,
    shrinkage_table,
    variance_matching,
)
from ser_diag.schema import ATTRIBUTES

S, NOISE = 0.6, 0.1


def planted(n=1200, seed=0):
    """true ~ U(1, 7); "shrunk": pred = mean + S (true - mean) + N(0, NOISE);
    "biased": a location shift of +0.8 and scale 1.3; "perfect": pred = true;
    "anti": negatively correlated."""
    rng = np.random.default_rng(seed)
    files = [f"MSP-PODCAST_{i:05d}_0001.wav" for i in range(n)]
    speakers = pd.array(rng.integers(0, 80, n), dtype="Int64")
    speakers[:10] = pd.NA
    true = {a: rng.uniform(1, 7, n) for a in ATTRIBUTES}
    frames = []
    for name in ("shrunk", "biased", "perfect", "anti"):
        data = {"system": name, "FileName": files, "SpkrID": speakers, "Gender": "Male", "Split_Set": "Development"}
        for a in ATTRIBUTES:
            t = true[a]
            m = t.mean()
            pred = {"shrunk": m + S * (t - m) + NOISE * rng.standard_normal(n),
                    "biased": m + 0.8 + 1.3 * (t - m) + 0.5 * rng.standard_normal(n),
                    "perfect": t.copy(),
                    "anti": m - 0.5 * (t - m) + rng.standard_normal(n)}[name]
            data[f"{a}_true"], data[f"{a}_pred"] = t, pred
        frames.append(pd.DataFrame(data))
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="attributes", synthetic=True)
    return merged


@pytest.fixture(scope="module")
def merged():
    return planted()


@pytest.fixture(scope="module")
def shrinkage(merged):
    return shrinkage_table(merged, n_boot=400, seed=3)


def value(table, system, attribute, metric, column="estimate"):
    row = table[(table["system"] == system) & (table["attribute"] == attribute) & (table["metric"] == metric)]
    assert len(row) == 1
    return float(row[column].iloc[0])


def test_planted_shrinkage_is_recovered(merged, shrinkage):
    for a in ATTRIBUTES:
        slope = value(shrinkage, "shrunk", a, "slope")
        assert slope == pytest.approx(S, abs=0.02)
        assert value(shrinkage, "shrunk", a, "slope", "ci_low") <= S <= value(shrinkage, "shrunk", a, "slope", "ci_high")
        # population sd ratio: sqrt(S^2 + NOISE^2 / var_true)
        t = merged.loc[merged["system"] == "shrunk", f"{a}_true"].to_numpy()
        expected_v = np.sqrt(S**2 + NOISE**2 / t.var())
        v = value(shrinkage, "shrunk", a, "variance_ratio")
        assert v == pytest.approx(S, abs=0.02)
        assert value(shrinkage, "shrunk", a, "variance_ratio", "ci_low") <= expected_v
        assert expected_v <= value(shrinkage, "shrunk", a, "variance_ratio", "ci_high")
        assert value(shrinkage, "perfect", a, "slope") == pytest.approx(1.0)
        assert value(shrinkage, "perfect", a, "ccc_gap") == pytest.approx(0.0, abs=1e-12)
    assert list(shrinkage["metric"].unique()) == list(SHRINKAGE_METRICS)
    assert set(shrinkage["n"]) == {1200}


def test_lin_numbers_match_metrics_and_independent_formula(merged, shrinkage):
    rows = merged[merged["system"] == "biased"]
    t, p = rows["EmoAct_true"].to_numpy(), rows["EmoAct_pred"].to_numpy()
    independent_ccc = 2 * np.cov(t, p, ddof=0)[0, 1] / (t.var() + p.var() + (t.mean() - p.mean()) ** 2)
    assert value(shrinkage, "biased", "EmoAct", "ccc") == pytest.approx(independent_ccc)
    d = metrics.lin_decomposition(t, p)
    for name in ("rho", "scale_v", "location_u", "c_b"):
        assert value(shrinkage, "biased", "EmoAct", name) == pytest.approx(d[name])
    assert value(shrinkage, "biased", "EmoAct", "slope") == pytest.approx(np.polyfit(t, p, 1)[0])
    assert value(shrinkage, "biased", "EmoAct", "rho") * value(shrinkage, "biased", "EmoAct", "c_b") == \
        pytest.approx(independent_ccc)


def test_loss_decomposition_sums_to_ccc_gap(shrinkage):
    wide = shrinkage.pivot_table(index=["system", "attribute"], columns="metric", values="estimate")
    parts = wide[["loss_correlation", "loss_scale", "loss_location"]].sum(axis=1)
    np.testing.assert_allclose(parts, 1.0 - wide["ccc"], atol=1e-12)
    np.testing.assert_allclose(wide["ccc_gap"], 1.0 - wide["ccc"], atol=1e-12)
    # the shrunk system loses mostly to scale, the biased one also to location
    shrunk = wide.loc["shrunk"]
    assert (shrunk["loss_scale"] > 5 * shrunk["loss_location"]).all()
    assert (shrunk["loss_scale"] > shrunk["loss_correlation"]).all()
    assert (wide.loc["biased", "loss_location"] > 0.05).all()
    assert (wide.loc["anti", "rho"] < 0).all()


def test_lin_loss_parts_pure_cases():
    rho = np.array([0.9, 0.5])
    scale_only = lin_loss_parts(rho, np.array([0.5, 2.0]), np.zeros(2))
    np.testing.assert_allclose(scale_only["loss_location"], 0.0)
    np.testing.assert_allclose(scale_only["loss_scale"], rho * (1 - 2 / (np.array([0.5, 2.0]) + 1 / np.array([0.5, 2.0]))))
    location_only = lin_loss_parts(rho, np.ones(2), np.array([0.4, -1.0]))
    np.testing.assert_allclose(location_only["loss_scale"], 0.0, atol=1e-15)
    rng = np.random.default_rng(0)
    r, v, u = rng.uniform(-1, 1, 50), rng.uniform(0.2, 3, 50), rng.normal(0, 1, 50)
    parts = lin_loss_parts(r, v, u)
    total = parts["loss_correlation"] + parts["loss_scale"] + parts["loss_location"]
    np.testing.assert_allclose(total, 1 - r * 2 / (v + 1 / v + u * u))


def test_bin_means_show_regression_to_the_mean(merged):
    table = bin_means(merged, "EmoAct", n_boot=300, seed=1)
    shrunk = table[table["system"] == "shrunk"].set_index("bin_index")
    assert shrunk.loc[0, "bias"] > 0.8 and shrunk.loc[5, "bias"] < -0.8
    assert (shrunk["bias_ci_low"] <= shrunk["bias"]).all() and (shrunk["bias"] <= shrunk["bias_ci_high"]).all()
    rows = merged[merged["system"] == "shrunk"]
    in_first = rows["EmoAct_true"] < 2
    assert shrunk.loc[0, "n"] == in_first.sum()
    assert shrunk.loc[0, "mean_pred"] == pytest.approx(rows.loc[in_first, "EmoAct_pred"].mean())
    # mean prediction per bin follows the planted line mean + S (mean_true_bin - mean)
    m = rows["EmoAct_true"].mean()
    np.testing.assert_allclose(shrunk["mean_pred"], m + S * (shrunk["mean_true"] - m), atol=0.03)
    perfect = table[table["system"] == "perfect"]
    np.testing.assert_allclose(perfect[["bias", "bias_ci_low", "bias_ci_high"]], 0.0, atol=1e-12)
    by_speaker = bin_means(merged, "EmoAct", n_boot=100, by_speaker=True)
    assert set(by_speaker["unit"]) == {"speaker"}


def test_extreme_bin_recall(merged):
    table = extreme_bin_recall(merged)
    perfect = table[table["system"] == "perfect"]
    np.testing.assert_allclose(perfect["recall"], 1.0)
    shrunk = table[table["system"] == "shrunk"]
    assert (shrunk["recall"] < 0.2).all()
    assert list(shrunk["end"][:2]) == ["low", "high"]
    rows = merged[merged["system"] == "shrunk"]
    low = rows["EmoVal_true"] < 2
    expected = (rows.loc[low, "EmoVal_pred"] < 2).mean()
    got = shrunk[(shrunk["attribute"] == "EmoVal") & (shrunk["end"] == "low")]
    assert float(got["recall"].iloc[0]) == pytest.approx(expected)
    assert int(got["n"].iloc[0]) == low.sum()


def test_recalibration_raises_ccc_of_shrunk_system(merged):
    table = recalibration_whatif(merged, seed=4)
    shrunk = table[table["system"] == "shrunk"]
    assert (shrunk["ccc_after"] > shrunk["ccc_before"] + 0.05).all()
    np.testing.assert_allclose(shrunk["ccc_after"], shrunk["pearson"], atol=0.01)
    np.testing.assert_allclose(shrunk["variance_ratio_after"], 1.0, atol=0.05)
    np.testing.assert_allclose(shrunk["scale"], 1 / S, rtol=0.05)
    assert (table["n_fit"] + table["n_eval"] == 1200).all()
    perfect = table[table["system"] == "perfect"]
    np.testing.assert_allclose(perfect[["ccc_before", "ccc_after"]], 1.0)


def test_recalibration_is_fitted_only_on_the_held_out_files(merged):
    fit = holdout_files(merged, 0.5, seed=4, by_speaker=False)
    assert len(fit) == 600 and len(set(fit)) == 600
    table = recalibration_whatif(merged, holdout_fraction=0.5, seed=4, unit="utterance")
    assert (table["split_unit"] == "utterance").all()
    rows = merged[merged["system"] == "shrunk"]
    in_fit = rows["FileName"].isin(fit).to_numpy()
    scale, offset = variance_matching(rows.loc[in_fit, "EmoDom_true"], rows.loc[in_fit, "EmoDom_pred"])
    got = table[(table["system"] == "shrunk") & (table["attribute"] == "EmoDom")].iloc[0]
    assert (got["scale"], got["offset"]) == pytest.approx((scale, offset))
    recal = offset + scale * rows.loc[~in_fit, "EmoDom_pred"]
    assert got["ccc_after"] == pytest.approx(metrics.ccc(rows.loc[~in_fit, "EmoDom_true"], recal))
    # scrambling the scored part changes the scores but never the fitted map
    scrambled = merged.copy()
    scored = scrambled["system"].eq("shrunk") & ~scrambled["FileName"].isin(fit)
    scrambled.loc[scored, "EmoDom_pred"] = np.random.default_rng(9).permutation(scrambled.loc[scored, "EmoDom_pred"])
    again = recalibration_whatif(scrambled, holdout_fraction=0.5, seed=4, unit="utterance")
    again = again[(again["system"] == "shrunk") & (again["attribute"] == "EmoDom")].iloc[0]
    assert (again["scale"], again["offset"]) == (got["scale"], got["offset"])
    assert again["ccc_before"] != pytest.approx(got["ccc_before"])


def test_holdout_by_speaker_keeps_speakers_apart(merged):
    fit = holdout_files(merged, 0.3, seed=0, by_speaker=True)
    files = merged.drop_duplicates("FileName")
    in_fit = files["FileName"].isin(fit)
    known = files["SpkrID"].notna()
    assert not set(files.loc[in_fit & known, "SpkrID"]) & set(files.loc[~in_fit & known, "SpkrID"])
    with pytest.raises(ValueError):
        holdout_files(merged, 1.0)


def test_simulated_challenge_slope_matches_planted_shrinkage():
    labels, _ = simulate.simulate_labels(2500, seed=2)
    specs = [simulate.SystemSpec("planted", shrinkage=0.6, rho=0.98)]
    merged = io.merge(labels, simulate.simulate_systems(labels, specs=specs, seed=2), "attributes")
    table = shrinkage_table(merged, n_boot=200)
    slopes = table[table["metric"] == "slope"]
    # clipping to [1, 7] flattens the extremes a little
    np.testing.assert_allclose(slopes["estimate"], 0.6, atol=0.04)
