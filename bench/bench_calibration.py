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

``--speakers 10 20 40`` measures the same at few speakers instead (IEMOCAP and EmoDB have 10):
per number of speakers, worlds of :func:`speaker_null_frames` with ``n_speakers`` speakers
(half female; ``--files-log-mean 3``: ~26 files per speaker, as few-speaker corpora have many
files per speaker; speaker effects as above; one utterance of unknown gender) and a second,
equally good system ``b`` (its own speaker skill and bias drawn from the same distributions),
and prints with Monte-Carlo standard errors sqrt(r (1 - r) / R):

* coverage of the speaker-bootstrap 95% intervals of macro-F1, CCC valence and mean CCC of
  system ``a`` (population value planted in closed form), as returned and after the
  small-cluster correction (:func:`ser_diag.resampling.widen_interval`, ``corrected``);
* gender-gap interval excludes 0 (widened for few speakers by default since issue 22) and
  gender-gap permutation p < 0.05 (:func:`ser_diag.analysis.bias.group_audit`) for
  macro-F1 and mean CCC;
* :func:`ser_diag.resampling.paired_test` a vs b rejects at 0.05 (bootstrap and permutation)
  for macro-F1 and mean CCC.

    nice -n 19 python bench/bench_calibration.py --speakers 10 20 40 80 160 --reps 400 --n-boot 600

(600 resamples: the paired sign-flip test is exact at 10 speakers, 2^9 = 512 patterns, and the
gender-gap permutation test too, 252 arrangements; README "Resampling unit" has the table.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from ser_diag.analysis.bias import group_audit, group_gaps
from ser_diag.resampling import Resampling, bootstrap_metrics, paired_test
from ser_diag.schema import ATTRIBUTES, CLASS_CODES
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


def two_system_world(seed: int, n_speakers: int, files_log_mean: float) -> dict:
    """:func:`speaker_null_frames` (system ``a``) plus an equally good system ``b`` on the
    same files: its own speaker skill ``N(0, 1)`` on the logit and its own speaker bias and
    noise, from the generator's default distributions, so a and b are exchangeable."""
    data = speaker_null_frames(seed, n_speakers=n_speakers, speaker_size_log_mean=files_log_mean)
    rng = np.random.default_rng([seed, 17])
    out = {"truth": data["truth"]}
    for task in ("categorical", "attributes"):
        a = data[task].assign(system="a")
        spk = a["SpkrID"].to_numpy(np.int64) - 1
        b = a.assign(system="b")
        if task == "categorical":
            codes = np.array(CLASS_CODES)
            true_idx = pd.Series(a["EmoClass_true"]).map({c: i for i, c in enumerate(codes)}).to_numpy()
            p_right = (1.0 / (1.0 + np.exp(-rng.standard_normal(n_speakers))))[spk]
            wrong = (true_idx + rng.integers(1, codes.size, len(a))) % codes.size
            b["EmoClass_pred"] = codes[np.where(rng.random(len(a)) < p_right, true_idx, wrong)]
        else:
            bias = rng.normal(0, 0.5, (n_speakers, len(ATTRIBUTES)))[spk]
            for j, attr in enumerate(ATTRIBUTES):
                b[f"{attr}_pred"] = (4.0 + 0.6 * (a[f"{attr}_true"].to_numpy() - 4.0) + bias[:, j]
                                     + rng.normal(0, 0.8, len(a)))
        merged = pd.concat([a, b], ignore_index=True)
        merged.attrs = dict(data[task].attrs)
        out[task] = merged
    return out


FEW_COVERAGE = (("categorical", "macro_f1"), ("attributes", "ccc_EmoVal"), ("attributes", "ccc_mean"))
FEW_TESTS = (("categorical", "macro_f1"), ("attributes", "ccc_mean"))


def few_speaker_repetition(seed: int, n_speakers: int, n_boot: int, files_log_mean: float) -> dict:
    from ser_diag.resampling import widen_interval
    data = two_system_world(seed, n_speakers, files_log_mean)
    settings = Resampling(n_boot=n_boot, seed=seed)
    out = {}
    for task, metric in FEW_COVERAGE:
        table = bootstrap_metrics(data[task], settings)
        row = table[(table["system"] == "a") & (table["metric"] == metric)].iloc[0]
        truth = data["truth"][metric]
        out[f"cover {metric}"] = row["ci_low"] <= truth <= row["ci_high"]
        lo, hi = widen_interval(row["estimate"], row["ci_low"], row["ci_high"], n_speakers)
        out[f"cover {metric} corrected"] = lo <= truth <= hi
        out["note"] = bool(table.attrs.get("notes"))
    audits = {task: group_audit(data[task], resampling=settings, n_permutations=n_boot)[1]
              for task in ("categorical", "attributes")}
    for task, metric in FEW_TESTS:
        gaps = audits[task]
        row = gaps[(gaps["system"] == "a") & (gaps["metric"] == metric)].iloc[0]
        out[f"gap CI excl. 0 {metric}"] = not row["ci_low"] <= 0 <= row["ci_high"]   # widened by default
        out[f"gap p<0.05 {metric}"] = row["p_value"] < 0.05
        for method in ("bootstrap", "permutation"):
            test = paired_test(data[task], "a", "b", metric, settings, method=method)
            out[f"paired {method} p<0.05 {metric}"] = test["p_value"] < 0.05
        out["paired exact"] = test["exact"]
    out["gap test"] = row["method"]
    return out


def few_speakers(args) -> None:
    columns, seconds = {}, {}
    for g in args.speakers:
        start = time.perf_counter()
        reps = pd.DataFrame([few_speaker_repetition(seed, g, args.n_boot, args.files_log_mean)
                             for seed in range(args.reps)])
        seconds[g] = time.perf_counter() - start
        columns[g] = reps
        print(f"{g} speakers: {args.reps} repetitions in {seconds[g]:.0f} s; gap test: "
              f"{reps['gap test'].iloc[0]}; paired permutation exact: {bool(reps['paired exact'].iloc[0])}; "
              f"few-speaker note attached: {reps['note'].mean():.2f}", flush=True)
    names = [c for c in columns[args.speakers[0]].columns if c not in ("gap test", "note", "paired exact")]
    print(f"\n{args.reps} repetitions per column, {args.n_boot} resamples / permutations each; "
          f"rate (Monte-Carlo s.e.); nominal 0.95 for coverage, 0.05 for rejections\n")
    print("| | " + " | ".join(f"{g} speakers" for g in args.speakers) + " |")
    print("|" + "---|" * (len(args.speakers) + 1))
    for name in names:
        cells = []
        for g in args.speakers:
            r = float(columns[g][name].mean())
            cells.append(f"{r:.3f} ({np.sqrt(r * (1 - r) / args.reps):.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("| seconds | " + " | ".join(f"{seconds[g]:.0f}" for g in args.speakers) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--n-boot", type=int, default=400)
    parser.add_argument("--speakers", type=int, nargs="+", default=None,
                        help="few-speaker worlds with these numbers of speakers (e.g. 10 20 40) instead of "
                             "the default world's speaker vs utterance table")
    parser.add_argument("--files-log-mean", type=float, default=3.0,
                        help="log-mean of the files per speaker in --speakers worlds (3: ~26 files each)")
    args = parser.parse_args()
    if args.speakers:
        few_speakers(args)
        return
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
