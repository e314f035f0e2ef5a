"""One training entry point for the reference heads on cached features (nanoGPT-lean).

``train(config)`` trains one system from cached pooled or frame features per modality and the
corpus labels, early-stops on the development metric (:mod:`ser_diag.metrics`), checkpoints
every epoch with everything an exact resume needs, and writes the system's predictions for the
Development and Test3 files in the challenge layout::

    <out_dir>/predictions/<system_name>/categorical.csv   FileName,EmoClass,P_A..P_N  (Development)
    <out_dir>/predictions/<system_name>/attributes.csv    FileName,EmoAct,EmoVal,EmoDom
    <out_dir>/predictions_test3/<system_name>/...          the same for Test3 (any other split:
                                                          predictions_<split lower case>)
    <out_dir>/runs/<system_name>/config.json, metrics.jsonl, summary.json,
                                 checkpoints/last.pt, checkpoints/best.pt

Recipe (challenge baseline): features z-normalised with Train statistics, attribute targets
scaled ``(y-1)/6``, outputs mapped back ``*6+1`` and clipped to ``[1, 7]``; AdamW, linear
warm-up then cosine or exponential decay (per optimizer step), gradient accumulation,
``torch.autocast`` (bf16/fp16 on GPU by default, off on CPU unless ``amp="bf16"``).

Distributed: under ``torchrun`` (``WORLD_SIZE > 1``) the process group is initialised from the
environment (gloo on CPU, nccl on GPU). Every process draws the same global batch (samplers
are functions of ``(seed, epoch)``) and computes a contiguous shard of it; the model outputs of
all shards are gathered in rank order, every process evaluates the loss on the whole global
batch, and the gradient flows through its own rows only (the loss is scaled by the world size
to undo DDP's gradient averaging). So ``P`` processes x ``b/P`` rows compute the gradient of
the same loss as 1 process x ``b`` rows, batch-level losses (1-CCC, soft macro-F1) included.
Dropout masks come from each process's own generator, so bitwise equality with a single
process holds only without dropout; equality is up to floating-point summation order.
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
from ser_diag.models.augment import draw_mixup
from ser_diag.models.heads import build_model
from ser_diag.models.sampling import class_counts, class_weights, global_batches, make_sampler, shard
from ser_diag.schema import ATTRIBUTES, CLASS_CODES, GENDERS, PROB_COLUMNS, TASK_ATTRIBUTES, TASK_CATEGORICAL

_CODE_INDEX = {c: i for i, c in enumerate(CLASS_CODES)}


@dataclass
class TrainConfig:
    """Everything one training run needs; JSON configs hold the same keys.

    ``modalities`` maps a modality name to a feature spec: ``{"encoder": name or path (see
    :func:`open_feature_store`), "layer": int|"weighted", "level": "pooled"|"frames",
    "frame_stride": k}`` (``frame_stride`` averages runs of k frames, e.g. 10 ms eGeMAPS
    descriptors to 100 ms; only ``level`` and ``frame_stride`` are read when feature stores are
    passed to :func:`train` directly).
    ``model`` is ``{"kind": "baseline"|"late_fusion"|"cross_attention", **head kwargs}``.

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
    eval_batch_size: int = 128
    predict_splits: tuple = ("Development", "Test3")
    resume: bool = False
    stop_after_epochs: int | None = None
    progress: bool = True
    augment: dict = field(default_factory=dict)

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


class ArrayFeatures:
    """In-memory feature store with the :class:`ser_diag.models.features.FeatureStore` read API
    (``file_names``, ``dim``, ``get``, ``get_frames``): pooled ``(n, D)`` or a list of ``(T_i, D)``."""

    def __init__(self, file_names, values):
        self.file_names = [str(f) for f in file_names]
        self._row = {f: i for i, f in enumerate(self.file_names)}
        self._values = values if isinstance(values, list) else np.asarray(values, dtype=np.float32)
        self.dim = int(self._values[0].shape[-1])

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


# --------------------------------------------------------------------------- data

@dataclass
class _Data:
    file_names: np.ndarray
    split: np.ndarray
    features: dict          # modality -> Tensor (N, D) or list of Tensor (T_i, D)
    y_class: np.ndarray     # (N,) int, -1 = O/X/unlabelled
    y_attr: np.ndarray      # (N, 3) scaled (y-1)/6, NaN where missing
    y_gender: np.ndarray    # (N,) int, -1 = unknown
    y_soft: np.ndarray | None  # (N, 8) vote distributions, NaN rows where unknown

    @property
    def dims(self) -> dict:
        return {m: int(v.shape[1] if torch.is_tensor(v) else v[0].shape[1]) for m, v in self.features.items()}


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


def open_feature_store(corpus, spec: dict, cache_dir, progress: bool = True):
    """Extract the features a modality spec names (or read them from the cache): ``spec`` =
    ``{"encoder": "egemaps"|"minilm"|"tiny-wavlm"|hub name or path, "layer": int|"weighted"|None,
    "pooling": "mean"|"mean_std", "level": "pooled"|"frames"}``
    (see :func:`ser_diag.models.encoders.load_encoder`)."""
    from ser_diag.models.encoders import load_encoder
    from ser_diag.models.features import extract_features
    encoder = load_encoder(spec["encoder"], spec.get("layer"), spec.get("pooling", "mean"))
    level = spec.get("level", "pooled")
    return extract_features(corpus, encoder, cache_dir, level=level, batch_size=spec.get("batch_size", 8),
                            progress=progress)


def _open_feature_stores(config: TrainConfig, ctx: "_Dist") -> dict:
    """Feature stores for ``config.modalities``; process 0 extracts, the others wait and read."""
    cache = Path(config.feature_cache or Path(config.out_dir) / "features")
    stores = {}
    if ctx.main:
        stores = {m: open_feature_store(config.corpus, spec, cache, config.progress)
                  for m, spec in config.modalities.items()}
    if ctx.world_size > 1:
        dist.barrier()
    if not ctx.main:
        stores = {m: open_feature_store(config.corpus, spec, cache, False) for m, spec in config.modalities.items()}
    return stores


def _load_data(config: TrainConfig, features: dict, labels: pd.DataFrame, soft: pd.DataFrame | None) -> _Data:
    splits = ("Train", "Development") + tuple(s for s in config.predict_splits if s not in ("Train", "Development"))
    labels = labels[labels["Split_Set"].astype(str).isin(splits)]
    names = labels["FileName"].astype(str).to_numpy()
    feats = {}
    for m, store in features.items():
        level = config.modalities.get(m, {}).get("level", "pooled")
        if level == "frames":
            stride = int(config.modalities.get(m, {}).get("frame_stride", 1))
            feats[m] = [_average_frames(torch.as_tensor(np.asarray(a, dtype=np.float32)), stride)
                        for a in store.get_frames(list(names))]
        elif level == "pooled":
            feats[m] = torch.as_tensor(np.asarray(store.get(list(names)), dtype=np.float32))
        else:
            raise ValueError(f"modality {m!r}: level must be 'pooled' or 'frames', not {level!r}")
    codes = labels["EmoClass"].astype(str).to_numpy()
    y_class = np.array([_CODE_INDEX.get(c, -1) for c in codes], dtype=np.int64)
    y_attr = ((labels.loc[:, list(ATTRIBUTES)].astype(float).to_numpy() - 1.0) / 6.0).astype(np.float32)
    gender = labels["Gender"].astype(object).to_numpy()
    y_gender = np.array([GENDERS.index(g) if g in GENDERS else -1 for g in gender], dtype=np.int64)
    y_soft = None
    if soft is not None:
        y_soft = soft.reindex(names).loc[:, list(CLASS_CODES)].to_numpy(dtype=np.float32)
    return _Data(names, labels["Split_Set"].astype(str).to_numpy(), feats, y_class, y_attr, y_gender, y_soft)


def _average_frames(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Mean of each run of ``stride`` consecutive frames (the last run may be shorter)."""
    if stride <= 1 or len(x) == 0:
        return x
    n = -(-len(x) // stride)
    index = torch.arange(len(x)) // stride
    return torch.zeros(n, x.shape[1]).index_add_(0, index, x) / torch.bincount(index, minlength=n)[:, None]


def _normalize(data: _Data) -> None:
    """z-normalise every modality with statistics of the Train rows (frames: of Train frames)."""
    train = np.flatnonzero(data.split == "Train")
    for m, v in data.features.items():
        if torch.is_tensor(v):
            ref = v[train]
        else:
            ref = torch.cat([v[i] for i in train])
        mean, std = ref.mean(dim=0), ref.std(dim=0, unbiased=False).clamp_min(1e-5)
        data.features[m] = (v - mean) / std if torch.is_tensor(v) else [(x - mean) / std for x in v]


def _collate(data: _Data, rows: np.ndarray, device: torch.device) -> tuple[dict, dict]:
    feats, masks = {}, {}
    for m, v in data.features.items():
        if torch.is_tensor(v):
            feats[m] = v[rows].to(device)
            continue
        seqs = [v[i] if len(v[i]) else torch.zeros(1, v[i].shape[1]) for i in rows]
        lengths = torch.tensor([len(s) for s in seqs])
        feats[m] = nn.utils.rnn.pad_sequence(seqs, batch_first=True).to(device)
        masks[m] = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).to(device)
    return feats, masks


def _targets(data: _Data, rows: np.ndarray, device: torch.device) -> dict:
    t = {"class": torch.as_tensor(data.y_class[rows], device=device),
         "attributes": torch.as_tensor(data.y_attr[rows], device=device),
         "gender": torch.as_tensor(data.y_gender[rows], device=device)}
    if data.y_soft is not None:
        t["soft"] = torch.as_tensor(data.y_soft[rows], device=device)
    return t


# --------------------------------------------------------------------------- augmentation

AUGMENTATIONS = ("manifold_mixup", "drop_annotators")


def _augment_settings(augment: dict) -> tuple[dict | None, float | None]:
    """``(mixup {"p", "alpha"} or None, drop fraction or None)`` from ``TrainConfig.augment``."""
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
    return mixup, drop


def _mixup_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A generator that is a pure function of ``(seed, epoch, batch index)``."""
    state = np.random.SeedSequence([int(seed), int(epoch), int(step), 0x6D1]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


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
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- entry points

def train(config: TrainConfig | dict, *, features: dict | None = None, labels=None,
          soft_labels: pd.DataFrame | None = None, detailed_labels: pd.DataFrame | None = None) -> TrainResult:
    """Train one system; return a :class:`TrainResult` (only process 0 writes files).

    ``features``: ``modality -> FeatureStore`` (or :class:`ArrayFeatures`); default: extracted
    or read from the cache as ``config.modalities`` specifies. ``labels``: a labels frame or a
    path (default ``config.corpus``). ``soft_labels``: a frame as
    :func:`ser_diag.io.soft_labels` returns (default: read from the corpus when the loss is
    ``soft_ce`` or ``kld``). ``detailed_labels``: :func:`ser_diag.io.read_detailed_labels` output,
    needed by ``augment["drop_annotators"]`` (default: read from the corpus).
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    t_start = time.perf_counter()
    ctx = _init_distributed()
    if config.device == "auto":
        device = torch.device(f"cuda:{ctx.local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)

    labels = _labels_frame(config, labels)
    if features is None:
        features = _open_feature_stores(config, ctx)
    missing = sorted(set(config.modalities) - set(features))
    if missing:
        raise ValueError(f"no features for modalities {missing}")
    features = {m: features[m] for m in config.modalities}
    mixup, drop_fraction = _augment_settings(config.augment)
    soft_loss = config.categorical_loss in ("soft_ce", "kld") and TASK_CATEGORICAL in config.tasks
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
    data = _load_data(config, features, labels, soft_labels)
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
    model_kwargs = {k: v for k, v in config.model.items() if k != "kind"}
    if config.model.get("kind", "late_fusion") == "baseline":
        model_kwargs.setdefault("level", next(iter(config.modalities.values())).get("level", "pooled"))
    model = build_model(config.model.get("kind", "late_fusion"), data.dims, gender=config.gender_head,
                        **model_kwargs).to(device)
    n_parameters = sum(p.numel() for p in model.parameters())
    mix_state: dict = {"mix": None}
    if mixup is not None:
        if not isinstance(getattr(model, "outputs", None), nn.Module):
            raise ValueError(f"manifold_mixup needs a model with an 'outputs' module, not {type(model).__name__}")
        mixup_handle = model.outputs.register_forward_pre_hook(_mixup_hook(mix_state))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, steps_per_epoch))
    amp, scaler = _autocast(device, config.amp)
    net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if ctx.world_size > 1 else model

    run_dir = Path(config.out_dir) / "runs" / config.system_name
    ckpt_dir = run_dir / "checkpoints"
    if ctx.main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))

    start_epoch, best_score, best_epoch, bad_epochs, history = 0, -math.inf, -1, 0, []
    if config.resume and (ckpt_dir / "last.pt").exists():
        ckpt = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        start_epoch, best_score, best_epoch = ckpt["epoch"] + 1, ckpt["best_score"], ckpt["best_epoch"]
        bad_epochs, history = ckpt["bad_epochs"], ckpt["history"]

    from tqdm.auto import tqdm
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch,
               disable=not (config.progress and ctx.main), desc=config.system_name, file=sys.stderr,
               dynamic_ncols=True)
    last_epoch = start_epoch - 1
    stopped_early = bad_epochs >= config.patience
    for epoch in range(start_epoch, config.epochs):
        if stopped_early or (config.stop_after_epochs is not None and epoch >= config.stop_after_epochs):
            break
        t_epoch = time.perf_counter()
        batches = global_batches(train_rows[sampler.indices(epoch)], config.batch_size, config.drop_last)
        batches = batches[: steps_per_epoch * config.grad_accum_steps]
        if drop_fraction is not None:
            data.y_soft = epoch_soft_labels(detailed_labels, data.file_names, drop_fraction, config.seed, epoch)
        net.train()
        sums, n_batches = {}, 0
        for i, batch in enumerate(batches):
            sizes = [len(s) for s in np.array_split(batch, ctx.world_size)]
            rows = shard(batch, ctx.rank, ctx.world_size)
            feats, masks = _collate(data, rows, device)
            targets = _targets(data, batch, device)
            last_micro = (i + 1) % config.grad_accum_steps == 0
            sync = contextlib.nullcontext() if last_micro or ctx.world_size == 1 else net.no_sync()
            lam, perm = 1.0, None
            if mixup is not None:
                lam, perm = draw_mixup(sizes, mixup["alpha"], mixup["p"], _mixup_generator(config.seed, epoch, i))
                if perm is not None:
                    start = sum(sizes[:ctx.rank])
                    mix_state["mix"] = (lam, (perm[start:start + sizes[ctx.rank]] - start).to(device))
            with sync:
                try:
                    with amp:
                        out = net(feats, masks)
                finally:
                    mix_state["mix"] = None
                out = {k: _gather_rows(v, sizes, ctx) for k, v in out.items() if torch.is_tensor(v)}
                if perm is None:
                    loss, parts = _task_loss(out, targets, config, weight)
                else:
                    loss, parts = _mixup_loss(out, targets, config, weight, lam, perm.to(device))
                scaled = loss * ctx.world_size / config.grad_accum_steps
                (scaler.scale(scaled) if scaler else scaled).backward()
            for k, v in {"loss": float(loss.detach()), **parts}.items():
                sums[k] = sums.get(k, 0.0) + v
            n_batches += 1
            if last_micro:
                if scaler:
                    scaler.unscale_(optimizer)
                if config.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.4f}")

        probs, attrs = predict(model, data, dev_rows, device, config.eval_batch_size, amp)
        dev = development_metrics(data, dev_rows, probs, attrs, config.tasks)
        score = dev.get(monitor, math.nan)
        improved = score > best_score
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
        else:
            bad_epochs += 1
        history.append({"epoch": epoch, "step": (epoch + 1) * steps_per_epoch, "lr": scheduler.get_last_lr()[0],
                        **{f"train_{k}": v / max(1, n_batches) for k, v in sums.items()},
                        **{f"dev_{k}": v for k, v in dev.items()},
                        "seconds": round(time.perf_counter() - t_epoch, 3)})
        if ctx.main:
            if improved:
                _atomic_save({"model": model.state_dict(), "epoch": epoch, "dev": dev}, ckpt_dir / "best.pt")
            _atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                          "rng": _rng_state(),
                          "sampler": {**sampler.state_dict(), "next_epoch": epoch + 1},
                          "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch,
                          "bad_epochs": bad_epochs, "history": history, "config": config.to_dict()},
                         ckpt_dir / "last.pt")
            (run_dir / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history))
        last_epoch = epoch
        stopped_early = bad_epochs >= config.patience
    bar.close()
    if mixup is not None:
        mixup_handle.remove()
    if ctx.world_size > 1:
        dist.barrier()

    best_file = ckpt_dir / "best.pt"
    if best_file.exists():
        model.load_state_dict(torch.load(best_file, map_location=device, weights_only=False)["model"])
    finished = config.stop_after_epochs is None or last_epoch + 1 >= config.epochs or stopped_early
    written = {}
    if ctx.main and finished:
        for split in config.predict_splits:
            split_rows = np.flatnonzero(data.split == split)
            if len(split_rows):
                probs, attrs = predict(model, data, split_rows, device, config.eval_batch_size, amp)
                written[split] = predictions_dir(config.out_dir, config.system_name, split)
                _write_predictions(written[split], data.file_names[split_rows], probs, attrs, config.tasks)
    best = next((h for h in history if h["epoch"] == best_epoch), {})
    dev_best = {k[4:]: v for k, v in best.items() if k.startswith("dev_")}
    main_dir = written.get("Development", next(iter(written.values()), None))
    result = TrainResult(config.system_name, main_dir, written, run_dir, monitor, best_epoch, float(best_score),
                         dev_best, history, last_epoch + 1, time.perf_counter() - t_start, n_parameters, model)
    if ctx.main:
        summary = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)
                   if f.name not in ("model", "history")}
        summary["prediction_dirs"] = {k: str(v) for k, v in written.items()}
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return result


def train_from_config(path: str | os.PathLike) -> TrainResult:
    """Train from a JSON file holding :class:`TrainConfig` keys (paths relative to the cwd)."""
    config = TrainConfig.from_dict(json.loads(Path(path).read_text()))
    result = train(config)
    if result.predictions_dir is not None:
        print(f"{config.system_name}: best {result.monitor} {result.best_score:.4f} at epoch "
              f"{result.best_epoch}; predictions in {result.predictions_dir}", file=sys.stderr)
    return result


__all__ = ["AUGMENTATIONS", "ArrayFeatures", "TrainConfig", "TrainResult", "development_metrics", "epoch_soft_labels",
           "open_feature_store", "predict",
           "predictions_dir",
           "train", "train_from_config"]


def attention_weights(result: TrainResult, file_names, *, corpus=None, cache_dir=None, labels=None,
                      features: dict | None = None) -> tuple[dict, dict, np.ndarray]:
    """Attention maps of a trained attention model for ``file_names``, for inspection.

    Rebuilds the inputs exactly as :func:`train` did (the run's ``config.json``: feature specs,
    frame averaging, z-normalisation with Train statistics, padding) and runs the model in
    eval mode. Returns ``(attention, masks, names)``: the model's ``attention`` dict (e.g.
    ``audio_to_text`` of shape (n, T_audio, T_text)), the padding masks per modality, and the
    file names in row order (those of ``file_names`` the run knows, sorted as in training).
    ``features`` (modality -> store) skips opening the cached stores.
    """
    config = TrainConfig.from_dict(json.loads((Path(result.run_dir) / "config.json").read_text()))
    if features is None:
        corpus = corpus or config.corpus
        cache = Path(cache_dir or config.feature_cache or Path(config.out_dir) / "features")
        features = {m: open_feature_store(corpus, spec, cache, progress=False)
                    for m, spec in config.modalities.items()}
    data = _load_data(config, features, _labels_frame(config, labels), None)
    _normalize(data)
    rows = np.flatnonzero(np.isin(data.file_names, np.asarray(list(file_names), dtype=str)))
    feats, masks = _collate(data, rows, torch.device("cpu"))
    model = result.model.to("cpu").eval()
    with torch.no_grad():
        out = model(feats, masks)
    if "attention" not in out:
        raise ValueError(f"{type(model).__name__} has no attention to show")
    return out["attention"], masks, data.file_names[rows]
