"""Issue 22 (the analysis half): every analysis reads the data's vocabulary, not MSP-Podcast's
constants. Merged frames are built here in memory for IEMOCAP (4 classes, attributes on 1-5,
10 string speakers), CREMA-D (6 classes, no attributes) and a custom vocabulary with
attributes on -1..1; the numbers are checked independently (scikit-learn's macro-F1, Lin's
CCC with population variances), and missing speakers / gender / attributes give empty tables
with one stated note, never a traceback. Small frames and few resamples: fast."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix, f1_score, recall_score

from ser_diag.analysis import agreement, beyond, binned, bias, confusion, fusion, ranks, where
from ser_diag.analysis import regression_to_mean as rtm
from ser_diag.evaluation import Evaluation, TaskData
from ser_diag.resampling import Resampling, bootstrap_metrics, paired_test
from ser_diag.vocabulary import CREMA_D, IEMOCAP, MSP_PODCAST, Attribute, Vocabulary

CUSTOM = Vocabulary("lab", classes=("calm", "tense", "sad"), class_names={"calm": "Calm", "tense": "Tense"},
                    attributes=(Attribute("arousal", -1, 1), Attribute("valence", -1, 1)), gender_column=None)
VOCABULARIES = (IEMOCAP, CREMA_D, CUSTOM)
FEW = Resampling(n_boot=20)
NONE = Resampling(n_boot=0)


def _frames(voc: Vocabulary, n_files: int = 120, n_speakers: int = 10, n_systems: int = 3, seed: int = 0,
            speakers: bool = True, gender: bool = True, attach: bool = True, class_weights=None) -> dict:
    """Merged frames of ``voc`` (io.merge's layout): string speakers ``spk00..``, half of them
    female, each system right on 40 / 55 / 70 % of the files, attribute predictions shrunk
    toward the scale's middle with noise (some beyond the scale)."""
    rng = np.random.default_rng(seed)
    spk_idx = np.arange(n_files) % n_speakers
    base = {
        "FileName": pd.array([f"{voc.name}_{i:04d}.wav" for i in range(n_files)], dtype="str"),
        "SpkrID": pd.array([f"spk{j:02d}" if speakers else None for j in spk_idx], dtype="str"),
        "Gender": pd.array([("Female" if j % 2 == 0 else "Male") if gender else None for j in spk_idx], dtype="str"),
        "Split_Set": pd.array([voc.splits[j % len(voc.splits)] if voc.splits else None for j in spk_idx],
                              dtype="str"),
    }
    weights = np.asarray(class_weights if class_weights is not None else np.linspace(1, 2, len(voc.classes)), float)
    truth = rng.choice(voc.classes, n_files, p=weights / weights.sum())
    truths = {a.name: rng.uniform(a.low, a.high, n_files) for a in voc.attributes}
    categorical, attributes = [], []
    for s in range(n_systems):
        right = rng.random(n_files) < 0.4 + 0.15 * s
        pred = np.where(right, truth, rng.choice(voc.classes, n_files))
        categorical.append(pd.DataFrame({"system": f"sys{s}", **base,
                                         "EmoClass_true": pd.array(truth, dtype="str"),
                                         "EmoClass_pred": pd.array(pred, dtype="str")}))
        columns = {}
        for a in voc.attributes:
            middle, half = (a.low + a.high) / 2, (a.high - a.low) / 2
            columns[f"{a.name}_true"] = truths[a.name]
            columns[f"{a.name}_pred"] = (middle + (0.5 + 0.1 * s) * (truths[a.name] - middle)
                                         + rng.normal(0, 0.3 * half, n_files))
        attributes.append(pd.DataFrame({"system": f"sys{s}", **base, **columns}))
    out = {"categorical": pd.concat(categorical, ignore_index=True),
           "attributes": pd.concat(attributes, ignore_index=True) if voc.attributes else None}
    for frame in out.values():
        if frame is not None and attach:
            frame.attrs["vocabulary"] = voc
    return out


def _lin(x, y) -> float:
    """Lin's concordance correlation with population (ddof 0) moments, written out."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def _system(frame, name):
    return frame[frame["system"] == name]


def _estimate(table, system, metric):
    return float(table.loc[(table["system"] == system) & (table["metric"] == metric), "estimate"].iloc[0])


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("voc", VOCABULARIES, ids=lambda v: v.name)
def test_bootstrap_metrics_equal_sklearn_macro_f1_and_lins_ccc(voc):
    data = _frames(voc)
    table = bootstrap_metrics(data["categorical"], FEW)
    assert set(table["unit"]) == {"speaker"}
    for name in ("sys0", "sys1", "sys2"):
        rows = _system(data["categorical"], name)
        t, p = rows["EmoClass_true"].to_numpy(str), rows["EmoClass_pred"].to_numpy(str)
        expected = f1_score(t, p, average="macro", labels=list(voc.classes), zero_division=0)
        assert _estimate(table, name, "macro_f1") == pytest.approx(expected, abs=1e-9)
        recalls = recall_score(t, p, average=None, labels=list(voc.classes), zero_division=0)
        for code, recall in zip(voc.classes, recalls):
            assert _estimate(table, name, f"recall_{code}") == pytest.approx(recall, abs=1e-9)
    assert {m for m in table["metric"] if m.startswith("f1_")} == {f"f1_{c}" for c in voc.classes}
    assert table[["ci_low", "ci_high"]].notna().all(axis=None)
    if not voc.attributes:
        assert data["attributes"] is None
        return
    table = bootstrap_metrics(data["attributes"], FEW)
    for name in ("sys0", "sys2"):
        rows = _system(data["attributes"], name)
        cccs = [_lin(rows[f"{a}_true"], rows[f"{a}_pred"]) for a in voc.attribute_names]
        for a, expected in zip(voc.attribute_names, cccs):
            assert _estimate(table, name, f"ccc_{a}") == pytest.approx(expected, abs=1e-9)
        assert _estimate(table, name, "ccc_mean") == pytest.approx(np.mean(cccs), abs=1e-9)
    assert {m for m in table["metric"] if m.startswith("ccc_")} == (
        {f"ccc_{a}" for a in voc.attribute_names} | {"ccc_mean"})


def test_paired_test_and_the_vocabulary_given_to_evaluation_instead_of_attrs():
    with_attrs = _frames(IEMOCAP)
    without = _frames(IEMOCAP, attach=False)
    evaluation = Evaluation.from_frames(without["categorical"], without["attributes"], vocabulary=IEMOCAP)
    assert evaluation.vocabulary is IEMOCAP and evaluation.categorical.classes == IEMOCAP.classes
    for task in ("categorical", "attributes"):
        a = bootstrap_metrics(with_attrs[task], FEW)
        b = bootstrap_metrics(evaluation.task(task), FEW)
        pd.testing.assert_frame_equal(a, b)
    result = paired_test(evaluation.categorical, "sys2", "sys0", "macro_f1", FEW, method="permutation")
    rows = _system(without["categorical"], "sys2")
    assert result["estimate_a"] == pytest.approx(f1_score(rows["EmoClass_true"], rows["EmoClass_pred"],
                                                          average="macro", labels=list(IEMOCAP.classes)), abs=1e-9)
    assert result["unit"] == "speaker" and 0 < result["p_value"] <= 1
    result = paired_test(evaluation.attributes, "sys2", "sys0", "ccc_activation", FEW)
    rows = _system(without["attributes"], "sys2")
    assert result["estimate_a"] == pytest.approx(_lin(rows["activation_true"], rows["activation_pred"]), abs=1e-9)


def test_headline_and_leaderboard_metrics_follow_the_vocabulary():
    assert ranks.headline_metrics("attributes", IEMOCAP) == [f"ccc_{a}" for a in IEMOCAP.attribute_names] + [
        "ccc_mean"]
    assert ranks.headline_metrics("attributes") == ranks.HEADLINE_METRICS["attributes"]
    data = _frames(IEMOCAP)
    tables = ranks.rank_tables(data["categorical"], data["attributes"], resampling=FEW)
    board = tables["leaderboard_ranks"]
    assert set(board.loc[board["task"] == "attributes", "metric"]) == set(ranks.headline_metrics("attributes",
                                                                                                  IEMOCAP))
    best = board[(board["task"] == "categorical") & (board["rank"] == 1)]["system"].tolist()
    assert best == ["sys2"]


# --------------------------------------------------------------------------- confusion


@pytest.mark.parametrize("voc", VOCABULARIES, ids=lambda v: v.name)
def test_confusion_tables_are_shaped_by_the_vocabulary(voc):
    frame = _frames(voc)["categorical"]
    k = len(voc.classes)
    table = confusion.confusion_table(frame, normalize="true")
    assert len(table) == 3 * k * k
    assert list(table["true"].cat.categories) == list(voc.classes)
    rows = _system(frame, "sys1")
    expected = confusion_matrix(rows["EmoClass_true"], rows["EmoClass_pred"], labels=list(voc.classes))
    got = table[table["system"] == "sys1"]["count"].to_numpy().reshape(k, k)
    np.testing.assert_array_equal(got, expected)
    matrix = confusion.confusion_matrix_frame(frame, "sys1")
    assert matrix.shape == (k, k)
    assert list(matrix.index) == [voc.class_names[c] for c in voc.classes] == list(matrix.columns)
    np.testing.assert_array_equal(matrix.to_numpy(), expected)
    difference = confusion.confusion_difference(frame, "sys2", "sys0")
    assert len(difference) == k * k
    destinations = confusion.minority_destinations(frame, "sys1", resampling=FEW)
    assert set(destinations["true"].astype(str)) <= set(voc.classes)
    assert set(destinations["pred"].astype(str)) <= set(voc.classes)
    assert len(destinations.attrs["notes"]) == 1 and voc.name in destinations.attrs["notes"][0]


def test_minority_classes_are_the_rarest_of_another_corpus_and_msp_keeps_fear_disgust_contempt():
    rare = _frames(CREMA_D, n_files=300, class_weights=[10, 1, 10, 10, 10, 2])["categorical"]
    assert confusion.minority_classes(rare) == ("disgust", "sad")
    table = confusion.minority_destinations(rare, "sys0", resampling=NONE)
    assert set(table.loc[table["minority"], "true"].astype(str)) == {"disgust", "sad"}
    assert "Disgust, Sadness" in table.attrs["notes"][0]
    balanced = _frames(IEMOCAP, class_weights=[1, 1, 1, 1])["categorical"]
    assert confusion.minority_classes(balanced) == ()
    assert not confusion.minority_destinations(balanced, "sys0", resampling=NONE)["minority"].any()
    msp = pd.DataFrame({"system": "s", "FileName": ["a", "b"], "EmoClass_true": ["A", "F"],
                        "EmoClass_pred": ["A", "A"]})
    assert confusion.minority_classes(msp) == ("F", "D", "C")
    assert confusion.minority_destinations(msp, resampling=NONE).attrs["notes"] == []


# --------------------------------------------------------------------------- attributes: bins and scale


def test_binned_tables_cover_the_corpus_scale():
    data = _frames(IEMOCAP)["attributes"]
    np.testing.assert_array_equal(binned.attribute_edges(data, "valence"), [1, 2, 3, 4, 5])
    matrix = binned.binned_matrix(data)
    assert set(matrix["attribute"]) == set(IEMOCAP.attribute_names)
    assert list(matrix["true_bin"].cat.categories) == ["[1, 2)", "[2, 3)", "[3, 4)", "[4, 5]"]
    counts = matrix.groupby(["system", "attribute"])["count"].sum()
    assert (counts == 120).all()
    per_bin = binned.per_bin_table(data, "activation")
    assert per_bin["bin_low"].min() == 1 and per_bin["bin_high"].max() == 5

    custom = _frames(CUSTOM)["attributes"]
    edges = binned.attribute_edges(custom, "arousal")
    np.testing.assert_array_equal(edges, [-1, -0.5, 0, 0.5, 1])
    matrix = binned.binned_matrix(custom)
    assert matrix["true_index"].max() == 3 and (matrix.groupby(["system", "attribute"])["count"].sum() == 120).all()
    outside = binned.out_of_range(custom)
    pred = _system(custom, "sys2")["valence_pred"].to_numpy()
    row = outside[(outside["system"] == "sys2") & (outside["attribute"] == "valence")].iloc[0]
    assert (row["low"], row["high"]) == (-1.0, 1.0)
    assert row["n_below"] == int((pred < -1).sum()) and row["n_above"] == int((pred > 1).sum())
    assert row["n_below"] + row["n_above"] > 0
    # MSP-Podcast's default stays 1-7 in unit steps
    np.testing.assert_array_equal(binned.bin_edges(None), np.arange(1.0, 8.0))
    with pytest.raises(ValueError, match="not in merged"):
        binned.binned_matrix(custom, attribute="EmoAct")


@pytest.mark.parametrize("voc", (IEMOCAP, CUSTOM), ids=lambda v: v.name)
def test_regression_to_the_mean_at_the_corpus_extremes(voc):
    data = _frames(voc)["attributes"]
    low, high = voc.attributes[0].low, voc.attributes[0].high
    means = rtm.bin_means(data, resampling=FEW)
    assert means["bin_low"].min() == low and means["bin_high"].max() == high
    # predictions shrunk toward the middle: positive bias in the lowest bin, negative in the highest
    first = means[(means["system"] == "sys0") & (means["attribute"] == voc.attribute_names[0])]
    assert first["bias"].iloc[0] > 0 > first["bias"].iloc[-1]
    extremes = rtm.extreme_bin_recall(data)
    assert set(extremes["end"]) == {"low", "high"} and extremes["recall"].between(0, 1).all()
    shrinkage = rtm.shrinkage_table(data, resampling=FEW)
    slope = shrinkage[(shrinkage["metric"] == "slope") & (shrinkage["system"] == "sys0")]["estimate"]
    assert len(slope) == len(voc.attributes) and (slope < 1).all()
    ccc = shrinkage[(shrinkage["metric"] == "ccc") & (shrinkage["system"] == "sys1")]
    rows = _system(data, "sys1")
    for attribute, value in zip(ccc["attribute"], ccc["estimate"]):
        assert value == pytest.approx(_lin(rows[f"{attribute}_true"], rows[f"{attribute}_pred"]), abs=1e-9)
    recalibration = rtm.recalibration_whatif(data, resampling=FEW)
    assert set(recalibration["attribute"]) == set(voc.attribute_names)
    assert set(recalibration["split_unit"]) == {"speaker"}


# --------------------------------------------------------------------------- gender and speakers


def test_gender_and_speaker_breakdowns_with_string_speakers():
    data = _frames(IEMOCAP)
    frame = data["categorical"]
    by_group, gaps = bias.group_audit(frame, resampling=FEW, n_permutations=300)
    assert set(by_group["group"]) == {"Female", "Male"} and set(by_group["n_speakers"]) == {5}
    rows = _system(frame, "sys1")
    female = rows[rows["Gender"] == "Female"]
    expected = f1_score(female["EmoClass_true"], female["EmoClass_pred"], average="macro",
                        labels=list(IEMOCAP.classes))
    got = by_group[(by_group["system"] == "sys1") & (by_group["group"] == "Female")
                   & (by_group["metric"] == "macro_f1")]["estimate"].iloc[0]
    assert got == pytest.approx(expected, abs=1e-9)
    assert {m for m in by_group["metric"] if m.startswith("recall_")} == {f"recall_{c}" for c in IEMOCAP.classes}
    assert set(gaps["method"]) == {"exact speaker permutation"} and set(gaps["n_permutations"]) == {252}
    recall = bias.per_class_recall_by_group(frame, group_table=by_group)
    assert set(recall["class"]) == set(IEMOCAP.classes)

    speakers = bias.speaker_metrics(frame, min_utterances=5)
    assert speakers["SpkrID"].dtype == frame["SpkrID"].dtype
    assert set(speakers["SpkrID"]) == {f"spk{j:02d}" for j in range(10)}
    assert speakers.attrs["notes"] == []
    worst = bias.worst_speakers(speakers, n=3)
    assert len(worst) == 9 and set(worst["rank"]) == {1, 2, 3}
    fair = bias.metric_frame(frame, "sys1")
    assert fair.by_group.loc["Female", "macro_f1"] == pytest.approx(expected, abs=1e-9)

    attributes = data["attributes"]
    by_group, gaps = bias.group_audit(attributes, resampling=FEW, n_permutations=300)
    rows = _system(attributes, "sys0")
    male = rows[rows["Gender"] == "Male"]
    got = by_group[(by_group["system"] == "sys0") & (by_group["group"] == "Male")
                   & (by_group["metric"] == "ccc_valence")]["estimate"].iloc[0]
    assert got == pytest.approx(_lin(male["valence_true"], male["valence_pred"]), abs=1e-9)
    speakers = bias.speaker_metrics(attributes, min_utterances=5)
    assert "ccc_dominance" in set(speakers["metric"]) and speakers["SpkrID"].dtype == attributes["SpkrID"].dtype


def test_msp_speakers_stay_int64():
    frame = _frames(IEMOCAP)["categorical"]
    frame = frame.assign(SpkrID=pd.array(frame["SpkrID"].str.slice(3).astype(int).to_numpy(), dtype="Int64"))
    assert bias.speaker_metrics(frame, min_utterances=5)["SpkrID"].dtype == "Int64"


def test_no_speakers_resample_utterances_with_one_note():
    data = _frames(IEMOCAP, speakers=False)
    for task in ("categorical", "attributes"):
        table = bootstrap_metrics(data[task], FEW)
        assert set(table["unit"]) == {"utterance"}
        assert len(table.attrs["notes"]) == 1 and "no speaker is known" in table.attrs["notes"][0]
        speakers = bias.speaker_metrics(data[task])
        assert speakers.empty and list(speakers.columns) == ["system", "SpkrID", "Gender", "n_utterances",
                                                             "metric", "estimate"]
        assert len(speakers.attrs["notes"]) == 1
    by_group, gaps = bias.group_audit(data["categorical"], resampling=FEW, n_permutations=20)
    assert set(gaps["method"]) == {"utterance permutation"} and set(by_group["unit"]) == {"utterance"}
    # an explicit utterance bootstrap is not a missing-speaker fallback: no note
    assert bootstrap_metrics(data["categorical"], Resampling(n_boot=20, unit="utterance")).attrs["notes"] == []


def test_no_gender_gives_empty_breakdowns_with_one_note():
    data = _frames(CUSTOM, gender=False)
    for task in ("categorical", "attributes"):
        by_group, gaps = bias.group_audit(data[task], resampling=FEW, n_permutations=20)
        assert by_group.empty and gaps.empty
        assert list(by_group.columns) == bias.GROUP_METRIC_COLUMNS and list(gaps.columns) == bias.GROUP_GAP_COLUMNS
        assert len(by_group.attrs["notes"]) == 1 and "no Gender is known" in by_group.attrs["notes"][0]
        assert bias.group_gaps(data[task], resampling=FEW, n_permutations=20).empty
    assert bias.per_class_recall_by_group(data["categorical"], resampling=FEW).empty
    with pytest.raises(ValueError, match="no Gender is known"):
        bias.metric_frame(data["categorical"], "sys0")


# --------------------------------------------------------------------------- fusion and the rest


@pytest.mark.parametrize("voc", VOCABULARIES, ids=lambda v: v.name)
def test_fusion_and_disagreement_over_the_vocabulary(voc):
    data = _frames(voc)
    curve = fusion.topk_fusion_curve(data["categorical"], data["attributes"], resampling=FEW)
    expected = {"macro_f1"} | {f"ccc_{a}" for a in voc.attribute_names}
    assert set(curve["metric"]) == expected
    assert curve.attrs["split_unit"] == "speaker"
    fused = fusion.fuse(data["categorical"], ["sys2", "sys1", "sys0"])
    assert set(fused["EmoClass_pred"]) <= set(voc.classes)
    one = fused[fused["system"] == fused["system"].iloc[0]]
    assert bootstrap_metrics(fused, NONE)["estimate"].notna().all()
    assert len(one) == 120
    disagreement = fusion.pairwise_disagreement(data["categorical"])
    assert len(disagreement) == 9
    by_true = fusion.disagreement_by_true(data["categorical"], "sys0", "sys1", "categorical")
    assert set(by_true["true"]) <= set(voc.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # a 3-fold logistic model on 120 files may not converge
        stacked = fusion.stacking(data["categorical"], n_splits=3, model="logistic", features="onehot",
                                  resampling=NONE)
    assert set(stacked.predictions["EmoClass_pred"]) <= set(voc.classes)
    assert stacked.predictions.attrs["vocabulary"] == voc
    if data["attributes"] is not None:
        pearson = fusion.pairwise_disagreement(data["attributes"])
        assert set(pearson["metric"]) == {f"pearson_{a}" for a in voc.attribute_names}


def test_split_selection_uses_the_vocabulary_splits():
    data = _frames(IEMOCAP)
    curve = fusion.topk_fusion_curve(data["categorical"], None, selection="Session1", resampling=NONE)
    assert curve.attrs["n_selection"] == 24        # 2 of the 10 speakers are in Session1
    with pytest.raises(ValueError, match="Session1"):
        fusion.split_files(["a", "b"], selection="Train", splits=IEMOCAP.splits)


def test_msp_only_analyses_step_aside_with_a_note():
    data = _frames(CREMA_D)
    detailed = pd.DataFrame({"FileName": ["x"], "EmoClass": ["A"], "EmoAct": [1.0], "EmoVal": [1.0],
                             "EmoDom": [1.0]})
    labels = pd.DataFrame({"FileName": ["x"], "EmoClass": ["anger"], "SpkrID": ["spk00"]})
    assert agreement.agreement_tables(data["categorical"], None, labels, detailed, resampling=FEW) == {}
    tables = beyond.beyond_tables(data["categorical"], None, labels, detailed=detailed, audio_root=None,
                                  resampling=FEW)
    notes = tables["beyond_notes"]["note"].tolist()
    assert sum("annotator agreement" in n for n in notes) == 1
    assert sum("podcast" in n for n in notes) == 1
    assert "leaderboard_ranks" in tables and "human_ceiling" not in tables
    assert where.where_tables(data["categorical"], None, resampling=FEW) == {}
    grouped = where.grouped_metrics(data["categorical"], "Gender", by="gender", resampling=FEW)
    assert set(grouped["metric"]) == {"macro_f1"} and set(grouped["group"]) == {"Female", "Male"}
    iemocap = _frames(IEMOCAP)["attributes"]
    grouped = where.grouped_metrics(iemocap, "Gender", by="gender", resampling=FEW)
    assert set(grouped["metric"]) == set(ranks.headline_metrics("attributes", IEMOCAP))
    rows = _system(iemocap, "sys1")
    female = rows[rows["Gender"] == "Female"]
    got = grouped[(grouped["system"] == "sys1") & (grouped["group"] == "Female")
                  & (grouped["metric"] == "ccc_dominance")]["estimate"].iloc[0]
    assert got == pytest.approx(_lin(female["dominance_true"], female["dominance_pred"]), abs=1e-9)


def test_msp_frames_without_attrs_stay_msp():
    frame = pd.DataFrame({"system": "s", "FileName": ["a", "b", "c"], "EmoClass_true": ["A", "S", "N"],
                          "EmoClass_pred": ["A", "S", "S"]})
    assert TaskData(frame).vocabulary is MSP_PODCAST
    table = confusion.confusion_table(frame)
    assert len(table) == 64 and list(table["true"].cat.categories) == list(MSP_PODCAST.classes)
    expected = f1_score(frame["EmoClass_true"], frame["EmoClass_pred"], average="macro",
                        labels=list(MSP_PODCAST.classes), zero_division=0)
    assert _estimate(bootstrap_metrics(frame, NONE), "s", "macro_f1") == pytest.approx(expected, abs=1e-12)


def test_human_ceiling_and_soft_labels_are_msp_only():
    data = _frames(IEMOCAP)
    detailed = pd.DataFrame({"FileName": ["x"], "EmoClass": ["A"], "EmoAct": [1.0], "EmoVal": [1.0],
                             "EmoDom": [1.0]})
    soft = agreement.soft_label_scores(data["categorical"], detailed, resampling=FEW)
    assert soft.empty and list(soft.columns) == agreement.SOFT_LABEL_COLUMNS and len(soft.attrs["notes"]) == 1
    labels = pd.DataFrame({"FileName": ["x"], "EmoClass": ["angry"], "SpkrID": ["spk00"]})
    ceiling = agreement.human_ceiling(detailed, labels, resampling=FEW, vocabulary=IEMOCAP)
    assert ceiling.empty and "iemocap" in ceiling.attrs["notes"][0]


def test_gender_gap_with_some_string_speakers_unknown():
    frame = _frames(IEMOCAP)["categorical"]
    unknown = frame["SpkrID"].isin(["spk00"]) & (frame["FileName"].str.slice(-6, -4).astype(int) % 2 == 0)
    frame = frame.assign(SpkrID=frame["SpkrID"].where(~unknown))
    frame.attrs["vocabulary"] = IEMOCAP
    by_group, gaps = bias.group_audit(frame, resampling=FEW, n_permutations=20)
    assert gaps["ci_low"].notna().all() and set(gaps["unit"]) == {"speaker"}
