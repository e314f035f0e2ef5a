"""Benchmark at organiser scale: time and peak memory of ``evaluate`` and ``figures`` as the
number of systems grows (the challenge had 166 categorical and 111 attribute entries).

    python3 bench/bench_organiser_scale.py                 # quick: 10, 20 systems x 8,000 files x 200 resamples
    python3 bench/bench_organiser_scale.py --full          # 10, 40, 100, 166 systems x 32,000 files x 1,000
    python3 bench/bench_organiser_scale.py --systems 10,40 --n 32000 --boot 1000

One challenge with the largest number of systems is simulated once
(:func:`ser_diag.simulate.simulate_challenge`, not timed); smaller runs use the first S system
folders (symbolic links). Every measurement runs in a fresh Python process, so its peak
resident memory (``ru_maxrss``) is its own:

* ``evaluate``: :func:`ser_diag.evaluate.evaluate_paths` (what ``ser-diag evaluate`` runs);
* ``evaluate, files read as text`` (its named baseline): the same with every prediction file
  read as text cells, then validated and converted (the reading before ``io``'s typed reader);
* ``figures``: :func:`ser_diag.figures.write_paper_figures`, everything included;
* ``figures, today's path`` (the named baseline, measured in the same run): the same command
  with the beyond-the-leaderboard stages (ranks, agreement, podcast, duration tables and their
  figures: ``ser_diag.analysis.beyond.beyond_tables``, ``ser_diag.plots.ranks.beyond_figures``)
  replaced by no-ops, i.e. the code path before issue 12;
* ``figures, everything, one process`` (``--stages figures_one_process``): the same with no
  forked workers (``ser_diag.parallel.MAX_WORKERS = 1``), what the cores add;
* ``beyond stages``: the beyond tables and figures alone on loaded data (loading not timed).

Columns: wall and CPU seconds of the measured process, ``+workers`` the CPU seconds of the
processes it forked (``ser_diag.parallel``: analyses and figure saving run side by side on the
cores); ``peak GB`` its own peak resident memory (``ru_maxrss``), ``+workers`` the peak
proportional set size of it and its forked workers together (PSS sampled every 0.5 s: shared
pages counted once), the number the 3 GB target is checked against.

Targets (issue 12, on 2 cores, 166 systems x 32,000 files x 1,000 resamples): ``figures`` under
90 s and 3 GB peak, ``evaluate`` under 20 s. The machine may be shared: CPU seconds are printed
beside wall seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUICK = dict(systems=[10, 20], n=8000, boot=200)
FULL = dict(systems=[10, 40, 100, 166], n=32000, boot=1000)
TARGETS = {"figures": (90.0, 3.0), "evaluate": (20.0, None)}

_CHILD = r"""
import json, resource, sys, time
import matplotlib
matplotlib.use("Agg")
stage, labels, predictions, out, boot = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
w0, c0 = time.perf_counter(), time.process_time()
if stage in ("evaluate", "evaluate_text"):
    from ser_diag.evaluate import evaluate_paths
    if stage == "evaluate_text":   # the third landing's reading: text cells, then validation and conversion
        import importlib
        try:   # the module that calls it: io/predictions.py (io.py before the io package)
            reader = importlib.import_module("ser_diag.io.predictions")
        except ModuleNotFoundError:
            reader = importlib.import_module("ser_diag.io")
        reader._typed_prediction_file = lambda path, data: None
    evaluate_paths(labels, predictions, split="Development", n_boot=boot)
elif stage in ("figures", "figures_today", "figures_one_process"):
    from ser_diag import diagnostics, figures
    if stage == "figures_one_process":
        import ser_diag.parallel
        ser_diag.parallel.MAX_WORKERS = 1
    if stage == "figures_today":
        import ser_diag.analysis.beyond as beyond_module
        import ser_diag.plots.ranks as plots_module
        import pandas as pd
        beyond_module.beyond_tables = lambda *a, **k: {"beyond_notes": pd.DataFrame({"topic": [], "note": []})}
        plots_module.beyond_figures = lambda *a, **k: {}
        diagnostics.beyond_tables = beyond_module.beyond_tables
    figures.write_paper_figures(labels, predictions, out, split="Development", n_boot=boot)
elif stage == "beyond":
    from ser_diag import io
    from ser_diag.analysis.beyond import beyond_tables
    from ser_diag.plots.ranks import beyond_figures
    from ser_diag.resampling import shared_weights
    data = io.load(labels, predictions, split="Development")
    w0, c0 = time.perf_counter(), time.process_time()
    with shared_weights():
        tables = beyond_tables(data["categorical"], data["attributes"], data["labels"], n_boot=boot)
    for fig in beyond_figures(tables).values():
        matplotlib.pyplot.close(fig)
else:
    raise SystemExit(f"unknown stage {stage}")
children = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall": time.perf_counter() - w0, "cpu": time.process_time() - c0,
                  "cpu_workers": children.ru_utime + children.ru_stime,
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20}))
"""

STAGES = {"evaluate": "evaluate", "evaluate_text": "evaluate, text reader (baseline)",
          "figures_today": "figures, today's path (baseline)",
          "figures_one_process": "figures, everything, one process", "figures": "figures, everything",
          "beyond": "beyond stages alone"}


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    pids = [pid]
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                for child in fh.read().split():
                    pids += _tree(int(child))
    except OSError:
        pass
    return pids


def tree_pss_gb(pid: int) -> float:
    """Proportional set size of ``pid`` and its descendants (forked workers share the parent's
    pages; PSS counts each shared page once in all), in GiB; 0 where /proc is unavailable."""
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total / 2 ** 20


def run_child(stage: str, labels: Path, predictions: Path, out: Path, boot: int, timeout: float) -> dict:
    """Run one measurement in a fresh process; besides its own numbers, the peak memory of the
    process with its forked workers (PSS sampled every 0.5 s from here, so nothing runs in the
    measured process)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen([sys.executable, "-c", _CHILD, stage, str(labels), str(predictions), str(out),
                                    str(boot)], stdout=stdout, stderr=stderr, text=True)
        start, tree_peak = time.perf_counter(), 0.0
        while process.poll() is None:
            if time.perf_counter() - start > timeout:
                process.kill()
                process.wait()
                return {"error": f"over {timeout:.0f} s"}
            tree_peak = max(tree_peak, tree_pss_gb(process.pid))
            time.sleep(0.5)
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode != 0:
            return {"error": (stderr.read().strip().splitlines() or ["failed"])[-1]}
        result = json.loads(stdout.read().strip().splitlines()[-1])
    result["tree_gb"] = max(tree_peak, result["peak_gb"])
    return result


def subset(predictions: Path, names: list[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        link = folder / name
        if not link.exists():
            link.symlink_to(predictions / name, target_is_directory=True)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="10, 40, 100, 166 systems x 32,000 files x 1,000")
    parser.add_argument("--systems", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--boot", type=int, default=None)
    parser.add_argument("--stages", default="evaluate_text,evaluate,figures_today,figures,beyond")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per measurement")
    parser.add_argument("--data", type=Path, default=None,
                        help="a challenge simulated before with the same settings (simulate_challenge(DIR, seed=0, "
                             "n_systems=<largest>, split='Development', n=<n>)): reused instead of simulating")
    args = parser.parse_args(argv)
    config = dict(FULL if args.full else QUICK)
    for key in ("systems", "n", "boot"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    stages = args.stages.split(",")
    sizes = sorted(config["systems"])

    from ser_diag.simulate import simulate_challenge

    with tempfile.TemporaryDirectory(prefix="bench_organiser_") as tmp:
        tmp = Path(tmp)
        w0 = time.perf_counter()
        root = args.data if args.data is not None else tmp / "challenge"
        if args.data is None:
            simulate_challenge(root, seed=0, n_systems=sizes[-1], split="Development", n=config["n"])
        labels, predictions = root / "Labels" / "labels_consensus.csv", root / "predictions"
        names = sorted(p.name for p in predictions.iterdir() if p.is_dir())
        if len(names) < sizes[-1]:
            raise SystemExit(f"{root} holds {len(names)} systems, fewer than {sizes[-1]}")
        print(f"{'reused' if args.data else 'simulated'} {config['n']} files x {sizes[-1]} systems in "
              f"{time.perf_counter() - w0:.0f} s (not timed); {config['boot']} resamples; {os.cpu_count()} cores; "
              f"load average {os.getloadavg()[0]:.1f}\n")
        results: dict[tuple[int, str], dict] = {}
        print(f"{'systems':>8}  {'stage':<34}{'wall s':>9}{'CPU s':>9}{'+workers':>9}{'peak GB':>9}{'+workers':>9}")
        for s in sizes:
            folder = predictions if s == len(names) else subset(predictions, names[:s], tmp / f"predictions_{s}")
            print(f"{'':>8}  (load average {os.getloadavg()[0]:.1f})", flush=True)
            for stage in stages:
                r = run_child(stage, labels, folder, tmp / f"out_{s}_{stage}", config["boot"], args.timeout)
                results[(s, stage)] = r
                if "error" in r:
                    print(f"{s:>8}  {STAGES[stage]:<34}  {r['error']}")
                else:
                    print(f"{s:>8}  {STAGES[stage]:<34}{r['wall']:>9.1f}{r['cpu']:>9.1f}{r['cpu_workers']:>9.1f}"
                          f"{r['peak_gb']:>9.2f}{r['tree_gb']:>9.2f}", flush=True)

        print("\nratio everything / today's path (figures), same run:")
        for s in sizes:
            a, b = results.get((s, "figures"), {}), results.get((s, "figures_today"), {})
            if "wall" in a and "wall" in b:
                print(f"  {s:>4} systems: wall {a['wall'] / b['wall']:.2f}x, peak memory "
                      f"{a['tree_gb'] / b['tree_gb']:.2f}x")
        for s in sizes:
            a, b = results.get((s, "figures"), {}), results.get((s, "figures_one_process"), {})
            if "wall" in a and "wall" in b:
                print(f"  {s:>4} systems, on the cores / on one process: wall {a['wall'] / b['wall']:.2f}x, "
                      f"peak memory {a['tree_gb'] / b['tree_gb']:.2f}x")
        for s in sizes:
            a, b = results.get((s, "evaluate"), {}), results.get((s, "evaluate_text"), {})
            if "wall" in a and "wall" in b:
                print(f"  {s:>4} systems, evaluate / with the text reader: wall {a['wall'] / b['wall']:.2f}x, "
                      f"CPU {a['cpu'] / b['cpu']:.2f}x, peak memory {a['tree_gb'] / b['tree_gb']:.2f}x")
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            print(f"\ngrowth from {lo} to {hi} systems ({hi / lo:.1f}x the systems):")
            for stage in stages:
                a, b = results.get((lo, stage), {}), results.get((hi, stage), {})
                if "wall" in a and "wall" in b:
                    print(f"  {STAGES[stage]:<34} wall {b['wall'] / a['wall']:.2f}x, peak memory "
                          f"{b['tree_gb'] / a['tree_gb']:.2f}x")
        at_target = sizes[-1] >= 166 and config["n"] >= 32000 and config["boot"] >= 1000
        print("\ntargets (166 systems x 32,000 files x 1,000 resamples):"
              + ("" if at_target else " not measured at that size in this run (use --full)"))
        if at_target:
            for stage, (seconds, gigabytes) in TARGETS.items():
                r = results.get((sizes[-1], stage), {})
                if "wall" not in r:
                    continue
                met = r["wall"] < seconds and (gigabytes is None or r["tree_gb"] < gigabytes)
                limit = f"< {seconds:.0f} s" + (f", < {gigabytes:.0f} GB" if gigabytes else "")
                print(f"  {stage}: {r['wall']:.1f} s, {r['tree_gb']:.2f} GB with its workers ({limit}): "
                      f"{'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
