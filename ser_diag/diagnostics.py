"""Every diagnostic of ser_diag computed once, as tidy tables, for figures, report and explorer.

``compute_diagnostics`` loads and validates the inputs (nothing is written before that), then
runs each analysis exactly once; :func:`build_figures` turns the tables into the paper's
figures through the Display classes. ``figures.py`` and ``report`` only write what this
module returns, so a number in a figure, a CSV, ``summary.md`` and the HTML report is the same
number.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ser_diag.errors import InputError, quoted
from ser_diag.analysis import bias, binned, confusion, fusion, regression_to_mean
from ser_diag.analysis.beyond import beyond_tables
from ser_diag.evaluate import ccc_convention, evaluate_merged
from ser_diag.parallel import fork_map, workers_for
from ser_diag.evaluation import Evaluation, TaskData, aligned, vocabulary_of
from ser_diag.resampling import Resampling, bootstrap_metrics, shared_weights, uncached_weights
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

log = logging.getLogger(__name__)

#: Paper figure each attribute's binned matrix mirrors (Interspeech 2025 challenge, Fig. 3b-d).
BINNED_FIGURE = {"EmoAct": "fig3b", "EmoVal": "fig3c", "EmoDom": "fig3d"}
#: The binned figures of a vocabulary's attributes, in their order (MSP-Podcast: :data:`BINNED_FIGURE`).
BINNED_SECTIONS = ("fig3b", "fig3c", "fig3d")
HEADLINE = {TASK_CATEGORICAL: "macro_f1", TASK_ATTRIBUTES: "ccc_mean"}


def binned_figures(vocabulary: Vocabulary = MSP_PODCAST) -> dict[str, tuple[str, str]]:
    """``{attribute: (section, file stem)}`` of the binned figures of a corpus' attributes, in
    their order: the first attribute is Fig. 3b, the second 3c, the third 3d; the stem names the
    attribute as people read it (MSP-Podcast: ``EmoAct`` -> ``fig3b_binned_arousal``).

    >>> from ser_diag.vocabulary import IEMOCAP, CREMA_D
    >>> binned_figures(IEMOCAP)["valence"], binned_figures(CREMA_D)
    (('fig3c', 'fig3c_binned_valence'), {})
    """
    out = {}
    for section, attribute in zip(BINNED_SECTIONS, vocabulary.attributes):
        display = re.sub(r"[^0-9A-Za-z_.-]+", "_", attribute.display).strip("_") or attribute.name
        out[attribute.name] = (section, f"{section}_binned_{display}")
    return out


def has_speakers(data) -> bool:
    """Some file of ``data`` (a merged frame or :class:`TaskData`) has a known speaker."""
    return data is not None and "SpkrID" in data.columns and bool(data["SpkrID"].notna().any())


def has_gender(data) -> bool:
    """Some file of ``data`` (a merged frame or :class:`TaskData`) has a known gender."""
    return data is not None and "Gender" in data.columns and bool(data["Gender"].notna().any())


def dropped_sections(data: Evaluation) -> list[str]:
    """One line per section the corpus of ``data`` cannot have, for the notes of
    ``summary.md`` and the report: no attributes, no gender, no speakers.

    >>> from ser_diag.vocabulary import CREMA_D
    >>> dropped_sections(Evaluation(pd.DataFrame(), None, None, vocabulary=CREMA_D))
    ['crema-d has no dimensional attributes: the attribute sections (CCC, binned attributes, regression to the mean) are dropped']
    """
    notes = []
    vocabulary = data.vocabulary
    if not vocabulary.attribute_names:
        notes.append(f"{vocabulary.name} has no dimensional attributes: the attribute sections (CCC, binned "
                     "attributes, regression to the mean) are dropped")
    frames = list(data.tasks().values())
    if frames and not any(has_gender(f) for f in frames):
        notes.append("no file has a known gender: the gender breakdowns are dropped")
    if frames and not any(has_speakers(f) for f in frames):
        notes.append("no file has a known speaker: the per-speaker analyses are dropped and intervals "
                     "resample utterances")
    return notes


@dataclasses.dataclass
class Diagnostics:
    """Inputs and results of one diagnostic run.

    ``data``: the :class:`~ser_diag.evaluation.Evaluation` every analysis read (its
    ``categorical`` / ``attributes`` merged frames are properties here, None if no system gave
    that task); ``settings``: split, n_boot, level, unit (resolved: "speaker" when any task resamples
    speakers), unit_setting (as asked: auto/speaker/utterance), resampling (the
    :class:`~ser_diag.resampling.Resampling`), seed, ddof, ccc_convention, bin scheme, the
    focus system of each task (the best by its headline metric, shown in single-system
    figures), ``worst`` of each task, ``baseline`` (a system name or None: no baseline
    system) and ``notes`` (analyses skipped or undefined, for people);
    ``evaluation``: the ``evaluate`` JSON; ``tables``: name -> tidy frame.
    """

    data: Evaluation
    settings: dict
    evaluation: dict
    tables: dict[str, pd.DataFrame]

    @property
    def categorical(self) -> pd.DataFrame | None:
        return self.data.to_frame(TASK_CATEGORICAL)

    @property
    def attributes(self) -> pd.DataFrame | None:
        return self.data.to_frame(TASK_ATTRIBUTES)

    @property
    def labels(self) -> pd.DataFrame:
        return self.data.labels

    @property
    def synthetic(self) -> bool:
        return self.data.synthetic

    @property
    def systems(self) -> list[str]:
        return self.data.systems

    @property
    def vocabulary(self) -> Vocabulary:
        """The corpus' :class:`~ser_diag.vocabulary.Vocabulary` (classes, attributes, scales)."""
        return self.data.vocabulary


def _best(scores: pd.DataFrame, metric: str) -> tuple[str, str]:
    """(best, worst) system by ``metric`` in a :func:`bootstrap_metrics` frame."""
    ranked = scores[scores["metric"] == metric].sort_values("estimate", ascending=False, kind="stable")
    return str(ranked["system"].iloc[0]), str(ranked["system"].iloc[-1])


def _with_task(frame: pd.DataFrame, task: str) -> pd.DataFrame:
    return frame.assign(task=task)[["task"] + [c for c in frame.columns if c != "task"]]


def diagnose(categorical: pd.DataFrame | Evaluation | None, attributes: pd.DataFrame | None = None,
             labels: pd.DataFrame | None = None, split: str | None = None,
             resampling: Resampling | None = None, scheme: str = "unit",
             min_speaker_utterances: int = 10, baseline: str | None = None, workers: int | None = None,
             vocabulary: Vocabulary | None = None, **legacy) -> Diagnostics:
    """Run every analysis on already merged frames (see :func:`compute_diagnostics`), or on an
    :class:`~ser_diag.evaluation.Evaluation` passed as ``categorical`` (then ``attributes`` and
    ``labels`` are None). ``vocabulary``: the corpus (default: the frames',
    :func:`~ser_diag.evaluation.vocabulary_of`; MSP-Podcast's for frames without one).

    ``resampling``: one :class:`~ser_diag.resampling.Resampling` for every interval, test and
    split (default: 1000 resamples of speakers whenever ``SpkrID`` is known; the older
    keywords ``n_boot, level, by_speaker, seed, ddof`` override its fields). ``baseline``:
    the system drawn as baseline (default: one whose name contains "baseline", else none;
    ``settings["baseline"]`` is None then). All analyses run inside
    :func:`ser_diag.resampling.shared_weights`, so the resamples of a set of files are drawn
    once and shared (same numbers, less drawing). After the metrics table, the independent
    analyses run side by side on up to ``workers`` processes (default: the cores;
    :func:`ser_diag.parallel.fork_map`, serial where other threads run): the same tables as
    one after the other.
    """
    if isinstance(categorical, Evaluation):
        if attributes is not None or labels is not None:
            raise ValueError("pass an Evaluation alone (its tasks and labels), not beside frames")
        data = categorical
        if vocabulary is not None and vocabulary != data.vocabulary:
            raise ValueError(f"the Evaluation was read with {data.vocabulary.name}, not {vocabulary.name}")
    else:
        data = Evaluation.from_frames(categorical, attributes, labels, vocabulary=vocabulary)
    if data.categorical is None and data.attributes is None:
        raise ValueError("no system submitted either task")
    settings = Resampling.of(resampling, **legacy)
    with shared_weights():
        return _diagnose(data, split, settings, scheme, min_speaker_utterances, baseline, workers)


def _resolved_unit(settings: Resampling, frames) -> str:
    units = {settings.unit_for(f["SpkrID"] if "SpkrID" in f.columns else None) for f in frames}
    return "speaker" if "speaker" in units else "utterance"


def unit_comparison(frames: dict[str, pd.DataFrame], settings: Resampling,
                    scores: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """Headline-metric CIs of every system resampled by utterance and by speaker side by side:
    ``task, system, metric, estimate, ci_low_utterance, ci_high_utterance, width_utterance,
    ci_low_speaker, ci_high_speaker, width_speaker, width_ratio`` (speaker / utterance).
    A ratio above 1 is how much an utterance bootstrap understates the uncertainty when
    speakers contribute many, correlated utterances. Empty when no speaker is known.
    ``scores``: :func:`bootstrap_metrics` frames per task already computed with ``settings``
    (reused for the unit they resampled, instead of bootstrapping again)."""
    parts = []
    for task, merged in frames.items():
        if merged is None or "SpkrID" not in merged.columns or not merged["SpkrID"].notna().any():
            continue
        metrics_ = [HEADLINE[task]] + ([] if task == TASK_CATEGORICAL else
                                       [f"ccc_{a}" for a in vocabulary_of(merged).attribute_names])
        both = {}
        for unit in ("utterance", "speaker"):
            known = (scores or {}).get(task)
            if known is not None and set(known["unit"]) == {unit}:
                table = known
            else:  # resamples nothing else uses (utterances beside speakers): not kept
                with uncached_weights():
                    table = bootstrap_metrics(merged, settings.replace(unit=unit))
            both[unit] = table[table["metric"].isin(metrics_)].set_index(["system", "metric"])
        utt, spk = both["utterance"], both["speaker"]
        out = pd.DataFrame({"estimate": utt["estimate"],
                            "ci_low_utterance": utt["ci_low"], "ci_high_utterance": utt["ci_high"],
                            "width_utterance": utt["ci_high"] - utt["ci_low"],
                            "ci_low_speaker": spk["ci_low"], "ci_high_speaker": spk["ci_high"],
                            "width_speaker": spk["ci_high"] - spk["ci_low"]})
        out["width_ratio"] = out["width_speaker"] / out["width_utterance"]
        out["level"], out["n_boot"] = settings.level, settings.n_boot
        parts.append(out.reset_index().assign(task=task))
    columns = ["task", "system", "metric", "estimate", "ci_low_utterance", "ci_high_utterance",
               "width_utterance", "ci_low_speaker", "ci_high_speaker", "width_speaker", "width_ratio",
               "level", "n_boot"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def _n_units(data: TaskData, rs: Resampling) -> int:
    """Number of resampling units (speakers, unknown ones counted one per file, or files)."""
    speakers = data.speakers()
    if rs.unit_for(speakers) == "utterance":
        return data.n_files
    return int(speakers.nunique() + speakers.isna().sum())


def _registrar(items: list) -> Callable:
    """A decorator factory: ``@register(name, cost)`` appends ``(name, cost, function)`` to
    ``items`` (the analyses or figure groups :func:`ser_diag.parallel.fork_map` shares out)."""
    def register(name: str, cost: float):
        def add(function):
            items.append((name, cost, function))
            return function
        return add
    return register


def _stages(categorical, attributes, labels, rs: Resampling, scheme, min_speaker_utterances, base_name,
            settings, scores, distributions, n_systems: int) -> list[tuple[str, float, Callable[[], tuple[dict, list]]]]:
    """The analyses after the metrics table, independent of each other: ``(name, cost, run)``,
    ``run()`` -> ``(tables, notes)`` (the evaluation JSON under ``tables["evaluation"]``).
    ``cost``: rough share of the CPU time at many systems (166 systems x 32k files), to split
    the stages between processes; the results do not depend on which process runs a stage."""
    n_boot = rs.n_boot
    stages: list = []
    stage = _registrar(stages)

    @stage("evaluation", 4.5)
    def _():
        return {"evaluation": evaluate_merged(categorical, attributes, resampling=rs, split=settings["split"],
                                              scores=(scores.get(TASK_CATEGORICAL),
                                                      scores.get(TASK_ATTRIBUTES)))}, []

    if n_boot > 0:
        @stage("unit_comparison", 14.0)
        def _():
            return {"unit_comparison": unit_comparison({TASK_CATEGORICAL: categorical,
                                                        TASK_ATTRIBUTES: attributes}, rs, scores)}, []

    if categorical is not None:
        @stage("confusion", 1.6)
        def _():
            out = {}
            focus = settings["focus"][TASK_CATEGORICAL]
            has_base = base_name is not None and bool((categorical["system"] == base_name).any())
            other = base_name if has_base else settings["worst"][TASK_CATEGORICAL]
            out["confusion"] = confusion.confusion_table(categorical, normalize="true")
            out["minority_destinations"] = confusion.minority_destinations(categorical, system=focus,
                                                                           resampling=rs)
            if focus != other:
                out["confusion_difference"] = confusion.confusion_difference(categorical, focus, other)
            return out, list(out["minority_destinations"].attrs.get("notes", []))

    if attributes is not None:
        @stage("binned", 7.8)
        def _():
            out = {"binned": binned.binned_matrix(attributes, scheme=scheme),
                   "per_bin": binned.per_bin_table(attributes, scheme=scheme, ddof=rs.ddof)}
            out["extreme_bin_recall"] = regression_to_mean.extreme_bin_recall(attributes, scheme=scheme,
                                                                              matrix=out["binned"])
            return out, []

        @stage("shrinkage", 8.0)
        def _():
            shrinkage = regression_to_mean.shrinkage_table(attributes, resampling=rs)
            return {"shrinkage": shrinkage}, list(shrinkage.attrs.get("notes", []))

        @stage("bin_means", 7.2)
        def _():
            return {"bin_means": regression_to_mean.bin_means(attributes, scheme=scheme, resampling=rs)}, []

        @stage("recalibration", 9.5)
        def _():
            if _n_units(attributes, rs) >= 4:
                return {"recalibration": regression_to_mean.recalibration_whatif(attributes, resampling=rs)}, []
            return {}, ["attributes: fewer than 4 resampling units (speakers or files); recalibration what-if "
                        "skipped"]

    for task, merged in ((TASK_CATEGORICAL, categorical), (TASK_ATTRIBUTES, attributes)):
        if merged is None:
            continue

        if has_gender(merged):                      # else one note (dropped_sections)
            @stage(f"gender_{task}", 6.5)
            def _(task=task, merged=merged):
                out = {}
                pair = (("Female", "Male") if set(merged["Gender"].dropna().unique()) >= {"Female", "Male"}
                        else (None, None))
                by_group, group_gaps = bias.group_audit(merged, by="Gender", a=pair[0], b=pair[1], resampling=rs,
                                                        n_permutations=n_boot)
                out["gender_metrics"] = _with_task(by_group, task)
                if group_gaps is not None:
                    out["gender_gaps"] = _with_task(group_gaps, task)
                if task == TASK_CATEGORICAL:
                    out["class_recall_by_gender"] = bias.per_class_recall_by_group(merged, by="Gender",
                                                                                   group_table=by_group)
                found = [t for t in (by_group, group_gaps) if t is not None]
                return out, list(dict.fromkeys(n for t in found for n in t.attrs.get("notes", [])))

        if has_speakers(merged):                    # else one note (dropped_sections)
            @stage(f"speakers_{task}", 3.2)
            def _(task=task, merged=merged):
                per_speaker = bias.speaker_metrics(merged, min_utterances=min_speaker_utterances, ddof=rs.ddof)
                if len(per_speaker):
                    return {"speaker_metrics": _with_task(per_speaker, task)}, []
                return {}, [f"{task}: no speaker has {min_speaker_utterances} or more utterances; "
                            "per-speaker analyses skipped"]

        if merged["system"].nunique() > 1:
            @stage(f"disagreement_{task}", 5.0)
            def _(merged=merged):
                return {"disagreement": fusion.pairwise_disagreement(merged)}, []

    frames = [aligned(f) for f in (categorical, attributes) if f is not None]
    if n_systems > 1 and min(_n_units(f, rs) for f in frames) < 4:
        stages.append(("fusion", 0.0, lambda: ({}, ["fewer than 4 resampling units (speakers or files): top-K "
                                                   "fusion skipped"])))
    elif n_systems > 1:
        @stage("fusion", 14.5)
        def _():
            log.info("top-K fusion curves ...")
            curve = fusion.topk_fusion_curve(categorical, attributes, resampling=rs,
                                             baseline=base_name if base_name is not None else None)
            return {"fusion_curve": curve, "fusion_ranking": curve.attrs["ranking"]}, []

    @stage("beyond", 13.8)
    def _():
        log.info("leaderboard ranks, annotator agreement, podcasts and durations ...")
        beyond = beyond_tables(categorical, attributes, labels, resampling=rs, distributions=distributions)
        return beyond, beyond.pop("beyond_notes")["note"].tolist()

    return stages


#: Stages that hold the most memory at many systems (300-700 MB each at 166 systems x 32k
#: files): never two at a time (:func:`ser_diag.parallel.fork_map`), to bound the peak.
HEAVY_STAGES = ("shrinkage", "fusion", "beyond", "gender_attributes")
#: Tables in the order the report lists them (those of the beyond stage follow, in their order).
TABLE_ORDER = ("metrics", "unit_comparison", "confusion", "minority_destinations", "confusion_difference",
               "binned", "per_bin", "shrinkage", "bin_means", "extreme_bin_recall", "recalibration",
               "gender_metrics", "gender_gaps", "speaker_metrics", "disagreement", "class_recall_by_gender",
               "fusion_curve", "fusion_ranking")
#: Tables made per task and stacked (categorical first).
PER_TASK_TABLES = ("gender_metrics", "gender_gaps", "speaker_metrics", "disagreement")


def _merge_parts(results: list[tuple[dict, list]]) -> tuple[dict, list]:
    """Tables (in :data:`TABLE_ORDER`) and notes (in the stages' order) of the stages' results;
    the per-task parts of a table stacked in the stages' order."""
    parts, notes = {}, []
    for found, more in results:
        for name, table in found.items():
            parts.setdefault(name, []).append(table)
        notes += more
    names = [n for n in TABLE_ORDER if n in parts] + [n for n in parts if n not in TABLE_ORDER]
    return {name: pd.concat(parts[name], ignore_index=True) if name in PER_TASK_TABLES else parts[name][-1]
            for name in names}, notes


def _diagnose(data: Evaluation, split, rs: Resampling, scheme, min_speaker_utterances, baseline,
              workers=None) -> Diagnostics:
    n_boot = rs.n_boot
    tables: dict[str, pd.DataFrame] = {}
    categorical, attributes, labels = data.categorical, data.attributes, data.labels
    frames = list(data.tasks().values())
    systems = data.systems                                   # order of appearance
    if baseline is not None and baseline not in systems:
        raise ValueError(f"baseline {baseline!r} is not one of the systems {systems}")
    base_name = baseline if baseline is not None else fusion.default_baseline(systems)
    settings = dict(split=split, n_boot=n_boot, level=rs.level, seed=rs.seed, ddof=rs.ddof, scheme=scheme,
                    unit=_resolved_unit(rs, frames), unit_setting=rs.unit, resampling=rs,
                    ccc_convention=ccc_convention(rs.ddof), focus={}, worst={}, baseline=base_name,
                    notes=[])
    scores, distributions = {}, {}
    # The metrics table first, as evaluate computes it (BLAS with its threads: the same bits as
    # the evaluate command); the analyses after it side by side on the cores.
    for task, merged in ((TASK_CATEGORICAL, categorical), (TASK_ATTRIBUTES, attributes)):
        if merged is None:
            continue
        distributions[task] = {}               # the resamples, reused by the leaderboard ranks
        scores[task] = bootstrap_metrics(merged, rs, distributions=distributions[task])
        settings["notes"] += scores[task].attrs.get("notes", [])    # e.g. intervals over few speakers
        settings["focus"][task], settings["worst"][task] = _best(scores[task], HEADLINE[task])
    tables["metrics"] = pd.concat([_with_task(s, t) for t, s in scores.items()], ignore_index=True)
    stages = _stages(categorical, attributes, labels, rs, scheme, min_speaker_utterances, base_name,
                     settings, scores, distributions, len(systems))
    n_workers = workers_for(workers, len(stages))
    log.info("%d analyses on %d process%s ...", len(stages), n_workers, "es" if n_workers > 1 else "")
    # One BLAS thread per process, however many processes: threads competing with the other
    # process (or another program) spin and waste the cores, and the same single-threaded sums
    # make every table the same bits on one process or several and on any number of cores.
    with threadpool_limits(1, user_api="blas"):
        results = fork_map(lambda stage: stage[2](), stages, costs=[stage[1] for stage in stages],
                           workers=n_workers, name="ser_diag-diagnostics",
                           heavy=[stage[0] in HEAVY_STAGES for stage in stages])
    del distributions, stages
    found, notes = _merge_parts(results)
    del results
    evaluation = found.pop("evaluation")
    tables.update(found)
    settings["notes"] = list(dict.fromkeys(dropped_sections(data) + settings["notes"] + notes))
    if data.vocabulary != MSP_PODCAST:               # the tables name the corpus' classes and attributes
        for table in tables.values():
            table.attrs["vocabulary"] = data.vocabulary
    return Diagnostics(data, settings, evaluation, tables)


def compute_diagnostics(labels_path: str | os.PathLike, predictions_path: str | os.PathLike,
                        split: str | None = "Development", resampling: Resampling | None = None,
                        intersection: bool = False, scheme: str = "unit", baseline: str | None = None,
                        vocabulary: Vocabulary | None = None, target: str | None = None, attributes=None,
                        **legacy) -> Diagnostics:
    """Load and validate labels and predictions (:func:`ser_diag.io.load`), then :func:`diagnose`
    with ``resampling`` (:class:`~ser_diag.resampling.Resampling`) and ``baseline``.
    ``vocabulary``, ``target``, ``attributes``: the corpus (:meth:`Evaluation.load`).

    Bad input raises :class:`ser_diag.errors.InputError` before any analysis runs.
    """
    settings = Resampling.of(resampling, **legacy)
    corpus = {k: v for k, v in (("target", target), ("attributes", attributes)) if v is not None}
    data = Evaluation.load(labels_path, predictions_path, split=split, intersection=intersection,
                           vocabulary=vocabulary, **corpus)
    systems = data.systems
    if baseline is not None and baseline not in set(systems):
        raise InputError(predictions_path, None, f"no system named {quoted(baseline)} (the baseline asked "
                         f"for); systems: {', '.join(map(str, systems))}")
    # progress starts once the inputs are valid, so bad input stays one line on stderr
    log.info("read %d systems on the %s split; computing diagnostics (%s) ...", len(systems), split,
             f"{settings.n_boot} resamples, unit {settings.unit}" if settings.n_boot else "no resampling")
    return diagnose(data, split=split, resampling=settings, scheme=scheme, baseline=baseline)


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
    difference matrix compares it with the baseline system (the worst when there is none).
    The figures of :func:`figure_builders`, in their order.
    """
    figures: dict[str, plt.Figure] = {}
    for _, _, build in figure_builders(diag):
        figures.update(build())
    return figures


def figure_builders(diag: Diagnostics) -> list[tuple[str, float, Callable[[], dict]]]:
    """The figure set in independent groups ``(name, cost, build)``, ``build()`` -> ``{stem:
    Figure}`` (together: :func:`build_figures`), so that groups can be drawn and saved side by
    side (:func:`ser_diag.figures.write_diagnostics`). ``cost``: rough seconds x 200 of
    building and saving the group at many systems, to share the work between processes."""
    t, s, voc = diag.tables, diag.settings, diag.vocabulary
    groups: list = []
    group = _registrar(groups)

    if diag.categorical is not None:
        @group("confusion", 250)
        def _():
            # Imported here so that computing tables never pays for the plotting stack.
            from ser_diag.plots.confusion import ConfusionDifferenceDisplay, ConfusionMatrixDisplay
            focus, figures = s["focus"][TASK_CATEGORICAL], {}
            d = ConfusionMatrixDisplay.from_frame(rows_where(t["confusion"], system=focus), system=focus,
                                                  vocabulary=voc)
            figures["fig3a_confusion_categorical"] = d.figure_
            if "confusion_difference" in t:
                d = ConfusionDifferenceDisplay.from_frame(t["confusion_difference"], vocabulary=voc)
                figures["fig3a_confusion_difference"] = d.figure_
            return figures

    if diag.attributes is not None:
        @group("binned", 300)
        def _():
            from ser_diag.plots.binned import BinnedAttributeDisplay
            from ser_diag.plots.regression_to_mean import RegressionToMeanDisplay
            focus, figures = s["focus"][TASK_ATTRIBUTES], {}
            for attr, (_, stem) in binned_figures(voc).items():
                part = rows_where(t["binned"], system=focus, attribute=attr)
                if len(part):
                    d = BinnedAttributeDisplay.from_frame(part, system=focus, attribute=attr, vocabulary=voc)
                    figures[stem] = d.figure_
            shrink = rows_where(t["shrinkage"], system=focus)
            d = RegressionToMeanDisplay.from_frame(rows_where(t["bin_means"], system=focus), shrinkage=shrink,
                                                   vocabulary=voc)
            figures["regression_to_mean_extremes"] = d.figure_
            return figures

    @group("gender_and_speakers", 270)
    def _():
        from ser_diag.plots.bias import GroupGapDisplay, SpeakerDistributionDisplay
        figures = {}
        for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
            if "gender_metrics" not in t or task not in s["focus"]:
                continue
            focus = s["focus"][task]
            frame = rows_where(t["gender_metrics"], task=task, system=focus)
            gaps = rows_where(t["gender_gaps"], task=task, system=focus) if "gender_gaps" in t else None
            if len(frame):
                figures[f"gender_audit_{task}"] = GroupGapDisplay.from_frame(
                    frame, gaps, system=focus, vocabulary=voc, title=f"{focus}: {task} metrics by gender").figure_
            speakers = rows_where(t["speaker_metrics"], task=task, system=focus) if "speaker_metrics" in t else ()
            if len(speakers):
                figures[f"speaker_distribution_{task}"] = SpeakerDistributionDisplay.from_frame(
                    speakers, system=focus).figure_
        return figures

    if "fusion_curve" in t:
        @group("fusion", 190)
        def _():
            from ser_diag.plots.fusion import FusionCurveDisplay
            return {"fig4_topk_fusion": FusionCurveDisplay.from_frame(t["fusion_curve"]).figure_}

    if "disagreement" in t:
        for task in (TASK_CATEGORICAL, TASK_ATTRIBUTES):
            @group(f"disagreement_{task}", 300)
            def _(task=task):
                from ser_diag.plots.fusion import DisagreementDisplay
                from ser_diag.plots.ranks import ranked_systems
                part = rows_where(t["disagreement"], task=task)
                if not len(part):
                    return {}
                return {f"system_disagreement_{task}": DisagreementDisplay.from_frame(
                    part, order=ranked_systems(t, task)).figure_}  # the best first when there are many

    from ser_diag.plots.ranks import BEYOND_FIGURES
    for stem, cost in zip(BEYOND_FIGURES, (450, 650, 160, 190, 100)):
        @group(stem, cost)
        def _(stem=stem):
            from ser_diag.plots.ranks import beyond_figures
            return beyond_figures(t, s["focus"], only={stem})
    return groups
