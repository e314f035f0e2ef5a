"""Benchmark the HTML report and the explorer on 32k utterances x 10 systems (synthetic).

    python3 bench/bench_report_explore.py [--n 32000] [--systems 10] [--n-boot 1000]

Prints:
* ``report`` wall time as a ratio to ``figures`` alone (:func:`ser_diag.figures.write_paper_figures`)
  on the same data and settings (target < 2x), and the size of ``index.html`` (target < 15 MB);
* the report from diagnostics already computed for the figures (``write_report(diagnostics=)``,
  what the demo does) against computing them again;
* explorer redraw after a control change (target < 1 s): each change is timed cold (first
  time that state is seen: figure from the diagnostics of its split, group and bins, after the
  explorer's background prefetch of the likely next diagnostics is done)
  and warm (state seen before: cached PNG), against recomputing the same figure from the files
  (fresh explorer without prefetch: load + merge + analysis + figure); the fusion view and the
  first utterance list are also timed without the prefetch.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


from ser_diag.diagnostics import compute_diagnostics
from ser_diag.explore import Explorer
from ser_diag.explorer_widgets import ExplorerWidgets
from ser_diag.figures import write_paper_figures
from ser_diag.report import write_report
from ser_diag.simulate import simulate_challenge


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


_WIDGETS: dict = {}


def draw(explorer: Explorer) -> None:
    """What a control change redraws in the widgets (no browser): the clickable matrix or the
    figure's PNG (beside the matrix, the comparison panel), the metrics tab and the rows."""
    widgets = _WIDGETS.get(id(explorer))
    if widgets is None or widgets.ex is not explorer:
        _WIDGETS.clear()                                        # one explorer's widgets at a time
        _WIDGETS[id(explorer)] = ExplorerWidgets(explorer)     # builds and draws
    else:
        widgets.refresh()


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
            t_diag, diag = timed(compute_diagnostics, labels, predictions, **kw)
            t_given, _ = timed(write_report, None, None, Path(tmp) / "report_given", diagnostics=diag)
            print(f"report from the figures' diagnostics: {t_given:.1f} s vs {t_diag + t_given:.1f} s computing "
                  f"them again (diagnostics {t_diag:.1f} s): ratio {(t_diag + t_given) / t_given:.1f}x")
            print(f"index.html: {size_mb:.2f} MB (target < 15)")

        # ---- explorer
        bench_explorer(labels, predictions, args.explorer_n_boot)


def bench_explorer(labels: Path, predictions: Path, n_boot: int) -> None:
    """Explorer redraw after each control change: cold (first time that state is seen: analysis
    + figure), warm (state seen before: cached PNG), against recomputing from the files (a fresh
    explorer without background prefetch: read + merge + analysis + figure)."""
    t_init, ex = timed(Explorer, labels, predictions, n_boot=n_boot)
    t_prefetch, _ = timed(ex.wait_prefetch)
    print(f"\nexplorer: init {t_init:.1f} s (read + merge + diagnostics of the split), n_boot={n_boot}; "
          f"background prefetch (labels_detailed.csv, diagnostics of the other bins and each gender) "
          f"done {t_prefetch:.1f} s after init")
    systems = ex.systems
    steps = [dict(view="confusion"), dict(system=systems[0]), dict(view="binned_EmoVal"),
             dict(bins="quantile"), dict(view="regression_to_mean"), dict(system=systems[1]),
             dict(compare_system=systems[-1]), dict(view="confusion"),
             dict(group_column="Gender", group_value="Female"),
             dict(view="gender_audit", group_column=None, compare_system=None),
             dict(system=systems[2]), dict(view="topk_fusion")]
    rows = []
    for change in steps:
        ex.set(**change)
        t_cold, _ = timed(draw, ex)
        t_background, _ = timed(ex.wait_prefetch)   # what this change queued (a user's reading time)
        state = ex.state

        def from_files(state=state):
            fresh = Explorer(labels, predictions, n_boot=n_boot, prefetch=False)
            fresh.state = state
            draw(fresh)
        t_files, _ = timed(from_files)
        rows.append([", ".join(f"{k}={v}" for k, v in change.items()), state, t_cold, t_background, t_files])
    for row in rows:                       # revisit every state: the warm redraw
        ex.state = row[1]
        row.append(timed(draw, ex)[0])
    fresh = Explorer(labels, predictions, n_boot=n_boot, prefetch=False)
    t_fusion, _ = timed(draw, fresh.set(view="topk_fusion"))
    t_rtm, _ = timed(draw, fresh.set(view="regression_to_mean"))
    t_audit, _ = timed(draw, fresh.set(view="gender_audit"))
    t_audit2, _ = timed(draw, fresh.set(system=systems[1]))

    print("cold: first time in that state; background: prefetch it queued, waited for before the next\n"
          "change; warm: state seen before; files: fresh explorer without prefetch, read + merge + draw")
    print(f"{'control change':58s} {'cold s':>7s} {'bg s':>6s} {'warm s':>7s} {'files s':>8s} {'files/cold':>10s}")
    for label, _, t_cold, t_background, t_files, t_warm in rows:
        print(f"{label:58s} {t_cold:7.2f} {t_background:6.2f} {t_warm:7.3f} {t_files:8.2f} {t_files / t_cold:10.1f}")
    print(f"{'view=topk_fusion without background prefetch':58s} {t_fusion:7.2f}")
    print(f"{'view=regression_to_mean without background prefetch':58s} {t_rtm:7.2f}")
    print(f"{'view=gender_audit, then system change, without prefetch':58s} {t_audit:7.2f} {t_audit2:6.2f}")
    worst_cold, worst_warm = max(r[2] for r in rows), max(r[5] for r in rows)
    print(f"slowest redraw: cold {worst_cold:.2f} s, warm {worst_warm:.3f} s (target < 1)")
    t_cell, table = timed(ex.set(view="confusion").cell_utterances, true="F", pred="A")
    t_cell2, table = timed(ex.cell_utterances, true="F", pred="A")
    print(f"cell_utterances(F -> A): {len(table)} rows, first call {t_cell:.2f} s, then {t_cell2:.3f} s")
    fresh = Explorer(labels, predictions, n_boot=n_boot, prefetch=False)
    t_votes, _ = timed(fresh.cell_utterances, true="F", pred="A")
    print(f"cell_utterances(F -> A) without background prefetch (reads labels_detailed.csv): {t_votes:.2f} s")


if __name__ == "__main__":
    main()
