"""Binned attribute matrices: true vs predicted arousal, valence, dominance (paper Fig. 3b-d).

Both the true and the predicted value of a file are put into the same bins and counted like a
confusion matrix; row-normalised, a system without regression to the mean shows a diagonal.
Bin schemes (the paper does not publish its edges, so they are a parameter):

``"unit"``      unit steps over the attribute's scale (:func:`scale_edges`): MSP-Podcast's 1-7 gives
                edges 1, 2, ..., 7, bins [1, 2), [2, 3), ..., [6, 7] (last bin closed); a 1-5
                scale 4 bins; a scale not 3 to 10 whole units wide (-1 to 1, 0 to 1) 4 equal bins.
``"quantile"``  bottom 25 % / middle 50 % / top 25 % of the *true* values (Odyssey 2024
                analysis): edges min, q25, q75, max of the labels of the files scored.
explicit        ``edges=[e0, e1, ..., ek]``, strictly increasing: bins [e0, e1), ..., [ek-1, ek].

Values outside the outer edges (predictions below 1 or above 7 on MSP-Podcast's scale, beyond
the corpus' scale, or beyond explicit edges) are counted in the first or last bin, so every file
is counted once; :func:`out_of_range` counts them by the scale. The attributes and their scales
are the data's vocabulary's (:func:`ser_diag.evaluation.vocabulary_of`), MSP-Podcast's by default.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from ser_diag import metrics
from ser_diag.analysis.confusion import normalize_counts, systems_of
from ser_diag.evaluation import aligned, frame_of, rows_at, vocabulary_of
from ser_diag.schema import ATTRIBUTE_MAX, ATTRIBUTE_MIN
from ser_diag.vocabulary import Vocabulary

SCHEMES = ("unit", "quantile")
QUANTILE_LEVELS = (0.25, 0.75)
QUANTILE_NAMES = ("bottom 25%", "middle 50%", "top 25%")


#: Bins of a scale that is not 3 to 10 whole units wide (e.g. -1 to 1): equal widths.
EQUAL_BINS = 4


def scale_edges(low: float = ATTRIBUTE_MIN, high: float = ATTRIBUTE_MAX) -> np.ndarray:
    """The ``"unit"`` edges of a scale ``low``-``high``: unit steps when it is 3 to 10 whole
    units wide (MSP-Podcast's 1-7, IEMOCAP's 1-5), else :data:`EQUAL_BINS` equal bins.

    >>> scale_edges(1, 5).tolist(), scale_edges(-1, 1).tolist()
    ([1.0, 2.0, 3.0, 4.0, 5.0], [-1.0, -0.5, 0.0, 0.5, 1.0])
    """
    low, high = float(low), float(high)
    span = high - low
    if float(span).is_integer() and 3 <= span <= 10:
        return np.arange(low, high + 1.0)
    return np.linspace(low, high, EQUAL_BINS + 1)


def bin_edges(y_true, scheme: str = "unit", edges: Sequence[float] | None = None,
              scale: tuple[float, float] = (ATTRIBUTE_MIN, ATTRIBUTE_MAX)) -> np.ndarray:
    """Bin edges for one attribute: explicit ``edges`` if given, else those of ``scheme``
    (``"unit"``: :func:`scale_edges` of ``scale``, the attribute's ``(low, high)``, default
    MSP-Podcast's 1-7).

    >>> bin_edges([1.0, 7.0]).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    >>> bin_edges([0.0], scale=(1, 5)).tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    >>> bin_edges([1, 2, 3, 4, 5, 6, 7, 8, 9], scheme="quantile").tolist()
    [1.0, 3.0, 7.0, 9.0]
    """
    if edges is not None:
        out = np.asarray(edges, dtype=float)
        if out.ndim != 1 or len(out) < 2 or not np.all(np.diff(out) > 0):
            raise ValueError(f"edges must be at least two strictly increasing numbers, not {edges!r}")
        return out
    if scheme == "unit":
        return scale_edges(*scale)
    if scheme == "quantile":
        values = np.asarray(y_true, dtype=float)
        values = values[~np.isnan(values)]
        out = np.quantile(values, (0.0,) + QUANTILE_LEVELS + (1.0,))
        if not np.all(np.diff(out) > 0):
            raise ValueError(f"quantile bins collapse (edges {out.tolist()}): too few distinct true values")
        return out
    raise ValueError(f"scheme must be one of {SCHEMES} or edges given, not {scheme!r}")


def _percent(share: float) -> str:
    return f"{100 * share:.1f}".removesuffix(".0") + "%"


def bin_labels(edges: np.ndarray, scheme: str = "unit", values=None) -> list[str]:
    """Readable bin names: ``[1, 2)`` ... ``[6, 7]``; quantile bins are prefixed by their share:
    the *actual* share of ``values`` (the true values the edges came from) in each bin, which
    differs from the nominal 25/50/25% when ties sit on an edge (without ``values``: nominal).

    >>> bin_labels(np.array([1.0, 3.0, 7.0]))
    ['[1, 3)', '[3, 7]']
    >>> bin_labels(np.array([1.0, 2.0, 4.0, 5.0]), "quantile", values=[1, 2, 2, 2, 3, 4, 5, 5])
    ['bottom 12.5% [1, 2)', 'middle 50% [2, 4)', 'top 37.5% [4, 5]']
    """
    last = len(edges) - 2
    labels = [f"[{lo:.3g}, {hi:.3g}{']' if i == last else ')'}"
              for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    if scheme == "quantile" and len(labels) == len(QUANTILE_NAMES):
        names = list(QUANTILE_NAMES)
        if values is not None:
            v = np.asarray(values, dtype=float)
            v = v[~np.isnan(v)]
            counts = np.bincount(assign_bins(v, edges), minlength=len(labels))
            shares = counts / max(v.size, 1)
            names = [f"{name.split()[0]} {_percent(share)}" for name, share in zip(QUANTILE_NAMES, shares)]
        labels = [f"{name} {label}" for name, label in zip(names, labels)]
    return labels


def attribute_bin_labels(merged: pd.DataFrame, attribute: str, bins: np.ndarray, scheme: str = "unit",
                         edges=None) -> list[str]:
    """:func:`bin_labels` of ``attribute``'s bins, quantile bins named by their actual share of
    the files in ``merged`` (each file once)."""
    if edges is None and scheme == "quantile":
        files = merged.drop_duplicates("FileName")
        return bin_labels(bins, "quantile", files[f"{attribute}_true"].to_numpy(dtype=float, na_value=np.nan))
    return bin_labels(bins, "edges")


def assign_bins(values, edges: np.ndarray) -> np.ndarray:
    """Bin index (0 .. len(edges) - 2) of each value; outer bins absorb values beyond the edges.

    >>> assign_bins([0.5, 1.0, 1.99, 2.0, 6.5, 7.0, 7.4], np.arange(1.0, 8.0)).tolist()
    [0, 0, 0, 1, 5, 5, 5]
    """
    return np.searchsorted(np.asarray(edges, dtype=float)[1:-1], np.asarray(values, dtype=float), side="right")


def attributes_of(merged: pd.DataFrame, attribute=None, vocabulary: Vocabulary | None = None) -> list[str]:
    """Attribute codes to analyse: the given one(s), or every attribute of the vocabulary
    (default: the data's, :func:`~ser_diag.evaluation.vocabulary_of`) with predictions."""
    names = (vocabulary if vocabulary is not None else vocabulary_of(merged)).attribute_names
    if attribute is None:
        found = [a for a in names if f"{a}_pred" in merged and merged[f"{a}_pred"].notna().any()]
        if not found:
            raise ValueError("merged holds no attribute predictions (is it the attributes task?)")
        return found
    wanted = [attribute] if isinstance(attribute, str) else list(attribute)
    for a in wanted:
        if a not in names or f"{a}_true" not in merged or f"{a}_pred" not in merged:
            raise ValueError(f"attribute {a!r} not in merged (attributes: {names})")
    return wanted


def out_of_range(merged, vocabulary: Vocabulary | None = None) -> pd.DataFrame:
    """Predictions outside each attribute's scale, per system: ``system, attribute, low, high,
    n, n_below, n_above, share_outside`` (they count in the outer bins of every binned table).

    >>> frame = pd.DataFrame({"system": "s", "FileName": ["a", "b", "c"], "EmoAct_true": [1.0, 4, 7],
    ...                       "EmoAct_pred": [0.5, 4, 7.5], "EmoVal_true": 4.0, "EmoVal_pred": 4.0,
    ...                       "EmoDom_true": 4.0, "EmoDom_pred": 4.0})
    >>> out_of_range(frame).loc[0, ["n_below", "n_above"]].tolist()
    [1, 1]
    """
    data = aligned(merged, vocabulary=vocabulary)
    voc = data.vocabulary
    records = []
    for attr in attributes_of(data, None, voc):
        low, high = voc.attribute_ranges[attr]
        for name, _, _, _, pred in attribute_pairs(data, attr):
            below, above = int((pred < low).sum()), int((pred > high).sum())
            records.append({"system": name, "attribute": attr, "low": low, "high": high, "n": len(pred),
                            "n_below": below, "n_above": above,
                            "share_outside": (below + above) / len(pred) if len(pred) else np.nan})
    return pd.DataFrame(records, columns=["system", "attribute", "low", "high", "n", "n_below", "n_above",
                                          "share_outside"])


def attribute_pairs(merged: pd.DataFrame, attribute=None, system=None
                    ) -> Iterator[tuple[str, str, pd.DataFrame, np.ndarray, np.ndarray]]:
    """Yield ``(system, attribute, rows, y_true, y_pred)`` for every system x attribute.

    Files with a missing true or predicted value are left out; a system that did not submit
    an attribute (all predictions missing) is skipped.
    """
    data = aligned(merged)
    attributes = attributes_of(data, attribute)
    for name in systems_of(data, system):
        rows_all = rows_at(data.frame, data.positions[name])
        for attr in attributes:
            true = rows_all[f"{attr}_true"].to_numpy(dtype=float, na_value=np.nan)
            pred = rows_all[f"{attr}_pred"].to_numpy(dtype=float, na_value=np.nan)
            keep = ~(np.isnan(true) | np.isnan(pred))
            if keep.all():                                  # the usual case: no copy of the rows
                yield name, attr, rows_all, true, pred
            elif keep.any():
                yield name, attr, rows_all.loc[keep], true[keep], pred[keep]


def attribute_edges(merged: pd.DataFrame, attribute: str, scheme: str = "unit", edges=None,
                    vocabulary: Vocabulary | None = None) -> np.ndarray:
    """Edges for ``attribute`` from the true values of the files in ``merged`` (each file once),
    ``"unit"`` bins over its scale in the vocabulary (default: the data's)."""
    if edges is not None or scheme != "quantile":
        voc = vocabulary if vocabulary is not None else vocabulary_of(merged)
        ranges = voc.attribute_ranges
        scale = ranges[attribute] if attribute in ranges else (ATTRIBUTE_MIN, ATTRIBUTE_MAX)
        return bin_edges(None, scheme, edges, scale)
    files = frame_of(merged).drop_duplicates("FileName")
    return bin_edges(files[f"{attribute}_true"].to_numpy(dtype=float, na_value=np.nan), scheme)


def _ordered(labels: list[str], values) -> pd.Categorical:
    return pd.Categorical(values, categories=labels, ordered=True)


def binned_matrix(merged: pd.DataFrame, attribute=None, scheme: str = "unit", edges=None,
                  normalize: str | None = "true") -> pd.DataFrame:
    """True-bin x predicted-bin counts of every system and attribute, tidy.

    One row per (system, attribute, true_bin, pred_bin), every bin pair included (count 0).
    ``share`` = count / n(true_bin) for ``normalize="true"`` (each non-empty true bin sums to 1;
    empty ones are NaN), count / n(pred_bin) for ``"pred"``, count / n for ``"all"`` / None.
    ``true_bin`` / ``pred_bin`` are ordered categoricals from low to high;
    ``true_index`` / ``pred_index`` are their positions.
    """
    frames = []
    data = aligned(merged)
    merged = data.frame
    for attr in attributes_of(data, attribute):
        bins = attribute_edges(merged, attr, scheme, edges, data.vocabulary)
        labels = attribute_bin_labels(merged, attr, bins, scheme, edges)
        k = len(labels)
        for name, _, _, true, pred in attribute_pairs(data, attr):
            cm = metrics.confusion_counts(assign_bins(true, bins), assign_bins(pred, bins), labels=tuple(range(k)))
            frames.append(pd.DataFrame({
                "system": name, "attribute": attr,
                "true_bin": np.repeat(labels, k), "pred_bin": np.tile(labels, k),
                "true_index": np.repeat(np.arange(k), k), "pred_index": np.tile(np.arange(k), k),
                "count": cm.ravel().astype(np.int64), "share": normalize_counts(cm, normalize).ravel(),
            }))
    return _categorise(pd.concat(frames, ignore_index=True), ("true_bin", "pred_bin"))


def _categorise(table: pd.DataFrame, columns) -> pd.DataFrame:
    """Make bin-label columns ordered categoricals in bin order (all attributes together)."""
    order = table.sort_values("true_index" if "true_index" in table else "bin_index")
    labels = list(dict.fromkeys(order[columns[0]].tolist()))
    for col in columns:
        table[col] = _ordered(labels, table[col])
    return table


def per_bin_table(merged: pd.DataFrame, attribute=None, scheme: str = "unit", edges=None,
                  ddof: int = 0) -> pd.DataFrame:
    """Per true bin: n, mean true, mean prediction, bias (mean pred - mean true), MAE and CCC.

    CCC within a bin (:func:`ser_diag.metrics.ccc`) measures agreement inside a narrow true
    range and is NaN for bins with fewer than two files. Columns: system, attribute, true_bin,
    bin_index, bin_low, bin_high, n, share (n / files of the system), mean_true, mean_pred,
    bias, mae, ccc.
    """
    records = []
    data = aligned(merged)
    merged = data.frame
    for attr in attributes_of(data, attribute):
        bins = attribute_edges(merged, attr, scheme, edges, data.vocabulary)
        labels = attribute_bin_labels(merged, attr, bins, scheme, edges)
        for name, _, _, true, pred in attribute_pairs(data, attr):
            idx = assign_bins(true, bins)
            for b, label in enumerate(labels):
                t, p = true[idx == b], pred[idx == b]
                n = len(t)
                records.append({
                    "system": name, "attribute": attr, "true_bin": label, "bin_index": b,
                    "bin_low": bins[b], "bin_high": bins[b + 1], "n": n, "share": n / len(true),
                    "mean_true": t.mean() if n else np.nan, "mean_pred": p.mean() if n else np.nan,
                    "bias": (p - t).mean() if n else np.nan, "mae": np.abs(p - t).mean() if n else np.nan,
                    "ccc": metrics.ccc(t, p, ddof=ddof) if n >= 2 else np.nan,
                })
    return _categorise(pd.DataFrame(records), ("true_bin",))
