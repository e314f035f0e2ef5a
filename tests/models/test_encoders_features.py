"""Encoders (tiny random speech/text models, MiniLM, eGeMAPS) and the on-disk feature cache."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from ser_diag.errors import InputError
from ser_diag.models import encoders as enc
from ser_diag.models import features as feat

# torch's deprecation notice triggered inside transformers' WavLM attention
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
SR = 16_000
KINDS = enc.TINY_SPEECH_KINDS


def _wave(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return (0.3 * np.sin(2 * np.pi * (120 + 40 * seed) * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _conv_frames(n, kernels=(10, 3, 3, 2), strides=(5, 4, 4, 4)):
    for k, s in zip(kernels, strides):
        n = (n - k) // s + 1
    return n


def _expected_frames(kind, n):
    # Whisper: one mel frame per started 10 ms hop, then a stride-2 convolution
    return -(-(-(-n // 160)) // 2) if kind == "whisper" else _conv_frames(n)


@pytest.fixture(scope="module")
def minilm():
    return enc.load_text_encoder()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Nine clips of 0.3-3.0 s in MSP-Podcast layout; one transcript missing; one clip at 8 kHz."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "Audios").mkdir()
    (root / "Transcripts").mkdir()
    seconds = [0.3, 2.8, 0.9, 1.7, 3.0, 0.5, 2.2, 1.1, 0.7]
    texts = ["I am thrilled", "this is a long and rather boring sentence about the weather today",
             "no", "why would you do that to me", "", "great", "we lost the game again and again",
             "fine", None]
    for i, (s, text) in enumerate(zip(seconds, texts)):
        name = f"MSP-PODCAST_0001_{i:04d}"
        rate = 8_000 if i == 3 else SR
        sf.write(root / "Audios" / f"{name}.wav", _wave(int(s * rate), i), rate, subtype="FLOAT")
        if text is not None:
            (root / "Transcripts" / f"{name}.txt").write_text(text + "\n")
    return root


class CountingEncoder:
    """Delegates to an encoder, counting calls and items; raises after ``fail_after`` calls."""

    def __init__(self, inner, fail_after=None):
        self.inner, self.fail_after = inner, fail_after
        self.calls, self.items, self.batch_lengths = 0, 0, []
        for attr in ("key", "modality", "dim", "pooled_dim", "sample_rate", "normalize_audio"):
            if hasattr(inner, attr):
                setattr(self, attr, getattr(inner, attr))
        if hasattr(inner, "token_counts"):
            self.token_counts = inner.token_counts

    def encode(self, batch, level="frames"):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("injected interruption")
        self.calls += 1
        self.items += len(batch)
        self.batch_lengths.append([len(x) for x in batch])
        return self.inner.encode(batch, level=level)


# ----------------------------------------------------------------------------- encoders

@pytest.mark.parametrize("kind", KINDS)
def test_tiny_speech_encoder_frames_have_encoder_dim_and_hop(kind):
    encoder = enc.tiny_speech_encoder(kind)
    lengths = [SR, 7_000, 3_210]
    frames = encoder.encode([_wave(n, i) for i, n in enumerate(lengths)], level="frames")
    assert [f.shape for f in frames] == [(_expected_frames(kind, n), 32) for n in lengths]
    pooled = encoder.encode([_wave(n, i) for i, n in enumerate(lengths)], level="pooled")
    assert pooled.shape == (3, 32) and encoder.dim == encoder.pooled_dim == 32
    np.testing.assert_allclose(pooled, np.stack([f.mean(axis=0) for f in frames]), atol=1e-5)
    assert encoder.key.startswith(f"tiny-{kind}-seed0-") and encoder.key.endswith("-last")


@pytest.mark.parametrize("kind", KINDS)
def test_layer_selection_returns_that_hidden_state(kind):
    model, extractor = enc.tiny_speech_model_and_extractor(kind, seed=3)
    wave = _wave(9_000, 1)
    if kind == "whisper":
        inputs = extractor([wave], sampling_rate=SR, return_tensors="pt")
        states = model(inputs["input_features"], output_hidden_states=True).hidden_states
    else:
        inputs = extractor([wave], sampling_rate=SR, return_tensors="pt")
        states = model.eval()(inputs["input_values"], output_hidden_states=True).hidden_states
    n = _expected_frames(kind, len(wave))
    for layer in (0, 1, 2, None):
        encoder = enc.tiny_speech_encoder(kind, seed=3, layer=layer)
        expected = states[-1 if layer is None else layer][0, :n].detach().numpy()
        np.testing.assert_allclose(encoder.encode([wave])[0], expected, atol=1e-5)
    assert enc.tiny_speech_encoder(kind, layer=1).key.endswith("-layer1")
    with pytest.raises(ValueError):
        enc.tiny_speech_encoder(kind, layer=3)


def test_layer_weighting_one_hot_and_uniform():
    waves = [_wave(8_000, 0), _wave(12_000, 1)]
    weighted = enc.tiny_speech_encoder("wavlm", seed=1, layer="weighted")
    per_layer = [enc.tiny_speech_encoder("wavlm", seed=1, layer=i).encode(waves, "pooled") for i in range(3)]
    # D3: frozen features of a weighted encoder hold every hidden state; the weights are learned
    # later by the head, so the cache neither bakes in softmax(0) nor depends on the logits
    stacked = weighted.encode(waves, "pooled")
    assert stacked.shape == (2, 3 * 32) and weighted.stacked_states == 3 and weighted.width == 32
    np.testing.assert_allclose(stacked, np.concatenate(per_layer, axis=1), atol=1e-5)
    frames = weighted.encode(waves, "frames")
    np.testing.assert_allclose(frames[1][:, 32:64], enc.tiny_speech_encoder("wavlm", seed=1, layer=1)
                               .encode(waves, "frames")[1], atol=1e-5)
    key = weighted.key
    weighted.layer_weighting.load_state_dict(enc.LayerWeighting.one_hot(3, 1).state_dict())
    np.testing.assert_array_equal(weighted.layer_weighting.weights.detach().numpy(), [0, 1, 0])
    assert weighted.key == key and key.endswith("-alllayers")
    frames, mask = weighted(waves)  # differentiable path (fine-tuning): the module's own weighting
    np.testing.assert_allclose(enc.pool_frames(frames, mask).detach().numpy(), per_layer[1], atol=1e-5)
    frames.sum().backward()
    assert weighted.layer_weighting.logits.grad is not None and mask.shape == frames.shape[:2]


def test_weighted_layer_cache_keeps_every_state(corpus, tmp_path):
    encoder = enc.tiny_speech_encoder("wavlm", seed=2, layer="weighted")
    store = feat.extract_features(corpus, encoder, tmp_path, level="pooled", progress=False)
    assert store.n_states == 3 and store.dim == 96
    one = feat.extract_features(corpus, enc.tiny_speech_encoder("wavlm", seed=2, layer=2), tmp_path,
                                level="pooled", progress=False)
    np.testing.assert_allclose(store.get()[:, 64:], one.get(), atol=1e-5)


def test_cache_key_follows_the_weight_files(corpus, tmp_path):
    """D2: overwrite a local model's weights in place -> new key, fresh features."""
    folder = tmp_path / "model"
    for seed in (4, 5):
        model, extractor = enc.tiny_speech_model_and_extractor("wavlm", seed=seed)
        model.save_pretrained(folder)
        extractor.save_pretrained(folder)
        encoder = enc.load_speech_encoder(folder)
        store = feat.extract_features(corpus, encoder, tmp_path / "cache", progress=False)
        name = store.file_names[0]
        wave = feat.read_audio(corpus / "Audios" / name)
        np.testing.assert_allclose(store.get([name])[0], encoder.encode([wave], "pooled")[0], atol=1e-5)
        if seed == 4:
            first_key = encoder.key
    assert encoder.key != first_key and len(list((tmp_path / "cache").iterdir())) == 2
    # the encoder config is part of the key too
    config = json.loads((folder / "config.json").read_text())
    config["layer_norm_eps"] = 1e-3
    (folder / "config.json").write_text(json.dumps(config))
    assert enc.load_speech_encoder(folder).key not in (first_key, encoder.key)


@pytest.mark.parametrize("kind", ["whisper", "wav2vec2"])
def test_speech_encoders_get_the_raw_wave_their_processor_expects(corpus, tmp_path, kind):
    """D4: no z-normalisation before the processor: Whisper's log-mel sees the [-1, 1] wave; a
    wav2vec2 extractor normalises only when its ``do_normalize`` says so."""
    encoder = enc.tiny_speech_encoder(kind)
    if kind == "wav2vec2":
        encoder.feature_extractor.do_normalize = False  # as wav2vec2-base / HuBERT-base ship
    store = feat.extract_features(corpus, encoder, tmp_path, progress=False)
    name = "MSP-PODCAST_0001_0004.wav"
    raw = feat.read_audio(corpus / "Audios" / name)
    assert np.abs(raw).max() <= 1.0
    np.testing.assert_allclose(store.get([name])[0], encoder.encode([raw], "pooled")[0], atol=1e-5)
    z = feat.normalize_wave(raw, "clip")
    assert np.abs(encoder.encode([z], "pooled")[0] - store.get([name])[0]).max() > 1e-2
    assert json.loads((store.path / "spec.json").read_text())["normalize"] == "none"


@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_features(kind):
    encoder = enc.tiny_speech_encoder(kind, pooling="mean_std")
    short, long = _wave(4_100, 2), _wave(40_000, 5)
    alone = encoder.encode([short], "pooled")[0]
    batched = encoder.encode([long, short], "pooled")[1]
    assert alone.shape == (64,)
    np.testing.assert_allclose(batched, alone, atol=2e-5)
    np.testing.assert_allclose(encoder.encode([long, short])[1], encoder.encode([short])[0], atol=2e-5)


def test_group_norm_front_end_is_run_clip_by_clip():
    from transformers import Wav2Vec2Model

    config = enc.tiny_speech_config("wav2vec2")
    config.feat_extract_norm = "group"
    torch.manual_seed(0)
    _, extractor = enc.tiny_speech_model_and_extractor("wav2vec2")
    encoder = enc.SpeechEncoder(Wav2Vec2Model(config), extractor, "group-norm")
    short, long = _wave(4_100, 2), _wave(30_000, 5)
    assert not encoder.batch_safe
    np.testing.assert_allclose(encoder.encode([long, short], "pooled")[1],
                               encoder.encode([short], "pooled")[0], atol=2e-5)


@pytest.mark.parametrize("kind", ["wavlm", "whisper"])
def test_load_speech_encoder_from_local_folder(tmp_path, kind):
    from transformers import WhisperModel

    model, extractor = enc.tiny_speech_model_and_extractor(kind, seed=4)
    if kind == "whisper":  # saved as a full model, as on the hub; the loader keeps the encoder
        full = WhisperModel(enc.tiny_speech_config("whisper"))
        full.encoder.load_state_dict(model.state_dict())
        model = full
    model.save_pretrained(tmp_path)
    extractor.save_pretrained(tmp_path)
    loaded = enc.load_speech_encoder(tmp_path, layer=2)
    reference = enc.tiny_speech_encoder(kind, seed=4, layer=2)
    wave = _wave(10_000, 3)
    np.testing.assert_allclose(loaded.encode([wave])[0], reference.encode([wave])[0], atol=1e-6)
    assert loaded.key.startswith(tmp_path.name) and loaded.key.endswith("-layer2")
    assert isinstance(enc.load_encoder(str(tmp_path)), enc.SpeechEncoder)


def test_minilm_loads_offline_and_embeds_similar_sentences_closer(minilm):
    sentences = ["I am so happy today", "I feel really glad and joyful today",
                 "The invoice is attached to this email", "I am furious with you",
                 "You make me so angry"]
    x = minilm.encode(sentences, level="pooled")
    assert x.shape == (5, 384) and minilm.key == "all-MiniLM-L6-v2-last"
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = x @ x.T
    assert cos[0, 1] > max(cos[0, 2], cos[1, 2]) + 0.3
    assert cos[3, 4] > max(cos[3, 2], cos[4, 2]) + 0.3
    # padding invariance and frames = tokens incl. [CLS]/[SEP]
    alone = minilm.encode(["so happy"], "pooled")[0]
    np.testing.assert_allclose(minilm.encode([sentences[2], "so happy"], "pooled")[1], alone, atol=1e-5)
    assert [f.shape for f in minilm.encode(["so happy", ""])] == [(4, 384), (2, 384)]
    np.testing.assert_array_equal(minilm.token_counts(["so happy", ""]), [4, 2])


def test_tiny_text_encoder_uses_minilm_tokenizer():
    encoder = enc.tiny_text_encoder(layer=0)
    assert encoder.dim == 32 and encoder.tokenizer.vocab_size == 30522
    assert encoder.encode(["hello there", "a"], "pooled").shape == (2, 32)


def test_egemaps_gives_88_functionals_with_right_pitch():
    t = np.arange(2 * SR) / SR
    tone = 0.3 * sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 6))
    values = enc.egemaps_features(tone.astype(np.float32), SR)
    names = enc.egemaps_feature_names()
    assert values.shape == (88,) and len(names) == 88 and np.isfinite(values).all()
    f0 = values[names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert f0 == pytest.approx(12 * np.log2(200 / 27.5), abs=0.5)  # semitones above 27.5 Hz
    loud = names.index("loudness_sma3_amean")
    assert enc.egemaps_features(0.1 * tone, SR)[loud] < values[loud]
    assert isinstance(enc.load_encoder("egemaps"), enc.EGemapsEncoder)


# ----------------------------------------------------------------------------- feature cache

def test_cache_hit_does_not_call_encoder_again(corpus, tmp_path):
    encoder = CountingEncoder(enc.tiny_speech_encoder("hubert"))
    store = feat.extract_features(corpus, encoder, tmp_path, batch_size=4, progress=False)
    assert encoder.calls == 3 and encoder.items == 9
    assert len(store) == 9 and store.dim == 32 and store.encoder_key == encoder.key
    again = feat.extract_features(corpus, encoder, tmp_path, batch_size=4, progress=False)
    assert encoder.calls == 3
    np.testing.assert_array_equal(again.get(), store.get())
    # independent path: read, resample and encode one file by hand (the raw wave: the
    # encoder's feature extractor normalises itself)
    name = "MSP-PODCAST_0001_0003.wav"
    wave, rate = sf.read(corpus / "Audios" / name, dtype="float32")
    assert rate == 8_000
    from scipy.signal import resample_poly
    wave = resample_poly(wave, 2, 1)
    np.testing.assert_allclose(store.get([name])[0], encoder.inner.encode([wave], "pooled")[0], atol=1e-4)
    spec = json.loads((tmp_path / encoder.key / "pooled" / "spec.json").read_text())
    assert spec["normalize"] == "none" and spec["max_seconds"] == 12.0


def test_resume_after_interruption_equals_uninterrupted_run(corpus, tmp_path):
    reference = feat.extract_features(corpus, enc.tiny_speech_encoder("wavlm"), tmp_path / "full",
                                      level="frames", batch_size=2, progress=False)
    failing = CountingEncoder(enc.tiny_speech_encoder("wavlm"), fail_after=2)
    with pytest.raises(RuntimeError, match="injected"):
        feat.extract_features(corpus, failing, tmp_path / "cut", level="frames", batch_size=2,
                              shard_size=3, progress=False)
    partial = feat.FeatureStore(feat.store_path(tmp_path / "cut", failing.key, "frames"))
    assert len(partial) == 4  # two completed batches, flushed when interrupted
    resumed_encoder = CountingEncoder(enc.tiny_speech_encoder("wavlm"))
    resumed = feat.extract_features(corpus, resumed_encoder, tmp_path / "cut", level="frames",
                                    batch_size=2, shard_size=3, progress=False)
    assert resumed_encoder.items == 5
    assert resumed.file_names == reference.file_names
    for a, b in zip(resumed.get_frames(), reference.get_frames()):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=2e-5)
    np.testing.assert_array_equal(resumed.lengths(), [len(f) for f in reference.get_frames()])
    assert not list((tmp_path / "cut").rglob(".shard-*"))  # no temporary files left behind


def test_bucketing_reduces_padding(corpus, tmp_path):
    rng = np.random.default_rng(0)
    lengths = rng.integers(SR // 2, 12 * SR, size=200)
    bucketed = feat.padding_fraction(lengths, feat.plan_batches(lengths, 8, True))
    unsorted = feat.padding_fraction(lengths, feat.plan_batches(lengths, 8, False))
    assert bucketed < 0.05 < 0.3 < unsorted
    # the extraction really feeds length-sorted batches to the encoder
    encoder = CountingEncoder(enc.tiny_speech_encoder("wav2vec2"))
    feat.extract_features(corpus, encoder, tmp_path, batch_size=3, progress=False)
    seen = [n for batch in encoder.batch_lengths for n in batch]
    assert seen == sorted(seen, reverse=True)


def test_text_features_read_transcripts_and_empty_for_missing(corpus, tmp_path, minilm):
    store = feat.extract_features(corpus, minilm, tmp_path, level="frames", progress=False)
    missing = "MSP-PODCAST_0001_0008.wav"
    assert not (corpus / "Transcripts" / "MSP-PODCAST_0001_0008.txt").exists()
    np.testing.assert_allclose(store.get_frames([missing])[0], minilm.encode([""])[0], atol=1e-5)
    text = (corpus / "Transcripts" / "MSP-PODCAST_0001_0001.txt").read_text().strip()
    np.testing.assert_allclose(store.get_frames(["MSP-PODCAST_0001_0001.wav"])[0],
                               minilm.encode([text])[0], atol=1e-5)
    assert store.level == "frames" and store.dim == 384
    with pytest.raises(ValueError):
        store.get()


def test_text_cache_fully_cached_returns_store_without_tokenizing(corpus, tmp_path, minilm):
    """Regression: a second call with every file cached used to call token_counts([]) -> IndexError."""
    first = feat.extract_features(corpus, minilm, tmp_path, level="pooled", progress=False)
    encoder = CountingEncoder(minilm)
    asked = []
    encoder.token_counts = lambda texts: asked.append(list(texts)) or minilm.token_counts(texts)
    again = feat.extract_features(corpus, encoder, tmp_path, level="pooled", progress=False)
    assert encoder.calls == 0 and asked == []
    assert again.file_names == first.file_names and len(again) == 9
    np.testing.assert_array_equal(again.get(), first.get())
    assert minilm.token_counts([]).shape == (0,)


def test_egemaps_store_skips_normalisation_and_bad_inputs_raise(corpus, tmp_path):
    names = ["MSP-PODCAST_0001_0000.wav", "MSP-PODCAST_0001_0004.wav"]
    store = feat.extract_features(corpus, enc.EGemapsEncoder(), tmp_path, file_names=names,
                                  progress=False)
    wave = feat.read_audio(corpus / "Audios" / names[1])
    np.testing.assert_allclose(store.get([names[1]])[0], enc.egemaps_features(wave), rtol=1e-5)
    assert store.get(names).shape == (2, 88) and store.spec.normalize == "none"
    with pytest.raises(ValueError, match="another cache_dir"):
        feat.extract_features(corpus, enc.EGemapsEncoder(), tmp_path, file_names=names,
                              normalize="clip", progress=False)
    with pytest.raises(InputError, match="audio file not found"):
        feat.extract_features(corpus, enc.EGemapsEncoder(), tmp_path / "other",
                              file_names=["MSP-PODCAST_9999_0000.wav"], progress=False)
    with pytest.raises(KeyError):
        store.get(["MSP-PODCAST_0001_0002.wav"])


def test_read_audio_cuts_at_max_seconds(tmp_path):
    sf.write(tmp_path / "a.wav", _wave(3 * SR), SR, subtype="FLOAT")
    assert len(feat.read_audio(tmp_path / "a.wav", max_seconds=1.5)) == int(1.5 * SR)
    assert feat.audio_length(tmp_path / "a.wav", max_seconds=1.5) == int(1.5 * SR)
    z = feat.normalize_wave(feat.read_audio(tmp_path / "a.wav"), (0.1, 2.0))
    np.testing.assert_allclose(z, (_wave(3 * SR) - 0.1) / 2.0, atol=1e-6)


def test_one_pass_for_both_levels_equals_one_pass_per_level(corpus, tmp_path, minilm):
    names = ["MSP-PODCAST_0001_0000.wav", "MSP-PODCAST_0001_0004.wav", "MSP-PODCAST_0001_0006.wav"]
    egemaps = enc.EGemapsEncoder()
    both = feat.extract_feature_levels(corpus, egemaps, tmp_path / "both", file_names=names, progress=False)
    wave = feat.read_audio(corpus / "Audios" / names[1])
    np.testing.assert_array_equal(both["pooled"].get([names[1]])[0], enc.egemaps_features(wave))
    np.testing.assert_array_equal(both["frames"].get_frames([names[1]])[0], egemaps.encode([wave], "frames")[0])
    assert both["frames"].get_frames([names[1]])[0].shape == (len(wave) // 160 - 4, 25)  # 10 ms hop, 60 ms window
    # text: one forward pass per batch gives the frames and their masked mean
    counting = CountingEncoder(minilm)
    counting.pooling = minilm.pooling
    text = feat.extract_feature_levels(corpus, counting, tmp_path / "text", levels=("frames", "pooled"),
                                       batch_size=4, progress=False)
    assert counting.calls == 3 and counting.items == 9
    single = feat.extract_features(corpus, minilm, tmp_path / "single", level="pooled", progress=False)
    np.testing.assert_allclose(text["pooled"].get(), single.get(), atol=1e-5)
    # a level already cached is not encoded again, the missing one is
    again = CountingEncoder(minilm)
    again.pooling = minilm.pooling
    stores = feat.extract_feature_levels(corpus, again, tmp_path / "single", levels=("pooled", "frames"),
                                         progress=False)
    assert again.items == 9 and len(stores["frames"]) == 9
    np.testing.assert_array_equal(stores["pooled"].get(), single.get())
