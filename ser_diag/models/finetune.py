"""Fine-tuning mode: train the top of ``transformers`` encoders from waveforms (and transcripts).

The challenge baseline fine-tunes WavLM-large under an attentive statistics pooling head. With
``TrainConfig.finetune`` non-empty, :func:`ser_diag.models.train.train` runs that recipe through
the same loop as the frozen-feature path:

* inputs: raw [-1, 1] waveforms read from ``Audios/`` (and ``Transcripts/`` for a text modality)
  by ``DataLoader`` workers, augmented on the fly (``TrainConfig.augment`` noise / reverb /
  mix_clips, seeded by ``(seed, epoch, file)``); each encoder's own processor prepares them;
* per modality a :class:`~ser_diag.models.encoders.HiddenStateEncoder` with ``layer="weighted"``
  (learned softmax layer weights, a parameter; layer drop off, so every layer has a state) -- frozen: the convolutional front end / token
  embeddings and every transformer block below the top ``top_layers``; trained: the top
  ``top_layers`` blocks, the layer weights and the head;
* layer-wise learning rates: the head and layer weights at ``lr``, the top block at
  ``encoder_lr``, each block below at ``layer_lr_decay`` times the one above;
* gradient checkpointing of the encoders (``gradient_checkpointing``), ``torch.autocast`` as
  configured by ``TrainConfig.amp``.

``finetune`` keys (defaults): ``top_layers`` 2, ``encoder_lr`` 5e-5, ``layer_lr_decay`` 0.8,
``gradient_checkpointing`` true, ``num_workers`` 0, ``pin_memory`` (on with CUDA),
``max_seconds`` 12.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ser_diag.models.heads import build_model

FINETUNE_DEFAULTS = {"top_layers": 2, "encoder_lr": 5e-5, "layer_lr_decay": 0.8, "gradient_checkpointing": True,
                     "num_workers": 0, "pin_memory": None, "max_seconds": 12.0}


def finetune_settings(finetune: dict) -> dict:
    """``TrainConfig.finetune`` with defaults; unknown keys raise ``ValueError``."""
    bad = sorted(set(finetune) - set(FINETUNE_DEFAULTS))
    if bad:
        raise ValueError(f"finetune takes {sorted(FINETUNE_DEFAULTS)}, not {bad}")
    return {**FINETUNE_DEFAULTS, **finetune}


class AudioInputs:
    """Waveforms of a corpus, read on demand: ``batch(rows)`` -> list of float32 tensors."""

    raw = True

    def __init__(self, root, names, sample_rate: int = 16_000, max_seconds: float | None = 12.0):
        self.root, self.names = Path(root), np.asarray(names, dtype=str)
        self.sample_rate, self.max_seconds = int(sample_rate), max_seconds

    def subset(self, names) -> "AudioInputs":
        return AudioInputs(self.root, names, self.sample_rate, self.max_seconds)

    def wave(self, name: str) -> np.ndarray:
        from ser_diag.models.features import read_audio
        return read_audio(self.root / "Audios" / name, self.sample_rate, self.max_seconds)

    def batch(self, rows) -> list:
        return [torch.from_numpy(self.wave(self.names[r])) for r in rows]


class TextInputs:
    """Transcripts (missing -> ``""``), read once: ``batch(rows)`` -> list of strings."""

    raw = True

    def __init__(self, root, names):
        from ser_diag.models.features import read_transcript
        self.root, self.names = Path(root), np.asarray(names, dtype=str)
        self.texts = [read_transcript(self.root, f) for f in self.names]

    def subset(self, names) -> "TextInputs":
        return TextInputs(self.root, names)

    def batch(self, rows) -> list:
        return [self.texts[r] for r in rows]


def raw_inputs(config, labels) -> dict:
    """``modality -> AudioInputs | TextInputs`` for every labelled file of ``config.corpus``."""
    from ser_diag.models.encoders import is_speech_encoder_name

    if config.corpus is None:
        raise ValueError("fine-tuning reads audio and transcripts: set config.corpus")
    names = sorted(labels["FileName"].astype(str))
    seconds = finetune_settings(config.finetune)["max_seconds"]
    return {m: AudioInputs(config.corpus, names, 16_000, seconds) if is_speech_encoder_name(spec.get("encoder", ""))
            else TextInputs(config.corpus, names) for m, spec in config.modalities.items()}


class FineTuneModel(nn.Module):
    """Encoders (one per modality, ``layer="weighted"``) under a head: ``forward(inputs, masks)``
    with ``inputs`` ``modality -> list of waves / strings``; ``outputs`` is the head's."""

    def __init__(self, encoders: dict, head: nn.Module):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.head = head
        self.frozen: list[nn.Module] = []

    @property
    def outputs(self) -> nn.Module:
        return self.head.outputs

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.frozen:  # frozen parts behave as at inference (no dropout, no layer drop)
            module.eval()
        return self

    def forward(self, inputs: dict, masks: dict | None = None) -> dict:
        frames, frame_masks = {}, {}
        for m, encoder in self.encoders.items():
            frames[m], frame_masks[m] = encoder(inputs[m])
        return self.head(frames, frame_masks)


def freeze_below_top(encoder, top_layers: int) -> list[nn.Module]:
    """Freeze every parameter of ``encoder.model`` except its top ``top_layers`` transformer
    blocks (the layer weights stay trainable); return the frozen modules."""
    from ser_diag.models.encoders import transformer_layers

    for p in encoder.model.parameters():
        p.requires_grad_(False)
    blocks = transformer_layers(encoder.model)
    top = list(blocks)[len(blocks) - int(top_layers):] if top_layers > 0 else []
    for block in top:
        for p in block.parameters():
            p.requires_grad_(True)
    frozen = [b for b in blocks if all(b is not t for t in top)]
    frozen += [c for name, c in encoder.model.named_children() if not isinstance(c, nn.ModuleList)
               and "encoder" not in name and all(not p.requires_grad for p in c.parameters())]
    return frozen


def build_finetune_model(config, data) -> FineTuneModel:
    """Encoders of ``config.modalities`` (hub names, folders or ``tiny-*``) with learned layer
    weights, frozen below the top blocks, under the configured head (frame level)."""
    from ser_diag.models.encoders import load_encoder

    settings = finetune_settings(config.finetune)
    encoders, frozen = {}, []
    for m, spec in config.modalities.items():
        layer = spec.get("layer", "weighted")
        encoder = load_encoder(spec["encoder"], layer, spec.get("pooling", "mean"), device="cpu")
        if not hasattr(encoder, "model"):
            raise ValueError(f"modality {m!r}: fine-tuning needs a transformers encoder, not {spec['encoder']!r}")
        if hasattr(encoder.model.config, "layerdrop"):  # a skipped layer has no hidden state to weight
            encoder.model.config.layerdrop = 0.0
        frozen += freeze_below_top(encoder, settings["top_layers"])
        if settings["gradient_checkpointing"] and getattr(encoder.model, "supports_gradient_checkpointing", False):
            if hasattr(encoder.model, "activation_checkpointing_enable"):  # transformers >= 5
                encoder.model.activation_checkpointing_enable({"use_reentrant": False})
            else:
                encoder.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        encoders[m] = encoder
    kind = config.model.get("kind", "baseline")
    kwargs = {k: v for k, v in config.model.items() if k != "kind"}
    if kind == "baseline":
        kwargs.setdefault("level", "frames")
    vocabulary = config.corpus_vocabulary if data is None else data.vocabulary
    kwargs.setdefault("n_classes", len(vocabulary.classes))       # the corpus' classes and attributes
    kwargs.setdefault("n_attributes", len(vocabulary.attributes))
    head = build_model(kind, {m: e.width for m, e in encoders.items()}, gender=config.gender_head, **kwargs)
    model = FineTuneModel(encoders, head)
    model.frozen = frozen
    return model


def param_groups(model: FineTuneModel, config) -> list[dict]:
    """AdamW groups with layer-wise learning rates: head and layer weights at ``config.lr``;
    transformer block ``d`` below the top at ``encoder_lr * layer_lr_decay ** d``."""
    from ser_diag.models.encoders import transformer_layers

    settings = finetune_settings(config.finetune)
    groups, seen = [], set()
    for encoder in model.encoders.values():
        blocks = list(transformer_layers(encoder.model))
        for depth, block in enumerate(reversed(blocks)):
            params = [p for p in block.parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": settings["encoder_lr"] * settings["layer_lr_decay"] ** depth,
                               "name": f"block-{depth}-from-top"})
                seen.update(id(p) for p in params)
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    return [{"params": rest, "lr": config.lr, "name": "head+layer-weights"}] + groups


def _plans(run, epoch: int, rows) -> dict:
    """Augmentation plans of Train ``rows`` for ``epoch`` (a function of ``(seed, epoch, file)``)."""
    from ser_diag.models.augment import plan_augmentation
    from ser_diag.models.augment import file_seed

    names = run.data.file_names
    candidates = sorted(names[run.train_rows])
    return {int(r): plan_augmentation(run.waveform, np.random.default_rng(file_seed(run.config.seed, epoch, names[r])),
                                      candidates, names[r]) for r in rows}


class _EpochBatches(torch.utils.data.Dataset):
    """Item ``i``: the inputs of this process's rows of global batch ``i`` (augmented audio)."""

    def __init__(self, data, batches, rank, world, waveform, seed, epoch, candidates, row_of, sample_rate):
        from ser_diag.models.sampling import shard
        self.data, self.rows = data, [shard(b, rank, world) for b in batches]
        self.waveform, self.seed, self.epoch = waveform, seed, epoch
        self.candidates, self.row_of, self.sample_rate = candidates, row_of, sample_rate

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        from ser_diag.models.augment import augment_waveform, plan_augmentation
        from ser_diag.models.augment import file_seed

        rows = self.rows[i]
        inputs = {}
        for m, source in self.data.features.items():
            if not isinstance(source, AudioInputs) or not self.waveform:
                inputs[m] = source.batch(rows)
                continue
            waves = []
            for r in rows:
                name = self.data.file_names[r]
                seed = file_seed(self.seed, self.epoch, name)
                plan = plan_augmentation(self.waveform, np.random.default_rng(seed), self.candidates, name)
                partner = source.wave(plan["partner"]) if "partner" in plan else None
                wave = augment_waveform(source.wave(name), self.sample_rate, plan,
                                        np.random.default_rng(seed + [1]), partner)
                waves.append(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)))
            inputs[m] = waves
        return i, inputs


def epoch_loader(run, epoch: int, batches: list):
    """Yield ``(batch, own rows, inputs, {})`` for one epoch through a ``DataLoader`` (workers,
    pinned memory on CUDA) and set ``run.mix_of`` to the epoch's clip-mixing partners."""
    from ser_diag.models.sampling import shard

    settings = finetune_settings(run.config.finetune)
    names = run.data.file_names
    candidates = sorted(names[run.train_rows])
    row_of = {f: i for i, f in enumerate(names)}

    def mix_of(rows):
        if "mix_clips" not in run.waveform:
            return None
        plans = _plans(run, epoch, rows)
        partner = np.array([row_of[plans[int(r)]["partner"]] if "partner" in plans[int(r)] else -1 for r in rows])
        weight = np.array([plans[int(r)].get("weight", 1.0) for r in rows], dtype=np.float32)
        return partner, weight

    run.mix_of = mix_of
    dataset = _EpochBatches(run.data, batches, run.ctx.rank, run.ctx.world_size, run.waveform, run.config.seed,
                            epoch, candidates, row_of, 16_000)
    pin = settings["pin_memory"] if settings["pin_memory"] is not None else run.device.type == "cuda"
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=settings["num_workers"],
                                         pin_memory=pin)
    for i, inputs in loader:
        yield batches[i], shard(batches[i], run.ctx.rank, run.ctx.world_size), inputs, {}


__all__ = ["AudioInputs", "FINETUNE_DEFAULTS", "FineTuneModel", "TextInputs", "build_finetune_model",
           "epoch_loader", "finetune_settings", "freeze_below_top", "param_groups", "raw_inputs"]
