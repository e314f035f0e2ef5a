"""The explorer's views: one function per view, drawn from the diagnostics' tables by the
library's plots (:mod:`ser_diag.plots`), and the tables shown beside them.

Each view function takes the :class:`~ser_diag.diagnostics.Diagnostics` of a selection and the
:class:`~ser_diag.explorer.state.ExplorerState`, draws on ``axes`` (a sequence of Axes with a
panel each; default: a new figure of the right size, made outside pyplot by :func:`new_axes`, so
the explorer's background thread shares no figure state) and returns the Figure. :func:`draw`
picks the view's function. Nothing here computes a number the diagnostics hold: the figures
are the report's Displays on the same tables.

Beyond the paper (:data:`~ser_diag.explorer.state.BEYOND_VIEWS`): the leaderboard with rank
intervals, tiers and P(best), the pairwise win probabilities, metrics by annotator agreement with
the human ceiling, per-podcast metrics and metrics by duration - each a figure and
:func:`view_tables` below it, or one line (:func:`unavailable`) when the diagnostics could not
make it (no ``labels_detailed.csv``, no ``Audios/``).
"""

from __future__ import annotations

from io import BytesIO

from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from ser_diag.diagnostics import Diagnostics, rows_where
from ser_diag.explorer.state import BEYOND_VIEWS, ExplorerState, view_name
from ser_diag.names import human_name
from ser_diag.schema import (ATTRIBUTE_NAMES, ATTRIBUTES, CLASS_CODES, CLASS_NAMES, TASK_ATTRIBUTES,
                             TASK_CATEGORICAL, TASKS)

__all__ = ["draw", "new_axes", "unavailable", "confusion", "binned", "regression_to_mean", "gender_audit",
           "topk_fusion", "leaderboard_ranks", "win_probability", "annotator_agreement", "podcasts", "durations",
           "heatmap", "confusion_difference", "metrics_table", "headline_table", "view_tables", "add_caption",
           "png", "HEADLINE_OF"]

#: Table each beyond view needs, and what to say when the diagnostics could not make it.
_BEYOND_NEEDS = {
    "leaderboard_ranks": ("leaderboard_ranks", "the leaderboard needs predictions in this split and group"),
    "win_probability": ("leaderboard_pairs", "win probabilities need at least two systems of one task"),
    "annotator_agreement": ("annotator_agreement_bins", "annotator agreement needs Labels/labels_detailed.csv "
                                                        "next to the consensus labels"),
    "podcasts": ("podcast_metrics", "per-podcast metrics need MSP-PODCAST_<podcast>_<segment> file names with "
                                    "enough files per podcast"),
    "durations": ("duration_metrics", "duration bins need the audio files in Audios/ next to Labels/"),
}
_BEYOND_NOTE_WORDS = {"annotator_agreement": "agreement", "durations": "duration", "podcasts": "podcast"}
#: Beyond views whose tables keep the best systems of each task only.
_BEST_ONLY = ("podcasts", "durations", "annotator_agreement")
_HEADERS = {
    "task": "task", "system": "system", "metric": "metric", "estimate": "estimate", "ci_low": "CI low",
    "ci_high": "CI high", "rank": "rank", "rank_interval": "95% rank interval", "p_best": "P(best)",
    "tier": "tier", "system_a": "system A", "system_b": "system B", "diff": "A - B",
    "win_prob": "P(A beats B)", "p_holm": "p (Holm)", "significant": "significant (Holm, 5%)",
    "group": "group", "n": "files", "n_speakers": "speakers", "overall": "all files",
    "below_overall": "CI below all files", "quantity": "quantity", "n_files": "files",
    "n_judgements": "judgements", "estimator": "estimator", "bias": "known bias",
    "n_podcasts_both": "podcasts with both genders",
}
_QUANTITIES = {"gap_overall": "gender gap, all files", "gap_within_podcast": "gender gap within podcasts",
               "share_explained": "share of the gap explained by podcast", "error_rate": "error rate",
               "plausible_accuracy": "plausible accuracy (prediction among the votes)",
               "expected_agreement": "expected agreement with a random annotator",
               "cross_entropy": "cross-entropy to the votes (nats)", "kl": "KL divergence to the votes (nats)",
               "mse_mean": "squared error (mean of the attributes)"}
_HEADLINE = ["macro_f1", "accuracy", "uar", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom", "ccc_mean"]


def headline_of(vocabulary) -> list[str]:
    """The headline metrics of a corpus (MSP-Podcast: ``_HEADLINE``)."""
    return ["macro_f1", "accuracy", "uar"] + [f"ccc_{a}" for a in vocabulary.attribute_names] + ["ccc_mean"]


#: The headline metric of each task (how podcasts are ordered, which leaderboard is drawn).
HEADLINE_OF = {TASK_CATEGORICAL: "macro_f1", TASK_ATTRIBUTES: "ccc_mean"}


# --------------------------------------------------------------------------- figures
def new_axes(n: int, size: tuple[float, float], ncols: int | None = None):
    """A constrained-layout figure of ``n`` panels of ``size`` inches, made outside pyplot (a
    plain :class:`matplotlib.figure.Figure`: nothing to close, safe to draw in the background
    thread while the foreground draws another). Returns the figure and its axes, flat."""
    ncols = ncols or n
    nrows = -(-n // ncols)
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def _panels(axes, n: int, size: tuple[float, float], ncols: int | None = None):
    if axes is None:
        return new_axes(n, size, ncols)
    axes = np.ravel(axes)
    if len(axes) < n:
        raise ValueError(f"this view draws {n} panels; {len(axes)} axes given")
    return axes[0].figure, axes


def _need(diag: Diagnostics, name: str, what: str) -> dict:
    if name not in diag.tables:
        raise ValueError(f"this view needs {what} in this split and group")
    return diag.tables


def _of_systems(table: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    return table[table["system"].astype(str).isin(systems)]


def confusion(diag: Diagnostics, s: ExplorerState, axes=None, compare_only: bool = False) -> Figure:
    """The system's confusion matrix and, with a comparison system, the difference matrix
    beside it (``compare_only``: the difference only)."""
    from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay

    t = _need(diag, "confusion", "categorical predictions")
    only = compare_only and s.compare_system is not None
    fig, axes = _panels(axes, 1 if only else len(s.selected_systems), (7.2, 6.2))
    if not only:
        ConfusionMatrixDisplay.from_frame(rows_where(t["confusion"], system=s.system), s.system, ax=axes[0],
                                          vocabulary=diag.vocabulary)
    if s.compare_system:
        ConfusionDifferenceDisplay.from_frame(confusion_difference(diag, s), ax=axes[-1], vocabulary=diag.vocabulary)
    return fig


def binned(diag: Diagnostics, s: ExplorerState, axes=None, compare_only: bool = False) -> Figure:
    """The binned matrix of the view's attribute, per selected system (``compare_only``: the
    comparison system's)."""
    from ser_diag.plots.binned import BinnedAttributeDisplay

    t = _need(diag, "binned", "attribute predictions")
    names = s.selected_systems[1:] if compare_only and s.compare_system is not None else s.selected_systems
    fig, axes = _panels(axes, len(names), (6.6, 5.4))
    for ax, name in zip(axes, names):
        BinnedAttributeDisplay.from_frame(rows_where(t["binned"], system=name, attribute=s.view_attribute),
                                          name, s.view_attribute, ax=ax, vocabulary=diag.vocabulary)
    return fig


def regression_to_mean(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """Mean prediction per true bin with CIs; one panel per attribute when comparing."""
    from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay

    t = _need(diag, "bin_means", "attribute predictions")
    means, shrink = _of_systems(t["bin_means"], s.selected_systems), _of_systems(t["shrinkage"], s.selected_systems)
    if s.compare_system:
        attributes = diag.vocabulary.attribute_names
        fig, axes = _panels(axes, len(attributes), (5.2, 5.2))
        for ax, attr in zip(axes, attributes):
            RegressionToMeanDisplay.from_frame(means[means["attribute"] == attr], shrink, ax=ax,
                                               vocabulary=diag.vocabulary)
    else:
        fig, axes = _panels(axes, 1, (6.8, 6.0))
        RegressionToMeanDisplay.from_frame(means, shrink, ax=axes[0], vocabulary=diag.vocabulary)
    return fig


def gender_audit(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """Metrics by gender with gap, CI and p-value, per task and system."""
    from ser_diag.plots.bias import GroupGapDisplay

    t = _need(diag, "gender_metrics", "a Gender column with values")
    gm, gaps = t["gender_metrics"], t.get("gender_gaps")
    panels = [(n, task) for n in s.selected_systems for task in TASKS if len(rows_where(gm, task=task, system=n))]
    if not panels:
        raise ValueError("no gender metrics for these systems")
    fig, axes = _panels(axes, len(panels), (6.2, 4.8), ncols=min(len(panels), 2))
    for ax, (name, task) in zip(axes, panels):
        g = None if gaps is None else rows_where(gaps, task=task, system=name)
        GroupGapDisplay.from_frame(rows_where(gm, task=task, system=name), g if g is not None and len(g) else None,
                                   name, ax=ax, title=f"{name}: {task} metrics by gender")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def topk_fusion(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """The paper's Fig. 4 over all systems, a panel per metric."""
    from ser_diag.plots.fusion import FusionCurveDisplay

    t = _need(diag, "fusion_curve", "at least two systems")
    panels = t["fusion_curve"]["metric"].nunique()
    fig, axes = _panels(axes, panels, (3.1 + 0.6 / panels, 3.9))
    FusionCurveDisplay.from_frame(t["fusion_curve"], ax=axes)
    return fig


def _beyond(diag: Diagnostics, s: ExplorerState) -> tuple[pd.DataFrame, list[str]]:
    """A beyond view's table (the selected systems' rows in the best-only tables) and the tasks
    with its headline metric; ValueError when the view has no data."""
    message = unavailable(diag, s)
    if message:
        raise ValueError(message)
    table = diag.tables[_BEYOND_NEEDS[s.view][0]]
    if s.view in _BEST_ONLY:
        table = _of_systems(table, s.selected_systems)
    tasks = [task for task in TASKS if ((table["task"] == task) & (table["metric"] == HEADLINE_OF[task])).any()]
    return table, tasks


def _mark_systems(ax, systems: list[str]) -> None:
    """Bold the tick labels of the chosen systems (the figure shows every system)."""
    for label in ax.get_yticklabels():
        if label.get_text() in systems:
            label.set_fontweight("bold")


def leaderboard_ranks(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """Every system's headline metric with CI, rank interval and tier, per task (the human
    ceiling drawn when known); the selected systems in bold."""
    from ser_diag.plots.ranks import plot_leaderboard_ranks

    table, tasks = _beyond(diag, s)
    n = [int(((table["task"] == task) & (table["metric"] == HEADLINE_OF[task])).sum()) for task in tasks]
    fig, axes = _panels(axes, len(tasks), (7.4, 1.6 + 0.32 * max(n)))
    for ax, task in zip(axes, tasks):
        plot_leaderboard_ranks(table, metric=HEADLINE_OF[task], task=task, ceiling=diag.tables.get("human_ceiling"),
                               ax=ax)
        _mark_systems(ax, s.selected_systems)
    return fig


def win_probability(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """P(row system beats column system) of the headline metric, per task."""
    from ser_diag.plots.ranks import plot_win_probability

    table, tasks = _beyond(diag, s)
    side = table["system_a"].nunique() + 1
    fig, axes = _panels(axes, len(tasks), (2.4 + 0.4 * side, 1.8 + 0.36 * side))
    for ax, task in zip(axes, tasks):
        plot_win_probability(table, metric=HEADLINE_OF[task], task=task, ax=ax)
        _mark_systems(ax, s.selected_systems)
    return fig


def annotator_agreement(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """The headline metric per annotator-agreement bin, per task."""
    from ser_diag.plots.agreement import plot_metric_by_agreement

    table, tasks = _beyond(diag, s)
    fig, axes = _panels(axes, len(tasks), (6.0, 4.4))
    for ax, task in zip(axes, tasks):
        plot_metric_by_agreement(table[table["task"] == task], metric=HEADLINE_OF[task], ax=ax)
    return fig


def podcasts(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """The headline metric per podcast, per selected system and task."""
    from ser_diag.plots.where import plot_podcast_metrics

    table, tasks = _beyond(diag, s)
    panels = [(system, task) for system in s.selected_systems for task in tasks
              if ((table["system"] == system) & (table["task"] == task)).any()]
    rows = max(int(((table["system"] == a) & (table["task"] == b) & (table["metric"] == HEADLINE_OF[b])).sum())
               for a, b in panels)
    fig, axes = _panels(axes, len(panels), (6.2, 1.4 + 0.28 * min(rows, 25)), ncols=min(len(panels), 2))
    for ax, (system, task) in zip(axes, panels):
        plot_podcast_metrics(table[table["task"] == task], system=system, metric=HEADLINE_OF[task], ax=ax)
        ax.set_title(f"{ax.get_title()} - {task}", fontsize=10)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return fig


def durations(diag: Diagnostics, s: ExplorerState, axes=None) -> Figure:
    """The headline metric per duration bin, per task."""
    from ser_diag.plots.where import plot_duration_metrics

    table, tasks = _beyond(diag, s)
    fig, axes = _panels(axes, len(tasks), (6.0, 4.2))
    for ax, task in zip(axes, tasks):
        plot_duration_metrics(table[table["task"] == task], metric=HEADLINE_OF[task], ax=ax)
    return fig


_DRAW = {"confusion": confusion, "regression_to_mean": regression_to_mean, "gender_audit": gender_audit,
         "topk_fusion": topk_fusion, "leaderboard_ranks": leaderboard_ranks, "win_probability": win_probability,
         "annotator_agreement": annotator_agreement, "podcasts": podcasts, "durations": durations}


def draw(diag: Diagnostics, s: ExplorerState, compare_only: bool = False) -> Figure:
    """The view of ``s`` as a new Figure. ``compare_only``: in a confusion or binned view with
    a comparison system, only the comparison panel (what the widgets show beside the clickable
    matrix of the system)."""
    if s.view.startswith("binned_"):
        return binned(diag, s, compare_only=compare_only)
    if s.view == "confusion":
        return confusion(diag, s, compare_only=compare_only)
    if s.view not in _DRAW:  # pragma: no cover - ExplorerState.changed validates views
        raise ValueError(s.view)
    return _DRAW[s.view](diag, s)


def add_caption(fig: Figure, text: str) -> Figure:
    """Put ``text`` (where the numbers come from) under the figure's title."""
    title = fig.get_suptitle()
    fig.suptitle(f"{title}\n{text}" if title else text, fontsize=9 if not title else None, color="0.25")
    return fig


def png(fig: Figure, dpi: int) -> bytes:
    buffer = BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# --------------------------------------------------------------------------- what the figures show, as data
def unavailable(diag: Diagnostics, s: ExplorerState) -> str | None:
    """One line saying why the beyond view of ``s`` has nothing to show (e.g. no
    ``labels_detailed.csv``: the diagnostics' note), or None when it has data (or is no beyond view)."""
    if s.view not in BEYOND_VIEWS:
        return None
    name, why = _BEYOND_NEEDS[s.view]
    table = diag.tables.get(name)
    if table is None or table.empty:
        word = _BEYOND_NOTE_WORDS.get(s.view)
        notes = [n for n in diag.settings.get("notes", []) if word and word in n]
        return f"No {view_name(s.view)} here: {notes[0] if notes else why}."
    if s.view in _BEST_ONLY and not table["system"].astype(str).isin(s.selected_systems).any():
        return (f"No {view_name(s.view)} for {' or '.join(s.selected_systems)}: these tables keep the "
                f"best systems of each task only (see the diagnostics' notes).")
    return None


def confusion_difference(diag: Diagnostics, s: ExplorerState) -> pd.DataFrame:
    """Row-normalised confusion of the system minus the comparison system, from the
    diagnostics' confusion table (what :func:`ser_diag.analysis.confusion.confusion_difference`
    returns). Columns: system_a, system_b, true, pred, share_a, share_b, difference."""
    a = rows_where(diag.tables["confusion"], system=s.system).reset_index(drop=True)
    b = rows_where(diag.tables["confusion"], system=s.compare_system).reset_index(drop=True)
    return pd.DataFrame({"system_a": s.system, "system_b": s.compare_system, "true": a["true"],
                         "pred": a["pred"], "share_a": a["share"], "share_b": b["share"],
                         "difference": a["share"] - b["share"]})


def heatmap(diag: Diagnostics, s: ExplorerState, bin_labels: list[str] | None = None,
            system: str | None = None) -> dict | None:
    """The cells of a confusion or binned view for ``system`` (default: the state's), for the
    clickable figure: ``share`` and ``count`` (rows = true, columns = predicted; binned rows
    from high to low as in the figure), ``rows``/``columns`` (labels), ``row_values``/
    ``column_values`` (what a state takes as ``cell_true``/``cell_pred``), ``title``; None in
    other views. ``bin_labels``: the labels of the binned view's bins."""
    system = system or s.system
    if s.view == "confusion":
        frame = rows_where(diag.tables["confusion"], system=system)
        codes = list(diag.vocabulary.classes)
        k = len(codes)
        share = frame["share"].to_numpy(float).reshape(k, k)
        count = frame["count"].to_numpy(np.int64).reshape(k, k)
        names = [diag.vocabulary.class_names[c] for c in codes]
        return dict(share=share, count=count, rows=names, columns=names, row_values=codes,
                    column_values=codes,
                    title=f"{system}: confusion matrix (share of the true class)")
    attribute = s.view_attribute
    if attribute is None:
        return None
    frame = rows_where(diag.tables["binned"], system=system, attribute=attribute)
    k = int(np.sqrt(len(frame)))
    frame = frame.sort_values(["true_index", "pred_index"])
    share = frame["share"].to_numpy(float).reshape(k, k)[::-1]
    count = frame["count"].to_numpy(np.int64).reshape(k, k)[::-1]
    return dict(share=share, count=count, rows=bin_labels[::-1], columns=bin_labels,
                row_values=list(range(k))[::-1], column_values=list(range(k)),
                title=f"{system}: binned {diag.vocabulary.attribute_displays[attribute]} (share of the true bin)")


def metrics_table(diag: Diagnostics, systems: list[str]) -> pd.DataFrame:
    """The diagnostics' ``metrics`` rows of ``systems``. Columns: task, system, metric,
    estimate, ci_low, ci_high, level, unit, n_boot, n."""
    table = _of_systems(diag.tables["metrics"], systems)
    if table.empty:
        raise ValueError("no predictions for these systems in this split and group")
    return table[["task", "system", "metric", "estimate", "ci_low", "ci_high", "level", "unit",
                  "n_boot", "n"]].reset_index(drop=True)


def headline_table(diag: Diagnostics, systems: list[str]) -> pd.DataFrame:
    """:func:`metrics_table` for reading: one row per system (in the order of ``systems``), one
    column per headline metric (human names), cells ``estimate [ci_low, ci_high]``, and the
    files scored per task (``n categorical``, ``n attributes``: the tasks may score different files)."""
    table = metrics_table(diag, systems)
    headline = headline_of(diag.vocabulary)
    table = table[table["metric"].isin(headline)]
    cell = [f"{e:.3f} [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) and np.isfinite(hi) else f"{e:.3f}"
            for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"])]
    wide = table.assign(cell=cell).pivot(index="system", columns="metric", values="cell")
    wide = wide.reindex(columns=[m for m in headline if m in wide.columns])
    for task in TASKS:
        part = table[table["task"] == task]
        if len(part):
            wide[f"n {task}"] = part.groupby("system")["n"].max().reindex(wide.index).astype("Int64")
    wide = wide.rename(columns=lambda c: human_name(c, diag.vocabulary) if not str(c).startswith("n ") else c)
    wide = wide.reindex([s for s in systems if s in wide.index])
    wide.columns.name = None
    return wide


def _readable(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` of ``table`` with the headers (and metric names) a person reads."""
    out = table[columns].reset_index(drop=True).copy()
    for column in ("metric", "quantity"):
        if column in out:
            out[column] = [_QUANTITIES.get(m) or human_name(m) for m in out[column]]
    return out.rename(columns=_HEADERS)


def _ceiling(ceiling: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    first = ceiling.iloc[0]
    return (f"Human ceiling: {first['estimator']}; bias: {first['bias']}",
            _readable(ceiling, ["task", "metric", "estimate", "ci_low", "ci_high", "n_files", "n_judgements"]))


def _with_group_text(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(group=table["group"].astype(str))


def view_tables(diag: Diagnostics, s: ExplorerState) -> list[tuple[str, pd.DataFrame]]:
    """``(title, table)`` pairs shown below a beyond view's figure, headers in words
    (machine names stay in the diagnostics' CSVs); empty for other views or without data.

    * leaderboard: every metric of ``leaderboard_ranks`` (system, estimate, CI, rank, 95% rank
      interval, P(best), tier), best first; the human ceiling beside it;
    * win probability: each pair of the headline metrics (difference A - B with CI,
      P(A beats B), Holm-corrected p, significant);
    * agreement: the chosen system(s)' metrics per agreement bin (classes) and per annotator-SD
      bin (attributes), the human ceiling and the soft-label scores;
    * podcasts: the chosen system(s)' metrics per podcast, worst first, and the gender gap
      within podcasts; durations: the chosen system(s)' metrics per duration bin.
    """
    if s.view not in BEYOND_VIEWS or unavailable(diag, s):
        return []
    t, systems, out = diag.tables, s.selected_systems, []
    if s.view == "leaderboard_ranks":
        board = t["leaderboard_ranks"].sort_values(["task", "metric", "rank", "system"], kind="stable")
        interval = [f"{int(lo)}-{int(hi)}" if np.isfinite(lo) and np.isfinite(hi) else ""
                    for lo, hi in zip(board["rank_ci_low"], board["rank_ci_high"])]
        out.append(("Leaderboard: estimate with CI, rank, 95% rank interval, probability of being best, "
                    "significance tier",
                    _readable(board.assign(rank_interval=interval),
                              ["task", "metric", "system", "estimate", "ci_low", "ci_high", "rank", "rank_interval",
                               "p_best", "tier"])))
        if "human_ceiling" in t:
            out.append(_ceiling(t["human_ceiling"]))
    elif s.view == "win_probability":
        pairs = t["leaderboard_pairs"]
        pairs = pairs[pairs["metric"].isin(HEADLINE_OF.values())]
        out.append(("Pairs of systems (headline metrics): difference, P(A beats B) over the paired resamples, "
                    "Holm-corrected p-value",
                    _readable(pairs, ["task", "metric", "system_a", "system_b", "diff", "ci_low", "ci_high",
                                      "win_prob", "p_holm", "significant"])))
    elif s.view == "annotator_agreement":
        bins = _with_group_text(_of_systems(t["annotator_agreement_bins"], systems))
        table = _readable(bins, ["task", "system", "metric", "group", "n", "estimate", "ci_low", "ci_high"])
        out.append(("Metric by annotator agreement (classes: votes for the consensus; attributes: tercile "
                    "of the annotators' SD)", table.rename(columns={"group": "annotator agreement"})))
        if "human_ceiling" in t:
            out.append(_ceiling(t["human_ceiling"]))
        soft = t.get("annotator_agreement_soft")
        if soft is not None:
            out.append(("Soft-label scores against the annotators' votes",
                        _readable(_of_systems(soft, systems), ["system", "metric", "estimate", "ci_low", "ci_high",
                                                               "n"])))
    elif s.view == "podcasts":
        pods = _of_systems(t["podcast_metrics"], systems).sort_values(
            ["system", "task", "metric", "estimate", "group"], kind="stable")
        table = _readable(_with_group_text(pods), ["system", "task", "metric", "group", "n", "n_speakers", "estimate",
                                                   "ci_low", "ci_high", "overall", "below_overall"])
        out.append(("Per podcast, worst first", table.rename(columns={"group": "podcast"})))
        gaps = t.get("gender_gap_by_podcast")
        if gaps is not None:
            gaps = _of_systems(gaps, systems)
            if len(gaps):
                out.append(("Gender gap overall and within podcasts (share explained by podcast)",
                            _readable(gaps, ["system", "task", "metric", "quantity", "estimate", "ci_low", "ci_high",
                                             "n_podcasts_both"])))
    else:   # durations
        durations_ = _with_group_text(_of_systems(t["duration_metrics"], systems))
        table = _readable(durations_, ["system", "task", "metric", "group", "n", "estimate", "ci_low", "ci_high"])
        out.append(("Metric by duration (seconds, from the audio headers)",
                    table.rename(columns={"group": "duration"})))
    return out
