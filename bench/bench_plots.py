"""Benchmark: drawing and saving the figure set (PDF + PNG), at 10 systems and at organiser scale.

    python3 bench/bench_plots.py [--n 32000 --systems 10 --boot 1000] [--scale 10,40,166]

1. Saving (:func:`ser_diag.plots.saving.save_figures`): a challenge of ``--n`` files x
   ``--systems`` systems is simulated and diagnosed once (not timed); its figure set is built
   twice and saved by one process (the baseline, ``workers=1``: what ``figures`` did before)
   and on every core (today's default), in the same run; the files are compared byte for byte.
2. The figures whose size grows with the number of systems (leaderboard ranks, win
   probabilities, both disagreement matrices) at each ``--scale`` from planted tables: built
   and saved today (best 40 shown, cells annotated up to 20 systems) and by the old path
   (disagreement matrices of every system with every cell annotated; emulated by lifting both
   limits, figure size still capped), text artists counted. The old path is skipped above 60 systems unless ``--old-up-to`` says more
   (166 systems took 5 minutes of CPU there).

Wall and CPU seconds are printed (CPU: this process and its finished children) because the
machine may be shared. Target (issue 12): ``figures`` on 32k x 10 under 30 s, on 166 x 32k
under 90 s, everything included; this bench times the figure part of it.
"""

from __future__ import annotations

import argparse
import filecmp
import itertools
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.text import Text

from ser_diag.diagnostics import build_figures, compute_diagnostics
from ser_diag.plots import fusion, ranks
from ser_diag.plots._style import save_figure
from ser_diag.plots.saving import save_figures, save_workers
from ser_diag.simulate import simulate_challenge


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def clock(result: dict):
    w, c = time.perf_counter(), _cpu()
    yield
    result.update(wall=time.perf_counter() - w, cpu=_cpu() - c)


def saving(n: int, systems: int, boot: int, tmp: Path) -> None:
    root = tmp / "challenge"
    simulate_challenge(root, seed=0, n_systems=systems, split="Development", n=n)
    diag = compute_diagnostics(root / "Labels" / "labels_consensus.csv", root / "predictions",
                               split="Development", n_boot=boot)
    print(f"1. saving the figure set of {n} files x {systems} systems ({boot} resamples; "
          f"{save_workers()} worker processes by default)")
    runs = {}
    for name, workers in (("one process (baseline)", 1), ("all cores (today)", None)):
        figures = build_figures(diag)
        timing = {}
        with clock(timing):
            runs[name] = save_figures(figures, tmp / f"saved_{workers}", workers=workers)
        for fig in figures.values():
            plt.close(fig)
        print(f"   {name:<24} {len(figures)} figures: wall {timing['wall']:6.2f} s, CPU {timing['cpu']:6.2f} s")
        runs[name + " timing"] = timing
    base, today = runs["one process (baseline) timing"], runs["all cores (today) timing"]
    same = all(filecmp.cmp(a, b, shallow=False) for a, b in zip(*(runs[k] for k in runs if "timing" not in k)))
    print(f"   ratio baseline / today: wall {base['wall'] / today['wall']:.2f}x; files byte-identical: {same}")


def planted_tables(n: int) -> dict[str, pd.DataFrame]:
    """Leaderboard, pairs and disagreement tables of ``n`` systems (team_000 best)."""
    rng = np.random.default_rng(0)
    systems = [f"team_{i:03d}" for i in range(n)]
    score = 0.6 - 0.3 * np.arange(n) / n
    frames = {"board": [], "pairs": [], "disagreement": []}
    for task, metric in (("categorical", "macro_f1"), ("attributes", "ccc_mean")):
        frames["board"].append(pd.DataFrame({
            "system": systems, "task": task, "metric": metric, "estimate": score, "ci_low": score - 0.01,
            "ci_high": score + 0.01, "rank": np.arange(1, n + 1), "rank_ci_low": np.maximum(1, np.arange(n) - 2),
            "rank_ci_high": np.minimum(n, np.arange(n) + 4), "p_best": np.r_[1.0, np.zeros(n - 1)],
            "tier": 1 + np.arange(n) // 4, "level": 0.95, "unit": "speaker"}))
        i, j = np.triu_indices(n, 1)
        frames["pairs"].append(pd.DataFrame({
            "task": task, "metric": metric, "system_a": np.take(systems, i), "system_b": np.take(systems, j),
            "estimate_a": score[i], "estimate_b": score[j], "win_prob": 1 / (1 + np.exp(-(j - i) / 5)),
            "unit": "speaker"}))
        m = rng.uniform(0.3, 0.6, (n, n))
        m = (m + m.T) / 2
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        frames["disagreement"].append(pd.DataFrame({
            "task": task, "metric": "disagreement" if task == "categorical" else "pearson_EmoVal",
            "system_a": np.take(systems, a.ravel()), "system_b": np.take(systems, b.ravel()), "value": m.ravel()}))
    return {"leaderboard_ranks": pd.concat(frames["board"]), "leaderboard_pairs": pd.concat(frames["pairs"]),
            "disagreement": pd.concat(frames["disagreement"])}


def scaled_figures(tables) -> dict:
    figures = ranks.beyond_figures(tables)
    for task in ("categorical", "attributes"):
        part = tables["disagreement"][tables["disagreement"]["task"] == task]
        figures[f"system_disagreement_{task}"] = fusion.DisagreementDisplay.from_frame(
            part, order=ranks.ranked_systems(tables, task)).figure_
    return figures


@contextmanager
def old_limits():
    """The disagreement matrices as before: every system, every cell annotated (the leaderboard
    and win-probability panels already showed at most 40 systems). The figure size stays capped,
    so this underestimates the old cost (a 166-system matrix was 94 inches wide)."""
    saved = fusion.ANNOTATE_CELLS_MAX
    defaults = dict(fusion.DisagreementDisplay.plot.__kwdefaults__)
    fusion.ANNOTATE_CELLS_MAX = 10 ** 6
    fusion.DisagreementDisplay.plot.__kwdefaults__["max_systems"] = 10 ** 6
    try:
        yield
    finally:
        fusion.ANNOTATE_CELLS_MAX = saved
        fusion.DisagreementDisplay.plot.__kwdefaults__.update(defaults)


def scaling(sizes: list[int], old_up_to: int, tmp: Path) -> None:
    print("\n2. figures that grow with the systems (leaderboard_ranks, win_probability, 2 disagreement "
          "matrices), built + saved by one process")
    print(f"   {'systems':>7} {'path':<6} {'wall s':>8} {'CPU s':>8} {'texts':>7}")
    rows = {}
    for n, path in itertools.product(sizes, ("today", "old")):
        if path == "old" and n > old_up_to:
            print(f"   {n:>7} {path:<6} {'(skipped: --old-up-to ' + str(old_up_to) + ')':>25}")
            continue
        tables = planted_tables(n)
        timing = {}
        with (old_limits() if path == "old" else _nothing()), clock(timing):
            figures = scaled_figures(tables)
            texts = sum(len(fig.findobj(Text)) for fig in figures.values())
            for stem, fig in figures.items():
                save_figure(fig, tmp / f"scale_{n}_{path}", stem)
        plt.close("all")
        rows[n, path] = timing
        print(f"   {n:>7} {path:<6} {timing['wall']:8.2f} {timing['cpu']:8.2f} {texts:>7}")
    for n in sizes:
        if (n, "old") in rows:
            print(f"   ratio old / today at {n} systems: CPU {rows[n, 'old']['cpu'] / rows[n, 'today']['cpu']:.2f}x")


@contextmanager
def _nothing():
    yield


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--scale", default="10,40,166", help="system counts for part 2 (comma-separated)")
    parser.add_argument("--old-up-to", type=int, default=60, help="run the old path up to this many systems")
    parser.add_argument("--skip-saving", action="store_true", help="only part 2")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_plots_") as tmp:
        if not args.skip_saving:
            saving(args.n, args.systems, args.boot, Path(tmp))
        scaling([int(s) for s in args.scale.split(",")], args.old_up_to, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
