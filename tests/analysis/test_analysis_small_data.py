"""Issue 10 (analysis part): per-speaker analyses skip with a note on small or speakerless
data instead of crashing, and statistics that are undefined on constant labels are nan with a
note instead of numbers (the old code printed a slope of -0.861 and an sd ratio of 5e7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ser_diag.analysis import bias, regression_to_mean
from ser_diag.diagnostics import build_figures, diagnose
from ser_diag.resampling import Resampling
from ser_diag.simulate import speaker_null_frames

SETTINGS = Resampling(n_boot=20)


def _frames(n_speakers=12, **kw):
    data = speaker_null_frames(0, n_speakers=n_speakers, **kw)
    return data["categorical"], data["attributes"]


def _with(frame, **columns):
    out = frame.assign(**columns)
    out.attrs = dict(frame.attrs)
    return out


def _check(diag, expect_note: str):
    assert any(expect_note in note for note in diag.settings["notes"]), diag.settings["notes"]
    figures = build_figures(diag)
    assert figures and not any(name.startswith("speaker_distribution") for name in figures)
    import matplotlib.pyplot as plt
    for fig in figures.values():
        plt.close(fig)


def test_all_speakers_unknown_skips_per_speaker_analyses_and_resamples_utterances():
    cat, att = _frames()
    na = pd.array([pd.NA] * len(cat), dtype="Int64")
    diag = diagnose(_with(cat, SpkrID=na), _with(att, SpkrID=na), resampling=SETTINGS)
    _check(diag, "no file has a known speaker: the per-speaker analyses are dropped")
    assert diag.settings["unit"] == "utterance" and set(diag.tables["metrics"]["unit"]) == {"utterance"}
    assert len(diag.tables["unit_comparison"]) == 0
    assert "speaker_metrics" not in diag.tables


def test_five_files_per_speaker_skip_with_a_note():
    cat, att = _frames(n_speakers=30)
    spk = pd.array(np.arange(len(cat)) // 5 + 1, dtype="Int64")
    diag = diagnose(_with(cat, SpkrID=spk), _with(att, SpkrID=spk), resampling=SETTINGS)
    _check(diag, "no speaker has 10 or more utterances")
    assert diag.settings["unit"] == "speaker"
    empty = bias.speaker_metrics(att, min_utterances=10_000)
    assert empty.empty and list(empty.columns) == ["system", "SpkrID", "Gender", "n_utterances", "metric", "estimate"]


def test_three_file_split_runs_with_notes():
    cat, att = _frames()
    cat, att = cat.iloc[:3].copy(), att.iloc[:3].copy()
    cat.attrs, att.attrs = dict(_frames()[0].attrs), dict(_frames()[1].attrs)
    diag = diagnose(cat, att, resampling=SETTINGS)
    _check(diag, "recalibration what-if skipped")


def test_constant_labels_give_nan_with_a_note_not_numbers():
    _, att = _frames(n_speakers=20)
    const = _with(att, EmoAct_true=4.0)
    table = regression_to_mean.shrinkage_table(const, resampling=SETTINGS)
    act = table[table["attribute"] == "EmoAct"].set_index("metric")
    for metric in ("slope", "variance_ratio", "rho", "scale_v", "location_u"):   # CCC itself is 0: defined
        assert np.isnan(act.at[metric, "estimate"]), metric
        assert np.isnan(act.at[metric, "ci_low"]) and np.isnan(act.at[metric, "ci_high"]), metric
    assert any("every true EmoAct is 4" in note for note in table.attrs["notes"])
    val = table[table["attribute"] == "EmoVal"].set_index("metric")
    assert np.isfinite(val.at["slope", "estimate"])                        # the others are untouched
    diag = diagnose(None, const, resampling=SETTINGS)
    assert any("EmoAct" in note for note in diag.settings["notes"])
    by_gender = bias.group_metrics(const, resampling=SETTINGS)
    shrink = by_gender[by_gender["metric"] == "shrinkage_EmoAct"]
    assert shrink["estimate"].isna().all() and not np.isinf(by_gender["estimate"]).any()
