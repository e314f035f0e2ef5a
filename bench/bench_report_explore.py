"""Benchmark the HTML report and the explorer on 32k utterances x 10 systems (synthetic).

    python3 bench/bench_report_explore.py [--n 32000] [--systems 10] [--n-boot 1000]

Prints:
* ``report`` wall time as a ratio to ``figures`` alone (:func:`ser_diag.figures.write_paper_figures`)
  on the same data and settings (target < 2x), and the size of ``index.html`` (target < 15 MB);
* the report from diagnostics already computed for the figures (``write_report(diagnostics=)``,
  what the demo does) against computing them again;
* explorer redraw after each control change, driven through the widgets (target < 1 s cold,
  with prefetch): cold (first time that state is seen, after the background work the previous
  change queued is done) and warm (state seen before), against the named baseline measured in
  the same run: the same explorer and change without prefetch (it computes the diagnostics of a
  new bin scheme or group when the change needs them); the beyond-the-paper views (leaderboard,
  win probability, agreement with a bin clicked, podcasts with a podcast clicked, durations)
  included. Every line is flushed as it is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")


from ser_diag.diagnostics import compute_diagnostics
from ser_diag.explorer import Explorer, ExplorerWidgets
from ser_diag.figures import write_paper_figures
from ser_diag.report import write_report
from ser_diag.simulate import simulate_challenge


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


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
        print(f"simulated {args.n} utterances x {args.systems} systems in {t_sim:.1f} s", flush=True)
        labels, predictions = root, root / "predictions"

        if not args.skip_report:
            kw = dict(n_boot=args.n_boot)
            t_fig, _ = timed(write_paper_figures, labels, predictions, Path(tmp) / "figures", **kw)
            t_rep, index = timed(write_report, labels, predictions, Path(tmp) / "report", **kw)
            size_mb = index.stat().st_size / 1e6
            print(f"figures: {t_fig:.1f} s   report: {t_rep:.1f} s   ratio report/figures = "
                  f"{t_rep / t_fig:.2f} (target < 2)", flush=True)
            t_diag, diag = timed(compute_diagnostics, labels, predictions, **kw)
            t_given, _ = timed(write_report, None, None, Path(tmp) / "report_given", diagnostics=diag)
            print(f"report from the figures' diagnostics: {t_given:.1f} s vs {t_diag + t_given:.1f} s computing "
                  f"them again (diagnostics {t_diag:.1f} s): ratio {(t_diag + t_given) / t_given:.1f}x", flush=True)
            print(f"index.html: {size_mb:.2f} MB (target < 15)", flush=True)

        # ---- explorer
        bench_explorer(labels, predictions, args.explorer_n_boot)


def change(ui: ExplorerWidgets, step: dict) -> None:
    """What a person's control change does in the widgets (no browser): a group column alone
    only queues each value's diagnostics (the widgets wait for a value); everything else sets
    the state and redraws what depends on it (matrix or figure PNG and tables, metrics, rows)."""
    if set(step) == {"group_column"}:
        ui.on_change("group_column", step["group_column"])
    else:
        ui.apply(**step)


def bench_explorer(labels: Path, predictions: Path, n_boot: int) -> None:
    """Explorer redraw after each control change, driven through the widgets: cold (first time
    that state is seen, after the background prefetch the previous change queued is done, as
    after a person's reading time) and warm (state seen before), against the named baseline
    measured in the same run: the same explorer without prefetch (``prefetch=False``, same
    data and start state), whose redraw computes the diagnostics of a new split, group or bin
    scheme when the change needs them."""
    load = os.getloadavg()
    t_init, ex = timed(Explorer, labels, predictions, n_boot=n_boot)
    t_prefetch, _ = timed(ex.wait_prefetch)
    print(f"\nexplorer: init {t_init:.1f} s (read + merge + diagnostics of the split), n_boot={n_boot}; background "
          f"read of labels_detailed.csv done {t_prefetch:.1f} s after init; load average {load[0]:.1f}", flush=True)
    base = Explorer(ex.labels, ex.predictions, n_boot=n_boot, prefetch=False, system=ex.state.system)
    for key in [k for k in ex.engine.cache if k[0] in ("merged", "filtered", "diag")]:   # the same start state
        base.engine.store(key, ex.engine.cache[key])
    t_ui, ui = timed(ExplorerWidgets, ex)
    ui_base = ExplorerWidgets(base)
    print(f"widgets built in {t_ui:.2f} s", flush=True)
    systems = ex.systems
    steps = [dict(system=systems[0]), dict(view="binned_EmoVal"), dict(bins="quantile"),
             dict(view="regression_to_mean"), dict(system=systems[1]), dict(compare_system=systems[-1]),
             dict(view="confusion"), dict(cell_true="F", cell_pred="A"), dict(group_column="Gender"),
             dict(group_column="Gender", group_value="Female"),
             dict(view="gender_audit", group_column=None, compare_system=None), dict(view="topk_fusion"),
             dict(view="leaderboard_ranks"), dict(view="win_probability"), dict(view="annotator_agreement"),
             dict(cell_true="plurality"), dict(view="podcasts"), dict(cell_true="first podcast"),
             dict(view="durations")]
    print("cold: first time in that state, after the background work the previous change queued (bg s); "
          "warm: state seen before;\nno-prefetch: the same change in the same explorer without prefetch "
          "(the baseline); ratio = no-prefetch / cold", flush=True)
    print(f"{'control change':52s} {'cold s':>7s} {'bg s':>6s} {'no-prefetch s':>13s} {'ratio':>6s}", flush=True)
    rows = []
    for step in steps:
        if step.get("cell_true") == "first podcast":
            step = dict(cell_true=ex.group_options()[0][1])
        t_cold, _ = timed(change, ui, step)
        t_background, _ = timed(ex.wait_prefetch)
        t_base, _ = timed(change, ui_base, step)
        assert base.state == ex.state, (base.state, ex.state)
        label = ", ".join(f"{k}={v}" for k, v in step.items())
        rows.append([label, dataclasses.replace(ex.state), t_cold, t_background, t_base])
        print(f"{label:52s} {t_cold:7.2f} {t_background:6.2f} {t_base:13.2f} {t_base / t_cold:6.1f}", flush=True)
    print(f"\n{'warm redraw (state seen before)':52s} {'warm s':>7s} {'cold s':>7s}", flush=True)
    for row in rows:
        if row[0] == "group_column=Gender":
            continue
        ex.state = dataclasses.replace(row[1])
        t_warm, _ = timed(ui.refresh)
        row.append(t_warm)
        print(f"{row[0]:52s} {t_warm:7.3f} {row[2]:7.2f}", flush=True)
    drawn = [r for r in rows if r[0] != "group_column=Gender"]
    worst_cold = max(drawn, key=lambda r: r[2])
    worst_warm = max(drawn, key=lambda r: r[5])
    total_cold, total_base = sum(r[2] for r in rows), sum(r[4] for r in rows)
    print(f"slowest redraw: cold {worst_cold[2]:.2f} s ({worst_cold[0]}), warm {worst_warm[5]:.3f} s "
          f"({worst_warm[0]}) (target < 1 s); all {len(rows)} changes: cold {total_cold:.1f} s vs "
          f"{total_base:.1f} s without prefetch ({total_base / total_cold:.1f}x); load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    fresh = Explorer(ex.labels, ex.predictions, n_boot=n_boot, prefetch=False, system=ex.state.system)
    for key in [k for k in ex.engine.cache if k[0] in ("merged", "filtered", "diag")]:
        fresh.engine.store(key, ex.engine.cache[key])
    fresh.set(view="confusion")
    t_votes, table = timed(fresh.cell_utterances, true="F", pred="A")
    t_cell, table = timed(ex.set(view="confusion", group_column=None).cell_utterances, true="F", pred="A")
    print(f"cell_utterances(F -> A): {len(table)} rows, {t_cell:.2f} s with the votes read in the background, "
          f"{t_votes:.2f} s without (reads labels_detailed.csv)", flush=True)


if __name__ == "__main__":
    main()
