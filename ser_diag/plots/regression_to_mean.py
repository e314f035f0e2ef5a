"""Regression-to-the-mean figure: mean prediction per true bin against the identity line."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.analysis.regression_to_mean import bin_means, shrinkage_table
from ser_diag.evaluation import vocabulary_of
from ser_diag.plots._style import PALETTE, new_axes
from ser_diag.vocabulary import Vocabulary

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")


class RegressionToMeanDisplay:
    """Mean prediction per true bin (with CI error bars) against the mean true value, one
    line per system or per attribute, and the identity line a calibrated system follows.

    Lines flatter than the identity are regression to the mean; the legend gives each line's
    slope of E[prediction | truth] from :func:`ser_diag.analysis.regression_to_mean.shrinkage_table`
    when known. ``frame`` is :func:`ser_diag.analysis.regression_to_mean.bin_means` output; a
    line is drawn for every (system, attribute) in it, labelled by what varies. ``vocabulary``:
    the corpus whose attribute display names and scales label the axes (default: the frame's);
    the axes span the bins and intervals drawn, within the attributes' scale.
    After :meth:`plot`: ``figure_``, ``ax_``, ``lines_`` (dict label -> ErrorbarContainer).
    """

    def __init__(self, frame: pd.DataFrame, shrinkage: pd.DataFrame | None = None,
                 vocabulary: Vocabulary | None = None):
        if frame.empty:
            raise ValueError("empty bin_means frame")
        self.frame, self.shrinkage = frame, shrinkage
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(frame)

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system: str | None = None, attribute=None, *,
                         scheme: str = "unit", edges=None, n_boot: int = 1000, level: float = 0.95,
                         by_speaker: bool = False, seed: int = 0, ax=None, **plot_kw):
        """Compute :func:`bin_means` and :func:`shrinkage_table` and plot them.

        ``system`` given: one line per attribute (all, or ``attribute``); ``attribute`` a
        single code and no ``system``: one line per system.
        """
        rows = merged if system is None else merged.loc[merged["system"].astype(str) == str(system)]
        if system is not None and rows.empty:
            raise ValueError(f"system {system!r} not in merged")
        kw = dict(n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed)
        frame = bin_means(rows, attribute, scheme=scheme, edges=edges, **kw)
        return cls(frame, shrinkage_table(rows, attribute, **kw), vocabulary_of(merged)).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, shrinkage: pd.DataFrame | None = None, *, ax=None,
                   vocabulary: Vocabulary | None = None, **plot_kw):
        """Plot an existing :func:`bin_means` frame (and slopes from a :func:`shrinkage_table`)."""
        return cls(frame, shrinkage, vocabulary).plot(ax=ax, **plot_kw)

    def _slope(self, system: str, attribute: str) -> float | None:
        if self.shrinkage is None:
            return None
        hit = self.shrinkage.loc[(self.shrinkage["system"].astype(str) == system)
                                 & (self.shrinkage["attribute"] == attribute)
                                 & (self.shrinkage["metric"] == "slope"), "estimate"]
        return float(hit.iloc[0]) if len(hit) else None

    def _scale_factor(self, attributes) -> float:
        """The widest scale of the attributes drawn over MSP-Podcast's (6 points, 1-7): margins and
        the dodge between lines grow and shrink with the scale (1 on MSP-Podcast's, and
        for attributes the vocabulary does not know)."""
        ranges = self.vocabulary.attribute_ranges
        spans = [ranges[a][1] - ranges[a][0] for a in pd.unique(attributes) if a in ranges]
        return 1.0 if not spans or max(spans) == 6.0 else max(spans) / 6.0

    def plot(self, ax=None, *, title: str | None = None, dodge: float = 0.06):
        """Draw on ``ax`` (or a new figure); returns ``self``. ``dodge`` shifts neighbouring lines
        apart on x (data units, at most 0.24 in all) so their error bars do not overlap."""
        fig, ax = new_axes(ax, figsize=(6.4, 5.4))
        keys = self.frame[["system", "attribute"]].drop_duplicates().astype(str)
        many_systems = keys["system"].nunique() > 1
        many_attributes = keys["attribute"].nunique() > 1
        self.lines_ = {}
        factor = self._scale_factor(keys["attribute"])  # MSP-Podcast's 1-7 scale: 1
        step = min(dodge * factor, 0.24 * factor / max(len(keys) - 1, 1))  # all lines within 0.24 points of 1-7
        offsets = (np.arange(len(keys)) - (len(keys) - 1) / 2) * step
        for i, ((system, attribute), offset) in enumerate(zip(keys.itertuples(index=False), offsets)):
            rows = self.frame.loc[(self.frame["system"].astype(str) == system)
                                  & (self.frame["attribute"].astype(str) == attribute)].sort_values("bin_index")
            name = self.vocabulary.attribute_displays.get(attribute, attribute)
            parts = ([system] if many_systems or not many_attributes else []) + ([name] if many_attributes else [])
            label = ", ".join(parts)
            slope = self._slope(system, attribute)
            if slope is not None:
                label += f" (slope {slope:.2f})"
            y = rows["mean_pred"].to_numpy(dtype=float)
            yerr = np.vstack([y - rows["mean_pred_ci_low"].to_numpy(dtype=float),
                              rows["mean_pred_ci_high"].to_numpy(dtype=float) - y])
            self.lines_[label] = ax.errorbar(
                rows["mean_true"].to_numpy(dtype=float) + offset, y, yerr=np.clip(np.nan_to_num(yerr), 0, None),
                color=PALETTE[i % len(PALETTE)], marker=MARKERS[i % len(MARKERS)], markersize=5,
                linewidth=1.5, capsize=3, label=label)
        low = float(np.nanmin(self.frame[["bin_low", "mean_pred_ci_low"]].to_numpy(dtype=float)))
        high = float(np.nanmax(self.frame[["bin_high", "mean_pred_ci_high"]].to_numpy(dtype=float)))
        ax.plot([low, high], [low, high], color="0.45", linestyle="--", linewidth=1.2,
                label="identity (no shrinkage)", zorder=0)
        ax.set_xlim(low - 0.1 * factor, high + 0.1 * factor)
        ax.set_ylim(low - 0.1 * factor, high + 0.1 * factor)
        ax.set_aspect("equal", adjustable="box")
        ax.grid(True, color="0.9", linewidth=0.8)
        ax.set_axisbelow(True)
        level = float(self.frame["level"].iloc[0])
        what = (self.vocabulary.attribute_displays.get(keys["attribute"].iloc[0], "") if not many_attributes
                else "attribute")
        ax.set_xlabel(f"Mean true {what} in true-value bin")
        ax.set_ylabel(f"Mean predicted {what} ({100 * level:.0f}% CI)")
        if title is None:
            title = "Regression to the mean" + (f": {keys['system'].iloc[0]}" if not many_systems else
                                                f": {what}" if not many_attributes else "")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper left", frameon=True)
        self.figure_, self.ax_ = fig, ax
        return self
