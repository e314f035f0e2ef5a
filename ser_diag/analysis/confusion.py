"""Where do the classes go? Confusion tables, minority-class destinations, system differences.

Paper Figure 3a: the challenge's categorical confusion matrix, in the fixed class order
A, S, H, U, F, D, C, N, showing that the minority negative classes (fear, disgust, contempt)
are mostly predicted as anger. Every table is over the data's vocabulary
(:func:`ser_diag.evaluation.vocabulary_of`): its classes in macro-F1 order and their display
names; MSP-Podcast's is the default. Every function takes a categorical ``merged`` frame
(:func:`ser_diag.io.merge`) or its :class:`~ser_diag.evaluation.TaskData` and returns a tidy :class:`pandas.DataFrame`; counts come from
:func:`ser_diag.metrics.confusion_counts` and intervals from :func:`ser_diag.resampling.bootstrap`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag import metrics
from ser_diag import resampling as resampling_
from ser_diag.evaluation import TaskData, aligned, frame_of, rows_at, vocabulary_of
from ser_diag.io import factorize
from ser_diag.schema import MINORITY_NEGATIVE
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

NORMALIZE_OPTIONS = (None, "true", "pred", "all")


def systems_of(merged: pd.DataFrame, system=None) -> list[str]:
    """Systems in ``merged`` (or a tidy table with a ``system`` column) in order of appearance,
    or ``[system]`` after checking it exists."""
    present = (list(merged.systems) if isinstance(merged, TaskData)
               else [str(s) for s in factorize(merged["system"])[1]])   # a merged frame or a tidy table
    if system is None:
        return present
    if str(system) not in present:
        raise ValueError(f"system {system!r} not in merged (has {present})")
    return [str(system)]


def system_rows(merged: pd.DataFrame, system: str) -> pd.DataFrame:
    """The rows of one system (file order kept)."""
    # Compared as a pandas string column (vectorised), not as a Python-object array.
    return merged.loc[(merged["system"].astype(str) == str(system)).to_numpy(dtype=bool)]


def normalize_counts(cm: np.ndarray, normalize) -> np.ndarray:
    """Shares of a count matrix: by row ("true"), column ("pred") or total ("all" or None)."""
    if normalize not in NORMALIZE_OPTIONS:
        raise ValueError(f"normalize must be one of {NORMALIZE_OPTIONS}, not {normalize!r}")
    cm = cm.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if normalize == "true":
            return cm / cm.sum(axis=-1, keepdims=True)
        if normalize == "pred":
            return cm / cm.sum(axis=-2, keepdims=True)
        return cm / cm.sum(axis=(-2, -1), keepdims=True)


def _counts(rows: pd.DataFrame, classes) -> np.ndarray:
    return metrics.confusion_counts(rows["EmoClass_true"], rows["EmoClass_pred"], labels=classes)


#: A class of another corpus is a minority class when it holds less than this share of the
#: files of a class divided evenly (1 / K): the rarest classes, as fear, disgust and contempt are
#: MSP-Podcast's (which keeps :data:`ser_diag.schema.MINORITY_NEGATIVE`).
MINORITY_SHARE = 0.5


def minority_classes(merged, vocabulary: Vocabulary | None = None) -> tuple[str, ...]:
    """The minority classes of the data: MSP-Podcast's minority negative classes (fear,
    disgust, contempt, the ones the challenge found swallowed by anger); for another
    vocabulary the rarest classes of the truth: at most ``round(3 K / 8)`` classes (3 of
    MSP-Podcast's 8), rarest first, each holding fewer than :data:`MINORITY_SHARE` / K of the
    files (none in a balanced corpus).

    >>> frame = pd.DataFrame({"system": "s", "FileName": [f"f{i}" for i in range(10)],
    ...                       "EmoClass_true": ["calm"] * 9 + ["tense"], "EmoClass_pred": "calm"})
    >>> minority_classes(frame, Vocabulary("mine", classes=("calm", "tense")))
    ('tense',)
    """
    voc = vocabulary if vocabulary is not None else vocabulary_of(merged)
    if voc == MSP_PODCAST:
        return tuple(MINORITY_NEGATIVE)
    data = aligned(merged, vocabulary=voc)
    truth = data.column("EmoClass_true", data.first_rows)
    counts = truth.value_counts().reindex(list(voc.classes), fill_value=0)
    k, total = len(voc.classes), int(counts.sum())
    if total == 0:
        return ()
    rare = counts[(counts > 0) & (counts < MINORITY_SHARE * total / k)]
    order = sorted(rare.index, key=lambda c: (int(rare[c]), voc.classes.index(c)))
    return tuple(order[:max(1, round(3 * k / 8))])


def minority_note(vocabulary: Vocabulary, minority) -> str | None:
    """The one line saying what ``minority`` means for a vocabulary other than MSP-Podcast's."""
    if vocabulary == MSP_PODCAST:
        return None
    names = ", ".join(vocabulary.class_names[c] for c in minority) or "none"
    return (f"{vocabulary.name}: minority classes are the rarest of the truth (below "
            f"{MINORITY_SHARE:g}/{len(vocabulary.classes)} of the files, at most "
            f"{max(1, round(3 * len(vocabulary.classes) / 8))}): {names}; MSP-Podcast's are fear, disgust "
            "and contempt")


def confusion_table(merged: pd.DataFrame, normalize: str | None = "true") -> pd.DataFrame:
    """Tidy confusion counts of every system: one row per (system, true, pred), 64 per system.

    ``true``/``pred`` are class codes (ordered categoricals in the vocabulary's class order,
    MSP-Podcast: :data:`~ser_diag.schema.CLASS_CODES`; K x K rows per system);
    ``share`` is ``count`` divided by the row total (``normalize="true"``: the row's recall
    distribution, rows sum to 1), the column total (``"pred"``) or the grand total (``"all"``
    or ``None``). Rows of a class absent from the labels have share NaN.
    """
    frames = []
    data = aligned(merged)
    classes = data.classes
    for system in data.systems:
        cm = _counts(rows_at(data.frame, data.positions[system]), classes)
        share = normalize_counts(cm, normalize)
        frames.append(pd.DataFrame({
            "system": system,
            "true": np.repeat(classes, len(classes)),
            "pred": np.tile(classes, len(classes)),
            "count": cm.ravel().astype(np.int64),
            "share": share.ravel(),
        }))
    table = pd.concat(frames, ignore_index=True)
    for col in ("true", "pred"):
        table[col] = pd.Categorical(table[col], categories=classes, ordered=True)
    return table


def confusion_matrix_frame(merged: pd.DataFrame, system: str | None = None,
                           normalize: str | None = None) -> pd.DataFrame:
    """K x K matrix of one system (K: the vocabulary's classes; MSP-Podcast 8), rows = true
    class, columns = predicted, the vocabulary's display names.

    ``normalize=None`` gives counts; ``"true"``, ``"pred"``, ``"all"`` give shares as in
    :func:`confusion_table`. ``system`` may be omitted when ``merged`` holds one system.
    """
    system = _single_system(merged, system)
    voc = vocabulary_of(merged)
    cm = _counts(system_rows(frame_of(merged), system), voc.classes)
    values = cm if normalize is None else normalize_counts(cm, normalize)
    names = [voc.class_names[c] for c in voc.classes]
    return pd.DataFrame(values, index=pd.Index(names, name="true"), columns=pd.Index(names, name="pred"))


def _single_system(merged: pd.DataFrame, system) -> str:
    found = systems_of(merged, system)
    if len(found) != 1:
        raise ValueError(f"merged holds several systems {found}: pass system=")
    return found[0]


def minority_destinations(merged: pd.DataFrame, system: str | None = None, top: int = 3,
                          resampling: resampling_.Resampling | None = None, **legacy) -> pd.DataFrame:
    """For each true class, the ``top`` wrong classes its files are predicted as, with CIs.

    ``share`` = n(true = t, pred = p) / n(true = t), the off-diagonal entries of the
    row-normalised confusion matrix, ranked within each true class (ties: class order).
    Percentile bootstrap intervals resample the unit of ``resampling``
    (:class:`~ser_diag.resampling.Resampling`; default speakers when ``SpkrID`` is known;
    older keywords ``n_boot, level, by_speaker, seed`` override it) with the same resamples
    for every system.
    Columns: system, true, rank, pred, count, n_true, share, ci_low, ci_high, level, unit,
    n_boot, minority (true class in :func:`minority_classes`: MSP-Podcast's
    :data:`ser_diag.schema.MINORITY_NEGATIVE`, another corpus' rarest classes, named in
    ``.attrs["notes"]``).
    """
    settings = resampling_.Resampling.of(resampling, **legacy)
    n_boot, level = settings.n_boot, settings.level
    data = aligned(merged)
    voc = data.vocabulary
    classes = data.classes
    k = len(classes)
    minority = minority_classes(data, voc)
    frames = []
    for name in systems_of(data, system):
        rows = rows_at(data.frame, data.positions[name])
        true_idx = metrics.label_indices(rows["EmoClass_true"], classes)
        pred_idx = metrics.label_indices(rows["EmoClass_pred"], classes)

        def statistic(weights, true_idx=true_idx, pred_idx=pred_idx):
            cm = metrics.weighted_confusion(weights, true_idx, pred_idx, k=k)
            share = normalize_counts(cm, "true")
            return {f"{classes[t]}>{classes[p]}": share[:, t, p]
                    for t in range(k) for p in range(k) if t != p}

        groups, unit = settings.groups(rows.reset_index(drop=True))
        boot = resampling_.bootstrap(statistic, len(rows), n_boot=n_boot, groups=groups,
                                     level=level, seed=settings.seed, unit=unit).set_index("metric")
        cm = _counts(rows, classes)
        for t, code in enumerate(classes):
            n_true = int(cm[t].sum())
            if n_true == 0:
                continue
            others = [p for p in range(k) if p != t]
            ranked = sorted(others, key=lambda p: (-cm[t, p], p))[:top]
            for rank, p in enumerate(ranked, start=1):
                stats = boot.loc[f"{code}>{classes[p]}"]
                frames.append({
                    "system": name, "true": code, "rank": rank, "pred": classes[p],
                    "count": int(cm[t, p]), "n_true": n_true, "share": cm[t, p] / n_true,
                    "ci_low": stats["ci_low"], "ci_high": stats["ci_high"], "level": level,
                    "unit": stats["unit"], "n_boot": n_boot,
                    "minority": code in minority,
                })
    columns = ["system", "true", "rank", "pred", "count", "n_true", "share", "ci_low", "ci_high", "level",
               "unit", "n_boot", "minority"]
    table = pd.DataFrame(frames, columns=columns)
    for col in ("true", "pred"):
        table[col] = pd.Categorical(table[col], categories=classes, ordered=True)
    note = minority_note(voc, minority)
    table.attrs["notes"] = [note] if note else []
    return table


def confusion_difference(merged: pd.DataFrame, system_a: str, system_b: str) -> pd.DataFrame:
    """Row-normalised confusion of ``system_a`` minus that of ``system_b``.

    ``difference = share_a - share_b`` with ``share = n(true, pred) / n(true)``: positive
    cells are routes ``system_a`` takes more often (on the diagonal: better recall).
    Columns: system_a, system_b, true, pred, share_a, share_b, difference.
    """
    data = aligned(merged)
    system_a, system_b = systems_of(data, system_a)[0], systems_of(data, system_b)[0]
    merged = data.frame
    both = merged.loc[merged["system"].astype(str).isin([system_a, system_b])]
    table = confusion_table(aligned(both, vocabulary=data.vocabulary), normalize="true")
    a = table.loc[table["system"] == system_a].reset_index(drop=True)
    b = table.loc[table["system"] == system_b].reset_index(drop=True)
    return pd.DataFrame({
        "system_a": system_a, "system_b": system_b, "true": a["true"], "pred": a["pred"],
        "share_a": a["share"], "share_b": b["share"], "difference": a["share"] - b["share"],
    })
