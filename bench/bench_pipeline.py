"""Benchmark the reference pipeline (standalone script; prints timings and the ratio, not a test).

Times :func:`ser_diag.models.pipeline.run_reference_pipeline` on a fresh synthetic corpus
(``make_corpus(n)``, features extracted from scratch) against a named baseline, the previous
settings: one encoder pass per feature level (eGeMAPS functionals and descriptors as two
openSMILE runs, MiniLM pooled and token features as two forward passes, via
:func:`ser_diag.models.features.extract_features`) and torch's default thread count. Both runs
train the same systems with the same seeds, so their development scores must agree (checked).

    python bench/bench_pipeline.py [--n 600] [--quick]

Wall-clock and process CPU seconds per stage; on a shared machine the wall-clock ratio also
reflects thread oversubscription (the reason the pipeline now trains on one thread).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from ser_diag.models import pipeline


def per_level_extraction(corpus, names, cache_dir, timings=None):
    """The baseline: every (encoder, level) pair extracted by its own pass."""
    from ser_diag.models.encoders import load_encoder
    from ser_diag.models.features import extract_features

    stores = {}
    for name in names:
        for spec in pipeline.REFERENCE_SYSTEMS[name]["modalities"].values():
            key = f"{spec['encoder']}/{spec['level']}"
            if key not in stores:
                t = time.perf_counter()
                stores[key] = extract_features(corpus, load_encoder(spec["encoder"]), cache_dir,
                                               level=spec["level"], progress=False)
                if timings is not None:
                    timings[f"features {key}"] = round(time.perf_counter() - t, 2)
    return stores


def timed_run(corpus: Path, out: Path, quick: bool, baseline: bool) -> dict:
    original = pipeline.extract_system_features
    if baseline:
        pipeline.extract_system_features = per_level_extraction
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        pipeline.run_reference_pipeline(corpus, out, quick=quick, num_threads=None if baseline else 1)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        pipeline.extract_system_features = original
    summary = json.loads((out / "pipeline.json").read_text())
    return {"wall": wall, "cpu": cpu, "stages": summary["seconds"],
            "dev": {s["system_name"]: s["dev_metrics"] for s in summary["systems"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    from ser_diag.models.corpus import make_corpus

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        corpus = make_corpus(tmp / "corpus", n=args.n, seed=0)
        print(f"corpus: {args.n} files in {time.perf_counter() - t:.1f} s")
        results = {"baseline (per-level extraction, default threads)": timed_run(corpus, tmp / "base", args.quick, True),
                   "pipeline (one pass per encoder, 1 thread)": timed_run(corpus, tmp / "new", args.quick, False)}
    for name, r in results.items():
        print(f"\n{name}: wall {r['wall']:.1f} s, cpu {r['cpu']:.1f} s")
        for stage, seconds in r["stages"].items():
            print(f"  {stage:36s} {seconds:8.2f} s")
    (base, new) = results.values()
    same = all(abs(base["dev"][s][m] - new["dev"][s][m]) < 1e-6 for s in base["dev"] for m in base["dev"][s])
    print(f"\nbaseline / pipeline: wall {base['wall'] / new['wall']:.2f}x, cpu {base['cpu'] / new['cpu']:.2f}x; "
          f"development scores identical: {same}")


if __name__ == "__main__":
    main()
