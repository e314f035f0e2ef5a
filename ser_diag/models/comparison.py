"""Does fusion beat the single modalities? Over seeds, paired, resampling speakers.

Each system is trained with S seeds on the same files. For a metric ``m`` (macro-F1, CCC of
an attribute) the estimate is the seed average of the paired differences

    Δ_m = (1/S) Σ_s [ m(fusion, seed s) − m(single, seed s) ],

and its interval a percentile bootstrap over speakers: every resample draws the evaluation
speakers with replacement and scores all 2S runs on that same draw (paired across systems and
seeds). The seeds are fixed training runs, not resampled: the interval says how far the
speakers of the split could move Δ given these S trainings; ``seeds_fusion_ahead`` counts the
seeds whose own difference is positive. Verdict: ``"fusion better"`` when ``ci_low > 0``,
``"fusion worse"`` when ``ci_high < 0``, otherwise ``"tie"``.

Torch-free (it only reads prediction files), so the diagnostics can render its table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ser_diag.io import merge, read_labels, read_predictions
from ser_diag.resampling import Resampling, attribute_statistics, bootstrap, categorical_statistics
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary

FUSION = "late_fusion"
SINGLES = ("audio_egemaps", "text_minilm")
#: Systems a seed comparison trains (:func:`ser_diag.models.pipeline.run_reference_pipeline`).
COMPARISON_SYSTEMS = SINGLES + (FUSION,)
METRICS = ("macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom")
VERDICTS = ("fusion better", "fusion worse", "tie")
#: Name of the table in the diagnostics (``tables/<name>.csv``) and in the pipeline folder.
TABLE_NAME = "fusion_vs_single_modality"


def verdict(ci_low: float, ci_high: float) -> str:
    """``"fusion better"`` if the interval is above 0, ``"fusion worse"`` if below, else ``"tie"``.

    >>> verdict(0.01, 0.2), verdict(-0.3, -0.1), verdict(-0.05, 0.1)
    ('fusion better', 'fusion worse', 'tie')
    """
    if ci_low > 0:
        return "fusion better"
    if ci_high < 0:
        return "fusion worse"
    return "tie"


def seed_run_name(system: str, seed: int) -> str:
    """Name of one seed's run in a merged frame: ``late_fusion@seed2``."""
    return f"{system}@seed{seed}"


def _metrics(vocabulary: Vocabulary) -> tuple[str, ...]:
    """macro-F1 and the CCC of each of the vocabulary's attributes (MSP-Podcast: :data:`METRICS`)."""
    return ("macro_f1",) + tuple(f"ccc_{a}" for a in vocabulary.attribute_names)


def _attribute_statistics(true: np.ndarray, pred: np.ndarray, vocabulary: Vocabulary):
    """:func:`ser_diag.resampling.attribute_statistics` keyed by the vocabulary's attribute names."""
    if vocabulary.attribute_names == MSP_PODCAST.attribute_names:
        return attribute_statistics(true, pred)
    from ser_diag.resampling.scorers import _AttributeScorer, _single
    return _single(_AttributeScorer(true, pred, 0, vocabulary.attribute_names))


def _statistics(merged: pd.DataFrame, task: str, runs: list[str], vocabulary: Vocabulary = MSP_PODCAST):
    """One bootstrap statistic per run, all on the same file order (the merged frame's)."""
    parts = {run: part.sort_values("FileName", kind="stable") for run, part in merged.groupby("system")}
    missing = [run for run in runs if run not in parts]
    if missing:
        raise ValueError(f"no {task} predictions of {', '.join(missing)}")
    first = parts[runs[0]]
    for run in runs:
        if not np.array_equal(parts[run]["FileName"].to_numpy(), first["FileName"].to_numpy()):
            raise ValueError(f"{run} is not scored on the same files as {runs[0]}")
    if task == "categorical":
        codes = list(vocabulary.classes)
        true = first["EmoClass_true"].map(codes.index).to_numpy()
        stats = {run: categorical_statistics(true, parts[run]["EmoClass_pred"].map(codes.index).to_numpy(),
                                             vocabulary.classes)
                 for run in runs}
    else:
        names = vocabulary.attribute_names
        true = first[[f"{a}_true" for a in names]].to_numpy(dtype=float)
        stats = {run: _attribute_statistics(true, parts[run][[f"{a}_pred" for a in names]].to_numpy(dtype=float),
                                            vocabulary)
                 for run in runs}
    return stats, first["SpkrID"].reset_index(drop=True)


def fusion_vs_single_modality(labels: pd.DataFrame, predictions: pd.DataFrame, seeds,
                              fusion: str = FUSION, singles=SINGLES, metrics=None,
                              resampling: Resampling | None = None,
                              vocabulary: Vocabulary = MSP_PODCAST) -> pd.DataFrame:
    """Seed-averaged paired differences fusion − single modality, speakers resampled.

    ``labels``: :func:`ser_diag.io.read_labels` of the evaluated split; ``predictions``:
    prediction rows (:func:`ser_diag.io.read_predictions` layout) of every run, whose
    ``system`` column is :func:`seed_run_name` ``(system, seed)``; ``seeds``: the seeds.
    ``resampling``: default 1000 resamples of speakers (its ``unit`` is always speaker).
    ``vocabulary``: the corpus' (default MSP-Podcast); ``metrics`` default to macro-F1 and
    ``ccc_<attribute>`` of each of its attributes (MSP-Podcast: :data:`METRICS`).
    One row per (single, metric): ``fusion, single, metric, estimate`` (Δ above),
    ``ci_low, ci_high, level, unit, n_boot, n_seeds, seeds_fusion_ahead, fusion_estimate,
    single_estimate`` (seed-averaged metrics), ``n`` (files), ``n_speakers``, ``verdict``.
    """
    settings = Resampling.of(resampling).replace(unit="speaker")
    metrics = _metrics(vocabulary) if metrics is None else tuple(metrics)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("no seeds to compare")
    rows = []
    for task in ("categorical", "attributes"):
        wanted = [m for m in metrics if (m == "macro_f1") == (task == "categorical")]
        if not wanted:
            continue
        merged = merge(labels, predictions, task, vocabulary=vocabulary)
        runs = [seed_run_name(s, k) for s in (fusion, *singles) for k in seeds]
        stats, speakers = _statistics(merged, task, runs, vocabulary)
        if speakers.isna().any():
            raise ValueError("speaker-resampled comparison needs a SpkrID for every file")

        def statistic(w, stats=stats, wanted=wanted):
            values = {run: stat(w) for run, stat in stats.items()}
            out = {}
            for single in singles:
                for metric in wanted:
                    per_seed = [values[seed_run_name(fusion, k)][metric] - values[seed_run_name(single, k)][metric]
                                for k in seeds]
                    out[f"{single}|{metric}"] = np.mean(per_seed, axis=0)
            return out

        frame = bootstrap(statistic, len(speakers), n_boot=settings.n_boot, groups=speakers,
                          level=settings.level, seed=settings.seed, unit="speaker")
        point = {run: {m: float(v[0]) for m, v in stat(np.ones((1, len(speakers)))).items()}
                 for run, stat in stats.items()}
        for record in frame.to_dict("records"):
            single, metric = record["metric"].split("|")
            fused = [point[seed_run_name(fusion, k)][metric] for k in seeds]
            alone = [point[seed_run_name(single, k)][metric] for k in seeds]
            rows.append({"fusion": fusion, "single": single, "metric": metric, "estimate": record["estimate"],
                         "ci_low": record["ci_low"], "ci_high": record["ci_high"], "level": record["level"],
                         "unit": "speaker", "n_boot": record["n_boot"], "n_seeds": len(seeds),
                         "seeds_fusion_ahead": int(sum(f > a for f, a in zip(fused, alone))),
                         "fusion_estimate": float(np.mean(fused)), "single_estimate": float(np.mean(alone)),
                         "n": len(speakers), "n_speakers": int(speakers.nunique()),
                         "verdict": verdict(record["ci_low"], record["ci_high"])})
    position = {"metric": {m: i for i, m in enumerate(metrics)}, "single": {s: i for i, s in enumerate(singles)}}
    out = pd.DataFrame(rows).sort_values(["metric", "single"], key=lambda c: c.map(position[c.name]), kind="stable")
    return out.reset_index(drop=True)


def seed_runs(pipeline_out: str | os.PathLike, split: str = "Test3") -> dict:
    """``{(system, seed): prediction folder}`` on ``split`` of the seed comparison that a
    :func:`~ser_diag.models.pipeline.run_reference_pipeline` run recorded in its ``pipeline.json``
    (``"comparison": {"seeds": [...], "runs": {system: {seed: {split: folder}}}}``, folders
    relative to ``pipeline_out``)."""
    out = Path(pipeline_out)
    summary = json.loads((out / "pipeline.json").read_text(encoding="utf-8"))
    comparison = summary.get("comparison")
    if not comparison:
        raise ValueError(f"{out / 'pipeline.json'} has no seed comparison (comparison_seeds not set)")
    runs = {}
    for system, by_seed in comparison["runs"].items():
        for seed, folders in by_seed.items():
            if split not in folders:
                raise ValueError(f"{out / 'pipeline.json'}: no {split} predictions of {system} seed {seed}")
            runs[(system, int(seed))] = out / folders[split]
    return runs


def compare_pipeline_seeds(corpus: str | os.PathLike, pipeline_out: str | os.PathLike,
                           split: str | tuple[str, ...] = "Test3", resampling: Resampling | None = None) -> pd.DataFrame:
    """:func:`fusion_vs_single_modality` of the seed runs of a pipeline run, scored on ``split``
    (or on the files of several splits together, e.g. ``("Development", "Test3")``)."""
    splits = (split,) if isinstance(split, str) else tuple(split)
    frames = []
    for part in splits:
        for (system, seed), folder in seed_runs(pipeline_out, part).items():
            frames.append(read_predictions(folder, system=seed_run_name(system, seed)))
    predictions = pd.concat(frames, ignore_index=True)
    labels = read_labels(corpus)
    labels = labels[labels["Split_Set"].isin(splits)].reset_index(drop=True)
    seeds = sorted({int(name.rsplit("@seed", 1)[1]) for name in predictions["system"].unique()})
    return fusion_vs_single_modality(labels, predictions, seeds, resampling=resampling)


__all__ = ["COMPARISON_SYSTEMS", "TABLE_NAME", "VERDICTS", "compare_pipeline_seeds", "fusion_vs_single_modality",
           "seed_run_name", "seed_runs", "verdict"]
