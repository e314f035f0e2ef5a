"""Annotator agreement: per-file agreement, metrics by agreement bin (planted agreement-dependent
error rates recovered), the leave-one-annotator-out human ceiling (exact planted value and a
brute-force recomputation) and soft-label scores (brute force)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ser_diag import io
from ser_diag.analysis import agreement
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, PROB_COLUMNS

N_FILES, N_ANNOTATORS, PER_SPEAKER = 960, 6, 8
BINS = ("unanimous", "majority", "plurality")
ERROR = {"unanimous": 0.05, "majority": 0.25, "plurality": 0.55}
ANNOTATOR_SD = 0.8


def _votes(consensus: int, kind: str) -> list[int]:
    """Six votes: all for the consensus; 4 + two other classes; 3 + 2 of one class + 1 of another."""
    a, b = (consensus + 1) % 8, (consensus + 2) % 8
    return {"unanimous": [consensus] * 6, "majority": [consensus] * 4 + [a, b],
            "plurality": [consensus] * 3 + [a, a, b]}[kind]


def _fixture(seed=0):
    rng = np.random.default_rng(seed)
    n = N_FILES
    idx = np.arange(n)
    code = idx % 8
    kind = np.array(BINS)[idx % 3]                     # 3 and 8 coprime: classes balanced in every bin
    speaker = idx // PER_SPEAKER
    latent = 4.0 + rng.normal(0, 1.0, size=(n, 3))
    names = np.array([f"MSP-PODCAST_{i % 20:04d}_{i:04d}.wav" for i in idx])
    scores = latent[:, None, :] + rng.normal(0, ANNOTATOR_SD, size=(n, N_ANNOTATORS, 3))
    detailed = pd.DataFrame({
        "FileName": np.repeat(names, N_ANNOTATORS),
        "WorkerID": [f"W{j}" for j in range(N_ANNOTATORS)] * n,
        "EmoClass": np.array(CLASS_CODES)[np.concatenate([_votes(c, k) for c, k in zip(code, kind)])],
        **{a: scores[:, :, j].ravel() for j, a in enumerate(ATTRIBUTES)},
    })
    labels = pd.DataFrame({
        "FileName": names, "EmoClass": np.array(CLASS_CODES)[code],
        **{a: scores[:, :, j].mean(axis=1).clip(1, 7) for j, a in enumerate(ATTRIBUTES)},
        "SpkrID": pd.array(speaker, dtype="Int64"), "Gender": np.where(speaker % 2, "Male", "Female"),
        "Split_Set": "Development"})
    error = np.array([ERROR[k] for k in kind])
    wrong = rng.random(n) < error
    pred = np.where(wrong, (code + rng.integers(1, 8, n)) % 8, code)
    prob = np.full((n, 8), 0.05)
    prob[idx, pred] = 0.65
    preds = pd.DataFrame({"system": "sys", "FileName": names, "EmoClass": np.array(CLASS_CODES)[pred],
                          **{c: prob[:, j] for j, c in enumerate(PROB_COLUMNS)},
                          **{a: labels[a].to_numpy() for a in ATTRIBUTES}})
    return labels, detailed, io.merge(labels, preds, "categorical")


@pytest.fixture(scope="module")
def data():
    return _fixture()


def test_file_agreement(data):
    labels, detailed, _ = data
    table = agreement.file_agreement(detailed, labels)
    kind = np.array(BINS)[np.arange(N_FILES) % 3]
    assert table["agreement_bin"].tolist() == kind.tolist()
    assert table["n_annotators"].eq(6).all()
    share = {"unanimous": 1.0, "majority": 4 / 6, "plurality": 3 / 6}
    np.testing.assert_allclose(table["share_agree"], [share[k] for k in kind])
    p = {"unanimous": [1.0], "majority": [4 / 6, 1 / 6, 1 / 6], "plurality": [3 / 6, 2 / 6, 1 / 6]}
    entropy = [-sum(x * np.log2(x) for x in p[k]) for k in kind]
    np.testing.assert_allclose(table["vote_entropy"], entropy, atol=1e-12)
    sd = detailed.groupby("FileName", sort=False)["EmoAct"].std(ddof=1).to_numpy()
    np.testing.assert_allclose(table["sd_EmoAct"], sd)
    assert table["sd_bin"].value_counts().tolist() == [N_FILES // 3] * 3
    # without consensus labels the plurality of the votes is the consensus
    alone = agreement.file_agreement(detailed)
    assert alone["consensus"].tolist() == labels["EmoClass"].tolist()


def test_metrics_by_agreement_recover_planted_error_rates(data):
    labels, detailed, merged = data
    table = agreement.metrics_by_agreement(merged, agreement.file_agreement(detailed, labels), n_boot=300,
                                           level=0.99)
    row = table.set_index("group")
    assert table["group"].tolist() == list(BINS) and set(table["unit"]) == {"speaker"}
    for kind, error in ERROR.items():            # macro-F1 = 1 - error rate in expectation
        assert row.at[kind, "ci_low"] <= 1 - error <= row.at[kind, "ci_high"], kind
    assert row.at["unanimous", "ci_low"] > row.at["majority", "ci_high"]
    assert row.at["majority", "ci_low"] > row.at["plurality", "ci_high"]
    # the estimates are the plain metric on each bin's files
    kind = merged["FileName"].map(dict(zip(labels["FileName"], np.array(BINS)[np.arange(N_FILES) % 3])))
    for k in BINS:
        part = merged[(kind == k).to_numpy()]
        assert row.at[k, "estimate"] == pytest.approx(f1_score(part["EmoClass_true"], part["EmoClass_pred"],
                                                               labels=list(CLASS_CODES), average="macro"))


def _brute_force_ceiling(labels, detailed):
    """Every judgement vs the plurality (unique) of the others / the mean of the others, in Python loops."""
    t, p, w = [], [], []
    pairs = {a: ([], [], []) for a in ATTRIBUTES}
    task1 = set(labels.loc[labels["EmoClass"].isin(CLASS_CODES), "FileName"])
    for name, rows in detailed.groupby("FileName"):
        votes = rows["EmoClass"].tolist()
        scored = []
        for j, vote in enumerate(votes):
            others = votes[:j] + votes[j + 1:]
            counts = {c: others.count(c) for c in CLASS_CODES}
            top = max(counts.values())
            winners = [c for c, k in counts.items() if k == top]
            if name in task1 and vote in CLASS_CODES and top > 0 and len(winners) == 1:
                scored.append((winners[0], vote))
        for ref, vote in scored:
            t.append(ref), p.append(vote), w.append(1.0 / len(scored))
        for a in ATTRIBUTES:
            values = rows[a].to_numpy()
            for j in range(len(values)):
                pairs[a][0].append(np.delete(values, j).mean())
                pairs[a][1].append(values[j])
                pairs[a][2].append(1.0 / len(values))
    out = {"macro_f1": f1_score(t, p, labels=list(CLASS_CODES), average="macro", sample_weight=w, zero_division=0),
           "accuracy": np.average(np.array(t) == np.array(p), weights=w)}
    for a, (x, y, weight) in pairs.items():
        x, y, weight = map(np.asarray, (x, y, weight))
        mx, my = np.average(x, weights=weight), np.average(y, weights=weight)
        vx, vy = np.average((x - mx) ** 2, weights=weight), np.average((y - my) ** 2, weights=weight)
        cov = np.average((x - mx) * (y - my), weights=weight)
        out[f"ccc_{a}"] = 2 * cov / (vx + vy + (mx - my) ** 2)
    out["ccc_mean"] = np.mean([out[f"ccc_{a}"] for a in ATTRIBUTES])
    return out


def test_human_ceiling_planted_and_brute_force(data):
    labels, detailed, _ = data
    table = agreement.human_ceiling(detailed, labels, n_boot=300, level=0.99)
    row = table.set_index("metric")
    # planted: unanimous files 6/6 right, majority 4/6, plurality 0 of 3 scored (ties skipped)
    assert row.at["accuracy", "estimate"] == pytest.approx((1 + 4 / 6 + 0) / 3)
    assert row.at["accuracy", "n_skipped"] == (N_FILES // 3) * 3     # the plurality files' consensus voters
    # planted CCC of one annotator vs the mean of 5 others: 2V / (2V + sd^2 (1 + 1/5)), V = 1
    planted = 2 / (2 + ANNOTATOR_SD ** 2 * 1.2)
    for a in ATTRIBUTES:
        assert row.at[f"ccc_{a}", "ci_low"] <= planted <= row.at[f"ccc_{a}", "ci_high"], a
    brute = _brute_force_ceiling(labels, detailed)
    for metric, value in brute.items():
        assert row.at[metric, "estimate"] == pytest.approx(value, abs=1e-9), metric
    assert set(table["unit"]) == {"speaker"} and table["bias"].str.contains("k-1").all()


def test_soft_label_scores_brute_force(data):
    labels, detailed, merged = data
    table = agreement.soft_label_scores(merged, detailed, n_boot=100)
    row = table.set_index("metric")
    soft = io.soft_labels(detailed)
    plausible, expected, ce, kl = [], [], [], []
    for r in merged.itertuples():
        p = soft.loc[r.FileName, list(CLASS_CODES)].to_numpy(float)
        q = np.array([getattr(r, c) for c in PROB_COLUMNS])
        share = p[CLASS_CODES.index(r.EmoClass_pred)]
        plausible.append(share > 0), expected.append(share)
        ce.append(-sum(pi * np.log(qi) for pi, qi in zip(p, q)))
        kl.append(sum(pi * np.log(pi / qi) for pi, qi in zip(p, q) if pi > 0))
    for metric, values in (("plausible_accuracy", plausible), ("expected_agreement", expected),
                           ("cross_entropy", ce), ("kl", kl)):
        assert row.at[metric, "estimate"] == pytest.approx(np.mean(values)), metric
        assert row.at[metric, "ci_low"] <= row.at[metric, "estimate"] <= row.at[metric, "ci_high"]


def test_agreement_tables_and_absent_detailed_labels(data):
    labels, detailed, merged = data
    assert agreement.agreement_tables(merged, None, labels, None) == {}
    tables = agreement.agreement_tables(merged, None, labels, detailed, n_boot=20)
    assert set(tables) == {"annotator_agreement", "annotator_agreement_bins",
                           "annotator_agreement_soft", "human_ceiling"}


def test_metric_by_agreement_figure(data):
    import matplotlib.pyplot as plt

    from ser_diag.plots.agreement import plot_metric_by_agreement

    labels, detailed, merged = data
    table = agreement.metrics_by_agreement(merged, agreement.file_agreement(detailed, labels), n_boot=20)
    fig, ax = plt.subplots()
    assert plot_metric_by_agreement(table, ax=ax) is ax
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == list(BINS)
    assert ax.get_ylabel().startswith("macro-F1")
    plt.close(fig)


def test_beyond_tables_say_why_agreement_is_skipped(data, tmp_path):
    from ser_diag.analysis.beyond import beyond_tables

    labels, _, merged = data
    (tmp_path / "Labels").mkdir()
    labels = labels.copy()
    labels.attrs["source"] = str(tmp_path / "Labels" / "labels_consensus.csv")
    tables = beyond_tables(merged, None, labels, n_boot=10)
    assert "human_ceiling" not in tables and "annotator_agreement" not in tables
    notes = tables["beyond_notes"]["note"].tolist()
    assert any("labels_detailed.csv" in n and "skipped" in n for n in notes)
    assert any("Audios" in n for n in notes)
    assert "leaderboard_ranks" in tables
