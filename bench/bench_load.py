"""Benchmark: ``io.load`` (read + validate + merge every prediction file) and
``io.read_detailed_labels`` on three reading paths, measured in the same process on the same
files, results compared for equality:

* **typed** (today): prediction files that pass every check read by pyarrow straight into
  numbers (``io.predictions._typed_prediction_file``); whole quoted fields read by pyarrow
  (``io.reading._plain_table``); per-annotator details parsed by RE2 (``io.labels._extract``);
* **text** (the path of the third landing): files without quotes read by pyarrow as text
  cells, then validated and converted; quoted files by pandas; details parsed by Python's ``re``;
* **pandas** (the baseline before either): pandas' reader and Python's ``re`` for everything.

    python3 bench/bench_load.py                     # 20 systems x 32,000 files
    python3 bench/bench_load.py --systems 166 --data DIR
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from ser_diag import io
from ser_diag.simulate import simulate_challenge


@contextlib.contextmanager
def reading_path(name: str):
    """Switch off the faster readers down to path ``name`` ("typed", "text" or "pandas")."""
    saved = io.predictions._typed_prediction_file, io.reading._plain_table, io.labels._extract
    plain_table = io.reading._plain_table
    if name in ("text", "pandas"):
        io.predictions._typed_prediction_file = lambda path, data: None
        io.labels._extract = lambda text, pattern: text.str.extract(pattern)
        io.reading._plain_table = lambda body: None if b'"' in body else plain_table(body)   # no quoted fields then
    if name == "pandas":
        io.reading._plain_table = lambda body: None
    try:
        yield
    finally:
        io.predictions._typed_prediction_file, io.reading._plain_table, io.labels._extract = saved


def timed(function, *args) -> tuple[float, float, object]:
    w0, c0 = time.perf_counter(), time.process_time()
    result = function(*args)
    return time.perf_counter() - w0, time.process_time() - c0, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--data", type=Path, default=None,
                        help="a challenge simulated before (simulate_challenge(DIR, seed=0, n_systems=..., "
                             "split='Development', n=...)): reused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp)
            t0 = time.perf_counter()
            simulate_challenge(root, seed=0, n_systems=args.systems, split="Development", n=args.n)
            print(f"simulated {args.n} files x {args.systems} systems in {time.perf_counter() - t0:.1f} s (not timed)")
        labels, predictions = root / "Labels" / "labels_consensus.csv", root / "predictions"
        detailed = root / "Labels" / "labels_detailed.csv"
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        results = {}
        for path in ("typed", "text", "pandas"):
            with reading_path(path):
                results[path] = {"load": timed(io.load, labels, predictions)}
                if detailed.is_file():
                    results[path]["read_detailed_labels"] = timed(io.read_detailed_labels, detailed)
        for stage in results["typed"]:
            reference = results["pandas"][stage][2]
            for path in ("typed", "text"):
                got = results[path][stage][2]
                if isinstance(reference, dict):
                    for key in ("categorical", "attributes", "labels"):
                        pd.testing.assert_frame_equal(got[key], reference[key])
                else:
                    pd.testing.assert_frame_equal(got, reference)
            base_wall, base_cpu, _ = results["pandas"][stage]
            for path in ("typed", "text", "pandas"):
                wall, cpu, _ = results[path][stage]
                print(f"io.{stage}, {path} path: {wall:.2f} s wall, {cpu:.2f} s CPU"
                      + (f"  (pandas baseline / this: wall {base_wall / wall:.2f}x, CPU {base_cpu / cpu:.2f}x)"
                         if path != "pandas" else "  (baseline)"), flush=True)
        print("results of the three paths equal")


if __name__ == "__main__":
    main()
