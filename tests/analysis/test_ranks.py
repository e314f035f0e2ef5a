"""Leaderboard ranks: a planted tie and clear gaps are recovered, and rank intervals, p_best,
win probabilities and Holm adjustments equal an independent brute-force computation on the
same resamples."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from ser_diag import io
from ser_diag.analysis import ranks
from ser_diag.resampling import bootstrap_metrics, bootstrap_weights
from ser_diag.schema import ATTRIBUTES, CLASS_CODES

N_SPEAKERS, PER_SPEAKER = 60, 10


def _labels(rng, n_speakers=N_SPEAKERS, per_speaker=PER_SPEAKER):
    n = n_speakers * per_speaker
    speaker = np.repeat(np.arange(n_speakers), per_speaker)
    true = rng.normal(4.0, 1.0, size=(n, 3)).clip(1, 7)
    return pd.DataFrame({
        "FileName": [f"MSP-PODCAST_{s % 12:04d}_{i:04d}.wav" for i, s in enumerate(speaker)],
        "EmoClass": np.array(CLASS_CODES)[np.arange(n) % 8],
        **{a: true[:, j] for j, a in enumerate(ATTRIBUTES)},
        "SpkrID": pd.array(100 + speaker, dtype="Int64"),
        "Gender": np.where(speaker % 2 == 0, "Female", "Male"),
        "Split_Set": "Development",
    })


def _with_errors(rng, true_codes, error_rate):
    """Hard labels: each file wrong with probability ``error_rate`` (a uniformly drawn other class)."""
    idx = pd.Index(CLASS_CODES).get_indexer(true_codes)
    wrong = rng.random(len(idx)) < error_rate
    shift = rng.integers(1, 8, size=len(idx))
    return np.array(CLASS_CODES)[np.where(wrong, (idx + shift) % 8, idx)]


def _challenge(seed=0):
    """Four systems: 'good' (10% errors), 'twin' (identical file to good), 'mid' (30%), 'bad' (60%);
    attributes: noise sd 0.3, identical twin, 0.8, 1.6."""
    rng = np.random.default_rng(seed)
    labels = _labels(rng)
    good_cls = _with_errors(rng, labels["EmoClass"], 0.10)
    good_att = (labels[list(ATTRIBUTES)].to_numpy() + rng.normal(0, 0.3, (len(labels), 3))).clip(1, 7)
    systems = {"good": (good_cls, good_att), "twin": (good_cls, good_att),
               "mid": (_with_errors(rng, labels["EmoClass"], 0.30),
                       (labels[list(ATTRIBUTES)].to_numpy() + rng.normal(0, 0.8, (len(labels), 3))).clip(1, 7)),
               "bad": (_with_errors(rng, labels["EmoClass"], 0.60),
                       (labels[list(ATTRIBUTES)].to_numpy() + rng.normal(0, 1.6, (len(labels), 3))).clip(1, 7))}
    preds = pd.concat([pd.DataFrame({"system": name, "FileName": labels["FileName"], "EmoClass": cls,
                                     **{a: att[:, j] for j, a in enumerate(ATTRIBUTES)}})
                       for name, (cls, att) in systems.items()], ignore_index=True)
    return labels, {task: io.merge(labels, preds, task) for task in ("categorical", "attributes")}


@pytest.fixture(scope="module")
def challenge():
    return _challenge()


def test_unique_systems_keeps_distinct_predictions_apart_even_when_digests_collide(challenge, monkeypatch):
    """Identical prediction files share one representative ('twin' -> 'good'), distinct ones get
    their own, also when every digest is the same (the bytes decide, not the digest)."""
    from ser_diag.evaluation import TaskData

    class Same:
        def __init__(self, *args, **kwargs):
            pass

        def digest(self):
            return b"x"

    _, merged = challenge
    for task, frame in merged.items():
        names, positions = TaskData(frame, task).blocks()[0]
        expected = ranks.unique_systems(frame, positions)
        of = dict(zip(names, expected[1].tolist()))
        assert of["twin"] == of["good"] and len({of["good"], of["mid"], of["bad"]}) == 3
        assert len(expected[0]) == 3 and sorted(names[i] for i in expected[0]) in (["bad", "good", "mid"],
                                                                                  ["bad", "mid", "twin"])
        monkeypatch.setattr(ranks.hashlib, "blake2b", Same)
        collided = ranks.unique_systems(frame, positions)
        monkeypatch.undo()
        assert collided[0] == expected[0] and collided[1].tolist() == expected[1].tolist()


def test_tie_and_gaps_recovered(challenge):
    _, merged = challenge
    board, pairs = ranks.leaderboard_ranks(merged["categorical"], n_boot=300, unit="speaker", seed=1)
    row = board.set_index("system")
    # the identical prediction files are tied: same estimate, rank, interval, p_best and tier
    for column in ("estimate", "rank", "rank_ci_low", "rank_ci_high", "p_best", "tier"):
        assert row.at["good", column] == row.at["twin", column], column
    assert row.at["good", "rank"] == 1 and row.at["good", "rank_ci_low"] == 1
    assert row.at["good", "p_best"] == pytest.approx(0.5)          # they share every resample's top
    tie = pairs[(pairs["system_a"].isin(["good", "twin"])) & (pairs["system_b"].isin(["good", "twin"]))].iloc[0]
    assert tie["p_value"] == 1.0 and tie["win_prob"] == 0.5 and not tie["significant"]
    # clear gaps: three tiers, ranks certain
    assert row.loc[["good", "twin", "mid", "bad"], "tier"].tolist() == [1, 1, 2, 3]
    assert row.at["mid", "rank"] == 3 and (row.at["mid", "rank_ci_low"], row.at["mid", "rank_ci_high"]) == (3, 3)
    assert row.at["bad", "p_best"] == 0.0
    # planted values inside 99% CIs (3 checks, so a fixed seed rarely misses by chance):
    # macro-F1 = 1 - error rate in expectation (balanced classes, errors spread uniformly)
    wide = ranks.leaderboard_ranks(merged["categorical"], n_boot=300, unit="speaker", seed=1,
                                   level=0.99)[0].set_index("system")
    for system, error in (("good", 0.10), ("mid", 0.30), ("bad", 0.60)):
        assert wide.at[system, "ci_low"] <= 1 - error <= wide.at[system, "ci_high"], system
    assert set(board["unit"]) == {"speaker"}
    assert {"system", "task", "metric", "estimate", "ci_low", "ci_high", "rank", "rank_ci_low", "rank_ci_high",
            "p_best", "tier"} <= set(board.columns)


def test_attribute_ranks_tie_and_tiers(challenge):
    _, merged = challenge
    board, _ = ranks.leaderboard_ranks(merged["attributes"], n_boot=200, unit="speaker")
    assert list(pd.unique(board["metric"])) == ["ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"]
    for metric, part in board.groupby("metric"):
        row = part.set_index("system")
        assert row.at["good", "tier"] == row.at["twin", "tier"] == 1
        assert row.at["good", "rank"] == row.at["twin", "rank"] == 1
        assert row.at["bad", "tier"] == 3 and row.at["bad", "rank"] == 4


def test_cis_are_those_of_the_metrics_table(challenge):
    _, merged = challenge
    board, _ = ranks.leaderboard_ranks(merged["categorical"], n_boot=150, unit="speaker", seed=3)
    table = bootstrap_metrics(merged["categorical"], n_boot=150, by_speaker=True, seed=3)
    table = table[table["metric"] == "macro_f1"].set_index("system")
    for row in board.itertuples():
        assert row.ci_low == pytest.approx(table.at[row.system, "ci_low"], abs=1e-12)
        assert row.ci_high == pytest.approx(table.at[row.system, "ci_high"], abs=1e-12)


def test_ranks_reuse_the_resamples_of_the_metrics_table(challenge, monkeypatch):
    """diagnose hands bootstrap_metrics' resamples to the ranks: the same leaderboard as scoring
    the systems again (categorical: bit-identical; attributes: up to BLAS rounding), and no
    second pass over the resamples."""
    _, merged = challenge
    for task in ("categorical", "attributes"):
        fresh_board, fresh_pairs = ranks.leaderboard_ranks(merged[task], n_boot=120, seed=5)
        kept = {}
        table = bootstrap_metrics(merged[task], n_boot=120, seed=5, distributions=kept)
        with monkeypatch.context() as m:
            m.setattr(ranks, "headline_distribution", lambda *a, **k: pytest.fail("scored again"))
            board, pairs = ranks.leaderboard_ranks(merged[task], n_boot=120, seed=5, distributions=kept)
        exact = task == "categorical"
        pd.testing.assert_frame_equal(board, fresh_board, check_exact=exact, rtol=1e-12)
        pd.testing.assert_frame_equal(pairs, fresh_pairs, check_exact=exact, rtol=1e-12, atol=1e-12)
        ci = table.set_index(["system", "metric"])
        for row in board.itertuples():
            assert (row.ci_low, row.ci_high) == tuple(ci.loc[(row.system, row.metric), ["ci_low", "ci_high"]])
    kept = {}
    bootstrap_metrics(merged["categorical"], n_boot=60, seed=5, distributions=kept)
    with monkeypatch.context() as m:                      # other settings: the resamples are not reused
        m.setattr(ranks, "headline_distribution", lambda *a, **k: pytest.fail("scored again"))
        with pytest.raises(pytest.fail.Exception):
            ranks.leaderboard_ranks(merged["categorical"], n_boot=120, seed=5, distributions=kept)


def test_rank_statistics_match_brute_force(challenge):
    labels, merged = challenge
    frame, n_boot, seed = merged["categorical"], 60, 7
    board, pairs = ranks.leaderboard_ranks(frame, n_boot=n_boot, unit="speaker", seed=seed)
    systems = ["bad", "good", "mid", "twin"]
    first = frame[frame["system"] == systems[0]].reset_index(drop=True)
    weights = bootstrap_weights(len(first), n_boot, groups=first["SpkrID"], seed=seed)
    truth = first["EmoClass_true"].to_numpy()
    preds = {s: frame[frame["system"] == s]["EmoClass_pred"].to_numpy() for s in systems}
    scores = np.array([[f1_score(truth, preds[s], labels=list(CLASS_CODES), average="macro", zero_division=0,
                                 sample_weight=w) for s in systems] for w in weights])          # (B, S)
    ranks_b = np.array([[1 + sum(row[t] > row[i] for t in range(len(systems))) for i in range(len(systems))]
                        for row in scores])
    for i, system in enumerate(systems):
        got = board.set_index("system").loc[system]
        ordered = np.sort(ranks_b[:, i])
        low = ordered[int(np.ceil(0.025 * n_boot)) - 1]
        high = ordered[int(np.ceil(0.975 * n_boot)) - 1]
        assert (got["rank_ci_low"], got["rank_ci_high"]) == (low, high), system
        best = [1.0 / np.sum(row == row.max()) if row[i] == row.max() else 0.0 for row in scores]
        assert got["p_best"] == pytest.approx(np.mean(best))
    for row in pairs.itertuples():
        a, b = systems.index(row.system_a), systems.index(row.system_b)
        d = scores[:, a] - scores[:, b]
        assert row.win_prob == pytest.approx(np.mean(d > 0) + 0.5 * np.mean(d == 0))
        assert row.se == pytest.approx(np.std(d, ddof=1), abs=1e-9)


def test_holm_against_definition():
    rng = np.random.default_rng(0)
    p = rng.random(12) ** 3
    m = len(p)
    order = np.argsort(p)
    expected = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        expected[i] = running
    np.testing.assert_allclose(ranks.holm(p), expected)
    assert np.isnan(ranks.holm([0.01, np.nan])[1])


def test_tier_rule_is_relative_to_the_tier_head():
    # a > b > c, a-b and b-c not significant, a-c significant: c opens tier 2 (head a)
    systems = ["a", "b", "c"]
    est = np.array([0.5, 0.45, 0.4])
    pairs = pd.DataFrame({"system_a": ["a", "a", "b"], "system_b": ["b", "c", "c"], "estimate_a": [0.5, 0.5, 0.45],
                          "estimate_b": [0.45, 0.4, 0.4], "p_holm": [0.2, 0.01, 0.2]})
    assert ranks._tiers(systems, est, pairs, 0.05).tolist() == [1, 1, 2]


def test_memory_streams_systems_in_blocks(challenge, monkeypatch):
    """Blocks of systems give the same numbers as one block (no S x S x B array needed)."""
    _, merged = challenge
    whole, _ = ranks.leaderboard_ranks(merged["attributes"], n_boot=50, unit="speaker")
    monkeypatch.setattr(ranks, "SYSTEM_BLOCK", 1)
    blocks, _ = ranks.leaderboard_ranks(merged["attributes"], n_boot=50, unit="speaker")
    pd.testing.assert_frame_equal(whole, blocks)


def test_rank_tables_both_tasks(challenge):
    _, merged = challenge
    tables = ranks.rank_tables(merged["categorical"], merged["attributes"], n_boot=50)
    board = tables["leaderboard_ranks"]
    assert set(board["task"]) == {"categorical", "attributes"}
    assert set(board["unit"]) == {"speaker"}                     # auto: speakers are known
    pairs = tables["leaderboard_pairs"]
    assert len(pairs) == 6 * 5                                   # 6 pairs x (macro-F1 + 4 CCCs)
    assert list(itertools.chain(pairs["estimate_a"] >= pairs["estimate_b"])) == [True] * len(pairs)


def test_leaderboard_figures(challenge):
    import matplotlib.pyplot as plt

    from ser_diag.plots.ranks import beyond_figures, plot_leaderboard_ranks, plot_win_probability, win_matrix

    _, merged = challenge
    tables = ranks.rank_tables(merged["categorical"], merged["attributes"], n_boot=50)
    ceiling = pd.DataFrame({"task": ["categorical"], "metric": ["macro_f1"], "estimate": [0.7], "ci_low": [0.65],
                            "ci_high": [0.75]})
    fig, ax = plt.subplots()
    assert plot_leaderboard_ranks(tables["leaderboard_ranks"], metric="macro_f1", ceiling=ceiling, ax=ax) is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    ticks = dict(zip(labels, ax.get_yticks()))
    assert ticks["good"] > ticks["mid"] > ticks["bad"]                     # best on top
    assert any(line.get_xdata()[0] == 0.7 for line in ax.get_lines())      # human ceiling line
    assert any("tier 3" == t.get_text() for t in ax.texts)
    matrix = win_matrix(tables["leaderboard_pairs"], metric="ccc_mean")
    off = ~np.eye(len(matrix), dtype=bool)
    np.testing.assert_allclose((matrix.to_numpy() + matrix.to_numpy().T)[off], 1.0)
    assert plot_win_probability(tables["leaderboard_pairs"], metric="ccc_mean", ax=ax) is ax
    figures = beyond_figures(tables)
    assert set(figures) == {"leaderboard_ranks", "win_probability"}
    assert [len(f.axes) for f in figures.values()] == [2, 4]             # a panel per task (+ colour bars)
    plt.close("all")


def test_vectorised_percentile_interval_is_numpys_nanquantile():
    import warnings

    from ser_diag.resampling import percentile_interval

    rng = np.random.default_rng(0)
    for shape in [(1000, 40), (37, 3, 4), (1, 5), (2, 7), (500,)]:
        d = rng.normal(size=shape)
        d[rng.random(shape) < 0.3] = np.nan
        if d.ndim > 1:
            d[:, 0] = np.nan                                               # an all-nan column
        for level in (0.9, 0.95, 0.99):
            alpha = (1 - level) / 2
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanquantile(d, [alpha, 1 - alpha], axis=0)
            for got, want in zip(percentile_interval(d, level), expected):
                np.testing.assert_array_equal(got, want)
            full = np.nan_to_num(d)                                        # no nan: np.quantile's numbers
            for got, want in zip(percentile_interval(full, level), np.quantile(full, [alpha, 1 - alpha], axis=0)):
                np.testing.assert_array_equal(got, want)


def test_recovers_what_the_simulator_planted(tmp_path):
    """`ser-diag simulate` plants a tie, agreement-dependent errors and one hard podcast
    (simulation_truth.json); the beyond tables find all three."""
    import json
    import subprocess

    from ser_diag.analysis.beyond import beyond_tables

    out = tmp_path / "challenge"
    subprocess.run(["ser-diag", "simulate", "-q", "--out", str(out), "--systems", "5", "--n", "6000", "--seed", "0"],
                   check=True)
    truth = json.loads((out / "simulation_truth.json").read_text(encoding="utf-8"))
    data = io.load(out, out / "predictions")
    tables = beyond_tables(data["categorical"], data["attributes"], data["labels"], n_boot=200,
                           min_podcast_files=100)
    board, pairs = tables["leaderboard_ranks"], tables["leaderboard_pairs"]
    # the tie: same tier, overlapping rank intervals, and the planted difference 0 inside the paired CI
    a, b = truth["tie"]["systems"]
    for (task, metric), part in board.groupby(["task", "metric"]):
        row = part.set_index("system")
        assert row.at[a, "tier"] == row.at[b, "tier"], metric
        assert max(row.at[a, "rank_ci_low"], row.at[b, "rank_ci_low"]) <= min(row.at[a, "rank_ci_high"],
                                                                               row.at[b, "rank_ci_high"])
        pair = pairs[(pairs["metric"] == metric) & pairs["system_a"].isin([a, b]) & pairs["system_b"].isin([a, b])]
        assert pair["ci_low"].iloc[0] <= truth["tie"]["difference"] <= pair["ci_high"].iloc[0], metric
    # agreement-dependent errors: every system is worse where the annotators disagree
    by_agreement = tables["annotator_agreement_bins"]
    cat = by_agreement[by_agreement["metric"] == "macro_f1"]
    for system, part in cat.groupby("system"):
        row = part.set_index("group")
        assert row.at["majority", "ci_low"] > row.at["plurality", "ci_high"], system
        assert row.at["unanimous", "estimate"] > row.at["majority", "estimate"], system
    # the hard podcast: the worst of the large podcasts for every system and headline metric
    hard = truth["structure"]["hard_podcast"]["podcast"]
    worst = tables["worst_podcasts"]
    first = worst[worst["rank"] == 1]
    assert set(first["group"]) == {hard} and first["below_overall"].all()
    assert len(first) == 2 * 5                                       # macro-F1 and mean CCC, 5 systems


@pytest.mark.slow
def test_notebook_07_runs_from_notebooks_folder(tmp_path, monkeypatch):
    """Committed without outputs, parametrised, and runs as a person runs it (cwd notebooks/,
    the installed package, no PYTHONPATH)."""
    from pathlib import Path

    import nbformat
    import papermill

    folder = Path(__file__).resolve().parents[2] / "notebooks"
    name = "07_beyond_the_leaderboard.ipynb"
    nb = nbformat.read(folder / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert ["parameters" in c.metadata.get("tags", []) for c in code].count(True) == 1
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    out = tmp_path / "tables"
    papermill.execute_notebook(str(folder / name), str(tmp_path / name), kernel_name="python3", cwd=str(folder),
                               progress_bar=False,
                               parameters=dict(N_FILES=900, N_SYSTEMS=3, N_BOOT=40, OUT_DIR=str(out)))
    ran = nbformat.read(tmp_path / name, as_version=4)
    outputs = [o for c in ran.cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 6   # ranks, heatmaps, agreement, podcasts
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "SYNTHETIC" in text and "resampling unit: speaker" in text and "macro-F1" in text
    board = pd.read_csv(out / "leaderboard_ranks.csv")
    assert set(board["n_boot"]) == {40} and (out / "human_ceiling.csv").is_file()


def test_per_group_tables_limited_to_the_best_systems(challenge):
    labels, merged = challenge
    from ser_diag.analysis.beyond import beyond_tables

    tables = beyond_tables(merged["categorical"], merged["attributes"], labels, detailed=None,
                           audio_root=None, n_boot=20, max_systems=2, min_podcast_files=10)
    assert set(tables["leaderboard_ranks"]["system"]) == {"good", "twin", "mid", "bad"}
    assert set(tables["podcast_metrics"]["system"]) == {"good", "twin"}
    assert any("2 best of 4 systems" in n for n in tables["beyond_notes"]["note"])


def test_without_resamples(challenge):
    """n_boot = 0: estimates and ranks, no intervals, one tier, and the figures still draw."""
    import matplotlib.pyplot as plt

    from ser_diag.plots.ranks import beyond_figures

    _, merged = challenge
    tables = ranks.rank_tables(merged["categorical"], None, n_boot=0)
    board = tables["leaderboard_ranks"]
    assert board["ci_low"].isna().all() and board["rank_ci_low"].isna().all()
    assert board["tier"].eq(1).all() and board["rank"].tolist() == [1, 1, 3, 4]
    assert set(beyond_figures(tables)) == {"leaderboard_ranks", "win_probability"}
    plt.close("all")
