"""The simulator plants what it says: checked with sklearn / plain numpy, not ser_diag.metrics."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ser_diag import simulate as sim
from ser_diag.errors import InputError
from ser_diag.schema import (
    ATTRIBUTES,
    CLASS_CODES,
    CONSENSUS_COLUMNS,
    MINORITY_NEGATIVE,
    PROB_COLUMNS,
    SYNTHETIC_BANNER,
)

REPO = Path(__file__).resolve().parents[2]
LONG_TO_CODE = {"Angry": "A", "Sad": "S", "Happy": "H", "Surprise": "U", "Fear": "F",
                "Disgust": "D", "Contempt": "C", "Neutral": "N"}


def ccc(x, y):
    """Lin's CCC with population variances."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    cov = ((x - x.mean()) * (y - y.mean())).mean()
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def macro_f1(true, pred):
    return f1_score(true, pred, labels=list(CLASS_CODES), average="macro", zero_division=0)


def scores(labels, predictions):
    """Per-system macro-F1 (8-class rows), CCCs and sd ratios, independent of ser_diag.metrics."""
    keep = labels["EmoClass"].isin(CLASS_CODES).to_numpy()
    rows = []
    for system, block in predictions.groupby("system", sort=False):
        assert (block["FileName"].to_numpy() == labels["FileName"].to_numpy()).all()
        row = {"system": system,
               "macro_f1": macro_f1(labels["EmoClass"].to_numpy()[keep], block["EmoClass"].to_numpy()[keep])}
        for a in ATTRIBUTES:
            row[a] = ccc(labels[a], block[a])
        row["ccc_mean"] = np.mean([row[a] for a in ATTRIBUTES])
        for a in ATTRIBUTES:
            row[f"sd_ratio_{a}"] = block[a].std(ddof=0) / labels[a].std(ddof=0)
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def dev():
    labels, detailed = sim.simulate_labels(6000, seed=0)
    return labels, detailed, sim.simulate_systems(labels, n_systems=8, seed=0)


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- labels
def test_same_seed_same_files_different_seed_different(tmp_path):
    a = sim.simulate_challenge(tmp_path / "a", seed=5, n_systems=3, n=400)
    b = sim.simulate_challenge(tmp_path / "b", seed=5, n_systems=3, n=400)
    c = sim.simulate_challenge(tmp_path / "c", seed=6, n_systems=3, n=400)
    assert _digest(a) == _digest(b)
    assert len([k for k in _digest(a) if not k.startswith(".")]) == 2 + 3 * 2 + 2  # .ser_diag-output: outputs' marker
    diff = {k for k, v in _digest(a).items() if _digest(c)[k] != v}
    assert "Labels/labels_consensus.csv" in diff
    assert "predictions/sys01_baseline/attributes.csv" in diff


def test_development_class_mix_matches_targets():
    labels, _ = sim.simulate_labels(6000, seed=1)
    counts = labels["EmoClass"].value_counts()
    assert counts.sum() == 6000
    target = pd.Series(sim.DEVELOPMENT_COUNTS, dtype=float)
    eight = counts.reindex(list(target.index)).astype(float)
    np.testing.assert_allclose(eight / eight.sum(), target / target.sum(), atol=0.002)
    assert 0.08 <= (counts["O"] + counts["X"]) / 6000 <= 0.12
    assert labels["Split_Set"].eq("Development").all()


def test_test3_is_balanced_with_test3_names():
    labels, _ = sim.simulate_labels(split="Test3", seed=0)
    assert len(labels) == 3200
    assert labels["EmoClass"].value_counts().to_dict() == dict.fromkeys(CLASS_CODES, 400)
    assert labels["FileName"].iloc[0] == "MSP-PODCAST_test3_0001.wav"
    assert labels["FileName"].iloc[-1] == "MSP-PODCAST_test3_3200.wav"
    assert labels["Split_Set"].eq("Test3").all()
    assert 200 <= labels["SpkrID"].nunique() <= 430


def test_attributes_follow_the_classes():
    labels, _ = sim.simulate_labels(6000, seed=2)
    m = labels.groupby("EmoClass")[list(ATTRIBUTES)].mean()
    assert labels[list(ATTRIBUTES)].stack().between(1, 7).all()
    assert m.loc["A", "EmoAct"] > m.loc["N", "EmoAct"] > m.loc["S", "EmoAct"]
    assert m.loc["A", "EmoVal"] < m.loc["N", "EmoVal"] < m.loc["H", "EmoVal"]
    assert m.loc["S", "EmoVal"] < m.loc["N", "EmoVal"]
    assert m.loc["A", "EmoDom"] > m.loc["N", "EmoDom"] > m.loc["S", "EmoDom"]
    assert m["EmoAct"].idxmin() == "S" and m["EmoVal"].idxmax() == "H"
    assert labels["EmoAct"].corr(labels["EmoDom"]) > 0.3
    sd = labels[list(ATTRIBUTES)].std()
    assert sd.between(0.6, 1.4).all()


def test_speakers_genders_and_file_names():
    labels, _ = sim.simulate_labels(6000, seed=3, unknown_speaker_share=0.0, unknown_gender_share=0.0)
    assert labels["FileName"].is_unique
    assert labels["FileName"].str.fullmatch(r"MSP-PODCAST_\d{4}_\d{4}\.wav").all()
    assert labels["FileName"].is_monotonic_increasing
    per_speaker = labels.groupby("SpkrID").size()
    assert per_speaker.size == 500  # n / 12
    assert per_speaker.max() > 10 * per_speaker.median()  # Zipf-like: a few busy speakers
    assert labels.groupby("SpkrID")["Gender"].nunique().eq(1).all()
    gender_of_speaker = labels.groupby("SpkrID")["Gender"].first()
    assert gender_of_speaker.eq("Female").mean() == pytest.approx(0.5, abs=0.01)
    assert str(labels["SpkrID"].dtype) == "Int64"


def test_unknown_speakers_are_missing_and_written_as_unknown(tmp_path):
    labels, _ = sim.simulate_labels(1200, seed=0, unknown_speaker_share=0.2)
    missing = labels["SpkrID"].isna()
    assert 0.05 < missing.mean() < 0.4
    assert labels.loc[missing, "Gender"].isna().all()
    out = sim.simulate_challenge(tmp_path / "u", n=1200, n_systems=1, unknown_speaker_share=0.2)
    raw = pd.read_csv(out / "Labels" / "labels_consensus.csv", dtype=str)
    assert (raw["SpkrID"] == "Unknown").sum() == missing.sum()


def _parse_detailed(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(raw.columns) == ["FileName", "EmoDetail"]
    parts = raw["EmoDetail"].str.split("; ", expand=True)
    out = pd.DataFrame({"FileName": raw["FileName"], "WorkerID": parts[0], "Major": parts[1],
                        "Second": parts[2]})
    for j, (key, attr) in enumerate(zip("AVD", ATTRIBUTES)):
        assert parts[3 + j].str.startswith(f"{key}:").all()
        out[attr] = parts[3 + j].str.slice(2).str.rstrip(";").astype(float)
    return out


def test_votes_have_the_consensus_as_plurality_and_x_has_none(tmp_path):
    out = sim.simulate_challenge(tmp_path / "v", seed=4, n_systems=1, n=1500)
    labels = pd.read_csv(out / "Labels" / "labels_consensus.csv")
    detailed = _parse_detailed(out / "Labels" / "labels_detailed.csv")
    assert detailed["WorkerID"].str.fullmatch(r"WORKER\d{5}").all()
    assert detailed["Major"].isin(list(LONG_TO_CODE) + [m for m in detailed["Major"] if m.startswith("Other-")]).all()
    assert detailed["Second"].str.contains(",").any()  # multi-label secondary emotions occur
    votes = detailed["Major"].map(LONG_TO_CODE).fillna("O")
    table = pd.crosstab(detailed["FileName"], votes).reindex(labels["FileName"])
    n_annot = table.sum(axis=1).to_numpy()
    assert n_annot.min() == 5 and n_annot.max() == 8
    assert detailed.groupby("FileName")["WorkerID"].nunique().reindex(labels["FileName"]).to_numpy().tolist() \
        == n_annot.tolist()
    counts = table.to_numpy()
    top = np.sort(counts, axis=1)
    plurality = table.columns.to_numpy()[counts.argmax(1)]
    x = labels["EmoClass"].eq("X").to_numpy()
    assert x.sum() > 50
    assert (top[x, -1] == top[x, -2]).all()  # X: tie for the top
    assert (top[~x, -1] > top[~x, -2]).all()  # others: strict plurality ...
    assert (plurality[~x] == labels["EmoClass"].to_numpy()[~x]).all()  # ... of the consensus
    soft = counts[~x].max(1) / n_annot[~x]
    assert 0.4 < soft.mean() < 0.9  # annotators disagree, realistically
    # consensus attributes are the annotators' means (file written with 4 significant digits)
    means = detailed.groupby("FileName")[list(ATTRIBUTES)].mean().reindex(labels["FileName"])
    np.testing.assert_allclose(labels[list(ATTRIBUTES)].to_numpy(), means.to_numpy(), atol=5e-3)
    assert np.all(detailed[list(ATTRIBUTES)].to_numpy() % 1 == 0)


# ------------------------------------------------------------------------------------ systems
def test_predictions_are_consistent(dev):
    labels, _, pred = dev
    assert list(pred.columns) == ["system", "FileName", "EmoClass", *PROB_COLUMNS, *ATTRIBUTES]
    assert len(pred) == 8 * len(labels)
    probs = pred[list(PROB_COLUMNS)].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    assert (np.array(CLASS_CODES)[probs.argmax(1)] == pred["EmoClass"].to_numpy()).all()
    assert pred[list(ATTRIBUTES)].stack().between(1, 7).all()
    names = list(pred["system"].unique())
    assert names[0] == "sys01_baseline" and names[-1] == "sys08_top"
    assert all(re.fullmatch(r"sys\d\d_\w+", s) for s in names)


def test_default_systems_span_the_published_range(dev):
    labels, _, pred = dev
    table = scores(labels, pred)
    with pd.option_context("display.width", 200):
        print("\n" + table.round(3).to_string(index=False))
    worst, best = table.iloc[0], table.iloc[-1]
    assert worst["macro_f1"] == pytest.approx(0.33, abs=0.03)
    assert best["macro_f1"] == pytest.approx(0.43, abs=0.03)
    assert worst["ccc_mean"] == pytest.approx(0.58, abs=0.03)
    assert best["ccc_mean"] == pytest.approx(0.61, abs=0.03)
    assert best["EmoVal"] == pytest.approx(0.64, abs=0.03)
    assert (table["EmoDom"] < table[["EmoAct", "EmoVal"]].min(axis=1)).all()
    sd_ratio = table[[f"sd_ratio_{a}" for a in ATTRIBUTES]]
    assert sd_ratio.stack().between(0.62, 0.88).all()  # regression to the mean shows
    assert (sd_ratio.iloc[0] < sd_ratio.iloc[-1] - 0.05).all()  # the top systems shrink less
    assert table["macro_f1"].is_monotonic_increasing or table["macro_f1"].corr(
        pd.Series(range(8)), method="spearman") > 0.9


def test_fusing_top_systems_helps_classes_and_valence_most(dev):
    labels, _, pred = dev
    keep = labels["EmoClass"].isin(CLASS_CODES).to_numpy()
    names = list(pred["system"].unique())[::-1]  # best first
    k, n = 5, len(labels)
    top = pred[pred["system"].isin(names[:k])]
    probs = top[list(PROB_COLUMNS)].to_numpy().reshape(k, n, -1).mean(0)
    fused_cls = np.array(CLASS_CODES)[probs.argmax(1)]
    single = pred[pred["system"] == names[0]]
    true = labels["EmoClass"].to_numpy()
    gain_f1 = macro_f1(true[keep], fused_cls[keep]) - macro_f1(true[keep], single["EmoClass"].to_numpy()[keep])
    fused = top[list(ATTRIBUTES)].to_numpy().reshape(k, n, -1).mean(0)
    gain = {a: ccc(labels[a], fused[:, j]) - ccc(labels[a], single[a]) for j, a in enumerate(ATTRIBUTES)}
    assert gain_f1 > 0.03
    assert gain["EmoVal"] > 0.05
    assert gain["EmoVal"] > 2 * max(gain["EmoAct"], gain["EmoDom"])


#: The marginal per-file model of the module docstring, without the corpus structure
#: (speaker-clustered errors, hard podcast, gap speakers) that only adds sampling noise to a
#: single realisation; the structure is checked in its own tests below.
PLAIN = dict(speaker_error_share=0.0, hard_podcast_factor=1.0, gap_speakers=0)


def _one(labels, seed=0, **spec):
    return sim.simulate_systems(labels, seed=seed, specs=[sim.SystemSpec("probe", **spec)],
                                structure=sim.plant_structure(labels, seed, **PLAIN))


def test_planted_shrinkage_is_the_slope_and_sd_ratio(dev):
    labels = dev[0]
    pred = _one(labels, shrinkage=0.6, rho=0.995, bias={"EmoAct": 0.0, "EmoVal": 0.3, "EmoDom": 0.0})
    for a in ATTRIBUTES:
        x, y = labels[a].to_numpy(), pred[a].to_numpy()
        slope = np.polyfit(x, y, 1)[0]
        assert slope == pytest.approx(0.6, abs=0.05), a
        assert y.std() / x.std() == pytest.approx(0.6, abs=0.05), a
    assert (pred["EmoVal"] - labels["EmoVal"]).mean() == pytest.approx(0.3, abs=0.02)
    assert (pred["EmoAct"] - labels["EmoAct"]).mean() == pytest.approx(0.0, abs=0.02)
    # no shrinkage, no error: the truth
    exact = _one(labels, shrinkage=1.0, rho=1.0)
    np.testing.assert_allclose(exact[list(ATTRIBUTES)].to_numpy(), labels[list(ATTRIBUTES)].to_numpy())


def test_correlation_scale_slope_and_ccc_follow_the_documented_formulas(dev):
    labels = dev[0]
    v, rho, bias = 0.7, 0.6, {"EmoAct": 0.0, "EmoVal": 0.4, "EmoDom": -0.2}
    pred = _one(labels, shrinkage=v, rho=rho, bias=bias)
    for a in ATTRIBUTES:
        x, y = labels[a].to_numpy(), pred[a].to_numpy()
        assert np.corrcoef(x, y)[0, 1] == pytest.approx(rho, abs=0.02), a
        assert y.std() / x.std() == pytest.approx(v, abs=0.02), a
        assert np.polyfit(x, y, 1)[0] == pytest.approx(rho * v, abs=0.02), a
        assert y.mean() - x.mean() == pytest.approx(bias[a], abs=0.03), a
        expected = 2 * rho * v / (1 + v**2 + (bias[a] / x.std()) ** 2)
        assert ccc(x, y) == pytest.approx(expected, abs=0.02), a
    assert sim.rho_for_ccc(2 * rho * v / (1 + v**2), v) == pytest.approx(rho)
    with pytest.raises(ValueError):
        sim.rho_for_ccc(0.9, 0.3)  # 2 v / (1 + v^2) = 0.55 < 0.9: out of reach


def _side_slopes_and_decile_gaps(x, y, hard):
    """OLS slopes below / above the mean and the mean error in the bottom / top decile, ordered
    (hard side, other side)."""
    below = x < x.mean()
    slopes = [np.polyfit(x[m], y[m], 1)[0] for m in (below, ~below)]
    deciles = [x <= np.quantile(x, 0.1), x >= np.quantile(x, 0.9)]
    gaps = [abs((y - x)[m].mean()) for m in deciles]
    return (slopes[::-1], gaps[::-1]) if hard > 0 else (slopes, gaps)


def test_extreme_compression_pulls_the_hard_side_to_the_middle(dev):
    labels = dev[0]
    v, c = 0.8, 0.4
    plain = _one(labels, shrinkage=v, rho=1.0)
    kinked = _one(labels, shrinkage=v, rho=1.0, extreme_compression=c)
    assert sim.HARD_SIDE == {"EmoAct": -1.0, "EmoVal": 1.0, "EmoDom": -1.0}  # paper finding 2
    for a in ATTRIBUTES:
        x, y = labels[a].to_numpy(), kinked[a].to_numpy()
        hard = sim.HARD_SIDE[a]
        # independent: the standardised truth, hard side scaled by 1 - c, re-standardised
        z = (x - x.mean()) / x.std()
        sd_k = np.where(z * hard > 0, (1 - c) * z, z).std()
        (slope_hard, slope_other), (gap_hard, gap_other) = _side_slopes_and_decile_gaps(x, y, hard)
        assert slope_hard == pytest.approx(v * (1 - c) / sd_k, abs=0.01), a
        assert slope_other == pytest.approx(v / sd_k, abs=0.01), a
        assert y.std() / x.std() == pytest.approx(v, abs=0.01), a  # the scale is still v
        assert y.mean() == pytest.approx(x.mean(), abs=0.01), a  # and no location bias
        # the hard extremes are predicted worse than the other extremes, and worse than without c
        (_, _), (plain_hard, plain_other) = _side_slopes_and_decile_gaps(x, plain[a].to_numpy(), hard)
        assert gap_hard > gap_other + 0.2, a
        assert gap_hard > plain_hard + 0.1 and gap_other < plain_other, a
    with pytest.raises(ValueError):
        sim.SystemSpec("bad", extreme_compression=1.0)


def test_minority_to_anger_share():
    labels, _ = sim.simulate_labels(split="Test3", seed=0)  # 1,200 F/D/C files
    minority = labels["EmoClass"].isin(MINORITY_NEGATIVE).to_numpy()
    for planted in (0.0, 0.5):
        pred = _one(labels, skill=8.0, minority_to_anger=planted)
        as_anger = (pred["EmoClass"].to_numpy()[minority] == "A").mean()
        assert as_anger == pytest.approx(planted, abs=0.05)
        other = ~minority & labels["EmoClass"].ne("A").to_numpy()
        assert (pred["EmoClass"].to_numpy()[other] == "A").mean() < 0.02  # only F/D/C are moved
    default = _one(labels, minority_to_anger=0.3)  # realistic skill: at least the planted share
    assert (default["EmoClass"].to_numpy()[minority] == "A").mean() >= 0.3


def _gender_scores(labels, pred):
    out = {}
    for g in ("Female", "Male"):
        m = labels["Gender"].eq(g).to_numpy()
        out[g] = {"accuracy": (pred["EmoClass"].to_numpy()[m] == labels["EmoClass"].to_numpy()[m]).mean(),
                  "ccc": np.mean([ccc(labels[a].to_numpy()[m], pred[a].to_numpy()[m]) for a in ATTRIBUTES])}
    return out


def test_gender_gap_in_the_planted_direction_and_none_without():
    labels, _ = sim.simulate_labels(split="Test3", seed=0)
    female_worse = _gender_scores(labels, _one(labels, gender_gap=0.8))
    assert female_worse["Male"]["accuracy"] - female_worse["Female"]["accuracy"] > 0.1
    assert female_worse["Male"]["ccc"] - female_worse["Female"]["ccc"] > 0.1
    male_worse = _gender_scores(labels, _one(labels, gender_gap=-0.8))
    assert male_worse["Female"]["accuracy"] - male_worse["Male"]["accuracy"] > 0.1
    assert male_worse["Female"]["ccc"] - male_worse["Male"]["ccc"] > 0.1
    for seed in (0, 1):
        fair = _gender_scores(labels, _one(labels, seed=seed, gender_gap=0.0))
        assert abs(fair["Female"]["accuracy"] - fair["Male"]["accuracy"]) < 0.04
        assert abs(fair["Female"]["ccc"] - fair["Male"]["ccc"]) < 0.04


def test_inter_system_error_correlation_is_rho(dev):
    labels = dev[0]
    n = len(labels)
    specs = [sim.SystemSpec("one", shrinkage=0.7, rho=0.6), sim.SystemSpec("two", shrinkage=0.7, rho=0.6)]
    agreement = []
    for r in (0.0, 0.5, 0.9):
        pred = sim.simulate_systems(labels, specs=specs, error_correlation=r, seed=3,
                                    structure=sim.plant_structure(labels, 3, **PLAIN))
        for a in ATTRIBUTES:
            planted = labels[a].mean() + 0.7 * 0.6 * (labels[a] - labels[a].mean())  # E[pred | true]
            err = pred[a].to_numpy().reshape(2, n) - planted.to_numpy()
            assert np.corrcoef(err)[0, 1] == pytest.approx(r, abs=0.05), (r, a)
        classes = pred["EmoClass"].to_numpy().reshape(2, n)
        agreement.append((classes[0] == classes[1]).mean())
    assert agreement[0] < agreement[1] - 0.05 < agreement[2] - 0.1


def test_overrides_reach_every_default_system(dev):
    specs = sim.default_systems(4, gender_gap=0.0, minority_to_anger=0.0)
    assert [s.name for s in specs] == ["sys01_baseline", "sys02_mid", "sys03_mid", "sys04_top"]
    assert all(s.gender_gap == 0.0 and s.minority_to_anger == 0.0 for s in specs)
    assert specs[0].skill < specs[-1].skill
    assert sim.SystemSpec("x", shrinkage=0.5).shrinkage == dict.fromkeys(ATTRIBUTES, 0.5)
    assert specs[0].extreme_compression["EmoAct"] > specs[-1].extreme_compression["EmoAct"] > 0
    with pytest.raises(ValueError):
        sim.SystemSpec("x", rho=1.2)
    with pytest.raises(TypeError):
        sim.default_systems(2, speed=3)
    with pytest.raises(InputError):
        sim.simulate_labels(0)
    with pytest.raises(InputError):
        sim.default_systems(0)


# ------------------------------------------------------------------------------------- files
def test_files_in_the_official_layouts(tmp_path):
    out = sim.simulate_challenge(tmp_path / "demo", seed=2, n_systems=3, n=600, gender_gap=0.2)
    labels = pd.read_csv(out / "Labels" / "labels_consensus.csv")
    assert tuple(labels.columns) == CONSENSUS_COLUMNS
    assert len(labels) == 600
    expected, _ = sim.simulate_labels(600, seed=2)
    np.testing.assert_allclose(labels[list(ATTRIBUTES)], expected[list(ATTRIBUTES)], atol=5e-3)
    assert (labels["EmoClass"] == expected["EmoClass"]).all()
    truth = json.loads((out / "simulation_truth.json").read_text())
    names = sorted(p.name for p in (out / "predictions").iterdir())
    assert names == [s["name"] for s in truth["systems"]] == ["sys01_baseline", "sys02_mid", "sys03_top"]
    assert all(s["gender_gap"] == 0.2 for s in truth["systems"])
    assert truth["seed"] == 2 and truth["synthetic"] is True
    assert truth["error_correlation"] == sim.DEFAULT_ERROR_CORRELATION
    assert set(truth["systems"][0]["rho"]) == set(ATTRIBUTES)
    for name in names:
        cat = pd.read_csv(out / "predictions" / name / "categorical.csv")
        att = pd.read_csv(out / "predictions" / name / "attributes.csv")
        assert list(cat.columns) == ["FileName", "EmoClass", *PROB_COLUMNS]
        assert list(att.columns) == ["FileName", *ATTRIBUTES]
        assert (cat["FileName"] == labels["FileName"]).all() and (att["FileName"] == labels["FileName"]).all()
        assert cat["EmoClass"].isin(CLASS_CODES).all()
    marker = (out / "SYNTHETIC_DEMO.txt").read_text()
    assert SYNTHETIC_BANNER in marker and "seed: 2" in marker


def test_failure_leaves_nothing_half_written(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sim.challenge, "write_attribute_predictions", broken)  # the module that writes
    with pytest.raises(OSError):
        sim.simulate_challenge(tmp_path / "half", n=200, n_systems=2)
    assert not any((tmp_path / "half").rglob("*")) if (tmp_path / "half").exists() else True
    assert [p.name for p in tmp_path.iterdir()] in ([], ["half"])


def test_cli_simulate(tmp_path):
    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "ser_diag", "simulate", "--out", str(out), "--seed", "1",
                           "--systems", "3", "--n", "500"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(out / "Labels" / "labels_consensus.csv")) == 500
    assert len(list((out / "predictions").glob("*/categorical.csv"))) == 3
    assert (out / "SYNTHETIC_DEMO.txt").exists()
    bad = subprocess.run([sys.executable, "-m", "ser_diag", "simulate", "--out", str(tmp_path / "bad"),
                          "--n", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------ corpus structure
@pytest.fixture(scope="module")
def structured(tmp_path_factory):
    root = sim.simulate_challenge(tmp_path_factory.mktemp("structured") / "ch", seed=2, n_systems=5, n=6000)
    labels = pd.read_csv(root / "Labels" / "labels_consensus.csv")
    detailed_truth = json.loads((root / "simulation_truth.json").read_text())
    preds = {p.name: pd.read_csv(p / "categorical.csv").merge(pd.read_csv(p / "attributes.csv"), on="FileName")
             for p in sorted((root / "predictions").iterdir())}
    return root, labels, detailed_truth, preds


def test_speakers_are_heavy_tailed_with_unknowns_and_speaker_level_gender(structured):
    _, labels, truth, _ = structured
    known = labels[labels["SpkrID"] != "Unknown"]
    per = known.groupby("SpkrID").size()
    assert per.median() <= 10 and per.max() >= 100          # many small speakers, some with hundreds
    assert (labels["SpkrID"] == "Unknown").mean() > 0.005
    speaker_gender = known.groupby("SpkrID")["Gender"].nunique()
    assert speaker_gender.max() == 1                         # gender is a speaker attribute
    unknown_gender = known.groupby("SpkrID")["Gender"].first().eq("Unknown")
    assert unknown_gender.sum() >= 2 and truth["speakers"]["n_speakers_unknown_gender"] == unknown_gender.sum()


def test_errors_are_clustered_by_speaker_with_the_planted_share():
    """Within-speaker correlation of one system's attribute errors (no common error part) is
    the planted ``speaker_error_share`` (one-way ANOVA ICC over speakers)."""
    labels, _ = sim.simulate_labels(6000, seed=4)
    spec = sim.SystemSpec("probe", shrinkage=0.7, rho=0.6, gender_gap=0.0)
    for share in (0.0, 0.3):
        structure = sim.plant_structure(labels, 4, speaker_error_share=share, hard_podcast_factor=1.0)
        pred = sim.simulate_systems(labels, specs=[spec], seed=4, error_correlation=0.0, structure=structure)
        m, sd = labels["EmoVal"].mean(), labels["EmoVal"].std(ddof=0)
        err = (pred["EmoVal"] - (m + 0.7 * 0.6 * (labels["EmoVal"] - m))).to_numpy()   # pred - E[pred | true]
        frame = pd.DataFrame({"e": err, "s": labels["SpkrID"]}).dropna()
        groups = frame.groupby("s")["e"]
        k = groups.size()
        big = k[k >= 5].index
        f = frame[frame["s"].isin(big)]
        g = f.groupby("s")["e"]
        n_i = g.size().to_numpy()
        msb = (n_i * (g.mean().to_numpy() - f["e"].mean()) ** 2).sum() / (len(n_i) - 1)
        msw = ((f["e"] - g.transform("mean")) ** 2).sum() / (len(f) - len(n_i))
        n0 = (n_i.sum() - (n_i ** 2).sum() / n_i.sum()) / (len(n_i) - 1)
        icc = (msb - msw) / (msb + (n0 - 1) * msw)
        assert icc == pytest.approx(share, abs=0.08), share


def test_planted_tie_hard_podcast_agreement_and_gap_speakers_are_recorded_and_real(structured):
    root, labels, truth, preds = structured
    s = truth["structure"]
    tie = truth["tie"]["systems"]
    specs = {x["name"]: x for x in truth["systems"]}
    assert {k: v for k, v in specs[tie[0]].items() if k != "name"} == \
        {k: v for k, v in specs[tie[1]].items() if k != "name"}
    keep = labels["EmoClass"].isin(CLASS_CODES).to_numpy()
    f1 = {name: macro_f1(labels["EmoClass"][keep], p["EmoClass"][keep])
          for name, p in preds.items()}
    assert abs(f1[tie[0]] - f1[tie[1]]) < 0.03
    # hard podcast: every system is less accurate there
    podcast = sim.podcast_of(labels["FileName"])
    hard = podcast == s["hard_podcast"]["podcast"]
    assert hard.sum() == s["hard_podcast"]["n_files"] and s["hard_podcast"]["noise_factor"] > 1
    for name, p in preds.items():
        right = (p["EmoClass"] == labels["EmoClass"]).to_numpy() & keep
        assert right[hard].sum() / keep[hard].sum() < right[~hard].sum() / keep[~hard].sum() - 0.03, name
    # annotator agreement: files the annotators disagree on are harder
    detailed = pd.read_csv(root / "Labels" / "labels_detailed.csv")
    assert s["agreement_effect"]["effect"] > 0
    assert len(detailed)                                     # agreement is recomputable from the votes
    # gap speakers: female, and noisier in systems with a gender gap
    gap = labels["SpkrID"].isin([str(x) for x in s["gap_speakers"]["SpkrID"]]).to_numpy()
    assert gap.sum() == s["gap_speakers"]["n_files"] and (labels.loc[gap, "Gender"] == "Female").all()
    err = np.mean([np.abs(p["EmoAct"] - labels["EmoAct"]).to_numpy() for p in preds.values()], axis=0)
    female = (labels["Gender"] == "Female").to_numpy()
    assert err[gap].mean() > err[female & ~gap].mean() * 1.2


def test_vote_agreement_drives_errors():
    labels, detailed = sim.simulate_labels(6000, seed=5)
    agreement = sim.vote_agreement(labels, detailed)
    spec = sim.SystemSpec("probe", gender_gap=0.0)
    accuracy = {}
    for effect in (0.0, 1.5):
        structure = sim.plant_structure(labels, 5, agreement=agreement, agreement_effect=effect,
                                        hard_podcast_factor=1.0, gap_speakers=0)
        pred = sim.simulate_systems(labels, specs=[spec], seed=5, structure=structure)
        right = (pred["EmoClass"] == labels["EmoClass"]).to_numpy()
        low = agreement <= np.quantile(agreement, 0.25)
        high = agreement >= np.quantile(agreement, 0.75)
        accuracy[effect] = (right[high].mean(), right[low].mean(), right.mean())
    assert accuracy[1.5][0] - accuracy[1.5][1] > accuracy[0.0][0] - accuracy[0.0][1] + 0.05
    assert accuracy[1.5][2] == pytest.approx(accuracy[0.0][2], abs=0.03)   # mean difficulty kept
