"""Resample-count weights: cluster ids, chunked draws, and the weight cache shared by the
analyses of one run (:func:`shared_weights`)."""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ser_diag.resampling.settings import _DRAW_BLOCK, CHUNK_ROWS, WEIGHT_CHUNK_BYTES

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


class _WeightCache:
    """Whole ``(n_boot, n)`` weight matrices by request, least recently used dropped first.
    Used only by the thread that opened :func:`shared_weights` (``owner``)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.entries = max_bytes, OrderedDict()
        self.owner = threading.get_ident()

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

