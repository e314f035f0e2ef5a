"""Where systems fail: a planted hard podcast and hard short files are recovered with CIs
covering the planted values; the gender gap explained by podcast matches a direct computation
and recovers a planted all-podcast gap and a planted within-podcast gap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from sklearn.metrics import f1_score

from ser_diag import io
from ser_diag.analysis import where
from ser_diag.analysis.bias import group_metrics
from ser_diag.schema import ATTRIBUTES, CLASS_CODES

N_PODCASTS, SPEAKERS_PER_PODCAST, PER_SPEAKER = 12, 6, 12
HARD = "0007"


def _labels(rng, female_share=None):
    """Podcasts of 6 speakers x 12 files; ``female_share``: podcast number -> share of women (default 1/2)."""
    rows = []
    for p in range(N_PODCASTS):
        for s in range(SPEAKERS_PER_PODCAST):
            speaker = p * SPEAKERS_PER_PODCAST + s
            share = (female_share or {}).get(p, 0.5)
            female = s < round(share * SPEAKERS_PER_PODCAST)
            for u in range(PER_SPEAKER):
                rows.append((f"MSP-PODCAST_{p:04d}_{speaker:03d}{u:02d}.wav", speaker,
                             "Female" if female else "Male"))
    frame = pd.DataFrame(rows, columns=["FileName", "SpkrID", "Gender"])
    n = len(frame)
    frame["EmoClass"] = np.array(CLASS_CODES)[np.arange(n) % 8]
    for a in ATTRIBUTES:
        frame[a] = rng.normal(4, 1, n).clip(1, 7)
    frame["SpkrID"] = pd.array(frame["SpkrID"], dtype="Int64")
    frame["Split_Set"] = "Development"
    return frame[["FileName", "EmoClass", *ATTRIBUTES, "SpkrID", "Gender", "Split_Set"]]


def _system(rng, labels, error):
    code = pd.Index(CLASS_CODES).get_indexer(labels["EmoClass"])
    wrong = rng.random(len(code)) < error
    pred = np.where(wrong, (code + rng.integers(1, 8, len(code))) % 8, code)
    return pd.DataFrame({"system": "sys", "FileName": labels["FileName"], "EmoClass": np.array(CLASS_CODES)[pred],
                         **{a: labels[a].to_numpy() for a in ATTRIBUTES}})


def _merged(labels, preds):
    return io.merge(labels, preds, "categorical")


@pytest.fixture(scope="module")
def hard_podcast():
    rng = np.random.default_rng(0)
    labels = _labels(rng)
    error = np.where(where.podcast_of(labels["FileName"]) == HARD, 0.65, 0.10)
    return _merged(labels, _system(rng, labels, error))


def test_podcast_of():
    names = ["MSP-PODCAST_0002_0033.wav", "MSP-PODCAST_3406_0004_0003.wav", "MSP-PODCAST_test3_0001.wav", "x.wav"]
    assert where.podcast_of(names).tolist() == ["0002", "3406", pd.NA, pd.NA]


def test_hard_podcast_recovered(hard_podcast):
    table = where.podcast_metrics(hard_podcast, min_files=30, n_boot=300, level=0.99)
    assert len(table) == N_PODCASTS and set(table["unit"]) == {"speaker"}
    assert table["n"].eq(SPEAKERS_PER_PODCAST * PER_SPEAKER).all()
    row = table.set_index("group").loc[HARD]
    assert row["ci_low"] <= 1 - 0.65 <= row["ci_high"] and row["below_overall"]
    others = table[table["group"] != HARD]
    assert not others["below_overall"].any()
    worst = where.worst_podcasts(table, n=3)
    assert worst.iloc[0]["group"] == HARD and worst.iloc[0]["rank"] == 1
    # estimate = the plain macro-F1 of the podcast's files
    part = hard_podcast[where.podcast_of(hard_podcast["FileName"]).to_numpy() == HARD]
    assert row["estimate"] == pytest.approx(f1_score(part["EmoClass_true"], part["EmoClass_pred"],
                                                     labels=list(CLASS_CODES), average="macro"))
    # min_files drops small podcasts from the table (they stay in the resamples)
    assert where.podcast_metrics(hard_podcast, min_files=10 ** 6, n_boot=10).empty


def test_grouped_metrics_equal_the_bias_audit(hard_podcast):
    """Same resamples, so the same CIs as analysis.bias.group_metrics (an independent dense kernel)."""
    ours = where.grouped_metrics(hard_podcast, "Gender", by="Gender", n_boot=120, unit="speaker", seed=5)
    ref = group_metrics(hard_podcast, by="Gender", n_boot=120, by_speaker=True, seed=5)
    both = ours.merge(ref, on=["system", "group", "metric"], suffixes=("", "_ref"))
    assert len(both) == 2
    for column in ("estimate", "ci_low", "ci_high"):
        np.testing.assert_allclose(both[column], both[f"{column}_ref"], atol=1e-12)


def _direct_gaps(merged):
    error = (merged["EmoClass_true"] != merged["EmoClass_pred"]).astype(float)
    frame = merged.assign(L=error, podcast=where.podcast_of(merged["FileName"]).to_numpy())
    means = frame.groupby("Gender")["L"].mean()
    overall = means["Female"] - means["Male"]
    num = den = 0.0
    for _, part in frame.groupby("podcast"):
        m = part.groupby("Gender")["L"].agg(["mean", "size"])
        if len(m) == 2:
            h = m.at["Female", "size"] * m.at["Male", "size"] / m["size"].sum()
            num += h * (m.at["Female", "mean"] - m.at["Male", "mean"])
            den += h
    return overall, num / den


def test_gender_gap_explained_by_podcast():
    rng = np.random.default_rng(1)
    # hard podcasts 0-5 are 5/6 women, easy ones 6-11 are 5/6 men: a gender gap overall, none within
    labels = _labels(rng, female_share={p: 5 / 6 if p < 6 else 1 / 6 for p in range(N_PODCASTS)})
    podcast_error = np.where(where.podcast_of(labels["FileName"]).astype(int) < 6, 0.5, 0.1)
    merged = _merged(labels, _system(rng, labels, podcast_error))
    table = where.gender_gap_by_podcast(merged, n_boot=300, level=0.99).set_index("quantity")
    overall, within = _direct_gaps(merged)
    assert table.at["gap_overall", "estimate"] == pytest.approx(overall)
    assert table.at["gap_within_podcast", "estimate"] == pytest.approx(within)
    assert table.at["gap_overall", "ci_low"] > 0
    assert table.at["gap_within_podcast", "ci_low"] <= 0 <= table.at["gap_within_podcast", "ci_high"]
    assert table.at["share_explained", "ci_low"] <= 1 <= table.at["share_explained", "ci_high"]
    assert table["n_podcasts_both"].eq(N_PODCASTS).all()
    # a gender effect inside every podcast: nothing explained by podcast
    labels = _labels(rng)
    gender_error = np.where(labels["Gender"] == "Female", 0.4, 0.1)
    table = where.gender_gap_by_podcast(_merged(labels, _system(rng, labels, gender_error)), n_boot=300,
                                        level=0.99).set_index("quantity")
    assert table.at["gap_within_podcast", "ci_low"] > 0
    assert table.at["share_explained", "ci_low"] <= 0 <= table.at["share_explained", "ci_high"]


def test_duration_bins_from_headers(tmp_path):
    rng = np.random.default_rng(2)
    labels = _labels(rng).iloc[::3].reset_index(drop=True)            # 288 files
    seconds = np.where((np.arange(len(labels)) // 8) % 2 == 0, 2.0, 7.0)  # all 8 classes per bin
    seconds = seconds + rng.uniform(0, 0.5, len(labels))
    audio = tmp_path / "Audios"
    audio.mkdir()
    rate = 200                                                        # tiny files: only headers are read
    for name, s in zip(labels["FileName"], seconds):
        sf.write(audio / name, np.zeros(int(round(s * rate)), dtype=np.float32), rate)
    read = where.durations(labels["FileName"], audio)
    np.testing.assert_allclose(read.loc[labels["FileName"]].to_numpy(), np.round(seconds * rate) / rate)
    assert np.isnan(where.durations(["missing.wav"], audio).iloc[0])
    error = np.where(seconds < 3, 0.6, 0.1)                           # short files are hard
    merged = _merged(labels, _system(rng, labels, error))
    table = where.duration_metrics(merged, audio_root=audio, n_boot=300, level=0.99)
    row = table.set_index("group")
    assert row.index.tolist() == ["< 3 s", "6-8 s"]
    assert row.at["< 3 s", "ci_low"] <= 0.4 <= row.at["< 3 s", "ci_high"]
    assert row.at["6-8 s", "ci_low"] <= 0.9 <= row.at["6-8 s", "ci_high"]
    assert row.at["< 3 s", "ci_high"] < row.at["6-8 s", "ci_low"]
    tables = where.where_tables(merged, None, audio_root=audio, n_boot=20)
    assert {"podcast_metrics", "worst_podcasts", "gender_gap_by_podcast", "duration_metrics"} <= set(tables)


def test_single_speaker_groups_have_no_interval(hard_podcast):
    table = where.grouped_metrics(hard_podcast, "SpkrID", by="speaker", n_boot=30, unit="speaker")
    assert table["ci_low"].isna().all() and table["estimate"].notna().all()
    assert where.grouped_metrics(hard_podcast, "SpkrID", by="speaker", n_boot=30,
                                 unit="utterance")["ci_low"].notna().all()


def test_podcast_figure(hard_podcast):
    import matplotlib.pyplot as plt

    from ser_diag.plots.where import plot_podcast_metrics

    table = where.podcast_metrics(hard_podcast, n_boot=50)
    fig, ax = plt.subplots()
    assert plot_podcast_metrics(table, system="sys", ax=ax, n=5) is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == 5 and labels[0].startswith(HARD)                   # worst first, on top
    plt.close(fig)


def test_lean_kernels_equal_the_metrics_module():
    from ser_diag.metrics import ccc_from_moments, ccc_from_sums, macro_f1_from_confusion, moments_from_sums

    rng = np.random.default_rng(3)
    cm = rng.integers(0, 4, size=(5, 3, 8, 8)).astype(float)
    cm[0, 0] = 0.0
    cm[1, 1, 2] = cm[1, 1, :, 2] = 0.0                               # a class never true nor predicted
    np.testing.assert_array_equal(np.isnan(where._macro_f1(cm)), np.isnan(macro_f1_from_confusion(cm)))
    np.testing.assert_allclose(where._macro_f1(cm), macro_f1_from_confusion(cm), rtol=1e-14)
    sums = np.abs(rng.normal(size=(4, 6))) * 10
    sums[:, 0] = [1.0, 5.0, 20.0, 2.0]
    for ddof in (0, 1):
        expected = ccc_from_moments(moments_from_sums(sums, ddof))
        got = ccc_from_sums(*(sums[:, i] for i in range(6)), ddof)
        np.testing.assert_array_equal(got, expected)


def test_attribute_groups_equal_the_bias_audit():
    rng = np.random.default_rng(4)
    labels = _labels(rng)
    preds = _system(rng, labels, 0.2)
    for a in ATTRIBUTES:
        preds[a] = (labels[a] + rng.normal(0, 0.7, len(labels))).clip(1, 7)
    merged = io.merge(labels, preds, "attributes")
    ours = where.grouped_metrics(merged, "Gender", by="Gender", n_boot=80, unit="speaker", seed=2, ddof=1)
    ref = group_metrics(merged, by="Gender", n_boot=80, by_speaker=True, seed=2, ddof=1)
    both = ours.merge(ref, on=["system", "group", "metric"], suffixes=("", "_ref"))
    assert len(both) == 8
    for column in ("estimate", "ci_low", "ci_high"):
        np.testing.assert_allclose(both[column], both[f"{column}_ref"], rtol=1e-10)


def test_audios_found_next_to_the_labels(tmp_path):
    from ser_diag.analysis.beyond import beyond_tables

    rng = np.random.default_rng(5)
    labels = _labels(rng).iloc[::9].reset_index(drop=True)
    (tmp_path / "Labels").mkdir()
    (tmp_path / "Audios").mkdir()
    for name in labels["FileName"]:
        sf.write(tmp_path / "Audios" / name, np.zeros(500, dtype=np.float32), 100)          # 5 s each
    labels.attrs["source"] = str(tmp_path / "Labels" / "labels_consensus.csv")
    merged = _merged(labels, _system(rng, labels, 0.2))
    tables = beyond_tables(merged, None, labels, n_boot=10)
    durations = tables["duration_metrics"]
    assert set(durations["group"]) == {"4.5-6 s"} and durations["n"].eq(len(labels)).all()
    assert not any("Audios" in n for n in tables["beyond_notes"]["note"])
