"""Challenge metrics as small pure numpy functions, plus vectorised weighted versions.

Task 1 is scored by macro-F1 over the 8 class codes (scikit-learn ``f1_score(average="macro")``),
Task 2 by Lin's concordance correlation coefficient (CCC) with population variances, averaged
over arousal, valence and dominance. The class functions take the classes as ``labels``
(default MSP-Podcast's :data:`~ser_diag.schema.CLASS_CODES`; the analyses pass the data's
vocabulary's ``classes``), and the weighted confusion its size ``k``. Toolkits disagree on the CCC variance denominator
(audmetric and the challenge baseline divide by ``N``, torchmetrics by ``N - 1``), so every CCC
function takes an explicit ``ddof`` (default 0, the challenge convention).

The ``weighted_*`` functions take a ``(B, n)`` matrix of non-negative weights, typically
bootstrap resample counts, and return one value per row, so B resamples cost a few matrix
products instead of B Python loops.

Degenerate inputs give ``nan`` instead of raising: a CCC whose denominator is zero (both
series constant and equal), a Pearson correlation with a constant series, a variance with
``sum(weights) - ddof <= 0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse

from ser_diag.schema import CLASS_CODES

__all__ = [
    "accuracy",
    "ccc",
    "confusion_counts",
    "label_indices",
    "lin_decomposition",
    "macro_f1",
    "macro_f1_from_confusion",
    "pearson",
    "per_class_scores",
    "precision_recall_f1_from_confusion",
    "unweighted_average_recall",
    "unweighted_average_recall_from_confusion",
    "weighted_ccc",
    "weighted_confusion",
    "weighted_moments",
    "ccc_from_moments",
    "ccc_from_sums",
    "moments_from_sums",
    "pearson_from_moments",
    "MOMENT_NAMES",
    "MomentDesign",
]


# --------------------------------------------------------------------------- categorical

def label_indices(y, labels: Sequence[str] = CLASS_CODES) -> np.ndarray:
    """Positions of the values of ``y`` in ``labels``; a value not in ``labels`` raises ValueError.

    >>> label_indices(["N", "A", "C"]).tolist()
    [7, 0, 6]
    """
    index = pd.Index([str(c) for c in labels])
    if isinstance(y, (pd.Series, pd.Index)) and y.dtype.kind in "OUT":   # pandas strings: no object copy
        found = index.get_indexer(y)
        if not (found < 0).any():
            return found.astype(np.int64)
    values = np.asarray(y).ravel()
    if values.dtype.kind in "iu" and all(isinstance(c, (int, np.integer)) for c in labels):
        found = pd.Index(list(labels)).get_indexer(values)   # integers: equal as numbers <=> as text
    elif values.dtype.kind in "OU":
        found = index.get_indexer(values)
    else:
        found = np.full(values.size, -1)
    if (found < 0).any():                       # e.g. numbers: compared as text, like the labels
        values = values.astype(str)
        found = index.get_indexer(values)
        if (found < 0).any():
            unknown = list(np.unique(values[found < 0]))
            raise ValueError(f"values not in labels {tuple(labels)}: {unknown[:5]}")
    return found.astype(np.int64)


def confusion_counts(y_true, y_pred, labels: Sequence[str] = CLASS_CODES) -> np.ndarray:
    """Confusion matrix ``cm[i, j]`` = number of items of true class ``labels[i]`` predicted as
    ``labels[j]`` (rows = true, as in scikit-learn).

    >>> confusion_counts(["A", "A", "S"], ["A", "S", "S"], labels=("A", "S"))
    array([[1, 1],
           [0, 1]])
    """
    t, p = label_indices(y_true, labels), label_indices(y_pred, labels)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    k = len(labels)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def precision_recall_f1_from_confusion(cm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)`` and
    F1 ``2 tp / (2 tp + fp + fn)`` from confusion matrices of shape ``(..., K, K)``
    (rows = true); 0 where the denominator is 0 (``zero_division=0``).

    >>> p, r, f = precision_recall_f1_from_confusion([[3, 1], [0, 0]])
    >>> p.tolist(), r.tolist(), f.tolist()
    ([1.0, 0.0], [0.75, 0.0], [0.8571428571428571, 0.0])
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    predicted = cm.sum(axis=-2)
    actual = cm.sum(axis=-1)
    return (_safe_divide(tp, predicted), _safe_divide(tp, actual),
            _safe_divide(2.0 * tp, predicted + actual))


def macro_f1_from_confusion(cm) -> np.ndarray:
    """Unweighted mean of the K per-class F1 scores (a class never true nor predicted counts 0);
    ``nan`` for an empty matrix (no items), like accuracy and UAR.

    >>> float(macro_f1_from_confusion([[3, 1], [0, 0]]))
    0.42857142857142855
    >>> float(macro_f1_from_confusion([[0, 0], [0, 0]]))
    nan
    """
    cm = np.asarray(cm, dtype=np.float64)
    f1 = precision_recall_f1_from_confusion(cm)[2].mean(axis=-1)
    return np.where(cm.sum(axis=(-2, -1)) > 0, f1, np.nan)


def macro_f1(y_true, y_pred, labels: Sequence[str] = CLASS_CODES) -> float:
    r"""Macro-F1, the Task-1 score: :math:`\frac1K\sum_k \frac{2 tp_k}{2 tp_k + fp_k + fn_k}` over
    all K ``labels``; equals scikit-learn ``f1_score(average="macro", labels=labels,
    zero_division=0)``.

    >>> macro_f1(["A", "A", "S", "N"], ["A", "S", "S", "N"], labels=("A", "S", "N"))
    0.7777777777777777
    """
    return float(macro_f1_from_confusion(confusion_counts(y_true, y_pred, labels)))


def accuracy(y_true, y_pred) -> float:
    """Fraction of items whose prediction equals the truth: ``mean(y_true == y_pred)``.

    >>> accuracy(["A", "S", "N", "N"], ["A", "N", "N", "N"])
    0.75
    """
    t, p = np.asarray(y_true).astype(str), np.asarray(y_pred).astype(str)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    return float(np.mean(t == p)) if t.size else float("nan")


def unweighted_average_recall_from_confusion(cm, classes: str = "present") -> np.ndarray:
    """Mean recall over the classes that occur in the truth (rows with support > 0;
    ``classes="present"``, the convention here = scikit-learn ``balanced_accuracy_score``) or
    over all K classes (``classes="all"``, a class without support counting 0 = audmetric's
    UAR and ``recall_score(average="macro", labels=all K)``); ``nan`` when no class occurs.

    >>> float(unweighted_average_recall_from_confusion([[3, 1], [0, 0]]))
    0.75
    >>> float(unweighted_average_recall_from_confusion([[3, 1], [0, 0]], classes="all"))
    0.375
    """
    if classes not in ("present", "all"):
        raise ValueError(f"classes must be 'present' or 'all', not {classes!r}")
    cm = np.asarray(cm, dtype=np.float64)
    actual = cm.sum(axis=-1)
    present = actual > 0 if classes == "present" else np.broadcast_to(
        (actual.sum(axis=-1) > 0)[..., None], actual.shape)
    recall = _safe_divide(np.diagonal(cm, axis1=-2, axis2=-1), actual)
    n_present = present.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_present > 0, (recall * present).sum(axis=-1) / n_present, np.nan)


def unweighted_average_recall(y_true, y_pred, labels: Sequence[str] = CLASS_CODES,
                              classes: str = "present") -> float:
    r"""Unweighted average recall (UAR): :math:`\frac{1}{|K_+|}\sum_{k\in K_+} tp_k/(tp_k+fn_k)`
    over the classes present in ``y_true`` (default; equals scikit-learn
    ``balanced_accuracy_score``), or over all ``labels`` with ``classes="all"`` (audmetric's
    convention, equal to ``recall_score(average="macro", labels=labels, zero_division=0)``).

    >>> unweighted_average_recall(["A", "A", "S", "S"], ["A", "S", "S", "S"])
    0.75
    >>> unweighted_average_recall(["A", "A", "S", "S"], ["A", "S", "S", "S"], classes="all")
    0.1875
    """
    return float(unweighted_average_recall_from_confusion(confusion_counts(y_true, y_pred, labels), classes))


def per_class_scores(y_true, y_pred, labels: Sequence[str] = CLASS_CODES) -> pd.DataFrame:
    """Precision, recall, F1 and support (number of true items) per class, indexed by code.

    >>> per_class_scores(["A", "A", "S"], ["A", "S", "S"], labels=("A", "S"))  # doctest: +NORMALIZE_WHITESPACE
          precision  recall        f1  support
    code
    A           1.0     0.5  0.666667        2
    S           0.5     1.0  0.666667        1
    """
    cm = confusion_counts(y_true, y_pred, labels)
    precision, recall, f1 = precision_recall_f1_from_confusion(cm)
    return pd.DataFrame({"precision": precision, "recall": recall, "f1": f1,
                         "support": cm.sum(axis=1)},
                        index=pd.Index(list(labels), name="code"))


# --------------------------------------------------------------------------- continuous

def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(y_true, dtype=np.float64).ravel()
    y = np.asarray(y_pred, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"y_true and y_pred differ in length: {x.size} vs {y.size}")
    return x, y


def lin_decomposition(y_true, y_pred, ddof: int = 0) -> dict[str, float]:
    r"""Lin's CCC and its factorisation :math:`\mathrm{CCC} = \rho\,C_b`, where
    :math:`C_b = 2 / (v + 1/v + u^2)`, scale shift :math:`v = s_{pred}/s_{true}` and location
    shift :math:`u = (\bar y_{pred} - \bar y_{true}) / \sqrt{s_{pred} s_{true}}`; standard
    deviations use denominator ``n - ddof``. ``v < 1`` is the regression-to-the-mean
    signature, ``u`` the location bias. Entries are ``nan`` where undefined (zero variance).

    >>> d = lin_decomposition([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 3.5])
    >>> [round(d[k], 6) for k in ("ccc", "rho", "scale_v", "location_u", "c_b")]
    [0.769231, 1.0, 0.5, 0.316228, 0.769231]
    """
    x, y = _pair(y_true, y_pred)
    n = x.size
    nan = float("nan")
    if n - ddof <= 0 or n < 2:  # one item has no spread: CCC undefined (audmetric: nan)
        return dict(ccc=nan, rho=nan, scale_v=nan, location_u=nan, c_b=nan,
                    mean_true=float(x.mean()) if n else nan,
                    mean_pred=float(y.mean()) if n else nan, sd_true=nan, sd_pred=nan)
    mx, my = x.mean(), y.mean()
    dx, dy = x - mx, y - my
    # elementwise products + pairwise sums, not BLAS dot: as accurate, and a threaded ddot on
    # a busy machine costs milliseconds per call
    vx, vy = (dx * dx).sum() / (n - ddof), (dy * dy).sum() / (n - ddof)
    cov = (dx * dy).sum() / (n - ddof)
    sx, sy = np.sqrt(vx), np.sqrt(vy)
    den = vx + vy + (mx - my) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ccc_value = 2.0 * cov / den if den > 0 else nan
        rho = cov / (sx * sy) if sx > 0 and sy > 0 else nan
        v = sy / sx if sx > 0 and sy > 0 else nan
        u = (my - mx) / np.sqrt(sx * sy) if sx > 0 and sy > 0 else nan
        c_b = 2.0 / (v + 1.0 / v + u * u) if sx > 0 and sy > 0 else nan
    return dict(ccc=float(ccc_value), rho=float(rho), scale_v=float(v), location_u=float(u),
                c_b=float(c_b), mean_true=float(mx), mean_pred=float(my),
                sd_true=float(sx), sd_pred=float(sy))


def ccc(y_true, y_pred, ddof: int = 0) -> float:
    r"""Lin's concordance correlation coefficient
    :math:`\frac{2\,\mathrm{cov}(x, y)}{\sigma_x^2 + \sigma_y^2 + (\mu_x - \mu_y)^2}`, moments
    with denominator ``n - ddof``: ``ddof=0`` population variance (challenge, audmetric),
    ``ddof=1`` sample variance (torchmetrics). ``nan`` if the denominator is 0 or for fewer
    than two items (as audmetric).

    >>> round(ccc([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 3.5]), 6)   # 1.25 / 1.625
    0.769231
    >>> round(ccc([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 3.5], ddof=1), 6)   # 80 / 103
    0.776699
    """
    return lin_decomposition(y_true, y_pred, ddof=ddof)["ccc"]


def pearson(y_true, y_pred) -> float:
    r"""Pearson correlation :math:`\mathrm{cov}(x, y) / (\sigma_x \sigma_y)`; ``nan`` if either
    series is constant.

    >>> round(pearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 6)
    0.993399
    """
    return lin_decomposition(y_true, y_pred)["rho"]


# --------------------------------------------------------------------------- weighted

def weighted_confusion(weights, true_idx, pred_idx, k: int = len(CLASS_CODES)) -> np.ndarray:
    r"""Confusion matrices under item weights: ``out[b, i, j] = sum of weights[b, m]`` over items
    ``m`` with ``true_idx[m] == i`` and ``pred_idx[m] == j``. Computed as
    ``weights @ onehot(true_idx * k + pred_idx)`` with a sparse one-hot, O(B n).

    >>> weighted_confusion([[1, 1, 1], [0, 2, 1]], [0, 0, 1], [0, 1, 1], k=2).tolist()
    [[[1.0, 1.0], [0.0, 1.0]], [[0.0, 2.0], [0.0, 1.0]]]
    """
    w = np.atleast_2d(np.asarray(weights))
    t, p = np.asarray(true_idx, dtype=np.int64), np.asarray(pred_idx, dtype=np.int64)
    n = t.size
    if w.shape[1] != n or p.size != n:
        raise ValueError(f"weights {w.shape}, true_idx ({t.size},) and pred_idx ({p.size},) disagree")
    onehot = scipy.sparse.csr_matrix((np.ones(n, dtype=w.dtype if w.dtype.kind == "f" else np.float64),
                                      (np.arange(n), t * k + p)), shape=(n, k * k))
    return np.asarray((onehot.T @ w.T).T, dtype=np.float64).reshape(w.shape[0], k, k)


#: Largest block of design columns :meth:`MomentDesign.product` builds at a time (bytes).
BLOCK_BYTES = 1 << 26

#: Column order of :func:`weighted_moments`.
MOMENT_NAMES = ("sum_w", "mean_true", "mean_pred", "var_true", "var_pred", "cov")


class MomentDesign:
    r"""The one kernel behind every weighted CCC/moment in ser_diag: the raw weighted sums
    :math:`[\sum w, \sum wx, \sum wy, \sum wx^2, \sum wy^2, \sum wxy]` of S prediction
    series ``y_pred`` ``(S, n, A)`` against one truth ``y_true`` ``(n, A)`` (A columns, e.g.
    the three attributes) are *linear* in the item weights, so for any ``(B, n)`` weight
    matrix they are one product ``W @ columns`` with the compact design

    ``columns = [1, x, x^2, y_1..y_S, y^2_1..y^2_S, (xy)_1..(xy)_S]`` (``n x (1 + 2A + 3SA)``),

    and :meth:`unpack` lays them out as ``(..., S, A, 6)`` for :func:`moments_from_sums`.
    Data are shifted by the truth's mean per column (exact in theory, kinder to rounding;
    :meth:`moments` adds it back). Linearity is what resampling, group masks (``W * mask``),
    per-speaker sums (``membership @ columns``) and permutation swaps rely on.

    >>> d = MomentDesign([[1.0], [2.0], [3.0]], [[[1.0], [1.0], [4.0]]])
    >>> d.moments(d.product([[1.0, 1.0, 2.0]]))[0, 0, 0].round(4).tolist()
    [4.0, 2.25, 2.5, 0.6875, 2.25, 1.125]
    >>> bool(np.allclose(d.product([[1.0, 1.0, 2.0]]), np.array([[1.0, 1.0, 2.0]]) @ d.columns))
    True
    """

    def __init__(self, y_true, y_pred, consume: bool = False):
        x = np.asarray(y_true, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x                       # (n, A)
        y = np.asarray(y_pred, dtype=np.float64)
        y = y[None, :, None] if y.ndim == 1 else y[None] if y.ndim == 2 else y   # (S, n, A)
        if y.shape[1:] != x.shape:
            raise ValueError(f"y_pred {y.shape} does not match y_true {x.shape}")
        self.s, self.n, self.a = y.shape
        # Identical prediction series share their columns, so identical systems get
        # bit-identical sums (exact ties) and the product is smaller.
        first: dict[bytes, int] = {}
        self._system_of = np.array([first.setdefault(y[i].tobytes(), len(first)) for i in range(self.s)])
        unique = [list(self._system_of).index(u) for u in range(len(first))]
        self.shift = x.mean(axis=0) if self.n else np.zeros(self.a)
        self._unique = len(unique)
        # consume: the caller's arrays were built for this design alone and are shifted in place
        # (the same subtractions; no second copy of the data, e.g. 2 x 190 MB for the
        # shrinkage table's 60 pairs at 400k files)
        in_place = consume and x.flags.c_contiguous and x.flags.writeable
        self._x = np.subtract(x, self.shift, out=x if in_place else None)    # (n, A), shifted
        self.width = 1 + 2 * self.a + 3 * self._unique * self.a
        if in_place and self._unique == self.s and y.flags.writeable and _items_major(y):
            # a view of an (n, S, A) array, (1, n, A) included, is laid out as (n, S*A) already
            self._y = np.subtract(y, self.shift, out=y).transpose(1, 0, 2).reshape(self.n, self.s * self.a)
            return
        # (n, U*A), system-major: each unique series shifted straight into its columns (one array)
        shifted = np.empty((self.n, self._unique, self.a))
        for j, i in enumerate(unique):
            np.subtract(y[i], self.shift, out=shifted[:, j, :])
        self._y = shifted.reshape(self.n, self._unique * self.a)

    @property
    def columns(self) -> np.ndarray:
        """The whole ``(n, width)`` design (built on request; :meth:`product` never builds it)."""
        xs = self._x[:, np.arange(self._y.shape[1]) % self.a]
        return np.column_stack([np.ones(self.n), self._x, self._x * self._x, self._y, self._y * self._y,
                                xs * self._y])

    def product(self, weights) -> np.ndarray:
        """``weights @ columns`` (``(B, width)`` float64) for dense or sparse ``(B, n)`` weights,
        computed in column blocks of at most :data:`BLOCK_BYTES` of design, so memory stays
        bounded at any ``n`` and number of systems (no ``n x width`` matrix is ever held)."""
        sparse = scipy.sparse.issparse(weights)
        w = weights if sparse else np.atleast_2d(np.asarray(weights)).astype(np.float64, copy=False)
        out = np.empty((w.shape[0], self.width))
        out[:, 0] = np.asarray(w.sum(axis=1), dtype=np.float64).ravel()
        a, ua = self.a, self._y.shape[1]
        step = max(1, BLOCK_BYTES // (8 * max(self.n, 1)))

        def mult(cols):
            return np.asarray(w @ cols, dtype=np.float64)

        for c0 in range(0, a, step):
            c1 = min(a, c0 + step)
            xb = self._x[:, c0:c1]
            out[:, 1 + c0:1 + c1], out[:, 1 + a + c0:1 + a + c1] = mult(xb), mult(xb * xb)
        base = 1 + 2 * a
        for c0 in range(0, ua, step):
            c1 = min(ua, c0 + step)
            yb = self._y[:, c0:c1]
            xb = self._x[:, np.arange(c0, c1) % a]
            out[:, base + c0:base + c1] = mult(yb)
            out[:, base + ua + c0:base + ua + c1] = mult(yb * yb)
            out[:, base + 2 * ua + c0:base + 2 * ua + c1] = mult(xb * yb)
        return out

    def unpack(self, raw) -> np.ndarray:
        """Raw sums ``(..., width)`` -> ``(..., S, A, 6)`` in the order of
        :func:`moments_from_sums` (shifted data)."""
        raw = np.asarray(raw, dtype=np.float64)
        lead, s, a = raw.shape[:-1], self._unique, self.a
        full = lead + (self.s, a)
        sy, syy, sxy = (raw[..., 1 + (2 + i * s) * a:1 + (2 + (i + 1) * s) * a]
                        .reshape(lead + (s, a))[..., self._system_of, :] for i in range(3))
        return np.stack([np.broadcast_to(raw[..., :1, None], full),
                         np.broadcast_to(raw[..., None, 1:1 + a], full), sy,
                         np.broadcast_to(raw[..., None, 1 + a:1 + 2 * a], full), syy, sxy], axis=-1)

    def moments(self, raw, ddof: int = 0) -> np.ndarray:
        """Raw sums ``(..., width)`` -> moments ``(..., S, A, 6)`` (:data:`MOMENT_NAMES`)."""
        return moments_from_sums(self.unpack(raw), ddof, self.shift)


def _items_major(y: np.ndarray) -> bool:
    """Whether ``y`` ``(S, n, A)`` is the transposed view of a C-ordered ``(n, S, A)`` array."""
    return y.transpose(1, 0, 2).flags.c_contiguous


def weighted_moments(weights, y_true, y_pred, ddof: int = 0) -> np.ndarray:
    r"""Weighted means, variances and covariance of ``(y_true, y_pred)`` per weight row, shape
    ``(B, 6)`` in the order :data:`MOMENT_NAMES`. With frequency weights ``w``:
    :math:`\mu = \sum w x / \sum w`, :math:`\mathrm{var} = \sum w (x-\mu)^2 / (\sum w - \mathrm{ddof})`
    (``ddof=1``: the frequency-weight correction ``sum(w) - 1``). Sums are taken in float64 on
    shifted data through :class:`MomentDesign`.

    >>> weighted_moments([[1, 1, 2]], [1.0, 2.0, 3.0], [1.0, 1.0, 4.0]).round(4).tolist()
    [[4.0, 2.25, 2.5, 0.6875, 2.25, 1.125]]
    """
    w = np.atleast_2d(np.asarray(weights)).astype(np.float64, copy=False)
    x, y = _pair(y_true, y_pred)
    design = MomentDesign(x[:, None], y[None, :, None])
    return design.moments(design.product(w), ddof)[:, 0, 0]


def _moments(sw, sx, sy, sxx, syy, sxy, ddof):
    """``(mean_x, mean_y, var_x, var_y, cov)`` from raw weighted sums (arrays that broadcast)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sx / sw, sy / sw
        dof = np.where(sw - ddof > 0, sw - ddof, np.nan)
        vx = np.maximum(sxx - sw * mx * mx, 0.0) / dof
        vy = np.maximum(syy - sw * my * my, 0.0) / dof
        cov = (sxy - sw * mx * my) / dof
    return mx, my, vx, vy, cov


def _ccc(sw, mx, my, vx, vy, cov):
    den = vx + vy + (mx - my) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((den > 0) & (sw >= 2), 2.0 * cov / den, np.nan)


def moments_from_sums(sums, ddof: int = 0, shift: float = 0.0) -> np.ndarray:
    """Raw weighted sums ``[sum w, sum wx, sum wy, sum wxx, sum wyy, sum wxy]`` (last axis) ->
    moments in the order :data:`MOMENT_NAMES` (means plus ``shift``; see :func:`weighted_moments`).

    >>> moments_from_sums([4.0, 8.0, 4.0, 20.0, 8.0, 10.0]).tolist()
    [4.0, 2.0, 1.0, 1.0, 1.0, 0.5]
    """
    sums = np.asarray(sums, dtype=np.float64)
    sw, sx, sy, sxx, syy, sxy = np.moveaxis(sums, -1, 0)
    mx, my, vx, vy, cov = _moments(sw, sx, sy, sxx, syy, sxy, ddof)
    return np.stack([sw, mx + shift, my + shift, vx, vy, cov], axis=-1)


def ccc_from_moments(moments) -> np.ndarray:
    """CCC from :func:`weighted_moments` output (last axis); ``nan`` where the denominator is 0
    or the total weight is below 2 (one item: undefined, as :func:`ccc`).

    >>> ccc_from_moments([4.0, 2.25, 2.5, 0.6875, 2.25, 1.125]).round(6).tolist()   # 2.25 / 3
    0.75
    """
    m = np.asarray(moments, dtype=np.float64)
    return _ccc(*(m[..., i] for i in range(6)))


def ccc_from_sums(sw, sx, sy, sxx, syy, sxy, ddof: int = 0) -> np.ndarray:
    """``ccc_from_moments(moments_from_sums(stack([sw, sx, sy, sxx, syy, sxy])))`` (the same
    numbers) from the six raw sums given apart, broadcast against each other, so sums shared
    by many series (the truth's, against S systems) are never copied into a stacked array.

    >>> float(ccc_from_sums(4.0, 8.0, 4.0, 20.0, 8.0, 10.0))   # 2 * 0.5 / (1 + 1 + 1)
    0.3333333333333333
    """
    return _ccc(sw, *_moments(sw, sx, sy, sxx, syy, sxy, ddof))


def pearson_from_moments(moments) -> np.ndarray:
    """Pearson correlation from :func:`weighted_moments` output; ``nan`` for a constant series.

    >>> pearson_from_moments([4.0, 2.25, 2.5, 0.6875, 2.25, 1.125]).round(6).tolist()
    0.904534
    """
    m = np.asarray(moments, dtype=np.float64)
    vx, vy, cov = m[..., 3], m[..., 4], m[..., 5]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((vx > 0) & (vy > 0), cov / np.sqrt(vx * vy), np.nan)


def weighted_ccc(weights, y_true, y_pred, ddof: int = 0) -> np.ndarray:
    """CCC per weight row, shape ``(B,)``; integer weights equal :func:`ccc` on the data with
    each item repeated ``weights[b, i]`` times (``ddof=1`` uses ``sum(w) - 1``).

    >>> weighted_ccc([[1, 1, 1, 1], [2, 2, 2, 2]], [1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 3.0, 3.5]).round(6).tolist()
    [0.769231, 0.769231]
    """
    return ccc_from_moments(weighted_moments(weights, y_true, y_pred, ddof=ddof))
