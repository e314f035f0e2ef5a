"""Leaderboard figures: estimates with CIs sorted, significance tiers shaded, rank intervals
written beside them and the human ceiling as a reference line (:func:`plot_leaderboard_ranks`);
the pairwise win-probability heatmap (:func:`plot_win_probability`); and
:func:`beyond_figures`, every figure of the beyond-the-leaderboard tables as ``{stem: Figure}``.

>>> ax = plot_leaderboard_ranks(tables["leaderboard_ranks"], metric="macro_f1")   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.evaluation import vocabulary_of
from ser_diag.names import human_name
from ser_diag.plots._style import ANNOTATE_CELLS_MAX, MATRIX_CMAP, MAX_SYSTEMS, PALETTE, new_axes, shown_of

__all__ = ["beyond_figures", "plot_leaderboard_ranks", "plot_win_probability", "ranked_systems"]
_TIER_SHADES = ("#f2f2f2", "#ffffff")
#: The metric each task's panels show.
HEADLINE = {"categorical": "macro_f1", "attributes": "ccc_mean"}


def _one_metric(frame: pd.DataFrame, metric: str | None, task: str | None) -> tuple[pd.DataFrame, str]:
    if task is not None:
        frame = frame[frame["task"] == task]
    metrics = list(pd.unique(frame["metric"]))
    if metric is None:
        metric = "macro_f1" if "macro_f1" in metrics else ("ccc_mean" if "ccc_mean" in metrics else metrics[0])
    part = frame[frame["metric"] == metric]
    if part.empty:
        raise ValueError(f"metric {metric!r} not in the table (have {metrics})")
    return part, metric


def _rank_text(low, high, p_best) -> str:
    """``rank 1–3  p_best 0.42``; without resamples (nan) nothing."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return ""
    low, high = int(low), int(high)
    text = f"rank {low}" if low == high else f"rank {low}–{high}"
    return f"{text}  p_best {p_best:.2f}" if np.isfinite(p_best) else text


def plot_leaderboard_ranks(board: pd.DataFrame, metric: str | None = None, task: str | None = None,
                           ceiling: pd.DataFrame | None = None, ax=None, max_systems: int = MAX_SYSTEMS):
    """Estimates with CIs of one metric of :func:`ser_diag.analysis.ranks.leaderboard_ranks`, best
    on top, tiers as alternating bands labelled ``tier k``, the 95% rank interval written at the
    right, and (``ceiling``: :func:`ser_diag.analysis.agreement.human_ceiling`) the human ceiling
    with its CI as a dashed line and band. Returns ``ax``."""
    part, metric = _one_metric(board, metric, task)
    total = len(part)
    part = part.sort_values(["rank", "system"], kind="stable").head(max_systems)
    n = len(part)
    fig, ax = new_axes(ax, figsize=(7.0, 1.2 + 0.32 * n))
    y = np.arange(n)[::-1]
    est = part["estimate"].to_numpy(float)
    err = np.abs(np.vstack([est - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - est]))
    tiers = part["tier"].to_numpy()
    for k, tier in enumerate(pd.unique(tiers)):
        rows = y[tiers == tier]
        ax.axhspan(rows.min() - 0.5, rows.max() + 0.5, color=_TIER_SHADES[k % 2], zorder=0, lw=0)
        ax.text(0.005, rows.max() + 0.35, f"tier {tier}", transform=ax.get_yaxis_transform(), fontsize=7,
                va="top", color="0.35")
    ax.errorbar(est, y, xerr=err, fmt="o", color=PALETTE[0], ms=5, capsize=3, lw=1.4, zorder=3)
    for yi, row in zip(y, part.itertuples()):
        ax.text(1.01, yi, _rank_text(row.rank_ci_low, row.rank_ci_high, row.p_best),
                transform=ax.get_yaxis_transform(), va="center", fontsize=7)
    if ceiling is not None and not ceiling.empty:
        human = ceiling[ceiling["metric"] == metric]
        if len(human):
            h = human.iloc[0]
            ax.axvline(h["estimate"], color=PALETTE[3], ls="--", lw=1.3, zorder=2,
                       label=f"human ceiling {h['estimate']:.3f}\n(leave-one-annotator-out)")
            if np.isfinite(h["ci_low"]):
                ax.axvspan(h["ci_low"], h["ci_high"], color=PALETTE[3], alpha=0.12, zorder=1, lw=0)
            ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    ax.set_yticks(y, labels=part["system"].astype(str).tolist(), fontsize=8)
    ax.set_ylim(-0.6, n - 0.4)
    first = part.iloc[0]
    ax.set_xlabel(f"{human_name(metric, vocabulary_of(part))} ({int(round(100 * first['level']))}% CI, resampling {first['unit']}s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{human_name(metric, vocabulary_of(part))}: ranks and significance tiers{shown_of(n, total, 'leaderboard_ranks')}",
                 fontsize=10)
    return ax


def win_matrix(pairs: pd.DataFrame, metric: str | None = None, task: str | None = None,
               order: list[str] | None = None) -> pd.DataFrame:
    """Square ``P*(row beats column)`` from the pairs table (leaderboard order by default)."""
    part, metric = _one_metric(pairs, metric, task)
    if order is None:
        score = pd.concat([part.set_index("system_a")["estimate_a"], part.set_index("system_b")["estimate_b"]])
        score = score.groupby(level=0).first()
        order = score.sort_values(ascending=False, kind="stable").index.tolist()
    matrix = pd.DataFrame(np.nan, index=order, columns=order)
    for a, b, p in zip(part["system_a"], part["system_b"], part["win_prob"]):
        if a in matrix.index and b in matrix.index:
            matrix.at[a, b], matrix.at[b, a] = p, 1.0 - p
    return matrix


def plot_win_probability(pairs: pd.DataFrame, metric: str | None = None, task: str | None = None, ax=None,
                         max_systems: int = MAX_SYSTEMS):
    """Heatmap of the pairwise win probabilities ``P*(row beats column)`` of the
    ``max_systems`` best systems (best first), each cell annotated up to
    :data:`~ser_diag.plots._style.ANNOTATE_CELLS_MAX` systems. Returns ``ax``."""
    matrix = win_matrix(pairs, metric, task)
    total = len(matrix)
    matrix = matrix.iloc[:max_systems, :max_systems]
    part, metric = _one_metric(pairs, metric, task)
    n = len(matrix)
    cell = _cell_inches(n)
    fig, ax = new_axes(ax, figsize=(1.8 + cell * n, 1.4 + 0.9 * cell * n))
    image = ax.imshow(matrix.to_numpy(float), cmap=MATRIX_CMAP, vmin=0, vmax=1)
    if n <= ANNOTATE_CELLS_MAX:
        for i in range(n):
            for j in range(n):
                v = matrix.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.5 else "black")
    ax.set_xticks(range(n), labels=matrix.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels=matrix.index, fontsize=7)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="P(row beats column)")
    ax.set_title(f"{human_name(metric, vocabulary_of(part))}: pairwise win probability\n(paired resamples of {part['unit'].iloc[0]}s)"
                 f"{shown_of(n, total, 'leaderboard_pairs')}", fontsize=9)
    return ax


def ranked_systems(tables: dict[str, pd.DataFrame], task: str) -> list[str] | None:
    """The systems of ``task`` best first by its headline metric (macro-F1, mean CCC) from
    ``tables["leaderboard_ranks"]``; None without that table."""
    board = tables.get("leaderboard_ranks")
    if board is None or board.empty:
        return None
    rows = board[(board["task"] == task) & (board["metric"] == HEADLINE[task])]
    return rows.sort_values(["rank", "system"], kind="stable")["system"].astype(str).tolist() or None


def _cell_inches(n: int) -> float:
    """Width of one heatmap cell: room for a number when cells are annotated, else a name's height."""
    return 0.38 if n <= ANNOTATE_CELLS_MAX else 0.24


def _panels(n: int, width: float, height: float, vertical: bool = False, ratios=None):
    """A figure with ``n`` panels (side by side, or stacked with ``vertical``)."""
    import matplotlib.pyplot as plt

    shape = (n, 1) if vertical else (1, n)
    size = (width, height * n) if vertical else (width * n, height)
    kw = {"height_ratios": ratios} if vertical and ratios else {}
    fig, axes = plt.subplots(*shape, figsize=size, layout="constrained", squeeze=False, gridspec_kw=kw)
    return fig, list(axes.ravel())


#: Stems of :func:`beyond_figures`, in their order.
BEYOND_FIGURES = ("leaderboard_ranks", "win_probability", "metric_by_agreement", "podcast_metrics",
                  "duration_metrics")


def beyond_figures(tables: dict[str, pd.DataFrame], focus: dict[str, str] | None = None,
                   only=None) -> dict:
    """``{stem: Figure}`` for the beyond-the-leaderboard tables present in ``tables``, one panel
    per task (categorical: macro-F1, attributes: mean CCC): ``leaderboard_ranks`` (with the human
    ceiling when ``human_ceiling`` is there), ``win_probability``, ``metric_by_agreement``,
    ``podcast_metrics`` (each task's ``focus`` system, default its best) and ``duration_metrics``
    (:data:`BEYOND_FIGURES`); ``only``: those stems alone (default all)."""
    from ser_diag.plots.agreement import plot_metric_by_agreement
    from ser_diag.plots.where import plot_duration_metrics, plot_podcast_metrics

    focus = dict(focus or {})
    headline = HEADLINE

    def tasks_in(name):
        table = tables.get(name)
        if table is None or table.empty:
            return []
        return [t for t, m in headline.items() if ((table["task"] == t) & (table["metric"] == m)).any()]

    figures = {}

    def per_task(stem, name, size, draw, tasks=None, **layout):
        """One panel per task of table ``name``: ``draw(rows of the task, task, ax)``."""
        tasks = tasks_in(name) if tasks is None else tasks
        if tasks and (only is None or stem in only):
            table = tables[name]
            fig, axes = _panels(len(tasks), *size, **layout)
            for ax, task in zip(axes, tasks):
                draw(table[table["task"] == task], task, ax)
            figures[stem] = fig

    board = tables.get("leaderboard_ranks")
    tasks = tasks_in("leaderboard_ranks")
    for task in tasks:
        ranked = board[(board["task"] == task) & (board["metric"] == headline[task])].sort_values("rank", kind="stable")
        focus.setdefault(task, str(ranked["system"].iloc[0]))
    heights = [1.5 + 0.32 * min(MAX_SYSTEMS, int(((board["task"] == t) & (board["metric"] == headline[t])).sum()))
               for t in tasks]
    per_task("leaderboard_ranks", "leaderboard_ranks", (7.0, sum(heights) / max(len(tasks), 1)),
             lambda rows, task, ax: plot_leaderboard_ranks(rows, metric=headline[task], ceiling=tables.get("human_ceiling"),
                                                           ax=ax), tasks, vertical=True, ratios=heights)
    if tasks_in("leaderboard_pairs"):
        side = min(MAX_SYSTEMS, tables["leaderboard_pairs"]["system_a"].nunique() + 1)
        cell = _cell_inches(side)
        per_task("win_probability", "leaderboard_pairs", (2.2 + cell * side, 1.6 + 0.9 * cell * side),
                 lambda rows, task, ax: plot_win_probability(rows, metric=headline[task], ax=ax))
    per_task("metric_by_agreement", "annotator_agreement_bins", (6.0, 4.2),
             lambda rows, task, ax: plot_metric_by_agreement(rows, metric=headline[task], ax=ax))
    podcasts = tables.get("podcast_metrics")
    tasks = [t for t in tasks_in("podcast_metrics") if (podcasts["system"] == focus.get(t)).any()]
    if tasks:
        shown = max(int(((podcasts["task"] == t) & (podcasts["system"] == focus[t])
                         & (podcasts["metric"] == headline[t])).sum()) for t in tasks)
        per_task("podcast_metrics", "podcast_metrics", (6.0, 1.2 + 0.28 * min(shown, 25)),
                 lambda rows, task, ax: plot_podcast_metrics(rows, system=focus[task], metric=headline[task], ax=ax),
                 tasks)
    per_task("duration_metrics", "duration_metrics", (6.0, 4.0),
             lambda rows, task, ax: plot_duration_metrics(rows, metric=headline[task], ax=ax))
    return figures
