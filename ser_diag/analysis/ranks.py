"""Leaderboard with honest ranks: rank intervals, probability of being best, pairwise
win probabilities, Holm-corrected paired tests and significance tiers.

Every number comes from **one** set of paired bootstrap resamples, the same resamples
(same ``seed``, ``n_boot`` and unit) that :func:`ser_diag.resampling.bootstrap_metrics` uses for
the CIs of the metrics table, so a system's CI here equals its CI there. Per resample ``b``
each system gets its headline metric ``m_s^b`` (macro-F1; CCC per attribute and mean CCC):

* ``rank`` = 1 + number of systems with a strictly higher point estimate (competition
  ranking: identical prediction files tie and share the better rank);
  ``rank_ci_low/high``: the ``(1-level)/2`` and ``(1+level)/2`` quantiles (inverted CDF, so
  integers) of the same rank computed within every resample (Hall & Miller 2009, "Using the
  bootstrap to quantify the authority of an empirical ranking").
* ``p_best`` = mean over resamples of ``1[m_s^b = max_t m_t^b] / #{t: m_t^b = max}`` (systems
  tied at the top share the resample).
* ``win_prob(a, b)`` = ``P*(m_a > m_b) + P*(m_a = m_b) / 2``.
* Pairwise paired test of ``H0: metric(a) = metric(b)``: Wald test with the paired bootstrap
  standard error, ``p = 2 Phi(-|d| / sd*(d^b))`` (``d = m_a - m_b``; ``p = 1`` when both are 0).
  The percentile-count p-value ``2 min(P*(d <= 0), P*(d >= 0))`` is reported as ``p_boot``; it
  cannot go below ``2/(B+1)``, too coarse for a Holm correction over ``S(S-1)/2`` pairs.
  ``p_holm``: Holm's step-down adjustment over all pairs of the task and metric.
* **Tiers**, like the significance clusters MT evaluation campaigns (WMT) report, with this
  exact rule: sort systems by estimate; the best opens tier 1 and is its head; going down the
  list, a system joins the current tier unless it is significantly worse than the tier's head
  (``p_holm < 1 - level`` and a lower estimate), in which case it opens the next tier and
  becomes its head. Only comparisons with the head count: two members of one tier can still
  differ significantly from each other.

Memory: the only resample arrays are ``(B, S)`` per metric; the systems' metrics are computed
in blocks of :data:`SYSTEM_BLOCK` systems over the (shared) resamples and pairs are streamed
one row of the matrix at a time, so there is never an ``S x S x B`` array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import ndtr
from scipy.stats import rankdata

import ser_diag.resampling as rs
from ser_diag.resampling import percentile_interval
from ser_diag.evaluation import aligned, column_at, task_of, vocabulary_of
from ser_diag.io import class_index
from ser_diag.schema import ATTRIBUTES, TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = [
    "HEADLINE_METRICS",
    "SYSTEM_BLOCK",
    "headline_distribution",
    "headline_metrics",
    "holm",
    "leaderboard_ranks",
    "rank_tables",
    "unique_systems",
    "resampling_settings",
]

#: Headline metrics ranked per task (MSP-Podcast's; :func:`headline_metrics` for any vocabulary).
HEADLINE_METRICS = {TASK_CATEGORICAL: ["macro_f1"],
                    TASK_ATTRIBUTES: [f"ccc_{a}" for a in ATTRIBUTES] + ["ccc_mean"]}


def headline_metrics(task: str, vocabulary: Vocabulary = MSP_PODCAST) -> list[str]:
    """The headline metrics of ``task`` for a vocabulary: macro-F1; CCC of each of its
    attributes and their mean.

    >>> from ser_diag.vocabulary import IEMOCAP
    >>> headline_metrics("attributes", IEMOCAP)
    ['ccc_activation', 'ccc_valence', 'ccc_dominance', 'ccc_mean']
    """
    if task == TASK_CATEGORICAL:
        return ["macro_f1"]
    return [f"ccc_{a}" for a in vocabulary.attribute_names] + ["ccc_mean"]
#: Systems scored per pass over the resamples (bounds the attribute design to ~100 MB at 32k files).
SYSTEM_BLOCK = 32


# --------------------------------------------------------------------------- settings

def resampling_settings(resampling=None, **legacy) -> rs.Resampling:
    """The :class:`ser_diag.resampling.Resampling` settings (``n_boot, level, unit, seed, ddof``)
    from ``resampling`` and/or the older keyword arguments ``n_boot, level, unit, seed, ddof,
    by_speaker`` (None: not given). Default unit ``"auto"``: speakers when the rows carry a known
    ``SpkrID``, else utterances.

    >>> resampling_settings(n_boot=10, by_speaker=True).unit
    'speaker'
    """
    return rs.Resampling.of(resampling, **legacy)


# --------------------------------------------------------------------------- distributions

def _single_block(data) -> tuple[list, list]:
    blocks = data.blocks()
    if len(blocks) != 1:
        raise ValueError("systems are scored on different files; merge with intersection=True to rank them")
    return blocks[0]


def headline_distribution(merged: pd.DataFrame, metrics: Iterable[str] | None = None, resampling=None,
                          system_block: int | None = None, **legacy) -> dict:
    """Point estimates and paired bootstrap distributions of the headline metrics of every system.

    Returns ``dict(task, systems, metrics, estimate={metric: (S,)}, distribution={metric: (B, S)},
    n, unit, n_boot, level)``. Resamples: those of :func:`ser_diag.resampling.bootstrap_metrics`
    with the same settings (drawn once inside :func:`ser_diag.resampling.shared_weights`).
    """
    s = resampling_settings(resampling, **legacy)
    data = aligned(merged)
    task = data.task
    metrics = list(metrics) if metrics is not None else headline_metrics(task, data.vocabulary)
    names, positions = _single_block(data)
    groups, unit = s.groups(data.frame, positions[0])
    n = len(positions[0])
    system_block = system_block or SYSTEM_BLOCK
    unique, inverse = unique_systems(data, positions)
    estimate = {m: np.empty(len(unique)) for m in metrics}
    dist = {m: np.empty((s.n_boot, len(unique))) for m in metrics}
    with rs.shared_weights():
        for start in range(0, len(unique), system_block):
            scorer = rs._scorer(data, [positions[i] for i in unique[start:start + system_block]], s.ddof)
            stop = start + scorer.s
            point = scorer(np.ones((1, n), dtype=np.float32))
            for m in metrics:
                estimate[m][start:stop] = point[m][0]
            if s.n_boot > 0:
                values = rs.bootstrap_distribution(
                    lambda w: {m: v for m, v in scorer(w).items() if m in metrics}, n, s.n_boot,
                    groups=groups, seed=s.seed, dtype=scorer.weight_dtype)
                for m in metrics:
                    dist[m][:, start:stop] = values[m]
    return dict(task=task, systems=[str(x) for x in names], metrics=metrics,
                estimate={m: v[inverse] for m, v in estimate.items()},
                distribution={m: v[:, inverse] for m, v in dist.items()}, n=n, unit=unit, n_boot=s.n_boot,
                level=s.level)


def unique_systems(merged: pd.DataFrame, positions: list) -> tuple[list[int], np.ndarray]:
    """``(representatives, inverse)``: one system per distinct set of predictions (first seen)
    and, for every system, the position of its representative in that list. Identical
    prediction files are scored once, so they get bit-identical numbers (an exact tie) whatever
    block or column position they would have had. Each system's predictions are read alone
    (class codes, not Python strings) and remembered by a digest, confirmed byte for byte on a
    match: no copy of every system's predictions."""
    seen: dict[bytes, list[int]] = {}                    # digest -> representatives with it
    representatives, inverse = [], np.empty(len(positions), dtype=np.int64)
    for i, rows in enumerate(positions):
        key = _predictions_key(merged, rows)
        candidates = seen.setdefault(hashlib.blake2b(key, digest_size=16).digest(), [])
        j = next((j for j in candidates if _predictions_key(merged, positions[representatives[j]]) == key), None)
        if j is None:
            j = len(representatives)
            candidates.append(j)
            representatives.append(i)
        inverse[i] = j
    return representatives, inverse


def _predictions_key(merged: pd.DataFrame, rows) -> bytes:
    """The predictions of one system's ``rows`` as bytes (equal bytes <=> equal predictions)."""
    voc = vocabulary_of(merged)
    if task_of(merged) == TASK_CATEGORICAL:
        column = column_at(merged, "EmoClass_pred", rows)
        codes = class_index(column, voc.classes)
        odd = codes < 0                                   # missing, or no class code: the values themselves
        return codes.tobytes() + (pd.util.hash_pandas_object(column[odd], index=False).to_numpy().tobytes()
                                  if odd.any() else b"")
    return np.column_stack([merged[f"{a}_pred"].to_numpy()[rows] for a in voc.attribute_names]).tobytes()


# --------------------------------------------------------------------------- statistics

def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values: with ``p_(1) <= ... <= p_(m)``,
    ``p~_(k) = max_{j <= k} min(1, (m - j + 1) p_(j))``; nan stays nan and is not counted.

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _ranks(dist: np.ndarray) -> np.ndarray:
    """Competition ranks (1 = best, ties share the better rank) within each row; nan is last."""
    filled = np.where(np.isfinite(dist), dist, -np.inf)
    return rankdata(-filled, method="min", axis=-1)


def _rank_interval(ranks: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    if ranks.shape[0] == 0:
        nan = np.full(ranks.shape[1], np.nan)
        return nan, nan.copy()
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(ranks, [alpha, 1.0 - alpha], axis=0, method="inverted_cdf")
    return low, high


def _p_best(dist: np.ndarray) -> np.ndarray:
    if dist.shape[0] == 0:
        return np.full(dist.shape[1], np.nan)
    filled = np.where(np.isfinite(dist), dist, -np.inf)
    top = filled == filled.max(axis=1, keepdims=True)
    return (top / top.sum(axis=1, keepdims=True)).mean(axis=0)


def _bootstrap_p(d: np.ndarray) -> np.ndarray:
    """Column-wise :func:`ser_diag.resampling._two_sided_bootstrap_p`:
    ``min(1, 2 min((1 + #{d <= 0}) / (B' + 1), (1 + #{d >= 0}) / (B' + 1)))`` over the ``B'``
    finite resamples; nan without any."""
    finite = np.isfinite(d)
    count = finite.sum(axis=0)
    below = (1 + np.sum((d <= 0) & finite, axis=0)) / (count + 1)
    above = (1 + np.sum((d >= 0) & finite, axis=0)) / (count + 1)
    return np.where(count > 0, np.minimum(1.0, 2.0 * np.minimum(below, above)), np.nan)


def _wald_p(diff: np.ndarray, se: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2.0 * ndtr(-np.abs(diff) / se)
    p = np.where(se > 0, p, np.where(diff == 0, 1.0, 0.0))
    return np.where(np.isfinite(diff) & np.isfinite(se), p, np.nan)


def _pairs(systems: list[str], est: np.ndarray, dist: np.ndarray, level: float) -> pd.DataFrame:
    """All pairs ``a`` before ``b`` in leaderboard order (a's estimate >= b's), streamed by row."""
    order = np.argsort(-np.where(np.isfinite(est), est, -np.inf), kind="stable")
    parts = []
    for k, i in enumerate(order[:-1]):
        js = order[k + 1:]
        d = dist[:, [i]] - dist[:, js]                                    # (B, S - k - 1)
        observed = est[i] - est[js]
        if d.shape[0] > 1:
            se = np.nanstd(d, axis=0, ddof=1) if np.isfinite(d).any() else np.full(len(js), np.nan)
            low, high = percentile_interval(d, level)
            win = (np.mean(d > 0, axis=0) + 0.5 * np.mean(d == 0, axis=0))
            p_boot = _bootstrap_p(d)
        else:
            se = low = high = win = np.full(len(js), np.nan)
            p_boot = [np.nan] * len(js)
        parts.append(pd.DataFrame({
            "system_a": systems[i], "system_b": [systems[j] for j in js], "estimate_a": est[i],
            "estimate_b": est[js], "diff": observed, "ci_low": low, "ci_high": high, "se": se,
            "win_prob": win, "p_value": _wald_p(observed, se), "p_boot": p_boot}))
    if not parts:
        return pd.DataFrame(columns=["system_a", "system_b", "estimate_a", "estimate_b", "diff", "ci_low",
                                     "ci_high", "se", "win_prob", "p_value", "p_boot", "p_holm"])
    out = pd.concat(parts, ignore_index=True)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    return out


def _tiers(systems: list[str], est: np.ndarray, pairs: pd.DataFrame, alpha: float) -> np.ndarray:
    """Tier per system by the rule of the module docstring."""
    order = np.argsort(-np.where(np.isfinite(est), est, -np.inf), kind="stable")
    worse = {(a, b): (p < alpha and ea > eb) for a, b, p, ea, eb in
             zip(pairs["system_a"], pairs["system_b"], pairs["p_holm"], pairs["estimate_a"], pairs["estimate_b"])}
    tier = np.zeros(len(systems), dtype=np.int64)
    current, head = 1, None
    for i in order:
        if head is None:
            head = i
        elif worse[(systems[head], systems[i])]:
            current, head = current + 1, i
        tier[i] = current
    return tier


def _reusable(distributions: dict | None, settings: rs.Resampling, task: str, metrics: list[str]) -> bool:
    return (bool(distributions) and distributions.get("task") == task
            and distributions.get("n_boot") == settings.n_boot and distributions.get("level") == settings.level
            and all(m in distributions["distribution"] for m in metrics))


def leaderboard_ranks(merged: pd.DataFrame, resampling=None, metrics: Iterable[str] | None = None,
                      distributions: dict | None = None, **legacy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(leaderboard, pairs)`` of one task's merged frame (see the module docstring).

    ``leaderboard``: ``system, task, metric, estimate, ci_low, ci_high, rank, rank_ci_low,
    rank_ci_high, p_best, tier, n_systems, level, unit, n_boot, n``, sorted by task, metric and
    rank. ``pairs``: ``task, metric, system_a, system_b, estimate_a, estimate_b, diff, ci_low,
    ci_high, se, win_prob, p_value, p_boot, p_holm, significant, level, unit, n_boot`` with
    ``a`` ahead of ``b`` on the leaderboard (``win_prob``: a beats b).
    ``distributions``: the resamples :func:`ser_diag.resampling.bootstrap_metrics` drew for the
    metrics table with the same settings (its ``distributions`` argument), reused instead of
    scoring the systems on the resamples again (the CIs are then those of the table by construction).
    """
    settings = resampling_settings(resampling, **legacy)
    task = task_of(merged)
    wanted = list(metrics) if metrics is not None else headline_metrics(task, vocabulary_of(merged))
    if _reusable(distributions, settings, task, wanted):
        hd = dict(distributions, metrics=wanted)
    else:
        hd = headline_distribution(merged, metrics=wanted, resampling=settings)
    level, systems = hd["level"], hd["systems"]
    boards, pair_tables = [], []
    for metric in hd["metrics"]:
        est, dist = hd["estimate"][metric], hd["distribution"][metric]
        low, high = percentile_interval(dist, level)
        rank_low, rank_high = _rank_interval(_ranks(dist), level)
        pairs = _pairs(systems, est, dist, level)
        tier = _tiers(systems, est, pairs, 1.0 - level)
        board = pd.DataFrame({
            "system": systems, "task": hd["task"], "metric": metric, "estimate": est, "ci_low": low,
            "ci_high": high, "rank": _ranks(est[None])[0].astype(np.int64), "rank_ci_low": rank_low,
            "rank_ci_high": rank_high, "p_best": _p_best(dist), "tier": tier, "n_systems": len(systems),
            "level": level, "unit": hd["unit"], "n_boot": hd["n_boot"], "n": hd["n"]})
        boards.append(board.sort_values(["rank", "system"], kind="stable"))
        pairs.insert(0, "metric", metric)
        pairs.insert(0, "task", hd["task"])
        pairs["significant"] = pairs["p_holm"] < 1.0 - level
        pairs["level"], pairs["unit"], pairs["n_boot"] = level, hd["unit"], hd["n_boot"]
        pair_tables.append(pairs)
    return pd.concat(boards, ignore_index=True), pd.concat(pair_tables, ignore_index=True)


def rank_tables(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None, resampling=None,
                distributions: dict | None = None, **legacy) -> dict[str, pd.DataFrame]:
    """``{"leaderboard_ranks": ..., "leaderboard_pairs": ...}`` over both tasks (a task with
    no frame, or a single system, is left out of the pairs; its leaderboard rows remain).
    ``distributions``: ``{task: ...}`` resamples to reuse (:func:`leaderboard_ranks`)."""
    boards, pairs = [], []
    for merged in (categorical, attributes):
        if merged is None:
            continue
        board, pair = leaderboard_ranks(merged, resampling=resampling,
                                        distributions=(distributions or {}).get(task_of(merged)), **legacy)
        boards.append(board)
        if len(pair):
            pairs.append(pair)
    out = {}
    if boards:
        out["leaderboard_ranks"] = pd.concat(boards, ignore_index=True)
    if pairs:
        out["leaderboard_pairs"] = pd.concat(pairs, ignore_index=True)
    return out
