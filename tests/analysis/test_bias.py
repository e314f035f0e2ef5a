"""Bias audit (issue 3, analysis 4): group metrics, gaps, per-class recall, speakers."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from ser_diag import metrics, resampling
from ser_diag.analysis.bias import (
    cluster_ids,
    group_audit,
    group_gaps,
    group_metrics,
    metric_frame,
    per_class_recall_by_group,
    speaker_metrics,
    worst_speakers,
)
from ser_diag.schema import ATTRIBUTES, CLASS_CODES

CODES = np.array(CLASS_CODES)


def _frame(system, spk, gender, extra=None):
    n = len(spk)
    frame = pd.DataFrame({"system": system, "FileName": [f"MSP-PODCAST_{i:05d}.wav" for i in range(n)],
                          "SpkrID": pd.array(spk, dtype="Int64"), "Gender": gender,
                          "Split_Set": "Development"})
    for name, values in (extra or {}).items():
        frame[name] = values
    return frame


def _finish(frames, task):
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task=task, synthetic=True)
    return merged


def speakers_and_gender(n_speakers, per_speaker):
    spk = np.repeat(np.arange(n_speakers), per_speaker)
    gender = np.where(spk % 2 == 0, "Female", "Male").astype(object)
    return spk, gender


def code_index(codes):
    return np.array([CLASS_CODES.index(c) for c in codes])


def noisy_classes(rng, true, p_correct):
    """Correct with probability p_correct, else a uniformly drawn *other* class, so the
    expected accuracy (and every class recall) is exactly p_correct."""
    wrong = (code_index(true) + rng.integers(1, len(CODES), true.size)) % len(CODES)
    return np.where(rng.random(true.size) < p_correct, true, CODES[wrong])


def categorical_merged(p_female, p_male, n_speakers=120, per_speaker=25, seed=0, systems=("sys",)):
    rng = np.random.default_rng(seed)
    spk, gender = speakers_and_gender(n_speakers, per_speaker)
    true = rng.choice(CODES, spk.size)
    p = np.where(gender == "Female", p_female, p_male)
    frames = []
    for system in systems:
        extra = {"EmoClass_true": true, "EmoClass_pred": noisy_classes(rng, true, p)}
        frames.append(_frame(system, spk, gender, extra))
    return _finish(frames, "categorical")


def attribute_merged(noise_female, noise_male, n_speakers=200, per_speaker=40, seed=1,
                     speaker_offset=0.0, systems=("sys",)):
    """true ~ N(4, 1) iid; pred = true + speaker offset + noise (sd by gender). Without the
    offset, the population CCC is 2 / (2 + noise^2) and sd_pred / sd_true = sqrt(1 + noise^2)."""
    rng = np.random.default_rng(seed)
    spk, gender = speakers_and_gender(n_speakers, per_speaker)
    true = rng.normal(4.0, 1.0, (spk.size, 3))
    sd = np.where(gender == "Female", noise_female, noise_male)[:, None]
    frames = []
    for system in systems:
        offset = rng.normal(0.0, speaker_offset, (n_speakers, 3))[spk]
        pred = true + offset + sd * rng.normal(size=true.shape)
        extra = {}
        for j, a in enumerate(ATTRIBUTES):
            extra[f"{a}_true"], extra[f"{a}_pred"] = true[:, j], pred[:, j]
        frames.append(_frame(system, spk, gender, extra))
    return _finish(frames, "attributes")


def mirrored(merged):
    """Female rows copied as male rows (new speakers and files): identical quality by design."""
    female = merged[merged["Gender"] == "Female"].copy()
    male = female.copy()
    male["Gender"] = "Male"
    male["SpkrID"] = male["SpkrID"] + 10_000
    female_files = female["FileName"].str.replace(".wav", "_f.wav")
    male["FileName"] = female["FileName"].str.replace(".wav", "_m.wav")
    female["FileName"] = female_files
    out = pd.concat([female, male], ignore_index=True).sort_values(["system", "FileName"], kind="stable")
    out = out.reset_index(drop=True)
    out.attrs = dict(merged.attrs)
    return out


def ccc_numpy(x, y):
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def row(table, **where):
    mask = np.ones(len(table), bool)
    for k, v in where.items():
        mask &= (table[k] == v).to_numpy()
    assert mask.sum() == 1, where
    return table[mask].iloc[0]


# --------------------------------------------------------------------------- planted gaps

def test_planted_ccc_gap_is_recovered_with_speaker_ci():
    merged = attribute_merged(noise_female=1.0, noise_male=0.5)
    gaps = group_gaps(merged, n_boot=300, by_speaker=True, n_permutations=300, seed=0)
    planted = {"ccc": 2 / (2 + 1.0) - 2 / (2 + 0.25),
               "shrinkage": np.sqrt(1 + 1.0) - np.sqrt(1 + 0.25)}
    for attr in ATTRIBUTES:
        r = row(gaps, metric=f"ccc_{attr}")
        assert r["ci_high"] < 0, "female predictions are noisier: the gap must be negative"
        assert r["ci_low"] <= planted["ccc"] <= r["ci_high"]
        assert r["p_value"] < 0.01
        assert r["unit"] == "speaker" and r["method"] == "speaker permutation"
        r = row(gaps, metric=f"shrinkage_{attr}")
        assert r["ci_low"] <= planted["shrinkage"] <= r["ci_high"]
    r = row(gaps, metric="ccc_mean")
    assert r["ci_low"] <= planted["ccc"] <= r["ci_high"] < 0


def test_planted_accuracy_gap_is_recovered():
    merged = categorical_merged(p_female=0.45, p_male=0.65)
    gaps = group_gaps(merged, n_boot=300, by_speaker=True, n_permutations=300, seed=0)
    for metric in ("accuracy", "uar"):
        r = row(gaps, metric=metric)
        assert r["ci_low"] <= -0.20 <= r["ci_high"] < 0
        assert r["p_value"] < 0.01
    r = row(gaps, metric="macro_f1")
    assert r["ci_high"] < 0
    # estimate_a / estimate_b agree with group_metrics
    table = group_metrics(merged, n_boot=50)
    assert np.isclose(r["estimate_a"], row(table, group="Female", metric="macro_f1")["estimate"])
    assert np.isclose(r["estimate_b"], row(table, group="Male", metric="macro_f1")["estimate"])


@pytest.mark.parametrize("make", [lambda: categorical_merged(0.5, 0.5, n_speakers=60),
                                  lambda: attribute_merged(0.7, 0.7, n_speakers=60, per_speaker=20)])
def test_identical_quality_gives_gap_ci_around_zero(make):
    merged = mirrored(make())
    gaps = group_gaps(merged, n_boot=200, by_speaker=True, n_permutations=200, seed=3)
    gaps = gaps[~gaps["metric"].str.startswith("bias_")]
    assert np.allclose(gaps["gap"], 0.0, atol=1e-9)
    assert (gaps["ci_low"] <= 1e-9).all() and (gaps["ci_high"] >= -1e-9).all()
    assert (gaps["ci_high"] - gaps["ci_low"] > 0).any()
    assert (gaps["p_value"] > 0.5).all()


# --------------------------------------------------------------------------- group metrics

def test_group_metrics_agree_with_fairlearn_metricframe_and_sklearn():
    merged = categorical_merged(0.4, 0.6, n_speakers=40, per_speaker=20, systems=("x", "y"))
    table = group_metrics(merged, n_boot=100)
    assert set(table["metric"]) == {"macro_f1", "accuracy", "uar"} | {f"recall_{c}" for c in CLASS_CODES}
    for system, rows in merged.groupby("system"):
        independent = MetricFrame(
            metrics={"macro_f1": lambda t, p: f1_score(t, p, labels=list(CLASS_CODES), average="macro",
                                                       zero_division=0),
                     "accuracy": accuracy_score, "uar": balanced_accuracy_score},
            y_true=rows["EmoClass_true"].to_numpy(str), y_pred=rows["EmoClass_pred"].to_numpy(str),
            sensitive_features=rows["Gender"].to_numpy(str))
        ours = metric_frame(merged, system=system).by_group
        for group in ("Female", "Male"):
            for metric in ("macro_f1", "accuracy", "uar"):
                expected = independent.by_group.loc[group, metric]
                assert np.isclose(row(table, system=system, group=group, metric=metric)["estimate"], expected)
                assert np.isclose(ours.loc[group, metric], expected)
            sub = rows[rows["Gender"] == group]
            recalls = recall_score(sub["EmoClass_true"], sub["EmoClass_pred"], labels=list(CLASS_CODES),
                                   average=None, zero_division=0)
            for code, expected in zip(CLASS_CODES, recalls):
                assert np.isclose(row(table, system=system, group=group, metric=f"recall_{code}")["estimate"],
                                  expected)
            r = row(table, system=system, group=group, metric="accuracy")
            assert r["n"] == len(sub) and r["n_speakers"] == sub["SpkrID"].nunique()
    assert (table["ci_low"] <= table["estimate"] + 1e-12).all()
    assert (table["estimate"] <= table["ci_high"] + 1e-12).all()


def test_attribute_group_metrics_match_numpy():
    merged = attribute_merged(0.8, 0.4, n_speakers=30, per_speaker=10)
    table = group_metrics(merged, n_boot=50)
    for group in ("Female", "Male"):
        sub = merged[merged["Gender"] == group]
        cccs = []
        for a in ATTRIBUTES:
            t, p = sub[f"{a}_true"].to_numpy(), sub[f"{a}_pred"].to_numpy()
            cccs.append(ccc_numpy(t, p))
            assert np.isclose(row(table, group=group, metric=f"ccc_{a}")["estimate"], cccs[-1])
            assert np.isclose(row(table, group=group, metric=f"bias_{a}")["estimate"], p.mean() - t.mean())
            assert np.isclose(row(table, group=group, metric=f"shrinkage_{a}")["estimate"], p.std() / t.std())
        assert np.isclose(row(table, group=group, metric="ccc_mean")["estimate"], np.mean(cccs))


def test_speaker_bootstrap_is_wider_under_speaker_clustering():
    merged = attribute_merged(0.3, 0.3, n_speakers=40, per_speaker=50, speaker_offset=0.8)
    utt = group_metrics(merged, n_boot=300, by_speaker=False)
    spk = group_metrics(merged, n_boot=300, by_speaker=True)
    for group in ("Female", "Male"):
        w_utt = row(utt, group=group, metric="ccc_mean")
        w_spk = row(spk, group=group, metric="ccc_mean")
        assert w_spk["unit"] == "speaker" and w_utt["unit"] == "utterance"
        assert (w_spk["ci_high"] - w_spk["ci_low"]) > 2 * (w_utt["ci_high"] - w_utt["ci_low"])


def test_missing_group_labels_are_left_out_and_any_column_works():
    merged = categorical_merged(0.5, 0.7, n_speakers=30, per_speaker=10)
    rng = np.random.default_rng(0)
    merged["Age"] = np.where(rng.random(len(merged)) < 0.5, "young", "old")
    with_na = merged.copy()
    with_na.loc[:49, "Gender"] = pd.NA
    base = group_metrics(with_na.iloc[50:].reset_index(drop=True).pipe(lambda f: f.__finalize__(merged)),
                         n_boot=0)
    full = group_metrics(with_na, n_boot=0)
    assert set(full["group"]) == {"Female", "Male"}
    np.testing.assert_allclose(full["estimate"], base["estimate"])
    by_age = group_gaps(merged, by="Age", a="young", b="old", n_boot=50, n_permutations=50)
    assert (by_age["method"] == "utterance permutation").all()
    sub = merged[merged["Age"] == "young"]
    assert np.isclose(row(by_age, metric="accuracy")["estimate_a"],
                      accuracy_score(sub["EmoClass_true"], sub["EmoClass_pred"]))
    with pytest.raises(ValueError, match="not found"):
        group_gaps(merged, a="female", n_boot=10, n_permutations=10)
    with pytest.raises(ValueError, match="not in the merged frame"):
        group_metrics(merged, by="Dialect", n_boot=10)


def test_per_class_recall_by_group_matches_sklearn():
    merged = categorical_merged(0.4, 0.7, n_speakers=30, per_speaker=20)
    table = per_class_recall_by_group(merged, n_boot=50)
    assert list(table.columns) == ["system", "by", "group", "class", "recall", "ci_low", "ci_high", "unit", "support"]
    for group in ("Female", "Male"):
        sub = merged[merged["Gender"] == group]
        expected = recall_score(sub["EmoClass_true"], sub["EmoClass_pred"], labels=list(CLASS_CODES),
                                average=None, zero_division=0)
        got = table[table["group"] == group].set_index("class").loc[list(CLASS_CODES)]
        np.testing.assert_allclose(got["recall"], expected)
        np.testing.assert_array_equal(got["support"],
                                      sub["EmoClass_true"].value_counts().reindex(list(CLASS_CODES), fill_value=0))


# --------------------------------------------------------------------------- speakers

def test_speaker_metrics_and_planted_worst_speakers():
    merged = categorical_merged(0.8, 0.8, n_speakers=30, per_speaker=12, seed=5)
    bad = [3, 8, 21]
    rows = merged["SpkrID"].isin(bad).to_numpy()
    true = merged.loc[rows, "EmoClass_true"].to_numpy(str)
    merged.loc[rows, "EmoClass_pred"] = CODES[(code_index(true) + 1) % len(CODES)]
    small = merged["SpkrID"] == 29
    merged = merged[~(small & (merged.groupby("SpkrID").cumcount() >= 4))].reset_index(drop=True)
    merged.attrs.update(task="categorical")
    table = speaker_metrics(merged, min_utterances=10)
    assert 29 not in set(table["SpkrID"]) and table.attrs["min_utterances"] == 10
    for spk, sub in merged[merged["SpkrID"] != 29].groupby("SpkrID"):
        acc = row(table, SpkrID=spk, metric="accuracy")
        assert np.isclose(acc["estimate"], accuracy_score(sub["EmoClass_true"], sub["EmoClass_pred"]))
        assert acc["Gender"] == ("Female" if spk % 2 == 0 else "Male") and acc["n_utterances"] == 12
        assert np.isclose(row(table, SpkrID=spk, metric="macro_f1")["estimate"],
                          f1_score(sub["EmoClass_true"], sub["EmoClass_pred"], average="macro", zero_division=0))
    worst = worst_speakers(merged, n=3, min_utterances=10)
    assert sorted(worst["SpkrID"]) == bad and (worst["estimate"] == 0).all()
    assert list(worst["rank"]) == [1, 2, 3]
    assert worst_speakers(table, n=3).equals(worst)


def test_speaker_ccc_and_bias_for_attributes():
    merged = attribute_merged(0.5, 0.5, n_speakers=10, per_speaker=15)
    merged.loc[merged["SpkrID"] == 4, "EmoVal_pred"] += 1.5
    table = speaker_metrics(merged, min_utterances=5)
    sub = merged[merged["SpkrID"] == 4]
    assert np.isclose(row(table, SpkrID=4, metric="bias_EmoVal")["estimate"],
                      (sub["EmoVal_pred"] - sub["EmoVal_true"]).mean())
    assert np.isclose(row(table, SpkrID=4, metric="ccc_EmoVal")["estimate"],
                      ccc_numpy(sub["EmoVal_true"].to_numpy(), sub["EmoVal_pred"].to_numpy()))
    worst = worst_speakers(table, n=1, metric="ccc_EmoVal")
    assert worst["SpkrID"].tolist() == [4]


# --------------------------------------------------------------------------- vectorised == per-system path

def _reference_statistic(frame, task, mask, ddof):
    """One system's metrics on ``weights * mask`` from the public single-system building blocks
    (the per-system, per-group path the vectorised audit replaces)."""
    if task == "categorical":
        base = resampling.categorical_statistics(metrics.label_indices(frame["EmoClass_true"].to_numpy()),
                                                 metrics.label_indices(frame["EmoClass_pred"].to_numpy()))

        def statistic(w):
            values = base(np.asarray(w) * mask)
            return {k: np.asarray(values[k], np.float64) for k in
                    ["macro_f1", "accuracy", "uar"] + [f"recall_{c}" for c in CLASS_CODES]}
        return statistic

    def statistic(w):
        w = np.atleast_2d(np.asarray(w, np.float64)) * mask
        out, cccs = {}, []
        for a in ATTRIBUTES:
            m = metrics.weighted_moments(w, frame[f"{a}_true"].to_numpy(float), frame[f"{a}_pred"].to_numpy(float),
                                         ddof=ddof)
            cccs.append(metrics.ccc_from_moments(m))
            out[f"ccc_{a}"], out[f"bias_{a}"] = cccs[-1], m[:, 2] - m[:, 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"shrinkage_{a}"] = np.sqrt(m[:, 4] / m[:, 3])
        out["ccc_mean"] = np.mean(cccs, axis=0)
        return out
    return statistic


def _reference_gaps(merged, task, n_boot, n_permutations, by_speaker, seed, ddof):
    """Per system: bootstrap of both groups on shared weights, and the speaker permutation
    null drawn one ``rng.permutation`` of the speakers' is-female flags at a time."""
    rows = []
    for system, frame in merged.groupby("system", sort=False):
        frame = frame.reset_index(drop=True)
        female = (frame["Gender"] == "Female").to_numpy(np.float64)
        male = (frame["Gender"] == "Male").to_numpy(np.float64)
        stat_f, stat_m = (_reference_statistic(frame, task, m, ddof) for m in (female, male))

        def both(w):
            f, m = stat_f(w), stat_m(w)
            return {**{f"F {k}": v for k, v in f.items()}, **{f"M {k}": v for k, v in m.items()},
                    **{f"gap {k}": f[k] - m[k] for k in f}}
        groups = cluster_ids(frame["SpkrID"]) if by_speaker else None
        boot = resampling.bootstrap(both, len(frame), n_boot=n_boot, groups=groups, seed=seed).set_index("metric")
        speakers = cluster_ids(frame["SpkrID"])
        first = pd.Series(np.arange(len(frame))).groupby(speakers).first().to_numpy()
        label = frame["Gender"].to_numpy(object)[first]
        in_pair = np.isin(label, ["Female", "Male"])         # speakers without a gender stay out
        position = np.full(first.size, -1)
        position[in_pair] = np.arange(in_pair.sum())
        row_position = position[speakers]
        stat_all = _reference_statistic(frame, task, np.ones(len(frame)), ddof)
        rng = np.random.default_rng(seed)
        null = {k: [] for k in stat_f(np.ones((1, len(frame))))}
        for _ in range(n_permutations):
            shuffled = rng.permutation(label[in_pair] == "Female")
            f_rows = np.where(row_position >= 0, shuffled[row_position], False)
            m_rows = np.where(row_position >= 0, ~shuffled[row_position], False)
            f, m = stat_all(f_rows[None].astype(float)), stat_all(m_rows[None].astype(float))
            for k in null:
                null[k].append(float(f[k][0] - m[k][0]))
        for k, values in null.items():
            values = np.array(values)
            gap = boot.at[f"gap {k}", "estimate"]
            p = (1 + np.sum(np.abs(values) >= abs(gap) - 1e-12)) / (1 + values.size)
            gap_low, gap_high = boot.at[f"gap {k}", "ci_low"], boot.at[f"gap {k}", "ci_high"]
            if by_speaker:   # speaker gap intervals: widened for the smaller group's speakers
                fewer = min(np.unique(groups[female > 0]).size, np.unique(groups[male > 0]).size)
                gap_low, gap_high = resampling.widen_interval(gap, gap_low, gap_high, fewer)
            rows.append(dict(system=system, metric=k, estimate_a=boot.at[f"F {k}", "estimate"],
                             estimate_b=boot.at[f"M {k}", "estimate"], gap=gap,
                             ci_low=gap_low, ci_high=gap_high,
                             p_value=p, F_low=boot.at[f"F {k}", "ci_low"], F_high=boot.at[f"F {k}", "ci_high"]))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("task,by_speaker,ddof", [("categorical", False, 0), ("categorical", True, 0),
                                                  ("attributes", False, 1), ("attributes", True, 0)])
def test_vectorised_audit_equals_per_system_per_group_path(task, by_speaker, ddof):
    systems = ("s1", "s2", "s3")
    merged = (categorical_merged(0.45, 0.6, n_speakers=40, per_speaker=12, systems=systems)
              if task == "categorical" else
              attribute_merged(0.8, 0.5, n_speakers=40, per_speaker=12, speaker_offset=0.3, systems=systems))
    merged.loc[merged["SpkrID"] == 3, "Gender"] = None  # a speaker of unknown gender belongs to no group
    table, gaps = group_audit(merged, n_boot=60, n_permutations=40, by_speaker=by_speaker, seed=4, ddof=ddof)
    expected = _reference_gaps(merged, task, 60, 40, by_speaker, 4, ddof)
    got = gaps.set_index(["system", "metric"]).loc[list(zip(expected["system"], expected["metric"]))]
    for column in ("estimate_a", "estimate_b", "gap", "ci_low", "ci_high", "p_value"):
        np.testing.assert_allclose(got[column].to_numpy(float), expected[column].to_numpy(float),
                                   rtol=0, atol=1e-9, equal_nan=True, err_msg=column)
    female = table[table["group"] == "Female"].set_index(["system", "metric"]).loc[got.index]
    for column, ref in (("estimate", "estimate_a"), ("ci_low", "F_low"), ("ci_high", "F_high")):
        np.testing.assert_allclose(female[column].to_numpy(float), expected[ref].to_numpy(float),
                                   rtol=0, atol=1e-9, equal_nan=True, err_msg=column)
    assert set(gaps["method"]) == {"speaker permutation"}
    # the combined call and the two separate ones give the same frames
    pd.testing.assert_frame_equal(table, group_metrics(merged, n_boot=60, by_speaker=by_speaker, seed=4, ddof=ddof))
    pd.testing.assert_frame_equal(gaps, group_gaps(merged, n_boot=60, n_permutations=40, by_speaker=by_speaker,
                                                   seed=4, ddof=ddof))


def test_per_class_recall_reuses_group_metrics_table():
    merged = categorical_merged(0.4, 0.7, n_speakers=30, per_speaker=20, systems=("a", "b"))
    table = group_metrics(merged, n_boot=40, seed=2)
    reused = per_class_recall_by_group(merged, n_boot=40, seed=2, group_table=table)
    pd.testing.assert_frame_equal(reused, per_class_recall_by_group(merged, n_boot=40, seed=2))
    assert len(reused) == 2 * 2 * len(CLASS_CODES)


# --------------------------------------------------------------------------- missing metadata

def test_one_unknown_gender_row_keeps_the_speaker_permutation_and_the_speaker_in_its_group():
    """Issue 9: a known speaker with one Unknown-gender utterance used to switch the test to
    utterance shuffling (nunique(dropna=False)); a speaker whose *first* row is Unknown used to
    leave the null. Now the speaker's gender comes from its known rows: the result equals the
    one on the frame with that row's gender filled in."""
    merged = attribute_merged(0.6, 0.6, n_speakers=40, per_speaker=8, speaker_offset=0.3)
    first_row = merged.index[merged["SpkrID"] == 4][0]            # speaker 4's first row
    another = merged.index[merged["SpkrID"] == 7][3]
    holes = merged.copy()
    holes.loc[[first_row, another], "Gender"] = pd.NA
    kw = dict(n_boot=50, n_permutations=60, seed=1)
    got = group_gaps(holes, **kw)
    want = group_gaps(merged, **kw)
    assert set(got["method"]) == {"speaker permutation"} and set(got["unit"]) == {"speaker"}
    assert (got["n_excluded"] == 0).all()
    for column in ("gap", "ci_low", "ci_high", "p_value"):
        np.testing.assert_allclose(got[column], want[column], rtol=0, atol=1e-12, err_msg=column)


def test_unknown_speakers_and_conflicting_speakers_are_excluded_counted_and_warned():
    merged = categorical_merged(0.5, 0.5, n_speakers=40, per_speaker=10)
    frame = merged.copy()
    frame["SpkrID"] = frame["SpkrID"].astype("Int64")
    unknown = frame.index[frame["SpkrID"] == 5]
    frame.loc[unknown[:4], "Gender"] = pd.NA
    frame.loc[unknown[:4], "SpkrID"] = pd.NA                      # 4 rows: unknown speaker and gender
    conflict = frame.index[frame["SpkrID"] == 6]                   # speaker 6 (Female) says Male once
    frame.loc[conflict[0], "Gender"] = "Male"
    with pytest.warns(UserWarning, match=r"conflicting Gender.*SpkrID 6"):
        gaps = group_gaps(frame, n_boot=20, n_permutations=20)
    assert (gaps["n_excluded"] == 4 + 10).all() and (gaps["n_conflicting_speakers"] == 1).all()
    assert set(gaps["method"]) == {"speaker permutation"}
    keep = frame["SpkrID"].notna() & (frame["SpkrID"] != 6)
    sub = frame[keep.to_numpy()]
    female = sub[sub["Gender"] == "Female"]
    assert np.isclose(row(gaps, metric="accuracy")["estimate_a"],
                      accuracy_score(female["EmoClass_true"], female["EmoClass_pred"]))
    with pytest.warns(UserWarning):
        table = group_metrics(frame, n_boot=0)
    assert (table["n_excluded"] == 14).all()
    assert table.loc[table["group"] == "Female", "n"].iloc[0] == len(female)


def test_string_unknown_gender_is_missing_and_default_unit_is_speaker():
    merged = categorical_merged(0.5, 0.5, n_speakers=20, per_speaker=10)
    merged.loc[merged["SpkrID"] == 3, "Gender"] = "Unknown"
    gaps = group_gaps(merged, n_boot=20, n_permutations=20)
    assert set(gaps["unit"]) == {"speaker"} and (gaps["n_excluded"] == 10).all()
    no_ids = merged.assign(SpkrID=pd.array([pd.NA] * len(merged), dtype="Int64"))
    gaps = group_gaps(no_ids, n_boot=20, n_permutations=20)
    assert set(gaps["unit"]) == {"utterance"} and set(gaps["method"]) == {"utterance permutation"}
