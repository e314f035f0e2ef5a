"""Benchmark: ``io.load`` (read + validate + merge every prediction file) with pyarrow's CSV
reader for plain files (``io._plain_table``) vs the pandas reader for every file (the path
before it, measured in the same process on the same files). Checks the frames are equal.

    python3 bench/bench_load.py                     # 20 systems x 32,000 files
    python3 bench/bench_load.py --systems 166 --data DIR
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from ser_diag import io
from ser_diag.simulate import simulate_challenge


def timed_load(labels: Path, predictions: Path) -> tuple[float, float, dict]:
    w0, c0 = time.perf_counter(), time.process_time()
    loaded = io.load(labels, predictions)
    return time.perf_counter() - w0, time.process_time() - c0, loaded


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
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        fast_wall, fast_cpu, fast = timed_load(labels, predictions)
        plain_table = io._plain_table
        io._plain_table = lambda body: None          # the pandas reader for every file
        try:
            slow_wall, slow_cpu, slow = timed_load(labels, predictions)
        finally:
            io._plain_table = plain_table
        for key in ("categorical", "attributes", "labels"):
            pd.testing.assert_frame_equal(fast[key], slow[key])
        print(f"io.load, pyarrow reader for plain files: {fast_wall:.2f} s wall, {fast_cpu:.2f} s CPU")
        print(f"io.load, pandas reader for every file (baseline): {slow_wall:.2f} s wall, {slow_cpu:.2f} s CPU")
        print(f"ratio baseline / pyarrow: wall {slow_wall / fast_wall:.2f}x, CPU {slow_cpu / fast_cpu:.2f}x; "
              "frames equal")


if __name__ == "__main__":
    main()
