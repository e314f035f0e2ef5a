"""Binned true-vs-predicted attribute matrices (paper Fig. 3b-d) as a Display object."""

from __future__ import annotations

import numpy as np
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.colors import Normalize

from ser_diag.analysis.binned import binned_matrix
from ser_diag.plots._style import MATRIX_CMAP, new_axes
from ser_diag.evaluation import vocabulary_of
from ser_diag.plots.confusion import annotated_heatmap
from ser_diag.vocabulary import Vocabulary


class BinnedAttributeDisplay:
    """Row-normalised matrix of true bin (y, low at the bottom, high at the top) against
    predicted bin (x, low to high) for one system and attribute; each cell shows the share of
    the true bin's files predicted in that bin, each y label the bin's file count.

    A diagonal means extremes are recovered; mass pulled toward the middle columns is
    regression to the mean. ``frame`` is the (system, attribute) part of
    :func:`ser_diag.analysis.binned.binned_matrix` (``normalize="true"``); ``vocabulary``: the
    corpus whose attribute display names label the axes (default: the frame's).
    After :meth:`plot`: ``figure_``, ``ax_``, ``im_``, ``text_``.
    """

    def __init__(self, frame: pd.DataFrame, system: str | None = None, attribute: str | None = None,
                 vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(frame)
        rows = frame
        if system is not None:
            rows = rows.loc[rows["system"].astype(str) == str(system)]
        if attribute is not None:
            rows = rows.loc[rows["attribute"].astype(str) == attribute]
        keys = rows[["system", "attribute"]].drop_duplicates()
        if len(keys) != 1:
            raise ValueError(f"need exactly one (system, attribute) in frame, found {len(keys)}: "
                             "pass system= and attribute=")
        self.system, self.attribute = (str(v) for v in keys.iloc[0])
        self.frame = rows

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system: str | None = None, attribute: str = "EmoAct",
                         *, scheme: str = "unit", edges=None, ax=None, **plot_kw):
        """Compute :func:`binned_matrix` for one system and attribute of ``merged`` and plot it."""
        rows = merged if system is None else merged.loc[merged["system"].astype(str) == str(system)]
        if system is not None and rows.empty:
            raise ValueError(f"system {system!r} not in merged")
        frame = binned_matrix(rows, attribute, scheme=scheme, edges=edges, normalize="true")
        return cls(frame, system, attribute, vocabulary_of(merged)).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, system: str | None = None, attribute: str | None = None,
                   *, ax=None, vocabulary: Vocabulary | None = None, **plot_kw):
        """Plot an existing :func:`binned_matrix` frame (filtered by system and attribute)."""
        return cls(frame, system, attribute, vocabulary).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, cmap=MATRIX_CMAP, colorbar: bool = True, title: str | None = None,
             fontsize: float = 8.0):
        """Draw on ``ax`` (or a new figure); returns ``self``."""
        fig, ax = new_axes(ax, figsize=(6.4, 5.2))
        cells = self.frame.sort_values(["true_index", "pred_index"])
        k = int(cells["true_index"].max()) + 1
        shares = cells["share"].to_numpy(dtype=float).reshape(k, k)
        counts = cells["count"].to_numpy().reshape(k, k)
        # quantile names ("bottom 25% [1, 3.2)") go on two lines
        labels = [str(v).replace(" [", "\n[") for v in cells.loc[cells["true_index"] == 0, "pred_bin"]]
        n_true = counts.sum(axis=1)
        ylabels = [f"{label}\nn={n}" if "\n" in label else f"{label}  n={n}" for label, n in zip(labels, n_true)]
        texts = [[f"{100 * s:.0f}%" if not np.isnan(s) else "" for s in row] for row in shares]
        name = self.vocabulary.attribute_displays.get(self.attribute, self.attribute)
        self.im_, self.text_ = annotated_heatmap(
            ax, shares, texts, cmap, Normalize(0.0, 1.0), labels, ylabels,
            "share of true bin" if colorbar else None, fontsize, origin="lower")
        if any("\n" in label for label in labels):
            ax.tick_params(axis="x", labelrotation=0)
            plt.setp(ax.get_xticklabels(), ha="center")
        ax.set_xlabel(f"Predicted {name} bin")
        ax.set_ylabel(f"True {name} bin (low at bottom)")
        ax.set_title(title if title is not None else f"{self.system}: {name}, true vs predicted")
        self.figure_, self.ax_ = fig, ax
        return self
