"""Calibration of ser_diag's intervals and tests on speaker-clustered null data.

Repeats :func:`ser_diag.simulate.speaker_null_frames` (100 speakers, heavy-tailed files per
speaker, speaker effects on labels, on the system's bias and on its accuracy, no gender gap,
one utterance of unknown gender) and prints, per resampling unit:

* coverage of the 95% percentile CIs of macro-F1, CCC valence and mean CCC (share of
  repetitions whose interval holds the population value; nominal 0.95),
* the gender-gap CI rejection rate (interval excludes 0; nominal 0.05) and the rate of
  permutation p < 0.05 (nominal 0.05), for accuracy and mean CCC.

"speaker" is the default (``Resampling()`` resolves "auto" to speaker when SpkrID is known);
"utterance" is ``unit="utterance"``; "no SpkrID" drops the speaker IDs, so both the bootstrap
and the permutation run over utterances: what the audit did before when one utterance had an
unknown gender. Binomial standard error at R repetitions: sqrt(p (1 - p) / R).

    python bench/bench_calibration.py --reps 400 --n-boot 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from ser_diag.analysis.bias import group_gaps
from ser_diag.resampling import Resampling, bootstrap_metrics
from ser_diag.simulate import speaker_null_frames

COVERAGE = (("categorical", "macro_f1"), ("attributes", "ccc_EmoVal"), ("attributes", "ccc_mean"))
GAPS = (("categorical", "accuracy"), ("attributes", "ccc_mean"))


def one_repetition(seed: int, n_boot: int, settings: str) -> dict:
    data = speaker_null_frames(seed)
    if settings == "no SpkrID":
        for task in ("categorical", "attributes"):
            frame = data[task].assign(SpkrID=pd.array([pd.NA] * len(data[task]), dtype="Int64"))
            frame.attrs = dict(data[task].attrs)
            data[task] = frame
        resampling = Resampling(n_boot=n_boot, seed=seed)
    else:
        resampling = Resampling(n_boot=n_boot, seed=seed, unit=settings)
    out = {}
    for task, metric in COVERAGE:
        table = bootstrap_metrics(data[task], resampling).set_index("metric")
        lo, hi = table.at[metric, "ci_low"], table.at[metric, "ci_high"]
        out[f"cover {metric}"] = lo <= data["truth"][metric] <= hi
    for task, metric in GAPS:
        gaps = group_gaps(data[task], resampling=resampling, n_permutations=n_boot).set_index("metric")
        out[f"gap CI excl. 0 {metric}"] = not gaps.at[metric, "ci_low"] <= 0 <= gaps.at[metric, "ci_high"]
        out[f"p<0.05 {metric}"] = gaps.at[metric, "p_value"] < 0.05
        out["unit"], out["test"] = gaps.at[metric, "unit"], gaps.at[metric, "method"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=400)
    args = parser.parse_args()
    rows = []
    for settings in ("auto", "utterance", "no SpkrID"):
        start = time.perf_counter()
        reps = pd.DataFrame([one_repetition(seed, args.n_boot, settings) for seed in range(args.reps)])
        row = {"settings": "speaker (default)" if settings == "auto" else settings,
               "unit": reps["unit"].iloc[0], "test": reps["test"].iloc[0]}
        row.update(reps.drop(columns=["unit", "test"]).mean().round(3).to_dict())
        row["seconds"] = round(time.perf_counter() - start, 1)
        rows.append(row)
    table = pd.DataFrame(rows).set_index("settings").T
    se95, se05 = np.sqrt(0.95 * 0.05 / args.reps), np.sqrt(0.05 * 0.95 / args.reps)
    print(f"{args.reps} repetitions, {args.n_boot} resamples / permutations each; "
          f"binomial s.e. {se95:.3f} at 0.95 and {se05:.3f} at 0.05\n")
    header = "| | " + " | ".join(table.columns) + " |"
    print(header)
    print("|" + "---|" * (len(table.columns) + 1))
    for name, values in table.iterrows():
        print(f"| {name} | " + " | ".join(str(v) for v in values) + " |")


if __name__ == "__main__":
    main()
