"""The reference systems on a corpus in MSP-Podcast layout, end to end, on CPU.

``run_reference_pipeline(corpus, out)`` trains the systems of ``configs/<system>.json``
(:data:`REFERENCE_SYSTEMS`, the same files ``ser-diag train --config`` reads); it extracts features once (eGeMAPS functionals and
low-level descriptors for audio, MiniLM-L6 sentence and token embeddings for text), trains

=================  ===================================  ==========================================
system             features                             head / loss
=================  ===================================  ==========================================
audio_egemaps      eGeMAPS functionals (88)             MLP; weighted CE + (1-CCC)
text_minilm        MiniLM mean embedding (384)          MLP; weighted CE + (1-CCC)
late_fusion        both of the above                    concatenation MLP; weighted CE + (1-CCC)
cross_attention    eGeMAPS LLDs per 100 ms + MiniLM     cross-modal attention; weighted CE + (1-CCC)
                   token embeddings
late_fusion_focal  as late_fusion                       focal (gamma 2, sqrt-inverse alpha)
late_fusion_soft   as late_fusion                       CE to annotator vote distributions
=================  ===================================  ==========================================

(``quick=True``: the first four, fewer epochs) and writes each system's predictions for the
Development files to ``<out>/predictions/<system>/``, for Test3 to
``<out>/predictions_test3/<system>/``, plus ``<out>/pipeline.json``.

``comparison_seeds=3``: ``audio_egemaps``, ``text_minilm`` and ``late_fusion`` are also trained
with seeds ``seed+1, seed+2`` (predictions under ``<out>/seeds/seed<k>/``; the features are the
same), and ``pipeline.json`` records every run of that comparison under ``"comparison"``; it
is scored by :func:`ser_diag.models.comparison.compare_pipeline_seeds`.

Speed (the README's main command must finish in minutes on 2 CPU cores): each encoder runs once
for all the levels the systems need (:func:`ser_diag.models.features.extract_feature_levels`:
eGeMAPS functionals and descriptors from one openSMILE pass, MiniLM tokens and their mean from
one forward pass), and torch runs on ``num_threads`` threads (default 1: the heads are tiny, and
on a shared 2-core machine one thread was about 6x faster per cross-attention epoch than two
competing for the cores; ``bench/bench_pipeline.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ser_diag.precision import dumps_json
from ser_diag.schema import SYNTHETIC_BANNER

CONFIG_DIR = Path(__file__).parent / "configs"
#: Keys of a config file that say where a run reads and writes, not what it trains.
RUN_KEYS = ("system_name", "out_dir", "corpus", "feature_cache", "seed")
PIPELINE_SYSTEMS = ("audio_egemaps", "text_minilm", "late_fusion", "cross_attention", "late_fusion_focal",
                    "late_fusion_soft")
QUICK_SYSTEMS = ("audio_egemaps", "text_minilm", "late_fusion", "cross_attention")


def system_config(name: str) -> dict:
    """The training config of a reference system, read from ``configs/<name>.json`` (the one
    source of truth: ``ser-diag train --config`` reads the same file) without its run keys
    (:data:`RUN_KEYS`)."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"no reference system {name!r}: no {path}")
    return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if k not in RUN_KEYS}


REFERENCE_SYSTEMS: dict[str, dict] = {name: system_config(name) for name in PIPELINE_SYSTEMS}
#: Run settings the pipeline adds to every system (the files hold everything else).
DEFAULTS = {"progress": False}


def _log(msg: str) -> None:
    print(f"[ser_diag models] {msg}", file=sys.stderr, flush=True)


def run_reference_pipeline(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike, quick: bool = False,
                           systems: tuple[str, ...] | None = None, seed: int = 0,
                           split: str = "Test3", num_threads: int | None = 1, comparison_seeds: int = 0) -> Path:
    """Extract features, train the reference systems, write their Development and Test3
    predictions; return the predictions folder of ``split`` (one sub-folder per system:
    ``<out>/predictions_test3`` for Test3, ``<out>/predictions`` for Development).
    ``num_threads``: torch threads while it runs (``None``: leave torch's setting).
    ``comparison_seeds``: number of seeds (``seed, seed+1, ...``) of the fusion-vs-single-modality
    systems (:data:`ser_diag.models.comparison.COMPARISON_SYSTEMS`; 0: no comparison)."""
    import torch

    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    if num_threads:
        torch.set_num_threads(int(num_threads))
    # Deterministic kernels wherever torch has them (warn_only: an op without one warns instead
    # of failing the demo). Runs are then repeatable on one machine and thread count; across
    # thread counts and CPUs float32 sums still differ (README, "Reference models").
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        return _run(Path(corpus_dir), Path(out_dir), quick, systems, seed, split, int(comparison_seeds))
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1], warn_only=previous[2])


def extract_system_features(corpus: Path, names, cache_dir: Path, timings: dict | None = None) -> dict:
    """Feature stores keyed ``"<encoder>/<level>"`` for the systems ``names``: every encoder is
    loaded and run once for all the levels those systems use."""
    from ser_diag.models.encoders import load_encoder
    from ser_diag.models.features import extract_feature_levels

    levels: dict[str, list[str]] = {}
    for name in names:
        for spec in REFERENCE_SYSTEMS[name]["modalities"].values():
            levels.setdefault(spec["encoder"], [])
            if spec["level"] not in levels[spec["encoder"]]:
                levels[spec["encoder"]].append(spec["level"])
    stores = {}
    for encoder_name, wanted in levels.items():
        t = time.perf_counter()
        found = extract_feature_levels(corpus, load_encoder(encoder_name), cache_dir, levels=tuple(wanted),
                                       progress=False)
        stores.update({f"{encoder_name}/{level}": store for level, store in found.items()})
        seconds = round(time.perf_counter() - t, 2)
        if timings is not None:
            timings[f"features {encoder_name}"] = seconds
        _log(f"features {encoder_name} ({' + '.join(wanted)}): in {seconds} s")
    return stores


def _run(corpus: Path, out: Path, quick: bool, systems, seed: int, split: str, comparison_seeds: int) -> Path:
    from ser_diag.io import is_synthetic, read_detailed_labels, read_labels, soft_labels
    from ser_diag.models.comparison import COMPARISON_SYSTEMS
    from ser_diag.models.train import predictions_dir, train

    names = systems or (QUICK_SYSTEMS if quick else tuple(REFERENCE_SYSTEMS))
    extra_seeds = [seed + k for k in range(1, comparison_seeds)]
    # (system, seed, output folder): the main runs, then the comparison's other seeds
    runs = [(name, seed, out) for name in names]
    if comparison_seeds:
        runs += [(name, s, out / "seeds" / f"seed{s}") for s in extra_seeds for name in COMPARISON_SYSTEMS]
        runs += [(name, seed, out / "seeds" / f"seed{seed}") for name in COMPARISON_SYSTEMS if name not in names]
    t0 = time.perf_counter()
    labels = read_labels(corpus)
    detailed = read_detailed_labels(corpus)
    soft = soft_labels(detailed)
    timings = {}
    stores = extract_system_features(corpus, dict.fromkeys(name for name, _, _ in runs), out / "features", timings)
    trained, comparison = [], {}
    for name, run_seed, run_out in runs:
        system = REFERENCE_SYSTEMS[name]
        config = {**system, **DEFAULTS, "system_name": name, "out_dir": str(run_out), "corpus": str(corpus),
                  "seed": run_seed}
        if quick:
            config.update(epochs=15, patience=5)
        features = {m: stores[f"{s['encoder']}/{s['level']}"] for m, s in system["modalities"].items()}
        result = train(config, features=features, labels=labels, soft_labels=soft, detailed_labels=detailed)
        if comparison_seeds and name in COMPARISON_SYSTEMS:
            comparison.setdefault(name, {})[str(run_seed)] = {
                s: str(predictions_dir(run_out, name, s).relative_to(out)) for s in ("Development", "Test3")}
        if run_out != out:
            timings[f"train {name} seed {run_seed}"] = round(result.seconds, 2)
            _log(f"{name} seed {run_seed}: best epoch {result.best_epoch} ({result.seconds:.0f} s)")
            continue
        timings[f"train {name}"] = round(result.seconds, 2)
        _log(f"{name}: best epoch {result.best_epoch}, dev " +
             ", ".join(f"{k} {v:.3f}" for k, v in result.dev_metrics.items() if k in
                       ("macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom")) + f" ({result.seconds:.0f} s)")
        trained.append({"system_name": name, "modalities": {m: s for m, s in system["modalities"].items()},
                        "model": config["model"], "categorical_loss": config["categorical_loss"],
                        "class_weighting": config.get("class_weighting", "inverse"),
                        "attribute_loss": config["attribute_loss"], "epochs_run": result.epochs_run,
                        "best_epoch": result.best_epoch, "dev_metrics": result.dev_metrics,
                        "n_parameters": result.n_parameters})
    synthetic = is_synthetic(corpus)
    if synthetic:
        (out / "SYNTHETIC_DEMO.txt").write_text(SYNTHETIC_BANNER + "\n", encoding="utf-8")
    summary = {"note": SYNTHETIC_BANNER if synthetic else "", "corpus": str(corpus), "quick": quick, "seed": seed, "systems": trained, "seconds": timings,
               "total_seconds": round(time.perf_counter() - t0, 2)}
    if comparison_seeds:
        summary["comparison"] = {"seeds": [seed] + extra_seeds, "runs": comparison}
    (out / "pipeline.json").write_text(dumps_json(summary, indent=2))
    return predictions_dir(out, "", split)


__all__ = ["PIPELINE_SYSTEMS", "REFERENCE_SYSTEMS", "QUICK_SYSTEMS", "system_config", "extract_system_features", "run_reference_pipeline"]
