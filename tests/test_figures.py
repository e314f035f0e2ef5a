"""``python -m ser_diag figures`` end to end on a small simulated challenge.

Checks the written set (every figure as PDF and PNG, the tables, ``summary.md`` with the
synthetic banner), that the PNGs are not blank, that the numbers equal an independent
scikit-learn / numpy computation straight from the CSV files, and that bad input exits 2 with
one line on stderr and leaves ``--out`` untouched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from ser_diag import cli, io, resampling
from ser_diag.resampling import draws
from ser_diag.analysis import bias, confusion, regression_to_mean
from ser_diag.schema import CLASS_CODES, SYNTHETIC_BANNER
from ser_diag.simulate import simulate_challenge
from reference_metrics import reference_ccc

REPO = Path(__file__).resolve().parents[1]
N_BOOT = 100

STEMS = (
    "fig3a_confusion_categorical", "fig3a_confusion_difference",
    "fig3b_binned_arousal", "fig3c_binned_valence", "fig3d_binned_dominance",
    "regression_to_mean_extremes",
    "gender_audit_categorical", "gender_audit_attributes",
    "speaker_distribution_categorical", "speaker_distribution_attributes",
    "fig4_topk_fusion", "system_disagreement_categorical", "system_disagreement_attributes",
    # beyond the paper: honest ranks, annotator agreement, podcasts (no Audios/: no durations)
    "leaderboard_ranks", "win_probability", "metric_by_agreement", "podcast_metrics",
)
TABLES = (
    "metrics", "confusion", "minority_destinations", "confusion_difference", "binned", "per_bin",
    "shrinkage", "bin_means", "extreme_bin_recall", "recalibration", "gender_metrics",
    "gender_gaps", "speaker_metrics", "disagreement", "class_recall_by_gender", "fusion_curve",
    "fusion_ranking", "unit_comparison", "leaderboard_ranks", "leaderboard_pairs", "human_ceiling",
    "annotator_agreement", "annotator_agreement_bins", "annotator_agreement_soft", "podcast_metrics",
    "worst_podcasts", "gender_gap_by_podcast",
)


def run_cli(*args) -> subprocess.CompletedProcess:
    env = dict(os.environ, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "ser_diag", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def challenge(tmp_path_factory) -> Path:
    return simulate_challenge(tmp_path_factory.mktemp("challenge"), seed=3, n_systems=3, n=800)


@pytest.fixture(scope="module")
def figures_out(challenge, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "figures"
    done = run_cli("figures", "--labels", challenge / "Labels" / "labels_consensus.csv",
                   "--predictions", challenge / "predictions", "--out", out,
                   "--bootstrap", N_BOOT)
    assert done.returncode == 0, done.stderr
    return out


def _truth(challenge: Path, system: str) -> pd.DataFrame:
    """Development labels joined with one system's predictions, read with plain pandas."""
    labels = pd.read_csv(challenge / "Labels" / "labels_consensus.csv")
    labels = labels[labels["Split_Set"] == "Development"]
    cat = pd.read_csv(challenge / "predictions" / system / "categorical.csv")
    att = pd.read_csv(challenge / "predictions" / system / "attributes.csv")
    return (labels.merge(cat[["FileName", "EmoClass"]], on="FileName", suffixes=("", "_pred"))
            .merge(att, on="FileName", suffixes=("", "_pred")))


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's CCC with population (ddof 0) moments, the challenge convention."""
    return float(reference_ccc(x, y, ddof=0))


def test_every_figure_table_and_summary_is_written(figures_out):
    for stem in STEMS:
        for suffix in (".pdf", ".png"):
            path = figures_out / f"{stem}{suffix}"
            assert path.is_file() and path.stat().st_size > 1000, path
        assert (figures_out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    written_stems = {p.stem for p in figures_out.glob("*.png")}
    assert written_stems == set(STEMS)
    assert {p.stem for p in figures_out.glob("*.pdf")} == set(STEMS)
    for name in TABLES:
        table = pd.read_csv(figures_out / "tables" / f"{name}.csv")
        assert len(table) > 0, name
    summary = (figures_out / "summary.md").read_text(encoding="utf-8")
    assert SYNTHETIC_BANNER in summary
    assert f"{N_BOOT} resamples" in summary
    assert not list(figures_out.parent.glob(".*")), "staging leftovers next to --out"


def test_pngs_are_not_blank(figures_out):
    for stem in STEMS:
        image = matplotlib.image.imread(figures_out / f"{stem}.png")[..., :3]
        not_white = np.mean(np.any(image < 0.9, axis=-1))
        assert image.shape[0] > 300 and image.shape[1] > 300, stem
        assert 0.02 < not_white < 0.98, (stem, not_white)     # drawn on, not a solid fill
        assert image.std() > 0.05, stem


def test_numbers_match_an_independent_computation(challenge, figures_out):
    system = "sys03_top"
    truth = _truth(challenge, system)
    cat = truth[truth["EmoClass"].isin(CLASS_CODES)]
    expected = {
        "macro_f1": f1_score(cat["EmoClass"], cat["EmoClass_pred"], labels=list(CLASS_CODES),
                             average="macro", zero_division=0),
        "accuracy": accuracy_score(cat["EmoClass"], cat["EmoClass_pred"]),
        "uar": recall_score(cat["EmoClass"], cat["EmoClass_pred"], labels=list(CLASS_CODES),
                            average="macro", zero_division=0),
    }
    cccs = {a: _ccc(truth[a].to_numpy(float), truth[f"{a}_pred"].to_numpy(float))
            for a in ("EmoAct", "EmoVal", "EmoDom")}
    expected.update({f"ccc_{a}": v for a, v in cccs.items()})
    expected["ccc_mean"] = float(np.mean(list(cccs.values())))

    table = pd.read_csv(figures_out / "tables" / "metrics.csv")
    rows = table[table["system"] == system].set_index("metric")
    for metric, value in expected.items():
        assert rows.at[metric, "estimate"] == pytest.approx(value, abs=1e-9), metric
        assert rows.at[metric, "ci_low"] <= rows.at[metric, "estimate"] <= rows.at[metric, "ci_high"]
        assert rows.at[metric, "n_boot"] == N_BOOT
    assert rows.at["macro_f1", "n"] == len(cat) and rows.at["ccc_mean", "n"] == len(truth)

    summary = (figures_out / "summary.md").read_text(encoding="utf-8")
    line = next(line for line in summary.splitlines() if line.startswith(f"| {system} |"))
    cells = [c.strip() for c in line.strip("|").split("|")][1:]
    shown = [float(re.match(r"(-?\d+\.\d+)", c).group(1)) for c in cells]
    order = ["macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"]
    assert shown == [round(expected[m], 3) for m in order]


def test_bad_input_exits_2_and_writes_nothing(challenge, tmp_path, capsys):
    broken = tmp_path / "predictions"
    for system in ("sys01_baseline", "sys02_mid"):
        (broken / system).mkdir(parents=True)
        for name in ("categorical.csv", "attributes.csv"):
            text = (challenge / "predictions" / system / name).read_text()
            (broken / system / name).write_text(text)
    bad = broken / "sys02_mid" / "categorical.csv"
    lines = bad.read_text().splitlines()
    fields = lines[5].split(",")
    fields[1] = "Q"                                   # not a class code
    lines[5] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")

    labels = challenge / "Labels" / "labels_consensus.csv"
    fresh = tmp_path / "fresh_out"
    done = run_cli("figures", "--labels", labels, "--predictions", broken, "--out", fresh,
                   "--bootstrap", 10)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "categorical.csv" in done.stderr and "Q" in done.stderr
    assert not fresh.exists()

    existing = tmp_path / "existing_out"          # in-process this time: same code path, no restart
    existing.mkdir()
    (existing / "keep.txt").write_text("old run\n")
    capsys.readouterr()
    assert cli.main(["figures", "--labels", str(labels), "--predictions", str(broken),
                     "--out", str(existing), "--bootstrap", "10"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(p.name for p in existing.rglob("*")) == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "old run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing_out", "predictions"]


@pytest.mark.parametrize("by_speaker", [False, True])
def test_shared_weights_change_no_number(challenge, by_speaker):
    """``figures`` draws each set of resamples once (resampling.shared_weights); every table
    must be bit-for-bit what the analyses give on their own."""
    data = io.load(challenge / "Labels" / "labels_consensus.csv", challenge / "predictions")
    cat, att = data["categorical"], data["attributes"]
    kw = dict(n_boot=40, by_speaker=by_speaker, seed=5)

    def run():
        return [resampling.bootstrap_metrics(cat, **kw), resampling.bootstrap_metrics(att, **kw),
                confusion.minority_destinations(cat, system="sys03_top", **kw),
                regression_to_mean.shrinkage_table(att, **kw), regression_to_mean.bin_means(att, **kw),
                bias.group_metrics(att, **kw), bias.group_metrics(cat, **kw),
                resampling.bootstrap_metrics(att, **kw)]          # a second, cached request

    alone = run()
    with resampling.shared_weights():
        shared = run()
        assert len(draws._cache.entries) >= 2              # reused, not redrawn
    assert draws._cache is None
    for a, b in zip(alone, shared):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_frame_equal(alone[1], alone[-1], check_exact=True)


def test_shared_weights_are_read_only():
    with resampling.shared_weights():
        chunk = next(resampling._weight_chunks(50, 20, seed=1, reuse=True))
        with pytest.raises(ValueError):
            chunk[0, 0] = 3.0
        again = next(resampling._weight_chunks(50, 20, seed=1, reuse=True))
    assert np.array_equal(chunk, again)
    assert np.array_equal(resampling.bootstrap_weights(50, 20, seed=1)[:len(chunk)], chunk)


@pytest.mark.parametrize("by_speaker", [False, True])
def test_joint_regression_to_mean_bootstrap_equals_one_pair_at_a_time(challenge, by_speaker):
    """shrinkage_table / bin_means bootstrap every system x attribute in one product per
    weight chunk; the result must equal bootstrapping each pair on its own with the public
    per-pair statistic (up to floating-point summation order)."""
    from ser_diag.analysis.binned import assign_bins, attribute_edges, attribute_pairs

    att = io.load(challenge / "Labels" / "labels_consensus.csv", challenge / "predictions")["attributes"]
    kw = dict(n_boot=60, level=0.9, by_speaker=by_speaker, seed=2)
    table = regression_to_mean.shrinkage_table(att, **kw)
    means = regression_to_mean.bin_means(att, **kw)
    for name, attr, rows, true, pred in attribute_pairs(att):
        groups = rows["SpkrID"].reset_index(drop=True) if by_speaker else None
        ref = resampling.bootstrap(regression_to_mean.shrinkage_statistics(true, pred), len(rows),
                                   n_boot=60, groups=groups, level=0.9, seed=2).set_index("metric")
        got = table[(table["system"] == name) & (table["attribute"] == attr)].set_index("metric")
        for col in ("estimate", "ci_low", "ci_high"):
            np.testing.assert_allclose(got[col], ref.loc[got.index, col], rtol=1e-9, atol=1e-12)

        edges = attribute_edges(att, attr)
        idx = assign_bins(true, edges)
        k = len(edges) - 1
        onehot = np.eye(k)[idx]

        def per_bin(w, onehot=onehot, pred=pred, true=true, k=k):   # the direct definition
            n_in = w @ onehot
            return {**{f"mean_pred_{b}": (w @ (onehot[:, b] * pred)) / n_in[:, b] for b in range(k)},
                    **{f"bias_{b}": (w @ (onehot[:, b] * (pred - true))) / n_in[:, b] for b in range(k)}}

        with np.errstate(invalid="ignore", divide="ignore"):
            ref = resampling.bootstrap(per_bin, len(rows), n_boot=60, groups=groups, level=0.9,
                                       seed=2, dtype=np.float64).set_index("metric")
        got = means[(means["system"] == name) & (means["attribute"] == attr)]
        assert len(got) == len(np.unique(idx))
        for row in got.to_dict("records"):
            b = row["bin_index"]
            for ours, theirs in (("mean_pred", f"mean_pred_{b}"), ("bias", f"bias_{b}")):
                np.testing.assert_allclose(
                    [row[ours], row[f"{ours}_ci_low"], row[f"{ours}_ci_high"]],
                    ref.loc[theirs, ["estimate", "ci_low", "ci_high"]].to_numpy(float), rtol=1e-9, atol=1e-12)


def test_extreme_bin_recall_from_the_figures_binned_table(challenge):
    """``figures`` hands its binned table to extreme_bin_recall instead of recomputing it."""
    from ser_diag.analysis.binned import binned_matrix

    att = io.load(challenge / "Labels" / "labels_consensus.csv", challenge / "predictions")["attributes"]
    for scheme in ("unit", "quantile"):
        pd.testing.assert_frame_equal(
            regression_to_mean.extreme_bin_recall(att, scheme=scheme,
                                                  matrix=binned_matrix(att, scheme=scheme)),
            regression_to_mean.extreme_bin_recall(att, scheme=scheme), check_exact=True)
