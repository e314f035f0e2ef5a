r"""Extreme attribute values and regression to the mean (paper Fig. 3b-d, finding 2).

A system that shrinks its predictions toward the middle over-predicts low true values and
under-predicts high ones. This module measures it four ways, each a tidy frame:

* :func:`bin_means` - mean prediction and bias per true bin, with bootstrap CIs.
* :func:`shrinkage_table` - the slope of :math:`E[\hat y \mid y]` (OLS slope of prediction on
  truth, :math:`\beta = \mathrm{cov}/s_{true}^2 = \rho v`), the variance ratio
  :math:`v = s_{pred}/s_{true}`, and Lin's decomposition of how much CCC is lost to
  correlation, scale and location.
* :func:`extreme_bin_recall` - how often the lowest / highest true bin is predicted as such
  (bins over the corpus' scale in its vocabulary: the extremes of 1-7, 1-5, -1..1, ...).
* :func:`recalibration_whatif` - CCC after a variance-matching affine map fitted on other files.

Lin's factorisation :math:`\mathrm{CCC} = \rho\,C_b` with
:math:`C_b = 2 / (v + 1/v + u^2)`, :math:`u = (\bar y_{pred} - \bar y_{true})/\sqrt{s_{pred}s_{true}}`
splits the gap to a perfect score exactly:

.. math::
    1 - \mathrm{CCC} = \underbrace{(1 - \rho)}_{\text{correlation}}
        + \underbrace{\rho\,(1 - C_b)}_{\text{scale + location}}

The bias part is shared between scale and location symmetrically (the Shapley split of the two
factors): with :math:`C_s = 2/(v + 1/v)` (``C_b`` without location shift, ``u = 0``) and
:math:`C_l = 2/(2 + u^2)` (``C_b`` without scale shift, ``v = 1``),

.. math::
    \text{loss\_scale} = \tfrac{\rho}{2}\,[(1 - C_s) + (C_l - C_b)],\qquad
    \text{loss\_location} = \tfrac{\rho}{2}\,[(1 - C_l) + (C_s - C_b)],

so ``loss_correlation + loss_scale + loss_location = 1 - ccc`` exactly. (With negative
:math:`\rho` the bias parts turn negative; the identity still holds.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse

from ser_diag import metrics
from ser_diag import resampling as resampling_
from ser_diag.evaluation import aligned
from ser_diag.analysis.binned import (
    assign_bins,
    attribute_bin_labels,
    attribute_edges,
    attribute_pairs,
    attributes_of,
    bin_labels,
    binned_matrix,
)

#: Rows of :func:`shrinkage_table`, in order.
SHRINKAGE_METRICS = (
    "slope", "variance_ratio", "ccc", "rho", "scale_v", "location_u", "c_b",
    "loss_correlation", "loss_scale", "loss_location", "ccc_gap",
    "mean_true", "mean_pred", "sd_true", "sd_pred",
)
_SEP = "\x1f"  # joins pair index and metric name inside one joint bootstrap statistic


def lin_loss_parts(rho, scale_v, location_u) -> dict[str, np.ndarray]:
    r"""Split ``1 - CCC`` into correlation, scale and location losses (module docstring).

    >>> parts = lin_loss_parts(0.9, 0.6, 0.1)
    >>> {k: round(float(v), 4) for k, v in parts.items()}
    {'loss_correlation': 0.1, 'loss_scale': 0.1054, 'loss_location': 0.004, 'ccc_gap': 0.2094}
    """
    rho, v, u = (np.asarray(a, dtype=np.float64) for a in (rho, scale_v, location_u))
    with np.errstate(invalid="ignore", divide="ignore"):
        c_b = 2.0 / (v + 1.0 / v + u * u)
        c_scale = 2.0 / (v + 1.0 / v)
        c_location = 2.0 / (2.0 + u * u)
    return {
        "loss_correlation": 1.0 - rho,
        "loss_scale": 0.5 * rho * ((1.0 - c_scale) + (c_location - c_b)),
        "loss_location": 0.5 * rho * ((1.0 - c_location) + (c_scale - c_b)),
        "ccc_gap": 1.0 - rho * c_b,
    }


def _shrinkage_from_moments(m: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`SHRINKAGE_METRICS` from ``(B, 6)`` :func:`ser_diag.metrics.weighted_moments`."""
    mean_t, mean_p, var_t, var_p, cov = (m[:, i] for i in range(1, 6))
    sd_t, sd_p = np.sqrt(var_t), np.sqrt(var_p)
    rho = metrics.pearson_from_moments(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(sd_t > 0, sd_p / sd_t, np.nan)
        u = np.where(sd_t * sd_p > 0, (mean_p - mean_t) / np.sqrt(sd_t * sd_p), np.nan)
        slope = np.where(var_t > 0, cov / var_t, np.nan)
        c_b = 2.0 / (v + 1.0 / v + u * u)
    out = {"slope": slope, "variance_ratio": v, "ccc": metrics.ccc_from_moments(m), "rho": rho,
           "scale_v": v, "location_u": u, "c_b": c_b}
    out.update(lin_loss_parts(rho, v, u))
    out.update(mean_true=mean_t, mean_pred=mean_p, sd_true=sd_t, sd_pred=sd_p)
    return out


def shrinkage_statistics(y_true, y_pred, ddof: int = 0):
    """Vectorised statistic for :func:`ser_diag.resampling.bootstrap`: weights ``(B, n)`` ->
    dict of :data:`SHRINKAGE_METRICS` -> ``(B,)``, from :func:`ser_diag.metrics.weighted_moments`."""

    def statistic(weights):
        return _shrinkage_from_moments(metrics.weighted_moments(weights, y_true, y_pred, ddof=ddof))

    return statistic


def _joint_shrinkage_statistics(pairs, ddof: int):
    """:func:`shrinkage_statistics` of several ``(y_true, y_pred)`` pairs on the same items at
    once: the pairs are the columns of one :class:`ser_diag.metrics.MomentDesign`, so one
    blockwise product ``W @ columns`` serves every pair. Keys
    ``"<pair index><_SEP><metric>"``."""
    x = np.column_stack([np.asarray(t, dtype=np.float64) for t, _ in pairs])
    y = np.column_stack([np.asarray(p, dtype=np.float64) for _, p in pairs])[None]
    design = metrics.MomentDesign(x, y, consume=True)
    del x, y

    def finish(raw):
        m = design.moments(raw, ddof)[:, 0]                                   # (B, pairs, 6)
        out = {}
        for i in range(len(pairs)):
            for name, value in _shrinkage_from_moments(m[:, i]).items():
                out[f"{i}{_SEP}{name}"] = value
        return out

    return resampling_.LinearStatistic(design.product, finish)   # linear: speakers summed once


def _same_items(pairs, settings):
    """Batches of :func:`attribute_pairs` entries whose bootstrap weights are identical (same
    number of rows and, when resampling speakers, the same speaker of every row)."""
    batches: dict = {}
    for entry in pairs:
        rows = entry[2]
        groups, unit = settings.groups(rows)
        key = (len(rows), unit)
        if groups is not None:
            key += (pd.util.hash_pandas_object(groups, index=False).to_numpy().tobytes(),)
        batches.setdefault(key, []).append(entry)
    return list(batches.values())


def _light_pairs(merged: pd.DataFrame, attribute) -> list:
    """:func:`attribute_pairs` keeping only ``FileName``/``SpkrID`` of the rows (what the
    bootstrap needs), so S x A pairs do not hold S x A copies of the merged rows."""
    data = aligned(merged)
    keep = [c for c in ("FileName", "SpkrID") if c in data.columns]
    return [(name, attr, rows[keep], true, pred) for name, attr, rows, true, pred in attribute_pairs(data, attribute)]


def _split_keys(boot: pd.DataFrame) -> pd.DataFrame:
    parts = boot["metric"].str.split(_SEP, n=1, expand=True)
    return boot.assign(pair=parts[0].astype(int).to_numpy(), metric=parts[1].to_numpy())


def _bootstrap(statistic, rows, settings) -> pd.DataFrame:
    groups, unit = settings.groups(rows)
    return resampling_.bootstrap(statistic, len(rows), n_boot=settings.n_boot, groups=groups,
                                 level=settings.level, seed=settings.seed, unit=unit,
                                 dtype=np.float64)  # the statistics sum in float64 anyway


def shrinkage_table(merged: pd.DataFrame, attribute=None, resampling: resampling_.Resampling | None = None,
                    **legacy) -> pd.DataFrame:
    """Shrinkage and Lin's decomposition per system x attribute, with percentile bootstrap CIs.

    Long format: one row per (system, attribute, metric) with columns system, attribute,
    metric, estimate, ci_low, ci_high, level, unit, n_boot, n. Metrics (:data:`SHRINKAGE_METRICS`):
    ``slope`` (OLS slope of prediction on truth; 1 = no regression to the mean),
    ``variance_ratio`` = ``scale_v`` = sd_pred / sd_true, ``ccc``, ``rho``, ``location_u``,
    ``c_b``, the CCC losses ``loss_correlation + loss_scale + loss_location = ccc_gap = 1 - ccc``
    (module docstring), and the means and standard deviations (denominator ``n - ddof``).
    Resampling (:class:`~ser_diag.resampling.Resampling`, default speakers when known; older
    keywords ``n_boot, level, by_speaker, seed, ddof`` override it) is identical for every
    system. A constant truth (or prediction) leaves slope, ratios and correlations undefined:
    they are nan, and ``.attrs["notes"]`` says why.
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    pairs = _light_pairs(merged, attribute)
    found = {}
    notes = []
    for name, attr, _, true, pred in pairs:
        for what, values in (("true", true), ("predicted", pred)):
            if len(values) and np.ptp(values) == 0:
                notes.append(f"{name}: every {what} {attr} is {values[0]:g}, so slope, variance ratio and "
                             f"correlation are undefined (nan)")
    for batch in _same_items(pairs, settings):  # one bootstrap per set of items, all pairs at once
        statistic = _joint_shrinkage_statistics([(true, pred) for *_, true, pred in batch], settings.ddof)
        boot = _split_keys(_bootstrap(statistic, batch[0][2], settings))
        for i, (name, attr, rows, _, _) in enumerate(batch):
            found[(name, attr)] = (boot[boot["pair"] == i].drop(columns="pair"), len(rows))
    frames = []
    for name, attr, *_ in pairs:
        boot, n = found[(name, attr)]
        boot = boot.set_index("metric").loc[list(SHRINKAGE_METRICS)].reset_index()
        boot.insert(0, "attribute", attr)
        boot.insert(0, "system", name)
        boot["n"] = n
        frames.append(boot)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["notes"] = notes
    return out


def _joint_bin_statistics(idx: np.ndarray, pairs, k: int):
    """Per-bin mean prediction and bias (``mean_pred_<b>``, ``bias_<b>``) of several
    ``(y_true, y_pred)`` pairs whose true values fall into the same bins ``idx``: per bin one
    product ``W[:, in_bin] @ [1, pred_1.., (pred - true)_1..]``, so each weight chunk is read
    once for all pairs. Keys ``"<pair index><_SEP><name>"``."""
    members = [np.flatnonzero(idx == b) for b in range(k)]
    s = len(pairs)
    blocks = [np.column_stack([np.ones(m.size)] + [np.asarray(p, dtype=np.float64)[m] for _, p in pairs]
                              + [(np.asarray(p, dtype=np.float64) - np.asarray(t, dtype=np.float64))[m]
                                 for t, p in pairs]) for m in members]

    widths = np.cumsum([0] + [block.shape[1] for block in blocks])

    def bin_sums(weights):           # (B, k * (1 + 2 s)), linear in the weights (dense or sparse)
        w = weights if scipy.sparse.issparse(weights) else np.atleast_2d(np.asarray(weights)).astype(
            np.float64, copy=False)
        return np.concatenate([np.asarray(w[:, m] @ block) for m, block in zip(members, blocks)], axis=1)

    def finish(raw):
        mean_pred, bias = np.empty((raw.shape[0], k, s)), np.empty((raw.shape[0], k, s))
        for b in range(k):
            sums = raw[:, widths[b]:widths[b + 1]]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_pred[:, b] = sums[:, 1:1 + s] / sums[:, :1]
                bias[:, b] = sums[:, 1 + s:] / sums[:, :1]
        out = {}
        for i in range(s):
            out.update({f"{i}{_SEP}mean_pred_{b}": mean_pred[:, b, i] for b in range(k)})
            out.update({f"{i}{_SEP}bias_{b}": bias[:, b, i] for b in range(k)})
        return out

    return resampling_.LinearStatistic(bin_sums, finish)   # linear: speakers summed once


def bin_means(merged: pd.DataFrame, attribute=None, scheme: str = "unit", edges=None,
              resampling: resampling_.Resampling | None = None, **legacy) -> pd.DataFrame:
    """Mean prediction and bias (mean prediction - mean truth) per true bin, with bootstrap CIs.

    Bins as in :mod:`ser_diag.analysis.binned`. Without regression to the mean ``mean_pred``
    follows ``mean_true`` (bias 0 in every bin); with it, bias is positive in low bins and
    negative in high ones. Columns: system, attribute, true_bin, bin_index, bin_low, bin_high,
    n, mean_true, mean_pred, mean_pred_ci_low, mean_pred_ci_high, bias, bias_ci_low,
    bias_ci_high, level, unit, n_boot. Empty bins are left out; a bin missing from a resample
    does not count toward its interval.
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    n_boot, level = settings.n_boot, settings.level
    records = []
    data = aligned(merged)
    merged = data.frame
    for attr in attributes_of(data, attribute):
        bins = attribute_edges(merged, attr, scheme, edges, data.vocabulary)
        labels = attribute_bin_labels(merged, attr, bins, scheme, edges)
        pairs = _light_pairs(data, attr)
        found = {}
        for batch in _same_items(pairs, settings):
            by_bins: dict = {}  # systems whose files fall into the same true bins share one bootstrap
            for entry in batch:
                idx = assign_bins(entry[3], bins)
                by_bins.setdefault(idx.tobytes(), (idx, []))[1].append(entry)
            for idx, entries in by_bins.values():
                statistic = _joint_bin_statistics(idx, [(true, pred) for *_, true, pred in entries], len(labels))
                boot = _split_keys(_bootstrap(statistic, entries[0][2], settings))
                for i, entry in enumerate(entries):
                    found[entry[0]] = (idx, boot[boot["pair"] == i].drop(columns="pair").set_index("metric"))
        for name, _, rows, true, pred in pairs:
            idx, boot = found[name]
            for b, label in enumerate(labels):
                in_bin = idx == b
                if not in_bin.any():
                    continue
                mp, bias = boot.loc[f"mean_pred_{b}"], boot.loc[f"bias_{b}"]
                records.append({
                    "system": name, "attribute": attr, "true_bin": label, "bin_index": b,
                    "bin_low": bins[b], "bin_high": bins[b + 1], "n": int(in_bin.sum()),
                    "mean_true": true[in_bin].mean(), "mean_pred": mp["estimate"],
                    "mean_pred_ci_low": mp["ci_low"], "mean_pred_ci_high": mp["ci_high"],
                    "bias": bias["estimate"], "bias_ci_low": bias["ci_low"], "bias_ci_high": bias["ci_high"],
                    "level": level, "unit": mp["unit"], "n_boot": n_boot,
                })
    return pd.DataFrame(records)


def extreme_bin_recall(merged: pd.DataFrame, attribute=None, scheme: str = "unit", edges=None,
                       matrix: pd.DataFrame | None = None) -> pd.DataFrame:
    """Recall of the lowest and highest true bins: share of their files predicted in the same bin.

    Read off the diagonal of :func:`ser_diag.analysis.binned.binned_matrix`; "lowest" and
    "highest" are the outermost bins holding at least one file. Columns: system, attribute,
    end ("low" / "high"), true_bin, n, recall. ``matrix``: that binned matrix
    (``normalize="true"``, same ``attribute``/``scheme``/``edges``) if already computed.
    """
    if matrix is None:
        matrix = binned_matrix(merged, attribute, scheme=scheme, edges=edges, normalize="true")
    records = []
    for (name, attr), cells in matrix.groupby(["system", "attribute"], sort=False):
        n_per_bin = cells.groupby("true_index")["count"].sum()
        filled = n_per_bin.index[n_per_bin.to_numpy() > 0]
        for end, b in (("low", filled.min()), ("high", filled.max())):
            cell = cells.loc[(cells["true_index"] == b) & (cells["pred_index"] == b)].iloc[0]
            records.append({"system": name, "attribute": attr, "end": end, "true_bin": cell["true_bin"],
                            "n": int(n_per_bin.loc[b]), "recall": float(cell["share"])})
    return pd.DataFrame(records)


def holdout_files(merged: pd.DataFrame, holdout_fraction: float = 0.5, seed: int = 0,
                  by_speaker: bool | None = None) -> np.ndarray:
    """The sorted file names of the fitting part for :func:`recalibration_whatif`.

    A seeded random ``holdout_fraction`` of the speakers (so no speaker is on both sides;
    files of unknown speaker count as speakers of their own), or of the files when
    ``by_speaker=False`` or no speaker is known (``None``, the default: speakers whenever
    any ``SpkrID`` is known). The same files for every system and attribute.
    """
    if by_speaker is None:
        by_speaker = "SpkrID" in merged.columns and bool(merged["SpkrID"].notna().any())
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), not {holdout_fraction!r}")
    files = merged.drop_duplicates("FileName").sort_values("FileName")
    units = np.arange(len(files))
    if by_speaker:
        units = resampling_.cluster_ids(files["SpkrID"].reset_index(drop=True))
    unique = np.unique(units)
    rng = np.random.default_rng(seed)
    n_fit = int(round(holdout_fraction * len(unique)))
    if n_fit == 0 or n_fit == len(unique):
        raise ValueError(f"holdout_fraction {holdout_fraction} leaves one part empty ({len(unique)} units)")
    chosen = rng.choice(unique, size=n_fit, replace=False)
    return np.sort(files["FileName"].to_numpy()[np.isin(units, chosen)].astype(str))


def variance_matching(y_true, y_pred, ddof: int = 0) -> tuple[float, float]:
    r"""``(scale, offset)`` of the affine map :math:`\hat y' = \bar y + (s_y/s_{\hat y})(\hat y - \bar{\hat y})`
    that gives predictions the mean and standard deviation of the truth.

    >>> [round(x, 9) for x in variance_matching([1.0, 4.0, 7.0], [3.0, 4.0, 5.0])]
    [3.0, -8.0]
    """
    d = metrics.lin_decomposition(y_true, y_pred, ddof=ddof)
    scale = d["sd_true"] / d["sd_pred"] if d["sd_pred"] > 0 else float("nan")
    return float(scale), float(d["mean_true"] - scale * d["mean_pred"])


def recalibration_whatif(merged: pd.DataFrame, attribute=None, holdout_fraction: float = 0.5,
                         resampling: resampling_.Resampling | None = None, **legacy) -> pd.DataFrame:
    """CCC before and after a post-hoc variance-matching recalibration fitted on held-out files.

    The files are split once (:func:`holdout_files`): :func:`variance_matching` is fitted on
    the ``holdout_fraction`` part and both CCCs are computed on the other part only, so the
    map never sees the files it is scored on. An affine map with positive scale leaves Pearson's
    rho unchanged, and rho is the best CCC any affine map can reach, so ``ccc_after`` close to
    ``pearson`` means the gap was shrinkage (scale) and location, not ranking.
    The split is by speaker when the resolved unit of ``resampling`` is speaker (default
    whenever ``SpkrID`` is known), by file otherwise; ``split_unit`` names it.
    Columns: system, attribute, n_fit, n_eval, scale, offset, ccc_before, ccc_after, ccc_gain,
    variance_ratio_before, variance_ratio_after, pearson, split_unit.
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    ddof = settings.ddof
    data = aligned(merged)
    merged = data.frame
    unit = settings.unit_for(merged["SpkrID"] if "SpkrID" in merged.columns else None)
    fit_files = holdout_files(merged, holdout_fraction, settings.seed, by_speaker=unit == "speaker")
    records, fit_rows = [], {}
    fit_index = pd.Index(fit_files)
    for name, attr, rows, true, pred in attribute_pairs(data, attribute):
        # one membership test per row set (the attributes of a system share their rows)
        if fit_rows.get(id(rows), (None,))[0] is not rows:
            fit_rows[id(rows)] = (rows, fit_index.get_indexer(rows["FileName"]) >= 0)
        in_fit = fit_rows[id(rows)][1]
        scale, offset = variance_matching(true[in_fit], pred[in_fit], ddof)
        t_eval, p_eval = true[~in_fit], pred[~in_fit]
        recalibrated = offset + scale * p_eval
        before = metrics.lin_decomposition(t_eval, p_eval, ddof)
        after = metrics.lin_decomposition(t_eval, recalibrated, ddof)
        records.append({
            "system": name, "attribute": attr, "n_fit": int(in_fit.sum()), "n_eval": int((~in_fit).sum()),
            "scale": scale, "offset": offset, "ccc_before": before["ccc"], "ccc_after": after["ccc"],
            "ccc_gain": after["ccc"] - before["ccc"], "variance_ratio_before": before["scale_v"],
            "variance_ratio_after": after["scale_v"], "pearson": before["rho"], "split_unit": unit,
        })
    return pd.DataFrame(records)
