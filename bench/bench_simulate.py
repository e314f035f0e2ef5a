"""Benchmark: simulating system predictions, ser_diag (vectorised) vs a per-file Python loop.

    python3 bench/bench_simulate.py [--n 32000 --systems 10 --baseline-n 1000]

ser_diag: :func:`ser_diag.simulate.simulate_systems` for ``--systems`` default systems on the
labels of ``--n`` files from :func:`ser_diag.simulate.simulate_labels` (labels timed apart).
Baseline: the same model (logits, anger swap, softmax, Lin-parameterised attributes with the
extreme compression, gender gap, shared errors) written file by file with numpy scalars, run on
the first ``--baseline-n`` files and extrapolated linearly to ``--n`` (its cost per file is
constant). Targets: labels + systems for 32,000 files x 10 systems under 8 s, and
``simulate_systems`` at least 20x faster than the loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy.special import ndtr


from ser_diag import simulate as sim
from ser_diag.schema import ATTRIBUTE_MAX, ATTRIBUTE_MIN, ATTRIBUTES, CLASS_CODES, MINORITY_NEGATIVE

TARGET_SECONDS, TARGET_RATIO = 8.0, 20.0


def per_file_loop(labels, specs, n_files: int, seed: int = 0) -> float:
    """Seconds to simulate ``specs`` on the first ``n_files`` files, one file at a time."""
    start = time.perf_counter()
    true = labels.loc[:, list(ATTRIBUTES)].to_numpy(dtype=float)
    center, scale = true.mean(0), true.std(0)
    z = (true - center) / scale
    hard = np.array([sim.HARD_SIDE[a] for a in ATTRIBUTES])
    profiles = np.array([sim.CLASS_PROFILES[c] for c in CLASS_CODES])
    codes = labels["EmoClass"].astype(str).to_numpy()
    genders = labels["Gender"].astype(str).to_numpy()
    r = sim.DEFAULT_ERROR_CORRELATION
    r_attr = np.array([r[a] for a in ATTRIBUTES])
    rng = np.random.default_rng(seed)
    out = []
    common = [(rng.standard_normal(8), rng.standard_normal(), rng.standard_normal(3)) for _ in range(n_files)]
    for spec in specs:
        v, rho, b, c = (np.array([getattr(spec, f)[a] for a in ATTRIBUTES])
                        for f in ("shrinkage", "rho", "bias", "extreme_compression"))
        kinked = np.where(z * hard > 0, (1 - c) * z, z)  # standardising needs all files: vectorised
        signal = (kinked - kinked.mean(0)) / kinked.std(0)
        for i in range(n_files):
            code = codes[i]
            k = CLASS_CODES.index(code) if code in CLASS_CODES else int(
                np.argmin(np.linalg.norm(profiles - true[i], axis=1)))
            sim_row = np.exp(-np.linalg.norm(profiles - profiles[k], axis=1) / sim.SIMILARITY_SCALE)
            g = spec.gender_gap
            gs = 1 + g / 2 if genders[i] == "Female" else 1 - g / 2 if genders[i] == "Male" else 1.0
            c_logit, c_swap, c_attr = common[i]
            eps = np.sqrt(r["EmoClass"]) * c_logit + np.sqrt(1 - r["EmoClass"]) * rng.standard_normal(8)
            logits = spec.skill * sim_row + gs * eps
            u = ndtr(np.sqrt(r["EmoClass"]) * c_swap + np.sqrt(1 - r["EmoClass"]) * rng.standard_normal())
            if code in MINORITY_NEGATIVE and u < spec.minority_to_anger:
                top = int(np.argmax(logits))
                logits[top], logits[0] = logits[0], logits[top]
            probs = np.exp(logits - logits.max())
            e = np.sqrt(r_attr) * c_attr + np.sqrt(1 - r_attr) * rng.standard_normal(3)
            attr = np.clip(center + b + v * scale * (rho * signal[i] + np.sqrt(1 - rho**2) * gs * e),
                           ATTRIBUTE_MIN, ATTRIBUTE_MAX)
            out.append((CLASS_CODES[int(np.argmax(logits))], probs / probs.sum(), attr))
    assert len(out) == n_files * len(specs)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000, help="files")
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--baseline-n", type=int, default=1000,
                        help="files actually run for the baseline (extrapolated)")
    args = parser.parse_args(argv)
    print(f"{args.n} files, {args.systems} systems, {os.cpu_count()} CPUs")

    start = time.perf_counter()
    labels, detailed = sim.simulate_labels(args.n, seed=0)
    t_labels = time.perf_counter() - start
    start = time.perf_counter()
    pred = sim.simulate_systems(labels, n_systems=args.systems, seed=0)
    ours = time.perf_counter() - start
    assert len(pred) == args.n * args.systems
    print(f"ser_diag simulate_labels: {t_labels:.2f} s ({len(detailed)} annotations)")
    print(f"ser_diag simulate_systems: {ours:.2f} s")

    measured = per_file_loop(labels, sim.default_systems(args.systems), args.baseline_n)
    loop = measured / args.baseline_n * args.n
    print(f"baseline per-file loop: {measured:.2f} s for {args.baseline_n} files -> {loop:.1f} s for "
          f"{args.n} (linear extrapolation)")
    ratio = loop / ours
    print(f"speed-up of simulate_systems over the loop: {ratio:.0f}x")
    fast, faster = t_labels + ours < TARGET_SECONDS, ratio >= TARGET_RATIO
    print(f"target labels + systems < {TARGET_SECONDS:.0f} s: {'met' if fast else 'NOT met'} "
          f"({t_labels + ours:.2f} s); target >= {TARGET_RATIO:.0f}x: {'met' if faster else 'NOT met'}")
    return 0 if fast and faster else 1


if __name__ == "__main__":
    sys.exit(main())
