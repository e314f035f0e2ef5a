"""Fusion figures as scikit-learn-style Display objects: the top-K fusion curve (paper Figure 4,
:class:`FusionCurveDisplay`) and the pairwise disagreement heatmap (:class:`DisagreementDisplay`).

>>> disp = FusionCurveDisplay.from_predictions(categorical, attributes, n_boot=1000)  # doctest: +SKIP
>>> save_figure(disp.figure_, "figures", "fig4_topk_fusion")                         # doctest: +SKIP
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize
from matplotlib.ticker import MaxNLocator

from ser_diag.analysis.fusion import pairwise_disagreement, topk_fusion_curve
from ser_diag.plots._style import ANNOTATE_CELLS_MAX, MATRIX_CMAP, MAX_SYSTEMS, PALETTE, new_axes, shown_of
from ser_diag.evaluation import vocabulary_of
from ser_diag.plots.bias import metric_label

#: Line colour and marker per fusion method.
METHOD_STYLE = {
    "plurality": dict(color=PALETTE[0], marker="o", label="plurality vote"),
    "prob_average": dict(color=PALETTE[2], marker="s", label="probability average"),
    "mean": dict(color=PALETTE[4], marker="D", label="mean of predictions"),
}


class FusionCurveDisplay:
    """Score of the top-K fusion against K, one panel per task metric, with the CI band and the
    baseline system as a dashed line (paper Figure 4).

    ``frame``: :func:`ser_diag.analysis.fusion.topk_fusion_curve`. :meth:`plot` takes ``ax``
    as one Axes (one metric) or a sequence with one Axes per metric. After :meth:`plot`:
    ``figure_``, ``ax_`` (1-D array of Axes, one per panel, in ``metrics_`` order).
    """

    def __init__(self, frame: pd.DataFrame):
        if frame.empty:
            raise ValueError("empty fusion curve frame")
        self.frame = frame

    @classmethod
    def from_predictions(cls, categorical: pd.DataFrame | None = None, attributes: pd.DataFrame | None = None,
                         *, selection="half", n_boot: int = 1000, level: float = 0.95,
                         by_speaker: bool = False, seed: int = 0, baseline: str | None = None,
                         ax=None, **plot_kw):
        """Compute :func:`topk_fusion_curve` from merged frames and plot it."""
        frame = topk_fusion_curve(categorical, attributes, selection=selection, n_boot=n_boot,
                                  level=level, by_speaker=by_speaker, seed=seed, baseline=baseline)
        return cls(frame).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, ax=None, **plot_kw):
        """Plot an existing :func:`topk_fusion_curve` frame."""
        return cls(frame).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, metrics=None, title: str | None = None, fontsize: float = 9.0):
        """Draw one panel per metric; returns ``self``."""
        present = list(pd.unique(self.frame["metric"]))
        voc = vocabulary_of(self.frame)
        order = ["macro_f1"] + [f"ccc_{a}" for a in voc.attribute_names] + ["ccc_mean"]
        metrics = metrics or sorted(present, key=lambda m: (order + present).index(m))
        if ax is None:
            fig, axes = plt.subplots(1, len(metrics), figsize=(3.1 * len(metrics) + 0.6, 3.9),
                                     layout="constrained", squeeze=False)
            axes = axes.ravel()
        else:
            axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
            if axes.size != len(metrics):
                raise ValueError(f"got {axes.size} Axes for {len(metrics)} metrics {metrics}")
            fig = axes[0].figure
        for panel, metric in zip(axes, metrics):
            rows = self.frame[self.frame["metric"] == metric]
            for method, part in rows[rows["method"] != "baseline"].groupby("method", sort=False):
                part = part.sort_values("k")
                style = METHOD_STYLE.get(method, dict(color=PALETTE[4], marker="^", label=method))
                panel.fill_between(part["k"], part["ci_low"], part["ci_high"], color=style["color"],
                                   alpha=0.18, lw=0)
                panel.plot(part["k"], part["estimate"], marker=style["marker"], color=style["color"],
                           ms=5 if len(part) <= 30 else 2.5, lw=1.6, label=style["label"])  # K up to 166
            base = rows[rows["method"] == "baseline"]
            if base.empty:   # said in the legend, so a missing line is not mistaken for a hidden one
                panel.plot([], [], color="0.35", ls="--", lw=1.2, label="no baseline system")
            else:
                b = base.iloc[0]
                panel.axhline(b["estimate"], color="0.35", ls="--", lw=1.2, label=f"baseline system ({b['systems']})")
                panel.annotate(f"baseline {b['systems']}: {b['estimate']:.3f}",
                               (0.02, b["estimate"]), xycoords=("axes fraction", "data"),
                               xytext=(0, 3), textcoords="offset points", fontsize=fontsize - 1.5,
                               color="0.25", va="bottom",
                               bbox=dict(facecolor="white", alpha=0.75, lw=0, pad=0.5))
            panel.xaxis.set_major_locator(MaxNLocator(integer=True))
            panel.set_xlabel("K (top-ranked systems fused)", fontsize=fontsize)
            panel.set_ylabel(metric_label(metric, voc), fontsize=fontsize)
            panel.set_title(metric_label(metric, voc), fontsize=fontsize + 1)
            panel.grid(alpha=0.3)
            panel.tick_params(labelsize=fontsize - 1)
            if ax is not None:
                panel.legend(fontsize=fontsize - 2, frameon=False, loc="best")
        first = self.frame.iloc[0]
        unit = "speakers" if first["unit"] == "speaker" else "utterances"
        n_sel = self.frame.attrs.get("n_selection")
        ranked = f"ranked on {n_sel} other files; " if n_sel else ""
        fig.suptitle(title if title is not None else
                     f"Top-K fusion on {int(first['n'])} scoring files ({ranked}"
                     f"{int(100 * first['level'])}% CI resampling {unit})", fontsize=fontsize + 1)
        if ax is None:   # one legend for all panels, under them
            handles = {}
            for panel in axes:
                for handle, label in zip(*panel.get_legend_handles_labels()):
                    handles.setdefault(label, handle)
            fig.legend(handles.values(), handles.keys(), loc="outside lower center",
                       ncol=len(handles), fontsize=fontsize - 1, frameon=False)
        self.figure_, self.ax_, self.metrics_ = fig, axes, list(metrics)
        return self


class DisagreementDisplay:
    """Heatmap of :func:`ser_diag.analysis.fusion.pairwise_disagreement` for one metric
    (``disagreement`` for classes, ``pearson_<attr>`` for attributes), every system; each cell
    annotated up to :data:`~ser_diag.plots._style.ANNOTATE_CELLS_MAX` systems; at most
    ``max_systems``, the first of ``order`` (e.g. the leaderboard, best first; default the
    table's order), said in the title; the diagonal is left blank and the colour scale is fixed from 0 to 1 (shares of files and
    correlations alike), so small differences between systems look small.
    After :meth:`plot`: ``figure_``, ``ax_``, ``im_``.
    """

    def __init__(self, frame: pd.DataFrame, metric: str | None = None):
        metrics = list(pd.unique(frame["metric"]))
        self.metric = metric or ("disagreement" if "disagreement" in metrics else metrics[0])
        if self.metric not in metrics:
            raise ValueError(f"metric {self.metric!r} not in the frame ({metrics})")
        self.frame = frame[frame["metric"] == self.metric].reset_index(drop=True)

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, *, metric: str | None = None, ax=None, **plot_kw):
        """Compute :func:`pairwise_disagreement` from a merged frame and plot it."""
        return cls(pairwise_disagreement(merged), metric).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, metric: str | None = None, ax=None, **plot_kw):
        """Plot an existing :func:`pairwise_disagreement` frame."""
        return cls(frame, metric).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, title: str | None = None, fontsize: float = 8.0, order=None,
             max_systems: int = MAX_SYSTEMS):
        """Draw on ``ax`` (or a new figure); returns ``self``."""
        names = list(pd.unique(self.frame["system_a"]))
        total = len(names)
        present = set(names)
        ranked = [s for s in (order or ()) if s in present]
        names = (ranked + [s for s in names if s not in set(ranked)])[:max_systems]
        matrix = (self.frame.pivot(index="system_a", columns="system_b", values="value")
                  .reindex(index=names, columns=names).to_numpy(float, copy=True))
        np.fill_diagonal(matrix, np.nan)   # a system against itself says nothing
        n = len(names)
        size = min(max(4.5, 0.55 * n + 2.5), 14.0)
        fig, ax = new_axes(ax, figsize=(size + 0.8, size))
        norm = Normalize(0.0, 1.0)   # fixed: the scale never stretches a 0.53-0.58 spread
        self.im_ = ax.imshow(np.ma.masked_invalid(matrix), cmap=MATRIX_CMAP, norm=norm)
        for i in range(n if n <= ANNOTATE_CELLS_MAX else 0):
            for j in range(n):
                if i == j:
                    ax.text(j, i, "-", ha="center", va="center", fontsize=fontsize, color="0.4")
                    continue
                r, g, b, _ = self.im_.cmap(norm(matrix[i, j]))
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=fontsize,
                        color="black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white")
        names = [str(name) for name in names]
        if n <= ANNOTATE_CELLS_MAX:
            ax.set_xticks(np.arange(n), labels=names, rotation=40, ha="right", rotation_mode="anchor")
            ax.set_yticks(np.arange(n), labels=names)
        else:   # one name per row still, in a font that fits the row (PDF: zoom in)
            label_size = float(np.clip(0.8 * 72 * (size - 3.5) / n, 3.0, fontsize))
            ax.set_xticks(np.arange(n), labels=names, rotation=90, fontsize=label_size)
            ax.set_yticks(np.arange(n), labels=names, fontsize=label_size)
        ax.tick_params(length=0)
        label = ("share of files with different classes" if self.metric == "disagreement"
                 else f"{metric_label(self.metric, vocabulary_of(self.frame))} between systems")
        fig.colorbar(self.im_, ax=ax, label=f"{label} (scale 0-1)", shrink=0.85)
        shown = shown_of(n, total, "disagreement", "best" if order else "first")
        ax.set_title(title if title is not None else f"Pairwise {label}{shown}", fontsize=fontsize + 2)
        self.figure_, self.ax_ = fig, ax
        return self
