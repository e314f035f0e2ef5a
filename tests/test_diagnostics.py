"""diagnostics.diagnose with one Resampling: speaker unit by default everywhere, splits by
speaker, baseline only by name, utterance-vs-speaker widths side by side."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from ser_diag import io
from ser_diag.analysis.regression_to_mean import holdout_files
from ser_diag.diagnostics import diagnose
from ser_diag.resampling import Resampling
from ser_diag.simulate import simulate_challenge


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = simulate_challenge(tmp_path_factory.mktemp("diag") / "ch", seed=1, n_systems=5, n=2500)
    data = io.load(root / "Labels" / "labels_consensus.csv", root / "predictions")
    shutil.rmtree(root)
    return data["categorical"], data["attributes"]


@pytest.fixture(scope="module")
def diag(frames):
    return diagnose(*frames, resampling=Resampling(n_boot=60, seed=2))


def test_speaker_is_the_unit_of_every_interval(diag):
    assert diag.settings["unit"] == "speaker" and diag.settings["unit_setting"] == "auto"
    assert diag.settings["resampling"] == Resampling(n_boot=60, seed=2)
    for name in ("metrics", "minority_destinations", "shrinkage", "bin_means", "gender_metrics",
                 "gender_gaps", "class_recall_by_gender", "fusion_curve"):
        assert set(diag.tables[name]["unit"]) == {"speaker"}, name
    assert set(diag.tables["gender_gaps"]["method"]) == {"speaker permutation"}
    assert diag.evaluation["systems"]["sys01_baseline"]["ci"]["unit"] == "speaker"


def test_splits_share_no_speaker(diag, frames):
    att = frames[1]
    assert set(diag.tables["recalibration"]["split_unit"]) == {"speaker"}
    assert diag.tables["fusion_curve"].attrs["split_unit"] == "speaker"
    fit = set(holdout_files(att, 0.5, seed=2, by_speaker=True))
    files = att.drop_duplicates("FileName")
    known = files[files["SpkrID"].notna()]
    in_fit = known["FileName"].isin(fit)
    assert not set(known.loc[in_fit, "SpkrID"]) & set(known.loc[~in_fit, "SpkrID"])
    n_fit = diag.tables["recalibration"]["n_fit"].iloc[0]
    assert n_fit == files["FileName"].isin(fit).sum()


def test_unit_comparison_shows_wider_speaker_intervals(diag):
    table = diag.tables["unit_comparison"]
    assert set(table["metric"]) >= {"macro_f1", "ccc_mean"} and len(table["system"].unique()) == 5
    np.testing.assert_allclose(table["width_ratio"], table["width_speaker"] / table["width_utterance"])
    ccc = table[table["metric"] == "ccc_mean"]
    assert ccc["width_ratio"].median() > 1.3        # speaker-clustered errors and labels (simulate)


def test_baseline_is_named_never_the_worst_system(frames, diag):
    assert diag.settings["baseline"] == "sys01_baseline"
    renamed = []
    for frame in frames:
        out = frame.replace({"system": {"sys01_baseline": "sys01"}})
        out.attrs = dict(frame.attrs)
        renamed.append(out)
    plain = diagnose(*renamed, resampling=Resampling(n_boot=0))
    assert plain.settings["baseline"] is None
    assert "baseline" not in set(plain.tables["fusion_curve"]["method"])
    assert plain.tables["fusion_curve"].attrs["baseline"] == {"categorical": None, "attributes": None}
    named = diagnose(*renamed, resampling=Resampling(n_boot=0), baseline="sys03_mid")
    assert named.settings["baseline"] == "sys03_mid"
    assert set(named.tables["fusion_curve"].query("method == 'baseline'")["systems"]) == {"sys03_mid"}
    with pytest.raises(ValueError, match="baseline"):
        diagnose(*renamed, resampling=Resampling(n_boot=0), baseline="nope")


def test_older_keywords_still_work_and_opt_out_to_utterances(frames):
    old = diagnose(*frames, n_boot=20, by_speaker=False, seed=2)
    assert old.settings["unit"] == "utterance" and set(old.tables["metrics"]["unit"]) == {"utterance"}
    assert set(old.tables["recalibration"]["split_unit"]) == {"utterance"}
    assert set(old.tables["gender_gaps"]["method"]) == {"speaker permutation"}   # the valid test stays


def test_analyses_on_two_processes_equal_one_after_the_other(frames, diag):
    """diagnose runs the analyses after the metrics table side by side (fork_map): the same
    tables (bit for bit, in the same order), notes and evaluation as on one process."""
    serial = diagnose(*frames, resampling=Resampling(n_boot=60, seed=2), workers=1)
    parallel = diagnose(*frames, resampling=Resampling(n_boot=60, seed=2), workers=2)
    assert list(parallel.tables) == list(serial.tables) == list(diag.tables)
    for name, table in serial.tables.items():
        pd.testing.assert_frame_equal(parallel.tables[name], table, check_exact=True, obj=name)
        assert parallel.tables[name].attrs.keys() == table.attrs.keys()
    assert parallel.settings["notes"] == serial.settings["notes"]
    assert parallel.evaluation == serial.evaluation
