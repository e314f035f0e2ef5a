"""Scorers: statistics linear in the resample weights, scored on utterances or on speakers'
summed rows (:func:`cluster_scorer`).

A scorer holds S systems' data on the same n items. ``sums(w)`` is linear in the weights
(so swapped predictions in a permutation test are sums of two weightings) and
``finish(sums)`` turns sums into ``{metric: (B, S)}``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse

from ser_diag.metrics import (
    MomentDesign,
    ccc_from_moments,
    moments_from_sums,
    pearson_from_moments,
    precision_recall_f1_from_confusion,
    unweighted_average_recall_from_confusion,
)
from ser_diag.resampling.draws import cluster_ids
from ser_diag.resampling.settings import SUMS_BLOCK_BYTES, Statistic
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, TASK_CATEGORICAL

class LinearStatistic:
    """A statistic ``finish(sums(w))`` whose ``sums`` is linear in the row weights ``w``
    (``(B, n)`` -> ``(B, C)``; it must also take a sparse ``(m, n)`` matrix). Linearity lets a
    cluster (speaker) bootstrap add each cluster's rows once, ``sums(membership)`` ``(m, C)``,
    and score a resample from its cluster counts, ``counts @ that``, instead of expanding the
    counts to ``n`` row weights (:meth:`clustered`, used by :func:`bootstrap_distribution`;
    the same numbers up to rounding: the sums are added in another order).

    >>> x = np.arange(4.0)
    >>> mean = LinearStatistic(lambda w: w @ np.column_stack([np.ones(4), x]),
    ...                        lambda s: {"mean": s[:, 1] / s[:, 0]})
    >>> float(mean.clustered(np.array([0, 0, 1, 1]), 2)(np.array([[2.0, 0.0]]))["mean"][0])
    0.5
    """

    def __init__(self, sums: Callable | None, finish: Callable, design=None, width: int = 0):
        self.finish, self.design = finish, design
        self.sums = sums if sums is not None else self._design_sums
        self.width = design.shape[1] if design is not None else width   # sums per resample, when known

    @classmethod
    def of_design(cls, design, finish: Callable) -> "LinearStatistic":
        """``finish(w @ design)`` for a dense or sparse ``(n, C)`` design; per cluster the design
        is ``membership @ design``, so a sparse design stays sparse."""
        return cls(None, finish, design)

    def _design_sums(self, w) -> np.ndarray:
        if scipy.sparse.issparse(self.design):       # (design.T @ w.T).T: the fast sparse product
            dtype = np.float32 if self.design.dtype == np.float32 else np.float64
            out = self.design.T @ np.asarray(w, dtype).T
            return np.asarray(out, dtype=np.float64).T
        return np.asarray(w, np.float64) @ self.design

    def __call__(self, w):
        """``finish(sums(w))``, a block of weight rows at a time when the sums are wide (a design of
        thousands of columns, e.g. podcasts x genders x systems), so no block of sums or of the
        arrays ``finish`` derives from them exceeds :data:`SUMS_BLOCK_BYTES`."""
        rows = max(1, SUMS_BLOCK_BYTES // max(1, 8 * self.width))
        if len(w) <= rows:
            return self.finish(self.sums(w))
        parts = [self.finish(self.sums(w[i:i + rows])) for i in range(0, len(w), rows)]
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def clustered(self, mapping: np.ndarray, m: int) -> "LinearStatistic":
        if self.design is not None:
            member = _membership(mapping, m, self.design.dtype if scipy.sparse.issparse(self.design) else np.float64)
            design = member @ self.design
            return LinearStatistic.of_design(design.tocsr() if scipy.sparse.issparse(design) else design,
                                             self.finish)
        per_cluster = np.asarray(self.sums(_membership(mapping, m, np.float64)), dtype=np.float64)
        return LinearStatistic(lambda counts: np.asarray(counts, np.float64) @ per_cluster, self.finish,
                               width=per_cluster.shape[1])


def confusion_statistics(cm, labels: Sequence[str] = CLASS_CODES) -> dict:
    """``macro_f1, accuracy, uar, f1_/recall_/precision_<code>`` from (weighted) confusion
    matrices ``(..., K, K)`` (rows = true), each of shape ``(...)``; macro-F1 averages all K
    classes (zero_division=0); macro-F1, accuracy and UAR are nan for an empty matrix; UAR
    averages the classes present in the truth (:data:`ser_diag.evaluate.UAR_CONVENTION`).

    >>> out = confusion_statistics(np.array([[2.0, 0.0], [1.0, 1.0]]), labels=("A", "S"))
    >>> [round(float(out[k]), 6) for k in ("accuracy", "uar", "recall_S")]
    [0.75, 0.75, 0.5]
    """
    cm = np.asarray(cm, dtype=np.float64)
    precision, recall, f1 = precision_recall_f1_from_confusion(cm)
    total = cm.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(total > 0, np.trace(cm, axis1=-2, axis2=-1) / total, np.nan)
    out = {"macro_f1": np.where(total > 0, f1.mean(axis=-1), np.nan), "accuracy": acc,
           "uar": unweighted_average_recall_from_confusion(cm)}
    for prefix, values in (("f1", f1), ("recall", recall), ("precision", precision)):
        for i, code in enumerate(labels):
            out[f"{prefix}_{code}"] = values[..., i]
    return out


class _CategoricalScorer:
    weight_dtype = np.float32  # counts are exact in float32; sparse products are faster

    def __init__(self, true_idx, pred_idx, labels: Sequence[str] = CLASS_CODES):
        t = np.asarray(true_idx, dtype=np.int64)
        p = np.atleast_2d(np.asarray(pred_idx, dtype=np.int64))
        self.labels, self.k, (self.s, self.n) = tuple(labels), len(labels), p.shape
        if t.shape != (self.n,):
            raise ValueError(f"true_idx {t.shape} and pred_idx {p.shape} disagree")
        kk = self.k * self.k
        cols = (t[None, :] * self.k + p + (np.arange(self.s) * kk)[:, None]).T.ravel()
        rows = np.repeat(np.arange(self.n), self.s)
        self._onehot = scipy.sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(self.n, self.s * kk))

    def sums(self, w: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(w, dtype=np.float32))
        out = np.asarray(self._onehot.T @ w.T, dtype=np.float64).T
        return out.reshape(w.shape[0], self.s, self.k, self.k)

    def clustered(self, mapping: np.ndarray, m: int) -> "_CategoricalScorer":
        """The same scorer on ``m`` clusters (row ``i`` in cluster ``mapping[i]``): weights per
        cluster instead of per row give the same counts (exact: integers in float32)."""
        out = copy.copy(self)
        out._onehot = (_membership(mapping, m, np.float32) @ self._onehot).tocsr()
        out.n = m
        return out

    def finish(self, cm: np.ndarray) -> dict:
        return confusion_statistics(cm, self.labels)

    def __call__(self, w):
        return self.finish(self.sums(w))


class _AttributeScorer:
    weight_dtype = np.float64  # moments are summed in float64

    def __init__(self, y_true, y_pred, ddof: int = 0, attributes: Sequence[str] = ATTRIBUTES,
                 consume: bool = False):
        self.design = MomentDesign(y_true, y_pred, consume=consume)
        self.s, self.n, self.a = self.design.s, self.design.n, self.design.a
        self.attributes, self.ddof = tuple(attributes)[: self.a], ddof
        self._columns = None                      # (clusters, width) design summed per cluster

    def sums(self, w: np.ndarray) -> np.ndarray:
        """Sums ``(B, S, A, 6)`` of :class:`~ser_diag.metrics.MomentDesign` (linear in ``w``)."""
        w = np.atleast_2d(np.asarray(w)).astype(np.float64, copy=False)
        raw = self.design.product(w) if self._columns is None else w @ self._columns
        return self.design.unpack(raw)

    def clustered(self, mapping: np.ndarray, m: int) -> "_AttributeScorer":
        """The same scorer on ``m`` clusters: the design's columns summed per cluster once
        (``membership @ columns``), so a resample is ``(B, m) @ (m, width)`` instead of
        ``(B, n) @ (n, width)`` (the same sums up to rounding: added in another order)."""
        out = copy.copy(self)
        out._columns = self.design.product(_membership(mapping, m, np.float64))
        out.n = m
        return out

    def finish(self, sums: np.ndarray) -> dict:
        moments = moments_from_sums(sums, self.ddof, self.design.shift)
        ccc, rho = ccc_from_moments(moments), pearson_from_moments(moments)
        out = {f"ccc_{attr}": ccc[..., i] for i, attr in enumerate(self.attributes)}
        out["ccc_mean"] = ccc.mean(axis=-1)
        out.update({f"pearson_{attr}": rho[..., i] for i, attr in enumerate(self.attributes)})
        return out

    def __call__(self, w):
        return self.finish(self.sums(w))


def _membership(mapping: np.ndarray, m: int, dtype) -> scipy.sparse.csr_matrix:
    """``(m, n)`` 0/1 matrix: cluster ``mapping[i]`` holds row ``i``."""
    n = len(mapping)
    return scipy.sparse.csr_matrix((np.ones(n, dtype=dtype), (mapping, np.arange(n))), shape=(m, n))


def _single(scorer) -> Statistic:
    def statistic(w):
        return {k: v[:, 0] for k, v in scorer(w).items()}
    return statistic


def categorical_statistics(true_idx, pred_idx, labels: Sequence[str] = CLASS_CODES) -> Statistic:
    """Statistic for :func:`bootstrap`: ``macro_f1, accuracy, uar, f1_/recall_/precision_<code>``
    of one system from class indices (positions in ``labels``).

    >>> stat = categorical_statistics([0, 0, 1, 7], [0, 1, 1, 7])
    >>> round(float(stat(np.ones((1, 4)))["macro_f1"][0]), 6)   # (2/3 + 2/3 + 1) / 8
    0.291667
    """
    return _single(_CategoricalScorer(true_idx, pred_idx, labels))


def attribute_statistics(y_true, y_pred, ddof: int = 0, attributes: Sequence[str] = ATTRIBUTES) -> Statistic:
    """Statistic for :func:`bootstrap`: ``ccc_<attr>``, ``ccc_mean``, ``pearson_<attr>`` of one
    system from ``(n, A)`` true and predicted values of ``attributes`` (default MSP-Podcast's
    EmoAct/EmoVal/EmoDom; a vocabulary's ``attribute_names``).

    >>> x = np.array([[1.0, 2, 3], [2, 3, 1], [3, 1, 2], [4, 4, 4]])
    >>> stat = attribute_statistics(x, x)
    >>> [round(float(stat(np.ones((1, 4)))[k][0]), 9) for k in ("ccc_EmoAct", "ccc_mean")]
    [1.0, 1.0]
    """
    return _single(_AttributeScorer(y_true, y_pred, ddof, attributes))


def cluster_scorer(scorer, groups, n: int):
    """``(scorer on clusters, True)`` when resampling clusters (``groups``) of fewer than ``n``
    rows and ``scorer`` (linear in the row weights) has ``clustered(mapping, m)``: resamples are
    then scored from cluster counts (``_weight_chunks(..., clusters=True)``), with the rows'
    sums added per cluster once, instead of expanding every resample to ``n`` row weights.
    Otherwise ``(scorer, False)``."""
    if groups is None or not hasattr(scorer, "clustered"):
        return scorer, False
    mapping = cluster_ids(groups, n)
    m = int(mapping.max()) + 1 if n else 0
    return (scorer.clustered(mapping, m), True) if 0 < m < n else (scorer, False)


def _scorer(data, rows: list, ddof: int):
    """The scorer of a block of systems (``rows``: each system's row positions, same file order)
    of a :class:`~ser_diag.evaluation.TaskData`: class codes or attribute values as systems x files
    arrays (only these rows, a column at a time: no copy of whole columns), scored over the data's
    vocabulary (its classes in macro-F1 order; its attributes)."""
    if data.task == TASK_CATEGORICAL:
        return _CategoricalScorer(data.class_codes("EmoClass_true", rows[0]),
                                  data.class_codes("EmoClass_pred", rows), data.classes)
    return _AttributeScorer(data.attribute_values("true", rows[0]), data.attribute_values("pred", rows), ddof,
                            attributes=data.attribute_names, consume=True)
