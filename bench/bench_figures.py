"""Benchmark: the whole ``figures`` command on 32k utterances x 10 systems, 1,000 resamples.

    python3 bench/bench_figures.py [--n 32000 --systems 10 --boot 1000] [--skip-baseline]
                                   [--keep DIR] [--profile FILE]

Simulates a Development-like challenge (:func:`ser_diag.simulate.simulate_challenge`) into a
temporary folder, then times :func:`ser_diag.figures.write_paper_figures` on all systems at
once (what ``python -m ser_diag figures`` runs) with a per-stage profile: loading, every
table of :func:`ser_diag.diagnostics.diagnose`, figure rendering and saving (PDF+PNG, CSVs,
summary). Baseline: the same command on each system's prediction folder alone, summed (what
a user gets by analysing systems one at a time; it has no cross-system tables, so it does
less work). Wall time and CPU time (``time.process_time``, all threads of this process) are
both printed because the machine may be shared. Target (issue 3): whole command < 30 s on 2
cores.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


from ser_diag import diagnostics, figures, io
from ser_diag.analysis import beyond as beyond_module
from ser_diag.plots import ranks as beyond_plots
from ser_diag.simulate import simulate_challenge

TARGET_SECONDS = 30.0


class Clock:
    """Exclusive wall and CPU seconds of named stages: a stage entered inside another (e.g.
    a table function that calls another timed one) is subtracted from the outer one, so the
    stages add up to at most the total."""

    def __init__(self):
        self.wall, self.cpu = defaultdict(float), defaultdict(float)
        self.order: list[str] = []
        self._inner: list[list[float]] = []

    @contextlib.contextmanager
    def stage(self, name: str):
        w0, c0 = time.perf_counter(), time.process_time()
        self._inner.append([0.0, 0.0])
        try:
            yield
        finally:
            inner_w, inner_c = self._inner.pop()
            w, c = time.perf_counter() - w0, time.process_time() - c0
            if name not in self.order:
                self.order.append(name)
            self.wall[name] += w - inner_w
            self.cpu[name] += c - inner_c
            if self._inner:
                self._inner[-1][0] += w
                self._inner[-1][1] += c

    def wrap(self, owner, attribute: str, name: str, patches: list):
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            with self.stage(name):
                return original(*args, **kwargs)

        patches.append((owner, attribute, original))
        setattr(owner, attribute, timed)


@contextlib.contextmanager
def instrumented(clock: Clock):
    """Time every analysis :func:`diagnostics.diagnose` calls, figure building and writing.
    Analyses and figure groups that run in forked workers (:mod:`ser_diag.parallel`) are timed
    there and do not reach this table: it lists what this process ran.

    Only module attributes are swapped for timing wrappers (restored afterwards); nothing
    the library computes changes.
    """
    d = diagnostics
    tables = [
        (d, "bootstrap_metrics", "table metrics (bootstrap_metrics)"),
        (d, "evaluate_merged", "evaluation (evaluate_merged)"),
        (d.confusion, "confusion_table", "table confusion"),
        (d.confusion, "minority_destinations", "table minority_destinations"),
        (d.confusion, "confusion_difference", "table confusion_difference"),
        (d.binned, "binned_matrix", "table binned"),
        (d.binned, "per_bin_table", "table per_bin"),
        (d.regression_to_mean, "shrinkage_table", "table shrinkage"),
        (d.regression_to_mean, "bin_means", "table bin_means"),
        (d.regression_to_mean, "extreme_bin_recall", "table extreme_bin_recall"),
        (d.regression_to_mean, "recalibration_whatif", "table recalibration"),
        (d.bias, "group_audit", "table gender_metrics + gender_gaps"),
        (d.bias, "group_metrics", "table gender_metrics"),
        (d.bias, "group_gaps", "table gender_gaps"),
        (d.bias, "speaker_metrics", "table speaker_metrics"),
        (d.bias, "per_class_recall_by_group", "table class_recall_by_gender"),
        (d.fusion, "pairwise_disagreement", "table disagreement"),
        (d.fusion, "topk_fusion_curve", "table fusion_curve"),
        (beyond_module, "rank_tables", "table leaderboard_ranks + pairs"),
        (beyond_module, "corpus_extras", "reading labels_detailed + Audios/"),
        (beyond_module, "agreement_tables", "tables agreement + human ceiling"),
        (beyond_module, "where_tables", "tables podcasts + durations"),
        (beyond_plots, "beyond_figures", "figure rendering (beyond)"),
        (d.io, "load", "loading (io.load)"),
        (figures, "build_figures", "figure rendering (build_figures)"),
        (figures, "save_figures", "saving figures (PDF+PNG)"),
        (figures, "atomic_write_text", "saving tables + summary"),
    ]
    patches: list = []
    try:
        for owner, attribute, name in tables:
            if hasattr(owner, attribute):
                clock.wrap(owner, attribute, name, patches)
        yield
    finally:
        for owner, attribute, original in reversed(patches):
            setattr(owner, attribute, original)


def timed(fn, *args, **kwargs):
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - w0, time.process_time() - c0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the figure set here (kept) instead of a temporary folder")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also write cProfile stats of the whole command to this file")
    parser.add_argument("--data", type=Path, default=None,
                        help="a challenge simulated before with the same settings (simulate_challenge(DIR, seed=0, "
                             "n_systems=<systems>, split='Development', n=<n>)): reused instead of simulating")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench_figures_") as tmp:
        tmp = Path(tmp)
        root = args.data if args.data is not None else tmp / "challenge"
        if args.data is None:
            _, wall, cpu = timed(simulate_challenge, root, seed=0, n_systems=args.systems,
                                 split="Development", n=args.n)
            print(f"simulated {args.n} files x {args.systems} systems in {wall:.1f} s (not timed below)")
        labels, predictions = root / "Labels" / "labels_consensus.csv", root / "predictions"
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

        out = args.keep if args.keep is not None else tmp / "figures"
        clock = Clock()
        profiler = cProfile.Profile() if args.profile else None
        with instrumented(clock):
            if profiler:
                profiler.enable()
            written, wall_all, cpu_all = timed(figures.write_paper_figures, labels, predictions, out,
                                               split="Development", n_boot=args.boot)
            if profiler:
                profiler.disable()
        if profiler:
            profiler.dump_stats(args.profile)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        n_fig = sum(p.suffix == ".png" for p in written)
        print(f"\nwhole figures command ({args.systems} systems together, {args.boot} resamples): "
              f"wall {wall_all:.2f} s, CPU {cpu_all:.2f} s; {len(written)} files, {n_fig} figures")
        print(f"\n{'stage':<42}{'wall s':>9}{'CPU s':>9}")
        for name in clock.order:
            print(f"{name:<42}{clock.wall[name]:>9.2f}{clock.cpu[name]:>9.2f}")
        rest_w = wall_all - sum(clock.wall.values())
        rest_c = cpu_all - sum(clock.cpu.values())
        print(f"{'(rest: forked workers, glue, staging)':<42}{rest_w:>9.2f}{rest_c:>9.2f}")

        if not args.skip_baseline:
            base_wall = base_cpu = 0.0
            systems = sorted(p.name for p in predictions.iterdir() if p.is_dir())
            for system in systems:
                _, wall, cpu = timed(figures.write_paper_figures, labels, predictions / system,
                                     tmp / "separate" / system, split="Development", n_boot=args.boot)
                base_wall += wall
                base_cpu += cpu
            print(f"\nbaseline, each system analysed separately ({len(systems)} runs, summed): "
                  f"wall {base_wall:.2f} s, CPU {base_cpu:.2f} s")
            print(f"ratio separate / together: wall {base_wall / wall_all:.2f}x, CPU {base_cpu / cpu_all:.2f}x "
                  "(the separate runs lack the cross-system tables: fusion, disagreement, difference)")
        met = wall_all < TARGET_SECONDS
        print(f"\ntarget: whole command < {TARGET_SECONDS:.0f} s wall on {os.cpu_count()} cores: "
              f"{'MET' if met else 'NOT MET'} ({wall_all:.2f} s wall, {cpu_all:.2f} s CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
