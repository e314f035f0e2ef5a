"""Every diagnostic of ser_diag computed once, as tidy tables, for figures, report and explorer.

``compute_diagnostics`` loads and validates the inputs (nothing is written before that), then
runs each analysis exactly once; :func:`build_figures` turns the tables into the paper's
figures through the Display classes. ``figures.py`` and ``report.py`` only write what this
module returns, so a number in a figure, a CSV, ``summary.md`` and the HTML report is the same
number.
"""

from __future__ import annotations

import dataclasses
import os

import matplotlib.pyplot as plt
import pandas as pd

from ser_diag import io
from ser_diag.analysis import bias, binned, confusion, fusion, regression_to_mean
from ser_diag.evaluate import ccc_convention, evaluate_merged
from ser_diag.resampling import bootstrap_metrics, shared_weights
from ser_diag.schema import ATTRIBUTE_NAMES, ATTRIBUTES, TASK_ATTRIBUTES, TASK_CATEGORICAL

#: Paper figure each attribute's binned matrix mirrors (Interspeech 2025 challenge, Fig. 3b-d).
BINNED_FIGURE = {"EmoAct": "fig3b", "EmoVal": "fig3c", "EmoDom": "fig3d"}
HEADLINE = {TASK_CATEGORICAL: "macro_f1", TASK_ATTRIBUTES: "ccc_mean"}


@dataclasses.dataclass
class Diagnostics:
    """Inputs and results of one diagnostic run.

    ``categorical`` / ``attributes``: merged frames (None if no system gave that task);
    ``settings``: split, n_boot, level, unit, seed, ddof, ccc_convention, bin scheme and the
    focus system of each task (the best by its headline metric, shown in single-system
    figures); ``evaluation``: the ``evaluate`` JSON; ``tables``: name -> tidy frame.
    """

    categorical: pd.DataFrame | None
    attributes: pd.DataFrame | None
    labels: pd.DataFrame
    synthetic: bool
    settings: dict
    evaluation: dict
    tables: dict[str, pd.DataFrame]

    @property
    def systems(self) -> list[str]:
        frames = [f for f in (self.categorical, self.attributes) if f is not None]
        return list(pd.unique(pd.concat([f["system"] for f in frames])))


def _best(scores: pd.DataFrame, metric: str) -> tuple[str, str]:
    """(best, worst) system by ``metric`` in a :func:`bootstrap_metrics` frame."""
    ranked = scores[scores["metric"] == metric].sort_values("estimate", ascending=False, kind="stable")
    return str(ranked["system"].iloc[0]), str(ranked["system"].iloc[-1])


def _with_task(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    return frame.assign(task=task)[["task"] + [c for c in frame.columns if c != "task"]]


def diagnose(categorical: pd.DataFrame | None, attributes: pd.DataFrame | None,
             labels: pd.DataFrame | None = None, split: str | None = None, n_boot: int = 1000,
             by_speaker: bool = False, level: float = 0.95, seed: int = 0, ddof: int = 0,
             scheme: str = "unit", min_speaker_utterances: int = 10) -> Diagnostics:
    """Run every analysis on already merged frames (see :func:`compute_diagnostics`).

    All analyses run inside :func:`ser_diag.resampling.shared_weights`, so the resamples of a
    set of files are drawn once and shared (same numbers, less drawing).
    """
    if categorical is None and attributes is None:
        raise ValueError("no system submitted either task")
    with shared_weights():
        return _diagnose(categorical, attributes, labels, split, n_boot, by_speaker, level, seed,
                         ddof, scheme, min_speaker_utterances)


def _diagnose(categorical, attributes, labels, split, n_boot, by_speaker, level, seed, ddof, scheme,
              min_speaker_utterances) -> Diagnostics:
    kw = dict(n_boot=n_boot, level=level, by_speaker=by_speaker, seed=seed)
    tables: dict[str, pd.DataFrame] = {}
    settings = dict(split=split, n_boot=n_boot, level=level, seed=seed, ddof=ddof, scheme=scheme,
                    unit="speaker" if by_speaker else "utterance",
                    ccc_convention=ccc_convention(ddof), focus={}, baseline={})
    scores = {}
    for task, merged in ((TASK_CATEGORICAL, categorical), (TASK_ATTRIBUTES, attributes)):
        if merged is None:
            continue
        scores[task] = bootstrap_metrics(merged, ddof=ddof, **kw)
        settings["focus"][task], settings["baseline"][task] = _best(scores[task], HEADLINE[task])
    tables["metrics"] = pd.concat([_with_task(s, t) for t, s in scores.items()], ignore_index=True)
    evaluation = evaluate_merged(categorical, attributes, n_boot=n_boot, by_speaker=by_speaker,
                                 level=level, seed=seed, ddof=ddof,
                                 scores=(scores.get(TASK_CATEGORICAL), scores.get(TASK_ATTRIBUTES)))

    if categorical is not None:
        focus, worst = settings["focus"][TASK_CATEGORICAL], settings["baseline"][TASK_CATEGORICAL]
        tables["confusion"] = confusion.confusion_table(categorical, normalize="true")
        tables["minority_destinations"] = confusion.minority_destinations(categorical, system=focus, **kw)
        if focus != worst:
            tables["confusion_difference"] = confusion.confusion_difference(categorical, focus, worst)
    if attributes is not None:
        tables["binned"] = binned.binned_matrix(attributes, scheme=scheme)
        tables["per_bin"] = binned.per_bin_table(attributes, scheme=scheme, ddof=ddof)
        tables["shrinkage"] = regression_to_mean.shrinkage_table(attributes, ddof=ddof, **kw)
        tables["bin_means"] = regression_to_mean.bin_means(attributes, scheme=scheme, **kw)
        tables["extreme_bin_recall"] = regression_to_mean.extreme_bin_recall(attributes, scheme=scheme,
                                                                             matrix=tables["binned"])
        tables["recalibration"] = regression_to_mean.recalibration_whatif(attributes, seed=seed, ddof=ddof)

    gender, gaps, speakers, disagreement, class_recall = [], [], [], [], None
    for task, merged in ((TASK_CATEGORICAL, categorical), (TASK_ATTRIBUTES, attributes)):
        if merged is None:
            continue
        has_gender = merged["Gender"].notna().any()
        if has_gender:
            pair = ("Female", "Male") if set(merged["Gender"].dropna()) >= {"Female", "Male"} else (None, None)
            by_group, group_gaps = bias.group_audit(merged, by="Gender", a=pair[0], b=pair[1], ddof=ddof,
                                                    n_permutations=n_boot, **kw)
            gender.append(_with_task(by_group, task))
            if group_gaps is not None:
                gaps.append(_with_task(group_gaps, task))
            if task == TASK_CATEGORICAL:
                class_recall = bias.per_class_recall_by_group(merged, by="Gender", group_table=by_group, **kw)
        speakers.append(_with_task(bias.speaker_metrics(merged, min_utterances=min_speaker_utterances,
                                                        ddof=ddof), task))
        if merged["system"].nunique() > 1:
            disagreement.append(fusion.pairwise_disagreement(merged))
    for name, parts in (("gender_metrics", gender), ("gender_gaps", gaps),
                        ("speaker_metrics", speakers), ("disagreement", disagreement)):
        if parts:
            tables[name] = pd.concat(parts, ignore_index=True)
    if class_recall is not None:
        tables["class_recall_by_gender"] = class_recall
    if len(evaluation.get("systems", {})) > 1:
        curve = fusion.topk_fusion_curve(categorical, attributes, ddof=ddof, **kw)
        tables["fusion_curve"] = curve
        tables["fusion_ranking"] = curve.attrs["ranking"]
    synthetic = any(bool(f.attrs.get("synthetic")) for f in (categorical, attributes) if f is not None)
    return Diagnostics(categorical, attributes, labels if labels is not None else pd.DataFrame(),
                       synthetic, settings, evaluation, tables)


def compute_diagnostics(labels_path: str | os.PathLike, predictions_path: str | os.PathLike,
                        split: str | None = "Development", n_boot: int = 1000, by_speaker: bool = False,
                        level: float = 0.95, seed: int = 0, intersection: bool = False, ddof: int = 0,
                        scheme: str = "unit") -> Diagnostics:
    """Load and validate labels and predictions (:func:`ser_diag.io.load`), then :func:`diagnose`.

    Bad input raises :class:`ser_diag.errors.InputError` before any analysis runs.
    """
    data = io.load(labels_path, predictions_path, split=split, intersection=intersection)
    return diagnose(data.get("categorical"), data.get("attributes"), labels=data.get("labels"),
                    split=split, n_boot=n_boot, by_speaker=by_speaker, level=level, seed=seed,
                    ddof=ddof, scheme=scheme)


def rows_where(frame: pd.DataFrame, **equal) -> pd.DataFrame:
    """Rows of a tidy table whose columns equal the given values, e.g.
    ``rows_where(tables["shrinkage"], system="sys01", attribute="EmoVal")``."""
    mask = pd.Series(True, index=frame.index)
    for column, value in equal.items():
        mask &= frame[column] == value
    return frame[mask]


def build_figures(diag: Diagnostics) -> dict[str, plt.Figure]:
    """The paper figure set as ``{file stem: Figure}``; stems name the paper figure mirrored.

    Single-system figures show each task's focus system (best headline metric); the
    difference matrix compares it with the worst system.
    """
    # Imported here so that computing tables never pays for the plotting stack.
    from ser_diag.plots.bias import GroupGapDisplay, SpeakerDistributionDisplay
    from ser_diag.plots.binned import BinnedAttributeDisplay
    from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay
    from ser_diag.plots.fusion import DisagreementDisplay, FusionCurveDisplay
    from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay

    t, s = diag.tables, diag.settings
    figures: dict[str, plt.Figure] = {}
    if diag.categorical is not None:
        focus = s["focus"][TASK_CATEGORICAL]
        d = ConfusionMatrixDisplay.from_frame(rows_where(t["confusion"], system=focus), system=focus)
        figures["fig3a_confusion_categorical"] = d.figure_
        if "confusion_difference" in t:
            d = ConfusionDifferenceDisplay.from_frame(t["confusion_difference"])
            figures["fig3a_confusion_difference"] = d.figure_
    if diag.attributes is not None:
        focus = s["focus"][TASK_ATTRIBUTES]
        for attr in ATTRIBUTES:
            part = rows_where(t["binned"], system=focus, attribute=attr)
            if len(part):
                d = BinnedAttributeDisplay.from_frame(part, system=focus, attribute=attr)
                figures[f"{BINNED_FIGURE[attr]}_binned_{ATTRIBUTE_NAMES[attr]}"] = d.figure_
        shrink = rows_where(t["shrinkage"], system=focus)
        d = RegressionToMeanDisplay.from_frame(rows_where(t["bin_means"], system=focus), shrinkage=shrink)
        figures["regression_to_mean_extremes"] = d.figure_
    for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
        if "gender_metrics" not in t or task not in s["focus"]:
            continue
        focus = s["focus"][task]
        frame = rows_where(t["gender_metrics"], task=task, system=focus)
        gaps = rows_where(t["gender_gaps"], task=task, system=focus) if "gender_gaps" in t else None
        if len(frame):
            figures[f"gender_audit_{task}"] = GroupGapDisplay.from_frame(
                frame, gaps, system=focus, title=f"{focus}: {task} metrics by gender").figure_
        speakers = rows_where(t["speaker_metrics"], task=task, system=focus)
        if len(speakers):
            figures[f"speaker_distribution_{task}"] = SpeakerDistributionDisplay.from_frame(
                speakers, system=focus).figure_
    if "fusion_curve" in t:
        figures["fig4_topk_fusion"] = FusionCurveDisplay.from_frame(t["fusion_curve"]).figure_
    if "disagreement" in t:
        for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
            part = rows_where(t["disagreement"], task=task)
            if len(part):
                figures[f"system_disagreement_{task}"] = DisagreementDisplay.from_frame(part).figure_
    return figures
