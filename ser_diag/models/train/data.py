"""Training data: labels and feature stores (opened from, or extracted into, the feature cache),
the in-memory table of features and targets (:class:`_Data`), frame features streamed from the
memory-mapped cache (:class:`StreamedFrames`), z-normalisation, batch collation and targets,
the per-epoch draws of augmented views and soft labels, and :func:`attention_weights`, which
rebuilds a run's inputs as training did.

Imports :mod:`.config` and :mod:`.distributed`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn

from ser_diag.models.train.config import TrainConfig, TrainResult, _augment_settings, attribute_bounds
from ser_diag.models.train.distributed import _Dist
from ser_diag.schema import GENDERS
from ser_diag.vocabulary import MSP_PODCAST, Vocabulary


def class_index(vocabulary: Vocabulary = MSP_PODCAST) -> dict:
    """Label code -> class index ``0..K-1`` in the vocabulary's order (merged codes, e.g.
    IEMOCAP's ``excited``, count as their class); any other code is unlabelled (-1)."""
    index = {c: i for i, c in enumerate(vocabulary.classes)}
    index.update({code: index[target] for code, target in vocabulary.merged.items()})
    return index


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


@dataclass
class _Data:
    file_names: np.ndarray
    split: np.ndarray
    features: dict          # modality -> Tensor (N, D), list of Tensor (T_i, D), or RawInputs
    y_class: np.ndarray     # (N,) int, -1 = O/X/unlabelled (codes the vocabulary does not score)
    y_attr: np.ndarray      # (N, A) scaled (y - low) / (high - low) (MSP: (y-1)/6), NaN where missing
    y_gender: np.ndarray    # (N,) int, -1 = unknown
    y_soft: np.ndarray | None  # (N, K) vote distributions, NaN rows where unknown
    views: dict = field(default_factory=dict)   # modality -> [view 1, view 2, ...] like features
    view_mix: list = field(default_factory=list)  # per view: (partner row (N,) or -1, weight of the row (N,))
    n_states: dict = field(default_factory=dict)  # modality -> stacked hidden states (1: one layer)
    vocabulary: Vocabulary = MSP_PODCAST

    @property
    def dims(self) -> dict:
        return {m: int(v.shape[1] if torch.is_tensor(v) else v[0].shape[1] if isinstance(v, list) else v.dim)
                for m, v in self.features.items()}


def _labels_frame(config: TrainConfig, labels) -> pd.DataFrame:
    if labels is not None:
        return labels if isinstance(labels, pd.DataFrame) else _read_labels(labels, config.corpus_vocabulary)
    if config.corpus is None:
        raise ValueError("config.corpus (corpus root or labels file) is needed when no labels are passed")
    return _read_labels(config.corpus, config.corpus_vocabulary)


def _read_labels(path, vocabulary: Vocabulary = MSP_PODCAST) -> pd.DataFrame:
    """MSP-Podcast labels (:func:`ser_diag.io.read_labels`), or another corpus' labels CSV or
    audformat database read into the internal layout by :mod:`ser_diag.io.corpora`."""
    if vocabulary == MSP_PODCAST:
        from ser_diag.io import read_labels
        return read_labels(path)
    from ser_diag.io import corpora
    if corpora.is_audformat(path) and hasattr(corpora, "read_database"):
        return corpora.read_database(path, vocabulary=vocabulary)[0]
    if not corpora.is_audformat(path) and hasattr(corpora, "read_corpus_labels"):
        return corpora.read_corpus_labels(path, vocabulary)
    raise ValueError(f"{path}: pass the labels of corpus {vocabulary.name} as a frame (labels=...); "
                     "this version of ser_diag.io cannot read them")


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
    vocabulary = config.corpus_vocabulary
    index = class_index(vocabulary)
    codes = labels["EmoClass"].astype(str).to_numpy()
    y_class = np.array([index.get(c, -1) for c in codes], dtype=np.int64)
    attributes = list(vocabulary.attribute_names)
    missing = [a for a in attributes if a not in labels.columns]
    if missing:
        raise ValueError(f"labels have no column {missing[0]!r}, an attribute of vocabulary {vocabulary.name}")
    low, span = attribute_bounds(vocabulary)
    y_attr = ((labels.loc[:, attributes].astype(float).to_numpy() - low) / span).astype(np.float32)
    gender = labels["Gender"].astype(object).to_numpy() if "Gender" in labels else np.full(len(labels), None)
    y_gender = np.array([GENDERS.index(g) if g in GENDERS else -1 for g in gender], dtype=np.int64)
    y_soft = None
    if soft is not None:
        y_soft = soft.reindex(names).loc[:, list(vocabulary.classes)].to_numpy(dtype=np.float32)
    return _Data(names, split, feats, y_class, y_attr, y_gender, y_soft, data_views, view_mix, n_states,
                 vocabulary)


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


# --------------------------------------------------------------------------- per-epoch draws

def _view_draw(seed: int, epoch: int, n_rows: int, n_views: int) -> np.ndarray:
    """View (0 = clean, 1..k = augmented) of every row in one epoch, a function of ``(seed, epoch)``."""
    return np.random.default_rng([int(seed), int(epoch), 0x71E]).integers(0, n_views + 1, n_rows)


def epoch_soft_labels(detailed: pd.DataFrame, file_names, fraction: float, seed: int, epoch: int,
                      classes=None) -> np.ndarray:
    """Soft-label targets ``(n, K)`` (``classes``, default MSP-Podcast's 8 codes) of one epoch for ``file_names``: ``fraction`` of each file's
    annotators dropped (:func:`ser_diag.models.augment.drop_annotators`) with a generator seeded
    by ``(seed, epoch)``; NaN rows for files without any class vote."""
    from ser_diag.models.augment import drop_annotators

    rng = np.random.default_rng([int(seed), int(epoch), 0xA7])
    soft = drop_annotators(detailed, fraction, rng)
    classes = MSP_PODCAST.classes if classes is None else classes
    return soft.reindex([str(f) for f in file_names]).loc[:, list(classes)].to_numpy(dtype=np.float32)


# --------------------------------------------------------------------------- inspection

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
