"""Extract encoder features once, cache them on disk, read them back by FileName.

Layout of a cache (one per encoder key and level)::

    <cache_dir>/<encoder.key>/<level>/spec.json            FeatureSpec: how the features were made
    <cache_dir>/<encoder.key>/<level>/shard-000000-<id>.npy   float32 features: (n, dim) pooled
                                                              rows, or (sum T_i, dim) frames
    <cache_dir>/<encoder.key>/<level>/shard-000000-<id>.json  its FileNames (and frame counts)

A shard counts only once its ``.json`` manifest exists; both files are written to temporary names
and renamed into place, manifest last, so an interrupted extraction leaves only whole shards and a
second call resumes with the files not yet cached. Completed batches are flushed to a shard when
an extraction is interrupted by an exception.

Inputs come from an MSP-Podcast layout corpus: audio from ``Audios/<FileName>`` (mono, resampled
to the encoder's rate if needed, cut at ``max_seconds``, raw [-1, 1] for encoders whose processor
normalises itself -- every speech encoder here and eGeMAPS), text
from ``Transcripts/<stem>.txt`` — a missing transcript is encoded as the empty string (about 2%
of MSP-Podcast turns have none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import tempfile
import uuid
from math import gcd
from pathlib import Path

import numpy as np

from ser_diag.errors import InputError

LEVELS = ("pooled", "frames")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What a cache holds; a cache is only extended with features made the same way."""

    encoder_key: str
    level: str
    modality: str
    dim: int
    normalize: str = "none"
    max_seconds: float | None = 12.0
    sample_rate: int = 16_000
    n_states: int = 1          # hidden states side by side in each vector (layer "weighted")
    augment: str = ""          # augmented view: the augmentation settings, seed and view number

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        return cls(**json.loads(text))


def store_path(cache_dir: str | os.PathLike, encoder_key: str, level: str) -> Path:
    """Folder of the cache for ``encoder_key`` at ``level`` under ``cache_dir``."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    return Path(cache_dir) / encoder_key / level


def _atomic_save(path: Path, write) -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it to ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


class FeatureStore:
    """Read access to one feature cache folder (see the module docstring).

    ``file_names`` (sorted), ``dim``, ``level``, ``encoder_key``, ``spec``;
    ``get(file_names)`` -> ``(n, dim)`` pooled features in the order asked;
    ``get_frames(file_names)`` -> list of ``(T_i, dim)`` frame arrays (frames level).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        spec_file = self.path / "spec.json"
        if not spec_file.is_file():
            raise FileNotFoundError(f"{self.path} is not a feature cache (no spec.json)")
        self.spec = FeatureSpec.from_json(spec_file.read_text(encoding="utf-8"))
        self._shards: list[str] = []
        self._index: dict[str, tuple[int, int, int]] = {}  # name -> (shard, start row, n rows)
        for manifest in sorted(self.path.glob("shard-*.json")):
            entry = json.loads(manifest.read_text(encoding="utf-8"))
            shard = len(self._shards)
            self._shards.append(manifest.stem)
            lengths = entry.get("lengths") or [1] * len(entry["file_names"])
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
            for name, start, n in zip(entry["file_names"], starts, lengths):
                self._index[name] = (shard, int(start), int(n))
        self._arrays: dict[int, np.ndarray] = {}

    encoder_key = property(lambda self: self.spec.encoder_key)
    level = property(lambda self: self.spec.level)
    dim = property(lambda self: self.spec.dim)
    n_states = property(lambda self: self.spec.n_states)

    @property
    def mix(self) -> dict:
        """Augmented views with clip mixing: ``{file: [partner file, weight of file, weight of
        partner]}`` for the files mixed (``mix.json``); ``{}`` otherwise."""
        path = self.path / "mix.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def file_names(self) -> list[str]:
        return sorted(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, file_name: str) -> bool:
        return file_name in self._index

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.path)!r}, n={len(self)}, level={self.level!r}, dim={self.dim})"

    def _array(self, shard: int) -> np.ndarray:
        if shard not in self._arrays:
            self._arrays[shard] = np.load(self.path / f"{self._shards[shard]}.npy", mmap_mode="r")
        return self._arrays[shard]

    def _locate(self, file_names) -> list[tuple[int, int, int]]:
        names = self.file_names if file_names is None else [str(f) for f in file_names]
        missing = [f for f in names if f not in self._index]
        if missing:
            raise KeyError(f"{len(missing)} file(s) not in {self.path}, e.g. {missing[:3]}")
        return [self._index[f] for f in names]

    def get(self, file_names=None) -> np.ndarray:
        """Pooled features ``(n, dim)`` float32 for ``file_names`` (default: all, sorted)."""
        if self.level != "pooled":
            raise ValueError(f"{self.path} holds frames; use get_frames()")
        rows = np.array([(shard, start) for shard, start, _ in self._locate(file_names)],
                        dtype=np.int64).reshape(-1, 2)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        for shard in np.unique(rows[:, 0]):
            here = rows[:, 0] == shard
            out[here] = self._array(int(shard))[rows[here, 1]]
        return out

    def get_frames(self, file_names=None) -> list[np.ndarray]:
        """Frame features, one ``(T_i, dim)`` float32 array per file (default: all, sorted)."""
        if self.level != "frames":
            raise ValueError(f"{self.path} holds pooled features; use get()")
        return [np.array(self._array(shard)[start:start + n]) for shard, start, n in
                self._locate(file_names)]

    def lengths(self, file_names=None) -> np.ndarray:
        """Number of frames per file (1 for pooled features)."""
        return np.array([n for _, _, n in self._locate(file_names)], dtype=np.int64)


def read_audio(path: str | os.PathLike, sample_rate: int = 16_000,
               max_seconds: float | None = 12.0) -> np.ndarray:
    """Mono float32 wave at ``sample_rate`` (polyphase resampling if the file differs), cut at
    ``max_seconds``."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(path, message="audio file not found")
    wave, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sr != sample_rate:
        from scipy.signal import resample_poly

        g = gcd(int(sr), int(sample_rate))
        wave = resample_poly(wave, sample_rate // g, sr // g).astype(np.float32)
    if max_seconds is not None:
        wave = wave[: int(round(max_seconds * sample_rate))]
    return np.ascontiguousarray(wave, dtype=np.float32)


def normalize_wave(wave: np.ndarray, normalize: str | tuple[float, float] | None = "clip") -> np.ndarray:
    """z-normalise a wave: per clip (``"clip"``), with given ``(mean, std)`` (e.g. train
    statistics, as the challenge baseline does), or not at all (``None``).

    >>> normalize_wave(np.array([1.0, 3.0]), "clip").tolist()
    [-1.0, 1.0]
    """
    if normalize is None or normalize == "none":
        return wave.astype(np.float32)
    if normalize == "clip":
        mean, std = float(wave.mean()), float(wave.std())
    else:
        mean, std = (float(v) for v in normalize)
    return ((wave - mean) / max(std, 1e-7)).astype(np.float32)


def read_transcript(corpus_root: str | os.PathLike, file_name: str) -> str:
    """``Transcripts/<stem>.txt`` as one stripped line; missing transcript -> ``""``."""
    path = Path(corpus_root) / "Transcripts" / f"{Path(file_name).stem}.txt"
    if not path.is_file():
        return ""
    return " ".join(path.read_text(encoding="utf-8", errors="replace").split())


def audio_length(path: str | os.PathLike, sample_rate: int = 16_000,
                 max_seconds: float | None = 12.0) -> int:
    """Number of samples :func:`read_audio` will return, from the file header only."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(path, message="audio file not found")
    info = sf.info(str(path))
    n = int(round(info.frames * sample_rate / info.samplerate))
    return n if max_seconds is None else min(n, int(round(max_seconds * sample_rate)))


def plan_batches(lengths, batch_size: int = 8, bucket_by_length: bool = True) -> list[np.ndarray]:
    """Index batches: longest first when bucketing (similar lengths share a batch, and memory
    peaks on the first batch), input order otherwise.

    >>> [b.tolist() for b in plan_batches([3, 9, 1, 8], batch_size=2)]
    [[1, 3], [0, 2]]
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable") if bucket_by_length else np.arange(len(lengths))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def padding_fraction(lengths, batches) -> float:
    """Share of padded positions: :math:`1 - \\sum_i L_i / \\sum_b |b| \\max_{i \\in b} L_i`.

    >>> round(padding_fraction([3, 9, 1, 8], [np.array([0, 1]), np.array([2, 3])]), 4)  # 1 - 21/34
    0.3824
    """
    lengths = np.asarray(lengths, dtype=float)
    total = sum(len(b) * lengths[b].max() for b in batches if len(b))
    return float(1.0 - lengths.sum() / total) if total else 0.0


def corpus_file_names(corpus_root: str | os.PathLike) -> list[str]:
    """All ``Audios/*.wav`` names, or ``Transcripts/*.txt`` stems + ``.wav`` without audio."""
    root = Path(corpus_root)
    if (root / "Audios").is_dir():
        return sorted(p.name for p in (root / "Audios").glob("*.wav"))
    if (root / "Transcripts").is_dir():
        return sorted(f"{p.stem}.wav" for p in (root / "Transcripts").glob("*.txt"))
    raise InputError(root, message="no Audios/ or Transcripts/ folder: not an MSP-Podcast layout corpus")


def _normalize_tag(normalize) -> str:
    if normalize is None or normalize == "none":
        return "none"
    if normalize == "clip":
        return "clip"
    mean, std = (float(v) for v in normalize)
    return f"stats(mean={mean!r},std={std!r})"


class _ShardWriter:
    """Buffers encoded items and writes them as atomic shards."""

    def __init__(self, path: Path, level: str, shard_size: int):
        self.path, self.level, self.shard_size = path, level, shard_size
        taken = [int(m.group(1)) for p in path.glob("shard-*") if (m := re.match(r"shard-(\d+)", p.name))]
        self.next_id = max(taken, default=-1) + 1
        self.names: list[str] = []
        self.features: list[np.ndarray] = []

    def add(self, names, features) -> None:
        self.names.extend(names)
        self.features.extend(np.asarray(f, dtype=np.float32) for f in features)
        if len(self.names) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        if not self.names:
            return
        stem = f"shard-{self.next_id:06d}-{uuid.uuid4().hex[:8]}"  # unique even if two writers race"
        if self.level == "frames":
            array = np.concatenate(self.features, axis=0)
            manifest = {"file_names": self.names, "lengths": [len(f) for f in self.features]}
        else:
            array = np.stack(self.features)
            manifest = {"file_names": self.names}
        _atomic_save(self.path / f"{stem}.npy", lambda fh: np.save(fh, array))
        _atomic_save(self.path / f"{stem}.json", lambda fh: fh.write(json.dumps(manifest).encode()))
        self.next_id += 1
        self.names, self.features = [], []


def egemaps_functionals_and_llds(wave: np.ndarray, sample_rate: int = 16_000) -> tuple[np.ndarray, np.ndarray]:
    """The 88 eGeMAPS v02 functionals ``(88,)`` and the 25 low-level descriptors ``(T, 25)`` of
    one clip from a single openSMILE run (its multi-sink output config), identical to
    :func:`ser_diag.models.encoders.egemaps_features` and ``EGemapsEncoder.encode(..., "frames")``,
    which run openSMILE once per level."""
    from opensmile.core.config import config
    from opensmile.core.lib import OpenSMILE

    reference = _egemaps_reference()
    options = reference._options()
    options.pop("sinkLevel", None)
    root = reference.default_config_root
    options.update(sink=os.path.join(root, config.EXTERNAL_OUTPUT_MULTI_CONFIG), sinkLevelLLD="lld",
                   sinkLevelFunc="func", source=os.path.join(root, config.EXTERNAL_INPUT_CONFIG),
                   sampleRate=int(sample_rate), nBits=16)
    smile = OpenSMILE()
    smile.initialize(config_file=reference.config_path, options=options, loglevel=reference.loglevel,
                     log_file=reference.logfile, debug=reference.verbose)
    llds, functionals = [], []
    smile.external_sink_set_callback_ex("extsinklld", lambda data, meta: llds.append(data.copy()))
    smile.external_sink_set_callback_ex("extsinkfunc", lambda data, meta: functionals.append(data.copy()))
    # as opensmile.Smile.process_signal: float wave -> 16-bit integers
    smile.external_audio_source_write_data("extsource", bytes((np.asarray(wave, np.float32) * 32768).astype(np.int16)))
    smile.external_audio_source_set_eoi("extsource")
    smile.run()
    smile.free()
    if not functionals:  # as opensmile does for a segment too short: NaN functionals
        functionals.append(np.full(len(reference.feature_names), np.nan))
    return (np.vstack(functionals).reshape(-1).astype(np.float32),
            np.vstack(llds).astype(np.float32) if llds else np.zeros((0, 25), np.float32))


@functools.lru_cache(maxsize=1)
def _egemaps_reference():
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                           feature_level=opensmile.FeatureLevel.Functionals)


def encode_levels(encoder, batch, levels) -> dict:
    """``{level: encoder output}`` for several levels from one encoder pass where possible:
    eGeMAPS functionals + descriptors from one openSMILE run
    (:func:`egemaps_functionals_and_llds`); transformer encoders (``pooling`` attribute) pool
    their own frames (:func:`ser_diag.models.encoders.pool_frames`) instead of a second forward
    pass; any other encoder is called once per level."""
    levels = tuple(levels)
    if len(levels) == 1:
        return {levels[0]: encoder.encode(batch, level=levels[0])}
    from ser_diag.models.encoders import EGemapsEncoder, pool_states

    if isinstance(encoder, EGemapsEncoder):
        pairs = [egemaps_functionals_and_llds(w, encoder.sample_rate) for w in batch]
        both = {"pooled": np.stack([p for p, _ in pairs]), "frames": [f for _, f in pairs]}
        return {level: both[level] for level in levels}
    if hasattr(encoder, "pooling") and set(levels) == set(LEVELS):
        import torch

        n_states = getattr(encoder, "stacked_states", 1)
        frames = encoder.encode(batch, level="frames")
        pooled = np.stack([pool_states(torch.from_numpy(f)[None], torch.ones(1, len(f), dtype=torch.bool),
                                       encoder.pooling, n_states)[0].numpy() for f in frames])
        return {"frames": frames, "pooled": pooled}
    return {level: encoder.encode(batch, level=level) for level in levels}


def extract_features(corpus_root: str | os.PathLike, encoder, cache_dir: str | os.PathLike,
                     file_names=None, level: str = "pooled", batch_size: int = 8,
                     bucket_by_length: bool = True, progress: bool = True,
                     normalize: str | tuple[float, float] | None = "auto",
                     max_seconds: float | None = 12.0, shard_size: int = 256) -> FeatureStore:
    """Encode every file of ``corpus_root`` (or ``file_names``) not yet cached and return the store.

    ``encoder``: anything from :mod:`ser_diag.models.encoders` (``key``, ``modality``, ``dim``,
    ``pooled_dim``, ``encode(batch, level)``). Audio goes through :func:`read_audio` and
    :func:`normalize_wave` (``normalize="auto"``: per clip only for an encoder that says
    ``normalize_audio = True``; eGeMAPS and the speech encoders, whose processors normalise
    themselves, get the raw wave; or ``"clip"``, ``(mean, std)``, ``None``);
    text through :func:`read_transcript`. Batches of ``batch_size`` items are formed by length
    (:func:`plan_batches`) unless ``bucket_by_length=False``. Cached files are skipped (a fully
    cached corpus returns the store without calling the encoder), so calling again after an
    interruption resumes. Raises ``ValueError`` if the cache was made with other settings,
    :class:`~ser_diag.errors.InputError` for a missing audio file.
    """
    return extract_feature_levels(corpus_root, encoder, cache_dir, file_names, (level,), batch_size,
                                  bucket_by_length, progress, normalize, max_seconds, shard_size)[level]


def extract_feature_levels(corpus_root: str | os.PathLike, encoder, cache_dir: str | os.PathLike,
                           file_names=None, levels=LEVELS, batch_size: int = 8,
                           bucket_by_length: bool = True, progress: bool = True,
                           normalize: str | tuple[float, float] | None = "auto",
                           max_seconds: float | None = 12.0, shard_size: int = 256,
                           view: tuple | None = None) -> dict:
    """:func:`extract_features` for several ``levels`` at once: each file is read and encoded
    once for all the levels it still misses (:func:`encode_levels`), e.g. eGeMAPS functionals
    and descriptors in one openSMILE pass, or MiniLM tokens and their mean in one forward pass.
    Returns ``{level: FeatureStore}``; each level is its own cache, as :func:`extract_features`
    writes it. ``view = (tag, transform)`` (augmented views, :func:`extract_augmented_views`):
    every wave goes through ``transform(file_name, wave)`` and the cache key gets ``tag``."""
    from tqdm.auto import tqdm

    root = Path(corpus_root)
    levels = tuple(dict.fromkeys(levels))
    names = corpus_file_names(root) if file_names is None else list(dict.fromkeys(str(f) for f in file_names))
    modality = encoder.modality
    if modality not in ("audio", "text"):
        raise ValueError(f"unknown encoder modality {modality!r}")
    sample_rate = int(getattr(encoder, "sample_rate", 16_000))
    if normalize == "auto":
        normalize = "clip" if getattr(encoder, "normalize_audio", False) else None
    tag, transform = view if view is not None else ("", None)
    done, paths = {}, {}
    for level in levels:
        spec = FeatureSpec(
            encoder_key=encoder.key, level=level, modality=modality,
            dim=int(encoder.pooled_dim if level == "pooled" else encoder.dim),
            normalize=_normalize_tag(normalize) if modality == "audio" else "none",
            max_seconds=max_seconds if modality == "audio" else None,
            sample_rate=sample_rate if modality == "audio" else 0,
            n_states=int(getattr(encoder, "stacked_states", 1)), augment=tag)
        key = encoder.key + (f"-aug-{hashlib.sha1(tag.encode()).hexdigest()[:10]}" if tag else "")
        path = paths[level] = store_path(cache_dir, key, level)
        path.mkdir(parents=True, exist_ok=True)
        spec_file = path / "spec.json"
        if spec_file.is_file():
            cached = FeatureSpec.from_json(spec_file.read_text(encoding="utf-8"))
            if cached != spec:
                raise ValueError(f"{path} holds features made with {cached}, not {spec}; "
                                 "use another cache_dir")
        else:
            _atomic_save(spec_file, lambda fh: fh.write(spec.to_json().encode()))
        done[level] = FeatureStore(path)

    todo = [f for f in names if any(f not in done[level] for level in levels)]
    if not todo:  # everything cached: no encoder call, no tokenizer call on an empty list
        return done
    if modality == "audio":
        lengths = [audio_length(root / "Audios" / f, sample_rate, max_seconds) for f in todo]
        items = None
    else:
        items = [read_transcript(root, f) for f in todo]
        lengths = encoder.token_counts(items) if hasattr(encoder, "token_counts") else [len(t) for t in items]

    writers = {level: _ShardWriter(paths[level], level, shard_size) for level in levels}
    bar = tqdm(total=len(todo), desc=f"features {encoder.key} ({'+'.join(levels)})", disable=not progress,
               unit="file")
    try:
        for batch in plan_batches(lengths, batch_size, bucket_by_length):
            batch_names = [todo[i] for i in batch]
            if modality == "audio":
                inputs = [read_audio(root / "Audios" / f, sample_rate, max_seconds) for f in batch_names]
                if transform is not None:
                    inputs = [transform(f, w) for f, w in zip(batch_names, inputs)]
                inputs = [normalize_wave(w, normalize) for w in inputs]
            else:
                inputs = [items[i] for i in batch]
            needed = [level for level in levels if any(f not in done[level] for f in batch_names)]
            for level, outputs in encode_levels(encoder, inputs, needed).items():
                keep = [j for j, f in enumerate(batch_names) if f not in done[level]]
                writers[level].add([batch_names[j] for j in keep], [outputs[j] for j in keep])
            bar.update(len(batch))
    finally:
        for writer in writers.values():
            writer.flush()
        bar.close()
    return {level: FeatureStore(paths[level]) for level in levels}


def extract_augmented_views(corpus_root: str | os.PathLike, encoder, cache_dir: str | os.PathLike,
                            train_files, settings: dict, seed: int, level: str = "pooled", file_names=None,
                            batch_size: int = 8, progress: bool = True, max_seconds: float | None = 12.0) -> list:
    """Encode ``settings["views"]`` augmented copies of the Train files and cache each as its own
    feature set (frozen-feature training draws a view per row and epoch); returns one
    :class:`FeatureStore` per view.

    View ``v`` of file ``f`` is :func:`ser_diag.models.augment.augment_waveform` with a
    generator seeded by ``(seed, v, f)``; a mixing partner is drawn from ``train_files``. The
    partners and label weights go to the view's ``mix.json`` (:attr:`FeatureStore.mix`).
    ``file_names``: encode only these Train files (a process's share); default all of them.
    """
    from ser_diag.models.augment import augment_waveform, plan_augmentation
    from ser_diag.models.augment import file_seed

    root = Path(corpus_root)
    train_files = sorted(str(f) for f in train_files)
    sample_rate = int(getattr(encoder, "sample_rate", 16_000))
    stores = []
    for v in range(1, int(settings.get("views", 2)) + 1):
        plans = {f: plan_augmentation(settings, np.random.default_rng(file_seed(seed, v, f)), train_files, f)
                 for f in train_files}

        def transform(f, wave, plans=plans, v=v):
            rng = np.random.default_rng(file_seed(seed, v, f) + [1])
            plan = plans[f]
            partner = (read_audio(root / "Audios" / plan["partner"], sample_rate, max_seconds)
                       if "partner" in plan else None)
            return augment_waveform(wave, sample_rate, plan, rng, partner)

        tag = json.dumps({"settings": settings, "seed": int(seed), "view": v}, sort_keys=True)
        store = extract_feature_levels(root, encoder, cache_dir, file_names if file_names is not None else train_files,
                                       (level,), batch_size, True, progress, "auto", max_seconds,
                                       view=(tag, transform))[level]
        mix = {f: [p["partner"], p["weight"], 1.0 - p["weight"]] for f, p in plans.items() if "partner" in p}
        if mix and not (store.path / "mix.json").is_file():
            _atomic_save(store.path / "mix.json", lambda fh: fh.write(json.dumps(mix, sort_keys=True).encode()))
        stores.append(store)
    return stores
