"""Percentile bootstrap intervals: of any vectorised statistic (:func:`bootstrap`) and of every
metric of every system of a merged frame (:func:`bootstrap_metrics`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ser_diag.evaluation import TaskData, column_at
from ser_diag.resampling.draws import _weight_chunks, cluster_ids
from ser_diag.resampling.scorers import _scorer, cluster_scorer
from ser_diag.resampling.settings import Resampling, Statistic

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


#: Fewest resampled speakers (clusters) behind a speaker-bootstrap interval shown without a
#: note. Below it percentile intervals covered measurably less than their level on
#: speaker-clustered null worlds with ~26 files a speaker (400 repetitions each, s.e. ~0.013):
#: mean CCC 0.86 / 0.91 / 0.91 / 0.93 at 10 / 20 / 40 / 80 speakers and 0.955 at 160; macro-F1
#: 0.89 / 0.92 / 0.93 / 0.94 and 0.94 at 160; the mean-CCC gender-gap interval excluded a zero
#: gap in 0.09 / 0.06 / 0.08 / 0.09 and 0.055 (``bench/bench_calibration.py --speakers``, README
#: "Resampling unit"). The intervals are still computed; ``.attrs["notes"]`` says so.
FEW_SPEAKERS = 100


def few_speakers_note(n_speakers: int, level: float, what: str, instead: str) -> str | None:
    """The note attached to ``what`` (e.g. "categorical: the intervals") resampled over
    ``n_speakers`` speakers when that is below :data:`FEW_SPEAKERS`, naming what to read
    ``instead``; None otherwise.

    >>> few_speakers_note(200, 0.95, "x", "y") is None
    True
    """
    if n_speakers >= FEW_SPEAKERS:
        return None
    return (f"{what} rest on {n_speakers} speakers: a {level:.0%} speaker interval cannot be trusted below "
            f"{FEW_SPEAKERS} speakers (there such intervals covered 86-94% instead of 95% in simulation, "
            f"bench/bench_calibration.py --speakers); {instead}")


def group_speakers_notes(what: str, clusters, masks: dict, level: float, method: str | None = None,
                         n_arrangements: int = 0) -> list[str]:
    """``[note]`` when the smallest group (``masks``: ``{group: row mask}``) rests on fewer than
    :data:`FEW_SPEAKERS` resampled speakers (``clusters``: the rows' speaker IDs; a row of
    unknown speaker is a cluster of its own), else ``[]``: the group metrics' and the gap's
    speaker intervals are liberal there; the gap's permutation p-value (``method``; exact when
    every one of ``n_arrangements`` arrangements was enumerated) is valid at any number of
    speakers and is named instead (None: no gap, read the estimates only)."""
    ids = cluster_ids(clusters, len(clusters))
    counts = {g: int(np.unique(ids[np.asarray(m, bool)]).size) for g, m in masks.items()}
    if not counts:
        return []
    if method is None:
        instead = "read the group estimates without their intervals"
    elif method.startswith("exact"):
        instead = f"read the gap's {method} p-value instead (all {n_arrangements} arrangements enumerated)"
    else:
        instead = f"read the gap's {method} p-value instead (valid at any number of speakers)"
    shown = " and ".join(f"{c} {g}" for g, c in counts.items())
    note = few_speakers_note(min(counts.values()), level, f"{what} ({shown} speakers): the group intervals"
                             + ("" if method is None else " (the gap interval is widened for so few, see group_gaps)"),
                             instead)
    return [note] if note else []


def no_speakers_note(frame: pd.DataFrame, rows=None, what: str = "the intervals") -> str | None:
    """The note for rows that carry a ``SpkrID`` column whose speakers are all unknown (a corpus
    without speaker metadata): its intervals resample utterances, which is too narrow where one
    speaker's utterances err together; None when some speaker is known or there is no column.

    >>> print(no_speakers_note(pd.DataFrame({"SpkrID": pd.array([None, None], dtype="str")}), what="x"))
    x: no speaker is known, so the intervals resample utterances (too narrow where one speaker's utterances err together)
    """
    if "SpkrID" not in frame.columns:
        return None
    if column_at(frame, "SpkrID", rows).notna().any():
        return None
    return (f"{what}: no speaker is known, so the intervals resample utterances "
            "(too narrow where one speaker's utterances err together)")


def widen_interval(estimate, low, high, n_clusters: int, level: float = 0.95):
    """A percentile interval ``(low, high)`` around ``estimate`` widened for few resampled
    clusters: each side stretched by ``c = t_{G-1, q} / z_q * sqrt(G / (G - 1))`` with ``G =
    n_clusters`` and ``q = (1 + level) / 2``. The bootstrap variance of a mean over G clusters
    is ``(G - 1) / G`` times the usual unbiased estimate, and a mean over G clusters has ``G - 1``
    degrees of freedom; both matter at 10 speakers (``c = 1.22``) and vanish with many
    (``c = 1.05`` at 40, ``1.01`` at 200). Not applied by default: measured
    (``bench/bench_calibration.py --speakers``, 400 repetitions) it brings macro-F1 to
    0.94-0.95 at 10-80 speakers, but mean CCC only to 0.915 / 0.93 / 0.93 / 0.93 at 10 / 20 /
    40 / 80, still short of 0.95, so few-speaker intervals carry a note instead
    (:data:`FEW_SPEAKERS`). nan in, nan out; ``G < 2`` gives nan.

    >>> [round(float(x), 3) for x in widen_interval(0.5, 0.4, 0.6, 10)]
    [0.378, 0.622]
    """
    from scipy import stats

    g = int(n_clusters)
    estimate, low, high = (np.asarray(v, dtype=np.float64) for v in (estimate, low, high))
    if g < 2:                  # one cluster: no interval (nan of the intervals' shape)
        return np.full(np.shape(low), np.nan), np.full(np.shape(high), np.nan)
    q = (1.0 + level) / 2.0
    c = float(stats.t.ppf(q, g - 1) / stats.norm.ppf(q) * np.sqrt(g / (g - 1)))
    return estimate - c * (estimate - low), estimate + c * (high - estimate)


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


def bootstrap_metrics(merged: TaskData | pd.DataFrame, resampling: Resampling | None = None,
                      distributions: dict | None = None, files=None, **legacy) -> pd.DataFrame:
    """Point estimates and percentile bootstrap intervals of every metric of every system.

    ``merged`` is one task's :func:`ser_diag.io.merge` output or its
    :class:`~ser_diag.evaluation.TaskData`; ``resampling`` the settings
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

    ``.attrs["notes"]``: a line per file list resampled over fewer than :data:`FEW_SPEAKERS`
    speakers (:func:`few_speakers_note`): such intervals are liberal (measured), so they are
    shown with that warning and the exact permutation test of :func:`paired_test` is named
    instead. Empty otherwise.
    """
    settings = Resampling.of(resampling, **legacy)
    data = TaskData.of(merged)
    task = data.task
    parts = []
    blocks = data.blocks()
    if files is not None:
        wanted = set(files)
        chosen = [(names, positions, data.column("FileName", positions[0]).isin(wanted).to_numpy())
                  for names, positions in blocks]
        blocks = [(names, [p[keep] for p in positions]) for names, positions, keep in chosen if keep.any()]
    notes = []
    for names, positions in blocks:
        scorer = _scorer(data, positions, settings.ddof)
        groups, unit = settings.groups(data.frame, positions[0])
        if unit == "speaker" and settings.n_boot > 0 and scorer.n:
            g = int(cluster_ids(groups, scorer.n).max()) + 1
            exact = g <= 21 and 2 ** (g - 1) <= settings.n_boot
            note = few_speakers_note(g, settings.level, f"{task}: the intervals of {len(names)} system(s)",
                                     "to compare two systems read resampling.paired_test(method='permutation'), "
                                     + ("exact at this size (all sign patterns of the speakers)" if exact else
                                        "valid at any number of speakers"))
            if note and note not in notes:
                notes.append(note)
        elif unit == "utterance" and settings.unit != "utterance" and settings.n_boot > 0:
            note = no_speakers_note(data.frame, positions[0], task)
            if note and note not in notes:
                notes.append(note)
        keep = {} if distributions is not None and len(blocks) == 1 else None
        parts.append(scorer_metrics(scorer, names, groups, unit, settings, keep))
        if keep is not None:
            distributions.update(keep, task=task, systems=[str(x) for x in names], n=scorer.n, unit=unit,
                                 n_boot=settings.n_boot, level=settings.level)
        del scorer
    columns = ["system", "metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot", "n"]
    out = pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    out.attrs["notes"] = notes
    return out

