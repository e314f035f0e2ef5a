"""The fusion-vs-single-modality comparison itself (:mod:`ser_diag.models.comparison`), on
planted predictions: no training. (The claims on the trained reference systems are in
``tests/test_main_command.py``.)"""

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.resampling import Resampling, paired_test
from ser_diag.schema import ATTRIBUTES, CLASS_CODES


def _planted(seed=0, n_speakers=20, per_speaker=5):
    """Labels of 100 files from 20 speakers and a prediction maker of chosen accuracy."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per_speaker
    labels = pd.DataFrame({"FileName": [f"f{i:03d}.wav" for i in range(n)],
                           "EmoClass": rng.choice(list(CLASS_CODES), size=n),
                           **{a: rng.uniform(1, 7, size=n) for a in ATTRIBUTES},
                           "SpkrID": pd.array(np.repeat(np.arange(n_speakers), per_speaker) + 1, dtype="Int64"),
                           "Gender": "Female", "Split_Set": "Test3"})

    def run(system, hit, noise, draw):
        r = np.random.default_rng([seed, draw])
        right = r.random(n) < hit
        classes = np.where(right, labels["EmoClass"], r.choice(list(CLASS_CODES), size=n))
        frame = pd.DataFrame({"system": system, "FileName": labels["FileName"], "EmoClass": classes})
        for a in ATTRIBUTES:
            frame[a] = np.clip(labels[a] + r.normal(0, noise, n), 1, 7)
        return frame
    return labels, run


def test_comparison_of_one_seed_is_the_paired_speaker_bootstrap():
    """Independent check: with one seed, every row is paired_test's difference and interval."""
    from ser_diag.models.comparison import fusion_vs_single_modality, seed_run_name

    labels, run = _planted()
    preds = pd.concat([run(seed_run_name("late_fusion", 0), 0.7, 0.8, 1), run(seed_run_name("audio_egemaps", 0), 0.5, 1.5, 2),
                       run(seed_run_name("text_minilm", 0), 0.6, 1.2, 3)], ignore_index=True)
    settings = Resampling(n_boot=300, unit="speaker", seed=4)
    table = fusion_vs_single_modality(labels, preds, seeds=[0], resampling=settings)
    assert len(table) == 8 and set(table["unit"]) == {"speaker"} and (table["n_speakers"] == 20).all()
    for row in table.to_dict("records"):
        task = "categorical" if row["metric"] == "macro_f1" else "attributes"
        expected = paired_test(io.merge(labels, preds, task), seed_run_name("late_fusion", 0),
                               seed_run_name(row["single"], 0), row["metric"], settings)
        assert row["estimate"] == pytest.approx(expected["diff"], abs=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected["ci_low"], expected["ci_high"]), abs=1e-6)
        assert row["fusion_estimate"] - row["single_estimate"] == pytest.approx(row["estimate"], abs=1e-9)


def test_comparison_averages_seeds_and_says_tie_when_the_interval_holds_zero():
    from ser_diag.models.comparison import fusion_vs_single_modality, seed_run_name

    labels, run = _planted(seed=1)
    seeds = (0, 1, 2)
    frames = []
    for k in seeds:
        fused = run(seed_run_name("late_fusion", k), 0.8, 0.5, 10 + k)
        frames += [fused, fused.assign(system=seed_run_name("text_minilm", k)),  # same predictions: a tie
                   run(seed_run_name("audio_egemaps", k), 0.15, 3.0, 20 + k)]   # far worse: fusion better
    preds = pd.concat(frames, ignore_index=True)
    settings = Resampling(n_boot=200, unit="speaker", seed=0)
    table = fusion_vs_single_modality(labels, preds, seeds=seeds, resampling=settings).set_index(["single", "metric"])
    for metric in ("macro_f1", "ccc_EmoAct", "ccc_EmoVal", "ccc_EmoDom"):
        tie = table.loc[("text_minilm", metric)]
        assert tie["estimate"] == 0 and tie["ci_low"] == 0 == tie["ci_high"] and tie["verdict"] == "tie"
        better = table.loc[("audio_egemaps", metric)]
        task = "categorical" if metric == "macro_f1" else "attributes"
        per_seed = [paired_test(io.merge(labels, preds, task), seed_run_name("late_fusion", k),
                                seed_run_name("audio_egemaps", k), metric, settings)["diff"] for k in seeds]
        assert better["estimate"] == pytest.approx(np.mean(per_seed), abs=1e-9)
        assert better["ci_low"] > 0 and better["verdict"] == "fusion better"
        assert better["seeds_fusion_ahead"] == 3 and better["n_seeds"] == 3
    swapped = preds.assign(system=preds["system"].str.replace("late_fusion", "tmp").str.replace(
        "audio_egemaps", "late_fusion").str.replace("tmp", "audio_egemaps"))
    worse = fusion_vs_single_modality(labels, swapped, seeds=seeds, resampling=settings)
    assert (worse.loc[worse["single"] == "audio_egemaps", "verdict"] == "fusion worse").all()
