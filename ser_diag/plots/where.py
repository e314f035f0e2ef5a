"""Where systems fail: per-podcast metric of one system with CIs against its overall score
(:func:`plot_podcast_metrics`) and metrics per duration bin (:func:`plot_duration_metrics`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.evaluation import vocabulary_of
from ser_diag.names import human_name
from ser_diag.plots._style import PALETTE, grouped_errorbars, new_axes, shown_of

__all__ = ["plot_duration_metrics", "plot_podcast_metrics"]


def plot_podcast_metrics(table: pd.DataFrame, system: str, metric: str | None = None, ax=None, n: int = 25):
    """The ``n`` worst podcasts of ``system`` (rows of
    :func:`ser_diag.analysis.where.podcast_metrics`) with CIs, worst on top, the system's overall
    score as a dashed line; podcasts whose CI lies below it are drawn in the accent colour.
    Returns ``ax``."""
    metrics = list(pd.unique(table["metric"]))
    metric = metric or ("macro_f1" if "macro_f1" in metrics else "ccc_mean")
    part = table[(table["system"] == system) & (table["metric"] == metric)]
    if part.empty:
        raise ValueError(f"no rows for system {system!r} and metric {metric!r}")
    part = part.sort_values(["estimate", "group"], kind="stable").head(n)
    k = len(part)
    fig, ax = new_axes(ax, figsize=(6.0, 1.2 + 0.28 * k))
    y = np.arange(k)[::-1]
    est = part["estimate"].to_numpy(float)
    err = np.abs(np.vstack([est - part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float) - est]))
    below = part["below_overall"].to_numpy(bool) if "below_overall" in part else np.zeros(k, bool)
    for mask, colour, label in ((~below, PALETTE[0], "podcast"), (below, PALETTE[3], "CI below overall")):
        if mask.any():
            ax.errorbar(est[mask], y[mask], xerr=err[:, mask], fmt="o", ms=4, capsize=2, lw=1.2, color=colour,
                        label=label)
    if "overall" in part:
        ax.axvline(part["overall"].iloc[0], color="0.3", ls="--", lw=1, label="all files")
    ax.set_yticks(y, labels=[f"{g} (n={int(m)})" for g, m in zip(part["group"], part["n"])], fontsize=7)
    first = part.iloc[0]
    ax.set_xlabel(f"{human_name(metric, vocabulary_of(part))} ({int(round(100 * first['level']))}% CI, resampling {first['unit']}s)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title(f"{system}: {human_name(metric, vocabulary_of(part))} per podcast (worst {k})", fontsize=10)
    return ax


def plot_duration_metrics(table: pd.DataFrame, metric: str | None = None, ax=None, max_systems: int = len(PALETTE)):
    """One line per system over the duration bins of
    :func:`ser_diag.analysis.where.duration_metrics`, with CIs. Returns ``ax``."""
    metrics = list(pd.unique(table["metric"]))
    metric = metric or ("macro_f1" if "macro_f1" in metrics else "ccc_mean")
    part = table[table["metric"] == metric].sort_values("duration_low", kind="stable")
    bins = list(pd.unique(part["group"]))
    order = part.groupby("system", sort=False)["estimate"].mean().sort_values(ascending=False)
    systems = order.index[:max_systems].tolist()
    fig, ax = new_axes(ax, figsize=(6.0, 4.0))
    x = grouped_errorbars(ax, part, bins, systems)
    sizes = part.drop_duplicates("group").set_index("group")["n"].reindex(bins)
    ax.set_xticks(x, labels=[f"{b}\n(n={int(n)})" for b, n in zip(bins, sizes)], fontsize=8)
    ax.set_xlabel("duration (from the audio headers)")
    first = part.iloc[0]
    ax.set_ylabel(f"{human_name(metric, vocabulary_of(part))} ({int(round(100 * first['level']))}% CI, {first['unit']}s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title(f"{human_name(metric, vocabulary_of(part))} by duration{shown_of(len(systems), len(order), 'duration_metrics')}",
                 fontsize=10)
    return ax
