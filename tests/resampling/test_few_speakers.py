"""Few speakers (issue 22, item 4): IEMOCAP and EmoDB have 10 speakers, where speaker-bootstrap
intervals are liberal (measured: ``bench/bench_calibration.py --speakers 10 20 40``) while
permutation tests stay valid. So at few speakers

* the gender-gap permutation test enumerates every arrangement of the speakers' gender when
  there are at most ``n_permutations`` of them (10 speakers, 5 + 5: 252), giving the exact
  p-value, checked here against a brute-force enumeration written independently;
* the paired sign-flip test between two systems enumerates every swap pattern (exact) at 10
  speakers with the default 1000 resamples, checked against all 2^10 patterns;
* speaker intervals over fewer than ``FEW_SPEAKERS`` speakers carry a note in
  ``.attrs["notes"]`` naming the valid test instead; at 200 speakers there is none.

Seconds, not minutes: small worlds of :func:`ser_diag.simulate.speaker_null_frames`.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score

from ser_diag.analysis.bias import group_audit, group_gaps, group_metrics
from ser_diag.resampling import FEW_SPEAKERS, Resampling, bootstrap_metrics, paired_test, widen_interval
from ser_diag.schema import ATTRIBUTES
from ser_diag.simulate import speaker_null_frames


def small_world(n_speakers: int, seed: int = 3) -> dict:
    return speaker_null_frames(seed, n_speakers=n_speakers, speaker_size_log_mean=1.0)


def ccc(x, y):
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def speaker_gender(frame: pd.DataFrame) -> pd.Series:
    """Each speaker's gender from its known rows (one row has an unknown gender)."""
    return frame.dropna(subset=["Gender"]).groupby("SpkrID")["Gender"].first()


def brute_force_gap_p(frame: pd.DataFrame, gap) -> tuple[float, int]:
    """Every choice of which speakers are "Female" (as many as there are): the share of
    arrangements whose |gap| is at least the observed one."""
    gender = speaker_gender(frame)
    speakers = gender.index.to_numpy()
    n_female = int((gender == "Female").sum())
    spk = frame["SpkrID"].to_numpy()
    observed = gap(np.isin(spk, speakers[gender.to_numpy() == "Female"]))
    null = [gap(np.isin(spk, speakers[list(chosen)]))
            for chosen in itertools.combinations(range(speakers.size), n_female)]
    return float(np.mean(np.abs(null) >= abs(observed) - 1e-12)), len(null)


def test_gender_gap_permutation_is_exact_at_10_speakers():
    data = small_world(10)
    cat, att = data["categorical"], data["attributes"]

    def accuracy_gap(female):
        t, p = cat["EmoClass_true"].to_numpy(), cat["EmoClass_pred"].to_numpy()
        return accuracy_score(t[female], p[female]) - accuracy_score(t[~female], p[~female])

    def ccc_gap(female):
        return np.mean([ccc(att[f"{a}_true"].to_numpy()[female], att[f"{a}_pred"].to_numpy()[female])
                        - ccc(att[f"{a}_true"].to_numpy()[~female], att[f"{a}_pred"].to_numpy()[~female])
                        for a in ATTRIBUTES])

    for frame, metric, gap in ((cat, "accuracy", accuracy_gap), (att, "ccc_mean", ccc_gap)):
        expected, arrangements = brute_force_gap_p(frame, gap)
        assert arrangements == math.comb(10, 5) == 252
        row = group_gaps(frame, resampling=Resampling(n_boot=50), n_permutations=1000).set_index("metric").loc[metric]
        assert row["method"] == "exact speaker permutation" and row["n_permutations"] == 252
        assert row["p_value"] == pytest.approx(expected, abs=1e-12), metric
        # the exact p-value does not depend on the seed, the random one does not claim exactness
        again = group_gaps(frame, resampling=Resampling(n_boot=50, seed=9), n_permutations=1000)
        assert again.set_index("metric").at[metric, "p_value"] == row["p_value"]
        fewer = group_gaps(frame, resampling=Resampling(n_boot=50), n_permutations=200).set_index("metric")
        assert fewer.at[metric, "method"] == "speaker permutation" and fewer.at[metric, "n_permutations"] == 200


def test_paired_permutation_test_is_exact_at_10_speakers_with_default_resamples():
    data = small_world(10)
    one = data["attributes"].assign(system="a")
    rng = np.random.default_rng(0)
    other = one.assign(system="b")
    for a in ATTRIBUTES:
        other[f"{a}_pred"] = one[f"{a}_pred"].to_numpy() + rng.normal(0, 0.3, len(one))
    merged = pd.concat([one, other], ignore_index=True)
    merged.attrs = dict(one.attrs)
    result = paired_test(merged, "a", "b", "ccc_mean", Resampling(), method="permutation")
    assert result["exact"] and result["unit"] == "speaker"

    t = {a: one[f"{a}_true"].to_numpy() for a in ATTRIBUTES}
    pa = {a: one[f"{a}_pred"].to_numpy() for a in ATTRIBUTES}
    pb = {a: other[f"{a}_pred"].to_numpy() for a in ATTRIBUTES}
    spk = one["SpkrID"].to_numpy()
    speakers = np.unique(spk)

    def diff(swap):
        return np.mean([ccc(t[a], np.where(swap, pb[a], pa[a])) - ccc(t[a], np.where(swap, pa[a], pb[a]))
                        for a in ATTRIBUTES])
    observed = diff(np.zeros(len(one), bool))
    null = [diff(np.isin(spk, speakers[list(pattern)]))
            for pattern in itertools.product([False, True], repeat=speakers.size)]   # all 2^10
    assert len(null) == 1024
    assert result["diff"] == pytest.approx(observed, abs=1e-12)
    assert result["p_value"] == pytest.approx(np.mean(np.abs(null) >= abs(observed) - 1e-12), abs=1e-12)
    # beyond 2^(units - 1) > n_boot the test draws random sign flips, and says so
    assert not paired_test(merged, "a", "b", "ccc_mean", Resampling(n_boot=100), method="permutation")["exact"]


def test_few_speaker_note_at_10_speakers_and_none_at_200():
    assert 10 < FEW_SPEAKERS <= 200
    for n_speakers, noted in ((10, True), (200, False)):
        data = small_world(n_speakers)
        settings = Resampling(n_boot=20)
        for task in ("categorical", "attributes"):
            table = bootstrap_metrics(data[task], settings)
            by_group, gaps = group_audit(data[task], resampling=settings, n_permutations=20)
            metrics_only = group_metrics(data[task], resampling=settings)
            for frame in (table, by_group, gaps, metrics_only):
                notes = frame.attrs["notes"]
                assert bool(notes) is noted, (n_speakers, task, notes)
            if noted:
                assert f"rest on {n_speakers} speakers" in table.attrs["notes"][0]
                assert "paired_test(method='permutation')" in table.attrs["notes"][0]
                assert "5 Female and 5 Male speakers" in gaps.attrs["notes"][0]
                assert "permutation p-value instead" in gaps.attrs["notes"][0]
    # utterance resampling of the same 10 speakers is another question: no speaker note
    table = bootstrap_metrics(small_world(10)["categorical"], Resampling(n_boot=20, unit="utterance"))
    assert table.attrs["notes"] == []


def test_widen_interval_is_the_t_and_cluster_factor():
    from scipy import stats
    lo, hi = widen_interval(0.5, 0.4, 0.7, 10)
    c = stats.t.ppf(0.975, 9) / stats.norm.ppf(0.975) * np.sqrt(10 / 9)
    assert (lo, hi) == pytest.approx((0.5 - 0.1 * c, 0.5 + 0.2 * c))
    assert np.isnan(widen_interval(0.5, 0.4, 0.7, 1)[0])
    low, high = widen_interval(np.zeros((2, 3)), -np.ones((2, 3)), np.ones((2, 3)), 1)   # one speaker a group
    assert low.shape == high.shape == (2, 3) and np.isnan(low).all() and np.isnan(high).all()


def test_gap_interval_is_the_percentile_interval_widened_by_the_smaller_group():
    """The speaker gap interval = the plain percentile interval of the bootstrap gaps (same
    draws: the utterance-free recomputation below), stretched about the gap by widen_interval
    at G = the smaller group's speakers; an utterance interval is not stretched."""
    from ser_diag.resampling import cluster_scorer, percentile_interval
    from ser_diag.resampling.draws import _weight_chunks
    from ser_diag.analysis import bias

    data = small_world(12)["attributes"]
    settings = Resampling(n_boot=200, seed=4)
    gaps = group_gaps(data, resampling=settings, n_permutations=10).set_index("metric")
    frame = bias.system_frames(data)["sys"]
    labels = bias.resolve_groups(frame, "Gender").labels
    groups = sorted(labels.dropna().unique().tolist())
    group = bias._group_index(labels, groups)
    sums = bias._GroupedSums([frame], "attributes", 0)
    statistic = bias._GroupStatistic(sums, group, len(groups))
    clusters, unit = settings.groups(frame)
    assert unit == "speaker"
    scorer, per_cluster = cluster_scorer(statistic, clusters, len(frame))
    dist = np.concatenate([scorer(w) for w in _weight_chunks(len(frame), 200, clusters, 4, dtype=sums.weight_dtype,
                                                              reuse=True, clusters=per_cluster)])
    ia, ib = groups.index("Female"), groups.index("Male")
    names = bias.task_metric_names("attributes")
    j = names.index("ccc_mean")
    lo, hi = percentile_interval(dist[:, 0, ia, j] - dist[:, 0, ib, j], 0.95)
    fewer = min(np.unique(clusters[group == ia]).size, np.unique(clusters[group == ib]).size)
    gap = gaps.at["ccc_mean", "gap"]
    assert (gaps.at["ccc_mean", "ci_low"], gaps.at["ccc_mean", "ci_high"]) == pytest.approx(
        widen_interval(gap, lo, hi, fewer), abs=1e-9)
    assert gaps.at["ccc_mean", "ci_high"] - gaps.at["ccc_mean", "ci_low"] > hi - lo   # wider, not moved
    by_utterance = group_gaps(data, resampling=Resampling(n_boot=200, seed=4, unit="utterance"),
                              n_permutations=10).set_index("metric")
    assert by_utterance.at["ccc_mean", "unit"] == "utterance"


def test_paired_bootstrap_p_at_few_speakers_carries_a_note_naming_the_permutation_test():
    data = small_world(10)["categorical"]
    other = data.assign(system="b", EmoClass_pred=np.roll(data["EmoClass_pred"].to_numpy(), 3))
    merged = pd.concat([data.assign(system="a"), other], ignore_index=True)
    merged.attrs = dict(data.attrs)
    boot = paired_test(merged, "a", "b", "macro_f1", Resampling(n_boot=600), method="bootstrap")
    assert "rest on 10 speakers" in boot["note"] and "method='permutation') (exact here)" in boot["note"]
    perm = paired_test(merged, "a", "b", "macro_f1", Resampling(n_boot=600), method="permutation")
    assert "holds its size" in perm["note"]
    many = small_world(200)["categorical"]
    merged = pd.concat([many.assign(system="a"), many.assign(system="b")], ignore_index=True)
    merged.attrs = dict(many.attrs)
    assert paired_test(merged, "a", "b", "macro_f1", Resampling(n_boot=20))["note"] is None
    assert paired_test(merged, "a", "b", "macro_f1", Resampling(n_boot=20, unit="utterance"))["note"] is None
