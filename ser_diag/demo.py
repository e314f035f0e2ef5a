"""The main job on the embedded default: everything ser_diag does, end to end, offline.

1. a simulated challenge (8 systems with planted effects, MSP-Podcast layout) → evaluate →
   paper figures (``figures/simulated_challenge``) → HTML report;
2. unless ``skip_models``: a synthetic espeak speech corpus → cached features → reference
   audio-only / text-only / fusion systems → their predictions; the same diagnostics of the
   committed predictions in ``data/reference_predictions`` (``figures/reference_models``),
   with the fresh predictions compared against them
   (:mod:`ser_diag.models.reference_predictions`).

The committed outputs are the same bytes on any machine: every number is written at the
precision of :mod:`ser_diag.precision`, and float32 training (which differs in its last bits
between CPUs and thread counts) only feeds the figures through the committed predictions.

All data are synthetic; every output says so (:data:`ser_diag.schema.SYNTHETIC_BANNER`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt

from ser_diag.outputs import atomic_write_text, table_csv
from ser_diag.precision import dumps_json
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


def _committed_predictions(models_out: Path, committed: Path, corpus: Path, refresh: bool) -> tuple[Path, dict]:
    """The folder of reference predictions to diagnose (``committed``, written from the fresh
    run ``models_out`` when asked or when it is missing or incomplete) and a summary of how far
    the fresh predictions are from it (the table goes to ``models_out/fresh_vs_committed.csv``)."""
    from ser_diag.models.reference_predictions import export_predictions, fresh_vs_committed, is_complete

    if refresh or not is_complete(committed, models_out):
        log.info("%s the reference predictions in %s from this run", "refreshing" if refresh else "writing",
                 committed)
        export_predictions(models_out, committed)
    table = fresh_vs_committed(models_out, committed, corpus)
    atomic_write_text(models_out / "fresh_vs_committed.csv", table_csv(table, synthetic=True))
    summary = {"committed": str(committed), "refreshed": bool(refresh),
               "class_agreement_min": float(table["class_agreement"].min()),
               "max_abs_diff_prob": float(table["max_abs_diff_prob"].max()),
               "max_abs_diff_attribute": float(table["max_abs_diff_attribute"].max()),
               "max_abs_diff_metric": float(table["max_abs_diff_metric"].max()),
               "systems": {row.pop("folder"): row for row in table.to_dict("records")}}
    print(f"Reference systems: figures/reference_models diagnoses the committed predictions in {committed}. "
          f"This run's fresh predictions (data/demo) differ from them by at most "
          f"{summary['max_abs_diff_attribute']:.2g} (attributes, 1-7 scale) and "
          f"{summary['max_abs_diff_prob']:.2g} (class probabilities); same class on "
          f"{100 * summary['class_agreement_min']:.1f}% of files or more; scores (macro-F1, CCC) differ by at most "
          f"{summary['max_abs_diff_metric']:.2g}. Per system: {models_out / 'fresh_vs_committed.csv'}; "
          "`ser-diag demo --refresh-reference-predictions` replaces the committed files with the fresh ones.")
    return committed, summary


def run_demo(out: Path = Path("data/demo"), figures_dir: Path = Path("figures"),
             quick: bool = False, skip_models: bool = False,
             reference_predictions: Path | None = Path("data/reference_predictions"),
             refresh_reference_predictions: bool = False) -> dict:
    """Run the whole demo; return the evaluation results by part.

    ``reference_predictions``: the committed predictions of the reference systems
    (:mod:`ser_diag.models.reference_predictions`). The systems are trained into ``out``
    either way; ``figures/reference_models`` diagnoses the committed predictions (the same
    bytes on every machine, so a clean checkout stays clean) and the fresh ones are compared
    with them (``out/reference_models/fresh_vs_committed.csv`` and ``demo_results.json``).
    Written from the fresh run when the folder is missing or incomplete, or when
    ``refresh_reference_predictions``. ``quick`` (another corpus) and ``None`` diagnose the
    fresh predictions."""
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
        run_reference_pipeline(corpus, models_out, quick=quick, comparison_seeds=3)
        source, drift = models_out, None
        if reference_predictions is not None and not quick:
            source, drift = _committed_predictions(models_out, Path(reference_predictions), corpus,
                                                   refresh_reference_predictions)
        comparison = compare_pipeline_seeds(corpus, source, split="Test3", resampling=resampling)
        results["reference_models"] = _diagnose(
            corpus, source / "predictions_test3", figures_dir / "reference_models",
            out / "reports" / "reference_models", "Test3", resampling, extra_tables={TABLE_NAME: comparison})
        if drift is not None:
            results["reference_models"]["fresh_vs_committed"] = drift

    atomic_write_text(out / "demo_results.json", dumps_json(results, indent=2))
    log.info(f"done in {time.perf_counter() - t0:.0f} s. {SYNTHETIC_BANNER}")
    return results
