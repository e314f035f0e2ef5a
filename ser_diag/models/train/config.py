"""Training configuration: :class:`TrainConfig` (every key of a JSON training config, checked
by :meth:`TrainConfig.from_dict`), :class:`TrainResult` (what :func:`ser_diag.models.train.train`
returns) and the validation of ``TrainConfig.augment`` (:func:`_augment_settings`).

Imports nothing else of :mod:`ser_diag.models.train`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary, preset


@dataclass
class TrainConfig:
    """Everything one training run needs; JSON configs hold the same keys.

    ``modalities`` maps a modality name to a feature spec: ``{"encoder": name or path (see
    :func:`open_feature_store`), "layer": int|"weighted", "level": "pooled"|"frames",
    "frame_stride": k, "stream": bool}`` (``frame_stride`` averages runs of k frames, e.g. 10 ms
    eGeMAPS descriptors to 100 ms; ``stream`` reads frames from the memory-mapped cache per batch
    instead of loading them whole, :class:`StreamedFrames`; only ``level``, ``frame_stride``,
    ``stream`` and ``layer`` are read when feature stores are passed to :func:`train` directly). ``"layer": "weighted"`` learns softmax layer
    weights over all hidden states (SUPERB) as parameters of the model.
    ``model`` is ``{"kind": "baseline"|"late_fusion"|"cross_attention", **head kwargs}``.
    ``finetune`` (off by default, ``{}``): train the encoders themselves, see
    :mod:`ser_diag.models.finetune` for its keys.
    ``num_threads``: torch threads while training (``None``: leave torch's setting).

    ``vocabulary`` (default ``None``: MSP-Podcast, today's recipe unchanged): the corpus'
    :class:`~ser_diag.vocabulary.Vocabulary` as a preset name (``"iemocap"``), a vocabulary file
    (JSON/YAML), its plain data (:meth:`Vocabulary.to_dict`) or the value itself. The class head
    has one logit per scored class (``len(vocabulary.classes)``; merged codes count as their
    class, excluded ones as unlabelled), the attribute head one output per attribute, each
    attribute scaled ``(y - low) / (high - low)`` and mapped back and clipped to its scale
    (MSP-Podcast: ``(y - 1) / 6``, ``[1, 7]``); a vocabulary without attributes drops the
    attributes task with one warning. Prediction files carry the vocabulary's codes
    (:mod:`ser_diag.models.prediction_files`). ``mean_penalty``'s ``centre`` and ``width`` are on
    the attributes' scale (default: the scale's midpoint and a sixth of its length: 4 and 1 on
    MSP-Podcast's 1-7).

    ``augment`` (off by default, ``{}``) takes any of

    * ``"manifold_mixup": {"p": 0.3, "alpha": 0.2}`` (or ``true`` for these NTUA values):
      per training batch, with probability ``p``, the representation entering the model's
      output layers (``model.outputs``: the fused vector after the fusion block) is mixed
      :math:`\\lambda h + (1-\\lambda) h_\\pi` with :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha,
      \\alpha)` (:func:`ser_diag.models.augment.draw_mixup`); attribute and soft-label targets
      are mixed the same way and hard-label losses are interpolated,
      :math:`\\lambda L(y) + (1-\\lambda) L(y_\\pi)`. The draws come from a generator seeded by
      ``(seed, epoch, batch)``, so runs stay deterministic and resume bit-identical.
    * ``"drop_annotators": {"fraction": 0.2}`` (or the fraction as a number): the soft-label
      targets of ``categorical_loss`` ``"soft_ce"``/``"kld"`` are recomputed every epoch from
      the detailed labels after dropping that share of each file's annotators
      (:func:`ser_diag.models.augment.drop_annotators`, seeded by ``(seed, epoch)``; every file
      keeps at least one class vote).
    * waveform augmentation of the Train audio (:func:`ser_diag.models.augment.augment_waveform`):
      ``"noise": {"p", "snr_db": [lo, hi]}``, ``"reverb": {"p", "rt60": [lo, hi]}``,
      ``"mix_clips": {"p", "max_overlap_s"}`` (SAIL: labels averaged, so it needs a soft-label
      categorical loss or no categorical task), ``"views": k``. Frozen features: ``k``
      (default 2) augmented copies of every Train file are encoded and cached as extra feature
      sets, and each epoch every Train row uses a view drawn from ``(seed, epoch)`` (0 = clean);
      fine-tuning: augmented on the fly, seeded by ``(seed, epoch, file)``.
    """

    system_name: str = "system"
    out_dir: str = "models_out"
    corpus: str | None = None
    feature_cache: str | None = None
    modalities: dict = field(default_factory=lambda: {"audio": {"level": "pooled"}})
    model: dict = field(default_factory=lambda: {"kind": "late_fusion"})
    tasks: tuple = (TASK_CATEGORICAL, TASK_ATTRIBUTES)
    task_weights: dict = field(default_factory=lambda: {TASK_CATEGORICAL: 1.0, TASK_ATTRIBUTES: 1.0, "gender": 0.1})
    categorical_loss: str = "weighted_ce"
    class_weighting: str = "inverse"
    focal_gamma: float = 2.0
    attribute_loss: str = "ccc"
    mean_penalty: dict = field(default_factory=lambda: {"strength": 1.0})
    gender_head: bool = False
    sampler: str = "shuffle"
    include_unlabeled: bool | None = None
    normalize_features: bool = True
    epochs: int = 20
    batch_size: int = 32
    grad_accum_steps: int = 1
    drop_last: bool = True
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    lr_schedule: str = "cosine"
    lr_decay_gamma: float = 0.9
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    amp: str = "auto"
    monitor: str | None = None
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = 1
    eval_batch_size: int = 128
    predict_splits: tuple = ("Development", "Test3")
    resume: bool = False
    stop_after_epochs: int | None = None
    progress: bool = True
    augment: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    vocabulary: object = None

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {unknown}")
        d = dict(d)
        for key in ("tasks", "predict_splits"):
            if key in d:
                d[key] = tuple([d[key]] if isinstance(d[key], str) else d[key])
        config = cls(**d)
        config.corpus_vocabulary  # a bad vocabulary fails here, before any work
        return config

    def to_dict(self) -> dict:
        d = dataclasses.asdict(dataclasses.replace(self, vocabulary=None))
        d["vocabulary"] = self.vocabulary.to_dict() if isinstance(self.vocabulary, Vocabulary) else self.vocabulary
        return json.loads(json.dumps(d))

    @property
    def corpus_vocabulary(self) -> Vocabulary:
        """The :class:`~ser_diag.vocabulary.Vocabulary` that ``vocabulary`` names
        (:func:`resolve_vocabulary`)."""
        return resolve_vocabulary(self.vocabulary)


@dataclass
class TrainResult:
    """What :func:`train` did: where its outputs are and how the development set scored."""

    system_name: str
    predictions_dir: Path | None      # Development predictions (None if the run was cut short)
    prediction_dirs: dict             # split -> folder
    run_dir: Path
    monitor: str
    best_epoch: int
    best_score: float
    dev_metrics: dict
    history: list
    epochs_run: int
    seconds: float
    n_parameters: int
    model: nn.Module = field(repr=False)
    num_threads: int = 0
    n_trainable: int = 0


# --------------------------------------------------------------------------- the corpus' vocabulary

def resolve_vocabulary(value) -> Vocabulary:
    """The vocabulary a training config names: ``None`` (MSP-Podcast), a
    :class:`~ser_diag.vocabulary.Vocabulary`, its plain data, a preset name or a vocabulary
    file path (a ``ValueError`` names both readings otherwise).

    >>> resolve_vocabulary("IEMOCAP").classes, resolve_vocabulary(None).name
    (('neutral', 'happy', 'sad', 'angry'), 'msp-podcast')
    """
    if value is None:
        return MSP_PODCAST
    if isinstance(value, Vocabulary):
        return value
    if isinstance(value, Mapping):
        return Vocabulary.from_dict(value, name="vocabulary")
    if not isinstance(value, str):
        raise ValueError(f"vocabulary must be a preset name, a vocabulary file or its data, not {value!r}")
    path = Path(value)
    if path.suffix.lower() in (".json", ".yaml", ".yml"):
        if not path.is_file():
            raise ValueError(f"vocabulary file {value!r} does not exist")
        return Vocabulary.from_file(path)
    return preset(value)


def effective_tasks(tasks, vocabulary: Vocabulary) -> tuple:
    """``tasks`` a corpus can train: the attributes task only when the vocabulary has
    attributes (dropped with one warning otherwise); at least one task must remain."""
    tasks = tuple(tasks)
    if TASK_ATTRIBUTES in tasks and not vocabulary.attributes:
        warnings.warn(f"vocabulary {vocabulary.name} has no attributes: training the categorical task only",
                      stacklevel=3)
        tasks = tuple(t for t in tasks if t != TASK_ATTRIBUTES)
    if not tasks:
        raise ValueError(f"no task to train for vocabulary {vocabulary.name}")
    return tasks


def attribute_bounds(vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """``(low, span)`` arrays, one entry per attribute: targets are scaled ``(y - low) / span``
    and outputs mapped back ``x * span + low`` (MSP-Podcast: 1 and 6)."""
    low = np.array([a.low for a in vocabulary.attributes], dtype=np.float64)
    high = np.array([a.high for a in vocabulary.attributes], dtype=np.float64)
    return low, high - low


# --------------------------------------------------------------------------- augmentation settings

AUGMENTATIONS = ("manifold_mixup", "drop_annotators", "noise", "reverb", "mix_clips", "views")


def _augment_settings(augment: dict) -> tuple[dict | None, float | None, dict]:
    """``(mixup {"p", "alpha"} or None, drop fraction or None, waveform settings or {})`` from
    ``TrainConfig.augment`` (waveform: :func:`ser_diag.models.augment.waveform_settings`)."""
    from ser_diag.models.augment import waveform_settings

    unknown = sorted(set(augment or {}) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augment keys {unknown}; known: {list(AUGMENTATIONS)}")
    mixup = (augment or {}).get("manifold_mixup")
    if mixup is True:
        mixup = {}
    if mixup is not None and mixup is not False:
        bad = sorted(set(mixup) - {"p", "alpha"})
        if bad:
            raise ValueError(f"manifold_mixup takes 'p' and 'alpha', not {bad}")
        mixup = {"p": float(mixup.get("p", 0.3)), "alpha": float(mixup.get("alpha", 0.2))}
        mixup = mixup if mixup["p"] > 0 else None
    else:
        mixup = None
    drop = (augment or {}).get("drop_annotators")
    if isinstance(drop, dict):
        drop = drop.get("fraction", 0.2)
    drop = float(drop) if drop else None
    return mixup, drop, waveform_settings(augment or {})
