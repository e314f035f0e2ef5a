"""Peak memory of ``figures`` (every diagnostic + the figure set) at 32k / 100k / 400k files x
20 systems, this code against a named older commit ("today's path") measured in the same run.

Each measurement is a fresh Python process (peak RSS from ``getrusage``), so the numbers do not
mix. The older commit is checked out into a temporary ``git worktree`` and imported from there
(the only way to run two versions side by side); the data are simulated once per size with the
current simulator and read by both.

    python bench/bench_memory.py --sizes 32000 100000 400000 --systems 20 --n-boot 100 \\
        --baseline d2f9548

Prints one row per size: peak RSS of the baseline and of this code in GB (10^9 bytes; GiB in
brackets), this code's peak with its forked workers (the sum of their PSS, sampled from the
parent: no thread in the measured process, so ser_diag forks as it would for a user), their
ratio, and the growth of this code's peak from the previous size against the growth in files
(sub-linear: the peak grows by less than the data). ``--where`` also names the call chain at
this code's peak (a sampler thread inside the process, which makes ser_diag compute serially).
``--data DIR`` keeps the simulated inputs (``DIR/data_<n>``) for the next run (a 400k x 20
simulation takes ~10 minutes); ``--no-baseline-above N`` measures only this code past ``N``
files and prints the baseline's number from issue 10 where it has one (400k x 20: 10.8 GB,
100k x 20: 2.97 GB, measured at 1000 resamples), marked as quoted, not measured.
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

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, resource, sys, threading, time
start = time.perf_counter()
where = {"rss": 0, "at": ""}
if os.environ.get("BENCH_MEMORY_WHERE"):
    # where the peak sits: a sampler thread notes the main thread's ser_diag call chain whenever
    # RSS reaches a new high (every 50 ms). A running thread keeps ser_diag from forking workers
    # (ser_diag.parallel), so this is a diagnostic run, not the measurement.
    page, main_id = os.sysconf("SC_PAGE_SIZE"), threading.main_thread().ident
    def sample():
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            if rss > where["rss"]:
                frame, chain = sys._current_frames().get(main_id), []
                while frame is not None:
                    name = frame.f_globals.get("__name__", "")
                    if name.startswith("ser_diag"):
                        chain.append(f"{name.split('.', 1)[-1]}.{frame.f_code.co_name}")
                    frame = frame.f_back
                where.update(rss=rss, at=" < ".join(chain[:3]))
            time.sleep(0.05)
    threading.Thread(target=sample, daemon=True).start()
from ser_diag.figures import write_paper_figures
labels, predictions, out, n_boot = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
try:
    from ser_diag.resampling import Resampling
    write_paper_figures(labels, predictions, out, resampling=Resampling(n_boot=n_boot))
except (ImportError, TypeError):   # the older API: n_boot keyword, utterance resampling
    write_paper_figures(labels, predictions, out, n_boot=n_boot)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2   # KiB -> GiB
print(json.dumps({"peak_gib": peak, "seconds": time.perf_counter() - start, "peak_at": where["at"]}))
"""


def _descendants(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found += [int(child)] + _descendants(int(child))
    except OSError:
        pass
    return found


def _memory(pid: int, proportional: bool) -> int:
    """Bytes of ``pid``: PSS (shared copy-on-write pages split between the processes sharing
    them) or RSS."""
    try:
        if proportional:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith("Pss:"))
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, StopIteration, ValueError):
        return 0


def run_child(code_root: Path | None, labels: Path, predictions: Path, out: Path, n_boot: int,
              where: bool = False) -> dict:
    """One ``figures`` run in a fresh process. Its memory with its forked workers is sampled from
    here every 50 ms (no thread in the measured process): the sum of PSS over the process and
    its descendants while it has any, its RSS otherwise (``tree_gib``)."""
    env = dict(os.environ)
    if code_root is not None:   # the older commit's package, not the installed one
        env["PYTHONPATH"] = str(code_root)
    if where:
        env["BENCH_MEMORY_WHERE"] = "1"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(labels), str(predictions), str(out), str(n_boot)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=code_root or REPO)
    tree = 0
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        import threading

        pumps = [threading.Thread(target=lambda src=src, dst=dst: dst.write(src.read()))
                 for src, dst in ((child.stdout, stdout), (child.stderr, stderr))]
        for pump in pumps:
            pump.start()
        while child.poll() is None:
            children = _descendants(child.pid)
            total = (_memory(child.pid, True) + sum(_memory(c, True) for c in children) if children
                     else _memory(child.pid, False))
            tree = max(tree, total)
            time.sleep(0.05)
        for pump in pumps:
            pump.join()
        stdout.seek(0), stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if child.returncode != 0:
        return {"peak_gib": float("nan"), "tree_gib": float("nan"), "seconds": float("nan"),
                "error": err_text.strip().splitlines()[-1:]}
    result = json.loads(out_text.strip().splitlines()[-1])
    result["tree_gib"] = max(tree / 1024 ** 3, result["peak_gib"])
    return result


#: ``figures`` peak memory of the older path quoted in issue 10 (GB), (files, systems) at 1000 resamples.
ISSUE_BASELINE_GB = {(400000, 20): 10.8, (100000, 20): 2.97}


def _simulated(root: Path, n: int, systems: int) -> Path:
    """The simulated challenge of ``n`` files (seed 0) under ``root``, made once."""
    data = root / f"data_{n}_{systems}"
    if not (data / "predictions").is_dir():
        from ser_diag.simulate import simulate_challenge
        data = simulate_challenge(data, seed=0, n_systems=systems, n=n)
    return data


def _gb(gib: float) -> str:
    """``gib`` GiB as GB (10^9 bytes), GiB in brackets."""
    return f"{gib * 1024 ** 3 / 1e9:.2f} GB ({gib:.2f} GiB)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32000, 100000, 400000])
    parser.add_argument("--systems", type=int, default=20)
    parser.add_argument("--n-boot", type=int, default=100)
    parser.add_argument("--baseline", default="d2f9548", help="commit of today's path (before the block bootstrap)")
    parser.add_argument("--data", type=Path, default=None, help="folder keeping the simulated inputs between runs")
    parser.add_argument("--where", action="store_true",
                        help="also note where this code's peak sits (a sampler thread in the process; "
                             "ser_diag then computes without forked workers)")
    parser.add_argument("--no-baseline-above", type=int, default=None,
                        help="past this many files, quote issue 10's baseline number instead of measuring it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        old = tmp / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.baseline],
                       check=True, capture_output=True)
        try:
            print(f"figures, {args.systems} systems, {args.n_boot} resamples; baseline {args.baseline}\n")
            print("Peak RSS in GB = 10^9 bytes (GiB = 2^30 bytes in brackets). 'With forked workers': the\n"
                  "largest sum of PSS over the process and its children, sampled every 50 ms from outside;\n"
                  "ratio and growth use it.\n")
            print("| files | baseline peak GB | this code peak GB | with forked workers GB | ratio | "
                  "peak growth vs files | baseline s | this code s |")
            print("|---|---|---|---|---|---|---|---|")
            previous = None
            for n in args.sizes:
                data = _simulated(args.data or tmp, n, args.systems)
                labels, predictions = data / "Labels" / "labels_consensus.csv", data / "predictions"
                quoted = args.no_baseline_above is not None and n > args.no_baseline_above
                if quoted:
                    gb = ISSUE_BASELINE_GB.get((n, args.systems)) if args.n_boot == 1000 else None
                    before = {"peak_gib": gb * 1e9 / 1024 ** 3 if gb else float("nan"), "seconds": float("nan")}
                else:
                    before = run_child(old, labels, predictions, tmp / f"old_{n}", args.n_boot)
                after = run_child(None, labels, predictions, tmp / f"new_{n}", args.n_boot, where=args.where)
                ratio = before["peak_gib"] / after["tree_gib"]   # forked workers' memory included
                mark = " (issue 10's number, quoted: not measured in this run)" if quoted else ""
                if quoted and before["peak_gib"] != before["peak_gib"]:   # nan: issue 10 has no number here
                    mark = "not measured (--no-baseline-above)"
                growth = (f"x{after['tree_gib'] / previous[1]:.2f} for x{n / previous[0]:.2f} files"
                          if previous else "")
                previous = (n, after["tree_gib"])
                baseline = mark if mark.startswith("not") else _gb(before["peak_gib"]) + mark
                print(f"| {n} | {baseline} | {_gb(after['peak_gib'])} | {_gb(after.get('tree_gib', float('nan')))} | "
                      f"{ratio:.2f}x | {growth} | "
                      f"{before['seconds']:.0f} | {after['seconds']:.0f} |", flush=True)
                for label, res in (("baseline", before), ("this code", after)):
                    if "error" in res:
                        print(f"  {label} failed: {res['error']}")
                    elif res.get("peak_at"):
                        print(f"  {label}: peak in {res['peak_at']}")
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], capture_output=True)


if __name__ == "__main__":
    main()
