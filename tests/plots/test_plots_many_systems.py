"""Figures at organiser scale (166 systems): matrices stop annotating every cell and panels show
the best systems with a note, while small ones still annotate every cell with the right number."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from ser_diag.plots._style import ANNOTATE_CELLS_MAX, MAX_SYSTEMS
from ser_diag.plots.fusion import DisagreementDisplay
from ser_diag.plots.ranks import beyond_figures, plot_leaderboard_ranks, plot_win_probability, ranked_systems


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def names(n: int) -> list[str]:
    return [f"team_{i:03d}" for i in range(n)]


def disagreement(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.uniform(0.2, 0.7, (n, n))
    m = (m + m.T) / 2
    np.fill_diagonal(m, 0.0)
    systems = names(n)
    rows = [("categorical", "disagreement", a, b, m[i, j])
            for (i, a), (j, b) in itertools.product(enumerate(systems), repeat=2)]
    return pd.DataFrame(rows, columns=["task", "metric", "system_a", "system_b", "value"]), m


def board_and_pairs(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A leaderboard where team_000 is best and the scores fall with the index."""
    systems = names(n)
    score = 0.6 - 0.001 * np.arange(n)
    board = pd.DataFrame({"system": systems, "task": "categorical", "metric": "macro_f1", "estimate": score,
                          "ci_low": score - 0.01, "ci_high": score + 0.01, "rank": np.arange(1, n + 1),
                          "rank_ci_low": np.maximum(1, np.arange(n) - 1), "rank_ci_high": np.arange(n) + 3,
                          "p_best": np.r_[0.9, np.full(n - 1, 0.1 / (n - 1))], "tier": 1 + np.arange(n) // 5,
                          "level": 0.95, "unit": "speaker"})
    pairs = [(systems[i], systems[j], score[i], score[j], 0.5 + 0.4 * np.tanh(j - i))
             for i, j in itertools.combinations(range(n), 2)]
    pairs = pd.DataFrame(pairs, columns=["system_a", "system_b", "estimate_a", "estimate_b", "win_prob"])
    return board, pairs.assign(task="categorical", metric="macro_f1", unit="speaker")


def cell_texts(ax) -> list[Text]:
    """Texts placed inside the axes' data area (the cell annotations)."""
    return [t for t in ax.texts if t.get_transform() == ax.transData]


def test_small_disagreement_matrix_annotates_every_cell_with_its_value():
    frame, m = disagreement(10)
    disp = DisagreementDisplay.from_frame(frame)
    texts = cell_texts(disp.ax_)
    assert len(texts) == 100                                  # 90 values and 10 diagonal dashes
    for t in texts:
        i, j = (int(round(v)) for v in t.get_position()[::-1])
        assert t.get_text() == ("-" if i == j else f"{m[i, j]:.2f}")
    assert "systems shown" not in disp.ax_.get_title()


def test_many_systems_disagreement_shows_the_best_without_cell_texts():
    frame, m = disagreement(166)
    order = names(166)[::-1]                                  # pretend team_165 is best
    disp = DisagreementDisplay.from_frame(frame, order=order)
    fig = disp.figure_
    assert cell_texts(disp.ax_) == []
    assert len(fig.findobj(Text)) < 300                       # not 166**2 = 27,556 texts
    shown = disp.im_.get_array()
    assert shown.shape == (MAX_SYSTEMS, MAX_SYSTEMS)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == order[:MAX_SYSTEMS]
    assert np.isclose(shown[0, 1], m[165, 164]) and np.isclose(shown[3, 0], m[162, 165])
    assert f"best {MAX_SYSTEMS} of 166 systems shown" in disp.ax_.get_title()
    assert max(fig.get_size_inches()) <= 15                   # the figure stops growing
    plain = DisagreementDisplay.from_frame(frame)             # no order: the table's, said so
    assert f"first {MAX_SYSTEMS} of 166" in plain.ax_.get_title()


@pytest.mark.parametrize("n", [10, ANNOTATE_CELLS_MAX + 1, 166])
def test_win_probability_annotations_grow_with_shown_cells_only(n):
    board, pairs = board_and_pairs(n)
    ax = plot_win_probability(pairs)
    texts = cell_texts(ax)
    shown = min(n, MAX_SYSTEMS)
    if n <= ANNOTATE_CELLS_MAX:
        assert len(texts) == n * (n - 1)
        by_cell = {tuple(int(round(v)) for v in t.get_position()): t.get_text() for t in texts}
        assert by_cell[(1, 0)] == f"{0.5 + 0.4 * np.tanh(1):.2f}"   # row team_000 beats column team_001
        assert by_cell[(0, 1)] == f"{0.5 - 0.4 * np.tanh(1):.2f}"
    else:
        assert texts == []
    assert len(ax.figure.findobj(Text)) - len(texts) < 4 * shown + 40  # besides the cells: per system, not per pair
    assert [t.get_text() for t in ax.get_yticklabels()] == names(n)[:shown]
    assert (f"best {MAX_SYSTEMS} of {n} systems shown" in ax.get_title()) == (n > MAX_SYSTEMS)


def test_leaderboard_of_many_systems_shows_the_best_and_says_so():
    board, pairs = board_and_pairs(166)
    ax = plot_leaderboard_ranks(board)
    assert [t.get_text() for t in ax.get_yticklabels()] == names(MAX_SYSTEMS)
    assert f"best {MAX_SYSTEMS} of 166 systems shown; all in tables/leaderboard_ranks.csv" in ax.get_title()
    assert ranked_systems({"leaderboard_ranks": board.iloc[::-1]}, "categorical") == names(166)
    assert ranked_systems({}, "categorical") is None


def test_beyond_figures_of_many_systems_stay_small():
    board, pairs = board_and_pairs(166)
    figures = beyond_figures({"leaderboard_ranks": board, "leaderboard_pairs": pairs})
    assert set(figures) == {"leaderboard_ranks", "win_probability"}
    for fig in figures.values():
        assert len(fig.findobj(Text)) < 400
        assert max(fig.get_size_inches()) < 25


def test_metric_by_agreement_of_many_systems_keeps_one_colour_per_system():
    from ser_diag.plots.agreement import plot_metric_by_agreement
    from ser_diag.plots.where import plot_duration_metrics

    bins = ["unanimous", "majority", "plurality"]
    rows = [dict(system=s, group=g, estimate=0.8 - 0.01 * i - 0.1 * k, ci_low=0.7 - 0.01 * i - 0.1 * k,
                 ci_high=0.9 - 0.01 * i - 0.1 * k, n=100, by="agreement_bin", metric="macro_f1", level=0.95,
                 unit="speaker", duration_low=float(k))
            for i, s in enumerate(names(20)) for k, g in enumerate(bins)]
    table = pd.DataFrame(rows)
    for plot, note in ((plot_metric_by_agreement, "annotator_agreement_bins"), (plot_duration_metrics, "duration_metrics")):
        ax = plot(table)
        handles, labels = ax.get_legend_handles_labels()
        assert labels == names(10)                               # the best ten, best first
        colours = {matplotlib.colors.to_hex(handle[0].get_color()) for handle in handles}  # errorbar data lines
        assert len(colours) == 10                                # no colour shared by two systems
        assert f"best 10 of 20 systems shown; all in tables/{note}.csv" in ax.get_title()
        small = plot(table[table["system"].isin(names(3))])
        assert "shown" not in small.get_title()
