"""Bias-audit figures as scikit-learn-style Display objects: metrics by group with their gap
(:class:`GroupGapDisplay`) and the per-speaker metric distribution
(:class:`SpeakerDistributionDisplay`).

>>> disp = GroupGapDisplay.from_predictions(merged, system="NTUA", by_speaker=True)  # doctest: +SKIP
>>> save_figure(disp.figure_, "figures", "gender_gap_categorical")                   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.analysis.bias import (
    default_speaker_metric,
    group_gaps,
    group_metrics,
    speaker_metrics,
    worst_speakers,
)
from ser_diag.evaluation import vocabulary_of
from ser_diag.names import format_p, human_name
from ser_diag.plots._style import GENDER_COLORS, PALETTE, new_axes
from ser_diag.schema import ATTRIBUTES
from ser_diag.vocabulary import Vocabulary

#: Metrics shown by default, per task.
HEADLINE_METRICS = {
    "categorical": ["macro_f1", "accuracy", "uar"],
    "attributes": [f"ccc_{a}" for a in ATTRIBUTES] + ["ccc_mean"],
}


def headline_metrics(task: str, vocabulary: Vocabulary | None = None) -> list[str]:
    """The metrics shown by default for ``task`` of a corpus (MSP-Podcast: :data:`HEADLINE_METRICS`).

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> headline_metrics("attributes", IEMOCAP)
    ['ccc_activation', 'ccc_valence', 'ccc_dominance', 'ccc_mean']
    """
    if vocabulary is None or task == "categorical":
        return list(HEADLINE_METRICS[task])
    return [f"ccc_{a}" for a in vocabulary.attribute_names] + ["ccc_mean"]


def metric_label(name: str, vocabulary: Vocabulary | None = None) -> str:
    """Readable axis label of a metric name (:func:`ser_diag.names.human_name`; ``vocabulary``:
    the corpus whose classes and attributes it may name).

    >>> metric_label("ccc_EmoVal"), metric_label("recall_F"), metric_label("macro_f1")
    ('CCC valence', 'recall Fear', 'macro-F1')
    """
    return human_name(name, vocabulary)


#: Below this many speakers in a group the distribution is drawn as points only (a box plot
#: of a handful of values suggests quartiles that are not there).
STRIP_BELOW = 20


def _group_colours(groups) -> dict:
    return {g: GENDER_COLORS.get(str(g), PALETTE[(i + 2) % len(PALETTE)]) for i, g in enumerate(groups)}


def _only_system(frame: pd.DataFrame, system) -> tuple[str, pd.DataFrame]:
    names = list(pd.unique(frame["system"].astype(str)))
    if system is None:
        if len(names) != 1:
            raise ValueError(f"frame holds several systems {names}: pass system=")
        system = names[0]
    if system not in names:
        raise ValueError(f"system {system!r} not in {names}")
    return system, frame[frame["system"].astype(str) == system]


def _format_p(p: float) -> str:
    return format_p(p, prefix=True) if p is not None and np.isfinite(p) else "p n/a"


def _interval(low, high) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "(no CI)"
    return f"[{low:+.3f}, {high:+.3f}]"


class GroupGapDisplay:
    """Metrics of one system by group (e.g. gender) with CI bars, and the gap a - b with its
    CI and permutation p-value written above each metric.

    ``frame``: the system's rows of :func:`ser_diag.analysis.bias.group_metrics`; ``gaps``:
    its rows of :func:`~ser_diag.analysis.bias.group_gaps` (optional). After :meth:`plot`:
    ``figure_``, ``ax_``, ``gap_text_`` (metric -> Text).
    """

    def __init__(self, frame: pd.DataFrame, gaps: pd.DataFrame | None = None, system: str | None = None,
                 vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(frame)
        self.system, self.frame = _only_system(frame, system)
        self.gaps = None if gaps is None else _only_system(gaps, self.system)[1]

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system: str | None = None, *, by: str = "Gender",
                         a: str = "Female", b: str = "Male", n_boot: int = 1000, level: float = 0.95,
                         by_speaker: bool = False, n_permutations: int = 1000, seed: int = 0,
                         ddof: int = 0, ax=None, **plot_kw):
        """Compute group metrics and gaps for one system of ``merged`` and plot them."""
        name, rows = _only_system(merged, system)
        rows = rows.copy()
        rows.attrs = dict(merged.attrs)
        kw = dict(n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed, ddof=ddof)
        frame = group_metrics(rows, by=by, **kw)
        gaps = group_gaps(rows, by=by, a=a, b=b, n_permutations=n_permutations, **kw)
        return cls(frame, gaps, name, vocabulary_of(merged)).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, gaps: pd.DataFrame | None = None, system: str | None = None,
                   *, ax=None, vocabulary: Vocabulary | None = None, **plot_kw):
        """Plot existing :func:`group_metrics` (and :func:`group_gaps`) frames."""
        return cls(frame, gaps, system, vocabulary).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, metrics=None, title: str | None = None, fontsize: float = 8.0):
        """Draw on ``ax`` (or a new figure); ``metrics`` defaults to the task's headline
        metrics present in the frame. Returns ``self``."""
        present = list(pd.unique(self.frame["metric"]))
        if metrics is None:
            task = "categorical" if "macro_f1" in present else "attributes"
            metrics = [m for m in headline_metrics(task, self.vocabulary) if m in present]
        missing = [m for m in metrics if m not in present]
        if missing:
            raise ValueError(f"metrics {missing} not in the frame")
        fig, ax = new_axes(ax, figsize=(max(4.8, 1.45 * len(metrics) + 1.8), 4.4))
        groups = list(pd.unique(self.frame["group"]))
        colours = _group_colours(groups)
        width = 0.7 / max(len(groups), 1)
        x = np.arange(len(metrics))
        for i, g in enumerate(groups):
            rows = self.frame[self.frame["group"] == g].set_index("metric").loc[metrics]
            offset = (i - (len(groups) - 1) / 2) * width
            est = rows["estimate"].to_numpy(float)
            err = np.vstack([est - rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float) - est])
            err = np.nan_to_num(err, nan=0.0)   # no interval (n_boot=0): the point alone
            n_spk = int(rows["n_speakers"].iloc[0])
            ax.errorbar(x + offset, est, yerr=np.abs(err), fmt="o", ms=6, capsize=4, lw=1.6,
                        color=colours[g], label=f"{g} (n={int(rows['n'].iloc[0])}, {n_spk} speakers)")
        self.gap_text_ = {}
        shown = self.frame.loc[self.frame["metric"].isin(metrics)]
        values = np.concatenate([shown[c].to_numpy(float) for c in ("estimate", "ci_low", "ci_high")])
        values = values[np.isfinite(values)]
        top, bottom = (float(values.max()), float(values.min())) if values.size else (1.0, 0.0)
        span = max(top - bottom, 1e-3)
        if self.gaps is not None and not self.gaps.empty:
            gap_rows = self.gaps.set_index("metric")
            first = self.gaps.iloc[0]
            for j, m in enumerate(metrics):
                if m not in gap_rows.index:
                    continue
                r = gap_rows.loc[m]
                self.gap_text_[m] = ax.text(
                    j, top + 0.06 * span,
                    f"gap {r['gap']:+.3f}\n{_interval(r['ci_low'], r['ci_high'])}\n{_format_p(r['p_value'])}",
                    ha="center", va="bottom", fontsize=fontsize, linespacing=1.15)
            ax.set_ylim(bottom - 0.08 * span, top + 0.42 * span)
            unit = "speakers" if first["unit"] == "speaker" else "utterances"
            note = (f"gap = {first['group_a']} - {first['group_b']}, {int(100 * first['level'])}% CI "
                    f"resampling {unit}; p: {first['method']}")
        else:
            note = None
        ax.set_xticks(x, labels=[metric_label(m, self.vocabulary) for m in metrics])
        ax.set_xlim(-0.6, len(metrics) - 0.4)
        ax.set_ylabel("score")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=len(groups), fontsize=fontsize,
                  frameon=False, title=note, title_fontsize=fontsize - 0.5)
        by = self.frame["by"].iloc[0]
        ax.set_title(title if title is not None else f"{self.system}: metrics by {by}")
        self.figure_, self.ax_ = fig, ax
        return self


class SpeakerDistributionDisplay:
    """Distribution of a per-speaker metric (speakers with at least ``min_utterances``
    utterances) as box plot plus one dot per speaker, by group, with the worst speakers
    labelled ``speaker id (n utterances)``.

    ``frame``: one system's rows of :func:`ser_diag.analysis.bias.speaker_metrics`. After
    :meth:`plot`: ``figure_``, ``ax_``, ``worst_`` (the labelled speakers, a frame).
    """

    def __init__(self, frame: pd.DataFrame, system: str | None = None, metric: str | None = None,
                 by: str = "Gender"):
        self.min_utterances = frame.attrs.get("min_utterances")
        self.system, frame = _only_system(frame, system)
        if by not in frame:
            raise ValueError(f"column {by!r} not in the speaker frame")
        if metric is None:
            metric = default_speaker_metric("categorical" if "accuracy" in set(frame["metric"]) else "attributes")
        self.metric, self.by = metric, by
        self.frame = frame[frame["metric"] == metric].reset_index(drop=True)
        if self.frame.empty:
            raise ValueError(f"no speaker has metric {metric!r}")

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system: str | None = None, *, metric: str | None = None,
                         by: str = "Gender", min_utterances: int = 10, ddof: int = 0, ax=None, **plot_kw):
        """Compute :func:`speaker_metrics` for one system of ``merged`` and plot it."""
        name, rows = _only_system(merged, system)
        rows = rows.copy()
        rows.attrs = dict(merged.attrs)
        frame = speaker_metrics(rows, min_utterances=min_utterances, by=by, ddof=ddof)
        return cls(frame, name, metric, by).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, system: str | None = None, *, metric: str | None = None,
                   by: str = "Gender", ax=None, **plot_kw):
        """Plot an existing :func:`speaker_metrics` frame."""
        return cls(frame, system, metric, by).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, n_worst: int = 5, title: str | None = None, fontsize: float = 8.0,
             seed: int = 0):
        """Draw on ``ax`` (or a new figure); returns ``self``."""
        fig, ax = new_axes(ax, figsize=(5.6, 4.6))
        frame = self.frame
        labels = frame[self.by].astype(object).where(frame[self.by].notna(), "unknown")
        groups = sorted(set(labels) - {"unknown"}, key=str)
        groups += ["unknown"] if (labels == "unknown").any() else []
        colours = _group_colours(groups)
        rng = np.random.default_rng(seed)
        xs = np.empty(len(frame))
        for i, g in enumerate(groups):
            rows = np.flatnonzero((labels == g).to_numpy())
            values = frame["estimate"].to_numpy(float)[rows]
            finite = values[np.isfinite(values)]
            if finite.size >= STRIP_BELOW:
                ax.boxplot(finite, positions=[i], widths=0.5, showfliers=False, patch_artist=True,
                           boxprops=dict(facecolor=(*colours[g][:3], 0.18), edgecolor=colours[g]),
                           medianprops=dict(color=colours[g], lw=2), whiskerprops=dict(color=colours[g]),
                           capprops=dict(color=colours[g]))
            xs[rows] = i + rng.uniform(-0.18, 0.18, rows.size)
            ax.scatter(xs[rows], values, s=14, color=colours[g], alpha=0.7, lw=0)
        n_known = int(np.isfinite(frame["estimate"].to_numpy(float)).sum())
        n_worst = min(n_worst, n_known // 3)          # never more than a third of the speakers
        self.worst_ = (worst_speakers(frame, n=n_worst, metric=self.metric) if n_worst > 0
                       else frame.iloc[:0].assign(rank=pd.Series(dtype=int)))
        small = labels.value_counts().min() < STRIP_BELOW
        self._label_worst(ax, frame, labels, groups, xs, fontsize)
        counts = labels.value_counts()
        ax.set_xticks(np.arange(len(groups)), labels=[f"{g}\n({counts[g]} speakers)" for g in groups])
        ax.set_xlim(-0.5, len(groups) - 0.05)
        ax.set_xlabel(self.by)
        ax.set_ylabel(f"per-speaker {metric_label(self.metric, vocabulary_of(self.frame))}")
        ax.grid(axis="y", alpha=0.3)
        minimum = f"speakers with >= {self.min_utterances} utterances; " if self.min_utterances else ""
        ax.set_title(title if title is not None else
                     f"{self.system}: {metric_label(self.metric, vocabulary_of(self.frame))} per speaker\n"
                     f"{minimum}{'every speaker a point; ' if small else ''}"
                     f"circled: {len(self.worst_)} worst", fontsize=fontsize + 2)
        self.figure_, self.ax_ = fig, ax
        return self

    def _label_worst(self, ax, frame, labels, groups, xs, fontsize):
        """Circle the worst speakers and label them in a column right of their group's box,
        spreading labels vertically so they never overlap."""
        values = frame["estimate"].to_numpy(float)
        finite = values[np.isfinite(values)]
        min_gap = 0.045 * max(np.ptp(finite) if finite.size else 1.0, 1e-6)
        for i, g in enumerate(groups):
            worst = self.worst_[self.worst_["SpkrID"].isin(frame.loc[(labels == g).to_numpy(), "SpkrID"])]
            worst = worst.sort_values("estimate")
            previous = -np.inf
            for _, r in worst.iterrows():
                j = int(np.flatnonzero((frame["SpkrID"] == r["SpkrID"]).to_numpy())[0])
                y_text = max(r["estimate"], previous + min_gap)
                previous = y_text
                ax.scatter([xs[j]], [r["estimate"]], s=46, facecolor="none", edgecolor="black", lw=1.2)
                ax.annotate(f"spk {r['SpkrID']} (n={r['n_utterances']})", (xs[j], r["estimate"]),
                            xytext=(i + 0.3, y_text), textcoords="data", fontsize=fontsize - 0.5,
                            va="center", ha="left",
                            arrowprops=dict(arrowstyle="-", color="0.5", lw=0.6, shrinkB=4))
