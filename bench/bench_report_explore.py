"""Benchmark the HTML report and the explorer on 32k utterances x 10 systems (synthetic).

    python3 bench/bench_report_explore.py [--n 32000] [--systems 10] [--n-boot 1000]

Prints:
* ``report`` wall time as a ratio to ``figures`` alone (:func:`ser_diag.figures.write_paper_figures`)
  on the same data and settings (target < 2x), and the size of ``index.html`` (target < 15 MB);
* explorer redraw after a control change (target < 1 s): each change is timed cold (first
  time that state is seen: analysis + figure) and warm (state seen before: figure from cached
  analysis), against recomputing the same figure from the files (load + merge + analysis + figure).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ser_diag.explore import Explorer  # noqa: E402
from ser_diag.figures import write_paper_figures  # noqa: E402
from ser_diag.report import write_report  # noqa: E402
from ser_diag.simulate import simulate_challenge  # noqa: E402


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def draw(explorer: Explorer) -> None:
    explorer.figure_png()   # what the widget shows: analysis, figure, layout, PNG (cached per state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=32000)
    parser.add_argument("--systems", type=int, default=10)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--explorer-n-boot", type=int, default=200)
    parser.add_argument("--skip-report", action="store_true", help="only the explorer part")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "challenge"
        t_sim, _ = timed(simulate_challenge, root, seed=0, n_systems=args.systems, n=args.n)
        print(f"simulated {args.n} utterances x {args.systems} systems in {t_sim:.1f} s")
        labels, predictions = root, root / "predictions"

        if not args.skip_report:
            kw = dict(n_boot=args.n_boot)
            t_fig, _ = timed(write_paper_figures, labels, predictions, Path(tmp) / "figures", **kw)
            t_rep, index = timed(write_report, labels, predictions, Path(tmp) / "report", **kw)
            size_mb = index.stat().st_size / 1e6
            print(f"figures: {t_fig:.1f} s   report: {t_rep:.1f} s   ratio report/figures = "
                  f"{t_rep / t_fig:.2f} (target < 2)")
            print(f"index.html: {size_mb:.2f} MB (target < 15)")

        # ---- explorer
        t_init, ex = timed(Explorer, labels, predictions, n_boot=args.explorer_n_boot)
        print(f"\nexplorer: init {t_init:.1f} s (read + merge), n_boot={args.explorer_n_boot}")
        systems = ex.systems
        steps = [dict(view="confusion"), dict(system=systems[0]), dict(view="binned_EmoVal"),
                 dict(bins="quantile"), dict(view="regression_to_mean"), dict(compare_system=systems[-1]),
                 dict(view="confusion"), dict(group_column="Gender", group_value="Female"),
                 dict(view="gender_audit", group_column=None), dict(view="topk_fusion")]
        print(f"{'control change':48s} {'cold s':>7s} {'warm s':>7s} {'files s':>8s} {'files/cold':>10s}")
        worst_warm = worst_cold = 0.0
        for change in steps:
            ex.set(**change)
            t_cold, _ = timed(draw, ex)
            state = ex.state
            ex.set(view="confusion" if state.view != "confusion" else "binned_EmoAct")  # move away...
            draw(ex)
            ex.state = state                                                            # ...and back
            t_warm, _ = timed(draw, ex)
            # recomputing from the files: a fresh explorer in this state
            def from_files(state=state):
                fresh = Explorer(labels, predictions, n_boot=args.explorer_n_boot)
                fresh.state = state
                draw(fresh)
            t_files, _ = timed(from_files)
            worst_warm, worst_cold = max(worst_warm, t_warm), max(worst_cold, t_cold)
            label = ", ".join(f"{k}={v}" for k, v in change.items())
            print(f"{label:48s} {t_cold:7.2f} {t_warm:7.2f} {t_files:8.2f} {t_files / t_cold:10.1f}")
        print(f"slowest redraw: cold {worst_cold:.2f} s, warm {worst_warm:.3f} s (target < 1)")
        t_cell, table = timed(ex.set(view="confusion").cell_utterances, true="F", pred="A")
        t_cell2, table = timed(ex.cell_utterances, true="F", pred="A")
        print(f"cell_utterances(F -> A): {len(table)} rows, first call {t_cell:.2f} s "
              f"(reads labels_detailed.csv), then {t_cell2:.3f} s")


if __name__ == "__main__":
    main()
