"""Class imbalance: class weights and epoch samplers (balanced batches, undersampling).

Every sampler is a pure function of ``(seed, epoch)``: :meth:`indices` returns the row order of
one epoch, so an interrupted run resumes with exactly the order it would have had, and every
process of a distributed run computes the same global order (then takes its shard of each
batch). Integer labels are class indices ``0..K-1``; ``-1`` marks ``O``/``X`` rows, which carry
attribute targets only: they are dropped unless ``include_unlabeled=True``, in which case they
form one more group (the categorical loss masks them, see :mod:`ser_diag.models.losses`).
"""

from __future__ import annotations

import numpy as np

from ser_diag.schema import CLASS_CODES

CLASS_WEIGHTINGS = ("none", "inverse", "sqrt_inverse")


def class_weights(counts, scheme: str = "inverse") -> np.ndarray:
    r"""Per-class loss weights from class counts ``n_c``.

    ``"inverse"`` (challenge baseline): :math:`w_c = N / (K\,n_c)` with :math:`N = \sum_c n_c`;
    ``"sqrt_inverse"`` (NTUA): :math:`\sqrt{N / (K\,n_c)}`; ``"none"``: ones. A class with no
    example gets weight 0.

    >>> class_weights([6, 3, 1]).round(4).tolist()
    [0.5556, 1.1111, 3.3333]
    >>> class_weights([4, 1], "sqrt_inverse").tolist()
    [0.7905694150420949, 1.5811388300841898]
    """
    counts = np.asarray(counts, dtype=float)
    if scheme not in CLASS_WEIGHTINGS:
        raise ValueError(f"class weighting must be one of {CLASS_WEIGHTINGS}, not {scheme!r}")
    if scheme == "none":
        return np.ones_like(counts)
    with np.errstate(divide="ignore"):
        w = np.where(counts > 0, counts.sum() / (len(counts) * counts), 0.0)
    return np.sqrt(w) if scheme == "sqrt_inverse" else w


def class_counts(labels, n_classes: int = len(CLASS_CODES)) -> np.ndarray:
    """Counts of the class indices ``0..n_classes-1`` (``-1`` rows not counted)."""
    labels = np.asarray(labels)
    return np.bincount(labels[labels >= 0], minlength=n_classes).astype(np.int64)


class _EpochSampler:
    """Shared state: labels, seed, which rows take part."""

    def __init__(self, labels, seed: int = 0, include_unlabeled: bool = False):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.seed = int(seed)
        self.include_unlabeled = bool(include_unlabeled)
        keep = self.labels >= 0 if not include_unlabeled else np.ones(len(self.labels), bool)
        self.groups = {int(g): np.flatnonzero(keep & (self.labels == g))
                       for g in np.unique(self.labels[keep])}

    def rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch)])

    def state_dict(self) -> dict:
        return {"type": type(self).__name__, "seed": self.seed,
                "include_unlabeled": self.include_unlabeled, "n": len(self.labels)}


class ShuffleSampler(_EpochSampler):
    """Every kept row once per epoch, in a fresh seeded order (or in file order)."""

    def __init__(self, labels, seed: int = 0, include_unlabeled: bool = False, shuffle: bool = True):
        super().__init__(labels, seed, include_unlabeled)
        self.shuffle = shuffle

    def indices(self, epoch: int) -> np.ndarray:
        rows = np.sort(np.concatenate(list(self.groups.values()))) if self.groups else np.array([], int)
        return self.rng(epoch).permutation(rows) if self.shuffle else rows


class BalancedBatchSampler(_EpochSampler):
    """Batches close to uniform over classes: each batch cycles through the groups in a fresh
    random order (so a batch of ``b`` holds ``floor(b/G)`` or ``ceil(b/G)`` rows of each of the
    ``G`` groups), drawing rows within a group at random without replacement until the group is
    used up, then reshuffling it. ``num_samples`` rows per epoch (default: as many as kept rows).
    """

    def __init__(self, labels, batch_size: int, seed: int = 0, include_unlabeled: bool = False,
                 num_samples: int | None = None):
        super().__init__(labels, seed, include_unlabeled)
        self.batch_size = int(batch_size)
        self.num_samples = int(num_samples) if num_samples else sum(len(g) for g in self.groups.values())

    def indices(self, epoch: int) -> np.ndarray:
        rng = self.rng(epoch)
        keys = sorted(self.groups)
        pools = {k: rng.permutation(self.groups[k]) for k in keys}
        cursor = dict.fromkeys(keys, 0)
        out = []
        while len(out) < self.num_samples:
            order = []
            while len(order) < self.batch_size:
                order.extend(rng.permutation(keys).tolist())
            for k in order[: self.batch_size]:
                if cursor[k] == len(pools[k]):
                    pools[k], cursor[k] = rng.permutation(self.groups[k]), 0
                out.append(pools[k][cursor[k]])
                cursor[k] += 1
        return np.asarray(out[: self.num_samples], dtype=np.int64)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "batch_size": self.batch_size, "num_samples": self.num_samples}


class UndersamplingSampler(_EpochSampler):
    """Per-epoch random undersampling: each epoch keeps ``min_c n_c`` rows of every group (a new
    seeded draw each epoch, so over epochs all majority rows are seen), shuffled together."""

    def indices(self, epoch: int) -> np.ndarray:
        rng = self.rng(epoch)
        keys = sorted(self.groups)
        m = min(len(self.groups[k]) for k in keys)
        rows = np.concatenate([rng.choice(self.groups[k], size=m, replace=False) for k in keys])
        return rng.permutation(rows)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "per_group": min(len(g) for g in self.groups.values())}


SAMPLERS = ("shuffle", "balanced", "undersample")


def make_sampler(kind: str, labels, batch_size: int, seed: int = 0,
                 include_unlabeled: bool = False) -> _EpochSampler:
    """Build a sampler by its config name (:data:`SAMPLERS`)."""
    if kind == "shuffle":
        return ShuffleSampler(labels, seed, include_unlabeled)
    if kind == "balanced":
        return BalancedBatchSampler(labels, batch_size, seed, include_unlabeled)
    if kind == "undersample":
        return UndersamplingSampler(labels, seed, include_unlabeled)
    raise ValueError(f"sampler must be one of {SAMPLERS}, not {kind!r}")


def global_batches(indices: np.ndarray, batch_size: int, drop_last: bool = True) -> list[np.ndarray]:
    """Split one epoch's row order into global batches of ``batch_size`` rows."""
    n = len(indices) // batch_size * batch_size if drop_last else len(indices)
    return [indices[i:i + batch_size] for i in range(0, n, batch_size)]


def shard(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rows of a global batch that process ``rank`` computes: contiguous, in rank order, so
    concatenating the shards of all ranks gives the global batch back (exact DDP equivalence)."""
    return np.array_split(batch, world_size)[rank]


__all__ = [
    "BalancedBatchSampler",
    "CLASS_WEIGHTINGS",
    "SAMPLERS",
    "ShuffleSampler",
    "UndersamplingSampler",
    "class_counts",
    "class_weights",
    "global_batches",
    "make_sampler",
    "shard",
]
