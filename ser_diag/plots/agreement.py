"""Metric versus annotator agreement: are system errors where the annotators disagree?

:func:`plot_metric_by_agreement` draws one line per system over the agreement bins of
:func:`ser_diag.analysis.agreement.metrics_by_agreement` (unanimous -> plurality for the
classes, low -> high annotator SD for attributes), with CIs.
"""

from __future__ import annotations

import pandas as pd

from ser_diag.evaluation import vocabulary_of
from ser_diag.names import human_name
from ser_diag.plots._style import PALETTE, grouped_errorbars, new_axes, shown_of

__all__ = ["plot_metric_by_agreement"]

_BIN_LABELS = {"agreement_bin": "annotator agreement with the consensus",
               "sd_bin": "annotator SD (tercile of the mean over attributes)"}


def plot_metric_by_agreement(table: pd.DataFrame, metric: str | None = None, ax=None,
                             max_systems: int = len(PALETTE)):
    """One line per system: ``metric`` with its CI in every agreement bin (bins in table order;
    at most ``max_systems`` systems, best overall first, one colour each; the title says how many
    were left out). Returns ``ax``."""
    metrics = list(pd.unique(table["metric"]))
    metric = metric or ("macro_f1" if "macro_f1" in metrics else "ccc_mean")
    part = table[table["metric"] == metric]
    if part.empty:
        raise ValueError(f"metric {metric!r} not in the table (have {metrics})")
    bins = list(pd.unique(part["group"]))
    order = part.groupby("system", sort=False)["estimate"].mean().sort_values(ascending=False)
    systems = order.index[:max_systems].tolist()
    fig, ax = new_axes(ax, figsize=(6.0, 4.2))
    x = grouped_errorbars(ax, part, bins, systems)
    sizes = part.drop_duplicates("group").set_index("group")["n"].reindex(bins)
    ax.set_xticks(x, labels=[f"{b}\n(n={int(n)})" for b, n in zip(bins, sizes)], fontsize=8)
    by = part["by"].iloc[0]
    ax.set_xlabel(_BIN_LABELS.get(by, human_name(by)))
    first = part.iloc[0]
    ax.set_ylabel(f"{human_name(metric, vocabulary_of(part))} ({int(round(100 * first['level']))}% CI, {first['unit']}s)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    ax.set_title(f"{human_name(metric, vocabulary_of(part))} by annotator agreement"
                 f"{shown_of(len(systems), len(order), 'annotator_agreement_bins')}", fontsize=10)
    return ax
