"""Heads (pooling by hand, masks, overfitting a tiny batch) and the imbalance samplers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ser_diag.models.heads import (AttentiveStatisticsPooling, BaselineHead, CrossModalAttentionFusion,
                                   LateFusionMLP, build_model)
from ser_diag.models.sampling import (BalancedBatchSampler, ShuffleSampler, UndersamplingSampler,
                                      global_batches, shard)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train and the reference pipeline run tiny heads on one torch thread (``num_threads=1``);
    so do these tests: two OpenMP threads on a busy 2-core machine are up to 20x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _frames(seed=0, b=4, ta=7, tt=5):
    g = torch.Generator().manual_seed(seed)
    feats = {"audio": torch.randn(b, ta, 6, generator=g), "text": torch.randn(b, tt, 5, generator=g)}
    la, lt = torch.tensor([7, 3, 5, 1])[:b], torch.tensor([5, 2, 4, 1])[:b]
    masks = {"audio": torch.arange(ta)[None] < la[:, None], "text": torch.arange(tt)[None] < lt[:, None]}
    return feats, masks


def test_attentive_statistics_pooling_with_uniform_attention_is_masked_mean_and_std():
    feats, masks = _frames()
    pool = AttentiveStatisticsPooling(6, eps=0.0)
    torch.nn.init.zeros_(pool.score[2].weight)  # all scores 0 -> uniform weights over real frames
    out, alpha = pool(feats["audio"], masks["audio"])
    for i, n in enumerate([7, 3, 5, 1]):
        x = feats["audio"][i, :n].numpy()
        np.testing.assert_allclose(out[i, :6].detach().numpy(), x.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[i, 6:].detach().numpy(), x.std(axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(alpha[i].detach().numpy(), [1 / n] * n + [0] * (7 - n), atol=1e-7)


@pytest.mark.parametrize("kind", ["baseline", "late_fusion", "cross_attention"])
def test_padding_does_not_change_outputs(kind):
    feats, masks = _frames()
    dims = {"audio": 6} if kind == "baseline" else {"audio": 6, "text": 5}
    model = build_model(kind, dims, gender=True).eval()
    out = model(feats, masks)
    garbage = {m: torch.where(masks[m][..., None], x, torch.full_like(x, 1e3)) for m, x in feats.items()}
    longer = {m: F.pad(x, (0, 0, 0, 3), value=-7.0) for m, x in garbage.items()}
    longer_masks = {m: F.pad(mk, (0, 3), value=False) for m, mk in masks.items()}
    out2 = model(longer, longer_masks)
    for key in ("logits", "attributes", "gender"):
        torch.testing.assert_close(out[key], out2[key], rtol=1e-5, atol=1e-5)
    assert out["logits"].shape == (4, 8) and out["attributes"].shape == (4, 3) and out["gender"].shape == (4, 2)


def test_cross_attention_weights_are_distributions_over_real_frames():
    feats, masks = _frames()
    model = CrossModalAttentionFusion({"audio": 6, "text": 5}).eval()
    with torch.no_grad():
        att = model(feats, masks)["attention"]
    assert att["audio_to_text"].shape == (4, 7, 5) and att["text_to_audio"].shape == (4, 5, 7)
    torch.testing.assert_close(att["audio_to_text"].sum(-1), torch.ones(4, 7))
    assert float(att["audio_to_text"][1, :, 2:].abs().max()) == 0.0  # text of row 1 has 2 tokens
    torch.testing.assert_close(att["pool_audio"].sum(-1), torch.ones(4))
    assert float(att["pool_audio"][3, 1:].abs().max()) == 0.0


@pytest.mark.parametrize("model", [
    lambda: LateFusionMLP({"audio": 6, "text": 5}, hidden=64, dropout=0.0),
    lambda: CrossModalAttentionFusion({"audio": 6, "text": 5}, d_model=32, hidden=64, dropout=0.0),
    lambda: BaselineHead({"audio": 6}, hidden=64, dropout=0.0),
])
def test_models_overfit_a_tiny_batch(model):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    feats = {"audio": torch.randn(16, 9, 6, generator=g), "text": torch.randn(16, 4, 5, generator=g)}
    masks = {"audio": torch.ones(16, 9, dtype=torch.bool), "text": torch.ones(16, 4, dtype=torch.bool)}
    masks["audio"][::2, 5:] = False
    y, attrs = torch.arange(16) % 8, torch.rand(16, 3, generator=g)
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        out = net(feats, masks)
        loss = F.cross_entropy(out["logits"], y) + F.mse_loss(out["attributes"], attrs)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out = net.eval()(feats, masks)
    assert (out["logits"].argmax(1) == y).all()
    assert float(F.cross_entropy(out["logits"], y)) < 0.05
    assert float(F.mse_loss(out["attributes"], attrs)) < 1e-3


LABELS = np.repeat(np.arange(8), [400, 200, 150, 60, 20, 15, 30, 300])
LABELS_WITH_OX = np.concatenate([LABELS, np.full(50, -1)])


def test_balanced_batch_sampler_batches_are_uniform_over_classes():
    sampler = BalancedBatchSampler(LABELS, batch_size=32, seed=0)
    idx = sampler.indices(0)
    assert len(idx) == len(LABELS)
    for batch in global_batches(idx, 32):
        counts = np.bincount(LABELS[batch], minlength=8)
        assert counts.min() == 4 and counts.max() == 4  # 32 rows / 8 classes
    freq = np.bincount(LABELS[idx], minlength=8) / len(idx)
    np.testing.assert_allclose(freq, 1 / 8, atol=0.01)
    # rare classes are reused only after all their rows were drawn once (F has 20 rows)
    f_rows = idx[LABELS[idx] == 4]
    assert len(set(f_rows[:20].tolist())) == 20
    assert not np.array_equal(idx, sampler.indices(1))
    np.testing.assert_array_equal(idx, BalancedBatchSampler(LABELS, 32, seed=0).indices(0))


def test_undersampling_redraws_the_minority_count_each_epoch():
    sampler = UndersamplingSampler(LABELS, seed=1)
    seen = set()
    for epoch in range(30):
        idx = sampler.indices(epoch)
        np.testing.assert_array_equal(np.bincount(LABELS[idx], minlength=8), np.full(8, 15))
        assert len(set(idx.tolist())) == len(idx)
        seen.update(idx.tolist())
    assert not np.array_equal(np.sort(sampler.indices(0)), np.sort(sampler.indices(1)))
    np.testing.assert_array_equal(sampler.indices(5), UndersamplingSampler(LABELS, seed=1).indices(5))
    # over 30 epochs most majority rows were used: 1 - (1 - 15/400)^30 = 0.68 of class A expected
    a_rows = set(np.flatnonzero(LABELS == 0).tolist())
    assert 0.55 < len(a_rows & seen) / 400 < 0.8


def test_unlabelled_rows_only_when_asked():
    idx = ShuffleSampler(LABELS_WITH_OX, seed=0).indices(0)
    assert len(idx) == len(LABELS) and (LABELS_WITH_OX[idx] >= 0).all()
    idx = ShuffleSampler(LABELS_WITH_OX, seed=0, include_unlabeled=True).indices(0)
    np.testing.assert_array_equal(np.sort(idx), np.arange(len(LABELS_WITH_OX)))
    # undersampling: O/X rows form a ninth group of the minority size
    idx = UndersamplingSampler(LABELS_WITH_OX, seed=0, include_unlabeled=True).indices(0)
    assert (LABELS_WITH_OX[idx] == -1).sum() == 15 and len(idx) == 9 * 15
    batch = BalancedBatchSampler(LABELS_WITH_OX, 18, seed=0, include_unlabeled=True).indices(0)[:18]
    assert (LABELS_WITH_OX[batch] == -1).sum() == 2


def test_shards_of_a_global_batch_concatenate_back_in_order():
    batch = np.arange(100, 117)
    for world in (1, 2, 3):
        np.testing.assert_array_equal(np.concatenate([shard(batch, r, world) for r in range(world)]), batch)
    assert [len(b) for b in global_batches(np.arange(10), 4)] == [4, 4]
    assert [len(b) for b in global_batches(np.arange(10), 4, drop_last=False)] == [4, 4, 2]
