"""Fusion of challenge systems (paper Figure 4): rank systems on a selection part, fuse the top
K for K = 1..N and score the fusion on the remaining files, plus pairwise disagreement and a
cross-validated stacking meta-model.

Fusion rules
------------
* categorical labels: plurality vote (:func:`plurality_vote`). Tie rule: among the classes
  with the most votes, the winner is the class chosen by the best-ranked system that voted
  for one of them. So K = 1 returns the single system, K = 2 returns the better system
  whenever the two disagree, and K systems that all disagree return the best one. Ties never
  go to the alphabet or the class order.
* categorical probabilities (when every fused system gave ``P_A..P_N``): the class with the
  highest mean probability (:func:`probability_average`); exact ties go to the class the
  best-ranked system gives the highest probability among the tied ones.
* attributes: mean of the systems' predictions.

Ranking and scoring parts (:func:`split_files`): ``selection="half"`` draws a seeded random
half of the files (the union over both tasks, so a file is in the same part for both) for
ranking and scores on the other half; ``selection=<split name>`` ranks on that ``Split_Set``
and scores on the rest; a list of FileNames ranks on those files. Ranking on the files that
are scored would flatter the top-K curve, hence the separation.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from ser_diag import metrics, resampling
from ser_diag import resampling as resampling_  # the module, where a parameter is named resampling
from ser_diag.analysis.bias import cluster_ids, system_frames, task_of
from ser_diag.evaluation import aligned, class_codes, vocabulary_of
from ser_diag.schema import (
    ATTRIBUTES,
    CLASS_CODES,
    PROB_COLUMNS,
    SPLITS,
    TASK_ATTRIBUTES,
    TASK_CATEGORICAL,
)
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = [
    "StackingResult",
    "TASK_SCORES",
    "default_baseline",
    "fuse",
    "pairwise_disagreement",
    "plurality_vote",
    "probability_average",
    "rank_systems",
    "split_files",
    "stacking",
    "topk_fusion_curve",
]

#: The leaderboard score used to rank the systems of each task.
TASK_SCORES = {TASK_CATEGORICAL: "macro_f1", TASK_ATTRIBUTES: "ccc_mean"}
#: Fused systems scored together in the top-K curve (bounds the rows held at once).
FUSED_BLOCK = 8
#: Metrics on the curve by default (paper Figure 4: F1, arousal, valence, dominance);
#: :func:`curve_metrics_of` for any vocabulary.
CURVE_METRICS = {TASK_CATEGORICAL: ("macro_f1",),
                 TASK_ATTRIBUTES: tuple(f"ccc_{a}" for a in ATTRIBUTES)}


def curve_metrics_of(vocabulary: Vocabulary = MSP_PODCAST) -> dict[str, tuple[str, ...]]:
    """:data:`CURVE_METRICS` of a vocabulary: macro-F1; the CCC of each of its attributes."""
    return {TASK_CATEGORICAL: ("macro_f1",),
            TASK_ATTRIBUTES: tuple(f"ccc_{a}" for a in vocabulary.attribute_names)}


# --------------------------------------------------------------------------- fusion rules

def plurality_vote(predictions, labels: Sequence[str] = CLASS_CODES) -> np.ndarray:
    """Plurality vote over the columns of ``predictions`` (shape ``(n, K)``, class codes,
    columns ordered best-ranked system first). Ties go to the best-ranked system among those
    voting for a tied class.

    >>> plurality_vote([["A", "S", "S"],    # S has two votes
    ...                 ["A", "S", "H"],    # three-way tie: the best-ranked system's A
    ...                 ["N", "A", "A"]]).tolist()   # A wins by count against the best system
    ['S', 'A', 'A']
    >>> plurality_vote([["S", "H", "S", "H"]]).tolist()   # S and H tied: S, voted by system 1
    ['S']
    >>> plurality_vote([["N", "H", "S", "H", "S"]]).tolist()   # H, S tied: system 2 votes H
    ['H']
    >>> plurality_vote([["C", "N"], ["F", "F"]]).tolist()   # K = 2: disagreement -> the better
    ['C', 'F']
    >>> plurality_vote([["D"], ["A"]]).tolist()             # K = 1: the system itself
    ['D', 'A']
    """
    rows = [list(r) for r in predictions] if not isinstance(predictions, np.ndarray) else predictions
    codes = np.asarray(rows, dtype=str)
    if codes.ndim != 2 or codes.shape[1] == 0:
        raise ValueError(f"predictions must have shape (n, K) with K >= 1, got {codes.shape}")
    idx = metrics.label_indices(codes, labels).reshape(codes.shape)
    n = idx.shape[0]
    counts = np.zeros((n, len(labels)), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(n), idx.shape[1]), idx.ravel()), 1)
    votes_for_choice = np.take_along_axis(counts, idx, axis=1)          # (n, K)
    first_top = np.argmax(votes_for_choice == votes_for_choice.max(axis=1, keepdims=True), axis=1)
    return np.asarray(labels)[idx[np.arange(n), first_top]]


def probability_average(probabilities, labels: Sequence[str] = CLASS_CODES) -> tuple[np.ndarray, np.ndarray]:
    """Average the systems' class probabilities (shape ``(n, K, C)``, systems best-ranked
    first) and return ``(codes (n,), mean probabilities (n, C))``. Exact ties in the mean go to
    the tied class the best-ranked system rates highest (then the next system, ...).

    >>> p = np.array([[[0.6, 0.4], [0.2, 0.8]],     # mean 0.4 vs 0.6 -> S
    ...               [[0.3, 0.7], [0.7, 0.3]]])    # tie 0.5/0.5 -> system 1 prefers S
    >>> probability_average(p, labels=("A", "S"))[0].tolist()
    ['S', 'S']
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != len(labels):
        raise ValueError(f"probabilities must have shape (n, K, {len(labels)}), got {p.shape}")
    mean = p.mean(axis=1)
    candidates = mean >= mean.max(axis=1, keepdims=True) - 1e-12
    for k in range(p.shape[1]):
        rated = np.where(candidates, p[:, k, :], -np.inf)
        candidates &= rated >= rated.max(axis=1, keepdims=True)
    return np.asarray(labels)[np.argmax(candidates, axis=1)], mean


def _has_probabilities(frame: pd.DataFrame, columns: Sequence[str] = PROB_COLUMNS) -> bool:
    return all(c in frame for c in columns) and bool(frame[list(columns)].notna().all(axis=None))


def fuse(merged: pd.DataFrame, systems: Sequence[str], method: str | None = None,
         name: str | None = None) -> pd.DataFrame:
    """Fuse ``systems`` (best-ranked first) of one task into a merged-layout frame holding one
    system ``name`` (default ``"fusion(<systems>)"``).

    ``method``: ``"plurality"`` (categorical default), ``"prob_average"`` (categorical, needs
    ``P_*`` for every fused system; the fused frame carries the mean probabilities) or
    ``"mean"`` (attributes).
    """
    task = task_of(merged)
    voc = vocabulary_of(merged)
    prob_columns = list(voc.prob_columns)
    frames = system_frames(merged)
    missing = [s for s in systems if s not in frames]
    if missing or not systems:
        raise ValueError(f"systems {missing or list(systems)} not in the merged frame ({list(frames)})")
    chosen = [frames[s] for s in systems]
    files = chosen[0]["FileName"].to_numpy(str)
    for s, f in zip(systems, chosen):
        if not np.array_equal(f["FileName"].to_numpy(str), files):
            raise ValueError(f"system {s!r} is not scored on the same files as {systems[0]!r}")
    method = method or ("plurality" if task == TASK_CATEGORICAL else "mean")
    base = chosen[0].copy()
    base["system"] = name or f"fusion({', '.join(systems)})"
    if task == TASK_CATEGORICAL:
        base = base.drop(columns=[c for c in prob_columns if c in base])
        if method == "plurality":
            base["EmoClass_pred"] = plurality_vote(np.column_stack(
                [f["EmoClass_pred"].to_numpy(str) for f in chosen]), voc.classes)
        elif method == "prob_average":
            lacking = [s for s, f in zip(systems, chosen) if not _has_probabilities(f, prob_columns)]
            if lacking:
                raise ValueError(f"prob_average needs {prob_columns[0]}..{prob_columns[-1]} from every system; "
                                 f"missing for {lacking}")
            codes, mean = probability_average(np.stack(
                [f[prob_columns].to_numpy(np.float64) for f in chosen], axis=1), voc.classes)
            base["EmoClass_pred"] = codes
            base[prob_columns] = mean
        else:
            raise ValueError(f"categorical fusion method must be 'plurality' or 'prob_average', not {method!r}")
    else:
        if method != "mean":
            raise ValueError(f"attribute fusion method must be 'mean', not {method!r}")
        for a in voc.attribute_names:
            base[f"{a}_pred"] = np.mean([f[f"{a}_pred"].to_numpy(np.float64) for f in chosen], axis=0)
    base.attrs = dict(merged.attrs)
    return base


# --------------------------------------------------------------------------- ranking

def rank_systems(merged: pd.DataFrame, metric: str | None = None,
                 selection_files=None, ddof: int = 0) -> pd.DataFrame:
    """Rank the systems of one task by ``metric`` (default: macro-F1 / mean CCC) on the files
    in ``selection_files`` (default: all). Higher is better; equal scores are ordered by
    system name so the ranking is deterministic. Returns ``rank, system, metric, estimate, n``
    (rank 1 = best).
    """
    task = task_of(merged)
    metric = metric or TASK_SCORES[task]
    # the selection part's rows by position: no copy of them (0.6 GB at 400k files x 20 systems)
    scores = resampling.bootstrap_metrics(merged, n_boot=0, ddof=ddof, files=selection_files)
    if scores.empty:
        raise ValueError("no file of the selection part is in the merged frame")
    scores = scores[scores["metric"] == metric]
    if scores.empty:
        raise ValueError(f"unknown metric {metric!r} for the {task} task")
    ranked = scores.sort_values(["estimate", "system"], ascending=[False, True], kind="stable",
                                na_position="last")
    return pd.DataFrame({"rank": np.arange(1, len(ranked) + 1), "system": ranked["system"].to_numpy(),
                         "metric": metric, "estimate": ranked["estimate"].to_numpy(),
                         "n": ranked["n"].to_numpy()})


def split_files(files, selection="half", seed: int = 0, split_of: pd.Series | None = None,
                speakers=None, splits: Sequence[str] = SPLITS) -> tuple[np.ndarray, np.ndarray]:
    """``(selection_files, scoring_files)`` from the FileNames ``files``.

    ``"half"``: a seeded random half (floor(n/2) files) for selection, the rest for scoring;
    with ``speakers`` (the files' ``SpkrID``, aligned with ``files``) a seeded random half of
    the speakers instead, so no speaker is in both parts (files of unknown speaker are
    speakers of their own);
    a ``Split_Set`` name (one of ``splits``, the vocabulary's split names, default
    MSP-Podcast's; needs ``split_of``, a Series FileName -> split): that split for
    selection; a list of FileNames: those files for selection. Both parts must be non-empty.

    >>> sel, score = split_files([f"f{i}" for i in range(5)], seed=0)
    >>> len(sel), len(score), sorted(set(sel) | set(score)) == [f"f{i}" for i in range(5)]
    (2, 3, True)
    """
    raw = np.asarray(files, dtype=str)
    files, first = np.unique(raw, return_index=True)
    if isinstance(selection, str) and selection == "half" and speakers is not None:
        units = resampling.cluster_ids(pd.Series(pd.array(speakers)).iloc[first].reset_index(drop=True))
        n_units = int(units.max()) + 1 if units.size else 0
        order = np.random.default_rng(seed).permutation(n_units)
        chosen = np.isin(units, order[: n_units // 2])
    elif isinstance(selection, str) and selection == "half":
        order = np.random.default_rng(seed).permutation(files.size)
        chosen = np.zeros(files.size, bool)
        chosen[order[: files.size // 2]] = True
    elif isinstance(selection, str) and selection in splits:
        if split_of is None:
            raise ValueError("selecting by split needs the files' Split_Set")
        chosen = split_of.reindex(files).to_numpy(object) == selection
    elif isinstance(selection, str):
        raise ValueError(f"selection must be 'half', a split name {tuple(splits)} or a list of FileNames")
    else:
        chosen = np.isin(files, np.asarray(list(selection), dtype=str))
    if not chosen.any() or chosen.all():
        raise ValueError(f"selection {selection!r} leaves an empty selection or scoring part "
                         f"({int(chosen.sum())} of {files.size} files selected)")
    return files[chosen], files[~chosen]


# --------------------------------------------------------------------------- top-K curve

def default_baseline(systems) -> str | None:
    """The system called baseline when none is named: the first whose name contains
    "baseline" (case-insensitive), else None (no baseline; never the worst system).

    >>> default_baseline(["sys02_mid", "sys01_baseline"]), default_baseline(["a", "b"])
    ('sys01_baseline', None)
    """
    return next((str(s) for s in systems if "baseline" in str(s).lower()), None)


def _running_fusions(frames: dict, order: list[str], task: str, methods: list[str], rows=None,
                     vocabulary: Vocabulary = MSP_PODCAST):
    """Yield ``(key, (k, systems, method), prediction)`` for the top-K fusions K = 1..N in the
    order of :func:`fuse`'s callers, built incrementally: one pass over the systems keeps vote
    counts, the rank of each class's first vote and probability / attribute sums, so the
    fusions of K = 1..N cost O(N n), not O(N^2 n). The same predictions as :func:`fuse`:
    plurality ties go to the tied class voted first in rank order (what
    :func:`plurality_vote` picks), means are the running sums divided by K (numpy's mean adds
    the systems in the same order), probability ties are broken as in
    :func:`probability_average` (the earlier systems' P_* are read again for the tied rows
    only, so no system's probabilities are kept). ``rows``: the row positions (the same in
    every system's frame) to fuse, default all; ``prediction``: class indices (categorical)
    or ``(n, A)``; classes, ``P_<code>`` columns and attributes of ``vocabulary``."""
    rows = np.arange(len(frames[order[0]])) if rows is None else np.asarray(rows)
    prob_columns = vocabulary.prob_columns
    n = len(rows)

    def values(name, columns, at=None):          # (len(at), columns) at positions of `rows`
        frame = frames[name]
        picked = rows if at is None else rows[at]
        return np.column_stack([frame[c].to_numpy(np.float64)[picked] for c in columns])

    if task == TASK_CATEGORICAL:
        k_classes = len(vocabulary.classes)
        counts = np.zeros((n, k_classes), dtype=np.int64)
        first_vote = np.full((n, k_classes), len(order), dtype=np.int64)
        prob_sum, with_p, positions = None, [], np.arange(n)
        with_probs = "prob_average" in methods
        for k, name in enumerate(order):
            code = class_codes(frames[name], "EmoClass_pred", rows, vocabulary.classes)
            counts[positions, code] += 1
            first_vote[positions, code] = np.minimum(first_vote[positions, code], k)
            top = counts == counts.max(axis=1, keepdims=True)
            vote = np.argmin(np.where(top, first_vote, len(order)), axis=1)
            described = (k + 1, " + ".join(order[:k + 1]))
            yield f"plurality|{k + 1}", described + ("plurality",), vote
            p = values(name, prob_columns) if with_probs and all(c in frames[name] for c in prob_columns) else None
            if p is not None and not np.isnan(p).any():
                with_p.append(name)
                prob_sum = p if prob_sum is None else prob_sum + p
                del p
                mean = prob_sum / (k + 1)
                candidates = mean >= mean.max(axis=1, keepdims=True) - 1e-12
                tied = np.flatnonzero(candidates.sum(axis=1) > 1)    # only these need the systems' order
                for system in with_p:
                    if not tied.size:
                        break
                    rated = np.where(candidates[tied], values(system, prob_columns, tied), -np.inf)
                    candidates[tied] &= rated >= rated.max(axis=1, keepdims=True)
                    tied = tied[candidates[tied].sum(axis=1) > 1]
                yield f"prob_average|{k + 1}", described + ("prob_average",), np.argmax(candidates, axis=1)
            else:
                with_probs = False                       # every larger K holds a system without P_*
    else:
        columns = [f"{a}_pred" for a in vocabulary.attribute_names]
        total = None
        for k, name in enumerate(order):
            y = values(name, columns)
            total = y if total is None else total + y
            yield f"mean|{k + 1}", (k + 1, " + ".join(order[:k + 1]), "mean"), total / (k + 1)


def _task_curve(merged, task, selection_files, scoring_files, metrics_, baseline, settings):
    ddof = settings.ddof
    ranking = rank_systems(merged, TASK_SCORES[task], selection_files, ddof=ddof)
    order = ranking["system"].tolist()
    if isinstance(baseline, dict):
        baseline = baseline.get(task)
    base_name = default_baseline(order) if baseline is None else baseline
    if base_name is not None and base_name not in order:
        raise ValueError(f"baseline {base_name!r} is not a {task} system ({order})")
    # every system's rows of the whole frame (slices of it), and the positions of the scoring
    # files in them: no copy of the scoring part's rows (0.6 GB at 400k files x 20 systems)
    frames = system_frames(merged)
    first = frames[order[0]]
    rows = np.flatnonzero(first["FileName"].isin(set(scoring_files)).to_numpy())
    files, at = merged.file_code, merged.positions
    first_files = files[at[order[0]][rows]]
    for name in order[1:]:
        if len(frames[name]) != len(first) or not np.array_equal(files[at[name][rows]], first_files):
            raise ValueError(f"system {name!r} is not scored on the same files as {order[0]!r}")
    methods = ["plurality", "prob_average"] if task == TASK_CATEGORICAL else ["mean"]
    groups, unit = settings.groups(first, rows)
    voc = merged.vocabulary
    attributes = list(voc.attribute_names)
    if task == TASK_CATEGORICAL:
        truth = class_codes(first, "EmoClass_true", rows, voc.classes)
        make_scorer = lambda preds: resampling._CategoricalScorer(truth, np.stack(preds), voc.classes)  # noqa: E731
        baseline_prediction = (class_codes(frames[base_name], "EmoClass_pred", rows, voc.classes)
                               if base_name is not None else None)
    else:
        # C order, as bootstrap_metrics' row selection gives: the truth's mean (the design's shift)
        # then adds in the same order
        truth = first[[f"{a}_true" for a in attributes]].to_numpy(np.float64)[rows]
        make_scorer = lambda preds: resampling._AttributeScorer(truth, np.stack(preds), ddof, attributes)  # noqa: E731
        baseline_prediction = (frames[base_name][[f"{a}_pred" for a in attributes]].to_numpy(np.float64)[rows]
                               if base_name is not None else None)
    fusions = _running_fusions(frames, order, task, methods, rows, voc)
    if base_name is not None:
        fusions = itertools.chain(fusions, [("baseline|", (order.index(base_name) + 1, base_name, "baseline"),
                                             baseline_prediction)])
    # scored FUSED_BLOCK fused systems at a time on the same files and resamples (one scorer per
    # block, as bootstrap_metrics on a frame of them would): no frame of fused rows is built
    parts, described, batch = [], {}, []
    for item in itertools.chain(fusions, [None]):
        if item is not None:
            key, about, prediction = item
            described[key] = about
            batch.append((key, prediction))
        if batch and (item is None or len(batch) == FUSED_BLOCK):
            keys, preds = zip(*batch)
            part = resampling.scorer_metrics(make_scorer(list(preds)), keys, groups, unit, settings)
            parts.append(part[part["metric"].isin(metrics_)])
            batch = []
    scores = pd.concat(parts, ignore_index=True)
    k, systems, method = zip(*(described[s] for s in scores["system"]))
    return scores.assign(task=task, k=k, systems=systems, method=method), ranking


def topk_fusion_curve(categorical: pd.DataFrame | None = None, attributes: pd.DataFrame | None = None,
                      selection="half", resampling: resampling_.Resampling | None = None,
                      baseline: str | dict | None = None,
                      curve_metrics: dict[str, Sequence[str]] | None = None, **legacy) -> pd.DataFrame:
    """Score of the top-K fusion for K = 1..N on the scoring part (paper Figure 4).

    Systems are ranked by the task score (macro-F1, mean CCC) on the selection part (see
    :func:`split_files`; the seed of ``resampling`` draws the half and the
    bootstrap; the half is drawn over speakers when the resolved unit is speaker, so no
    speaker is in both parts). For every K the top K are fused by plurality vote and, when
    all K gave probabilities, by probability averaging (categorical), or by the mean
    (attributes); intervals are paired bootstrap intervals over the scoring part's units
    (:class:`~ser_diag.resampling.Resampling`, default speakers when known; older keywords
    ``n_boot, level, by_speaker, seed, ddof`` override it; the resolved unit is in ``unit``).
    The baseline (a named system, or by default the system whose name contains "baseline",
    :func:`default_baseline`; none when no name does) is scored on the same files as rows
    with ``method="baseline"`` and ``k`` = its rank (``baseline`` may map task -> name);
    ``.attrs["baseline"]`` maps each task
    to it (None: no baseline system).

    ``curve_metrics`` maps a task to the metrics to report (default: ``macro_f1``; CCC of
    arousal, valence, dominance).

    Returns ``task, metric, k, systems, method, estimate, ci_low, ci_high, level, unit,
    n_boot, n``; ``.attrs["ranking"]`` holds the rankings (tidy) and ``.attrs["n_selection"]``
    the size of the selection part.
    """
    tasks = {t: aligned(m) for t, m in ((TASK_CATEGORICAL, categorical), (TASK_ATTRIBUTES, attributes))
             if m is not None}
    if not tasks:
        raise ValueError("give categorical and/or attributes merged frames")
    settings = resampling_.Resampling.of(resampling, **legacy)
    voc = next(iter(tasks.values())).vocabulary
    wanted = dict(curve_metrics_of(voc), **(curve_metrics or {}))
    columns = ["FileName", "Split_Set"] + (["SpkrID"] if all("SpkrID" in m for m in tasks.values()) else [])
    # each file's first row of each task (not every system's rows: 0.7 GB at 400k files x 20 systems)
    everything = pd.concat([m.frame.iloc[m.first_rows][columns] for m in tasks.values()]) \
        .drop_duplicates("FileName")
    speakers = everything["SpkrID"] if "SpkrID" in everything else None
    by_speaker = settings.unit_for(speakers) == "speaker"
    selection_files, scoring_files = split_files(
        everything["FileName"], selection, settings.seed,
        split_of=everything.set_index("FileName")["Split_Set"],
        speakers=speakers.to_numpy(object) if by_speaker else None, splits=voc.splits)
    curves, rankings, baselines = [], [], {}
    for task, merged in tasks.items():
        if task_of(merged) != task:
            raise ValueError(f"the {task} argument holds a {task_of(merged)} merged frame")
        curve, ranking = _task_curve(merged, task, selection_files, scoring_files, wanted[task],
                                     baseline, settings)
        baselines[task] = next(iter(curve.loc[curve["method"] == "baseline", "systems"]), None)
        curves.append(curve)
        rankings.append(ranking.assign(task=task))
    out = pd.concat(curves, ignore_index=True)[
        ["task", "metric", "k", "systems", "method", "estimate", "ci_low", "ci_high", "level",
         "unit", "n_boot", "n"]]
    out = out.sort_values(["task", "metric", "method", "k"], kind="stable").reset_index(drop=True)
    out.attrs["ranking"] = pd.concat(rankings, ignore_index=True)
    out.attrs["n_selection"] = int(len(selection_files))
    out.attrs["baseline"] = baselines
    out.attrs["split_unit"] = "speaker" if by_speaker else "utterance"
    return out


# --------------------------------------------------------------------------- disagreement

def _pearson_matrix(values: np.ndarray) -> np.ndarray:
    """Pearson correlation of every pair of rows of ``(S, n)`` values (one product); ``nan``
    where either row is constant (as :func:`ser_diag.metrics.pearson`)."""
    if values.shape[1] == 0:
        return np.full((len(values), len(values)), np.nan)
    centred = values - values.mean(axis=1, keepdims=True)
    cov = centred @ centred.T
    sd = np.sqrt(np.diagonal(cov))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((sd[:, None] > 0) & (sd[None, :] > 0), cov / (sd[:, None] * sd[None, :]), np.nan)


def pairwise_disagreement(merged: pd.DataFrame) -> pd.DataFrame:
    """How differently every pair of systems predicts the same files.

    Categorical: ``disagreement`` = share of files where the two predicted classes differ.
    Attributes: ``pearson_<attr>`` = Pearson correlation of the two systems' predictions.
    Returns ``task, metric, system_a, system_b, value`` for all ordered pairs (diagonal
    included), so ``pivot`` gives the full matrix.
    """
    data = aligned(merged)
    task = data.task
    frames = system_frames(data)
    names = list(frames)
    file_codes, at = data.file_code, data.positions
    files = file_codes[at[names[0]]]
    for b in names[1:]:  # same files as the first system <=> every pair has the same files
        if not np.array_equal(file_codes[at[b]], files):
            raise ValueError(f"systems {names[0]!r} and {b!r} are not scored on the same files")
    if task == TASK_CATEGORICAL:  # integer codes of every system's predicted classes, compared at once
        codes = np.stack([class_codes(frames[s], "EmoClass_pred", classes=data.classes) for s in names])
        # agreeing files of every pair at once: sum over classes of one-hot products (counts are
        # exact in float32 below 2^24 files; the same shares as comparing each pair)
        same = np.zeros((len(names), len(names)))
        for c in range(int(codes.max()) + 1 if codes.size else 0):
            onehot = (codes == c).astype(np.float32)
            same += onehot @ onehot.T
        with np.errstate(invalid="ignore", divide="ignore"):
            matrices = {"disagreement": 1.0 - same / files.size if files.size
                        else np.full((len(names), len(names)), np.nan)}
    else:
        matrices = {f"pearson_{attr}": _pearson_matrix(np.stack([frames[s][f"{attr}_pred"].to_numpy(np.float64)
                                                                 for s in names]))
                    for attr in data.attribute_names}
    rows = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            rows += [(task, metric, a, b, float(matrix[i, j])) for metric, matrix in matrices.items()]
    return pd.DataFrame(rows, columns=["task", "metric", "system_a", "system_b", "value"])


# --------------------------------------------------------------------------- stacking

@dataclasses.dataclass
class StackingResult:
    """Output of :func:`stacking`.

    ``predictions``: merged-layout frame of the stacked system (out-of-fold predictions, with
    ``P_*`` when the meta-model gives probabilities); ``scores``: :func:`bootstrap_metrics` of
    the stacked system and every input system on the same resamples; ``folds``: ``FileName,
    fold`` (the fold in which each file was scored; its model was fitted on the other folds);
    ``features``: ``"probabilities"`` or ``"onehot"``.
    """

    predictions: pd.DataFrame
    scores: pd.DataFrame
    folds: pd.DataFrame
    features: str


def _meta_model(model, seed: int, class_weight):
    if model == "random_forest":
        return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, class_weight=class_weight,
                                      random_state=seed, n_jobs=1)
    if model == "logistic":
        return LogisticRegression(max_iter=2000, class_weight=class_weight)
    if hasattr(model, "fit") and hasattr(model, "predict"):
        return model
    raise ValueError(f"model must be 'random_forest', 'logistic' or a scikit-learn classifier, not {model!r}")


def stacking(categorical: pd.DataFrame, n_splits: int = 5, seed: int = 0, model="random_forest",
             features: str = "auto", group_by_speaker: bool = False, class_weight="balanced",
             resampling: resampling_.Resampling | None = None,
             name: str = "stacking", **legacy) -> StackingResult:
    """Cross-validated stacking meta-model over the systems' outputs (like UNICAMP's 5-fold
    random forest on the logits of 12 models).

    Features per file: every system's ``P_A..P_N`` (``features="probabilities"``, the
    ``"auto"`` choice when all systems have them) or one-hot predicted classes (``"onehot"``).
    Files are split by :class:`~sklearn.model_selection.StratifiedKFold` on the true class
    (``shuffle``, ``random_state=seed``; :class:`StratifiedGroupKFold` on speakers with
    ``group_by_speaker``); each fold's files are predicted by a fresh clone of ``model`` fitted
    on the other folds only, so no file's stacked prediction comes from a model that saw it.
    ``model``: ``"random_forest"``, ``"logistic"`` or any scikit-learn classifier.
    """
    if task_of(categorical) != TASK_CATEGORICAL:
        raise ValueError("stacking needs the categorical merged frame")
    voc = vocabulary_of(categorical)
    classes, prob_columns = list(voc.classes), list(voc.prob_columns)
    frames = system_frames(categorical)
    names = list(frames)
    first = frames[names[0]]
    for s in names[1:]:
        if not np.array_equal(frames[s]["FileName"].to_numpy(str), first["FileName"].to_numpy(str)):
            raise ValueError(f"system {s!r} is not scored on the same files as {names[0]!r}")
    all_probs = all(_has_probabilities(f, prob_columns) for f in frames.values())
    if features == "auto":
        features = "probabilities" if all_probs else "onehot"
    if features == "probabilities":
        if not all_probs:
            raise ValueError(f"features='probabilities' needs {prob_columns[0]}..{prob_columns[-1]} from every system")
        x = np.hstack([f[prob_columns].to_numpy(np.float64) for f in frames.values()])
    elif features == "onehot":
        eye = np.eye(len(classes))
        x = np.hstack([eye[metrics.label_indices(f["EmoClass_pred"].to_numpy(str), classes)]
                       for f in frames.values()])
    else:
        raise ValueError(f"features must be 'auto', 'probabilities' or 'onehot', not {features!r}")
    y = first["EmoClass_true"].to_numpy(str)
    if group_by_speaker:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        splits = splitter.split(x, y, groups=cluster_ids(first["SpkrID"]))
    else:
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(x, y)
    template = _meta_model(model, seed, class_weight)
    pred = np.empty(len(y), dtype=object)
    proba = np.full((len(y), len(classes)), np.nan)
    fold = np.full(len(y), -1)
    for i, (train, test) in enumerate(splits):
        estimator = clone(template).fit(x[train], y[train])
        pred[test] = estimator.predict(x[test])
        if hasattr(estimator, "predict_proba"):
            columns = [classes.index(str(c)) for c in estimator.classes_]
            p = np.zeros((test.size, len(classes)))
            p[:, columns] = estimator.predict_proba(x[test])
            proba[test] = p
        fold[test] = i
    stacked = first.drop(columns=[c for c in prob_columns if c in first]).copy()
    stacked["system"] = name
    stacked["EmoClass_pred"] = pred.astype(str)
    if not np.isnan(proba).any():
        stacked[prob_columns] = proba
    stacked.attrs = dict(categorical.attrs)
    if voc != MSP_PODCAST:
        stacked.attrs["vocabulary"] = voc
    together = pd.concat([stacked] + [frames[s] for s in names], ignore_index=True)
    together.attrs = dict(stacked.attrs, task=TASK_CATEGORICAL)
    legacy.setdefault("seed", seed)
    scores = resampling_.bootstrap_metrics(together, resampling_.Resampling.of(resampling, **legacy))
    folds = pd.DataFrame({"FileName": first["FileName"].to_numpy(), "fold": fold})
    return StackingResult(predictions=stacked, scores=scores, folds=folds, features=features)


# --------------------------------------------------------------------------- two systems, per true class

def disagreement_by_true(merged: pd.DataFrame, system_a: str, system_b: str, task: str,
                         bins: str = "unit") -> pd.DataFrame:
    """Where two systems disagree, per true class (categorical) or per true bin of each
    attribute, and which one is right.

    Categorical: right = predicted class equals the consensus class. Attributes: truth and
    both predictions are put in the bins of :mod:`ser_diag.analysis.binned` (``bins``
    scheme); right = predicted bin equals the true bin. Per true class/bin:
    ``n = agree_right + agree_wrong + a_right + b_right + neither_right``, the last three
    splitting the ``disagree`` files. Columns: task, attribute, true, n, disagree,
    share_disagree, a_right, b_right, neither_right, agree_right, agree_wrong, system_a, system_b.
    """
    from ser_diag.analysis import binned, confusion

    voc = vocabulary_of(merged)
    rows_a = confusion.system_rows(merged, system_a).reset_index(drop=True)
    rows_b = confusion.system_rows(merged, system_b).reset_index(drop=True)
    if not np.array_equal(rows_a["FileName"].to_numpy(str), rows_b["FileName"].to_numpy(str)):
        raise ValueError(f"{system_a!r} and {system_b!r} are not scored on the same files")
    parts = []
    if task == TASK_CATEGORICAL:
        parts.append((None, list(voc.classes), rows_a["EmoClass_true"].to_numpy(str),
                      rows_a["EmoClass_pred"].to_numpy(str), rows_b["EmoClass_pred"].to_numpy(str)))
    else:
        for attr in binned.attributes_of(merged, vocabulary=voc):
            edges = binned.attribute_edges(merged, attr, bins, vocabulary=voc)
            labels = np.asarray(binned.bin_labels(edges, bins), dtype=object)
            parts.append((attr, list(labels),
                          labels[binned.assign_bins(rows_a[f"{attr}_true"].to_numpy(float), edges)],
                          labels[binned.assign_bins(rows_a[f"{attr}_pred"].to_numpy(float), edges)],
                          labels[binned.assign_bins(rows_b[f"{attr}_pred"].to_numpy(float), edges)]))
    records = []
    for attr, order, true, pred_a, pred_b in parts:
        for value in order:
            here = true == value
            if not here.any():
                continue
            t, a, b = true[here], pred_a[here], pred_b[here]
            agree, a_ok, b_ok = a == b, a == t, b == t
            records.append({
                "task": task, "attribute": attr, "true": value, "n": int(here.sum()),
                "disagree": int((~agree).sum()), "share_disagree": float((~agree).mean()),
                "a_right": int((~agree & a_ok).sum()), "b_right": int((~agree & b_ok).sum()),
                "neither_right": int((~agree & ~a_ok & ~b_ok).sum()),
                "agree_right": int((agree & a_ok).sum()), "agree_wrong": int((agree & ~a_ok).sum()),
                "system_a": system_a, "system_b": system_b,
            })
    return pd.DataFrame(records)
__all__ += ["disagreement_by_true"]
