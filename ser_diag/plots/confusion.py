"""Confusion-matrix figures (paper Fig. 3a) as scikit-learn-style Display objects::

    disp = ConfusionMatrixDisplay.from_predictions(merged, system="NTUA")
    save_figure(disp.figure_, "figures", "fig3a_confusion_categorical")
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from ser_diag.analysis.confusion import confusion_difference, confusion_table, systems_of
from ser_diag.evaluation import vocabulary_of
from ser_diag.plots._style import DIFF_CMAP, MATRIX_CMAP, new_axes
from ser_diag.schema import CLASS_CODES, CLASS_NAMES
from ser_diag.vocabulary import Vocabulary

#: MSP-Podcast's class names in the challenge order (other corpora: :func:`class_labels`).
CLASS_LABELS = [CLASS_NAMES[c] for c in CLASS_CODES]


def class_labels(vocabulary: Vocabulary) -> list[str]:
    """The display names of a corpus' scored classes, in its macro-F1 order.

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> class_labels(IEMOCAP)
    ['Neutral', 'Happiness', 'Sadness', 'Anger']
    """
    return [vocabulary.class_names[c] for c in vocabulary.classes]


def annotated_heatmap(ax, values: np.ndarray, texts, cmap, norm: Normalize, xlabels, ylabels,
                      colorbar_label: str | None, fontsize: float = 8.0, origin: str = "upper"):
    """Draw ``values`` as an image with one text per cell; text colour follows the background.

    Returns ``(image, texts)``; ``texts`` is an array of matplotlib Text objects like ``values``.
    """
    im = ax.imshow(values, cmap=cmap, norm=norm, origin=origin, aspect="auto")
    cmap_obj = im.cmap
    text_artists = np.empty(values.shape, dtype=object)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            value = values[i, j]
            if np.isnan(value):
                colour = "black"
            else:
                r, g, b, _ = cmap_obj(norm(value))
                colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            text_artists[i, j] = ax.text(j, i, texts[i][j], ha="center", va="center",
                                         color=colour, fontsize=fontsize)
    ax.set_xticks(np.arange(len(xlabels)), labels=xlabels, rotation=40, ha="right",
                  rotation_mode="anchor")
    ax.set_yticks(np.arange(len(ylabels)), labels=ylabels)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if colorbar_label is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar_label, shrink=0.85)
    return im, text_artists


def _one_system(frame: pd.DataFrame, system) -> tuple[str, pd.DataFrame]:
    names = systems_of(frame, system)
    if len(names) != 1:
        raise ValueError(f"frame holds several systems {names}: pass system=")
    return names[0], frame.loc[frame["system"].astype(str) == names[0]]


def _matrix(frame: pd.DataFrame, column: str, true_col: str = "true", pred_col: str = "pred",
            classes=CLASS_CODES) -> np.ndarray:
    pivot = frame.pivot_table(index=true_col, columns=pred_col, values=column, aggfunc="first",
                              observed=False, dropna=False)
    return pivot.reindex(index=list(classes), columns=list(classes)).to_numpy(dtype=float)


class ConfusionMatrixDisplay:
    """Confusion matrix of one system: colour = share of the true class (row-normalised, the
    recall on the diagonal), each cell annotated with its count and that share.

    Rows are true classes, columns predictions, in the corpus' order (MSP-Podcast: the challenge
    order A, S, H, U, F, D, C, N) with its display names. ``frame`` is the system's part of
    :func:`ser_diag.analysis.confusion.confusion_table` (``normalize="true"``); ``vocabulary``:
    the corpus (default: the frame's, :func:`~ser_diag.evaluation.vocabulary_of`).
    After :meth:`plot`: ``figure_``, ``ax_``, ``im_`` (the image), ``text_`` (k x k Text array).
    """

    def __init__(self, frame: pd.DataFrame, system: str | None = None, vocabulary: Vocabulary | None = None):
        self.system, self.frame = _one_system(frame, system)
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(frame)

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system: str | None = None, *, ax=None, **plot_kw):
        """Compute the table from a categorical ``merged`` frame and plot it."""
        name, rows = _one_system(merged, system)
        return cls(confusion_table(rows, normalize="true"), name, vocabulary_of(merged)).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, system: str | None = None, *, ax=None,
                   vocabulary: Vocabulary | None = None, **plot_kw):
        """Plot an existing :func:`confusion_table` (``normalize="true"``) frame."""
        return cls(frame, system, vocabulary).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, cmap=MATRIX_CMAP, colorbar: bool = True, title: str | None = None,
             fontsize: float = 8.0):
        """Draw on ``ax`` (or a new figure); returns ``self``."""
        fig, ax = new_axes(ax, figsize=(7.2, 6.2))
        classes, labels = self.vocabulary.classes, class_labels(self.vocabulary)
        counts = _matrix(self.frame, "count", classes=classes)
        shares = _matrix(self.frame, "share", classes=classes)
        texts = [[f"{int(c)}\n{100 * s:.0f}%" if not np.isnan(s) else f"{int(c)}"
                  for c, s in zip(crow, srow)] for crow, srow in zip(counts, shares)]
        self.im_, self.text_ = annotated_heatmap(
            ax, shares, texts, cmap, Normalize(0.0, 1.0), labels, labels,
            "share of true class (recall on diagonal)" if colorbar else None, fontsize)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(title if title is not None else f"{self.system}: count and share of true class")
        self.figure_, self.ax_ = fig, ax
        return self


class ConfusionDifferenceDisplay:
    """Row-normalised confusion of ``system_a`` minus ``system_b`` in percentage points.

    Blue/red diverging colours centred on 0; diagonal cells > 0 mean ``system_a`` recalls that
    class more often. ``frame`` is :func:`ser_diag.analysis.confusion.confusion_difference`.
    After :meth:`plot`: ``figure_``, ``ax_``, ``im_``, ``text_``.
    """

    def __init__(self, frame: pd.DataFrame, vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary if vocabulary is not None else vocabulary_of(frame)
        pairs = frame[["system_a", "system_b"]].drop_duplicates()
        if len(pairs) != 1:
            raise ValueError("frame must hold one (system_a, system_b) pair")
        self.system_a, self.system_b = (str(v) for v in pairs.iloc[0])
        self.frame = frame

    @classmethod
    def from_predictions(cls, merged: pd.DataFrame, system_a: str, system_b: str, *, ax=None, **plot_kw):
        """Compute :func:`confusion_difference` from a categorical ``merged`` frame and plot it."""
        return cls(confusion_difference(merged, system_a, system_b), vocabulary_of(merged)).plot(ax=ax, **plot_kw)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, *, ax=None, vocabulary: Vocabulary | None = None, **plot_kw):
        """Plot an existing :func:`confusion_difference` frame."""
        return cls(frame, vocabulary).plot(ax=ax, **plot_kw)

    def plot(self, ax=None, *, cmap=DIFF_CMAP, colorbar: bool = True, title: str | None = None,
             fontsize: float = 8.0):
        """Draw on ``ax`` (or a new figure); returns ``self``."""
        fig, ax = new_axes(ax, figsize=(7.2, 6.2))
        labels = class_labels(self.vocabulary)
        diff = 100.0 * _matrix(self.frame, "difference", classes=self.vocabulary.classes)
        limit = max(float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0, 1.0)
        texts = [["" if np.isnan(d) else "0" if round(d) == 0 else f"{d:+.0f}" for d in row] for row in diff]
        self.im_, self.text_ = annotated_heatmap(
            ax, diff, texts, cmap, Normalize(-limit, limit), labels, labels,
            "difference in share of true class (percentage points)" if colorbar else None, fontsize)
        ax.set_xlabel("Predicted class")
        ax.set_ylabel("True class")
        ax.set_title(title if title is not None else f"{self.system_a} minus {self.system_b}")
        self.figure_, self.ax_ = fig, ax
        return self
