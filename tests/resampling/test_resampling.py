"""ser_diag.resampling: weights, intervals against explicit loops, coverage, cluster and paired tests."""

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ser_diag import resampling
from ser_diag.resampling import draws
from ser_diag.metrics import weighted_ccc
from ser_diag.resampling import (
    attribute_statistics,
    bootstrap,
    bootstrap_metrics,
    bootstrap_weights,
    categorical_statistics,
    paired_test,
)
from ser_diag.schema import ATTRIBUTES, CLASS_CODES
from reference_metrics import reference_ccc

CODES = np.array(CLASS_CODES)


def categorical_merged(truth, preds: dict, speakers=None):
    n = len(truth)
    files = [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)]
    frames = [pd.DataFrame({"system": name, "FileName": files,
                            "SpkrID": pd.array(speakers if speakers is not None else np.arange(n),
                                               dtype="Int64"),
                            "EmoClass_true": CODES[truth], "EmoClass_pred": CODES[pred]})
              for name, pred in preds.items()]
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="categorical", synthetic=True)
    return merged


def attribute_merged(truth, preds: dict, speakers):
    n = truth.shape[0]
    files = [f"MSP-PODCAST_{i:04d}_0001.wav" for i in range(n)]
    frames = []
    for name, pred in preds.items():
        frame = pd.DataFrame({"system": name, "FileName": files,
                              "SpkrID": pd.array(speakers, dtype="Int64")})
        for j, attr in enumerate(ATTRIBUTES):
            frame[f"{attr}_true"], frame[f"{attr}_pred"] = truth[:, j], pred[:, j]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="attributes", synthetic=True)
    return merged


def test_weights_are_multinomial_counts_and_reproducible():
    w = bootstrap_weights(50, 2000, seed=3)
    assert w.shape == (2000, 50) and w.dtype == np.float32
    np.testing.assert_array_equal(w.sum(axis=1), 50)
    assert np.all(w == np.round(w)) and w.min() >= 0
    # Multinomial(n, 1/n): mean 1, variance 1 - 1/n per item
    assert abs(w.mean() - 1) < 1e-9
    assert w.var(axis=0).mean() == pytest.approx(1 - 1 / 50, abs=0.05)
    np.testing.assert_array_equal(w, bootstrap_weights(50, 2000, seed=3))
    assert not np.array_equal(w, bootstrap_weights(50, 2000, seed=4))


def test_weights_do_not_depend_on_chunking():
    whole = bootstrap_weights(30, 450, seed=1)
    for chunk in (8, 64, 200):
        parts = list(resampling._weight_chunks(30, 450, seed=1, chunk=chunk))
        np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_cluster_weights():
    groups = pd.array([1, 1, 1, 2, 2, 3, None, None], dtype="Int64")
    w = bootstrap_weights(8, 500, groups=groups, seed=0)
    np.testing.assert_array_equal(w[:, 0], w[:, 1])
    np.testing.assert_array_equal(w[:, 3], w[:, 4])
    # 5 clusters (two missing ids are singletons), drawn 5 times
    cluster_counts = w[:, [0, 3, 5, 6, 7]]
    np.testing.assert_array_equal(cluster_counts.sum(axis=1), 5)
    assert not np.array_equal(w[:, 6], w[:, 7])


def test_bootstrap_matches_explicit_resampling_loop():
    rng = np.random.default_rng(0)
    n, n_boot = 120, 60
    t = rng.integers(0, 8, n)
    p = np.where(rng.random(n) < 0.5, t, rng.integers(0, 8, n))
    table = bootstrap(categorical_statistics(t, p), n, n_boot=n_boot, seed=5, level=0.9)
    weights = bootstrap_weights(n, n_boot, seed=5)
    loop_f1, loop_acc = [], []
    for w in weights:
        idx = np.repeat(np.arange(n), w.astype(int))
        loop_f1.append(f1_score(t[idx], p[idx], average="macro", labels=range(8), zero_division=0))
        loop_acc.append(accuracy_score(t[idx], p[idx]))
    row = table.set_index("metric")
    assert row.loc["macro_f1", "estimate"] == pytest.approx(
        f1_score(t, p, average="macro", labels=range(8), zero_division=0), abs=1e-12)
    assert row.loc["macro_f1", "ci_low"] == pytest.approx(np.percentile(loop_f1, 5), abs=1e-12)
    assert row.loc["macro_f1", "ci_high"] == pytest.approx(np.percentile(loop_f1, 95), abs=1e-12)
    assert row.loc["accuracy", "ci_low"] == pytest.approx(np.percentile(loop_acc, 5), abs=1e-12)
    assert set(table.columns) == {"metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot"}
    assert (table["unit"] == "utterance").all() and (table["n_boot"] == n_boot).all()
    assert {"uar", "f1_A", "recall_N", "precision_C"} <= set(table["metric"])


def test_attribute_statistics_match_reference():
    rng = np.random.default_rng(2)
    n = 80
    x = rng.uniform(1, 7, (n, 3))
    y = 0.7 * x + rng.normal(1, 0.7, (n, 3))
    weights = bootstrap_weights(n, 20, seed=0)
    for ddof in (0, 1):
        out = attribute_statistics(x, y, ddof=ddof)(weights)
        for b in (0, 7, 19):
            idx = np.repeat(np.arange(n), weights[b].astype(int))
            cccs = [reference_ccc(x[idx, j], y[idx, j], ddof) for j in range(3)]
            for j, attr in enumerate(ATTRIBUTES):
                assert out[f"ccc_{attr}"][b] == pytest.approx(cccs[j], abs=1e-9)
                assert out[f"pearson_{attr}"][b] == pytest.approx(
                    np.corrcoef(x[idx, j], y[idx, j])[0, 1], abs=1e-9)
            assert out["ccc_mean"][b] == pytest.approx(np.mean(cccs), abs=1e-9)


def test_percentile_interval_covers_truth_at_nominal_rate():
    # bivariate normal with known CCC; 150 data sets, 90% intervals
    rho, sx, sy, gap = 0.6, 1.0, 0.7, 0.3
    true_ccc = 2 * rho * sx * sy / (sx ** 2 + sy ** 2 + gap ** 2)
    cov = [[sx ** 2, rho * sx * sy], [rho * sx * sy, sy ** 2]]
    rng = np.random.default_rng(11)
    hits, reps = 0, 150
    for r in range(reps):
        data = rng.multivariate_normal([0.0, gap], cov, size=150)
        table = bootstrap(lambda w: {"ccc": weighted_ccc(w, data[:, 0], data[:, 1])}, 150,
                          n_boot=300, level=0.9, seed=r)
        hits += table["ci_low"][0] <= true_ccc <= table["ci_high"][0]
    assert 0.82 <= hits / reps <= 0.97


def test_speaker_bootstrap_is_wider_when_speakers_cluster():
    rng = np.random.default_rng(4)
    n_spk, per = 40, 40
    speakers = np.repeat(np.arange(n_spk), per)
    truth = rng.uniform(1, 7, (n_spk * per, 3))
    offset = rng.normal(0, 1.0, (n_spk, 3))[speakers]  # planted per-speaker bias
    pred = truth * 0.6 + 1.6 + offset + rng.normal(0, 0.5, truth.shape)
    merged = attribute_merged(truth, {"sys": pred}, speakers)
    utt = bootstrap_metrics(merged, n_boot=300, unit="utterance", seed=0).set_index("metric")
    spk = bootstrap_metrics(merged, n_boot=300, by_speaker=True, seed=0).set_index("metric")
    assert (spk["unit"] == "speaker").all() and (utt["unit"] == "utterance").all()
    width = lambda t: t.loc["ccc_mean", "ci_high"] - t.loc["ccc_mean", "ci_low"]  # noqa: E731
    assert width(spk) > 2 * width(utt)
    assert spk.loc["ccc_mean", "estimate"] == utt.loc["ccc_mean", "estimate"]


def test_bootstrap_metrics_tidy_and_paired():
    rng = np.random.default_rng(5)
    n = 400
    t = rng.integers(0, 8, n)
    good = np.where(rng.random(n) < 0.6, t, rng.integers(0, 8, n))
    merged = categorical_merged(t, {"a": good, "b": good.copy(), "c": rng.integers(0, 8, n)})
    out = bootstrap_metrics(merged, n_boot=100, seed=2, level=0.8)
    assert list(out.columns) == ["system", "metric", "estimate", "ci_low", "ci_high", "level",
                                 "unit", "n_boot", "n"]
    assert (out["n"] == n).all() and (out["level"] == 0.8).all()
    a, b = (out[out.system == s].reset_index(drop=True) for s in ("a", "b"))
    pd.testing.assert_frame_equal(a.drop(columns="system"), b.drop(columns="system"))
    est = out.set_index(["system", "metric"])["estimate"]
    assert est["c", "macro_f1"] == pytest.approx(
        f1_score(t, merged.loc[merged.system == "c", "EmoClass_pred"].map(
            {c: i for i, c in enumerate(CLASS_CODES)}), average="macro", labels=range(8)), abs=1e-12)
    assert (out["ci_low"] <= out["estimate"] + 1e-12).all()
    assert (out["ci_high"] >= out["estimate"] - 1e-12).all()


def test_bootstrap_metrics_systems_on_different_files():
    rng = np.random.default_rng(9)
    t = rng.integers(0, 8, 100)
    merged = categorical_merged(t, {"a": t, "b": rng.integers(0, 8, 100)})
    merged = merged.drop(index=merged.index[(merged.system == "b")][:30])  # b covers 70 files
    out = bootstrap_metrics(merged, n_boot=50).set_index(["system", "metric"])
    assert out.loc[("a", "macro_f1"), "n"] == 100 and out.loc[("b", "macro_f1"), "n"] == 70
    assert out.loc[("a", "accuracy"), "estimate"] == 1.0
    b = merged[merged.system == "b"]
    assert out.loc[("b", "accuracy"), "estimate"] == pytest.approx(
        np.mean(b.EmoClass_true.to_numpy() == b.EmoClass_pred.to_numpy()))
    with pytest.raises(ValueError, match="same files"):
        paired_test(merged, "a", "b", "accuracy")


def test_paired_test_detects_planted_difference():
    rng = np.random.default_rng(6)
    n = 1500
    t = rng.integers(0, 8, n)
    better = np.where(rng.random(n) < 0.55, t, rng.integers(0, 8, n))
    worse = np.where(rng.random(n) < 0.40, t, rng.integers(0, 8, n))
    merged = categorical_merged(t, {"better": better, "worse": worse})
    for method in ("bootstrap", "permutation"):
        res = paired_test(merged, "better", "worse", "macro_f1", n_boot=400, method=method,
                          unit="utterance")
        assert res["diff"] == pytest.approx(res["estimate_a"] - res["estimate_b"])
        assert res["diff"] > 0.1 and res["ci_low"] > 0
        assert res["p_value"] < 0.01
        assert res["method"] == method and res["unit"] == "utterance" and res["level"] == 0.95


def test_paired_test_finds_no_difference_between_equal_systems():
    rng = np.random.default_rng(8)
    n, n_spk = 1200, 60
    truth = rng.uniform(1, 7, (n, 3))
    speakers = np.arange(n) % n_spk
    same_quality = {s: 0.6 * truth + 1.6 + rng.normal(0, 0.8, truth.shape) for s in ("x", "y")}
    merged = attribute_merged(truth, {**same_quality, "x_copy": same_quality["x"]}, speakers)
    same = paired_test(merged, "x", "x_copy", "ccc_mean", n_boot=200)
    assert same["diff"] == 0 and same["p_value"] == 1.0
    assert same["ci_low"] == 0 == same["ci_high"]
    for method in ("bootstrap", "permutation"):
        for by_speaker in (False, True):
            res = paired_test(merged, "x", "y", "ccc_EmoVal", n_boot=300, method=method,
                              by_speaker=by_speaker, seed=1)
            assert res["p_value"] > 0.05
            assert res["ci_low"] <= 0 <= res["ci_high"]
            assert res["unit"] == ("speaker" if by_speaker else "utterance")


def _brute_force_permutation_p(t, a, b, units):
    """Enumerate every swap pattern of the units; p = share with |diff| >= observed."""
    observed = abs(accuracy_score(t, a) - accuracy_score(t, b))
    unit_ids = np.unique(units)
    diffs = []
    for pattern in itertools.product([False, True], repeat=len(unit_ids)):
        swap = np.isin(units, unit_ids[list(pattern)])
        aa, bb = np.where(swap, b, a), np.where(swap, a, b)
        diffs.append(abs(accuracy_score(t, aa) - accuracy_score(t, bb)))
    return np.mean(np.array(diffs) >= observed - 1e-12)


@pytest.mark.parametrize("by_speaker", [False, True])
def test_exact_permutation_test_matches_enumeration(by_speaker):
    t = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    a = np.array([0, 1, 2, 3, 0, 1, 0, 0])
    b = np.array([0, 0, 0, 3, 1, 1, 0, 0])
    speakers = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    merged = categorical_merged(t, {"a": a, "b": b}, speakers=speakers)
    res = paired_test(merged, "a", "b", "accuracy", n_boot=1000, method="permutation",
                      by_speaker=by_speaker)
    units = speakers if by_speaker else np.arange(8)
    assert res["p_value"] == pytest.approx(_brute_force_permutation_p(t, a, b, units), abs=1e-12)
    assert res["diff"] == pytest.approx(6 / 8 - 3 / 8)


def test_paired_test_rejects_bad_requests():
    t = np.array([0, 1, 2, 3])
    merged = categorical_merged(t, {"a": t, "b": t})
    with pytest.raises(ValueError, match="method"):
        paired_test(merged, "a", "b", "macro_f1", method="wilcoxon")
    with pytest.raises(ValueError, match="task"):
        paired_test(merged, "a", "b", "ccc_mean")
    with pytest.raises(ValueError, match="not in the merged"):
        paired_test(merged, "a", "zzz", "macro_f1")



# --------------------------------------------------------------------------- Resampling settings

def test_resampling_settings_validate_resolve_and_accept_the_older_keywords():
    from ser_diag.resampling import Resampling, cluster_ids, permutation_p_value
    r = Resampling()
    assert (r.n_boot, r.level, r.unit, r.seed, r.ddof) == (1000, 0.95, "auto", 0, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_boot = 5
    for bad in (dict(n_boot=-1), dict(level=1.5), dict(level=0), dict(unit="files"), dict(ddof=-1)):
        with pytest.raises(ValueError):
            Resampling(**bad)
    assert r.unit_for(pd.Series([None, 3], dtype="Int64")) == "speaker"
    assert r.unit_for(pd.Series([None, None], dtype="Int64")) == "utterance"
    assert r.unit_for(None) == "utterance"
    assert Resampling(unit="utterance").unit_for(pd.Series([1, 2])) == "utterance"
    with pytest.raises(ValueError):
        Resampling(unit="speaker").unit_for(None)
    assert Resampling.of(r, by_speaker=False).unit == "utterance"
    assert Resampling.of(None, n_boot=7, seed=3, ddof=1) == Resampling(n_boot=7, seed=3, ddof=1)
    with pytest.raises(TypeError):
        Resampling.of(r, nboot=3)
    assert cluster_ids(pd.array([7, 7, None, 3, None], dtype="Int64")).tolist() == [0, 0, 2, 1, 3]
    assert permutation_p_value([0.1, -0.3, 0.5, 0.0], 0.3) == pytest.approx(3 / 5)
    assert permutation_p_value([0.1, -0.3, 0.5, 0.0], 0.3, exact=True) == pytest.approx(2 / 4)
    assert np.isnan(permutation_p_value([np.nan], 0.3))


def test_default_unit_is_speaker_when_speakers_are_known_and_named_per_system():
    rng = np.random.default_rng(2)
    n = 300
    t = rng.integers(0, 8, n)
    merged = categorical_merged(t, {"a": t, "b": rng.integers(0, 8, n)}, speakers=np.arange(n) % 30)
    table = bootstrap_metrics(merged, n_boot=20)
    assert set(table["unit"]) == {"speaker"}
    none = merged.assign(SpkrID=pd.array([pd.NA] * len(merged), dtype="Int64"))
    none.attrs = dict(merged.attrs)
    assert set(bootstrap_metrics(none, n_boot=20)["unit"]) == {"utterance"}
    # speaker resampling with every speaker unknown: each utterance is its own cluster
    forced = bootstrap_metrics(none, resampling.Resampling(n_boot=20, unit="speaker"))
    utter = bootstrap_metrics(none, resampling.Resampling(n_boot=20, unit="utterance"))
    np.testing.assert_array_equal(forced["ci_low"], utter["ci_low"])


def test_weight_cache_serves_only_its_own_thread():
    """The explorer computes in a background thread while the main thread may be inside
    shared_weights: the other thread must draw its own weights (same numbers) and never see
    or corrupt the cache."""
    import threading
    expected = bootstrap_weights(200, 64, seed=9)
    seen = {}

    def worker():
        seen["cache"] = draws._active_cache()
        seen["weights"] = np.concatenate(list(resampling._weight_chunks(200, 64, seed=9)))

    with resampling.shared_weights():
        first = np.concatenate(list(resampling._weight_chunks(200, 64, seed=9)))
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert len(draws._cache.entries) == 1
    assert seen["cache"] is None
    np.testing.assert_array_equal(seen["weights"], expected)
    np.testing.assert_array_equal(first, expected)


def test_huge_weight_matrices_are_never_cached():
    with resampling.shared_weights(max_bytes=1000):
        chunks = list(resampling._weight_chunks(100, 50, seed=1))     # 50 x 100 float32 = 20 kB
        assert not draws._cache.entries
    np.testing.assert_array_equal(np.concatenate(chunks), bootstrap_weights(100, 50, seed=1))


def test_cached_speaker_weights_equal_fresh_draws_and_stay_small():
    groups = pd.array(np.repeat(np.arange(50), 40), dtype="Int64")       # 2000 rows, 50 speakers
    fresh = np.concatenate(list(resampling._weight_chunks(2000, 300, groups=groups, seed=4)))
    with resampling.shared_weights():
        cached = np.concatenate(list(resampling._weight_chunks(2000, 300, groups=groups, seed=4)))
        again = np.concatenate(list(resampling._weight_chunks(2000, 300, groups=groups, seed=4)))
        (matrix,) = draws._cache.entries.values()
        assert matrix.shape == (300, 50)                                # cluster-level counts only
    np.testing.assert_array_equal(cached, fresh)
    np.testing.assert_array_equal(again, fresh)


def test_cached_counts_are_one_byte_unless_a_count_passes_255(monkeypatch):
    """The cache keeps the draws as uint8 (a quarter of float32's memory); a count above 255
    switches that matrix to float32, so every chunk still carries the exact counts."""
    groups = pd.array(np.repeat(np.arange(50), 4), dtype="Int64")
    with resampling.shared_weights():
        fresh = np.concatenate(list(resampling._weight_chunks(200, 64, groups=groups, seed=3, clusters=True)))
        (matrix,) = draws._cache.entries.values()
        assert matrix.dtype == np.uint8
    drawn = draws._draw_chunks

    def with_a_big_count(n, n_boot, mapping, m, seed, chunk, dtype, reuse):
        for i, counts in enumerate(drawn(n, n_boot, mapping, m, seed, chunk, dtype, reuse)):
            counts = counts.copy()
            counts[0, 0] += 300 * (i == 1)                             # the second chunk only
            yield counts

    monkeypatch.setattr(draws, "_draw_chunks", with_a_big_count)
    monkeypatch.setattr(draws, "CHUNK_ROWS", 16)
    with resampling.shared_weights():
        got = np.concatenate(list(resampling._weight_chunks(200, 64, groups=groups, seed=3, clusters=True)))
        (matrix,) = draws._cache.entries.values()
        assert matrix.dtype == np.float32
    expected = fresh.copy()
    expected[16, 0] += 300
    np.testing.assert_array_equal(got, expected)


def test_speaker_resamples_scored_per_speaker_equal_row_weights():
    """bootstrap_metrics scores speaker resamples on per-speaker sums (no weights expanded to
    rows): categorical counts bit-identical, CCC moments equal up to rounding."""
    from ser_diag import resampling as rs

    rng = np.random.default_rng(5)
    n, n_boot = 600, 120
    speakers = pd.array(np.where(rng.random(n) < 0.05, None, rng.integers(0, 70, n)), dtype="Int64")
    true_idx, pred_idx = rng.integers(0, 8, n), rng.integers(0, 8, (3, n))
    x, y = rng.normal(4, 1, (n, 3)), rng.normal(4, 1, (2, n, 3))
    for scorer, exact in ((rs._CategoricalScorer(true_idx, pred_idx), True), (rs._AttributeScorer(x, y), False)):
        w = bootstrap_weights(n, n_boot, groups=speakers, seed=3)
        by_rows = scorer(w)
        settings = rs.Resampling(n_boot=n_boot, seed=3)
        kept = {}
        rs.scorer_metrics(scorer, [f"s{i}" for i in range(scorer.s)], pd.Series(speakers), "speaker", settings, kept)
        for metric, values in by_rows.items():
            if exact:
                np.testing.assert_array_equal(kept["distribution"][metric], values)
            else:
                np.testing.assert_allclose(kept["distribution"][metric], values, rtol=1e-12, atol=1e-14)


def test_wide_linear_statistic_is_scored_in_blocks_with_the_same_numbers(monkeypatch):
    """A statistic with many sums per resample is finished a block of resamples at a time
    (bounded memory) and gives what one pass gives."""
    import scipy.sparse

    from ser_diag import resampling as rs
    rng = np.random.default_rng(0)
    n, width = 300, 4000
    design = scipy.sparse.random(n, width, density=0.01, random_state=1, format="csr") + 0.0
    calls = []

    def finish(sums):
        calls.append(len(sums))
        return {"total": sums.sum(axis=1), "max": sums.max(axis=1), "first": sums[:, :3]}

    statistic = rs.LinearStatistic.of_design(design, finish)
    w = rng.poisson(1.0, (50, n)).astype(np.float64)
    whole = statistic.finish(np.asarray(w @ design))
    monkeypatch.setattr(rs.scorers, "SUMS_BLOCK_BYTES", 8 * width * 7)   # 7 resamples at a time
    calls.clear()
    blocked = statistic(w)
    assert calls == [7] * 7 + [1]
    for name in whole:
        np.testing.assert_allclose(blocked[name], whole[name], rtol=1e-12)
    clustered = statistic.clustered(np.repeat(np.arange(100), 3), 100)
    counts = rng.poisson(1.0, (20, 100)).astype(np.float64)
    calls.clear()
    np.testing.assert_allclose(clustered(counts)["total"], (np.repeat(counts, 3, axis=1) @ design).sum(axis=1),
                               rtol=1e-12)
    assert calls == [7, 7, 6]
