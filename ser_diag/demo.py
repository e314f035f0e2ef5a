"""The main job on the embedded default: everything ser_diag does, end to end, offline.

1. a simulated challenge (8 systems with planted effects, MSP-Podcast layout) → evaluate →
   paper figures (``figures/simulated_challenge``) → HTML report;
2. unless ``skip_models``: a synthetic espeak speech corpus → cached features → reference
   audio-only / text-only / fusion systems → their predictions → the same diagnostics
   (``figures/reference_models``).

All data are synthetic; every output says so (:data:`ser_diag.schema.SYNTHETIC_BANNER`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt

from ser_diag.outputs import atomic_write_text
from ser_diag.resampling import Resampling
from ser_diag.schema import SYNTHETIC_BANNER


log = logging.getLogger(__name__)


def _diagnose(data_root: Path, predictions: Path, figures_dir: Path, report_dir: Path,
              split: str, resampling: Resampling, extra_tables=None) -> dict:
    """Evaluate, write the paper figures and the HTML report for one set of systems, from one
    computation of the diagnostics (the evaluation printed is the one the figures show).
    ``extra_tables``: ``{name: frame}`` added to the diagnostics' tables before writing (they
    then appear in ``tables/``, ``summary.md`` where it renders them, and the report)."""
    from ser_diag.diagnostics import build_figures, compute_diagnostics
    from ser_diag.evaluate import format_text
    from ser_diag.figures import write_figures_from
    from ser_diag.report import write_report_from

    diag = compute_diagnostics(data_root, predictions, split=split, resampling=resampling)
    diag.tables.update(extra_tables or {})
    print(format_text(diag.evaluation))
    figures = build_figures(diag)
    try:
        write_figures_from(diag, figures_dir, figures=figures)
        log.info("writing the HTML report ...")
        write_report_from(diag, report_dir, figures=figures)
    finally:
        for fig in figures.values():
            plt.close(fig)
    log.info("figures: %s   report: %s", figures_dir, report_dir / "index.html")
    return diag.evaluation


def run_demo(out: Path = Path("data/demo"), figures_dir: Path = Path("figures"),
             quick: bool = False, skip_models: bool = False) -> dict:
    """Run the whole demo; return the evaluation results by part."""
    out, figures_dir = Path(out), Path(figures_dir)
    print(SYNTHETIC_BANNER)
    resampling = Resampling(n_boot=200 if quick else 1000)
    results = {}
    t0 = time.perf_counter()

    from ser_diag.simulate import simulate_challenge
    challenge = out / "simulated_challenge"
    log.info("simulating a challenge (8 systems, Development split) ...")
    simulate_challenge(challenge, seed=0, n_systems=8, split="Development",
                       n=1500 if quick else None)
    results["simulated_challenge"] = _diagnose(
        challenge, challenge / "predictions", figures_dir / "simulated_challenge",
        out / "reports" / "simulated_challenge", "Development", resampling)

    if not skip_models:
        from ser_diag.models.comparison import TABLE_NAME, compare_pipeline_seeds
        from ser_diag.models.corpus import make_corpus
        from ser_diag.models.pipeline import run_reference_pipeline
        corpus, models_out = out / "corpus", out / "reference_models"
        log.info("synthesising the demo speech corpus (espeak-ng) ...")
        make_corpus(corpus, n=240 if quick else 600, seed=0)
        log.info("extracting features and training reference systems (fusion and single modalities: 3 seeds) ...")
        predictions = run_reference_pipeline(corpus, models_out, quick=quick, comparison_seeds=3)
        comparison = compare_pipeline_seeds(corpus, models_out, split="Test3", resampling=resampling)
        results["reference_models"] = _diagnose(
            corpus, predictions, figures_dir / "reference_models", out / "reports" / "reference_models",
            "Test3", resampling, extra_tables={TABLE_NAME: comparison})

    atomic_write_text(out / "demo_results.json", json.dumps(results, indent=2))
    log.info(f"done in {time.perf_counter() - t0:.0f} s. {SYNTHETIC_BANNER}")
    return results
