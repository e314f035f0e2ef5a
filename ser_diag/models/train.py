"""One training entry point for the reference models (nanoGPT-lean).

``train(config)`` trains one system, early-stops on the development metric
(:mod:`ser_diag.metrics`), checkpoints every epoch with everything an exact resume needs, and
writes the system's predictions for the Development and Test3 files in the challenge layout::

    <out_dir>/predictions/<system_name>/categorical.csv   FileName,EmoClass,P_A..P_N  (Development)
    <out_dir>/predictions/<system_name>/attributes.csv    FileName,EmoAct,EmoVal,EmoDom
    <out_dir>/predictions_test3/<system_name>/...          the same for Test3 (any other split:
                                                          predictions_<split lower case>)
    <out_dir>/runs/<system_name>/config.json, metrics.jsonl, summary.json,
                                 checkpoints/last.pt, checkpoints/best.pt

Two input paths share one loop (:func:`_setup`, :func:`_train_epoch`, :func:`_end_epoch`,
:func:`_finish`):

* **frozen features** (default, fast): cached pooled or frame features per modality
  (:func:`open_feature_store`), z-normalised with Train statistics; a modality spec with
  ``"layer": "weighted"`` caches every hidden state and the model learns the softmax layer
  weights (:class:`ser_diag.models.heads.LayerWeightedInputs`);
* **fine-tuning** (``config.finetune`` non-empty, :mod:`ser_diag.models.finetune`): waveforms
  (and transcripts) through ``transformers`` encoders whose top layers are trained.

Recipe (challenge baseline): attribute targets scaled ``(y-1)/6``, outputs mapped back ``*6+1``
and clipped to ``[1, 7]``; AdamW, linear warm-up then cosine or exponential decay (per optimizer
step), gradient accumulation, ``torch.autocast`` (bf16/fp16 on GPU by default, off on CPU unless
``amp="bf16"``). torch runs on ``num_threads`` threads (default 1, as the reference pipeline:
on a shared 2-core machine one thread was about 6x faster per cross-attention epoch than two
competing for the cores, ``bench/bench_pipeline.py``).

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised from the
environment (gloo on CPU, nccl on GPU). Every process draws the same global batch (samplers
are functions of ``(seed, epoch)``) and computes a contiguous shard of it; the model outputs of
all shards are gathered in rank order, every process evaluates the loss on the whole global
batch, and the gradient flows through its own rows only (the loss is scaled by the world size
to undo DDP's gradient averaging). So ``P`` processes x ``b/P`` rows compute the gradient of
the same loss as 1 process x ``b`` rows, batch-level losses (1-CCC, soft macro-F1) included.
Each process draws dropout from its own generator (process 0: the one seeded by ``seed``,
process ``r``: one seeded by ``(seed, r)``) and every process's generator state is
checkpointed; waveform augmentation and mixup are functions of ``(seed, epoch, file/batch)``,
so they do not depend on the number of processes. Hence without dropout ``P`` processes equal
one process up to floating-point summation order; with dropout they are different (equally
valid) random draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ser_diag import metrics
from ser_diag.models import losses
from ser_diag.models.augment import draw_mixup, file_seed
from ser_diag.models.heads import LayerWeightedInputs, build_model
from ser_diag.models.sampling import class_counts, class_weights, global_batches, make_sampler, shard
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, GENDERS, PROB_COLUMNS, TASK_ATTRIBUTES, TASK_CATEGORICAL

_CODE_INDEX = {c: i for i, c in enumerate(CLASS_CODES)}


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
    mean_penalty: dict = field(default_factory=lambda: {"strength": 1.0, "centre": 4.0, "width": 1.0})
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
        return cls(**d)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


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


class ArrayFeatures:
    """In-memory feature store with the :class:`ser_diag.models.features.FeatureStore` read API
    (``file_names``, ``dim``, ``get``, ``get_frames``): pooled ``(n, D)`` or a list of ``(T_i, D)``.
    ``n_states``: how many hidden states are concatenated along the feature axis (``layer:
    "weighted"`` features; ``D = n_states x width``)."""

    def __init__(self, file_names, values, n_states: int = 1):
        self.file_names = [str(f) for f in file_names]
        self._row = {f: i for i, f in enumerate(self.file_names)}
        self._values = values if isinstance(values, list) else np.asarray(values, dtype=np.float32)
        self.dim = int(self._values[0].shape[-1])
        self.n_states = int(n_states)
        self.mix: dict = {}

    def get(self, file_names) -> np.ndarray:
        rows = [self._row[f] for f in file_names]
        if isinstance(self._values, list):
            return np.stack([np.asarray(self._values[i]).mean(axis=0) for i in rows]).astype(np.float32)
        return self._values[rows]

    def get_frames(self, file_names) -> list:
        rows = [self._row[f] for f in file_names]
        if isinstance(self._values, list):
            return [np.asarray(self._values[i], dtype=np.float32) for i in rows]
        return [self._values[i][None, :] for i in rows]


# --------------------------------------------------------------------------- distributed

@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return _Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _gather_rows(x: torch.Tensor, sizes: list[int], ctx: _Dist) -> torch.Tensor:
    """Concatenate every process's rows (shard sizes known to all) in rank order; the gradient
    flows to this process's own rows only."""
    if ctx.world_size == 1:
        return x
    pad = max(sizes) - x.shape[0]
    padded = torch.cat([x.detach(), x.new_zeros((pad,) + x.shape[1:])]) if pad else x.detach().contiguous()
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    parts = [p[:n] for p, n in zip(parts, sizes)]
    parts[ctx.rank] = x
    return torch.cat(parts)


def _gather_objects(obj, ctx: _Dist) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
    if ctx.world_size == 1:
        return [obj]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


# --------------------------------------------------------------------------- data

@dataclass
class _Data:
    file_names: np.ndarray
    split: np.ndarray
    features: dict          # modality -> Tensor (N, D), list of Tensor (T_i, D), or RawInputs
    y_class: np.ndarray     # (N,) int, -1 = O/X/unlabelled
    y_attr: np.ndarray      # (N, 3) scaled (y-1)/6, NaN where missing
    y_gender: np.ndarray    # (N,) int, -1 = unknown
    y_soft: np.ndarray | None  # (N, 8) vote distributions, NaN rows where unknown
    views: dict = field(default_factory=dict)   # modality -> [view 1, view 2, ...] like features
    view_mix: list = field(default_factory=list)  # per view: (partner row (N,) or -1, weight of the row (N,))
    n_states: dict = field(default_factory=dict)  # modality -> stacked hidden states (1: one layer)

    @property
    def dims(self) -> dict:
        return {m: int(v.shape[1] if torch.is_tensor(v) else v[0].shape[1] if isinstance(v, list) else v.dim)
                for m, v in self.features.items()}


def _labels_frame(config: TrainConfig, labels) -> pd.DataFrame:
    if labels is not None:
        return labels if isinstance(labels, pd.DataFrame) else _read_labels(labels)
    if config.corpus is None:
        raise ValueError("config.corpus (corpus root or labels file) is needed when no labels are passed")
    return _read_labels(config.corpus)


def _read_labels(path) -> pd.DataFrame:
    from ser_diag.io import read_labels
    return read_labels(path)


def _read_soft_labels(path) -> pd.DataFrame:
    from ser_diag.io import read_detailed_labels, soft_labels
    return soft_labels(read_detailed_labels(path))


def _encoder_for(spec: dict):
    from ser_diag.models.encoders import load_encoder
    return load_encoder(spec["encoder"], spec.get("layer"), spec.get("pooling", "mean"))


def open_feature_store(corpus, spec: dict, cache_dir, progress: bool = True, file_names=None):
    """Extract the features a modality spec names (or read them from the cache): ``spec`` =
    ``{"encoder": "egemaps"|"minilm"|"tiny-wavlm"|hub name or path, "layer": int|"weighted"|None,
    "pooling": "mean"|"mean_std", "level": "pooled"|"frames"}``
    (see :func:`ser_diag.models.encoders.load_encoder`; ``"weighted"`` caches every hidden
    state). ``file_names``: encode only these (default: the whole corpus)."""
    from ser_diag.models.features import extract_features
    level = spec.get("level", "pooled")
    return extract_features(corpus, _encoder_for(spec), cache_dir, file_names=file_names, level=level,
                            batch_size=spec.get("batch_size", 8), progress=progress)


def open_augmented_views(corpus, spec: dict, cache_dir, train_files, augment: dict, seed: int,
                         progress: bool = True, file_names=None) -> list:
    """The cached augmented views of the Train files for one audio modality spec
    (:func:`ser_diag.models.features.extract_augmented_views`)."""
    from ser_diag.models.augment import waveform_settings
    from ser_diag.models.features import extract_augmented_views
    settings = waveform_settings(augment)
    return extract_augmented_views(corpus, _encoder_for(spec), cache_dir, train_files, settings, seed,
                                   level=spec.get("level", "pooled"), file_names=file_names,
                                   batch_size=spec.get("batch_size", 8), progress=progress)


def _open_feature_stores(config: TrainConfig, ctx: "_Dist", labels: pd.DataFrame) -> tuple[dict, dict]:
    """Feature stores (and augmented views) for ``config.modalities``. Extraction is sharded:
    process ``r`` encodes files ``r, r + P, ...`` into the shared cache (each writes its own
    shards), then all wait once and open the whole store."""
    cache = Path(config.feature_cache or Path(config.out_dir) / "features")
    names = sorted(labels["FileName"].astype(str))
    train_files = sorted(labels.loc[labels["Split_Set"].astype(str) == "Train", "FileName"].astype(str))
    waveform = _augment_settings(config.augment)[2]
    mine = names[ctx.rank::ctx.world_size]
    mine_train = train_files[ctx.rank::ctx.world_size]
    progress = config.progress and ctx.main
    stores, views = {}, {}
    for m, spec in config.modalities.items():
        stores[m] = open_feature_store(config.corpus, spec, cache, progress, file_names=mine)
        if waveform and _is_audio(spec):
            views[m] = open_augmented_views(config.corpus, spec, cache, train_files, config.augment, config.seed,
                                            progress, file_names=mine_train)
    if ctx.world_size > 1:
        if dist.is_initialized():
            dist.barrier()
        stores = {m: type(s)(s.path) for m, s in stores.items()}
        views = {m: [type(v)(v.path) for v in vs] for m, vs in views.items()}
    return stores, views


def _is_audio(spec: dict) -> bool:
    from ser_diag.models.encoders import is_speech_encoder_name
    return is_speech_encoder_name(spec.get("encoder", ""))


class StreamedFrames:
    """Frame features read from a (memory-mapped) feature store on demand instead of loaded
    whole: ``x[i]`` is file ``i``'s ``(T_i, D)`` tensor, frame-averaged and z-normalised
    (:meth:`set_normalization`). Modality spec ``"stream": true`` selects it; the statistics
    come from one streaming pass over the Train files (float64 sums)."""

    def __init__(self, store, names, stride: int = 1):
        self.store, self.names, self.stride = store, [str(n) for n in names], int(stride)
        self.dim = int(store.dim)
        self.mean, self.std = None, None

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i) -> torch.Tensor:
        x = _average_frames(torch.as_tensor(self.store.get_frames([self.names[int(i)]])[0]), self.stride)
        return x if self.mean is None else (x - self.mean) / self.std

    def train_statistics(self, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and population std of the frames of ``rows``, accumulated file by file."""
        n, total, squares = 0, np.zeros(self.dim), np.zeros(self.dim)
        for r in rows:
            x = _average_frames(torch.as_tensor(self.store.get_frames([self.names[int(r)]])[0]), self.stride)
            x = x.double().numpy()
            n, total, squares = n + len(x), total + x.sum(axis=0), squares + (x * x).sum(axis=0)
        mean = total / max(n, 1)
        std = np.sqrt(np.maximum(squares / max(n, 1) - mean * mean, 0.0))
        return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-5)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std


def _feature_tensors(store, names, spec: dict):
    level = spec.get("level", "pooled")
    if level == "frames" and spec.get("stream"):
        return StreamedFrames(store, names, int(spec.get("frame_stride", 1)))
    if level == "frames":
        stride = int(spec.get("frame_stride", 1))
        return [_average_frames(torch.as_tensor(np.asarray(a, dtype=np.float32)), stride)
                for a in store.get_frames(list(names))]
    if level == "pooled":
        return torch.as_tensor(np.asarray(store.get(list(names)), dtype=np.float32))
    raise ValueError(f"level must be 'pooled' or 'frames', not {level!r}")


def _load_data(config: TrainConfig, features: dict, labels: pd.DataFrame, soft: pd.DataFrame | None,
               views: dict | None = None) -> _Data:
    splits = ("Train", "Development") + tuple(s for s in config.predict_splits if s not in ("Train", "Development"))
    labels = labels[labels["Split_Set"].astype(str).isin(splits)]
    names = labels["FileName"].astype(str).to_numpy()
    feats, n_states = {}, {}
    for m, store in features.items():
        spec = config.modalities.get(m, {})
        if getattr(store, "raw", False):  # fine-tuning: waveforms / transcripts
            feats[m] = store.subset(names)
            continue
        n_states[m] = int(getattr(getattr(store, "spec", None), "n_states", getattr(store, "n_states", 1)) or 1)
        if spec.get("layer") == "weighted" and n_states[m] < 2:
            raise ValueError(f"modality {m!r}: layer 'weighted' needs features of every hidden state "
                             f"(a store with n_states > 1), got {n_states[m]}")
        try:
            feats[m] = _feature_tensors(store, names, spec)
        except ValueError as error:
            raise ValueError(f"modality {m!r}: {error}") from None
    split = labels["Split_Set"].astype(str).to_numpy()
    data_views, view_mix = {}, []
    for m, stores in (views or {}).items():
        if isinstance(feats[m], StreamedFrames):
            raise ValueError(f"modality {m!r}: augmented views need in-memory features, not 'stream': true")
        train = np.flatnonzero(split == "Train")
        data_views[m] = []
        for v, store in enumerate(stores):
            values = _feature_tensors(store, names[train], config.modalities.get(m, {}))
            full = feats[m].clone() if torch.is_tensor(feats[m]) else list(feats[m])
            for j, row in enumerate(train):
                full[row] = values[j]
            data_views[m].append(full)
            if len(view_mix) <= v:
                row_of = {f: i for i, f in enumerate(names)}
                partner = np.full(len(names), -1, dtype=np.int64)
                weight = np.ones(len(names), dtype=np.float32)
                for f, (other, w_a, _) in getattr(store, "mix", {}).items():
                    if f in row_of and other in row_of:
                        partner[row_of[f]], weight[row_of[f]] = row_of[other], w_a
                view_mix.append((partner, weight))
    codes = labels["EmoClass"].astype(str).to_numpy()
    y_class = np.array([_CODE_INDEX.get(c, -1) for c in codes], dtype=np.int64)
    y_attr = ((labels.loc[:, list(ATTRIBUTES)].astype(float).to_numpy() - 1.0) / 6.0).astype(np.float32)
    gender = labels["Gender"].astype(object).to_numpy()
    y_gender = np.array([GENDERS.index(g) if g in GENDERS else -1 for g in gender], dtype=np.int64)
    y_soft = None
    if soft is not None:
        y_soft = soft.reindex(names).loc[:, list(CLASS_CODES)].to_numpy(dtype=np.float32)
    return _Data(names, split, feats, y_class, y_attr, y_gender, y_soft, data_views, view_mix, n_states)


def _average_frames(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Mean of each run of ``stride`` consecutive frames (the last run may be shorter)."""
    if stride <= 1 or len(x) == 0:
        return x
    n = -(-len(x) // stride)
    index = torch.arange(len(x)) // stride
    return torch.zeros(n, x.shape[1]).index_add_(0, index, x) / torch.bincount(index, minlength=n)[:, None]


def _normalize(data: _Data) -> None:
    """z-normalise every modality (and its augmented views) with statistics of the clean Train
    rows (frames: of Train frames)."""
    train = np.flatnonzero(data.split == "Train")
    for m, v in data.features.items():
        if isinstance(v, StreamedFrames):
            v.set_normalization(*v.train_statistics(train))
            continue
        if getattr(v, "raw", False):
            continue  # raw inputs (fine-tuning): the encoder's processor normalises
        if torch.is_tensor(v):
            ref = v[train]
        else:
            ref = torch.cat([v[i] for i in train])
        mean, std = ref.mean(dim=0), ref.std(dim=0, unbiased=False).clamp_min(1e-5)

        def scale(x):
            return (x - mean) / std if torch.is_tensor(x) else [(f - mean) / std for f in x]
        data.features[m] = scale(v)
        if m in data.views:
            data.views[m] = [scale(x) for x in data.views[m]]


def _pad(seqs: list) -> tuple[torch.Tensor, torch.Tensor]:
    seqs = [s if len(s) else torch.zeros(1, s.shape[1]) for s in seqs]
    lengths = torch.tensor([len(s) for s in seqs])
    return (nn.utils.rnn.pad_sequence(seqs, batch_first=True),
            torch.arange(int(lengths.max()))[None, :] < lengths[:, None])


def _collate(data: _Data, rows: np.ndarray, device: torch.device, view_of_row: np.ndarray | None = None
             ) -> tuple[dict, dict]:
    """Model inputs for ``rows``: pooled ``(B, D)``, padded frames ``(B, T, D)`` + masks, or raw
    inputs (fine-tuning). ``view_of_row`` (training with augmented views): which view (0 =
    clean) each row takes; a row whose view mixed it with a partner clip gets, for modalities
    without views, the partner's features mixed in (pooled: weighted mean; frames: appended)."""
    feats, masks = {}, {}
    for m, v in data.features.items():
        if getattr(v, "raw", False):
            feats[m] = v.batch(rows)
            continue
        viewed = view_of_row is not None and m in data.views
        pick = [data.views[m][view_of_row[r] - 1] if viewed and view_of_row[r] > 0 else v for r in rows]
        partner = _partners(data, rows, view_of_row) if not viewed else None
        if torch.is_tensor(v):
            x = torch.stack([src[r] for src, r in zip(pick, rows)]) if viewed else v[rows]
            if partner is not None and (partner[0] >= 0).any():
                p, w = partner
                mixed = torch.as_tensor(w)[:, None] * x + torch.as_tensor(1 - w)[:, None] * v[np.maximum(p, 0)]
                x = torch.where(torch.as_tensor(p >= 0)[:, None], mixed, x)
            feats[m] = x.to(device)
            continue
        seqs = [src[r] for src, r in zip(pick, rows)]
        if partner is not None:
            seqs = [torch.cat([s, v[p]]) if p >= 0 else s for s, p in zip(seqs, partner[0])]
        feats[m], mask = _pad(seqs)
        feats[m], masks[m] = feats[m].to(device), mask.to(device)
    return feats, masks


def _partners(data: _Data, rows: np.ndarray, view_of_row: np.ndarray | None):
    """``(partner row or -1, weight of the row)`` for ``rows`` under their views, or ``None``."""
    if view_of_row is None or not data.view_mix:
        return None
    partner = np.full(len(rows), -1, dtype=np.int64)
    weight = np.ones(len(rows), dtype=np.float32)
    for j, r in enumerate(rows):
        v = int(view_of_row[r])
        if v > 0:
            partner[j], weight[j] = data.view_mix[v - 1][0][r], data.view_mix[v - 1][1][r]
    return partner, weight


def _targets(data: _Data, rows: np.ndarray, device: torch.device, mix=None) -> dict:
    """Targets of ``rows``; ``mix = (partner row or -1, weight)`` (clip mixing): attribute and
    soft-label targets become :math:`w y + (1-w) y_\\text{partner}`; the hard class and gender of
    a mixed row become unknown (-1), so hard-label losses skip it."""
    y_class, y_attr, y_gender = data.y_class[rows], data.y_attr[rows], data.y_gender[rows]
    y_soft = data.y_soft[rows] if data.y_soft is not None else None
    if mix is not None and (mix[0] >= 0).any():
        p, w = mix
        mixed = p >= 0
        q = np.where(mixed, p, rows)
        wa = np.where(mixed, w, 1.0).astype(np.float32)[:, None]
        y_attr = wa * y_attr + (1 - wa) * data.y_attr[q]
        if y_soft is not None:
            y_soft = wa * y_soft + (1 - wa) * data.y_soft[q]
        y_class = np.where(mixed, -1, y_class)
        y_gender = np.where(mixed & (data.y_gender[q] != y_gender), -1, y_gender)
    t = {"class": torch.as_tensor(y_class, device=device),
         "attributes": torch.as_tensor(np.asarray(y_attr, dtype=np.float32), device=device),
         "gender": torch.as_tensor(y_gender, device=device)}
    if y_soft is not None:
        t["soft"] = torch.as_tensor(np.asarray(y_soft, dtype=np.float32), device=device)
    return t


# --------------------------------------------------------------------------- augmentation

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


def _mixup_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A generator that is a pure function of ``(seed, epoch, batch index)``."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(step), 0x6D1]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def _view_draw(seed: int, epoch: int, n_rows: int, n_views: int) -> np.ndarray:
    """View (0 = clean, 1..k = augmented) of every row in one epoch, a function of ``(seed, epoch)``."""
    return np.random.default_rng([int(seed), int(epoch), 0x71E]).integers(0, n_views + 1, n_rows)


def _mixup_hook(state: dict):
    """Forward pre-hook for ``model.outputs``: mix its input rows while ``state["mix"]`` holds
    ``(lam, local permutation)``; a no-op otherwise (evaluation, unmixed batches)."""
    from ser_diag.models.augment import mix_rows

    def hook(module, args):
        if state.get("mix") is None:
            return None
        lam, perm = state["mix"]
        return (mix_rows(args[0], lam, perm),) + tuple(args[1:])

    return hook


def epoch_soft_labels(detailed: pd.DataFrame, file_names, fraction: float, seed: int, epoch: int) -> np.ndarray:
    """Soft-label targets ``(n, 8)`` of one epoch for ``file_names``: ``fraction`` of each file's
    annotators dropped (:func:`ser_diag.models.augment.drop_annotators`) with a generator seeded
    by ``(seed, epoch)``; NaN rows for files without any class vote."""
    from ser_diag.models.augment import drop_annotators

    rng = np.random.default_rng([int(seed), int(epoch), 0xA7])
    soft = drop_annotators(detailed, fraction, rng)
    return soft.reindex([str(f) for f in file_names]).loc[:, list(CLASS_CODES)].to_numpy(dtype=np.float32)


def _mixup_loss(out: dict, t: dict, config: "TrainConfig", weight, lam: float, perm: torch.Tensor):
    """Loss of a mixed batch: attribute and soft targets mixed like the representation, hard
    labels (class, gender) by interpolating the two losses."""
    from ser_diag.models.augment import mix_rows

    mixed = {k: mix_rows(v, lam, perm) if k in ("attributes", "soft") else v for k, v in t.items()}
    partner = {**mixed, **{k: t[k][perm.to(t[k].device)] for k in ("class", "gender")}}
    loss_a, parts_a = _task_loss(out, mixed, config, weight)
    loss_b, parts_b = _task_loss(out, partner, config, weight)
    parts = {k: lam * parts_a[k] + (1 - lam) * parts_b[k] for k in parts_a}
    return lam * loss_a + (1 - lam) * loss_b, parts


# --------------------------------------------------------------------------- loss

def _task_loss(out: dict, t: dict, config: TrainConfig, weight: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
    """Weighted sum of the configured task losses; every output enters the graph (unused ones
    with weight 0) so DDP sees a gradient for every parameter."""
    logits, attrs = out["logits"].float(), out["attributes"].float()
    parts = {}
    if TASK_CATEGORICAL in config.tasks:
        name = config.categorical_loss
        if name == "ce":
            parts[TASK_CATEGORICAL] = losses.weighted_cross_entropy(logits, t["class"])
        elif name == "weighted_ce":
            parts[TASK_CATEGORICAL] = losses.weighted_cross_entropy(logits, t["class"], weight)
        elif name == "focal":
            parts[TASK_CATEGORICAL] = losses.focal_loss(logits, t["class"], config.focal_gamma, alpha=weight)
        elif name == "soft_ce":
            parts[TASK_CATEGORICAL] = losses.soft_cross_entropy(logits, t["soft"], weight)
        elif name == "kld":
            parts[TASK_CATEGORICAL] = losses.kl_divergence(logits, t["soft"])
        elif name == "soft_f1":
            parts[TASK_CATEGORICAL] = losses.soft_macro_f1_loss(logits, t["class"])
        else:
            raise ValueError(f"categorical_loss must be one of {losses.CATEGORICAL_LOSSES}, not {name!r}")
    if TASK_ATTRIBUTES in config.tasks:
        ok = torch.isfinite(t["attributes"]).all(dim=1)
        pred, target = attrs[ok], t["attributes"][ok]
        name = config.attribute_loss
        if not ok.any():
            parts[TASK_ATTRIBUTES] = attrs.sum() * 0.0
        elif name == "ccc":
            parts[TASK_ATTRIBUTES] = losses.ccc_loss(pred, target)
        elif name == "mse":
            parts[TASK_ATTRIBUTES] = F.mse_loss(pred, target)
        elif name == "mean_penalty_mse":
            mp = config.mean_penalty
            parts[TASK_ATTRIBUTES] = losses.mean_penalty_mse(
                pred, target, mp.get("strength", 1.0), (mp.get("centre", 4.0) - 1) / 6, mp.get("width", 1.0) / 6)
        else:
            raise ValueError(f"attribute_loss must be one of {losses.ATTRIBUTE_LOSSES}, not {name!r}")
    if "gender" in out:
        parts["gender"] = losses.weighted_cross_entropy(out["gender"].float(), t["gender"])
    total = (logits.sum() + attrs.sum()) * 0.0
    for task, value in parts.items():
        total = total + config.task_weights.get(task, 1.0) * value
    return total, {k: float(v.detach()) for k, v in parts.items()}


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model: nn.Module, data: _Data, rows: np.ndarray, device: torch.device,
            batch_size: int = 128, amp: contextlib.AbstractContextManager | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(n, 8)`` and attributes on the 1-7 scale ``(n, 3)`` for ``rows``."""
    model.eval()
    probs, attrs = [], []
    for i in range(0, len(rows), batch_size):
        feats, masks = _collate(data, rows[i:i + batch_size], device)
        with amp or contextlib.nullcontext():
            out = model(feats, masks)
        probs.append(out["logits"].float().softmax(dim=1).cpu().numpy())
        attrs.append(out["attributes"].float().cpu().numpy())
    model.train()
    if not probs:
        return np.zeros((0, len(CLASS_CODES))), np.zeros((0, len(ATTRIBUTES)))
    return np.concatenate(probs), np.clip(np.concatenate(attrs) * 6.0 + 1.0, 1.0, 7.0)


def development_metrics(data: _Data, rows: np.ndarray, probs: np.ndarray, attrs: np.ndarray,
                        tasks) -> dict:
    """Development scores with :mod:`ser_diag.metrics` (categorical on A..N rows only); with
    both tasks also ``score = (macro_f1 + ccc_mean) / 2``, a monitor for multi-task runs."""
    out = {}
    if TASK_CATEGORICAL in tasks:
        keep = data.y_class[rows] >= 0
        true = np.asarray(CLASS_CODES)[data.y_class[rows][keep]]
        pred = np.asarray(CLASS_CODES)[probs[keep].argmax(axis=1)]
        out.update(macro_f1=metrics.macro_f1(true, pred), accuracy=metrics.accuracy(true, pred),
                   uar=metrics.unweighted_average_recall(true, pred))
    if TASK_ATTRIBUTES in tasks:
        true = data.y_attr[rows] * 6.0 + 1.0
        keep = np.isfinite(true).all(axis=1)
        cccs = [metrics.ccc(true[keep, j], attrs[keep, j]) for j in range(len(ATTRIBUTES))]
        out.update({f"ccc_{a}": c for a, c in zip(ATTRIBUTES, cccs)}, ccc_mean=float(np.mean(cccs)))
    if TASK_CATEGORICAL in tasks and TASK_ATTRIBUTES in tasks:
        out["score"] = (out["macro_f1"] + out["ccc_mean"]) / 2
    return {k: float(v) for k, v in out.items()}


def predictions_dir(out_dir, system_name: str, split: str = "Development") -> Path:
    """Folder of one system's prediction files for one split: ``predictions/<system>`` for
    Development (the diagnostics' default split), ``predictions_<split lower>/<system>`` else;
    one split per folder, so the diagnostics merge them with that split's labels unchanged."""
    folder = "predictions" if split == "Development" else f"predictions_{split.lower()}"
    return Path(out_dir) / folder / system_name


def _write_predictions(path: Path, names: np.ndarray, probs: np.ndarray, attrs: np.ndarray, tasks) -> None:
    from ser_diag.io import write_attribute_predictions, write_categorical_predictions
    path.mkdir(parents=True, exist_ok=True)
    if TASK_CATEGORICAL in tasks:
        cat = pd.DataFrame(probs, columns=list(PROB_COLUMNS))
        cat.insert(0, "EmoClass", np.asarray(CLASS_CODES)[probs.argmax(axis=1)])
        cat.insert(0, "FileName", names)
        write_categorical_predictions(cat, path / "categorical.csv")
    if TASK_ATTRIBUTES in tasks:
        att = pd.DataFrame(attrs, columns=list(ATTRIBUTES))
        att.insert(0, "FileName", names)
        write_attribute_predictions(att, path / "attributes.csv")


# --------------------------------------------------------------------------- optimisation

def _lr_lambda(config: TrainConfig, steps_per_epoch: int):
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(round(config.warmup_fraction * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if config.lr_schedule == "constant":
            return 1.0
        if config.lr_schedule == "exponential":
            return max(config.min_lr_ratio, config.lr_decay_gamma ** ((step - warmup) / steps_per_epoch))
        if config.lr_schedule == "cosine":
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        raise ValueError(f"lr_schedule must be cosine, exponential or constant, not {config.lr_schedule!r}")

    return factor


def _autocast(device: torch.device, amp: str):
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return contextlib.nullcontext(), None
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
        return torch.autocast(device.type, dtype=torch.float16), scaler
    if amp in ("bf16", "auto"):
        return torch.autocast(device.type, dtype=torch.bfloat16), None
    raise ValueError(f"amp must be auto, off, bf16 or fp16, not {amp!r}")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore :func:`_rng_state` output, wherever its tensors were loaded (generator states are
    CPU byte tensors whatever device the model is on)."""
    torch.set_rng_state(torch.as_tensor(state["torch"]).to("cpu", torch.uint8))
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.as_tensor(s).to("cpu", torch.uint8) for s in state["cuda"]])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _process_seed(seed: int, rank: int) -> int:
    """Seed of process ``rank``'s own generators (dropout): ``seed`` for process 0, a seed drawn
    from ``(seed, rank)`` for the others."""
    if rank == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), int(rank), 0xD0]).generate_state(1)[0])


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the training loop

@dataclass
class _Run:
    """State shared by :func:`_setup`, :func:`_train_epoch`, :func:`_end_epoch` and :func:`_finish`."""

    config: TrainConfig
    ctx: _Dist
    device: torch.device
    data: _Data
    train_rows: np.ndarray
    dev_rows: np.ndarray
    sampler: object
    steps_per_epoch: int
    weight: torch.Tensor
    monitor: str
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    amp: object
    scaler: object
    mixup: dict | None
    drop_fraction: float | None
    waveform: dict
    detailed: pd.DataFrame | None
    run_dir: Path
    ckpt_dir: Path
    mix_state: dict = field(default_factory=lambda: {"mix": None})
    hooks: list = field(default_factory=list)
    start_epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list = field(default_factory=list)
    last_epoch: int = -1
    t_start: float = 0.0
    mix_of: object = None   # rows -> (partner row or -1, weight) of this epoch's clip mixing, or None

    @property
    def finetuning(self) -> bool:
        return bool(self.config.finetune)

    @property
    def stopped_early(self) -> bool:
        return self.bad_epochs >= self.config.patience


def _device(config: TrainConfig, ctx: _Dist) -> torch.device:
    if config.device == "auto":
        device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device


def _setup(config: TrainConfig, ctx: _Dist, features, views, labels, soft_labels, detailed_labels) -> _Run:
    """Data, model, optimizer, schedule; restored from ``last.pt`` when ``config.resume``."""
    device = _device(config, ctx)
    labels = _labels_frame(config, labels)
    mixup, drop_fraction, waveform = _augment_settings(config.augment)
    soft_loss = config.categorical_loss in ("soft_ce", "kld") and TASK_CATEGORICAL in config.tasks
    if "mix_clips" in waveform and TASK_CATEGORICAL in config.tasks and not soft_loss:
        raise ValueError("augment mix_clips averages the labels of two clips: it needs categorical_loss "
                         f"'soft_ce' or 'kld' (or no categorical task), not {config.categorical_loss!r}")
    if drop_fraction is not None:
        if not soft_loss:
            raise ValueError("augment drop_annotators changes soft labels: it needs categorical_loss "
                             f"'soft_ce' or 'kld', not {config.categorical_loss!r}")
        if detailed_labels is None:
            from ser_diag.io import read_detailed_labels
            detailed_labels = read_detailed_labels(config.corpus)
        if soft_labels is None:
            from ser_diag.io import soft_labels as _soft_labels
            soft_labels = _soft_labels(detailed_labels)
    if soft_labels is None and soft_loss:
        soft_labels = _read_soft_labels(config.corpus)

    if config.finetune:
        from ser_diag.models.finetune import raw_inputs
        features, views = raw_inputs(config, labels), {}
    elif features is None:
        features, views = _open_feature_stores(config, ctx, labels)
    elif waveform and not views:
        train_files = sorted(labels.loc[labels["Split_Set"].astype(str) == "Train", "FileName"].astype(str))
        cache = Path(config.feature_cache or Path(config.out_dir) / "features")
        views = {m: open_augmented_views(config.corpus, spec, cache, train_files, config.augment, config.seed,
                                         config.progress and ctx.main)
                 for m, spec in config.modalities.items() if _is_audio(spec)}
    missing = sorted(set(config.modalities) - set(features))
    if missing:
        raise ValueError(f"no features for modalities {missing}")
    features = {m: features[m] for m in config.modalities}
    data = _load_data(config, features, labels, soft_labels, views)
    if config.normalize_features:
        _normalize(data)

    train_rows = np.flatnonzero(data.split == "Train")
    dev_rows = np.flatnonzero(data.split == "Development")
    include_unlabeled = config.include_unlabeled
    if include_unlabeled is None:
        include_unlabeled = TASK_ATTRIBUTES in config.tasks
    sampler = make_sampler(config.sampler, data.y_class[train_rows], config.batch_size, config.seed,
                           include_unlabeled)
    steps_per_epoch = len(global_batches(sampler.indices(0), config.batch_size, config.drop_last)) \
        // config.grad_accum_steps
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_rows)} training rows make no optimizer step with batch_size "
                         f"{config.batch_size} x grad_accum_steps {config.grad_accum_steps}")
    weight = torch.as_tensor(class_weights(class_counts(data.y_class[train_rows]), config.class_weighting),
                             dtype=torch.float32, device=device)
    monitor = config.monitor or ("macro_f1" if TASK_CATEGORICAL in config.tasks else "ccc_mean")
    if monitor not in ("macro_f1", "accuracy", "uar", "ccc_mean", "score") and not monitor.startswith("ccc_"):
        raise ValueError(f"unknown monitor {monitor!r}")

    _seed_everything(config.seed)
    if config.finetune:
        from ser_diag.models.finetune import build_finetune_model, param_groups
        model = build_finetune_model(config, data).to(device)
        groups = param_groups(model, config)
    else:
        model = _build_head(config, data).to(device)
        groups = model.parameters()
    if ctx.rank > 0:  # D5: every process draws its own dropout masks (process 0 keeps seed's stream)
        _seed_everything(_process_seed(config.seed, ctx.rank))
    mix_state, hooks = {"mix": None}, []
    if mixup is not None:
        if not isinstance(getattr(model, "outputs", None), nn.Module):
            raise ValueError(f"manifold_mixup needs a model with an 'outputs' module, not {type(model).__name__}")
        hooks.append(model.outputs.register_forward_pre_hook(_mixup_hook(mix_state)))
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, steps_per_epoch))
    amp, scaler = _autocast(device, config.amp)
    net = model
    if ctx.world_size > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                  find_unused_parameters=bool(config.finetune))
    run_dir = Path(config.out_dir) / "runs" / config.system_name
    run = _Run(config, ctx, device, data, train_rows, dev_rows, sampler, steps_per_epoch, weight, monitor, model,
               net, optimizer, scheduler, amp, scaler, mixup, drop_fraction, waveform, detailed_labels, run_dir,
               run_dir / "checkpoints", mix_state, hooks)
    if ctx.main:
        run.ckpt_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    if config.resume and (run.ckpt_dir / "last.pt").exists():
        _resume(run)
    return run


def _build_head(config: TrainConfig, data: _Data) -> nn.Module:
    """The configured head on frozen features; modalities with ``layer: "weighted"`` get learned
    softmax layer weights in front of it (:class:`LayerWeightedInputs`)."""
    kind = config.model.get("kind", "late_fusion")
    kwargs = {k: v for k, v in config.model.items() if k != "kind"}
    if kind == "baseline":
        kwargs.setdefault("level", next(iter(config.modalities.values())).get("level", "pooled"))
    layers = {m: n for m, n in data.n_states.items() if config.modalities.get(m, {}).get("layer") == "weighted"}
    dims = {m: d // layers.get(m, 1) for m, d in data.dims.items()}
    head = build_model(kind, dims, gender=config.gender_head, **kwargs)
    return LayerWeightedInputs(head, layers) if layers else head


def load_checkpoint(path, map_location="cpu") -> dict:
    """A ``last.pt``/``best.pt`` checkpoint with its model and optimizer tensors on
    ``map_location``; random-generator states always stay CPU byte tensors (``torch`` refuses
    others), so a run saved on one device resumes on another."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if str(map_location) != "cpu":
        def move(x):
            if torch.is_tensor(x):
                return x.to(map_location)
            if isinstance(x, dict):
                return {k: move(v) for k, v in x.items()}
            if isinstance(x, list):
                return [move(v) for v in x]
            return x
        for key in ("model", "optimizer"):
            if key in ckpt:
                ckpt[key] = move(ckpt[key])
    return ckpt


def _resume(run: _Run) -> None:
    ckpt = load_checkpoint(run.ckpt_dir / "last.pt", run.device)
    run.model.load_state_dict(ckpt["model"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scheduler.load_state_dict(ckpt["scheduler"])
    if run.scaler is not None and ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
    if run.ctx.rank < len(per_rank):
        _set_rng_state(per_rank[run.ctx.rank])
    else:  # more processes than saved: a fresh stream for this one
        _seed_everything(_process_seed(run.config.seed + ckpt["epoch"] + 1, run.ctx.rank))
    run.start_epoch, run.best_score, run.best_epoch = ckpt["epoch"] + 1, ckpt["best_score"], ckpt["best_epoch"]
    run.bad_epochs, run.history = ckpt["bad_epochs"], ckpt["history"]


def _epoch_inputs(run: _Run, epoch: int, batches: list):
    """Yield ``(batch, own rows, features, masks)`` and set ``run.mix_of`` for the epoch: the
    frozen path collates cached features (an augmented view per row when configured), the
    fine-tuning path loads and augments waveforms in DataLoader workers."""
    if run.finetuning:
        from ser_diag.models.finetune import epoch_loader
        yield from epoch_loader(run, epoch, batches)
        return
    view_of_row = None
    if run.data.views:
        n_views = len(next(iter(run.data.views.values())))
        view_of_row = _view_draw(run.config.seed, epoch, len(run.data.file_names), n_views)
    run.mix_of = (lambda rows: _partners(run.data, rows, view_of_row))
    for batch in batches:
        rows = shard(batch, run.ctx.rank, run.ctx.world_size)
        feats, masks = _collate(run.data, rows, run.device, view_of_row)
        yield batch, rows, feats, masks


def _train_epoch(run: _Run, epoch: int, bar) -> dict:
    """One pass over the epoch's global batches; returns the mean training losses."""
    config, ctx = run.config, run.ctx
    batches = global_batches(run.train_rows[run.sampler.indices(epoch)], config.batch_size, config.drop_last)
    batches = batches[: run.steps_per_epoch * config.grad_accum_steps]
    if run.drop_fraction is not None:
        run.data.y_soft = epoch_soft_labels(run.detailed, run.data.file_names, run.drop_fraction, config.seed, epoch)
    run.net.train()
    sums, n_batches = {}, 0
    for i, (batch, rows, feats, masks) in enumerate(_epoch_inputs(run, epoch, batches)):
        sizes = [len(s) for s in np.array_split(batch, ctx.world_size)]
        targets = _targets(run.data, batch, run.device, run.mix_of(batch))
        last_micro = (i + 1) % config.grad_accum_steps == 0
        sync = contextlib.nullcontext() if last_micro or ctx.world_size == 1 else run.net.no_sync()
        lam, perm = 1.0, None
        if run.mixup is not None:
            lam, perm = draw_mixup(sizes, run.mixup["alpha"], run.mixup["p"], _mixup_generator(config.seed, epoch, i))
            if perm is not None:
                start = sum(sizes[:ctx.rank])
                run.mix_state["mix"] = (lam, (perm[start:start + sizes[ctx.rank]] - start).to(run.device))
        with sync:
            try:
                with run.amp:
                    out = run.net(feats, masks)
            finally:
                run.mix_state["mix"] = None
            out = {k: _gather_rows(v, sizes, ctx) for k, v in out.items() if torch.is_tensor(v)}
            if perm is None:
                loss, parts = _task_loss(out, targets, config, run.weight)
            else:
                loss, parts = _mixup_loss(out, targets, config, run.weight, lam, perm.to(run.device))
            scaled = loss * ctx.world_size / config.grad_accum_steps
            (run.scaler.scale(scaled) if run.scaler else scaled).backward()
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            sums[k] = sums.get(k, 0.0) + v
        n_batches += 1
        if last_micro:
            _optimizer_step(run)
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.4f}")
    return {f"train_{k}": v / max(1, n_batches) for k, v in sums.items()}


def _optimizer_step(run: _Run) -> None:
    if run.scaler:
        run.scaler.unscale_(run.optimizer)
    if run.config.grad_clip:
        nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], run.config.grad_clip)
    if run.scaler:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()


def _end_epoch(run: _Run, epoch: int, train_losses: dict, seconds_start: float) -> None:
    """Evaluate on Development, track the best epoch, checkpoint (every process's generator
    state goes into ``last.pt``)."""
    config = run.config
    probs, attrs = predict(run.model, run.data, run.dev_rows, run.device, config.eval_batch_size, run.amp)
    dev = development_metrics(run.data, run.dev_rows, probs, attrs, config.tasks)
    score = dev.get(run.monitor, math.nan)
    improved = score > run.best_score
    if improved:
        run.best_score, run.best_epoch, run.bad_epochs = score, epoch, 0
    else:
        run.bad_epochs += 1
    run.history.append({"epoch": epoch, "step": (epoch + 1) * run.steps_per_epoch,
                        "lr": run.scheduler.get_last_lr()[0], **train_losses,
                        **{f"dev_{k}": v for k, v in dev.items()},
                        "seconds": round(time.perf_counter() - seconds_start, 3)})
    rng = _gather_objects(_rng_state(), run.ctx)
    if run.ctx.main:
        if improved:
            _atomic_save({"model": run.model.state_dict(), "epoch": epoch, "dev": dev}, run.ckpt_dir / "best.pt")
        _atomic_save({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                      "scheduler": run.scheduler.state_dict(),
                      "scaler": run.scaler.state_dict() if run.scaler else None,
                      "rng": rng[0], "rng_per_rank": rng,
                      "sampler": {**run.sampler.state_dict(), "next_epoch": epoch + 1},
                      "epoch": epoch, "best_score": run.best_score, "best_epoch": run.best_epoch,
                      "bad_epochs": run.bad_epochs, "history": run.history, "config": config.to_dict()},
                     run.ckpt_dir / "last.pt")
        (run.run_dir / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in run.history))
    run.last_epoch = epoch


def _finish(run: _Run) -> TrainResult:
    """Reload the best epoch, write the predictions of every split (process 0), the summary."""
    config, ctx = run.config, run.ctx
    for handle in run.hooks:
        handle.remove()
    if ctx.world_size > 1:
        dist.barrier()
    best_file = run.ckpt_dir / "best.pt"
    if best_file.exists():
        run.model.load_state_dict(load_checkpoint(best_file)["model"])
    finished = config.stop_after_epochs is None or run.last_epoch + 1 >= config.epochs or run.stopped_early
    written = {}
    if ctx.main and finished:
        for split in config.predict_splits:
            split_rows = np.flatnonzero(run.data.split == split)
            if len(split_rows):
                probs, attrs = predict(run.model, run.data, split_rows, run.device, config.eval_batch_size, run.amp)
                written[split] = predictions_dir(config.out_dir, config.system_name, split)
                _write_predictions(written[split], run.data.file_names[split_rows], probs, attrs, config.tasks)
    best = next((h for h in run.history if h["epoch"] == run.best_epoch), {})
    dev_best = {k[4:]: v for k, v in best.items() if k.startswith("dev_")}
    main_dir = written.get("Development", next(iter(written.values()), None))
    result = TrainResult(config.system_name, main_dir, written, run.run_dir, run.monitor, run.best_epoch,
                         float(run.best_score), dev_best, run.history, run.last_epoch + 1,
                         time.perf_counter() - run.t_start, sum(p.numel() for p in run.model.parameters()),
                         run.model, torch.get_num_threads(),
                         sum(p.numel() for p in run.model.parameters() if p.requires_grad))
    if ctx.main:
        summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                   if f.name not in ("model", "history")}
        summary["prediction_dirs"] = {k: str(v) for k, v in written.items()}
        (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return result


# --------------------------------------------------------------------------- entry points

def train(config: TrainConfig | dict, *, features: dict | None = None, labels=None,
          soft_labels: pd.DataFrame | None = None, detailed_labels: pd.DataFrame | None = None,
          feature_views: dict | None = None) -> TrainResult:
    """Train one system; return a :class:`TrainResult` (only process 0 writes files).

    ``features``: ``modality -> FeatureStore`` (or :class:`ArrayFeatures`); default: extracted
    or read from the cache as ``config.modalities`` specifies (ignored when fine-tuning).
    ``feature_views``: ``modality -> [store of augmented view 1, ...]`` for waveform
    augmentation (default: extracted from ``config.corpus`` when ``config.augment`` asks).
    ``labels``: a labels frame or a path (default ``config.corpus``). ``soft_labels``: a frame
    as :func:`ser_diag.io.soft_labels` returns (default: read from the corpus when the loss is
    ``soft_ce`` or ``kld``). ``detailed_labels``: :func:`ser_diag.io.read_detailed_labels`
    output, needed by ``augment["drop_annotators"]`` (default: read from the corpus).
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    t_start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(int(config.num_threads))
    try:
        ctx = _init_distributed()
        run = _setup(config, ctx, features, feature_views, labels, soft_labels, detailed_labels)
        run.t_start = t_start
        run.last_epoch = run.start_epoch - 1
        from tqdm.auto import tqdm
        bar = tqdm(total=config.epochs * run.steps_per_epoch, initial=run.start_epoch * run.steps_per_epoch,
                   disable=not (config.progress and ctx.main), desc=config.system_name, file=sys.stderr,
                   dynamic_ncols=True)
        for epoch in range(run.start_epoch, config.epochs):
            if run.stopped_early or (config.stop_after_epochs is not None and epoch >= config.stop_after_epochs):
                break
            t_epoch = time.perf_counter()
            _end_epoch(run, epoch, _train_epoch(run, epoch, bar), t_epoch)
        bar.close()
        return _finish(run)
    finally:
        torch.set_num_threads(previous_threads)


def train_from_config(path: str | os.PathLike) -> TrainResult:
    """Train from a JSON file holding :class:`TrainConfig` keys (paths relative to the cwd)."""
    config = TrainConfig.from_dict(json.loads(Path(path).read_text()))
    result = train(config)
    if result.predictions_dir is not None:
        print(f"{config.system_name}: best {result.monitor} {result.best_score:.4f} at epoch "
              f"{result.best_epoch}; predictions in {result.predictions_dir}", file=sys.stderr)
    return result


def attention_weights(result: TrainResult, file_names, *, corpus=None, cache_dir=None, labels=None,
                      features: dict | None = None) -> tuple[dict, dict, np.ndarray]:
    """Attention maps of a trained attention model for ``file_names``, for inspection.

    Rebuilds the inputs exactly as :func:`train` did (the run's ``config.json``: feature specs,
    frame averaging, z-normalisation with Train statistics when ``normalize_features``, padding)
    and runs the model in eval mode. Returns ``(attention, masks, names)``: the model's
    ``attention`` dict (e.g. ``audio_to_text`` of shape (n, T_audio, T_text)), the padding masks
    per modality, and the file names in row order (those of ``file_names`` the run knows, sorted
    as in training). ``features`` (modality -> store) skips opening the cached stores.
    """
    config = TrainConfig.from_dict(json.loads((Path(result.run_dir) / "config.json").read_text()))
    if features is None:
        corpus = corpus or config.corpus
        cache = Path(cache_dir or config.feature_cache or Path(config.out_dir) / "features")
        features = {m: open_feature_store(corpus, spec, cache, progress=False)
                    for m, spec in config.modalities.items()}
    data = _load_data(config, features, _labels_frame(config, labels), None)
    if config.normalize_features:
        _normalize(data)
    rows = np.flatnonzero(np.isin(data.file_names, np.asarray(list(file_names), dtype=str)))
    feats, masks = _collate(data, rows, torch.device("cpu"))
    model = result.model.to("cpu").eval()
    with torch.no_grad():
        out = model(feats, masks)
    if "attention" not in out:
        raise ValueError(f"{type(model).__name__} has no attention to show")
    return out["attention"], masks, data.file_names[rows]


__all__ = ["AUGMENTATIONS", "ArrayFeatures", "TrainConfig", "TrainResult", "attention_weights",
           "development_metrics", "epoch_soft_labels", "load_checkpoint", "open_augmented_views",
           "open_feature_store", "predict", "predictions_dir", "train", "train_from_config"]
