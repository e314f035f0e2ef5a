"""Benchmark: bootstrap of macro-F1 and 3 CCCs for many systems, ser_diag vs a plain loop.

    python3 bench/bench_bootstrap.py [--n 32000 --systems 10 --boot 1000 --baseline-boot 20]

ser_diag: :func:`ser_diag.resampling.bootstrap_metrics` on the categorical and the attribute
merged frames (every metric of every system, all systems on the same resamples).
Baseline: for each resample and system, index the data, call scikit-learn ``f1_score`` and a
numpy CCC per attribute. The baseline is timed on ``--baseline-boot`` resamples and
extrapolated linearly to ``--boot`` (its cost is the same for every resample).
Targets (issue 2): ser_diag under 5 s and at least 30x faster than the loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score


from ser_diag.resampling import bootstrap_metrics
from ser_diag.schema import ATTRIBUTES, CLASS_CODES

TARGET_SECONDS, TARGET_RATIO = 5.0, 30.0


def make_data(n: int, n_systems: int, seed: int = 0):
    """Random truth and predictions: class labels and 1-7 attributes, speakers of ~60 files."""
    rng = np.random.default_rng(seed)
    codes = np.array(CLASS_CODES)
    files = np.array([f"MSP-PODCAST_{i:06d}.wav" for i in range(n)])
    speakers = pd.array(rng.integers(0, max(1, n // 60), n), dtype="Int64")
    t = rng.integers(0, 8, n)
    x = rng.uniform(1, 7, (n, 3))
    cat_frames, att_frames, raw = [], [], []
    for s in range(n_systems):
        p = np.where(rng.random(n) < 0.3 + 0.02 * s, t, rng.integers(0, 8, n))
        y = 0.5 * x + 2 + rng.normal(0, 0.8, (n, 3))
        name = f"sys{s:02d}"
        cat_frames.append(pd.DataFrame({"system": name, "FileName": files, "SpkrID": speakers,
                                        "EmoClass_true": codes[t], "EmoClass_pred": codes[p]}))
        frame = pd.DataFrame({"system": name, "FileName": files, "SpkrID": speakers})
        for j, attr in enumerate(ATTRIBUTES):
            frame[f"{attr}_true"], frame[f"{attr}_pred"] = x[:, j], y[:, j]
        att_frames.append(frame)
        raw.append((p, y))
    categorical = pd.concat(cat_frames, ignore_index=True)
    categorical.attrs.update(task="categorical", synthetic=True)
    attributes = pd.concat(att_frames, ignore_index=True)
    attributes.attrs.update(task="attributes", synthetic=True)
    return categorical, attributes, t, x, raw


def numpy_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Lin's CCC, population variances."""
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    return 2 * cov / (x.var() + y.var() + (mx - my) ** 2)


def baseline(t, x, raw, n_boot: int, seed: int = 0) -> float:
    """Seconds for ``n_boot`` resamples of the plain loop."""
    rng = np.random.default_rng(seed)
    n = t.size
    labels = list(range(8))
    start = time.perf_counter()
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        for p, y in raw:
            f1_score(t[idx], p[idx], average="macro", labels=labels, zero_division=0)
            for j in range(3):
                numpy_ccc(x[idx, j], y[idx, j])
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000, help="utterances")
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--baseline-boot", type=int, default=20,
                        help="resamples actually run for the baseline (extrapolated)")
    args = parser.parse_args(argv)

    categorical, attributes, t, x, raw = make_data(args.n, args.systems)
    print(f"data: {args.n} utterances, {args.systems} systems, {args.boot} resamples, "
          f"{os.cpu_count()} CPUs")

    start = time.perf_counter()
    cat = bootstrap_metrics(categorical, n_boot=args.boot, unit="utterance")
    mid = time.perf_counter()
    att = bootstrap_metrics(attributes, n_boot=args.boot, unit="utterance")
    ours = time.perf_counter() - start
    print(f"ser_diag bootstrap_metrics: {ours:.2f} s  (categorical {mid - start:.2f} s, "
          f"attributes {ours - (mid - start):.2f} s; {len(cat) + len(att)} metric rows, "
          "all per-class scores and Pearson included)")
    start = time.perf_counter()
    bootstrap_metrics(categorical, n_boot=args.boot, by_speaker=True)
    bootstrap_metrics(attributes, n_boot=args.boot, by_speaker=True)
    print(f"ser_diag speaker (cluster) bootstrap: {time.perf_counter() - start:.2f} s")

    measured = baseline(t, x, raw, args.baseline_boot)
    loop = measured / args.baseline_boot * args.boot
    print(f"baseline loop (sklearn f1_score + numpy CCC): {measured:.2f} s for "
          f"{args.baseline_boot} resamples -> {loop:.1f} s for {args.boot} (linear extrapolation)")
    ratio = loop / ours
    print(f"speed-up: {ratio:.0f}x")
    fast, faster = ours < TARGET_SECONDS, ratio >= TARGET_RATIO
    print(f"target < {TARGET_SECONDS:.0f} s: {'met' if fast else 'NOT met'}; "
          f"target >= {TARGET_RATIO:.0f}x: {'met' if faster else 'NOT met'}")
    return 0 if fast and faster else 1


if __name__ == "__main__":
    sys.exit(main())
