"""The one training loop: :func:`train` = :func:`_setup` (data, model, optimizer, schedule;
resumed from ``last.pt``), per epoch :func:`_train_epoch` and :func:`_end_epoch` (evaluate on
Development, early stopping, checkpoints), then :func:`_finish` (best epoch's predictions,
summary). Also the task losses, evaluation (:func:`predict`, :func:`development_metrics`), the
learning-rate schedule and mixed precision.

Recipe (challenge baseline): attribute targets scaled ``(y-1)/6``, outputs mapped back ``*6+1``
and clipped to ``[1, 7]`` (any other corpus: its vocabulary's ``(y - low) / (high - low)``,
mapped back and clipped to ``[low, high]``; class heads sized by its classes, see
:class:`~ser_diag.models.train.config.TrainConfig`); AdamW, linear warm-up then cosine or
exponential decay (per optimizer step), gradient accumulation, ``torch.autocast`` (bf16/fp16
on GPU by default, off on CPU unless ``amp="bf16"``). torch runs on ``num_threads`` threads
(default 1, as the reference pipeline: on a shared 2-core machine one thread was about 6x faster
per cross-attention epoch than two competing for the cores, ``bench/bench_pipeline.py``).

Imports :mod:`.config`, :mod:`.distributed`, :mod:`.data` and :mod:`.checkpoints`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
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
from ser_diag.models.heads import LayerWeightedInputs, build_model
from ser_diag.models.sampling import class_counts, class_weights, global_batches, make_sampler, shard
from ser_diag.models.train.checkpoints import (_resume, _save_checkpoints, _write_predictions, load_checkpoint,
                                               predictions_dir)
from ser_diag.models.train.config import (TrainConfig, TrainResult, _augment_settings, attribute_bounds,
                                          effective_tasks)
from ser_diag.models.train.data import (_collate, _Data, _is_audio, _labels_frame, _load_data, _normalize,
                                        _open_feature_stores, _partners, _read_soft_labels, _targets,
                                        _view_draw, epoch_soft_labels, open_augmented_views)
from ser_diag.models.train.distributed import (_device, _Dist, _gather_rows, _init_distributed,
                                               _process_seed, _seed_everything)
from ser_diag.schema import TASK_ATTRIBUTES, TASK_CATEGORICAL
from ser_diag.vocabulary import Vocabulary, preset


def _preset_or_none(name: str) -> Vocabulary | None:
    """The preset vocabulary called ``name``, or None."""
    try:
        return preset(name)
    except ValueError:
        return None


# --------------------------------------------------------------------------- mixup

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
            centre, width = _mean_penalty_scaled(mp, config.corpus_vocabulary, pred)
            parts[TASK_ATTRIBUTES] = losses.mean_penalty_mse(pred, target, mp.get("strength", 1.0), centre, width)
        else:
            raise ValueError(f"attribute_loss must be one of {losses.ATTRIBUTE_LOSSES}, not {name!r}")
    if "gender" in out:
        parts["gender"] = losses.weighted_cross_entropy(out["gender"].float(), t["gender"])
    total = (logits.sum() + attrs.sum()) * 0.0
    for task, value in parts.items():
        total = total + config.task_weights.get(task, 1.0) * value
    return total, {k: float(v.detach()) for k, v in parts.items()}


def _mean_penalty_scaled(mp: dict, vocabulary: Vocabulary, pred: torch.Tensor):
    """``mean_penalty``'s centre and width (on the attributes' scale; default the midpoint and
    a sixth of the scale) on the scaled targets: numbers when every attribute has one scale
    (MSP-Podcast: ``(4 - 1) / 6`` and ``1 / 6``), per-attribute tensors otherwise."""
    low, span = attribute_bounds(vocabulary)
    centre = np.asarray(mp.get("centre", np.nan), dtype=np.float64)
    centre = np.where(np.isnan(centre), low + span / 2, centre)
    width = np.asarray(mp.get("width", np.nan), dtype=np.float64)
    width = np.where(np.isnan(width), span / 6, width)
    centre, width = (centre - low) / span, width / span
    if np.all(centre == centre[0]) and np.all(width == width[0]):
        return float(centre[0]), float(width[0])
    return (torch.as_tensor(centre, dtype=pred.dtype, device=pred.device),
            torch.as_tensor(width, dtype=pred.dtype, device=pred.device))


def _scale_back(attrs: np.ndarray, vocabulary: Vocabulary) -> np.ndarray:
    """Model outputs on the vocabulary's attribute scales: ``x * span + low`` clipped to
    ``[low, high]`` (float32 as the outputs; MSP-Podcast: ``x * 6 + 1`` in ``[1, 7]``)."""
    low, span = (b.astype(np.float32) for b in attribute_bounds(vocabulary))
    return np.clip(attrs * span + low, low, low + span)


# --------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model: nn.Module, data: _Data, rows: np.ndarray, device: torch.device,
            batch_size: int = 128, amp: contextlib.AbstractContextManager | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(n, K)`` and attributes on their scales ``(n, A)`` for ``rows``
    (the vocabulary of ``data``; MSP-Podcast: 8 classes, 3 attributes on 1-7)."""
    model.eval()
    probs, attrs = [], []
    for i in range(0, len(rows), batch_size):
        feats, masks = _collate(data, rows[i:i + batch_size], device)
        with amp or contextlib.nullcontext():
            out = model(feats, masks)
        probs.append(out["logits"].float().softmax(dim=1).cpu().numpy())
        attrs.append(out["attributes"].float().cpu().numpy())
    model.train()
    vocabulary = data.vocabulary
    if not probs:
        return np.zeros((0, len(vocabulary.classes))), np.zeros((0, len(vocabulary.attributes)))
    return np.concatenate(probs), _scale_back(np.concatenate(attrs), vocabulary)


def development_metrics(data: _Data, rows: np.ndarray, probs: np.ndarray, attrs: np.ndarray,
                        tasks) -> dict:
    """Development scores with :mod:`ser_diag.metrics` (categorical on the rows of scored
    classes only, macro-F1 over the vocabulary's classes); with both tasks also ``score =
    (macro_f1 + ccc_mean) / 2``, a monitor for multi-task runs."""
    out = {}
    vocabulary = data.vocabulary
    classes = np.asarray(vocabulary.classes)
    if TASK_CATEGORICAL in tasks:
        keep = data.y_class[rows] >= 0
        true = classes[data.y_class[rows][keep]]
        pred = classes[probs[keep].argmax(axis=1)]
        out.update(macro_f1=metrics.macro_f1(true, pred, labels=vocabulary.classes),
                   accuracy=metrics.accuracy(true, pred),
                   uar=metrics.unweighted_average_recall(true, pred, labels=vocabulary.classes))
    if TASK_ATTRIBUTES in tasks and vocabulary.attributes:
        low, span = (b.astype(np.float32) for b in attribute_bounds(vocabulary))
        true = data.y_attr[rows] * span + low
        keep = np.isfinite(true).all(axis=1)
        names = vocabulary.attribute_names
        cccs = [metrics.ccc(true[keep, j], attrs[keep, j]) for j in range(len(names))]
        out.update({f"ccc_{a}": c for a, c in zip(names, cccs)}, ccc_mean=float(np.mean(cccs)))
    if TASK_CATEGORICAL in tasks and TASK_ATTRIBUTES in tasks:
        out["score"] = (out["macro_f1"] + out["ccc_mean"]) / 2
    return {k: float(v) for k, v in out.items()}


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


def _setup(config: TrainConfig, ctx: _Dist, features, views, labels, soft_labels, detailed_labels) -> _Run:
    """Data, model, optimizer, schedule; restored from ``last.pt`` when ``config.resume``."""
    vocabulary = config.corpus_vocabulary
    # a preset stays its name; a file or data becomes the value (config.json records it whole)
    named = config.vocabulary is None or (isinstance(config.vocabulary, str) and vocabulary is _preset_or_none(
        config.vocabulary))
    config = dataclasses.replace(config, tasks=effective_tasks(config.tasks, vocabulary),
                                 vocabulary=config.vocabulary if named else vocabulary)
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
    counts = class_counts(data.y_class[train_rows], len(vocabulary.classes))
    weight = torch.as_tensor(class_weights(counts, config.class_weighting),
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
    kwargs.setdefault("n_classes", len(data.vocabulary.classes))
    kwargs.setdefault("n_attributes", len(data.vocabulary.attributes))
    head = build_model(kind, dims, gender=config.gender_head, **kwargs)
    return LayerWeightedInputs(head, layers) if layers else head


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
        run.data.y_soft = epoch_soft_labels(run.detailed, run.data.file_names, run.drop_fraction, config.seed, epoch,
                                            run.data.vocabulary.classes)
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
    _save_checkpoints(run, epoch, dev, improved)
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
                _write_predictions(written[split], run.data.file_names[split_rows], probs, attrs, config.tasks,
                                   run.data.vocabulary)
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
