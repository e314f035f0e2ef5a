"""The sums behind the bias audit (:mod:`ser_diag.analysis.bias`): every system's confusion cells
or moment sums over row sets, linear in the row weights, and the task metrics of each group from
them (:class:`GroupedSums`, :class:`GroupStatistic`), over the data's vocabulary (its classes or
attributes; MSP-Podcast's by default)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import scipy.sparse

from ser_diag import metrics, resampling
from ser_diag.schema import TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["GroupStatistic", "GroupedSums", "stack_metrics", "task_metric_names"]


def task_metric_names(task: str, vocabulary: Vocabulary = MSP_PODCAST) -> list[str]:
    """Metric names reported by the bias audit for a task, over a vocabulary's classes or
    attributes (default MSP-Podcast's)."""
    if task == TASK_CATEGORICAL:
        return ["macro_f1", "accuracy", "uar"] + [f"recall_{c}" for c in vocabulary.classes]
    attributes = vocabulary.attribute_names
    return ([f"ccc_{a}" for a in attributes] + ["ccc_mean"]
            + [f"bias_{a}" for a in attributes] + [f"shrinkage_{a}" for a in attributes])


class GroupedSums:
    """Every system's sums over one file list, linear in row weights: ``sums = w @ design``
    (``(n, C)``: sparse one-hot confusion cells for the categorical task, dense moment columns
    for attributes), and :meth:`finish` turning the sums ``(..., G, C)`` of G row sets into
    every task metric ``{metric: (..., S, G)}``.

    Linearity makes the audit cheap: all systems and groups of a bootstrap resample come from
    one product ``W @ [design * mask_g]_g``, and a permuted group split is a sum of precomputed
    per-unit (speaker) sums.
    """

    def __init__(self, frames: list[pd.DataFrame], task: str, ddof: int, vocabulary: Vocabulary = MSP_PODCAST):
        self.task, self.ddof, self.s, self.n = task, ddof, len(frames), len(frames[0])
        self.classes, self.attributes = vocabulary.classes, vocabulary.attribute_names
        self.names = task_metric_names(task, vocabulary)
        if task == TASK_CATEGORICAL:
            k = self.k = len(self.classes)
            t = metrics.label_indices(frames[0]["EmoClass_true"], self.classes)
            p = np.stack([metrics.label_indices(f["EmoClass_pred"], self.classes) for f in frames])
            self.cells = (t[None, :] * k + p + (np.arange(self.s) * k * k)[:, None]).T   # (n, S)
            self.width, self.weight_dtype = self.s * k * k, np.float32  # counts: exact in float32
        else:
            x = frames[0][[f"{a}_true" for a in self.attributes]].to_numpy(np.float64)   # (n, A)
            y = np.empty((self.n, self.s, len(self.attributes)))  # (n, S, A): shifted in place, no copy
            for i, f in enumerate(frames):
                y[:, i] = f[[f"{a}_pred" for a in self.attributes]].to_numpy(np.float64)
            self.moments = metrics.MomentDesign(x, y.transpose(1, 0, 2), consume=True)
            self.width, self.weight_dtype = self.moments.width, np.float64

    def _onehot(self, unit: np.ndarray, n_units: int, block: np.ndarray | None = None,
                n_blocks: int = 1) -> scipy.sparse.csr_matrix:
        """Sparse ``(n_units, n_blocks * C)`` counts of the rows' confusion cells per unit (row ->
        unit, -1: left out), in column block ``block`` of each row (default 0)."""
        keep = unit >= 0
        cols = self.cells[keep] + (0 if block is None else block[keep, None] * self.width)
        rows = np.repeat(unit[keep], self.s)
        return scipy.sparse.csr_matrix((np.ones(rows.size, np.float32), (rows, cols.ravel())),
                                       shape=(n_units, n_blocks * self.width))

    def grouped_design(self, group: np.ndarray, n_groups: int):
        """What :meth:`product` multiplies for the sums of every group: a sparse ``(n, G * C)``
        design whose column block g holds the rows of group g (categorical), or the group
        index itself (attributes: the moment sums of each group are taken on the fly,
        ``MomentDesign.product(W * mask_g)``, without an ``n x G C`` matrix)."""
        if self.task == TASK_CATEGORICAL:
            return self._onehot(np.where(group >= 0, np.arange(self.n), -1), self.n, group, n_groups)
        return (group, n_groups)

    def unit_sums(self, unit: np.ndarray, n_units: int):
        """``(n_units, C)`` sums of each unit's rows (row -> unit, -1: left out)."""
        if self.task == TASK_CATEGORICAL:
            return self._onehot(unit, n_units)
        keep = unit >= 0
        member = scipy.sparse.csr_matrix((np.ones(int(keep.sum())), (unit[keep], np.flatnonzero(keep))),
                                         shape=(n_units, self.n))
        return self.moments.product(member)

    def product(self, weights: np.ndarray, design) -> np.ndarray:
        """``weights @ design`` in float64 for a sparse (float32 counts) or dense design, or the
        grouped moment sums ``(B, G * C)`` for an attribute :meth:`grouped_design`."""
        if scipy.sparse.issparse(design):
            return np.asarray(design.T @ np.asarray(weights, np.float32).T, dtype=np.float64).T
        if isinstance(design, tuple):
            group, n_groups = design
            w = np.atleast_2d(np.asarray(weights, np.float64))
            return np.concatenate([self.moments.product(w * (group == g)) for g in range(n_groups)], axis=1)
        return np.asarray(weights, np.float64) @ design

    def finish(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Sums ``(..., G, C)`` -> ``{metric: (..., S, G)}`` in :func:`task_metric_names` order.

        Categorical: :func:`ser_diag.resampling.confusion_statistics` of each system's weighted
        confusion matrix. Attributes: ``ccc_<attr>``, ``ccc_mean``, ``bias_<attr>`` (mean pred
        - mean true) and ``shrinkage_<attr>`` (sd pred / sd true) from
        :func:`ser_diag.metrics.moments_from_sums`.
        """
        lead = sums.shape[:-1]
        if self.task == TASK_CATEGORICAL:
            values = resampling.confusion_statistics(sums.reshape(lead + (self.s, self.k, self.k)), self.classes)
            return {name: np.moveaxis(values[name], -1, -2) for name in self.names}
        moments = self.moments.moments(sums, self.ddof)                             # (..., G, S, A, 6)
        ccc = metrics.ccc_from_moments(moments)
        with np.errstate(invalid="ignore", divide="ignore"):
            shrinkage = np.where(moments[..., 3] > 0, np.sqrt(moments[..., 4] / moments[..., 3]), np.nan)
        bias = moments[..., 2] - moments[..., 1]
        out = {f"ccc_{attr}": ccc[..., j] for j, attr in enumerate(self.attributes)}
        out["ccc_mean"] = ccc.mean(axis=-1)
        out.update({f"bias_{attr}": bias[..., j] for j, attr in enumerate(self.attributes)})
        out.update({f"shrinkage_{attr}": shrinkage[..., j] for j, attr in enumerate(self.attributes)})
        return {name: np.moveaxis(out[name], -1, -2) for name in self.names}


def stack_metrics(values: dict[str, np.ndarray]) -> np.ndarray:
    """``{metric: (..., S, G)}`` -> ``(..., S, G, M)`` in the dict's order."""
    return np.stack(list(values.values()), axis=-1)


class GroupStatistic:
    """``(B, S, G, M)`` metrics of every system in every group from row weights (one product
    with :meth:`GroupedSums.grouped_design`), or from cluster weights after :meth:`clustered`."""

    def __init__(self, sums: "GroupedSums", group: np.ndarray, n_groups: int):
        self.sums, self.group, self.n_groups = sums, group, n_groups
        self.design = sums.grouped_design(group, n_groups)
        self.pairs = None

    def clustered(self, mapping: np.ndarray, m: int) -> "GroupStatistic":
        """The same sums from the weights of ``m`` clusters (row ``i`` in ``mapping[i]``): the
        rows of each (group, cluster) summed once (classes: the same counts; attributes: the
        same moment sums up to rounding)."""
        out = copy.copy(self)
        if self.sums.task == TASK_CATEGORICAL:
            out.design = (resampling._membership(mapping, m, np.float32) @ self.design).tocsr()
            return out
        rows = np.flatnonzero(self.group >= 0)
        pairs, inverse = np.unique(self.group[rows] * m + mapping[rows], return_inverse=True)
        member = scipy.sparse.csr_matrix((np.ones(rows.size), (inverse, rows)), shape=(len(pairs), self.sums.n))
        out.pairs = (self.sums.moments.product(member), pairs // m, pairs % m)   # (pairs, C), group, cluster
        return out

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        if self.pairs is None:
            raw = self.sums.product(weights, self.design)
        else:
            sums, pair_group, pair_cluster = self.pairs
            w = np.atleast_2d(np.asarray(weights, np.float64))
            raw = np.concatenate([w[:, pair_cluster[pair_group == g]] @ sums[pair_group == g]
                                  for g in range(self.n_groups)], axis=1)
        return stack_metrics(self.sums.finish(raw.reshape(len(raw), self.n_groups, self.sums.width)))
