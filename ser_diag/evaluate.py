"""Score prediction files against a corpus' labels (MSP-Podcast by default): challenge metrics
with bootstrap intervals.

:func:`evaluate_paths` returns a JSON-ready dict (what ``python -m ser_diag evaluate --json``
prints); :func:`format_text` renders it as an aligned table. Per-class F1 and CCC are keyed by
the corpus' own names (its :class:`~ser_diag.vocabulary.Vocabulary`: MSP-Podcast ``A``..``N``
and ``EmoAct``..; IEMOCAP ``neutral``..``angry`` and ``activation``..).
"""

from __future__ import annotations

import math
import logging
import os

import numpy as np
import pandas as pd

from ser_diag.evaluation import Evaluation, aligned, vocabulary_of
from ser_diag.resampling import Resampling, bootstrap_metrics
from ser_diag.schema import ATTRIBUTE_NAMES, ATTRIBUTES, CLASS_CODES, SYNTHETIC_BANNER
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

__all__ = ["UAR_CONVENTION", "ccc_convention", "evaluate_merged", "evaluate_paths", "format_text"]

#: The UAR convention of every output (the other: ``metrics.unweighted_average_recall(...,
#: classes="all")``, mean over all eight codes as audmetric and ``recall_score(labels=all 8)``).
UAR_CONVENTION = ("UAR = mean recall over the classes present in the truth "
                  "(scikit-learn balanced_accuracy_score); audmetric averages all 8 classes")

#: Metrics reported (with intervals under ``ci`` when bootstrapped).
CATEGORICAL_METRICS = ("macro_f1", "accuracy", "uar") + tuple(f"f1_{c}" for c in CLASS_CODES)
ATTRIBUTE_METRICS = tuple(f"ccc_{a}" for a in ATTRIBUTES) + ("ccc_mean",)


def uar_convention(vocabulary: Vocabulary = MSP_PODCAST) -> str:
    """:data:`UAR_CONVENTION` for a corpus' number of classes.

    >>> from ser_diag.vocabulary import CREMA_D
    >>> uar_convention(CREMA_D).endswith("audmetric averages all 6 classes")
    True
    """
    if vocabulary == MSP_PODCAST:
        return UAR_CONVENTION
    return UAR_CONVENTION.replace("all 8 classes", f"all {len(vocabulary.classes)} classes")


def categorical_metrics(vocabulary: Vocabulary = MSP_PODCAST) -> tuple[str, ...]:
    """The categorical metrics reported for a corpus (per-class F1 by its codes)."""
    return ("macro_f1", "accuracy", "uar") + tuple(f"f1_{c}" for c in vocabulary.classes)


def attribute_metrics(vocabulary: Vocabulary = MSP_PODCAST) -> tuple[str, ...]:
    """The attribute metrics reported for a corpus (CCC by its attribute names, then the mean)."""
    return tuple(f"ccc_{a}" for a in vocabulary.attribute_names) + ("ccc_mean",)


def ccc_convention(ddof: int) -> str:
    """The sentence every report prints next to CCC values.

    >>> ccc_convention(0)
    "Lin's CCC, population variance (ddof=0), as scored by the challenge"
    """
    if ddof == 0:
        return "Lin's CCC, population variance (ddof=0), as scored by the challenge"
    if ddof == 1:
        return ("Lin's CCC, sample variance (ddof=1), as in torchmetrics; "
                "the challenge scored ddof=0")
    return f"Lin's CCC, variance denominator N-{ddof} (ddof={ddof}); the challenge scored ddof=0"


def _number(value) -> float | None:
    """JSON-safe float: nan/inf/missing become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _scores_by_system(frame: pd.DataFrame | None) -> dict:
    """``{system: {metric: (estimate, ci_low, ci_high, unit)}}`` of a :func:`bootstrap_metrics` frame."""
    out: dict = {}
    if frame is not None:
        for system, m, e, lo, hi, u in frame[["system", "metric", "estimate", "ci_low", "ci_high",
                                              "unit"]].itertuples(index=False):
            out.setdefault(system, {})[m] = (e, lo, hi, u)
    return out


def _file_counts(cat: pd.DataFrame | None, att: pd.DataFrame | None, cat_scores: dict,
                 att_scores: dict) -> dict:
    """``{system: (n, n_categorical, n_attributes)}``: distinct files of each system in each
    task it was scored on (``macro_f1`` / ``ccc_mean`` present) and in their union, from integer
    codes (one factorisation of each frame's file names) and a systems x files membership
    matrix per task, not a set of strings per system."""
    tasks = [(merged, scores, metric) for merged, scores, metric in
             ((cat, cat_scores, "macro_f1"), (att, att_scores, "ccc_mean")) if merged is not None]
    systems = pd.Index(list(dict.fromkeys(s for _, scores, _ in tasks for s in scores)))
    coded, uniques = [], []
    for merged, scores, metric in tasks:
        system_code, system_names = merged.system_code, list(merged.systems)
        system = np.where(system_code >= 0, systems.get_indexer(system_names)[system_code], -1)
        scored = np.isin(system, systems.get_indexer([s for s, v in scores.items() if metric in v]))
        files, names = merged.file_code, merged.file_names
        keep = scored & (system >= 0) & (files >= 0)
        coded.append((system[keep], files[keep]))
        uniques.append(pd.Index(names).astype(str))
    every_file = uniques[0].append(uniques[1:]).unique() if uniques else pd.Index([])
    # (systems x files) membership per task: counts and the union are row sums, no per-row hashing
    seen = []
    for (system, files), names in zip(coded, uniques):
        member = np.zeros((len(systems), len(every_file)), dtype=bool)
        member[system, every_file.get_indexer(names)[files]] = True
        seen.append(member)
    union = np.logical_or.reduce(seen).sum(axis=1) if seen else np.zeros(len(systems), dtype=np.int64)
    per_task = [member.sum(axis=1) for member in seen]
    counts = {}
    for i, system in enumerate(systems):
        n_task = {id(merged): int(c[i]) for (merged, _, _), c in zip(tasks, per_task)}
        counts[system] = (int(union[i]), n_task.get(id(cat)), n_task.get(id(att)))
    return counts


def _system_object(system: str, scores: dict, counts: tuple | None, settings: Resampling,
                   synthetic: bool, vocabulary: Vocabulary = MSP_PODCAST) -> dict:
    n_boot, level, ddof = settings.n_boot, settings.level, settings.ddof

    def value(metric):
        return _number(scores[metric][0]) if metric in scores else None

    has_cat, has_att = "macro_f1" in scores, "ccc_mean" in scores
    n, n_cat, n_att = counts if counts is not None else (0, None, None)
    obj = {
        "system": system,
        "n": n,
        "n_categorical": (n_cat or 0) if has_cat else None,
        "n_attributes": (n_att or 0) if has_att else None,
        "macro_f1": value("macro_f1"),
        "accuracy": value("accuracy"),
        "uar": value("uar"),
        "per_class_f1": ({c: value(f"f1_{c}") for c in vocabulary.classes} if has_cat else None),
        "ccc": ({a: value(f"ccc_{a}") for a in vocabulary.attribute_names} if has_att else None),
        "ccc_mean": value("ccc_mean"),
        "ccc_convention": ccc_convention(ddof),
        "uar_convention": uar_convention(vocabulary) if has_cat else None,
        "synthetic": bool(synthetic),
    }
    if n_boot > 0:
        units = {v[3] for v in scores.values()}
        ci = {"level": level, "unit": "speaker" if "speaker" in units else "utterance", "n_boot": n_boot}
        for metric in categorical_metrics(vocabulary) + attribute_metrics(vocabulary):
            if metric in scores:
                ci[metric] = {"ci_low": _number(scores[metric][1]),
                              "ci_high": _number(scores[metric][2])}
        obj["ci"] = ci
    return obj


def evaluate_merged(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None,
                    resampling: Resampling | None = None, scores: tuple | None = None,
                    split: str | None = None, **legacy) -> dict:
    """:func:`evaluate_paths` on already merged frames (either may be None); ``split`` is the
    split they come from, named in every system's object.

    ``scores``: optional ``(categorical, attributes)`` :func:`bootstrap_metrics` frames computed
    with the same settings, so callers that already have them do not resample twice.
    """
    settings = Resampling.of(resampling if resampling is not None else Resampling(n_boot=0), **legacy)
    categorical, attributes = aligned(categorical), aligned(attributes)
    frames = [f for f in (categorical, attributes) if f is not None]
    vocabulary = vocabulary_of(frames[0]) if frames else MSP_PODCAST
    systems = list(dict.fromkeys(s for f in frames for s in f.systems))
    synthetic = any(bool(f.attrs.get("synthetic", False)) for f in frames)
    cat_scores, att_scores = scores if scores is not None else (None, None)
    if cat_scores is None and categorical is not None:
        cat_scores = bootstrap_metrics(categorical, settings)
    if att_scores is None and attributes is not None:
        att_scores = bootstrap_metrics(attributes, settings)
    by_cat, by_att = _scores_by_system(cat_scores), _scores_by_system(att_scores)
    counts = _file_counts(categorical, attributes, by_cat, by_att)
    objects = {s: {"split": split, **_system_object(s, {**by_cat.get(s, {}), **by_att.get(s, {})},
                                                    counts.get(s), settings, synthetic, vocabulary)}
               for s in systems}
    notes = list(dict.fromkeys(n for t in (cat_scores, att_scores) if t is not None for n in t.attrs.get("notes", [])))
    if len(objects) == 1:
        return {**next(iter(objects.values())), **({"notes": notes} if notes else {})}
    return {"systems": objects, **({"notes": notes} if notes else {})}


def evaluate_paths(labels: str | os.PathLike, predictions: str | os.PathLike,
                   split: str | None = "Development", resampling: Resampling | None = None,
                   intersection: bool = False, vocabulary: Vocabulary | None = None, target: str | None = None,
                   attributes=None, **legacy) -> dict:
    """Challenge scores of one system, or of every system in a directory of systems.

    ``vocabulary``, ``target``, ``attributes``: the corpus (:meth:`Evaluation.load`; default
    MSP-Podcast's files); per-class F1 (``per_class_f1``) and CCC (``ccc``) are keyed by its
    class codes and attribute names (``systems.<name>.ccc.arousal``).
    Task 1: macro-F1 over the 8 codes (O/X label rows dropped), accuracy, UAR (mean recall
    over the classes present in the truth, :data:`UAR_CONVENTION`), per-class F1.
    Task 2: CCC per attribute with variance denominator ``n - ddof`` and their mean.
    ``resampling`` (:class:`~ser_diag.resampling.Resampling`; default here ``n_boot=0``: no
    intervals; older keywords ``n_boot, level, by_speaker, seed, ddof`` override it): with
    ``n_boot > 0``, percentile bootstrap intervals (``ci``) at ``level`` over the resolved
    unit (speakers whenever ``SpkrID`` is known, unless ``unit="utterance"``), named in
    ``ci.unit``. One system gives one object with keys ``system, split, n, n_categorical,
    n_attributes, macro_f1, accuracy, uar, per_class_f1, ccc, ccc_mean, ccc_convention,
    uar_convention, synthetic`` (+ ``ci``); several give ``{"systems": {name: obj}}``.
    A task a system did not submit has null values. ``notes`` (only when there are some): the
    intervals' stated limits, e.g. resting on fewer than 100 speakers
    (:data:`~ser_diag.resampling.FEW_SPEAKERS`).
    """
    corpus = {k: v for k, v in (("target", target), ("attributes", attributes)) if v is not None}
    data = Evaluation.load(labels, predictions, split=split, intersection=intersection, vocabulary=vocabulary,
                           **corpus)
    settings = Resampling.of(resampling if resampling is not None else Resampling(n_boot=0), **legacy)
    if settings.n_boot:
        frame = next(iter(data.tasks().values()))
        logging.getLogger(__name__).info("scoring %s with %d bootstrap resamples of %ss ...",
                                         f"the {split} split" if split else "all files", settings.n_boot,
                                         settings.unit_for(frame["SpkrID"] if "SpkrID" in frame else None))
    return evaluate_merged(data.categorical, data.attributes, resampling=resampling, split=split, **legacy)


def _cell(obj: dict, metric: str, value) -> str:
    if value is None:
        return "-"
    text = f"{value:.4f}"
    ci = (obj.get("ci") or {}).get(metric)
    if ci and ci["ci_low"] is not None and ci["ci_high"] is not None:
        text += f" [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}]"
    return text


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


def format_text(result: dict, vocabulary: Vocabulary | None = None) -> str:
    """Aligned text tables of an :func:`evaluate_paths` result (with the synthetic banner).
    Classes and attributes are the result's own keys; ``vocabulary`` gives their display
    names (default: MSP-Podcast's where the keys are its own, else the keys)."""
    objects = list(result["systems"].values()) if "systems" in result else [result]
    codes = next((list(o["per_class_f1"]) for o in objects if o.get("per_class_f1")), list(CLASS_CODES))
    names = next((list(o["ccc"]) for o in objects if o.get("ccc")), None)
    if names is None:       # no system gave attributes: MSP-Podcast's columns stay (as '-'), another corpus' too
        msp = codes == list(CLASS_CODES) if vocabulary is None else vocabulary == MSP_PODCAST
        names = list(ATTRIBUTES) if msp else [] if vocabulary is None else list(vocabulary.attribute_names)
    displays = dict(ATTRIBUTE_NAMES) if vocabulary is None else vocabulary.attribute_displays
    lines = []
    if any(o.get("synthetic") for o in objects):
        lines += [SYNTHETIC_BANNER, ""]
    splits = sorted({str(o["split"]) for o in objects if o.get("split")})
    if splits:
        lines += [f"split: {', '.join(splits)}", ""]
    metrics = [("macro_f1", "macro-F1"), ("accuracy", "accuracy"), ("uar", "UAR")]
    metrics += [(f"ccc_{a}", f"CCC {displays.get(a, a)}") for a in names]
    metrics += [("ccc_mean", "CCC mean")] if names else []

    def get(obj, metric):
        if metric.startswith("ccc_") and metric != "ccc_mean":
            return (obj.get("ccc") or {}).get(metric[4:])
        return obj.get(metric)

    def count(n):
        return "-" if n is None else str(n)

    lines += _table(["system", "n cat.", "n attr."] + [label for _, label in metrics],
                    [[o["system"], count(o["n_categorical"]), count(o["n_attributes"])]
                     + [_cell(o, m, get(o, m)) for m, _ in metrics] for o in objects])
    with_classes = [o for o in objects if o.get("per_class_f1")]
    if with_classes:
        lines += ["", "Per-class F1"]
        lines += _table(["system"] + codes,
                        [[o["system"]] + [_cell(o, f"f1_{c}", o["per_class_f1"].get(c))
                                          .split(" [")[0] for c in codes]
                         for o in with_classes])
    lines += ["", f"CCC: {objects[0]['ccc_convention']}." if objects else ""]
    ci = next((o["ci"] for o in objects if "ci" in o), None)
    if ci:
        lines.append(f"[ci_low, ci_high]: {ci['level']:.0%} percentile bootstrap intervals, "
                     f"{ci['n_boot']} resamples of {ci['unit']}s.")
    if result.get("notes"):
        lines += ["", "Notes:"] + [f"- {note}" for note in result["notes"]]
    if any(o.get("synthetic") for o in objects):
        lines += ["", SYNTHETIC_BANNER]
    return "\n".join(lines).rstrip() + "\n"
