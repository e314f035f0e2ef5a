"""How far systems are from the annotators: per-file agreement, headline metrics by agreement,
the human ceiling and soft-label scores: MSP-Podcast's (its 8 classes and attributes). Needs
``Labels/labels_detailed.csv``
(:func:`ser_diag.io.read_detailed_labels`); :func:`agreement_tables` returns nothing, with a
note, when it is absent.

* **Per file** (:func:`file_agreement`): ``n_annotators`` (judgements), ``n_votes`` (primary votes
  for one of the 8 classes; ``Other`` is not one), ``share_agree`` = share of all judgements
  whose primary vote is the consensus class, ``vote_entropy`` = entropy in bits of the 8-class
  vote distribution (:func:`ser_diag.io.soft_labels`), ``agreement_bin``: ``unanimous``
  (share 1), ``majority`` (share > 1/2), ``plurality`` (the consensus class has fewer than half
  the judgements), ``no consensus`` (consensus ``X``/``O``); ``sd_<attr>`` = annotator SD of each
  attribute (``ddof=1``), ``sd_mean`` their mean, ``sd_bin`` its tercile (low / mid / high).
* **By agreement** (:func:`metrics_by_agreement`): headline metrics per ``agreement_bin``
  (classes) or ``sd_bin`` (attributes) with paired bootstrap CIs
  (:func:`ser_diag.analysis.where.grouped_metrics`).
* **Human ceiling** (:func:`human_ceiling`), leave-one-annotator-out: every judgement is scored
  against the consensus of the file's *other* annotators -- the plurality of their 8-class votes
  (judgements voting ``Other``, and those whose others tie or have no vote, are skipped) or the
  mean of their attribute scores (files with >= 2 annotators) -- and the pairs are pooled into
  one macro-F1 / accuracy and one CCC per attribute (and their mean), each file weighted 1 (its
  judgements averaged), on the Task-1 files (8-class consensus) resp. all files. Intervals
  resample speakers (or files) like the systems'. **Bias:** the leave-one-out reference has
  ``k - 1`` annotators, so it is noisier than the ``k``-annotator consensus systems are scored
  against, and the scored side is a single judgement: the estimate is the agreement of *one
  annotator* with a smaller panel, lower than the agreement of the full consensus with a
  replication of itself. It is a human reference, not an upper bound: a system that predicts
  the consensus well can exceed it.
* **Soft labels** (:func:`soft_label_scores`): ``plausible_accuracy`` = share of files whose
  predicted class got at least one annotator vote; ``expected_agreement`` = mean vote share of
  the predicted class (probability that a random annotator of the file agrees);
  with probability columns ``P_*``: ``cross_entropy = -sum_c p_c log q_c`` and
  ``kl = cross_entropy - H(p)`` (nats; ``q`` clipped at 1e-12 and renormalised), averaged over
  files. All with bootstrap CIs over the same unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse

import ser_diag.resampling as rs
from ser_diag.resampling import percentile_interval
from ser_diag.analysis.ranks import SYSTEM_BLOCK, resampling_settings
from ser_diag.analysis.where import grouped_metrics
from ser_diag.evaluation import aligned, column_at, rows_at, task_of, vocabulary_of
from ser_diag.io import class_index, index_in, soft_labels
from ser_diag.metrics import ccc_from_moments, moments_from_sums
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, PROB_COLUMNS, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = [
    "AGREEMENT_BINS",
    "SD_BINS",
    "agreement_tables",
    "file_agreement",
    "human_ceiling",
    "metrics_by_agreement",
    "soft_label_scores",
]

AGREEMENT_BINS = ("unanimous", "majority", "plurality", "no consensus")
SD_BINS = ("low SD", "mid SD", "high SD")
HUMAN_CEILING_ESTIMATOR = ("leave-one-annotator-out: each judgement vs the consensus of the other annotators "
                           "(plurality of their votes; mean of their scores), files weighted equally")
HUMAN_CEILING_BIAS = ("low: the reference has k-1 annotators and the scored side is one judgement; "
                      "a human reference, not an upper bound for systems")
_EPS = 1e-12


# --------------------------------------------------------------------------- per file

def _plurality(counts: np.ndarray) -> np.ndarray:
    """Index of the unique maximum per row, -1 on ties or no votes."""
    top = counts.max(axis=1)
    unique = (counts == top[:, None]).sum(axis=1) == 1
    return np.where(unique & (top > 0), counts.argmax(axis=1), -1)


def _vote_counts(detailed: pd.DataFrame, files: pd.Index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(file index per judgement (-1: not in files), 8-class code per judgement (-1: Other),
    (n_files, 8) vote counts)``."""
    f = index_in(detailed["FileName"], files)
    code = class_index(detailed["EmoClass"])
    ok = (f >= 0) & (code >= 0)
    k = len(CLASS_CODES)
    counts = np.bincount(f[ok] * k + code[ok], minlength=len(files) * k).reshape(len(files), k)
    return f, code, counts


def file_agreement(detailed: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Agreement of the annotators of every file (module docstring), one row per file.

    ``labels`` (consensus labels) gives the consensus class and the file set; without it the
    consensus is the plurality of the votes (``X`` on a tie) and the files are those of
    ``detailed``.
    """
    if labels is not None:
        files = pd.Index(labels["FileName"])
        consensus = labels["EmoClass"].to_numpy(dtype=object)
    else:
        files = pd.Index(pd.unique(detailed["FileName"]))
    f, code, counts = _vote_counts(detailed, files)
    if labels is None:
        top = _plurality(counts)
        consensus = np.where(top >= 0, np.asarray(CLASS_CODES, dtype=object)[np.maximum(top, 0)], "X")
    in_files = f >= 0
    n_annotators = np.bincount(f[in_files], minlength=len(files))
    n_votes = counts.sum(axis=1)
    target = pd.Index(CLASS_CODES).get_indexer(pd.Index(consensus))
    agree = counts[np.arange(len(files)), np.maximum(target, 0)] * (target >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(n_annotators > 0, agree / n_annotators, np.nan)
        p = counts / n_votes[:, None]
        entropy = -np.where(counts > 0, p * np.log2(np.where(counts > 0, p, 1.0)), 0.0).sum(axis=1)
    entropy = np.where(n_votes > 0, entropy + 0.0, np.nan)
    agreement_bin = np.select([target < 0, share == 1, share > 0.5], ["no consensus", "unanimous", "majority"],
                              "plurality").astype(object)
    agreement_bin[n_annotators == 0] = None
    out = pd.DataFrame({"FileName": files, "n_annotators": n_annotators, "n_votes": n_votes,
                        "consensus": consensus, "share_agree": share, "vote_entropy": entropy,
                        "agreement_bin": agreement_bin})
    scores = detailed.loc[in_files, list(ATTRIBUTES)].assign(_f=f[in_files])
    sd = scores.groupby("_f")[list(ATTRIBUTES)].std(ddof=1).reindex(range(len(files)))
    for a in ATTRIBUTES:
        out[f"sd_{a}"] = sd[a].to_numpy()
    out["sd_mean"] = out[[f"sd_{a}" for a in ATTRIBUTES]].mean(axis=1, skipna=False)
    valid = out["sd_mean"].notna()
    out["sd_bin"] = pd.Series(None, index=out.index, dtype=object)
    if valid.sum() >= len(SD_BINS):
        ranks = out.loc[valid, "sd_mean"].rank(method="first")
        out.loc[valid, "sd_bin"] = pd.qcut(ranks, len(SD_BINS), labels=list(SD_BINS)).astype(object)
    out.attrs["synthetic"] = bool(detailed.attrs.get("synthetic"))
    return out


# --------------------------------------------------------------------------- by agreement

def metrics_by_agreement(merged: pd.DataFrame, agreement: pd.DataFrame, resampling=None, **legacy) -> pd.DataFrame:
    """Headline metrics per agreement bin (classes: ``agreement_bin``; attributes: ``sd_bin``),
    tidy as :func:`ser_diag.analysis.where.grouped_metrics` with ``by`` naming the binning."""
    by = "agreement_bin" if task_of(merged) == TASK_CATEGORICAL else "sd_bin"
    mapping = agreement.set_index("FileName")[by]
    table = grouped_metrics(merged, mapping, by=by, resampling=resampling, **legacy)
    order = {b: i for i, b in enumerate(AGREEMENT_BINS + SD_BINS)}
    return table.sort_values(["system", "metric", "group"], key=lambda c: c.map(order) if c.name == "group" else c,
                             kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- human ceiling

#: Judgements handled at a time in the leave-one-out reference (bounds the ``(block, 8)`` arrays).
JUDGEMENT_BLOCK = 1 << 18


def _spread(values: np.ndarray, f: np.ndarray, n_files: int) -> np.ndarray:
    """Sum the columns of ``values`` ``(J, width)`` per file index ``f`` -> ``(n_files, width)``
    (``np.bincount`` per column: the same additions in the same order as ``np.add.at``)."""
    return np.column_stack([np.bincount(f, weights=values[:, c], minlength=n_files)
                            for c in range(values.shape[1])]) if values.shape[1] else np.zeros((n_files, 0))


def _leave_one_out_plurality(counts: np.ndarray, f: np.ndarray, code: np.ndarray) -> np.ndarray:
    """For each judgement (file ``f``, class ``code``) the plurality of the other annotators'
    votes, ``counts[f] - onehot(code)`` (-1 on a tie), a block of judgements at a time."""
    eye = np.eye(counts.shape[1], dtype=counts.dtype)
    return np.concatenate([_plurality(counts[f[i:i + JUDGEMENT_BLOCK]] - eye[code[i:i + JUDGEMENT_BLOCK]])
                           for i in range(0, len(f), JUDGEMENT_BLOCK)]) if len(f) else np.empty(0, dtype=np.intp)


def _bootstrap_rows(statistic, estimate: dict, n: int, s, groups, unit: str, dtype) -> list[dict]:
    dist = (rs.bootstrap_distribution(statistic, n, s.n_boot, groups=groups, seed=s.seed, dtype=dtype)
            if s.n_boot > 0 else {})
    rows = []
    for name, value in estimate.items():
        low, high = percentile_interval(dist[name], s.level) if dist else (np.nan, np.nan)
        rows.append(dict(metric=name, estimate=float(np.asarray(value).ravel()[0]), ci_low=float(low),
                         ci_high=float(high), level=s.level, unit=unit, n_boot=s.n_boot))
    return rows


def _msp_only(vocabulary: Vocabulary | None, what: str, columns: list[str]) -> pd.DataFrame | None:
    """An empty table with one note when ``vocabulary`` is another corpus' (these analyses read
    MSP-Podcast's per-annotator labels and its 8 classes), else None."""
    if vocabulary is None or vocabulary == MSP_PODCAST:
        return None
    table = pd.DataFrame(columns=columns)
    table.attrs["notes"] = [f"{vocabulary.name}: {what} read MSP-Podcast's per-annotator labels "
                            "(labels_detailed.csv): skipped"]
    return table


HUMAN_CEILING_COLUMNS = ["task", "metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot", "n_files",
                         "n_judgements", "n_skipped", "estimator", "bias"]
SOFT_LABEL_COLUMNS = ["system", "metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot", "n"]


def human_ceiling(detailed: pd.DataFrame, labels: pd.DataFrame, resampling=None,
                  vocabulary: Vocabulary | None = None, **legacy) -> pd.DataFrame:
    """Leave-one-annotator-out agreement (module docstring) with bootstrap CIs.

    Returns ``task, metric, estimate, ci_low, ci_high, level, unit, n_boot, n_files,
    n_judgements, n_skipped, estimator, bias``: ``macro_f1, accuracy`` (categorical) and
    ``ccc_<attr>, ccc_mean`` (attributes). ``vocabulary``: the corpus' (default MSP-Podcast's);
    another corpus' gives an empty table with one note (the estimator reads MSP-Podcast's
    per-annotator labels).
    """
    skipped = _msp_only(vocabulary, "the human ceiling", HUMAN_CEILING_COLUMNS)
    if skipped is not None:
        return skipped
    s = resampling_settings(resampling, **legacy)
    out = []
    k = len(CLASS_CODES)
    # classes: the Task-1 files
    task1 = labels[labels["EmoClass"].isin(CLASS_CODES)].reset_index(drop=True)
    files = pd.Index(task1["FileName"])
    f, code, counts = _vote_counts(detailed, files)
    judged = (f >= 0) & (code >= 0)
    reference = _leave_one_out_plurality(counts, f[judged], code[judged])
    scored = reference >= 0
    jf, jref, jcode = f[judged][scored], reference[scored], code[judged][scored]
    per_file = np.bincount(jf, minlength=len(files)).astype(np.float64)
    weight = 1.0 / per_file[jf]
    cells = scipy.sparse.csr_matrix((weight, (jf, jref * k + jcode)), shape=(len(files), k * k))

    def class_finish(counts):
        stats = rs.confusion_statistics(counts.reshape(len(counts), k, k))
        return {"macro_f1": stats["macro_f1"], "accuracy": stats["accuracy"]}

    classes = rs.LinearStatistic.of_design(cells, class_finish)

    if len(files) and scored.any():
        groups, unit = s.groups(task1)
        rows = _bootstrap_rows(classes, classes(np.ones((1, len(files)))), len(files), s, groups, unit, np.float32)
        for r in rows:
            r.update(task="categorical", n_files=int((per_file > 0).sum()), n_judgements=int(scored.sum()),
                     n_skipped=int((f >= 0).sum() - scored.sum()))
        out += rows
    # attributes: every file
    files = pd.Index(labels["FileName"])
    f = index_in(detailed["FileName"], files)
    inside = f >= 0
    f = f[inside]
    y = detailed.loc[inside, list(ATTRIBUTES)].to_numpy(np.float64)                     # (J, A)
    n_ann = np.bincount(f, minlength=len(files))
    total = _spread(y, f, len(files))
    usable = n_ann[f] >= 2
    f, y = f[usable], y[usable]
    x = (total[f] - y) / (n_ann[f] - 1)[:, None]                                         # mean of the others
    per_file = np.bincount(f, minlength=len(files)).astype(np.float64)
    weight = 1.0 / per_file[f]
    shift = x.mean(axis=0) if len(x) else np.zeros(len(ATTRIBUTES))
    xs, ys = x - shift, y - shift
    del x, y
    # per file and attribute the weighted sums of 1, x, y, x^2, y^2, xy (columns a*6 + term),
    # one term at a time: no (J, A, 6) array
    terms = (lambda a: np.ones_like(xs[:, a]), lambda a: xs[:, a], lambda a: ys[:, a],
             lambda a: xs[:, a] * xs[:, a], lambda a: ys[:, a] * ys[:, a], lambda a: xs[:, a] * ys[:, a])
    design = np.column_stack([np.bincount(f, weights=term(a) * weight, minlength=len(files))
                              for a in range(len(ATTRIBUTES)) for term in terms])

    def attribute_finish(raw):
        ccc = ccc_from_moments(moments_from_sums(raw.reshape(len(raw), len(ATTRIBUTES), 6), s.ddof))
        values = {f"ccc_{a}": ccc[:, j] for j, a in enumerate(ATTRIBUTES)}
        values["ccc_mean"] = ccc.mean(axis=1)
        return values

    attributes = rs.LinearStatistic.of_design(design, attribute_finish)

    if len(f):
        groups, unit = s.groups(labels.reset_index(drop=True))
        rows = _bootstrap_rows(attributes, attributes(np.ones((1, len(files)))), len(files), s, groups, unit,
                               np.float64)
        for r in rows:
            r.update(task="attributes", n_files=int((per_file > 0).sum()), n_judgements=int(len(f)),
                     n_skipped=int(inside.sum() - len(f)))
        out += rows
    columns = ["task", "metric", "estimate", "ci_low", "ci_high", "level", "unit", "n_boot", "n_files",
               "n_judgements", "n_skipped"]
    table = pd.DataFrame(out, columns=columns)
    table["estimator"], table["bias"] = HUMAN_CEILING_ESTIMATOR, HUMAN_CEILING_BIAS
    return table


# --------------------------------------------------------------------------- soft labels

def soft_label_scores(merged: pd.DataFrame, detailed: pd.DataFrame, resampling=None, **legacy) -> pd.DataFrame:
    """Soft-label scores of every system (module docstring) with bootstrap CIs, on the files of
    the categorical ``merged`` frame that have 8-class votes. Tidy: ``system, metric, estimate,
    ci_low, ci_high, level, unit, n_boot, n``."""
    if task_of(merged) != TASK_CATEGORICAL:
        raise ValueError("soft-label scores need the categorical task")
    skipped = _msp_only(vocabulary_of(merged), "soft-label scores", SOFT_LABEL_COLUMNS)
    if skipped is not None:
        return skipped
    s = resampling_settings(resampling, **legacy)
    soft = soft_labels(detailed)
    data = aligned(merged)
    merged = data.frame
    names, positions = data.blocks()[0]
    first = rows_at(merged, positions[0]).reset_index(drop=True)
    where = soft.index.get_indexer(first["FileName"])
    keep = where >= 0
    rows_kept = [np.asarray(p)[keep] for p in positions]
    p = soft[list(CLASS_CODES)].to_numpy(np.float64)[where[keep]]                        # (n, 8)
    first = first[keep].reset_index(drop=True)
    n = len(first)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=1)
    has_prob = all(c in merged.columns for c in PROB_COLUMNS)
    prob_at = [merged.columns.get_loc(c) for c in PROB_COLUMNS] if has_prob else None
    groups, unit = s.groups(first)
    out = []
    with rs.shared_weights():
        for start in range(0, len(names), SYSTEM_BLOCK):
            block = rows_kept[start:start + SYSTEM_BLOCK]
            # one (n, 1 + M) array, the weights' sum first, filled a system at a time
            with_count = np.empty((n, 1 + 4 * len(block)))
            with_count[:, 0], width, labels_ = 1.0, 1, []
            for name, r in zip(names[start:start + SYSTEM_BLOCK], block):
                # only this system's rows are converted (not the whole column once per system)
                pred = class_index(column_at(merged, "EmoClass_pred", r))
                share = p[np.arange(n), pred]
                with_count[:, width], with_count[:, width + 1] = share > 0, share
                width += 2
                labels_ += [(name, "plausible_accuracy"), (name, "expected_agreement")]
                # C order, as fancy indexing gives: the row sums below add in the same order
                q = np.ascontiguousarray(merged.iloc[r, prob_at].to_numpy(np.float64)) if has_prob else None
                if q is not None and np.isfinite(q).all():
                    q = np.clip(q, _EPS, None)
                    q /= q.sum(axis=1, keepdims=True)
                    ce = -(p * np.log(q)).sum(axis=1)
                    with_count[:, width], with_count[:, width + 1] = ce, ce - entropy
                    width += 2
                    labels_ += [(name, "cross_entropy"), (name, "kl")]
            with_count = with_count[:, :width]
            mean = rs.LinearStatistic.of_design(with_count, lambda raw: {"v": raw[:, 1:] / raw[:, :1]})

            estimate = with_count[:, 1:].mean(axis=0)
            if s.n_boot > 0:
                dist = rs.bootstrap_distribution(mean, n, s.n_boot, groups=groups, seed=s.seed, dtype=np.float32)["v"]
                low, high = percentile_interval(dist, s.level)
            else:
                low = high = np.full(len(labels_), np.nan)
            out += [dict(system=name, metric=metric, estimate=float(estimate[i]), ci_low=float(low[i]),
                         ci_high=float(high[i])) for i, (name, metric) in enumerate(labels_)]
    table = pd.DataFrame(out, columns=["system", "metric", "estimate", "ci_low", "ci_high"])
    table["level"], table["unit"], table["n_boot"], table["n"] = s.level, unit, s.n_boot, n
    return table


# --------------------------------------------------------------------------- entry point

def canonical_order(labels: pd.DataFrame, detailed: pd.DataFrame | None = None):
    """``labels`` sorted by ``FileName`` and ``detailed`` by ``FileName``, then class and scores
    (rows only reordered; a frame already in that order is returned as it is), so the agreement
    tables do not depend on the row order of the label files: the files' order is the order of
    the resampling units, and the judgements' order the order of the sums.

    >>> lab = pd.DataFrame({"FileName": ["b.wav", "a.wav"], "EmoClass": ["N", "A"]})
    >>> det = pd.DataFrame({"FileName": ["b.wav", "a.wav", "a.wav"], "EmoClass": ["N", "S", "A"],
    ...                     "EmoAct": [4.0, 3.0, 5.0], "EmoVal": [4.0, 2.0, 3.0], "EmoDom": [4.0, 3.0, 5.0]})
    >>> lab2, det2 = canonical_order(lab, det)
    >>> lab2["FileName"].tolist(), det2["EmoClass"].tolist()
    (['a.wav', 'b.wav'], ['A', 'S', 'N'])
    """
    def reordered(frame, keys):
        order = np.lexsort(keys[::-1])  # the first key sorts first
        if (order == np.arange(len(order))).all():
            return frame
        out = frame.take(order).reset_index(drop=True)
        out.attrs = dict(frame.attrs)
        return out

    def codes(values):
        return pd.factorize(pd.Series(values).astype(object).where(pd.notna(values), ""), sort=True)[0]

    labels = reordered(labels, [codes(labels["FileName"].to_numpy())])
    if detailed is not None:
        keys = [codes(detailed["FileName"].to_numpy()), codes(detailed["EmoClass"].to_numpy())]
        keys += [detailed[a].to_numpy(np.float64) for a in ATTRIBUTES if a in detailed.columns]
        detailed = reordered(detailed, keys)
    return labels, detailed


def agreement_tables(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None, labels: pd.DataFrame,
                     detailed: pd.DataFrame | None, resampling=None, vocabulary: Vocabulary | None = None,
                     **legacy) -> dict[str, pd.DataFrame]:
    """``annotator_agreement`` (per file), ``annotator_agreement_bins`` (by agreement bin, both
    tasks), ``annotator_agreement_soft`` and ``human_ceiling``; ``{}`` when ``detailed`` is
    None (the caller notes that ``labels_detailed.csv`` is absent) or the data's vocabulary
    (``vocabulary``, default the frames') is not MSP-Podcast's: the per-annotator labels are
    MSP-Podcast's ``labels_detailed.csv`` (:func:`ser_diag.analysis.beyond.beyond_tables` says so)."""
    if vocabulary is None:
        vocabulary = next((vocabulary_of(m) for m in (categorical, attributes) if m is not None), MSP_PODCAST)
    if detailed is None or vocabulary != MSP_PODCAST:
        return {}
    labels, detailed = canonical_order(labels, detailed)
    agreement = file_agreement(detailed, labels)
    tables = {"annotator_agreement": agreement}
    parts = [metrics_by_agreement(m, agreement, resampling=resampling, **legacy)
             for m in (categorical, attributes) if m is not None]
    if parts:
        tables["annotator_agreement_bins"] = pd.concat(parts, ignore_index=True)
    if categorical is not None:
        tables["annotator_agreement_soft"] = soft_label_scores(categorical, detailed, resampling=resampling,
                                                                      **legacy)
    tables["human_ceiling"] = human_ceiling(detailed, labels, resampling=resampling, **legacy)
    return tables
