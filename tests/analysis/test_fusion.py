"""Fusion of systems (issue 3, analysis 5): vote rules, ranking, top-K curve, stacking."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier

from ser_diag.analysis.fusion import (
    fuse,
    pairwise_disagreement,
    plurality_vote,
    probability_average,
    rank_systems,
    split_files,
    stacking,
    topk_fusion_curve,
)
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, PROB_COLUMNS

CODES = np.array(CLASS_CODES)


def base_frame(n, n_speakers, seed):
    rng = np.random.default_rng(seed)
    spk = np.sort(rng.integers(0, n_speakers, n))
    return pd.DataFrame({"FileName": [f"MSP-PODCAST_{i:05d}.wav" for i in range(n)],
                         "SpkrID": pd.array(spk, dtype="Int64"),
                         "Gender": np.where(spk % 2 == 0, "Female", "Male"),
                         "Split_Set": "Development"})


def categorical_merged(accuracies, n=900, seed=0, probabilities=True, informative=True):
    """Systems right with the given probabilities (else a random class); P_* put extra mass on
    the predicted class. ``informative=False``: predictions and P_* are pure noise."""
    rng = np.random.default_rng(seed)
    base = base_frame(n, 60, seed)
    true = rng.choice(CODES, n, p=[0.2, 0.1, 0.2, 0.05, 0.05, 0.05, 0.05, 0.3])
    frames = []
    for i, acc in enumerate(accuracies):
        right = rng.random(n) < acc if informative else np.zeros(n, bool)
        pred = np.where(right, true, rng.choice(CODES, n))
        frame = base.assign(system=f"sys{i}", EmoClass_true=true, EmoClass_pred=pred)
        if probabilities:
            logits = rng.normal(size=(n, 8))
            logits[np.arange(n), [CLASS_CODES.index(c) for c in pred]] += 3 if informative else 0
            frame["EmoClass_pred"] = CODES[logits.argmax(axis=1)]   # label = argmax of P_*
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            frame[list(PROB_COLUMNS)] = probs
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)[lambda f: ["system"] + [c for c in f if c != "system"]]
    merged.attrs.update(task="categorical", synthetic=True)
    return merged


def attribute_merged(noises, n=900, seed=1):
    rng = np.random.default_rng(seed)
    base = base_frame(n, 60, seed)
    true = rng.normal(4, 1, (n, 3))
    frames = []
    for i, sd in enumerate(noises):
        pred = true + rng.normal(0, sd, (n, 3))
        frame = base.assign(system=f"att{i}")
        for j, a in enumerate(ATTRIBUTES):
            frame[f"{a}_true"], frame[f"{a}_pred"] = true[:, j], pred[:, j]
        frames.append(frame)
    merged = pd.concat(frames, ignore_index=True)
    merged.attrs.update(task="attributes", synthetic=True)
    return merged


def macro_f1(frame):
    return f1_score(frame["EmoClass_true"], frame["EmoClass_pred"], labels=list(CLASS_CODES),
                    average="macro", zero_division=0)


def ccc(x, y):
    return 2 * np.cov(x, y, bias=True)[0, 1] / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


# --------------------------------------------------------------------------- vote rules

def test_plurality_vote_tie_rule_is_best_ranked_voter():
    assert plurality_vote([["F"], ["A"]]).tolist() == ["F", "A"]                 # K = 1
    assert plurality_vote([["C", "N"], ["N", "C"], ["S", "S"]]).tolist() == ["C", "N", "S"]  # K = 2
    assert plurality_vote([["D", "A", "N"], ["N", "A", "D"]]).tolist() == ["D", "N"]  # all differ
    assert plurality_vote([["N", "A", "A"]]).tolist() == ["A"]                   # majority beats rank
    assert plurality_vote([["S", "H", "H", "S"]]).tolist() == ["S"]              # 2-2: system 1 votes S
    assert plurality_vote([["N", "H", "S", "S", "H"]]).tolist() == ["H"]        # 2-2: system 2 votes H
    # the rule never depends on the class order
    reversed_labels = CLASS_CODES[::-1]
    preds = np.random.default_rng(0).choice(CODES, (500, 4))
    np.testing.assert_array_equal(plurality_vote(preds), plurality_vote(preds, labels=reversed_labels))
    # deterministic and independent computation
    for r, winner in zip(preds, plurality_vote(preds)):
        counts = pd.Series(r).value_counts()
        tied = set(counts[counts == counts.max()].index)
        assert winner == next(c for c in r if c in tied)
    with pytest.raises(ValueError):
        plurality_vote([["A", "Q"]])


def test_probability_average_argmax_and_ties():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(8), size=(200, 3))
    codes, mean = probability_average(p)
    np.testing.assert_allclose(mean, p.mean(axis=1))
    np.testing.assert_array_equal(codes, CODES[p.mean(axis=1).argmax(axis=1)])
    tie = np.zeros((1, 2, 8))
    tie[0, 0, [1, 5]] = [0.3, 0.7]         # system 1 prefers D
    tie[0, 1, [1, 5]] = [0.7, 0.3]
    assert probability_average(tie)[0].tolist() == ["D"]
    assert probability_average(tie[:, ::-1])[0].tolist() == ["S"]


def test_fuse_methods():
    merged = categorical_merged([0.6, 0.5, 0.4], n=200)
    prob = fuse(merged, ["sys1", "sys0"], "prob_average")
    sys0 = merged[merged["system"] == "sys0"].reset_index(drop=True)
    sys1 = merged[merged["system"] == "sys1"].reset_index(drop=True)
    mean = (sys0[list(PROB_COLUMNS)].to_numpy() + sys1[list(PROB_COLUMNS)].to_numpy()) / 2
    np.testing.assert_allclose(prob[list(PROB_COLUMNS)].to_numpy(), mean)
    vote = fuse(merged, ["sys1", "sys0"], name="v")
    np.testing.assert_array_equal(vote["EmoClass_pred"], sys1["EmoClass_pred"])   # K = 2 -> the better
    assert (vote["system"] == "v").all() and "P_A" not in vote
    attrs = attribute_merged([0.3, 0.6], n=100)
    fused = fuse(attrs, ["att0", "att1"])
    a0, a1 = (attrs[attrs["system"] == s].reset_index(drop=True) for s in ("att0", "att1"))
    np.testing.assert_allclose(fused["EmoVal_pred"], (a0["EmoVal_pred"] + a1["EmoVal_pred"]) / 2)
    no_probs = categorical_merged([0.6, 0.5], n=100, probabilities=False)
    with pytest.raises(ValueError, match="P_A"):
        fuse(no_probs, ["sys0", "sys1"], "prob_average")


# --------------------------------------------------------------------------- ranking and curve

def test_split_files():
    files = [f"f{i:03d}" for i in range(101)]
    sel, score = split_files(files, "half", seed=3)
    assert len(sel) == 50 and len(score) == 51 and not set(sel) & set(score)
    assert set(sel) | set(score) == set(files)
    np.testing.assert_array_equal(split_files(files, "half", seed=3)[0], sel)
    assert not np.array_equal(split_files(files, "half", seed=4)[0], sel)
    split_of = pd.Series(["Development"] * 60 + ["Test1"] * 41, index=files)
    sel, score = split_files(files, "Test1", split_of=split_of)
    assert set(sel) == set(files[60:])
    sel, score = split_files(files, files[:10])
    assert list(sel) == files[:10] and len(score) == 91
    with pytest.raises(ValueError):
        split_files(files, files)


def test_rank_systems_on_selection_files():
    merged = categorical_merged([0.3, 0.7, 0.5], n=400)
    selection = merged["FileName"].unique()[:200]
    ranking = rank_systems(merged, selection_files=selection)
    part = merged[merged["FileName"].isin(selection)]
    expected = {s: macro_f1(f) for s, f in part.groupby("system")}
    assert ranking["system"].tolist() == sorted(expected, key=expected.get, reverse=True)
    np.testing.assert_allclose(ranking["estimate"], sorted(expected.values(), reverse=True))
    assert ranking["rank"].tolist() == [1, 2, 3] and (ranking["n"] == 200).all()


def test_bootstrap_metrics_on_files_equals_the_rows_of_those_files():
    """files= scores the rows of those files by position (no copy of them): the same table, bit
    for bit, as bootstrap_metrics on the filtered frame, for both tasks and with resamples."""
    from ser_diag.resampling import bootstrap_metrics
    for merged in (categorical_merged([0.3, 0.7, 0.5], n=400), attribute_merged([0.3, 0.6], n=400)):
        chosen = merged["FileName"].unique()[::3]
        part = merged[merged["FileName"].isin(chosen)].reset_index(drop=True)
        part.attrs = dict(merged.attrs)
        want = bootstrap_metrics(part, n_boot=50, seed=2, unit="utterance")
        got = bootstrap_metrics(merged, n_boot=50, seed=2, unit="utterance", files=chosen)
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert bootstrap_metrics(merged, n_boot=0, files=["nothing.wav"]).empty


def test_topk_curve_k1_equals_best_system_on_scoring_part():
    cat = categorical_merged([0.35, 0.55, 0.45, 0.5], n=900)
    att = attribute_merged([0.9, 0.5, 0.7], n=900)
    curve = topk_fusion_curve(cat, att, selection="half", n_boot=100, seed=7, unit="utterance",
                              baseline={"categorical": "sys0"})
    sel, score = split_files(cat["FileName"], "half", seed=7)
    assert curve.attrs["split_unit"] == "utterance" and curve.attrs["baseline"]["categorical"] == "sys0"
    assert curve.attrs["n_selection"] == len(sel) and (curve["n"] == len(score)).all()

    sel_part, score_part = cat[cat["FileName"].isin(sel)], cat[cat["FileName"].isin(score)]
    ranked = sorted(cat["system"].unique(), key=lambda s: -macro_f1(sel_part[sel_part["system"] == s]))
    best_on_scoring = macro_f1(score_part[score_part["system"] == ranked[0]])
    for method in ("plurality", "prob_average"):
        r = curve[(curve["method"] == method) & (curve["k"] == 1)].iloc[0]
        assert r["systems"] == ranked[0]
        assert np.isclose(r["estimate"], best_on_scoring)
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
    top2 = curve[(curve["method"] == "plurality") & (curve["k"] == 2)].iloc[0]
    assert np.isclose(top2["estimate"], best_on_scoring)      # K = 2 ties go to the better system
    base = curve[(curve["task"] == "categorical") & (curve["method"] == "baseline")].iloc[0]
    assert base["systems"] == "sys0" and base["k"] == ranked.index("sys0") + 1
    assert np.isclose(base["estimate"], macro_f1(score_part[score_part["system"] == "sys0"]))

    att_score = att[att["FileName"].isin(score)]
    preds = {s: f for s, f in att_score.groupby("system")}
    attr_rows = curve[(curve["task"] == "attributes") & (curve["method"] == "mean")]
    full = attr_rows[(attr_rows["k"] == 3) & (attr_rows["metric"] == "ccc_EmoVal")].iloc[0]
    mean_pred = np.mean([f["EmoVal_pred"].to_numpy() for f in preds.values()], axis=0)
    assert np.isclose(full["estimate"], ccc(preds["att0"]["EmoVal_true"].to_numpy(), mean_pred))
    att_one = attr_rows[(attr_rows["k"] == 1) & (attr_rows["metric"] == "ccc_EmoAct")].iloc[0]
    assert att_one["systems"] == "att1"
    assert set(curve["metric"]) == {"macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom"}


def test_topk_curve_named_baseline_and_no_probabilities():
    cat = categorical_merged([0.35, 0.55, 0.45], n=300, probabilities=False)
    curve = topk_fusion_curve(categorical=cat, n_boot=20, baseline="sys1",
                              selection=list(cat["FileName"].unique()[:100]))
    assert set(curve["method"]) == {"plurality", "baseline"}
    base = curve[curve["method"] == "baseline"].iloc[0]
    assert base["systems"] == "sys1" and (curve["n"] == 200).all()
    with pytest.raises(ValueError, match="baseline"):
        topk_fusion_curve(categorical=cat, n_boot=0, baseline="nobody")


def test_pairwise_disagreement():
    cat = categorical_merged([0.6, 0.5, 0.4], n=300)
    table = pairwise_disagreement(cat)
    assert len(table) == 9
    a = cat[cat["system"] == "sys0"]["EmoClass_pred"].to_numpy()
    b = cat[cat["system"] == "sys2"]["EmoClass_pred"].to_numpy()
    pair = table[(table["system_a"] == "sys0") & (table["system_b"] == "sys2")]["value"].item()
    assert np.isclose(pair, np.mean(a != b))
    matrix = table.pivot(index="system_a", columns="system_b", values="value").to_numpy()
    np.testing.assert_allclose(matrix, matrix.T)
    np.testing.assert_allclose(np.diag(matrix), 0.0)
    att = attribute_merged([0.3, 0.6], n=200)
    corr = pairwise_disagreement(att)
    assert set(corr["metric"]) == {f"pearson_{a}" for a in ATTRIBUTES}
    x = att[att["system"] == "att0"]["EmoDom_pred"].to_numpy()
    y = att[att["system"] == "att1"]["EmoDom_pred"].to_numpy()
    got = corr[(corr["metric"] == "pearson_EmoDom") & (corr["system_a"] == "att0") & (corr["system_b"] == "att1")]
    assert np.isclose(got["value"].item(), np.corrcoef(x, y)[0, 1])


def test_pairwise_disagreement_matrices_equal_pairwise_metric_calls():
    from ser_diag import metrics

    cat = categorical_merged([0.6, 0.5, 0.4, 0.3], n=250)
    att = attribute_merged([0.3, 0.6, 0.9], n=150)
    constant = att["system"] == "att2"
    att.loc[constant, "EmoVal_pred"] = 4.0  # a constant system: Pearson undefined (nan)
    for merged, task in ((cat, "categorical"), (att, "attributes")):
        table = pairwise_disagreement(merged)
        for row in table.itertuples():
            a = merged[merged["system"] == row.system_a]
            b = merged[merged["system"] == row.system_b]
            if task == "categorical":
                expected = 1.0 - metrics.accuracy(a["EmoClass_pred"].to_numpy(), b["EmoClass_pred"].to_numpy())
            else:
                column = row.metric.replace("pearson_", "") + "_pred"
                expected = metrics.pearson(a[column].to_numpy(), b[column].to_numpy())
            np.testing.assert_allclose(row.value, expected, rtol=0, atol=1e-12, equal_nan=True)
    values = table[table["metric"] == "pearson_EmoVal"]
    assert values[(values["system_a"] == "att2") | (values["system_b"] == "att2")]["value"].isna().all()


# --------------------------------------------------------------------------- stacking

class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """Remembers, in a class-level log, the feature rows it was fitted on and asked about."""

    log: list = []

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.seen_ = {r.tobytes() for r in np.asarray(x)}
        self.majority_ = pd.Series(y).mode().iloc[0]
        return self

    def predict(self, x):
        asked = [r.tobytes() for r in np.asarray(x)]
        RecordingClassifier.log.append((self.seen_, asked))
        return np.full(len(asked), self.majority_)


def test_stacking_never_scores_a_file_with_a_model_that_saw_it():
    cat = categorical_merged([0.6, 0.5, 0.4], n=600, seed=2)
    RecordingClassifier.log = []
    result = stacking(cat, n_splits=5, seed=0, model=RecordingClassifier(), n_boot=0)
    assert result.features == "probabilities"
    assert len(RecordingClassifier.log) == 5
    rows = {}
    frames = [cat[cat["system"] == s][list(PROB_COLUMNS)].to_numpy() for s in ("sys0", "sys1", "sys2")]
    for i, r in enumerate(np.hstack(frames)):
        rows[r.tobytes()] = i
    assert len(rows) == 600                                  # continuous features: rows identify files
    predicted = []
    for seen, asked in RecordingClassifier.log:
        assert not seen & set(asked)                          # never fitted on a file it scores
        assert len(seen) + len(asked) == 600
        predicted += [rows[a] for a in asked]
        fold = result.folds["fold"].to_numpy()[[rows[a] for a in asked]]
        assert len(set(fold)) == 1                            # one fold per model
    assert sorted(predicted) == list(range(600))              # every file scored exactly once


def test_stacking_with_a_memorising_model_stays_at_chance():
    """A 1-nearest-neighbour meta-model memorises its training files perfectly; on pure-noise
    features it is at chance on files it never saw. Leakage would show as near-perfect scores."""
    cat = categorical_merged([0.5, 0.5, 0.5], n=800, seed=4, informative=False)
    result = stacking(cat, n_splits=5, seed=0, model=KNeighborsClassifier(n_neighbors=1), n_boot=0)
    stacked = result.predictions
    accuracy = np.mean(stacked["EmoClass_pred"].to_numpy() == stacked["EmoClass_true"].to_numpy())
    x = np.hstack([cat[cat["system"] == s][list(PROB_COLUMNS)].to_numpy() for s in ("sys0", "sys1", "sys2")])
    y = stacked["EmoClass_true"].to_numpy()
    in_sample = np.mean(KNeighborsClassifier(n_neighbors=1).fit(x, y).predict(x) == y)
    assert in_sample == 1.0                                   # the detector works
    assert accuracy < 0.35


def test_stacking_scores_and_speaker_folds():
    cat = categorical_merged([0.6, 0.5, 0.45], n=600, seed=6, probabilities=False)
    result = stacking(cat, n_splits=4, seed=1, model="logistic", group_by_speaker=True, n_boot=50)
    assert result.features == "onehot"
    folds = result.folds.merge(cat[cat["system"] == "sys0"][["FileName", "SpkrID"]], on="FileName")
    assert (folds.groupby("SpkrID")["fold"].nunique() == 1).all()   # speakers never split
    assert set(folds["fold"]) == {0, 1, 2, 3}
    scores = result.scores[result.scores["metric"] == "macro_f1"].set_index("system")
    assert set(scores.index) == {"stacking", "sys0", "sys1", "sys2"}
    assert np.isclose(scores.loc["stacking", "estimate"], macro_f1(result.predictions))
    assert np.isclose(scores.loc["sys0", "estimate"], macro_f1(cat[cat["system"] == "sys0"]))
    np.testing.assert_allclose(result.predictions[list(PROB_COLUMNS)].sum(axis=1), 1.0)


def test_topk_curve_splits_by_speaker_and_names_no_worst_system_baseline():
    """Default unit: the selection and scoring halves share no speaker, intervals resample
    speakers, and with no system named "baseline" there is no baseline row (today the worst
    system was silently called baseline)."""
    cat = categorical_merged([0.35, 0.55, 0.45], n=900)
    curve = topk_fusion_curve(categorical=cat, n_boot=30, seed=3)
    assert curve.attrs["split_unit"] == "speaker" and set(curve["unit"]) == {"speaker"}
    assert curve.attrs["baseline"] == {"categorical": None}
    assert "baseline" not in set(curve["method"])
    files = cat.drop_duplicates("FileName")
    sel, score = split_files(files["FileName"], "half", seed=3, speakers=files["SpkrID"].to_numpy(object))
    spk_of = files.set_index("FileName")["SpkrID"]
    assert not set(spk_of[sel]) & set(spk_of[score])
    assert curve.attrs["n_selection"] == len(sel) and (curve["n"] == len(score)).all()
    named = cat.replace({"system": {"sys2": "sys2_baseline"}})
    named.attrs = dict(cat.attrs)
    curve = topk_fusion_curve(categorical=named, n_boot=0, seed=3)
    assert curve.attrs["baseline"] == {"categorical": "sys2_baseline"}
    assert (curve.loc[curve["method"] == "baseline", "systems"] == "sys2_baseline").all()


def test_incremental_topk_fusions_equal_fuse():
    """The top-K curve builds its fusions incrementally (vote counts, first votes, running sums);
    every K gives exactly fuse()'s predictions, ties included (3 classes, rounded P_* with exact
    ties, systems without P_* from some rank on)."""
    from ser_diag.analysis.bias import system_frames
    from ser_diag.analysis.fusion import _running_fusions

    rng = np.random.default_rng(7)
    merged = categorical_merged([0.5] * 9, n=400, seed=3)
    few = CODES[rng.integers(0, 3, len(merged))]                      # three classes: many vote ties
    merged["EmoClass_pred"] = few
    probs = np.round(rng.random((len(merged), 8)) * 4) / 4 + 0.25       # coarse: exact ties in the mean
    merged[list(PROB_COLUMNS)] = probs / probs.sum(axis=1, keepdims=True)
    merged.loc[merged["system"].isin(["sys7", "sys8"]), list(PROB_COLUMNS)] = np.nan
    order = [f"sys{i}" for i in rng.permutation(9)]
    order = [s for s in order if s not in ("sys7", "sys8")] + ["sys7", "sys8"]
    frames = system_frames(merged)
    seen = set()
    for key, (k, systems, method), prediction in _running_fusions(frames, order, "categorical",
                                                                   ["plurality", "prob_average"]):
        expected = fuse(merged, order[:k], method)["EmoClass_pred"].to_numpy(str)
        np.testing.assert_array_equal(CODES[prediction], expected)
        assert systems == " + ".join(order[:k]) and key == f"{method}|{k}"
        seen.add((method, k))
    assert {k for m, k in seen if m == "prob_average"} == set(range(1, 8))   # stops at the first without P_*
    assert {k for m, k in seen if m == "plurality"} == set(range(1, 10))
    attrs = attribute_merged([0.3, 0.5, 0.7, 0.9])
    frames = system_frames(attrs)
    order = ["att2", "att0", "att3", "att1"]
    for _, (k, _, _), prediction in _running_fusions(frames, order, "attributes", ["mean"]):
        expected = fuse(attrs, order[:k])[[f"{a}_pred" for a in ATTRIBUTES]].to_numpy(np.float64)
        np.testing.assert_array_equal(prediction, expected)
