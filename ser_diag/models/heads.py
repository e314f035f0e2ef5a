"""Heads on cached encoder features: baseline pooling head, late fusion, cross-modal attention.

Every model takes ``features``, a dict ``modality -> tensor`` with either pooled features
``(B, D)`` or frame sequences ``(B, T, D)``, and optional ``masks``, a dict ``modality ->
bool tensor (B, T)`` (``True`` = real frame, ``False`` = padding), and returns a dict:

``logits``      ``(B, K)`` class scores in the vocabulary's class order (default: the 8
                MSP-Podcast codes of :data:`ser_diag.schema.CLASS_CODES`; ``n_classes=``),
``attributes``  ``(B, A)`` the vocabulary's attributes on the scaled ``(y - low) / (high - low)``
                range (default: MSP-Podcast's arousal, valence, dominance, ``(y-1)/6``;
                ``n_attributes=``, 0 to 3; with 0 a ``(B, 0)`` tensor),
``gender``      ``(B, 2)`` Female/Male logits, only when built with ``gender=True`` (SAIL),
``attention``   dict of attention weights, for models that have them (inspection).
"""

from __future__ import annotations

import torch
from torch import nn

from ser_diag.schema import ATTRIBUTES, CLASS_CODES


def _as_sequence(x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, D)`` becomes a one-frame sequence; the mask defaults to all frames real."""
    if x.dim() == 2:
        x = x[:, None, :]
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    return x, mask.to(torch.bool)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over the ``True`` positions of ``mask`` (padding gets weight 0)."""
    scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=dim) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over real frames of ``(B, T, D)``; ``(B, D)`` is returned as is."""
    if x.dim() == 2:
        return x
    x, mask = _as_sequence(x, mask)
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class AttentivePooling(nn.Module):
    r"""Attention pooling: :math:`\alpha_t = \mathrm{softmax}_t(v^\top \tanh(W h_t + b))`,
    output :math:`\sum_t \alpha_t h_t`. Returns ``(pooled (B, D), weights (B, T))``."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        x, mask = _as_sequence(x, mask)
        alpha = masked_softmax(self.score(x).squeeze(-1), mask)
        return (alpha[..., None] * x).sum(dim=1), alpha


class AttentiveStatisticsPooling(AttentivePooling):
    r"""Attentive statistics pooling (Okabe et al., 2018; the challenge baseline's pooling).

    .. math:: \mu = \sum_t \alpha_t h_t,\quad
              \sigma = \sqrt{\textstyle\sum_t \alpha_t h_t^2 - \mu^2 + \epsilon}

    with attention weights as in :class:`AttentivePooling` over real frames only. Output
    ``[mu; sigma]`` of size ``2 D`` and the weights ``(B, T)``.
    """

    def __init__(self, dim: int, hidden: int = 128, eps: float = 1e-5):
        super().__init__(dim, hidden)
        self.eps = eps

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        x, mask = _as_sequence(x, mask)
        alpha = masked_softmax(self.score(x).squeeze(-1), mask)
        mu = (alpha[..., None] * x).sum(dim=1)
        var = (alpha[..., None] * x * x).sum(dim=1) - mu * mu
        return torch.cat([mu, torch.sqrt(var.clamp_min(0.0) + self.eps)], dim=1), alpha


class MultiTaskOutputs(nn.Module):
    """Output layers: ``n_classes`` class logits (default 8, MSP-Podcast), ``n_attributes``
    attributes (scaled; default 3; 0: no layer, a ``(B, 0)`` output), optional 2-way gender head."""

    def __init__(self, dim: int, n_classes: int = len(CLASS_CODES),
                 n_attributes: int = len(ATTRIBUTES), gender: bool = False):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a class head needs at least 2 classes, not {n_classes}")
        self.classes = nn.Linear(dim, n_classes)
        self.attributes = nn.Linear(dim, n_attributes) if n_attributes else None
        self.gender = nn.Linear(dim, 2) if gender else None

    def forward(self, h: torch.Tensor) -> dict:
        logits = self.classes(h)     # before the attributes: the order autograd sums the gradients in
        attributes = self.attributes(h) if self.attributes is not None else h.new_zeros(h.shape[0], 0)
        out = {"logits": logits, "attributes": attributes}
        if self.gender is not None:
            out["gender"] = self.gender(h)
        return out


def _mlp(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """The baseline's block: Dropout -> Linear -> LayerNorm -> ReLU -> Dropout."""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, hidden), nn.LayerNorm(hidden),
                         nn.ReLU(), nn.Dropout(dropout))


class BaselineHead(nn.Module):
    """The challenge baseline's head on one modality: attentive statistics pooling -> Dropout 0.5
    -> Linear ``hidden`` (1024) -> LayerNorm -> ReLU -> Dropout 0.5 -> outputs.

    ``level="pooled"`` features ``(B, D)`` skip the pooling (they are already pooled).
    """

    def __init__(self, input_dims: dict[str, int], hidden: int = 1024, dropout: float = 0.5,
                 level: str = "frames", gender: bool = False, **outputs):
        super().__init__()
        if len(input_dims) != 1:
            raise ValueError(f"BaselineHead takes one modality, got {sorted(input_dims)}")
        (self.modality, dim), = input_dims.items()
        self.pool = AttentiveStatisticsPooling(dim) if level == "frames" else None
        self.block = _mlp(2 * dim if self.pool is not None else dim, hidden, dropout)
        self.outputs = MultiTaskOutputs(hidden, gender=gender, **outputs)

    def forward(self, features: dict, masks: dict | None = None) -> dict:
        x = features[self.modality]
        attention = {}
        if self.pool is not None:
            x, attention[f"pool_{self.modality}"] = self.pool(x, (masks or {}).get(self.modality))
        out = self.outputs(self.block(x))
        if attention:
            out["attention"] = attention
        return out


class LateFusionMLP(nn.Module):
    """Concatenation fusion: each modality pooled (masked mean of frames, or pooled features as
    given) and layer-normalised, concatenated, then the baseline block and the outputs. Works
    with any set of modalities (one modality = a single-modality MLP)."""

    def __init__(self, input_dims: dict[str, int], hidden: int = 256, dropout: float = 0.3,
                 gender: bool = False, **outputs):
        super().__init__()
        self.modalities = sorted(input_dims)
        self.norms = nn.ModuleDict({m: nn.LayerNorm(input_dims[m]) for m in self.modalities})
        self.block = _mlp(sum(input_dims.values()), hidden, dropout)
        self.outputs = MultiTaskOutputs(hidden, gender=gender, **outputs)

    def forward(self, features: dict, masks: dict | None = None) -> dict:
        masks = masks or {}
        pooled = [self.norms[m](masked_mean(features[m], masks.get(m))) for m in self.modalities]
        return self.outputs(self.block(torch.cat(pooled, dim=1)))


class CrossModalAttentionFusion(nn.Module):
    """UNICAMP-style cross-modal attention fusion of two modalities (``audio``, ``text``).

    Per modality: Linear projection to ``d_model`` -> BiGRU (``d_model/2`` per direction).
    Then audio frames attend to text tokens and text tokens to audio frames
    (``nn.MultiheadAttention``, padding masked) with a residual connection and LayerNorm,
    attention pooling per modality, concatenation -> MLP -> outputs. Pooled ``(B, D)`` inputs
    are one-step sequences. ``out["attention"]`` holds ``audio_to_text (B, Ta, Tt)``,
    ``text_to_audio (B, Tt, Ta)`` (averaged over heads) and the pooling weights.
    """

    def __init__(self, input_dims: dict[str, int], d_model: int = 128, n_heads: int = 4,
                 hidden: int = 256, dropout: float = 0.2, modalities: tuple[str, str] = ("audio", "text"),
                 gender: bool = False, **outputs):
        super().__init__()
        if set(modalities) != set(input_dims):
            raise ValueError(f"CrossModalAttentionFusion needs modalities {modalities}, got {sorted(input_dims)}")
        self.modalities = tuple(modalities)
        self.project = nn.ModuleDict({m: nn.Sequential(nn.Linear(input_dims[m], d_model), nn.Dropout(dropout))
                                      for m in self.modalities})
        self.gru = nn.ModuleDict({m: nn.GRU(d_model, d_model // 2, batch_first=True, bidirectional=True)
                                  for m in self.modalities})
        self.cross = nn.ModuleDict({m: nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
                                    for m in self.modalities})
        self.norm = nn.ModuleDict({m: nn.LayerNorm(d_model) for m in self.modalities})
        self.pool = nn.ModuleDict({m: AttentivePooling(d_model, hidden=d_model) for m in self.modalities})
        self.block = _mlp(2 * d_model, hidden, dropout)
        self.outputs = MultiTaskOutputs(hidden, gender=gender, **outputs)

    def _encode(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.project[m](x)
        lengths = mask.sum(dim=1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.gru[m](packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return out

    def forward(self, features: dict, masks: dict | None = None) -> dict:
        masks = masks or {}
        seq, mask = {}, {}
        for m in self.modalities:
            x, mask[m] = _as_sequence(features[m], masks.get(m))
            seq[m] = self._encode(m, x, mask[m])
        a, t = self.modalities
        attention, pooled = {}, []
        for query, key in ((a, t), (t, a)):
            attended, weights = self.cross[query](seq[query], seq[key], seq[key],
                                                  key_padding_mask=~mask[key], need_weights=True)
            fused = self.norm[query](seq[query] + attended)
            vec, attention[f"pool_{query}"] = self.pool[query](fused, mask[query])
            attention[f"{query}_to_{key}"] = weights
            pooled.append(vec)
        out = self.outputs(self.block(torch.cat(pooled, dim=1)))
        out["attention"] = attention
        return out


class LayerWeightedInputs(nn.Module):
    r"""Learned layer weights in front of a head (SUPERB): for each modality in ``layers``
    (``modality -> L``) the features hold ``L`` hidden states side by side, ``(..., L * D)``;
    they are combined as :math:`h = \sum_l \mathrm{softmax}(w)_l H_l` with ``w`` a parameter
    (zeros: the uniform mean), then passed to ``head``. Other modalities pass unchanged.
    ``outputs`` is the head's (manifold mixup hooks it)."""

    def __init__(self, head: nn.Module, layers: dict[str, int]):
        super().__init__()
        self.head = head
        self.layers = dict(layers)
        self.layer_logits = nn.ParameterDict({m: nn.Parameter(torch.zeros(int(n))) for m, n in self.layers.items()})

    @property
    def outputs(self) -> nn.Module:
        return self.head.outputs

    def layer_weights(self, modality: str) -> torch.Tensor:
        return torch.softmax(self.layer_logits[modality], dim=0)

    def forward(self, features: dict, masks: dict | None = None) -> dict:
        features = dict(features)
        for m, n in self.layers.items():
            x = features[m]
            stacked = x.reshape(*x.shape[:-1], n, x.shape[-1] // n)
            features[m] = torch.einsum("...ld,l->...d", stacked, self.layer_weights(m).to(x.dtype))
        return self.head(features, masks)


MODELS = {"baseline": BaselineHead, "late_fusion": LateFusionMLP, "cross_attention": CrossModalAttentionFusion}


def build_model(kind: str, input_dims: dict[str, int], **kwargs) -> nn.Module:
    """Build a head by its config name (:data:`MODELS`) for the given ``modality -> dim``."""
    if kind not in MODELS:
        raise ValueError(f"model must be one of {sorted(MODELS)}, not {kind!r}")
    return MODELS[kind](input_dims, **kwargs)


__all__ = [
    "AttentivePooling",
    "AttentiveStatisticsPooling",
    "BaselineHead",
    "CrossModalAttentionFusion",
    "LateFusionMLP",
    "LayerWeightedInputs",
    "MODELS",
    "MultiTaskOutputs",
    "build_model",
    "masked_mean",
    "masked_softmax",
]
