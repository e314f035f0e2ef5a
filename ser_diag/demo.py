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
import sys
import time
from pathlib import Path

from ser_diag.schema import SYNTHETIC_BANNER


def _log(msg: str) -> None:
    print(f"[ser_diag demo] {msg}", file=sys.stderr, flush=True)


def _diagnose(data_root: Path, predictions: Path, figures_dir: Path, report_dir: Path,
              split: str, n_boot: int) -> dict:
    """Evaluate, write the paper figures and the HTML report for one set of systems."""
    from ser_diag.evaluate import evaluate_paths, format_text
    from ser_diag.figures import write_paper_figures
    from ser_diag.report import write_report

    result = evaluate_paths(data_root, predictions, split=split, n_boot=n_boot, seed=0)
    print(format_text(result))
    write_paper_figures(data_root, predictions, figures_dir, split=split, n_boot=n_boot)
    write_report(data_root, predictions, report_dir, split=split, n_boot=n_boot)
    _log(f"figures: {figures_dir}   report: {report_dir / 'index.html'}")
    return result


def run_demo(out: Path = Path("data/demo"), figures_dir: Path = Path("figures"),
             quick: bool = False, skip_models: bool = False) -> dict:
    """Run the whole demo; return the evaluation results by part."""
    out, figures_dir = Path(out), Path(figures_dir)
    print(SYNTHETIC_BANNER)
    n_boot = 200 if quick else 1000
    results = {}
    t0 = time.perf_counter()

    from ser_diag.simulate import simulate_challenge
    challenge = out / "simulated_challenge"
    _log("simulating a challenge (8 systems, Development split) ...")
    simulate_challenge(challenge, seed=0, n_systems=8, split="Development",
                       n=1500 if quick else None)
    results["simulated_challenge"] = _diagnose(
        challenge, challenge / "predictions", figures_dir / "simulated_challenge",
        out / "reports" / "simulated_challenge", "Development", n_boot)

    if not skip_models:
        from ser_diag.models.corpus import make_corpus
        from ser_diag.models.pipeline import run_reference_pipeline
        corpus = out / "corpus"
        _log("synthesising the demo speech corpus (espeak-ng) ...")
        make_corpus(corpus, n=240 if quick else 600, seed=0)
        _log("extracting features and training reference systems ...")
        predictions = run_reference_pipeline(corpus, out / "reference_models", quick=quick)
        results["reference_models"] = _diagnose(
            corpus, predictions, figures_dir / "reference_models",
            out / "reports" / "reference_models", "Test3", n_boot)

    (out / "demo_results.json").write_text(json.dumps(results, indent=2))
    _log(f"done in {time.perf_counter() - t0:.0f} s. {SYNTHETIC_BANNER}")
    return results
