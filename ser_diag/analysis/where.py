"""Where systems fail: headline metrics per group of files (podcast, duration bin, or any
file-level grouping) with bootstrap CIs, the worst podcasts, and how much of the gender gap
is a podcast effect.

* :func:`grouped_metrics` scores every system on every group from **one** set of resamples of
  all files (speaker clusters by default, as for the metrics table): a group's metric on
  resample ``b`` uses the resample's weights of that group's files, so groups and systems are
  paired. Systems are processed in blocks and each group's sums are one product
  ``W[:, rows_g] @ design[rows_g]`` (attributes) or a sparse confusion product (classes), so
  memory is ``O(B x G x S)`` and time about that of scoring all files once.
* Podcast: MSP-Podcast names are ``MSP-PODCAST_<podcast>_<segment>.wav`` (also
  ``MSP-PODCAST_<podcast>_<segment>_<part>.wav``); :func:`podcast_of` takes ``<podcast>``.
  Names that do not follow the pattern (e.g. ``MSP-PODCAST_test3_0001.wav``) have none.
* :func:`gender_gap_by_podcast`: a gap in a per-file error ``L`` (0/1 error for the classes,
  squared error averaged over the three attributes) between ``Female`` and ``Male`` overall,
  ``D = mean(L | F) - mean(L | M)``, and within podcasts, the fixed-effects (Mantel-Haenszel)
  gap ``D_w = sum_p h_p (L_pF - L_pM) / sum_p h_p`` with ``h_p = n_pF n_pM / (n_pF + n_pM)`` over
  podcasts with files of both genders. ``share_explained = 1 - D_w / D`` is the share of the
  overall gap that comes from which podcasts the women and men are in (unstable when ``D`` is
  near 0: read its CI). The headline metrics (macro-F1, CCC) are not file averages, hence the
  per-file error.
* Duration: read from ``Audios/<FileName>`` headers with :func:`soundfile.info` (frames /
  rate, nothing decoded), binned by :data:`DURATION_EDGES`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse
from threadpoolctl import threadpool_limits

import ser_diag.resampling as rs
from ser_diag.resampling import percentile_interval
from ser_diag.analysis.ranks import SYSTEM_BLOCK, headline_metrics, resampling_settings, unique_systems
from ser_diag.evaluation import aligned, class_codes, rows_at, task_of, vocabulary_of
from ser_diag.memory import release_free_memory
from ser_diag.metrics import ccc_from_sums
from ser_diag.schema import TASK_CATEGORICAL

__all__ = [
    "DURATION_EDGES",
    "duration_bins",
    "duration_metrics",
    "durations",
    "gender_gap_by_podcast",
    "grouped_metrics",
    "podcast_metrics",
    "podcast_of",
    "where_tables",
    "worst_podcasts",
]

#: Budget in bytes of one pass's resample array ``(B, groups, systems, metrics)`` in :func:`grouped_metrics`.
GROUPED_BYTES = 128 * 2 ** 20
#: Budget in bytes of one pass's per-system attribute columns ``(n, 3 x systems x attributes)``
#: (prediction, square, cross product per file) in :func:`grouped_metrics`: fewer systems per
#: pass at large ``n``, so memory does not grow with n x systems.
DESIGN_BYTES = 64 * 2 ** 20
#: Duration bin edges in seconds (MSP-Podcast turns are about 2.75 to 11 s).
DURATION_EDGES = (0.0, 3.0, 4.5, 6.0, 8.0, 11.0, np.inf)
_PODCAST = re.compile(r"^MSP-PODCAST_(\d+)_\d+(?:_\d+)?(?:\.wav)?$", re.IGNORECASE)
_PODCAST_RE2 = r"(?i)^MSP-PODCAST_(?P<podcast>\d+)_\d+(?:_\d+)?(?:\.wav)?$"


# --------------------------------------------------------------------------- grouped kernel

def _block(data):
    blocks = data.blocks()
    if len(blocks) != 1:
        raise ValueError("systems are scored on different files; merge with intersection=True")
    return blocks[0]


class _GroupSums:
    """Headline metrics of a block of systems on each group's rows, from row weights."""

    def __init__(self, merged: pd.DataFrame, positions: list, code: np.ndarray, n_groups: int, ddof: int):
        self.task, self.ddof, self.s, self.g = task_of(merged), ddof, len(positions), n_groups
        self.attributes = merged.attribute_names
        first = rows_at(merged.frame, positions[0])
        if self.task == TASK_CATEGORICAL:
            # macro-F1 needs per class only true, predicted and correct counts: columns
            # [true (G, K)] + [predicted, correct (G, S, 2, K)], a sparse one-hot of the rows
            k = self.k = len(merged.classes)
            t = class_codes(first, "EmoClass_true", classes=merged.classes)
            pred = merged.class_codes("EmoClass_pred", positions)
            keep = np.flatnonzero(code >= 0)
            g, t, pred = code[keep], t[keep], pred[:, keep]
            base = n_groups * k + (g[None] * self.s + np.arange(self.s)[:, None]) * 2 * k      # (S, m)
            correct = pred == t[None]
            cols = np.concatenate([g * k + t, (base + pred).ravel(), (base + k + t[None])[correct]])
            rows = np.concatenate([keep, np.tile(keep, self.s), np.broadcast_to(keep, pred.shape)[correct]])
            self.onehot = scipy.sparse.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)),
                                                  shape=(len(first), n_groups * k * (1 + 2 * self.s)))
            self.weight_dtype = np.float32
        else:
            # rows sorted by group once, so each group's sums are one product of contiguous slices
            key = np.where(code >= 0, code, n_groups)
            self.perm = np.argsort(key, kind="stable")
            self.bounds = np.searchsorted(key[self.perm], np.arange(n_groups + 1))
            x = first[[f"{a}_true" for a in self.attributes]].to_numpy(np.float64)
            values = [merged[f"{a}_pred"].to_numpy(np.float64) for a in self.attributes]  # views, not a copy
            y = np.stack([np.column_stack([v[p] for v in values]) for p in positions])  # (S, n, A)
            shift = x.mean(axis=0)
            x, y = x - shift, y - shift
            per_system = [np.moveaxis(c, 0, 1).reshape(len(x), -1) for c in (y, y * y, x[None] * y)]
            design = np.column_stack([np.ones(len(x)), x, x * x] + per_system)
            self.design = np.ascontiguousarray(design[self.perm[:self.bounds[-1]]])
            self.weight_dtype = np.float64

    def clustered(self, mapping: np.ndarray, m: int) -> "_GroupSums":
        """The same sums from the weights of ``m`` clusters (row ``i`` in cluster ``mapping[i]``):
        each (group, cluster)'s rows summed once, so a resample multiplies those instead of
        ``n`` rows (classes: the same counts; attributes: the same sums up to rounding)."""
        out = copy.copy(self)
        if self.task == TASK_CATEGORICAL:
            out.onehot = (rs._membership(mapping, m, np.float32) @ self.onehot).tocsr()
            return out
        rows = self.perm[:self.bounds[-1]]                       # sorted by group
        group = np.repeat(np.arange(self.g), np.diff(self.bounds))
        pairs, inverse = np.unique(group * m + mapping[rows], return_inverse=True)   # group-major
        out.design = rs._membership(inverse, len(pairs), np.float64) @ self.design      # (pairs, width)
        out.perm = pairs % m                                     # each pair's cluster
        out.bounds = np.searchsorted(pairs // m, np.arange(self.g + 1))
        return out

    def __call__(self, w: np.ndarray) -> np.ndarray:
        """``(B, G, S, M)`` headline metrics for weight rows ``w``."""
        w = np.atleast_2d(w)
        b = w.shape[0]
        if self.task == TASK_CATEGORICAL:
            k, g = self.k, self.g
            counts = (self.onehot.T @ np.asarray(w, np.float32).T).T                       # (B, width) float32
            true = counts[:, :g * k].reshape(b, g, 1, k).astype(np.float64)
            rest = counts[:, g * k:].reshape(b, g, self.s, 2, k).astype(np.float64)
            return _macro_f1_from_counts(true, rest[..., 0, :], rest[..., 1, :])[..., None]
        a, s = len(self.attributes), self.s
        ws = np.asarray(w, np.float64)[:, self.perm[:self.bounds[-1]]]
        sums = np.empty((b, self.g, self.design.shape[1]))
        with threadpool_limits(1, user_api="blas"):  # many small products: threads only cost (20x when loaded)
            for g in range(self.g):
                lo, hi = self.bounds[g], self.bounds[g + 1]
                sums[:, g] = ws[:, lo:hi] @ self.design[lo:hi]
        shared = sums[..., None, :1], sums[..., None, 1:1 + a], sums[..., None, 1 + a:1 + 2 * a]   # (B, G, 1, .)
        per_system = (sums[..., 1 + (2 + i * s) * a:1 + (2 + (i + 1) * s) * a].reshape(b, self.g, s, a)
                      for i in range(3))
        (sw, sx, sxx), (sy, syy, sxy) = shared, per_system
        ccc = ccc_from_sums(sw, sx, sy, sxx, syy, sxy, self.ddof)                          # (B, G, S, A)
        return np.concatenate([ccc, ccc.mean(axis=-1, keepdims=True)], axis=-1)


def _macro_f1_from_counts(true: np.ndarray, predicted: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """:func:`ser_diag.metrics.macro_f1_from_confusion` from per-class counts (last axis):
    mean over classes of ``2 tp / (n_true + n_pred)`` (0 when both are 0), nan when nothing was
    counted."""
    den = true + predicted
    f1 = np.divide(2.0 * correct, den, out=np.zeros(den.shape), where=den > 0)
    return np.where(den.sum(axis=-1) > 0, f1.mean(axis=-1), np.nan)


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    """:func:`_macro_f1_from_counts` of confusion matrices ``(..., K, K)`` (rows = true)."""
    return _macro_f1_from_counts(cm.sum(axis=-1), cm.sum(axis=-2), np.einsum("...kk->...k", cm))


def grouped_metrics(merged: pd.DataFrame, group, by: str = "group", resampling=None,
                    min_files: int = 1, **legacy) -> pd.DataFrame:
    """Headline metrics (macro-F1; CCC per attribute and mean) of every system per group of files.

    ``group``: a mapping ``FileName -> group`` (Series or dict) or the name of a column of
    ``merged``; files without a group (missing, or in a group with fewer than ``min_files``
    files) are in no group but stay in every resample. Returns a tidy frame ``system, task, by,
    group, metric, estimate, ci_low, ci_high, level, unit, n_boot, n, n_speakers`` (``n``: files
    in the group). ``.attrs["excluded_groups"]``: groups dropped for ``min_files``. With the speaker
    unit a group whose files come from one speaker gets no interval (nan): resampling speakers
    cannot vary its metric.
    """
    s = resampling_settings(resampling, **legacy)
    merged = aligned(merged)
    task = merged.task
    names, positions = _block(merged)
    first = rows_at(merged.frame, positions[0]).reset_index(drop=True)
    if isinstance(group, str):
        labels = first[group]
    else:
        labels = first["FileName"].map(pd.Series(group) if isinstance(group, dict) else group)
    counts = labels.value_counts(dropna=True)
    kept = counts[counts >= min_files]
    order = sorted(kept.index.tolist(), key=lambda v: (str(type(v)), v))
    code = pd.Index(order).get_indexer(labels.where(labels.isin(order))) if order else np.full(len(first), -1)
    code = np.asarray(code, dtype=np.int64)
    metrics = headline_metrics(task, merged.vocabulary)
    clusters, unit = s.groups(first)
    n = len(first)
    unique, inverse = unique_systems(merged, positions)
    shape = (len(order), len(unique), len(metrics))
    estimate, low, high = np.empty(shape), np.full(shape, np.nan), np.full(shape, np.nan)
    with rs.shared_weights():
        # systems per pass: at most SYSTEM_BLOCK, and the (B, G, block, M) resample array under ~128 MB
        block = int(max(1, min(SYSTEM_BLOCK, GROUPED_BYTES // max(1, 8 * s.n_boot * len(order) * len(metrics)))))
        if task != TASK_CATEGORICAL:   # and the (n, 3 S A) design of the attribute sums under DESIGN_BYTES
            block = int(max(1, min(block, DESIGN_BYTES // max(1, 8 * n * 3 * len(merged.attribute_names)))))
        else:   # and the one-hot counts (about 2 S + 1 entries a row, ~32 bytes each while built) too
            block = int(max(1, min(block, (DESIGN_BYTES // max(1, 32 * n) - 1) // 2)))
        for start in range(0, len(unique), block):
            stop = min(start + block, len(unique))
            sums = _GroupSums(merged, [positions[i] for i in unique[start:stop]], code, len(order), s.ddof)
            estimate[:, start:stop] = sums(np.ones((1, n), dtype=sums.weight_dtype))[0]       # (G, S, M)
            if s.n_boot > 0 and order:
                scorer, per_cluster = rs.cluster_scorer(sums, clusters, n)
                dist, filled = np.empty((s.n_boot, len(order) * (stop - start) * len(metrics))), 0
                for w in rs._weight_chunks(n, s.n_boot, clusters, s.seed, dtype=sums.weight_dtype, reuse=True,
                                           clusters=per_cluster):   # filled in place: no list of parts
                    dist[filled:filled + len(w)] = scorer(w).reshape(len(w), -1)
                    filled += len(w)
                low[:, start:stop], high[:, start:stop] = percentile_interval(
                    dist.reshape((s.n_boot, len(order), stop - start, len(metrics))), s.level)
    g_idx, s_idx, m_idx = np.meshgrid(np.arange(len(order)), inverse, np.arange(len(metrics)), indexing="ij")
    system_idx = np.broadcast_to(np.arange(len(names))[None, :, None], g_idx.shape)
    rows = pd.DataFrame({"system": np.asarray(names, dtype=object)[system_idx.ravel()],
                         "group": np.asarray(order, dtype=object)[g_idx.ravel()] if order else [],
                         "metric": np.asarray(metrics, dtype=object)[m_idx.ravel()],
                         "estimate": estimate[g_idx, s_idx, m_idx].ravel(), "ci_low": low[g_idx, s_idx, m_idx].ravel(),
                         "ci_high": high[g_idx, s_idx, m_idx].ravel(),
                         "_order": (system_idx * len(order) * len(metrics) + g_idx * len(metrics) + m_idx).ravel()})
    rows = rows.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out = rows
    sizes = pd.Series(code).value_counts()
    speakers = first.assign(_g=code).groupby("_g")["SpkrID"].nunique() if "SpkrID" in first else pd.Series(dtype=int)
    index = {v: g for g, v in enumerate(order)}
    if unit == "speaker":  # a group of one speaker cluster has no resampling variation: no interval
        unknown = first["SpkrID"].isna().groupby(code).sum()
        single = {v for v, g in index.items() if speakers.get(g, 0) + unknown.get(g, 0) < 2}
        out.loc[out["group"].isin(single), ["ci_low", "ci_high"]] = np.nan
    out.insert(1, "task", task)
    out.insert(2, "by", by)
    out["level"], out["unit"], out["n_boot"] = s.level, unit, s.n_boot
    position = out["group"].map(index)
    out["n"] = position.map(sizes).fillna(0).astype("int64")
    out["n_speakers"] = position.map(speakers).fillna(0).astype("int64")
    out.attrs["excluded_groups"] = int((counts < min_files).sum())
    return out


# --------------------------------------------------------------------------- podcast

def podcast_of(file_names) -> pd.Series:
    """Podcast id of each MSP-Podcast file name (``<NA>`` when the name has none).

    >>> podcast_of(["MSP-PODCAST_0002_0033.wav", "MSP-PODCAST_3406_0004_0003.wav",
    ...             "MSP-PODCAST_test3_0001.wav"]).tolist()
    ['0002', '3406', <NA>]
    """
    names = pd.Series(file_names, dtype=object).astype(str)
    try:  # pyarrow's vectorised RE2, 80x faster than a Python regex per name
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pandas without pyarrow
        return names.str.extract(_PODCAST, expand=False).astype("string").reset_index(drop=True)
    array = pa.array(names.to_numpy(dtype=object), type=pa.string())
    found = pd.Series(pc.extract_regex(array, _PODCAST_RE2).field("podcast").to_numpy(zero_copy_only=False),
                      dtype="string")
    matched = pc.match_substring_regex(array, _PODCAST_RE2).to_numpy(zero_copy_only=False)
    return found.where(matched.astype(bool))


def _podcast_map(merged: pd.DataFrame) -> pd.Series:
    files = pd.unique(merged["FileName"])
    return pd.Series(podcast_of(files).to_numpy(), index=files)


def podcast_metrics(merged: pd.DataFrame, min_files: int = 50, resampling=None, **legacy) -> pd.DataFrame:
    """:func:`grouped_metrics` by podcast (podcasts with at least ``min_files`` files), plus
    ``overall`` (the system's estimate on all files) and ``below_overall`` (the podcast's CI lies
    entirely below it)."""
    merged = aligned(merged)
    table = grouped_metrics(merged, _podcast_map(merged), by="podcast", resampling=resampling,
                            min_files=min_files, **legacy)
    overall = grouped_metrics(merged, {f: "all" for f in pd.unique(merged["FileName"])}, by="all",
                              n_boot=0, ddof=resampling_settings(resampling, **legacy).ddof)
    point = overall[["system", "metric", "estimate"]].rename(columns={"estimate": "overall"})
    attrs = dict(table.attrs)
    table = table.merge(point, on=["system", "metric"], how="left", sort=False)
    table.attrs = attrs
    table["below_overall"] = table["ci_high"] < table["overall"]
    table.attrs["min_files"] = min_files
    return table


def worst_podcasts(podcasts: pd.DataFrame, n: int = 10, metric: str | None = None) -> pd.DataFrame:
    """The ``n`` podcasts with the lowest ``metric`` (default: the task's headline: macro-F1,
    mean CCC) per system, ``rank`` 1 = worst, from a :func:`podcast_metrics` table."""
    if podcasts.empty:
        return podcasts.assign(rank=pd.Series(dtype="int64"))
    metric = metric or ("macro_f1" if podcasts["task"].iloc[0] == TASK_CATEGORICAL else "ccc_mean")
    chosen = podcasts[(podcasts["metric"] == metric) & podcasts["estimate"].notna()]
    chosen = chosen.sort_values(["estimate", "group"], kind="stable")
    worst = chosen.groupby("system", sort=False).head(n).copy()
    worst["rank"] = worst.groupby("system").cumcount() + 1
    return worst.sort_values(["system", "rank"], kind="stable").reset_index(drop=True)


def _file_error(merged: pd.DataFrame, positions: list) -> tuple[np.ndarray, str]:
    """Per-file error ``(n, S)`` and its name."""
    if task_of(merged) == TASK_CATEGORICAL:
        t = merged["EmoClass_true"].to_numpy()
        p = merged["EmoClass_pred"].to_numpy()
        return np.stack([(t[r] != p[r]).astype(np.float64) for r in positions], axis=1), "error_rate"
    attributes = vocabulary_of(merged).attribute_names
    t = merged.frame[[f"{a}_true" for a in attributes]].to_numpy(np.float64)
    p = merged.frame[[f"{a}_pred" for a in attributes]].to_numpy(np.float64)
    return np.stack([((p[r] - t[r]) ** 2).mean(axis=1) for r in positions], axis=1), "mse_mean"


def gender_gap_by_podcast(merged: pd.DataFrame, resampling=None, a: str = "Female", b: str = "Male",
                          **legacy) -> pd.DataFrame:
    """Gender gap in per-file error overall and within podcasts, and the share explained by
    podcast (module docstring), with bootstrap CIs. Tidy: ``system, task, metric, quantity
    (gap_overall | gap_within_podcast | share_explained), estimate, ci_low, ci_high, level, unit,
    n_boot, n_podcasts_both`` (podcasts with files of both genders)."""
    s = resampling_settings(resampling, **legacy)
    merged = aligned(merged)
    names, positions = _block(merged)
    first = rows_at(merged.frame, positions[0]).reset_index(drop=True)
    gender = first["Gender"].map({a: 0, b: 1})
    podcast = podcast_of(first["FileName"])
    pcode, plist = pd.factorize(podcast, use_na_sentinel=True)
    n_p = len(plist) + 1                                         # last slot: files without a podcast
    pcode = np.where(pcode < 0, n_p - 1, pcode)
    keep = gender.notna().to_numpy()
    error, metric = _file_error(merged, positions)                # (n, S)
    n, n_sys = error.shape
    slot = pcode * 2 + gender.fillna(0).to_numpy(np.int64)
    # design columns: per (podcast, gender) slot the count and each system's error sum
    cols = slot[keep, None] * (1 + n_sys) + np.arange(1 + n_sys)[None]
    vals = np.column_stack([np.ones(int(keep.sum())), error[keep]])
    rows = np.repeat(np.flatnonzero(keep), 1 + n_sys)
    design = scipy.sparse.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n, n_p * 2 * (1 + n_sys)))
    real = np.arange(n_p) < n_p - 1

    def finish(raw):
        sums = raw.reshape(len(raw), n_p, 2, 1 + n_sys)
        count, total = sums[..., 0], sums[..., 1:]                                        # (B,P,2), (B,P,2,S)
        with np.errstate(invalid="ignore", divide="ignore"):
            overall = total.sum(1) / count.sum(1)[..., None]                              # (B, 2, S)
            gap = overall[:, 0] - overall[:, 1]
            mean = total / count[..., None]
            h = np.where(real & (count[..., 0] > 0) & (count[..., 1] > 0),
                         count[..., 0] * count[..., 1] / (count[..., 0] + count[..., 1]), 0.0)   # (B, P)
            within_terms = np.where(h[..., None] > 0, mean[:, :, 0] - mean[:, :, 1], 0.0)
            within = (h[..., None] * within_terms).sum(1) / h.sum(1)[:, None]
            share = 1.0 - within / gap
        return {"gap_overall": gap, "gap_within_podcast": within, "share_explained": share}

    statistic = rs.LinearStatistic.of_design(design, finish)    # per speaker: the design's rows summed once

    estimate = statistic(np.ones((1, n)))
    clusters, unit = s.groups(first)
    quantities = list(estimate)
    if s.n_boot > 0:
        with rs.shared_weights():
            dist = rs.bootstrap_distribution(statistic, n, s.n_boot, groups=clusters, seed=s.seed,
                                             dtype=np.float32 if metric == "error_rate" else np.float64)
        bounds = {q: percentile_interval(dist[q], s.level) for q in quantities}
    else:
        bounds = {q: (np.full(n_sys, np.nan), np.full(n_sys, np.nan)) for q in quantities}
    both = first[keep].assign(_p=pcode[keep]).groupby("_p")["Gender"].nunique()
    n_both = int(((both == 2) & (both.index < n_p - 1)).sum())
    out = [dict(system=system, task=task_of(merged), metric=metric, quantity=q,
                estimate=float(estimate[q][0, j]), ci_low=float(bounds[q][0][j]), ci_high=float(bounds[q][1][j]),
                level=s.level, unit=unit, n_boot=s.n_boot, n_podcasts_both=n_both)
           for j, system in enumerate(names) for q in quantities]
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- duration

def durations(file_names, audio_root: str | os.PathLike) -> pd.Series:
    """Duration in seconds of each file under ``audio_root`` from its header
    (:func:`soundfile.info`: frames / samplerate, no decoding); nan when absent or unreadable."""
    import soundfile as sf

    root = Path(audio_root)
    values = {}
    for name in pd.unique(pd.Series(file_names)):
        try:
            values[name] = float(sf.info(str(root / name)).duration)
        except (RuntimeError, OSError, sf.LibsndfileError):
            values[name] = np.nan
    return pd.Series(values, name="duration_s", dtype=np.float64)


def duration_bins(seconds: pd.Series, edges=DURATION_EDGES) -> pd.Series:
    """Bin label per file, e.g. ``"3-4.5 s"``, ``">= 11 s"``; nan durations get none."""
    edges = list(edges)
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        labels.append(f">= {lo:g} s" if np.isinf(hi) else (f"< {hi:g} s" if lo == 0 else f"{lo:g}-{hi:g} s"))
    binned = pd.cut(seconds, bins=edges, labels=labels, right=False)
    return binned


def duration_metrics(merged: pd.DataFrame, audio_root: str | os.PathLike | None = None,
                     seconds: pd.Series | None = None, edges=DURATION_EDGES, resampling=None,
                     min_files: int = 1, **legacy) -> pd.DataFrame:
    """:func:`grouped_metrics` by duration bin; durations from ``seconds`` (FileName -> s) or
    read from ``audio_root`` headers. Adds ``duration_low``/``duration_high`` (bin edges, s)."""
    if seconds is None:
        if audio_root is None:
            raise ValueError("duration_metrics needs audio_root or seconds")
        seconds = durations(pd.unique(merged["FileName"]), audio_root)
    bins = duration_bins(seconds, edges)
    order = list(bins.cat.categories)
    table = grouped_metrics(aligned(merged), bins.astype(object).where(bins.notna()), by="duration", resampling=resampling,
                            min_files=min_files, **legacy)
    edges = list(edges)
    position = {label: i for i, label in enumerate(order)}
    table["duration_low"] = [edges[position[g]] for g in table["group"]]
    table["duration_high"] = [edges[position[g] + 1] for g in table["group"]]
    return table.sort_values(["system", "metric", "duration_low"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- entry point

def where_tables(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None, audio_root=None,
                 resampling=None, min_podcast_files: int = 50, **legacy) -> dict[str, pd.DataFrame]:
    """``podcast_metrics``, ``worst_podcasts``, ``gender_gap_by_podcast`` and (with ``audio_root``
    holding the files) ``duration_metrics`` over both tasks, each with a ``task`` column."""
    parts: dict[str, list] = {"podcast_metrics": [], "worst_podcasts": [], "gender_gap_by_podcast": [],
                              "duration_metrics": []}
    frames = [aligned(m) for m in (categorical, attributes) if m is not None]
    seconds = None
    if audio_root is not None and Path(audio_root).is_dir() and frames:
        seconds = durations(pd.unique(pd.concat([m["FileName"] for m in frames])), audio_root)
    for merged in frames:
        release_free_memory()           # each task's temporaries handed back before the next one's
        if podcast_of(pd.unique(merged["FileName"])).notna().any():
            podcasts = podcast_metrics(merged, min_files=min_podcast_files, resampling=resampling, **legacy)
            parts["podcast_metrics"].append(podcasts)
            parts["worst_podcasts"].append(worst_podcasts(podcasts))
            if merged["Gender"].notna().any():
                gaps = gender_gap_by_podcast(merged, resampling=resampling, **legacy)
                if gaps["n_podcasts_both"].gt(0).any():      # else no podcast has both genders
                    parts["gender_gap_by_podcast"].append(gaps)
        if seconds is not None and seconds.notna().any():
            parts["duration_metrics"].append(duration_metrics(merged, seconds=seconds, resampling=resampling,
                                                              **legacy))
    return {name: pd.concat(p, ignore_index=True) for name, p in parts.items() if p}
