"""Bootstrap confidence intervals and paired tests, vectorised through resample-count weights.

A bootstrap resample of ``n`` items is represented by its count vector ``w`` (how often each
item was drawn), so every metric is a *weighted* metric and B resamples are one ``(B, n)``
weight matrix: confusion matrices are ``W @ onehot`` and CCC moments are
``W @ [x, y, x^2, y^2, xy]`` (:mod:`ser_diag.metrics`). Resampling speakers instead of utterances
(cluster bootstrap) only changes how ``W`` is drawn. Intervals are percentile intervals
(Efron & Tibshirani 1993, ch. 13), named ``ci_low``/``ci_high`` with their ``level`` and ``unit``.

All systems of a merged frame are scored on the same resamples, so their intervals are paired
and :func:`paired_test` can bootstrap the difference between two systems directly. Weights are
drawn and consumed in chunks of rows, so 1,000 resamples x 32k files x 10 systems needs well
under a gigabyte. Statistics that are linear in the weights (the scorers,
:class:`LinearStatistic`) are scored on a speaker bootstrap from the speakers' counts and each
speaker's summed rows (:func:`cluster_scorer`), never expanding a resample to row weights: the
same counts, and moment sums equal up to rounding (added in another order).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import threading
import warnings
import weakref
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import scipy.sparse

from ser_diag.metrics import (
    MomentDesign,
    ccc_from_moments,
    moments_from_sums,
    pearson_from_moments,
    precision_recall_f1_from_confusion,
    unweighted_average_recall_from_confusion,
)
from ser_diag.io import class_index, factorize, task_of
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, TASK_ATTRIBUTES, TASK_CATEGORICAL

__all__ = [
    "LinearStatistic",
    "Resampling",
    "UNITS",
    "attribute_statistics",
    "cluster_ids",
    "permutation_p_value",
    "bootstrap",
    "bootstrap_distribution",
    "bootstrap_metrics",
    "bootstrap_weights",
    "scorer_metrics",
    "categorical_statistics",
    "confusion_statistics",
    "paired_test",
    "percentile_interval",
    "shared_weights",
    "uncached_weights",
]

#: Weight rows processed at a time (200 x 32k float32 = 25 MB).
CHUNK_ROWS = 200
#: Largest weight chunk handed to a statistic (bytes): 200 rows up to n = 40k (float64),
#: fewer beyond, so no ``n x B`` weight matrix is ever held.
WEIGHT_CHUNK_BYTES = 1 << 26
#: Largest block of a wide :class:`LinearStatistic`'s sums computed at a time (bytes): the
#: podcast gender gap at 400k files x 20 systems has 466k sums per resample.
SUMS_BLOCK_BYTES = 1 << 25
#: Rows drawn per call of the generator; chunks are multiples of it, so results do not
#: depend on the chunk size.
_DRAW_BLOCK = 8
#: Resampling units: ``"auto"`` resolves to ``"speaker"`` when the rows carry any known
#: ``SpkrID`` and to ``"utterance"`` otherwise.
UNITS = ("auto", "speaker", "utterance")

Statistic = Callable[[np.ndarray], dict]


# --------------------------------------------------------------------------- settings

@dataclasses.dataclass(frozen=True)
class Resampling:
    """How every interval and test resamples: one frozen settings object passed through
    :mod:`ser_diag.diagnostics`, the analyses, ``figures``, ``report`` and the explorer.

    ``n_boot`` resamples (0: no intervals), percentile intervals at ``level``, resampling
    ``unit``: ``"auto"`` (default) = speakers whenever the rows carry a known ``SpkrID``, else
    utterances; ``"speaker"`` (cluster bootstrap over ``SpkrID``) or ``"utterance"``. Speaker
    is the default because MSP-Podcast speakers contribute many utterances whose errors are
    correlated: resampling utterances then gives intervals that are too narrow (measured in
    ``bench/bench_calibration.py``). Rows whose speaker is unknown are each a cluster of
    their own. ``seed`` seeds the draws; ``ddof`` is the CCC variance denominator ``n - ddof``.
    The resolved unit is named in every output (column ``unit``).

    >>> Resampling(n_boot=200).unit_for(pd.Series([1, 1, None]))
    'speaker'
    >>> Resampling().unit_for(pd.Series([None, None], dtype="Int64"))
    'utterance'
    """

    n_boot: int = 1000
    level: float = 0.95
    unit: str = "auto"
    seed: int = 0
    ddof: int = 0

    def __post_init__(self):
        if isinstance(self.n_boot, bool) or int(self.n_boot) != self.n_boot or self.n_boot < 0:
            raise ValueError(f"n_boot must be a non-negative integer, not {self.n_boot!r}")
        object.__setattr__(self, "n_boot", int(self.n_boot))
        if not 0 < float(self.level) < 1:
            raise ValueError(f"level must be in (0, 1), not {self.level!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, not {self.unit!r}")
        if int(self.ddof) != self.ddof or self.ddof < 0:
            raise ValueError(f"ddof must be a non-negative integer, not {self.ddof!r}")

    def replace(self, **changes) -> "Resampling":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, resampling: "Resampling | None" = None, **legacy) -> "Resampling":
        """``resampling`` (default :class:`Resampling()`) with the older keyword arguments
        ``n_boot, level, seed, ddof, unit`` and ``by_speaker`` (True: "speaker", False:
        "utterance") applied on top when given (not None)."""
        unknown = set(legacy) - {"n_boot", "level", "seed", "ddof", "unit", "by_speaker"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        base = resampling if resampling is not None else cls()
        if not isinstance(base, Resampling):
            raise TypeError(f"resampling must be a Resampling, not {type(base).__name__}")
        changes = {k: v for k, v in legacy.items() if v is not None and k != "by_speaker"}
        if legacy.get("by_speaker") is not None:
            changes["unit"] = "speaker" if legacy["by_speaker"] else "utterance"
        return base.replace(**changes) if changes else base

    def unit_for(self, speakers) -> str:
        """The resolved unit for rows with these speaker IDs (None: no ``SpkrID`` column)."""
        if self.unit == "utterance":
            return "utterance"
        if speakers is None:
            if self.unit == "speaker":
                raise ValueError("unit='speaker' needs a SpkrID column")
            return "utterance"
        if self.unit == "speaker":
            return "speaker"
        return "speaker" if pd.Series(speakers).notna().any() else "utterance"

    def groups(self, frame: pd.DataFrame, rows=None):
        """``(groups, unit)`` for :func:`bootstrap`: the ``SpkrID`` of ``frame`` (rows ``rows``
        by position) when the resolved unit is speaker, else None."""
        speakers = column_at(frame, "SpkrID", rows) if "SpkrID" in frame.columns else None
        unit = self.unit_for(speakers)
        if unit == "utterance":
            return None, unit
        return speakers.reset_index(drop=True), unit

    def describe(self, unit: str | None = None) -> str:
        """One line for people: ``95% percentile bootstrap, 1000 resamples of speakers``."""
        return (f"{self.level:.0%} percentile bootstrap, {self.n_boot} resamples of "
                f"{unit or self.unit}s")


# --------------------------------------------------------------------------- weights

def cluster_ids(speakers, n: int | None = None) -> np.ndarray:
    """Integer cluster id per row: one id per known speaker (order of first appearance), and
    a fresh id for every row whose speaker is unknown (NaN/<NA>), so such utterances are
    resampled on their own.

    >>> cluster_ids(pd.array([7, 7, None, 3, None], dtype="Int64")).tolist()
    [0, 0, 2, 1, 3]
    """
    groups = speakers if isinstance(speakers, pd.Series) else pd.Series(pd.array(speakers))
    if n is not None and len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} items")
    codes, uniques = pd.factorize(groups, use_na_sentinel=True)
    codes = codes.astype(np.int64)
    missing = codes < 0
    codes[missing] = len(uniques) + np.arange(int(missing.sum()))
    return codes


_cluster_codes = lambda groups, n: cluster_ids(groups, n)  # noqa: E731  (older private name)


def permutation_p_value(null, observed: float, exact: bool = False) -> float:
    """Two-sided permutation p-value of ``observed`` against the null draws ``null`` (non-finite
    draws ignored): ``(1 + #{|null| >= |observed|}) / (1 + P)`` for ``P`` random permutations
    (Phipson & Smyth 2010), ``#{...} / P`` when ``null`` enumerates every permutation
    (``exact``). A relative tolerance of 1e-12 counts ties as extreme. nan when undefined.

    >>> permutation_p_value([0.1, -0.3, 0.5, 0.0], 0.3)
    0.6
    """
    d = np.asarray(null, dtype=np.float64).ravel()
    d = np.abs(d[np.isfinite(d)])
    if d.size == 0 or not np.isfinite(observed):
        return float("nan")
    hits = int(np.sum(d >= abs(observed) - 1e-12 * max(1.0, abs(observed))))
    return float(hits / d.size) if exact else float((1 + hits) / (d.size + 1))


class _WeightCache:
    """Whole ``(n_boot, n)`` weight matrices by request, least recently used dropped first.
    Used only by the thread that opened :func:`shared_weights` (``owner``)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.entries = max_bytes, OrderedDict()
        self.owner = threading.get_ident()
        self.frames: dict[int, tuple[weakref.ref, dict]] = {}   # id(frame) -> (frame, {key: value})

    def frame_store(self, frame) -> dict:
        """The values remembered for ``frame`` (dropped when the frame is freed)."""
        entry = self.frames.get(id(frame))
        if entry is None or entry[0]() is not frame:
            key = id(frame)
            ref = weakref.ref(frame, lambda _, key=key, frames=self.frames: frames.pop(key, None))
            entry = self.frames[key] = (ref, {})
        return entry[1]

    def get(self, key):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        return None

    def put(self, key, matrix: np.ndarray) -> None:
        matrix.flags.writeable = False  # shared: a consumer writing into it would corrupt others
        self.entries[key] = matrix
        while sum(m.nbytes for m in self.entries.values()) > self.max_bytes and len(self.entries) > 1:
            self.entries.popitem(last=False)


_cache: _WeightCache | None = None
_cache_lock = threading.Lock()


def _active_cache() -> _WeightCache | None:
    cache = _cache
    return cache if cache is not None and cache.owner == threading.get_ident() else None


@contextlib.contextmanager
def shared_weights(max_bytes: int = 1 << 29):
    """Within the block, every bootstrap that asks for the same resamples (same ``n``,
    ``n_boot``, ``groups``, integer ``seed`` and dtype) gets the same weight matrix, drawn once.

    The results are exactly those without the block (the draws are deterministic in the seed
    and do not depend on chunking); only the repeated drawing is saved, e.g. when
    :mod:`ser_diag.diagnostics` runs a dozen analyses over the same files. At most
    ``max_bytes`` of matrices are kept (least recently used dropped); a matrix larger than
    that is never built (drawn chunk by chunk instead, so memory stays bounded at any
    ``n``). The default (512 MiB) keeps speaker-level counts up to ~130k speakers x 1000
    resamples but not utterance-level ones past ~130k files, whose drawing is cheap next to
    holding them (bench/bench_memory.py). Nested blocks share the outer cache. The cache serves only the thread that opened
    the block: another thread (e.g. the explorer's background worker) draws its own weights,
    so no thread ever sees a half-filled entry.
    """
    global _cache
    with _cache_lock:
        if _cache is not None:
            owned = False
        else:
            _cache, owned = _WeightCache(max_bytes), True
    if not owned:
        yield
        return
    try:
        yield
    finally:
        with _cache_lock:
            _cache = None


_uncached = threading.local()


@contextlib.contextmanager
def uncached_weights():
    """Within the block, resamples are drawn chunk by chunk and not kept by
    :func:`shared_weights` (the same numbers): for a bootstrap whose weights nothing else
    asks for, e.g. the utterance bootstrap beside speaker ones, whose ``n_boot x n`` matrix
    would otherwise stay in memory (128 MB per weight type at 32k files)."""
    depth = getattr(_uncached, "depth", 0)
    _uncached.depth = depth + 1
    try:
        yield
    finally:
        _uncached.depth = depth


def frame_memo(frame: pd.DataFrame, key, compute: Callable):
    """``compute()``, computed once per ``frame`` object and ``key`` inside
    :func:`shared_weights` (the block an analysis run opens) and remembered until the block
    ends or the frame is freed; outside the block (or in another thread) computed every time.
    For values derived from a merged frame that many analyses need (system codes, row
    positions, per-system frames): the frame must not be changed in place inside the block.
    Callers hand out copies of mutable containers."""
    cache = _active_cache()
    if cache is None:
        return compute()
    store = cache.frame_store(frame)
    if key not in store:
        store[key] = compute()
    return store[key]


def _draw_chunks(n: int, n_boot: int, mapping, m: int, seed, chunk: int, dtype,
                 reuse: bool) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    chunk = max(_DRAW_BLOCK, chunk - chunk % _DRAW_BLOCK)
    buffer = np.empty((min(chunk, n_boot), m), dtype=dtype) if reuse else None
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        counts = buffer[:b] if reuse else np.empty((b, m), dtype=dtype)
        for s in range(0, b, _DRAW_BLOCK):  # small blocks keep bincount's output in cache
            bb = min(_DRAW_BLOCK, b - s)
            draws = rng.integers(0, m, size=(bb, m))
            draws += np.arange(bb)[:, None] * m
            counts[s:s + bb] = np.bincount(draws.ravel(), minlength=bb * m).reshape(bb, m)
        yield counts if mapping is None else counts[:, mapping]


def _weight_chunks(n: int, n_boot: int, groups=None, seed=0, chunk: int = CHUNK_ROWS,
                   dtype=np.float32, reuse: bool = False, clusters: bool = False) -> Iterator[np.ndarray]:
    """Yield ``(b, n)`` resample-count matrices of ``dtype``, ``n_boot`` rows in all.
    ``reuse``: fill one buffer again and again (the consumer must not keep a chunk).
    ``clusters`` (with ``groups``): yield the ``(b, clusters)`` counts of the clusters
    (:func:`cluster_ids` order) instead of expanding them to the rows.
    Inside :func:`shared_weights` the cluster-level counts (``n_boot x clusters``) are drawn
    once per request and kept; utterance chunks are read-only views of them, speaker chunks
    are expanded to rows chunk by chunk."""
    # at most WEIGHT_CHUNK_BYTES of weights at a time: fewer rows per chunk for large n
    chunk = min(chunk, max(_DRAW_BLOCK, WEIGHT_CHUNK_BYTES // max(1, n * np.dtype(dtype).itemsize)))
    if groups is None:
        mapping, m = None, n
    else:
        mapping = cluster_ids(groups, n)
        m = int(mapping.max()) + 1 if n else 0
    cache = _active_cache() if not getattr(_uncached, "depth", 0) else None
    cacheable = (cache is not None and isinstance(seed, (int, np.integer)) and n_boot > 0
                 and n_boot * m * np.dtype(np.float32).itemsize <= cache.max_bytes)
    if clusters and mapping is not None:
        mapping = None                                  # the consumer sums rows into clusters itself
    if not cacheable:
        yield from _draw_chunks(n, n_boot, mapping, m, seed, chunk, dtype, reuse)
        return
    # The draws depend only on the number of clusters, the seed and n_boot, so the cache keeps
    # the cluster-level counts (n_boot x m: small for speakers) and maps them to rows per chunk.
    # Counts are small integers: one matrix of the smallest exact type (uint8 while no count
    # passes 255: a quarter of float32's bytes, 120 MB less per 1000 x 40k speakers) serves every
    # dtype, each chunk converted on the way out, so the same draws are never held twice.
    key = (m, n_boot, int(seed))
    matrix = cache.get(key)
    if matrix is None:
        matrix = np.empty((n_boot, m), dtype=np.uint8)  # filled in place: no list of chunks to concatenate
        start = 0
        for counts in _draw_chunks(m, n_boot, None, m, seed, CHUNK_ROWS, np.float32, True):
            if matrix.dtype == np.uint8 and len(counts) and counts.max() > np.iinfo(np.uint8).max:
                matrix = matrix.astype(np.float32)      # a count past 255 (a tiny number of clusters)
            matrix[start:start + len(counts)] = counts
            start += len(counts)
        cache.put(key, matrix)
    step = max(_DRAW_BLOCK, chunk - chunk % _DRAW_BLOCK)
    for start in range(0, n_boot, step):
        block = matrix[start:start + step].astype(dtype, copy=False)
        block = block if mapping is None else np.take(block, mapping, axis=1)
        block.flags.writeable = False           # as the cached draws: no consumer writes into a chunk
        yield block


def bootstrap_weights(n: int, n_boot: int, groups=None, seed=0) -> np.ndarray:
    """Resample counts, shape ``(n_boot, n)`` float32; each row sums to ``n`` for utterances.

    Utterance bootstrap: each row is a Multinomial(n, 1/n) count vector (n draws with
    replacement). Cluster bootstrap (``groups``, e.g. ``SpkrID``): the G clusters are drawn G
    times with replacement and every item gets its cluster's count; a missing id forms its own
    cluster.

    >>> w = bootstrap_weights(5, 3, seed=1)
    >>> w.shape, w.dtype, w.sum(axis=1).tolist()
    ((3, 5), dtype('float32'), [5.0, 5.0, 5.0])
    >>> w = bootstrap_weights(4, 2, groups=["a", "a", "b", "b"], seed=1)
    >>> bool(np.all(w[:, 0] == w[:, 1]) and np.all(w[:, 2] == w[:, 3]))
    True
    """
    chunks = list(_weight_chunks(n, n_boot, groups, seed))
    return np.concatenate(chunks) if chunks else np.zeros((0, n), dtype=np.float32)


def percentile_interval(distribution, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval ``(q_{(1-level)/2}, q_{(1+level)/2})`` over axis 0, ignoring nan
    resamples; all-nan columns give nan.

    The numbers of ``np.nanquantile(d, q, axis=0)`` (linear interpolation over the ``k`` finite
    resamples of each column), computed for all columns at once: one sort along axis 0 (nan
    last), then numpy's interpolation ``x[floor(p)] + (p - floor(p)) (x[floor(p) + 1] -
    x[floor(p)])`` at ``p = q (k - 1)``. (``nanquantile`` along an axis works column by column,
    slow for the thousands of columns of grouped tables; the sort also beats ``np.quantile``.)

    >>> lo, hi = percentile_interval(np.arange(101.0), level=0.9)
    >>> round(float(lo), 9), round(float(hi), 9)
    (5.0, 95.0)
    >>> lo, hi = percentile_interval(np.column_stack([np.arange(101.0), np.r_[np.nan, np.arange(100.0)]]), 0.9)
    >>> lo.round(6).tolist(), hi.round(6).tolist()
    ([5.0, 4.95], [95.0, 94.05])
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    d = np.asarray(distribution, dtype=np.float64)
    if d.shape[0] == 0:
        nan = np.full(d.shape[1:], np.nan)
        return nan, nan.copy()
    ordered = np.sort(d, axis=0)                                           # nan sorts last
    k = np.sum(~np.isnan(ordered), axis=0)
    alpha = (1.0 - level) / 2.0
    out = []
    for q in (alpha, 1.0 - alpha):
        pos = q * np.maximum(k - 1, 0)
        below = np.floor(pos).astype(np.int64)
        above = np.minimum(below + 1, np.maximum(k - 1, 0))
        x0 = np.take_along_axis(ordered, below[None], axis=0)[0]
        x1 = np.take_along_axis(ordered, above[None], axis=0)[0]
        t = pos - below
        with np.errstate(invalid="ignore"):          # numpy's lerp, for bit-identical results
            value = np.where(t >= 0.5, x1 - (x1 - x0) * (1 - t), x0 + (x1 - x0) * t)
            value = np.where(above > below, value, x0)
        out.append(np.where(k > 0, value, np.nan))
    return out[0], out[1]


def bootstrap_distribution(statistic: Statistic, n: int, n_boot: int = 1000, groups=None,
                           seed=0, dtype=np.float32) -> dict:
    """``{name: (n_boot,) array}``: ``statistic`` evaluated on ``n_boot`` resamples, chunk by
    chunk (see :func:`bootstrap_weights` for ``groups``; ``dtype`` of the weight chunks)."""
    parts: dict = defaultdict(list)
    scorer, clusters = cluster_scorer(statistic, groups, n)   # a LinearStatistic: on cluster counts
    for w in _weight_chunks(n, n_boot, groups, seed, dtype=dtype, reuse=True, clusters=clusters):
        for name, values in scorer(w).items():
            parts[name].append(np.asarray(values, dtype=np.float64))
    return {name: np.concatenate(v) for name, v in parts.items()}


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


def _unit(groups, unit: str | None) -> str:
    return unit if unit is not None else ("utterance" if groups is None else "speaker")


def bootstrap(statistic: Statistic, n: int, n_boot: int = 1000, groups=None,
              level: float = 0.95, seed=0, unit: str | None = None, dtype=np.float32) -> pd.DataFrame:
    """Percentile bootstrap intervals for every value a vectorised statistic returns.

    ``statistic(weights)`` maps a ``(B, n)`` weight matrix to ``{name: (B,) array}``; the
    estimate is ``statistic(ones((1, n)))``. Returns one row per name with columns
    ``metric, estimate, ci_low, ci_high, level, unit, n_boot`` (``unit`` is "utterance", or
    "speaker" when ``groups`` is given, unless named). ``n_boot=0`` gives nan intervals.
    ``dtype``: of the weights passed to ``statistic`` (counts are exact in either; float64
    saves a statistic that works in float64 a conversion per call).

    >>> x = np.arange(10.0)
    >>> mean = lambda w: {"mean": (w @ x) / w.sum(axis=1)}
    >>> bootstrap(mean, 10, n_boot=200, seed=0)[["metric", "estimate", "unit", "n_boot"]]
      metric  estimate       unit  n_boot
    0   mean       4.5  utterance     200
    """
    estimate = {k: float(np.asarray(v, dtype=np.float64)[0])
                for k, v in statistic(np.ones((1, n), dtype=np.float32)).items()}
    dist = bootstrap_distribution(statistic, n, n_boot, groups, seed, dtype) if n_boot > 0 else {}
    names = list(estimate)
    matrix = (np.column_stack([dist[k] for k in names]) if n_boot > 0
              else np.empty((0, len(names))))
    lo, hi = percentile_interval(matrix, level)
    return pd.DataFrame({"metric": names, "estimate": [estimate[k] for k in names],
                         "ci_low": lo, "ci_high": hi, "level": level,
                         "unit": _unit(groups, unit), "n_boot": n_boot})


# --------------------------------------------------------------------------- scorers
# A scorer holds S systems' data on the same n items. ``sums(w)`` is linear in the weights
# (so swapped predictions in a permutation test are sums of two weightings) and
# ``finish(sums)`` turns sums into ``{metric: (B, S)}``.

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


def attribute_statistics(y_true, y_pred, ddof: int = 0) -> Statistic:
    """Statistic for :func:`bootstrap`: ``ccc_<attr>``, ``ccc_mean``, ``pearson_<attr>`` of one
    system from ``(n, 3)`` true and predicted EmoAct/EmoVal/EmoDom.

    >>> x = np.array([[1.0, 2, 3], [2, 3, 1], [3, 1, 2], [4, 4, 4]])
    >>> stat = attribute_statistics(x, x)
    >>> [round(float(stat(np.ones((1, 4)))[k][0]), 9) for k in ("ccc_EmoAct", "ccc_mean")]
    [1.0, 1.0]
    """
    return _single(_AttributeScorer(y_true, y_pred, ddof))


# --------------------------------------------------------------------------- merged frames

def system_codes(merged: pd.DataFrame) -> tuple[np.ndarray, list]:
    """``(code per row, system names)`` of ``merged["system"]`` (codes in order of first
    appearance, :func:`pandas.factorize`); remembered per frame (:func:`frame_memo`)."""
    def compute():
        codes, names = factorize(merged["system"])
        return _compact_positions(codes), names
    codes, names = frame_memo(merged, "system_codes", compute)
    return codes, list(names)


def _compact_positions(values: np.ndarray) -> np.ndarray:
    """Row codes or positions as int32 (int64 past 2**31 - 1 rows): the memos of a merged
    frame hold 4 bytes a row, not 8 (120 MB less per frame at 400k files x 20 systems)."""
    return values.astype(np.int32) if len(values) < np.iinfo(np.int32).max else values


def system_positions(merged: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{system: row positions (ascending)}`` of every system of ``merged`` in order of first
    appearance (as ``merged.groupby("system", sort=False).indices``), from one stable sort;
    remembered per frame (:func:`frame_memo`)."""
    def compute():
        codes, names = system_codes(merged)
        by_system = _compact_positions(np.argsort(codes, kind="stable"))
        bounds = np.searchsorted(codes[by_system], np.arange(len(names) + 1))
        by_system.flags.writeable = False      # shared by every caller
        return {str(name): by_system[bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}
    return dict(frame_memo(merged, "system_positions", compute))


def rows_at(frame, positions):
    """``frame.iloc[positions]`` (a frame or a column); a slice (no copy of the rows) when the positions are one
    contiguous run, as they are for every system of a merged frame built system by system. A
    take of other positions copies the rows, and an Arrow string column repeated chunk by chunk
    (:func:`ser_diag.io.load`'s label columns) is first joined into one array: 0.3 GB for the
    file names of 400k files x 20 systems, for the 400k rows wanted."""
    run = _run(positions)
    return frame.iloc[run] if run is not None else frame.iloc[positions]


def column_at(frame: pd.DataFrame, column: str, positions=None) -> pd.Series:
    """``frame[column].iloc[positions]`` (default: the whole column), a slice when the positions
    are one contiguous run (:func:`rows_at`)."""
    return frame[column] if positions is None else rows_at(frame[column], positions)


def _run(positions) -> slice | None:
    """``positions`` as a slice when they are ``a, a+1, ..., b`` (else None)."""
    if isinstance(positions, slice):
        return positions
    positions = np.asarray(positions)
    if positions.ndim != 1 or positions.dtype.kind not in "iu" or not len(positions):
        return None
    first, last = int(positions[0]), int(positions[-1])
    if last - first + 1 == len(positions) and (np.diff(positions) == 1).all():
        return slice(first, last + 1)
    return None


def file_codes(merged: pd.DataFrame) -> np.ndarray:
    """Integer code of every row's ``FileName`` (:func:`pandas.factorize`; once per distinct
    chunk of :func:`ser_diag.io.load`'s repeated label columns, :func:`ser_diag.io.factorize`);
    remembered per frame."""
    return frame_memo(merged, "file_codes", lambda: _compact_positions(factorize(merged["FileName"])[0]))


def first_rows(merged: pd.DataFrame) -> np.ndarray:
    """Position of each file's first row, ascending (the files in order of first appearance):
    one row per file, e.g. its speaker, without the other systems' copies."""
    return np.unique(file_codes(merged), return_index=True)[1]   # codes by first appearance: ascending


def _system_blocks(merged: pd.DataFrame, task: str, systems=None) -> list[tuple[list, list]]:
    """Group systems scored on identical file lists: ``[(systems, row positions)]``, each
    system's rows in the same file order. Systems without predictions for ``task`` are skipped.
    Remembered per frame, task and systems (:func:`frame_memo`)."""
    blocks = frame_memo(merged, ("system_blocks", task, None if systems is None else tuple(systems)),
                        lambda: _compute_system_blocks(merged, task, systems))
    return [(list(names), list(rows)) for names, rows in blocks]


def _compute_system_blocks(merged: pd.DataFrame, task: str, systems=None) -> list[tuple[list, list]]:
    pred_cols = ["EmoClass_pred"] if task == TASK_CATEGORICAL else [f"{a}_pred" for a in ATTRIBUTES]
    pred_cols = [c for c in pred_cols if c in merged.columns]
    submitted = merged[pred_cols].notna().any(axis=1).to_numpy() if pred_cols else \
        np.zeros(len(merged), dtype=bool)
    _, system_names = system_codes(merged)
    files = file_codes(merged)
    names = list(system_names) if systems is None else list(systems)
    # every system's rows (ascending) from one stable sort, not one scan of the frame per system
    by_name = system_positions(merged)
    position = {name: str(name) for name in system_names}
    blocks: list[tuple[list, list]] = []
    for name in names:
        if name not in position:
            raise ValueError(f"system {name!r} is not in the merged frame")
        rows = by_name[position[name]]
        if not submitted[rows].any():
            continue  # the system did not submit this task
        in_rows = files[rows]
        if (np.diff(in_rows) < 0).any():                    # io.load's frames are in file order already
            rows = rows[np.argsort(in_rows, kind="stable")]
        del in_rows
        for block_names, block_rows in blocks:
            if np.array_equal(files[block_rows[0]], files[rows]):
                block_names.append(name)
                block_rows.append(rows)
                break
        else:
            blocks.append(([name], [rows]))
    return blocks


def _class_indices(merged: pd.DataFrame, column: str, rows=None) -> np.ndarray:
    """Class positions (in :data:`CLASS_CODES`) of ``merged[column]``, at row positions ``rows``
    (default all): only that column is taken, not the rows of the whole frame."""
    values = column_at(merged, column, rows)
    codes = class_index(values)
    if (codes < 0).any():
        bad = values.iloc[int(np.flatnonzero(codes < 0)[0])]
        raise ValueError(f"{column} holds {bad!r}, not one of {CLASS_CODES}")
    return codes.astype(np.int64)


def _scorer(merged: pd.DataFrame, rows: list, task: str, ddof: int):
    if task == TASK_CATEGORICAL:
        true = _class_indices(merged, "EmoClass_true", rows[0])
        pred = _class_indices(merged, "EmoClass_pred", np.concatenate(rows)).reshape(len(rows), -1)
        return _CategoricalScorer(true, pred)
    # only these rows, a column at a time; the predictions straight into the (n, S, A) layout the
    # design shifts in place (no copy of the whole columns: 0.5 GB less at 400k files x 20 systems)
    true = np.column_stack([merged[f"{a}_true"].to_numpy(np.float64)[rows[0]] for a in ATTRIBUTES])
    pred = np.empty((len(rows[0]), len(rows), len(ATTRIBUTES)))
    for j, a in enumerate(ATTRIBUTES):
        column = merged[f"{a}_pred"].to_numpy(np.float64)
        for i, r in enumerate(rows):
            pred[:, i, j] = column[r]
    return _AttributeScorer(true, pred.transpose(1, 0, 2), ddof, consume=True)


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


def scorer_metrics(scorer, names: Sequence[str], groups, unit: str, settings: Resampling,
                   keep: dict | None = None) -> pd.DataFrame:
    """:func:`bootstrap_metrics` of the systems ``names`` of one scorer (``_CategoricalScorer``
    or ``_AttributeScorer`` on the same ``n`` files), resampling ``groups`` (None: items).
    ``keep``: a dict filled with ``metrics`` (names), ``estimate`` ``{metric: (S,)}`` and
    ``distribution`` ``{metric: (B, S)}``, the resamples the intervals come from."""
    n, n_boot, level = scorer.n, settings.n_boot, settings.level
    estimate = scorer(np.ones((1, n), dtype=np.float32))
    metrics = list(estimate)
    if n_boot > 0:
        parts = defaultdict(list)
        resampled, clusters = cluster_scorer(scorer, groups, n)
        for w in _weight_chunks(n, n_boot, groups, settings.seed, dtype=scorer.weight_dtype, reuse=True,
                                clusters=clusters):
            for k, v in resampled(w).items():
                parts[k].append(v)
        del resampled
        dist = np.stack([np.concatenate(parts[k]) for k in metrics], axis=1)  # (B, M, S)
        del parts
    else:
        dist = np.empty((0, len(metrics), len(names)))
    lo, hi = percentile_interval(dist, level)
    if keep is not None:
        keep.update(metrics=metrics, estimate={m: estimate[m][0] for m in metrics},
                    distribution={m: dist[:, i] for i, m in enumerate(metrics)})
    s_idx, m_idx = np.meshgrid(np.arange(len(names)), np.arange(len(metrics)), indexing="ij")
    point = np.stack([estimate[m][0] for m in metrics])                        # (M, S)
    out = pd.DataFrame({"system": np.asarray(list(names), dtype=object)[s_idx.ravel()],
                        "metric": np.asarray(metrics, dtype=object)[m_idx.ravel()],
                        "estimate": point.T.ravel().astype(np.float64), "ci_low": lo.T.ravel(),
                        "ci_high": hi.T.ravel()})
    out["level"], out["unit"], out["n_boot"], out["n"] = level, unit, n_boot, n
    return out


def bootstrap_metrics(merged: pd.DataFrame, resampling: Resampling | None = None,
                      distributions: dict | None = None, files=None, **legacy) -> pd.DataFrame:
    """Point estimates and percentile bootstrap intervals of every metric of every system.

    ``merged`` is one task's :func:`ser_diag.io.merge` output; ``resampling`` the settings
    (:class:`Resampling`; default: 1000 resamples of speakers when ``SpkrID`` is known).
    The older keywords ``n_boot, level, by_speaker, seed, ddof`` still override its fields.
    All systems scored on the same files share the same resamples (paired intervals).
    Returns a tidy frame with columns ``system, metric, estimate, ci_low, ci_high, level,
    unit, n_boot, n``; metric names as in :mod:`ser_diag.metrics` (``macro_f1 ...`` for the
    categorical task, ``ccc_<attr>, ccc_mean, pearson_<attr>`` for attributes; CCC with
    denominator ``n - ddof``). ``unit`` is the resolved unit of each system's files.

    ``distributions``: a dict filled, when every system is scored on the same files, with the
    resamples behind the intervals in the layout of
    :func:`ser_diag.analysis.ranks.headline_distribution` (``task, systems, metrics, estimate,
    distribution, n, unit, n_boot, level``), so the leaderboard ranks reuse them.

    ``files``: score only the rows of these FileNames (as ``merged[merged["FileName"].isin(files)]``
    would, without copying the rows).
    """
    settings = Resampling.of(resampling, **legacy)
    task = task_of(merged)
    parts = []
    blocks = _system_blocks(merged, task)
    if files is not None:
        wanted = set(files)
        chosen = [(names, positions, column_at(merged, "FileName", positions[0]).isin(wanted).to_numpy())
                  for names, positions in blocks]
        blocks = [(names, [p[keep] for p in positions]) for names, positions, keep in chosen if keep.any()]
    for names, positions in blocks:
        scorer = _scorer(merged, positions, task, settings.ddof)
        groups, unit = settings.groups(merged, positions[0])
        keep = {} if distributions is not None and len(blocks) == 1 else None
        parts.append(scorer_metrics(scorer, names, groups, unit, settings, keep))
        if keep is not None:
            distributions.update(keep, task=task, systems=[str(x) for x in names], n=scorer.n, unit=unit,
                                 n_boot=settings.n_boot, level=settings.level)
        del scorer
    columns = ["system", "metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot", "n"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def _two_sided_bootstrap_p(diff: np.ndarray) -> float:
    """Two-sided p-value of H0: difference = 0 from its bootstrap distribution:
    ``2 min(P(d <= 0), P(d >= 0))`` with the +1 correction, capped at 1."""
    d = diff[np.isfinite(diff)]
    if d.size == 0:
        return float("nan")
    below = (1 + np.sum(d <= 0)) / (d.size + 1)
    above = (1 + np.sum(d >= 0)) / (d.size + 1)
    return float(min(1.0, 2.0 * min(below, above)))


def _swap_masks(n_units: int, n_perm: int, rng) -> tuple[np.ndarray, bool]:
    """``(P, n_units)`` swap indicators: all 2^m patterns when that is at most ``n_perm``
    (exact test), otherwise ``n_perm`` random fair coin flips."""
    if n_units <= 20 and 2 ** n_units <= n_perm:
        patterns = np.arange(2 ** n_units)[:, None] >> np.arange(n_units)[None, :] & 1
        return patterns.astype(np.float32), True
    return rng.integers(0, 2, size=(n_perm, n_units)).astype(np.float32), False


def paired_test(merged: pd.DataFrame, system_a: str, system_b: str, metric: str,
                resampling: Resampling | None = None, method: str = "bootstrap", **legacy) -> dict:
    """Compare two systems on the same files: ``diff = metric(a) - metric(b)``.

    ``resampling``: :class:`Resampling` (default speakers when known; the older keywords
    ``n_boot, level, by_speaker, seed, ddof`` override its fields).
    ``ci_low/ci_high``: paired percentile bootstrap interval of the difference (both systems
    scored on the same resamples of the resolved unit).
    ``p_value`` (two-sided, H0: no difference):
    ``method="bootstrap"``: ``2 min(P*(d <= 0), P*(d >= 0))`` over the bootstrap distribution;
    ``method="permutation"``: paired permutation (randomisation) test that swaps the two
    systems' predictions per unit (speaker, or utterance) with probability 1/2,
    ``p = (1 + #{|d_perm| >= |d_obs|}) / (n_boot + 1)``; when 2^units <= n_boot all swap
    patterns are enumerated and ``p = #{|d_perm| >= |d_obs|} / 2^units`` (exact); see
    :func:`permutation_p_value`.
    """
    settings = Resampling.of(resampling, **legacy)
    n_boot, level, seed = settings.n_boot, settings.level, settings.seed
    if method not in ("bootstrap", "permutation"):
        raise ValueError(f"method must be 'bootstrap' or 'permutation', not {method!r}")
    if system_a == system_b:
        raise ValueError("system_a and system_b must differ")
    task = TASK_ATTRIBUTES if metric.startswith(("ccc_", "pearson_")) else TASK_CATEGORICAL
    if task_of(merged) != task:
        raise ValueError(f"metric {metric!r} is not computed for the {task_of(merged)} task")
    blocks = _system_blocks(merged, task, systems=[system_a, system_b])
    if len(blocks) != 1 or len(blocks[0][0]) != 2:
        raise ValueError(f"{system_a!r} and {system_b!r} are not scored on the same files")
    rows = blocks[0][1]
    scorer = _scorer(merged, rows, task, settings.ddof)
    n = scorer.n
    estimate = scorer(np.ones((1, n), dtype=np.float32))
    if metric not in estimate:
        raise ValueError(f"unknown metric {metric!r}; choose from {sorted(estimate)}")
    est_a, est_b = float(estimate[metric][0, 0]), float(estimate[metric][0, 1])
    observed = est_a - est_b
    groups, unit = settings.groups(merged, rows[0])
    diffs = []
    for w in _weight_chunks(n, n_boot, groups, seed, dtype=scorer.weight_dtype, reuse=True):
        values = scorer(w)[metric]
        diffs.append(values[:, 0] - values[:, 1])
    diff = np.concatenate(diffs) if diffs else np.empty(0)
    lo, hi = percentile_interval(diff, level)
    if method == "bootstrap":
        p_value = _two_sided_bootstrap_p(diff)
    else:
        units = np.arange(n) if groups is None else cluster_ids(groups, n)
        n_units = int(units.max()) + 1 if n else 0
        masks, exact = _swap_masks(n_units, n_boot, np.random.default_rng(seed))
        perm = []
        for start in range(0, masks.shape[0], CHUNK_ROWS):
            swap = masks[start:start + CHUNK_ROWS][:, units]
            keep_sums, swap_sums = scorer.sums(1.0 - swap), scorer.sums(swap)
            a_sums = keep_sums[:, :1] + swap_sums[:, 1:2]     # a keeps unswapped, takes b's swapped
            b_sums = swap_sums[:, :1] + keep_sums[:, 1:2]
            values = scorer.finish(np.concatenate([a_sums, b_sums], axis=1))[metric]
            perm.append(values[:, 0] - values[:, 1])
        p_value = permutation_p_value(np.concatenate(perm) if perm else np.empty(0), observed, exact)
    return dict(metric=metric, system_a=system_a, system_b=system_b, estimate_a=est_a,
                estimate_b=est_b, diff=observed, ci_low=float(lo), ci_high=float(hi),
                p_value=p_value, method=method, level=level, unit=unit,
                n_boot=n_boot)
