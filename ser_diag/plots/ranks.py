"""Leaderboard figures: estimates with CIs sorted, significance tiers shaded, rank intervals
written beside them and the human ceiling as a reference line (:func:`plot_leaderboard_ranks`);
the pairwise win-probability heatmap (:func:`plot_win_probability`); and
:func:`beyond_figures`, every figure of the beyond-the-leaderboard tables as ``{stem: Figure}``.

>>> ax = plot_leaderboard_ranks(tables["leaderboard_ranks"], metric="macro_f1")   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.names import human_name
from ser_diag.plots._style import MATRIX_CMAP, PALETTE, new_axes

__all__ = ["beyond_figures", "plot_leaderboard_ranks", "plot_win_probability"]

#: At most this many systems are drawn (best first); the tables keep all.
MAX_SYSTEMS = 40
_TIER_SHADES = ("#f2f2f2", "#ffffff")


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
    ax.set_xlabel(f"{human_name(metric)} ({int(round(100 * first['level']))}% CI, resampling {first['unit']}s)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"{human_name(metric)}: ranks and significance tiers", fontsize=10)
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
    """Heatmap of the pairwise win probabilities ``P*(row beats column)`` (best system first),
    annotated when there are at most 12 systems. Returns ``ax``."""
    matrix = win_matrix(pairs, metric, task)
    matrix = matrix.iloc[:max_systems, :max_systems]
    part, metric = _one_metric(pairs, metric, task)
    n = len(matrix)
    fig, ax = new_axes(ax, figsize=(1.8 + 0.38 * n, 1.4 + 0.34 * n))
    image = ax.imshow(matrix.to_numpy(float), cmap=MATRIX_CMAP, vmin=0, vmax=1)
    if n <= 12:
        for i in range(n):
            for j in range(n):
                v = matrix.iat[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 0.5 else "black")
    ax.set_xticks(range(n), labels=matrix.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), labels=matrix.index, fontsize=7)
    ax.figure.colorbar(image, ax=ax, shrink=0.8, label="P(row beats column)")
    ax.set_title(f"{human_name(metric)}: pairwise win probability\n(paired resamples of {part['unit'].iloc[0]}s)",
                 fontsize=9)
    return ax


def _panels(n: int, width: float, height: float, vertical: bool = False, ratios=None):
    """A figure with ``n`` panels (side by side, or stacked with ``vertical``)."""
    import matplotlib.pyplot as plt

    shape = (n, 1) if vertical else (1, n)
    size = (width, height * n) if vertical else (width * n, height)
    kw = {"height_ratios": ratios} if vertical and ratios else {}
    fig, axes = plt.subplots(*shape, figsize=size, layout="constrained", squeeze=False, gridspec_kw=kw)
    return fig, list(axes.ravel())


def beyond_figures(tables: dict[str, pd.DataFrame], focus: dict[str, str] | None = None) -> dict:
    """``{stem: Figure}`` for the beyond-the-leaderboard tables present in ``tables``, one panel
    per task (categorical: macro-F1, attributes: mean CCC): ``leaderboard_ranks`` (with the human
    ceiling when ``human_ceiling`` is there), ``win_probability``, ``metric_by_agreement``,
    ``podcast_metrics`` (each task's ``focus`` system, default its best) and ``duration_metrics``."""
    from ser_diag.plots.agreement import plot_metric_by_agreement
    from ser_diag.plots.where import plot_duration_metrics, plot_podcast_metrics

    focus = dict(focus or {})
    headline = {"categorical": "macro_f1", "attributes": "ccc_mean"}

    def tasks_in(name):
        table = tables.get(name)
        if table is None or table.empty:
            return []
        return [t for t, m in headline.items() if ((table["task"] == t) & (table["metric"] == m)).any()]

    board = tables.get("leaderboard_ranks")
    for task in tasks_in("leaderboard_ranks"):
        ranked = board[(board["task"] == task) & (board["metric"] == headline[task])].sort_values("rank", kind="stable")
        focus.setdefault(task, str(ranked["system"].iloc[0]))
    figures = {}
    tasks = tasks_in("leaderboard_ranks")
    if tasks:
        sizes = [min(MAX_SYSTEMS, int((board["task"] == t).sum() // board[board["task"] == t]["metric"].nunique()))
                 for t in tasks]
        fig, axes = _panels(len(tasks), 7.0, 1.0, vertical=True, ratios=[1.5 + 0.32 * n for n in sizes])
        fig.set_size_inches(7.0, sum(1.5 + 0.32 * n for n in sizes))
        for ax, task in zip(axes, tasks):
            plot_leaderboard_ranks(board, metric=headline[task], task=task, ceiling=tables.get("human_ceiling"), ax=ax)
        figures["leaderboard_ranks"] = fig
    tasks = tasks_in("leaderboard_pairs")
    if tasks:
        n = tables["leaderboard_pairs"]["system_a"].nunique() + 1
        side = min(MAX_SYSTEMS, n)
        fig, axes = _panels(len(tasks), 2.2 + 0.38 * side, 1.6 + 0.34 * side)
        for ax, task in zip(axes, tasks):
            plot_win_probability(tables["leaderboard_pairs"], metric=headline[task], task=task, ax=ax)
        figures["win_probability"] = fig
    tasks = tasks_in("annotator_agreement_bins")
    if tasks:
        table = tables["annotator_agreement_bins"]
        fig, axes = _panels(len(tasks), 6.0, 4.2)
        for ax, task in zip(axes, tasks):
            plot_metric_by_agreement(table[table["task"] == task], metric=headline[task], ax=ax)
        figures["metric_by_agreement"] = fig
    tasks = [t for t in tasks_in("podcast_metrics")
             if (tables["podcast_metrics"]["system"] == focus.get(t)).any()]
    if tasks:
        table = tables["podcast_metrics"]
        rows = max(int(((table["task"] == t) & (table["system"] == focus[t]) & (table["metric"] == headline[t])).sum())
                   for t in tasks)
        fig, axes = _panels(len(tasks), 6.0, 1.2 + 0.28 * min(rows, 25))
        for ax, task in zip(axes, tasks):
            plot_podcast_metrics(table[table["task"] == task], system=focus[task], metric=headline[task], ax=ax)
        figures["podcast_metrics"] = fig
    tasks = tasks_in("duration_metrics")
    if tasks:
        table = tables["duration_metrics"]
        fig, axes = _panels(len(tasks), 6.0, 4.0)
        for ax, task in zip(axes, tasks):
            plot_duration_metrics(table[table["task"] == task], metric=headline[task], ax=ax)
        figures["duration_metrics"] = fig
    return figures
