"""Bias audit: every task metric by group (gender or any label column), the gap between two
groups with a speaker-aware confidence interval and a permutation p-value, per-class recall by
group, and the per-speaker metric distribution.

The gap follows the fairness score of Wagner et al. (2023, "Dawn of the transformer era in
speech emotion recognition"): ``gap = metric(group a) - metric(group b)``, by default
``CCC(female) - CCC(male)`` (negative: the system is worse for women).

:func:`metric_frame` gives fairlearn's :class:`~fairlearn.metrics.MetricFrame` fed with the
:mod:`ser_diag.metrics` functions (for ``.by_group``, ``.difference()`` ...); the tables here
compute the same point estimates from one vectorised statistic (MetricFrame's per-group Python
calls are too slow inside a bootstrap) and add what MetricFrame lacks:

* intervals that resample **speakers** (``by_speaker=True``): the speaker clusters are
  resampled once per bootstrap replicate and every group's metric is computed on the same
  replicate (weights ``W * mask_group``), so group metrics and their gap are paired;
* regression metrics by group: CCC, ``bias = mean(pred) - mean(true)`` and
  ``shrinkage = sd(pred) / sd(true)`` (< 1: regression to the mean) per attribute;
* a permutation test of the gap that shuffles the group labels **between speakers** (each
  speaker keeps all its utterances and the number of speakers per group is kept), because
  gender is a speaker attribute: shuffling utterances would break the speaker clustering and
  give too small p-values. If the grouping column is not constant within speakers the test
  falls back to shuffling utterances; the ``method`` column says which was used.

Rows whose group label is missing (e.g. ``Gender`` unknown) belong to no group; they are still
part of each resample, so they do not change the groups' results. A corpus whose labels hold no
group at all (no gender known) gets empty tables with one line in ``.attrs["notes"]``.

Classes and attributes are the data's vocabulary's (:func:`ser_diag.evaluation.vocabulary_of`;
MSP-Podcast's by default); speaker IDs keep their type (MSP-Podcast's ``Int64``, other corpora's
strings).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pandas as pd
import scipy.sparse
from fairlearn.metrics import MetricFrame

from ser_diag import metrics, resampling
from ser_diag import resampling as resampling_  # the module, where a parameter is named resampling
from ser_diag.analysis.grouped_sums import GroupedSums, GroupStatistic, stack_metrics, task_metric_names
from ser_diag.evaluation import aligned, frame_of, task_of, vocabulary_of
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = [
    "cluster_ids",
    "default_speaker_metric",
    "group_audit",
    "group_gaps",
    "group_metrics",
    "metric_frame",
    "resolve_groups",
    "per_class_recall_by_group",
    "speaker_metrics",
    "system_frames",
    "task_metric_names",
    "task_of",
    "worst_speakers",
]

# --------------------------------------------------------------------------- shared helpers

def system_frames(merged) -> dict[str, pd.DataFrame]:
    """One frame per system (order of first appearance), rows in the shared file order
    (:meth:`ser_diag.evaluation.TaskData.system_frames`).

    Systems whose predictions for the task are all missing are left out; a system with some
    predictions missing raises ``ValueError`` (paired analyses need every file predicted).
    """
    return aligned(merged).system_frames()


cluster_ids = resampling.cluster_ids
#: The older private names of the sums (now in :mod:`ser_diag.analysis.grouped_sums`).
_GroupedSums, _GroupStatistic, _stack = GroupedSums, GroupStatistic, stack_metrics


#: Columns of :func:`group_metrics` and :func:`group_gaps` (also when they are empty).
GROUP_METRIC_COLUMNS = ["system", "by", "group", "metric", "estimate", "ci_low", "ci_high", "level", "unit",
                        "n_boot", "n", "n_speakers", "n_excluded"]
GROUP_GAP_COLUMNS = ["system", "by", "group_a", "group_b", "metric", "estimate_a", "estimate_b", "gap", "ci_low",
                     "ci_high", "level", "unit", "n_boot", "p_value", "method", "n_permutations", "n_excluded",
                     "n_conflicting_speakers"]


def _speaker_ids(values: pd.Series, like: pd.Series) -> pd.Series:
    """Speaker IDs as the corpus has them (``like``: its ``SpkrID`` column): numbers as
    ``Int64`` (MSP-Podcast), anything else (other corpora's strings) in the column's own type."""
    if like.dtype.kind in "iuf" or str(like.dtype) == "Int64":
        return values.astype("Int64")
    return values.astype(like.dtype)


def _group_values(merged: pd.DataFrame, by: str) -> pd.Series:
    if by not in merged:
        raise ValueError(f"column {by!r} not in the merged frame; label columns: "
                         f"{[c for c in merged.columns if not c.endswith(('_true', '_pred'))]}")
    return merged[by]


def _file_blocks(frames: dict[str, pd.DataFrame]) -> list[list[str]]:
    """Systems grouped by identical file order (a merged frame gives one block)."""
    blocks: list[tuple[np.ndarray, list[str]]] = []
    for name, frame in frames.items():
        files = frame["FileName"].to_numpy(str)
        for block_files, names in blocks:
            if np.array_equal(block_files, files):
                names.append(name)
                break
        else:
            blocks.append((files, [name]))
    return [names for _, names in blocks]


# --------------------------------------------------------------------------- group metrics

def _shrinkage(y_true, y_pred) -> float:
    d = metrics.lin_decomposition(y_true, y_pred)
    return d["sd_pred"] / d["sd_true"] if d["sd_true"] > 0 else float("nan")


def _metric_frame(frame: pd.DataFrame, task: str, by: str, ddof: int,
                  vocabulary: Vocabulary = MSP_PODCAST) -> MetricFrame:
    labels = resolve_groups(frame, by).labels
    frame = frame.assign(**{by: labels.to_numpy(object)})[labels.notna().to_numpy()]
    classes, attributes = vocabulary.classes, vocabulary.attribute_names
    if task == TASK_CATEGORICAL:
        y_true, y_pred = frame["EmoClass_true"].to_numpy(str), frame["EmoClass_pred"].to_numpy(str)
        funcs = {"macro_f1": lambda t, p: metrics.macro_f1(t, p, classes), "accuracy": metrics.accuracy,
                 "uar": lambda t, p: metrics.unweighted_average_recall(t, p, classes)}
        for code in classes:
            funcs[f"recall_{code}"] = (lambda t, p, c=code:
                                       float(metrics.per_class_scores(t, p, classes).loc[c, "recall"]))
    else:
        y_true = frame[[f"{a}_true" for a in attributes]].to_numpy(np.float64)
        y_pred = frame[[f"{a}_pred" for a in attributes]].to_numpy(np.float64)
        funcs = {f"ccc_{a}": (lambda t, p, j=j: metrics.ccc(t[:, j], p[:, j], ddof=ddof))
                 for j, a in enumerate(attributes)}
        funcs["ccc_mean"] = lambda t, p: float(np.mean([metrics.ccc(t[:, j], p[:, j], ddof=ddof)
                                                        for j in range(len(attributes))]))
        for j, a in enumerate(attributes):
            funcs[f"bias_{a}"] = lambda t, p, j=j: float(p[:, j].mean() - t[:, j].mean())
            funcs[f"shrinkage_{a}"] = lambda t, p, j=j: _shrinkage(t[:, j], p[:, j])
    return MetricFrame(metrics=funcs, y_true=y_true, y_pred=y_pred,
                       sensitive_features=pd.Series(frame[by].astype(str).to_numpy(), name=by))


def metric_frame(merged: pd.DataFrame, system: str | None = None, by: str = "Gender",
                 ddof: int = 0) -> MetricFrame:
    """fairlearn :class:`~fairlearn.metrics.MetricFrame` of every task metric by ``by`` for one
    system (``system=None``: the only system), computed with the :mod:`ser_diag.metrics`
    functions; group labels become strings, rows with a missing label are dropped. Use it for
    fairlearn's own summaries (``.by_group``, ``.difference()``, ``.ratio()``); it has no
    speaker-level intervals.
    """
    frames = system_frames(merged)
    if system is None:
        if len(frames) != 1:
            raise ValueError(f"several systems in the frame, name one of {list(frames)}")
        system = next(iter(frames))
    if not resolve_groups(frames[system], by).labels.notna().any():
        raise ValueError(f"no {by} is known for any file of {system!r}: no MetricFrame by {by}")
    return _metric_frame(frames[system], task_of(merged), by, ddof, vocabulary_of(merged))


def _group_index(labels: pd.Series, groups: list) -> np.ndarray:
    """Position of each row's label in ``groups``; -1 for a missing label."""
    index = np.full(len(labels), -1, dtype=np.int64)
    for g, value in enumerate(groups):
        index[(labels == value).fillna(False).to_numpy(bool)] = g
    return index


#: A column is treated as a speaker attribute (like ``Gender``) when at most this share of
#: the labelled known speakers carry more than one of its values.
SPEAKER_ATTRIBUTE_CONFLICT_SHARE = 0.1


@dataclasses.dataclass
class GroupLabels:
    """Group labels of the rows after the missing-metadata rules of :func:`resolve_groups`.

    ``labels``: one label per row (``<NA>``: in no group); ``level``: ``"speaker"`` (the
    column is a speaker attribute: each known speaker has one label and the permutation test
    shuffles speakers) or ``"utterance"``; ``n_excluded``: rows in no group;
    ``conflicting``: IDs of the known speakers whose rows disagree (left out of every group).
    """

    labels: pd.Series
    level: str
    n_excluded: int
    conflicting: list


def resolve_groups(frame: pd.DataFrame, by: str) -> GroupLabels:
    """Group labels with missing metadata handled on purpose.

    * A missing label (``<NA>`` or the string ``"Unknown"``) is in no group; such rows are
      counted in ``n_excluded`` (they still take part in every resample, as the other files
      do, but enter neither group's metric nor the gap).
    * When ``by`` is a speaker attribute (constant within speakers up to
      :data:`SPEAKER_ATTRIBUTE_CONFLICT_SHARE` of conflicting speakers; gender is), a known
      speaker's label is taken from its non-missing rows and given to all its rows, so a
      speaker is wholly in one group or in none.
    * Rule for conflicts: a known speaker whose non-missing rows carry two or more labels is
      left out of both groups (its rows count in ``n_excluded``) and named in a
      ``UserWarning``; no majority is guessed.
    * Otherwise (``by`` varies within speakers, e.g. an utterance-level column) labels stay
      per row (``level="utterance"``). Rows of unknown speaker keep their own label.
    """
    raw = _group_values(frame, by)
    labels = raw.astype(object).where(raw.notna() & (raw.astype(str) != "Unknown"), None)
    labels = pd.Series(labels.to_numpy(object), index=frame.index)
    speakers = frame["SpkrID"] if "SpkrID" in frame.columns else pd.Series(pd.NA, index=frame.index)
    known = speakers.notna() & labels.notna()
    conflicting: list = []
    level = "utterance"
    if known.any():
        per_speaker = labels[known].astype(str).groupby(speakers[known]).nunique()
        bad = per_speaker.index[per_speaker.to_numpy() > 1]
        if len(bad) <= SPEAKER_ATTRIBUTE_CONFLICT_SHARE * len(per_speaker):
            level = "speaker"
            conflicting = [x.item() if hasattr(x, "item") else x for x in bad]
            value = labels[known].groupby(speakers[known]).first()
            value = value[~value.index.isin(bad)]
            fill = speakers.map(value)
            has_spk = speakers.notna().to_numpy()
            labels = pd.Series(np.where(has_spk, fill.to_numpy(object), labels.to_numpy(object)),
                               index=frame.index)
            labels = labels.where(pd.notna(labels), None)
            if conflicting:
                shown = ", ".join(map(str, conflicting[:10])) + (" ..." if len(conflicting) > 10 else "")
                warnings.warn(f"{len(conflicting)} speaker(s) have conflicting {by} labels and are left "
                              f"out of every {by} group: SpkrID {shown}", UserWarning, stacklevel=3)
    n_excluded = int(labels.isna().sum())
    return GroupLabels(labels, level, n_excluded, conflicting)


def _permutation_null(sums: GroupedSums, unit_ids, labels, a, b, n_permutations, seed,
                      batch=resampling.CHUNK_ROWS) -> np.ndarray:
    """Gap ``stat(a) - stat(b)`` of every system and metric, ``(n_permutations, S, M)``, under
    shuffles of the group labels among the units (speakers) of groups a and b.

    Each unit's label is the one its rows share (:func:`resolve_groups` makes it constant
    within a speaker); units whose label is neither a nor b stay out. Each shuffle is
    ``rng.permutation`` of the units' is-a flags (one generator seeded with ``seed``, so
    every system sees the same shuffles); group a's sums are the shuffled flags times the
    per-unit sums, group b's the rest of the a-or-b total.

    Returns ``(null, exact)``. When the ``C(U, n_a)`` ways of choosing group a's units are at
    most ``n_permutations`` (10 speakers, 5 + 5: 252), every arrangement is enumerated once
    instead (``exact``: the p-value is then ``#{|gap_perm| >= |gap|} / C(U, n_a)``, the exact
    permutation p-value, and ``null`` has ``C(U, n_a)`` rows).
    """
    unit_label = pd.Series(labels.to_numpy(object)).groupby(unit_ids).first()   # first non-missing
    values = unit_label.to_numpy(object)
    in_ab = np.array([x == a or x == b for x in values], dtype=bool)
    units = unit_label.index.to_numpy()[in_ab]
    is_a = np.array([x == a for x in values[in_ab]], dtype=bool)
    position = pd.Series(-1, index=unit_label.index.to_numpy())
    position[units] = np.arange(units.size)
    per_unit = sums.unit_sums(position.loc[unit_ids].to_numpy(), units.size)      # (U, C)
    total = np.asarray(per_unit.sum(axis=0), dtype=np.float64).ravel()
    arrangements = math.comb(units.size, int(is_a.sum()))
    exact = 0 < arrangements <= n_permutations
    if exact:
        chosen = np.array(list(itertools.combinations(range(units.size), int(is_a.sum()))), dtype=np.int64)
        every = np.zeros((arrangements, units.size), dtype=bool)
        every[np.arange(arrangements)[:, None], chosen] = True
        n_permutations = arrangements
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, n_permutations, batch):
        size = min(batch, n_permutations - start)
        shuffled = (every[start:start + size] if exact
                    else np.stack([rng.permutation(is_a) for _ in range(size)]))  # (P, U)
        sum_a = sums.product(shuffled, per_unit)
        values_ = stack_metrics(sums.finish(np.stack([sum_a, total - sum_a], axis=1)))   # (P, S, 2, M)
        out.append(values_[:, :, 0] - values_[:, :, 1])
    null = np.concatenate(out) if out else np.empty((0, sums.s, len(sums.names)))
    return null, exact


def _n_clusters(speakers: pd.Series) -> int:
    """Distinct speakers, the unknown ones counted once (``np.unique``'s count for MSP-Podcast's
    ``Int64``, also for string IDs, which ``np.unique`` cannot sort beside a missing one)."""
    return int(speakers.dropna().nunique()) + int(speakers.isna().any())


def _audit(merged: pd.DataFrame, by: str, pair: tuple[str, str] | None, settings: resampling.Resampling,
           n_permutations: int):
    """Group metrics and (``pair``) gaps of every system from one bootstrap of all systems and
    groups at once: ``(metrics_rows, gap_rows, notes)`` keyed by system; ``notes``: the
    lines of :func:`ser_diag.resampling.group_speakers_notes`."""
    n_boot, level, seed, ddof = settings.n_boot, settings.level, settings.seed, settings.ddof
    data = aligned(merged)
    task, voc = data.task, data.vocabulary
    names = task_metric_names(task, voc)
    frames = data.system_frames()
    metric_rows: dict[str, list] = {}
    gap_rows: dict[str, list] = {}
    notes: list[str] = []
    for block in _file_blocks(frames):
        first = frames[block[0]]
        resolved = resolve_groups(first, by)
        labels = resolved.labels
        groups = sorted(pd.Series(labels).dropna().unique().tolist(), key=str)
        if not groups:       # e.g. a corpus without gender: no breakdown, one stated line
            notes.append(f"{task}: no {by} is known for any file of {', '.join(block)}: "
                         f"the {by} breakdown is empty")
            continue
        if pair is not None:
            observed = set(labels.dropna().tolist())
            for g in pair:
                if g not in observed:
                    raise ValueError(f"group {g!r} not found in column {by!r} "
                                     f"(values: {sorted(map(str, observed))})")
        group = _group_index(labels, groups)
        sums = GroupedSums([frames[s] for s in block], task, ddof, voc)
        statistic = GroupStatistic(sums, group, len(groups))
        n = len(first)
        estimate = statistic(np.ones((1, n), dtype=np.float32))[0]                   # (S, G, M)
        clusters, unit = settings.groups(first)
        if n_boot > 0:
            scorer, per_cluster = resampling.cluster_scorer(statistic, clusters, n)
            dist = np.concatenate([scorer(w) for w in resampling._weight_chunks(
                n, n_boot, clusters, seed, dtype=sums.weight_dtype, reuse=True, clusters=per_cluster)])
        else:
            dist = np.empty((0,) + estimate.shape)
        low, high = resampling.percentile_interval(dist, level)
        masks = [group == g for g in range(len(groups))]
        sizes = [int(m.sum()) for m in masks]
        speakers = [int(first.loc[m, "SpkrID"].nunique()) if "SpkrID" in first.columns else 0 for m in masks]
        for i, system in enumerate(block):
            metric_rows[system] = [
                dict(system=system, by=by, group=value, metric=name, estimate=float(estimate[i, g, j]),
                     ci_low=float(low[i, g, j]), ci_high=float(high[i, g, j]), level=level, unit=unit,
                     n_boot=n_boot, n=sizes[g], n_speakers=speakers[g], n_excluded=resolved.n_excluded)
                for g, value in enumerate(groups) for j, name in enumerate(names)]
        if pair is None:
            if unit == "speaker" and n_boot > 0:
                notes += resampling.group_speakers_notes(f"{task} by {by}", clusters, dict(zip(groups, masks)),
                                                         level)
            continue
        ia, ib = groups.index(pair[0]), groups.index(pair[1])
        gap = estimate[:, ia] - estimate[:, ib]                                       # (S, M)
        gap_low, gap_high = resampling.percentile_interval(dist[:, :, ia] - dist[:, :, ib], level)
        if unit == "speaker" and n_boot > 0:     # the percentile gap interval is liberal over few clusters
            fewer = min(_n_clusters(clusters[masks[ia]]), _n_clusters(clusters[masks[ib]]))
            gap_low, gap_high = resampling.widen_interval(gap, gap_low, gap_high, fewer, level)
        has_speakers = "SpkrID" in first.columns and first["SpkrID"].notna().any()
        if resolved.level == "speaker" and has_speakers:
            unit_ids, method = cluster_ids(first["SpkrID"]), "speaker permutation"
        else:
            unit_ids, method = np.arange(n), "utterance permutation"
        null, exact = _permutation_null(sums, unit_ids, labels, pair[0], pair[1], n_permutations, seed)
        if exact:
            method = "exact " + method
        if unit == "speaker" and n_boot > 0:
            notes += resampling.group_speakers_notes(f"{task} by {by}", clusters,
                                                     {pair[0]: masks[ia], pair[1]: masks[ib]}, level,
                                                     method if n_permutations > 0 else None, len(null))
        for i, system in enumerate(block):
            rows = gap_rows[system] = []
            for j, name in enumerate(names):
                observed_gap = float(gap[i, j])
                rows.append(dict(system=system, by=by, group_a=pair[0], group_b=pair[1], metric=name,
                                 estimate_a=float(estimate[i, ia, j]), estimate_b=float(estimate[i, ib, j]),
                                 gap=observed_gap, ci_low=float(gap_low[i, j]), ci_high=float(gap_high[i, j]),
                                 level=level, unit=unit, n_boot=n_boot,
                                 p_value=resampling.permutation_p_value(null[:, i, j], observed_gap, exact),
                                 method=method, n_permutations=len(null) if exact else n_permutations,
                                 n_excluded=resolved.n_excluded,
                                 n_conflicting_speakers=len(resolved.conflicting)))
    order = list(frames)
    return ([r for s in order for r in metric_rows.get(s, [])], [r for s in order for r in gap_rows.get(s, [])],
            list(dict.fromkeys(notes)))



def group_metrics(merged: pd.DataFrame, by: str = "Gender", resampling: resampling_.Resampling | None = None,
                  **legacy) -> pd.DataFrame:
    """Every task metric per group of ``by`` (any label column) with bootstrap CIs.

    Categorical: ``macro_f1, accuracy, uar, recall_<code>``; attributes: ``ccc_<attr>,
    ccc_mean, bias_<attr>, shrinkage_<attr>``. Estimates and percentile CIs come from one
    bootstrap of every system and group at once (weights ``W * mask_group``; the estimates
    equal fairlearn's :func:`metric_frame` ``.by_group``), resampling the unit of
    ``resampling`` (:class:`~ser_diag.resampling.Resampling`; default speakers when known,
    unknown speakers as one-utterance clusters; older keywords ``n_boot, level, by_speaker,
    seed, ddof`` override it). Missing labels: :func:`resolve_groups`. All systems and groups
    share the resamples.

    Returns a tidy frame ``system, by, group, metric, estimate, ci_low, ci_high, level, unit,
    n_boot, n, n_speakers, n_excluded``.
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    rows, _, notes = _audit(merged, by, None, settings, 0)
    out = pd.DataFrame(rows, columns=GROUP_METRIC_COLUMNS)
    out.attrs["notes"] = notes
    return out


def per_class_recall_by_group(merged: pd.DataFrame, by: str = "Gender",
                              resampling: resampling_.Resampling | None = None,
                              group_table: pd.DataFrame | None = None, **legacy) -> pd.DataFrame:
    """Recall of each class per group with CIs (categorical task): ``system, by, group, class,
    recall, ci_low, ci_high, unit, support`` where ``support`` is the number of true items of
    the class in the group.

    The recalls are the ``recall_<code>`` rows of :func:`group_metrics`; pass its output for
    this ``merged``, ``by`` and resampling settings as ``group_table`` to reuse it instead of
    bootstrapping again.
    """
    if task_of(merged) != TASK_CATEGORICAL:
        raise ValueError("per-class recall needs the categorical task")
    table = group_table if group_table is not None else group_metrics(
        merged, by=by, resampling=resampling, **legacy)
    table = table[table["metric"].str.startswith("recall_")].copy()
    table["class"] = table["metric"].str.removeprefix("recall_")
    merged = frame_of(merged)
    first = merged[merged["system"] == merged["system"].iloc[0]]
    resolved = first.assign(**{by: resolve_groups(first, by).labels.to_numpy(object)}) \
        if by in first.columns else first
    support = resolved.groupby([by, "EmoClass_true"]).size()
    table["support"] = [int(support.get((g, c), 0)) for g, c in zip(table["group"], table["class"])]
    return (table.rename(columns={"estimate": "recall"})
            [["system", "by", "group", "class", "recall", "ci_low", "ci_high", "unit", "support"]]
            .reset_index(drop=True))


# --------------------------------------------------------------------------- gaps

def group_gaps(merged: pd.DataFrame, by: str = "Gender", a: str = "Female", b: str = "Male",
               resampling: resampling_.Resampling | None = None, n_permutations: int = 1000,
               **legacy) -> pd.DataFrame:
    """Gap ``metric(a) - metric(b)`` per system and metric (fairness score of Wagner et al.
    2023: ``CCC(female) - CCC(male)``) with a paired bootstrap CI and a permutation p-value.

    CI: percentile interval of the gap over resamples of the unit of ``resampling``
    (default: speakers when known) where both groups are evaluated on the same resample; over
    speakers, widened for few clusters (:func:`ser_diag.resampling.widen_interval` with G the
    smaller group's speakers: ``t_{G-1}/z * sqrt(G/(G-1))``, 1.007 at 232 speakers a group,
    1.04 at 50, 1.22 at 10): the plain percentile gap interval excluded 0 in 5.9 % of gap-free
    worlds at 50 speakers a group (nominal 5 %), the widened one in 5.3 %.
    p-value: two-sided, ``(1 + #{|gap_perm| >= |gap|}) / (1 + n_permutations)``
    (:func:`ser_diag.resampling.permutation_p_value`), with group labels shuffled between
    speakers whenever speaker IDs exist and ``by`` is a speaker attribute, else between
    utterances; ``method`` names the test that ran. When the ways of choosing group a's units
    are at most ``n_permutations`` (10 speakers, 5 + 5: 252), every one is enumerated:
    ``method`` is ``"exact speaker permutation"``, ``n_permutations`` the number enumerated
    and ``p = #{|gap_perm| >= |gap|} / n_permutations``, the exact p-value. Missing labels and
    conflicting speakers: :func:`resolve_groups` (``n_excluded``, ``n_conflicting_speakers``).

    ``.attrs["notes"]`` (also of :func:`group_metrics` and :func:`group_audit`): a line when a
    group has too few speakers for its intervals (:func:`ser_diag.resampling.group_speakers_notes`),
    or when no file has a ``by`` label at all (a corpus without gender): the tables are then empty
    (columns :data:`GROUP_GAP_COLUMNS`, :data:`GROUP_METRIC_COLUMNS`).

    Returns ``system, by, group_a, group_b, metric, estimate_a, estimate_b, gap, ci_low,
    ci_high, level, unit, n_boot, p_value, method, n_permutations, n_excluded,
    n_conflicting_speakers``.
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    _, rows, notes = _audit(merged, by, (a, b), settings, n_permutations)
    out = pd.DataFrame(rows, columns=GROUP_GAP_COLUMNS)
    out.attrs["notes"] = notes
    return out


def group_audit(merged: pd.DataFrame, by: str = "Gender", a: str | None = "Female", b: str | None = "Male",
                resampling: resampling_.Resampling | None = None, n_permutations: int = 1000,
                **legacy) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(group_metrics(...), group_gaps(...))`` from one shared bootstrap: the same numbers
    as the two calls, computed once. ``a=None`` or ``b=None``: no gaps (second item None)."""
    settings = resampling_.Resampling.of(resampling, **legacy)
    pair = None if a is None or b is None else (a, b)
    rows, gap_rows, notes = _audit(merged, by, pair, settings, n_permutations)
    table = pd.DataFrame(rows, columns=GROUP_METRIC_COLUMNS)
    table.attrs["notes"] = notes
    if pair is None:
        return table, None
    gaps = pd.DataFrame(gap_rows, columns=GROUP_GAP_COLUMNS)
    gaps.attrs["notes"] = list(notes)
    return table, gaps


# --------------------------------------------------------------------------- speakers

def _speaker_scores(frame: pd.DataFrame, task: str, speaker: np.ndarray, n_speakers: int,
                    ddof: int, vocabulary: Vocabulary = MSP_PODCAST) -> dict[str, np.ndarray]:
    """Every speaker's scores at once: ``{metric: (n_speakers,)}``; ``speaker`` holds each row's
    speaker position (-1: not scored)."""
    keep = speaker >= 0
    attributes = vocabulary.attribute_names
    if task == TASK_CATEGORICAL:
        k = len(vocabulary.classes)
        t = metrics.label_indices(frame["EmoClass_true"], vocabulary.classes)[keep]
        p = metrics.label_indices(frame["EmoClass_pred"], vocabulary.classes)[keep]
        cm = np.bincount((speaker[keep] * k + t) * k + p, minlength=n_speakers * k * k)
        cm = cm.reshape(n_speakers, k, k)                                       # per-speaker confusion
        f1 = metrics.precision_recall_f1_from_confusion(cm)[2]
        present = (cm.sum(axis=1) + cm.sum(axis=2)) > 0                         # true or predicted
        return {"accuracy": np.trace(cm, axis1=1, axis2=2) / cm.sum(axis=(1, 2)),
                "macro_f1": (f1 * present).sum(axis=1) / present.sum(axis=1)}
    true = frame[[f"{a}_true" for a in attributes]].to_numpy(np.float64)[keep]
    pred = frame[[f"{a}_pred" for a in attributes]].to_numpy(np.float64)[keep]
    membership = scipy.sparse.csr_matrix((np.ones(int(keep.sum())), (speaker[keep], np.arange(int(keep.sum())))),
                                         shape=(n_speakers, int(keep.sum())))
    design = metrics.MomentDesign(true, pred)
    moments = design.moments(design.product(membership), ddof)[:, 0]       # (speakers, A, 6)
    ccc = metrics.ccc_from_moments(moments)
    out = {}
    for j, attr in enumerate(attributes):
        out[f"ccc_{attr}"], out[f"bias_{attr}"] = ccc[:, j], moments[:, j, 2] - moments[:, j, 1]
    out["ccc_mean"] = ccc.mean(axis=1)
    return out


def speaker_metrics(merged: pd.DataFrame, min_utterances: int = 10, by: str = "Gender",
                    ddof: int = 0) -> pd.DataFrame:
    """Metrics per known speaker with at least ``min_utterances`` utterances, tidy:
    ``system, SpkrID, <by>, n_utterances, metric, estimate``; ``<by>`` is the speaker's most
    frequent label.

    Categorical: ``accuracy`` and ``macro_f1`` over the classes the speaker has in the truth or
    the predictions (scikit-learn's default label set; absent classes would otherwise count 0).
    Attributes: ``ccc_<attr>``, ``ccc_mean`` and ``bias_<attr>`` (mean pred - mean true) within
    the speaker, as in Wagner et al.'s per-speaker CCC. ``.attrs["min_utterances"]`` keeps the
    threshold. ``SpkrID`` keeps the corpus' type (MSP-Podcast ``Int64``, strings otherwise); a
    corpus without speakers (no ``SpkrID`` or every one unknown) gives an empty table with one
    line in ``.attrs["notes"]``.
    """
    data = aligned(merged)
    task, voc = data.task, data.vocabulary
    columns = ["system", "SpkrID", by, "n_utterances", "metric", "estimate"]
    if "SpkrID" not in data.columns or not data.frame["SpkrID"].notna().any():
        out = pd.DataFrame(columns=columns)
        out.attrs.update(min_utterances=min_utterances,
                         notes=[f"{task}: no speaker is known: per-speaker metrics skipped"])
        return out
    parts, previous = [], None
    for system, frame in data.system_frames().items():
        _group_values(frame, by)
        same = (previous is not None and frame["SpkrID"].equals(previous[0]["SpkrID"])
                and frame[by].equals(previous[0][by]))
        if not same:          # speakers and their labels: once per file list, not once per system
            counts = frame["SpkrID"].value_counts(dropna=True).sort_index()
            scored = counts[counts >= min_utterances]
            position = pd.Series(np.arange(len(scored)), index=scored.index)
            speaker = frame["SpkrID"].map(position).fillna(-1).to_numpy(np.int64)
            label_counts = frame[frame["SpkrID"].isin(scored.index)].groupby(["SpkrID", by]).size()
            group = (label_counts.sort_values(ascending=False, kind="stable").reset_index()
                     .drop_duplicates("SpkrID").set_index("SpkrID")[by].reindex(scored.index))
            previous = (frame, scored, speaker, group)
        _, scored, speaker, group = previous
        scores = _speaker_scores(frame, task, speaker, len(scored), ddof, voc)
        blocks = [pd.DataFrame({"system": system, "SpkrID": scored.index.to_numpy(), by: group.to_numpy(),
                                "n_utterances": scored.to_numpy(), "metric": name,
                                "estimate": np.asarray(values, np.float64)})
                  for name, values in scores.items()]
        parts.append(pd.concat(blocks, ignore_index=True).sort_values("SpkrID", kind="stable"))
    out = pd.concat(parts, ignore_index=True)[columns]
    out["SpkrID"] = _speaker_ids(out["SpkrID"], data.frame["SpkrID"])
    out.attrs["min_utterances"] = min_utterances
    out.attrs["notes"] = []
    return out


def default_speaker_metric(task: str) -> str:
    """Metric used to rank speakers: accuracy (categorical) or mean CCC (attributes)."""
    return "accuracy" if task == TASK_CATEGORICAL else "ccc_mean"


def worst_speakers(merged_or_speakers: pd.DataFrame, n: int = 10, metric: str | None = None,
                   min_utterances: int = 10, by: str = "Gender", ddof: int = 0) -> pd.DataFrame:
    """The ``n`` speakers with the lowest ``metric`` per system (default: accuracy for the
    categorical task, ``ccc_mean`` for attributes), with ``rank`` 1 = worst.

    Accepts a merged frame or the output of :func:`speaker_metrics` (then ``min_utterances``
    was applied there).
    """
    if "FileName" in merged_or_speakers:
        speakers = speaker_metrics(merged_or_speakers, min_utterances=min_utterances, by=by, ddof=ddof)
        task = task_of(merged_or_speakers)
    else:
        speakers = merged_or_speakers
        task = TASK_CATEGORICAL if "accuracy" in set(speakers["metric"]) else TASK_ATTRIBUTES
    metric = metric or default_speaker_metric(task)
    chosen = speakers[(speakers["metric"] == metric) & speakers["estimate"].notna()]
    chosen = chosen.sort_values(["estimate", "SpkrID"], kind="stable")
    worst = chosen.groupby("system", sort=False).head(n).copy()
    worst["rank"] = worst.groupby("system").cumcount() + 1
    order = {s: i for i, s in enumerate(pd.unique(speakers["system"]))}
    worst = worst.sort_values(["rank"], kind="stable").sort_values(
        "system", key=lambda s: s.map(order), kind="stable")
    return worst.reset_index(drop=True)
