"""Waveform and label augmentation: noise, reverb, SAIL mixing, annotator dropping, manifold mixup."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from ser_diag.io import soft_labels
from ser_diag.models import augment as aug
from ser_diag.schema import CLASS_CODES

SR = 16_000


def _speechlike(seconds=1.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (envelope * np.sin(2 * np.pi * 180 * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
def test_add_noise_hits_requested_snr(snr):
    clean = _speechlike()
    noisy = aug.add_noise(clean, snr, np.random.default_rng(1))
    added = noisy.astype(np.float64) - clean
    measured = 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(added ** 2))
    assert abs(measured - snr) < 0.5
    # a recorded noise shorter than the clip is tiled
    babble = np.random.default_rng(2).uniform(-1, 1, SR // 3)
    noisy = aug.add_noise(clean, snr, np.random.default_rng(3), noise=babble)
    assert noisy.shape == clean.shape
    assert abs(aug.snr_db(clean, noisy.astype(np.float64) - clean) - snr) < 0.5


@pytest.mark.parametrize("rt60", [0.3, 0.8])
def test_reverb_impulse_response_decays_60_db_in_rt60(rt60):
    ir = aug.synthetic_impulse_response(SR, rt60, np.random.default_rng(0))
    assert len(ir) == int(rt60 * SR) and np.sum(ir ** 2) == pytest.approx(1.0)
    # Schroeder backward integration, T20 line fit from -5 dB to -25 dB, extrapolated to 60 dB
    tail = ir.copy()
    tail[0] = 0.0
    edc = np.cumsum(tail[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(np.arange(len(ir))[fit] / SR, edc_db[fit], 1)[0]
    assert -60 / slope == pytest.approx(rt60, rel=0.1)


def test_add_reverb_keeps_length_and_rms_and_smears_energy():
    dry = np.zeros(SR, dtype=np.float32)
    dry[1000] = 1.0
    wet = aug.add_reverb(dry, SR, 0.5, np.random.default_rng(0))
    assert wet.shape == dry.shape
    assert np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(dry ** 2)), rel=1e-4)
    assert np.abs(wet[:1000]).max() < 1e-9 and np.count_nonzero(np.abs(wet[1000:]) > 1e-4) > SR // 10


def test_mix_clips_overlaps_partially_and_weights_sum_to_one():
    a, b = _speechlike(3.0, 1), _speechlike(1.0, 2)
    rng = np.random.default_rng(0)
    overlaps = []
    for _ in range(200):
        mixed, weights = aug.mix_clips(a, b, SR, max_overlap_s=2.0, rng=rng)
        overlap = len(a) + len(b) - len(mixed)
        overlaps.append(overlap / SR)
        np.testing.assert_array_equal(mixed[: len(a) - overlap], a[: len(a) - overlap])
        np.testing.assert_array_equal(mixed[len(a):], b[overlap:])
        np.testing.assert_allclose(mixed[len(a) - overlap: len(a)], a[len(a) - overlap:] + b[:overlap])
        np.testing.assert_array_equal(weights, [0.5, 0.5])
    # overlap ~ U(0, min(2 s, shorter clip = 1 s))
    assert min(overlaps) >= 0 and max(overlaps) <= 1.0
    assert np.mean(overlaps) == pytest.approx(0.5, abs=0.06)
    _, weights = aug.mix_clips(a, b, SR, rng=rng, weighting="duration")
    np.testing.assert_allclose(weights, [0.75, 0.25])


def test_mix_labels_averages_soft_labels_and_attributes():
    soft_a = np.eye(8)[0]
    soft_b = np.array([0, 0.5, 0.5, 0, 0, 0, 0, 0])
    mixed = aug.mix_labels(soft_a, soft_b, [0.5, 0.5])
    np.testing.assert_allclose(mixed, [0.5, 0.25, 0.25, 0, 0, 0, 0, 0])
    assert mixed.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(aug.mix_labels([2.0, 6.0, 4.0], [6.0, 2.0, 4.0], [0.75, 0.25]), [3.0, 5.0, 4.0])


@pytest.fixture
def detailed():
    """Ten annotators on f0 (7 H, 2 N, 1 Other), five on f1, two on f2 (one Other), one on f3,
    and f4 with Other votes only (no distribution)."""
    votes = {"f0.wav": list("HHHHHHHNNO"), "f1.wav": list("AACDN"), "f2.wav": list("OS"),
             "f3.wav": list("U"), "f4.wav": list("OO")}
    rows = [(f, f"W{i:03d}", c) for f, codes in votes.items() for i, c in enumerate(codes)]
    return pd.DataFrame(rows, columns=["FileName", "WorkerID", "EmoClass"])


def test_drop_annotators_keeps_a_vote_and_recomputes_distributions(detailed):
    original = detailed.groupby("FileName")["EmoClass"].value_counts().unstack(fill_value=0)
    rng = np.random.default_rng(0)
    kept_votes = []
    for _ in range(150):
        soft = aug.drop_annotators(detailed, fraction=0.2, rng=rng)
        assert list(soft.index) == ["f0.wav", "f1.wav", "f2.wav", "f3.wav"]
        probs = soft[list(CLASS_CODES)].to_numpy()
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        counts = probs * soft["n_votes"].to_numpy()[:, None]
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-9)  # whole votes
        for name, row in zip(soft.index, np.round(counts)):
            available = original.loc[name].reindex(list(CLASS_CODES), fill_value=0).to_numpy()
            assert (row <= available).all() and row.sum() >= 1
        assert soft.at["f2.wav", "S"] == 1.0 and soft.at["f3.wav", "U"] == 1.0
        kept_votes.append(soft.at["f0.wav", "n_votes"] + soft.at["f1.wav", "n_votes"])
    # about 20% of the 9 + 5 class votes dropped on f0/f1 (some drops fall on f0's Other vote)
    dropped = 1 - np.mean(kept_votes) / 14
    assert 0.15 < dropped < 0.22
    unchanged = aug.drop_annotators(detailed, fraction=0.0, rng=rng)
    np.testing.assert_allclose(unchanged.loc["f0.wav", ["H", "N"]].to_numpy(float), [7 / 9, 2 / 9])


def test_manifold_mixup_mixes_rows_with_beta_lambda():
    generator = torch.Generator().manual_seed(0)
    h = torch.rand(6, 4, generator=torch.Generator().manual_seed(1))
    y = (torch.softmax(torch.randn(6, 8, generator=torch.Generator().manual_seed(2)), dim=1),
         torch.arange(6.0)[:, None])
    lams = []
    for _ in range(3000):
        h_mix, y_mix, lam = aug.manifold_mixup(h, y, alpha=0.2, p=0.3, generator=generator)
        assert h_mix.shape == h.shape and isinstance(y_mix, tuple)
        if h_mix is h:
            assert lam == 1.0 and y_mix is y
            continue
        lams.append(lam)
        # each row is lam * itself + (1 - lam) * one partner row: find the partner, check the mix
        residual = h_mix[:, None, :] - lam * h[:, None, :] - (1 - lam) * h[None, :, :]
        partner = residual.norm(dim=2).argmin(dim=1)
        torch.testing.assert_close(h_mix, lam * h + (1 - lam) * h[partner])
        if 1e-3 < lam < 1 - 1e-3:
            assert sorted(partner.tolist()) == list(range(6))  # a permutation of the batch
            torch.testing.assert_close(y_mix[1], lam * y[1] + (1 - lam) * y[1][partner])
            torch.testing.assert_close(y_mix[0].sum(dim=1), torch.ones(6))  # still distributions
    applied = len(lams) / 3000
    assert abs(applied - 0.3) < 3 * np.sqrt(0.3 * 0.7 / 3000)
    assert stats.kstest(lams, stats.beta(0.2, 0.2).cdf).pvalue > 0.01
    lams = np.array(lams)
    assert np.mean(np.minimum(lams, 1 - lams) < 0.1) > 0.5  # U-shaped Beta(0.2, 0.2)


# ----------------------------------------------------------------------------- waveform augmentation in training (D7)

def test_waveform_settings_fill_defaults_and_reject_unknown_keys():
    s = aug.waveform_settings({"noise": True, "reverb": {"rt60": [0.3, 0.3]}, "views": 3})
    assert s == {"noise": {"p": 0.5, "snr_db": [5.0, 20.0]}, "reverb": {"p": 0.3, "rt60": [0.3, 0.3]}, "views": 3}
    assert aug.waveform_settings({"manifold_mixup": True}) == {}
    with pytest.raises(ValueError, match="snr"):
        aug.waveform_settings({"noise": {"snr": 3}})


def test_plan_draws_a_partner_other_than_the_clip_itself():
    settings = aug.waveform_settings({"mix_clips": {"p": 1.0}})
    files = [f"f{i}" for i in range(5)]
    partners = {aug.plan_augmentation(settings, np.random.default_rng(s), files, "f2")["partner"] for s in range(200)}
    assert partners == {"f0", "f1", "f3", "f4"}


def test_augmented_views_are_cached_and_used_by_frozen_feature_training(tmp_path):
    """Noise at exactly 0 dB on every Train clip, one view: the cached view of a Train file is
    the encoder's output on that noisy wave (same seeded generator), and training reads it."""
    from ser_diag.models import train as train_module
    from ser_diag.models.encoders import tiny_speech_encoder
    from ser_diag.models.features import read_audio
    from ser_diag.models.toy_task import make_task, write_toy_corpus
    from ser_diag.models.train import loop as train_loop

    labels, _ = make_task(n=40, seed=1)
    corpus = write_toy_corpus(tmp_path / "corpus", labels, seconds=0.4)
    config = dict(system_name="aug", out_dir=str(tmp_path / "out"), corpus=str(corpus),
                  feature_cache=str(tmp_path / "cache"), modalities={"audio": {"encoder": "tiny-wavlm"}},
                  model={"kind": "late_fusion", "hidden": 16, "dropout": 0.0}, epochs=2, batch_size=8,
                  progress=False, augment={"noise": {"p": 1.0, "snr_db": [0, 0]}, "views": 1})
    used = []
    original = train_loop._collate

    def spy(data, rows, device, view_of_row=None):
        if view_of_row is not None:
            used.extend(view_of_row[rows].tolist())
        return original(data, rows, device, view_of_row)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_loop, "_collate", spy)
        train(config, labels=labels)
    assert set(used) == {0, 1}  # clean and augmented rows both trained on
    views = [p for p in (tmp_path / "cache").iterdir() if "-aug-" in p.name]
    assert len(views) == 1
    from ser_diag.models.features import FeatureStore
    store = FeatureStore(views[0] / "pooled")
    train_files = sorted(labels.loc[labels["Split_Set"] == "Train", "FileName"])
    assert store.file_names == train_files
    name = train_files[3]
    clean = read_audio(corpus / "Audios" / name)
    noisy = aug.add_noise(clean, 0.0, np.random.default_rng(train_module.file_seed(0, 1, name) + [1]))
    assert aug.snr_db(clean, noisy - clean) == pytest.approx(0.0, abs=1e-3)
    expected = tiny_speech_encoder("wavlm").encode([noisy], "pooled")[0]
    np.testing.assert_allclose(store.get([name])[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="mix_clips"):
        train(dict(config, augment={"mix_clips": True}), labels=labels)
    # SAIL clip mixing, frozen path: partners recorded beside the view, targets averaged,
    # the text of a mixed row gets its partner's features mixed in
    detailed = pd.DataFrame([(f, f"W{w}", c if c in CLASS_CODES else "N") for f, c in
                             zip(labels["FileName"], labels["EmoClass"]) for w in range(3)],
                            columns=["FileName", "WorkerID", "EmoClass"])
    mixed = []
    original_targets = train_loop._targets

    def spy_targets(data, rows, device, mix=None):
        t = original_targets(data, rows, device, mix)
        if mix is not None and (mix[0] >= 0).any():
            j = int(np.flatnonzero(mix[0] >= 0)[0])
            expected = 0.5 * data.y_soft[rows[j]] + 0.5 * data.y_soft[mix[0][j]]
            mixed.append(np.allclose(t["soft"][j].numpy(), expected) and int(t["class"][j]) == -1)
        return t

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_loop, "_targets", spy_targets)
        train(dict(config, system_name="mix", categorical_loss="soft_ce",
                   modalities={"audio": {"encoder": "tiny-wavlm"}, "text": {"encoder": "tiny-text"}},
                   augment={"mix_clips": {"p": 1.0}, "views": 1}), labels=labels, detailed_labels=detailed,
              soft_labels=soft_labels(detailed))
    assert mixed and all(mixed)
    mix_file = [p for p in (tmp_path / "cache").rglob("mix.json")]
    assert len(mix_file) == 1
    partners = json.loads(mix_file[0].read_text())
    assert sorted(partners) == train_files and all(p[0] != f and p[0] in train_files for f, p in partners.items())


def train(config, **kwargs):
    from ser_diag.models.train import train as _train
    return _train(config, **kwargs)
