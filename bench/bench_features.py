"""Benchmark the feature cache (standalone script; prints timings and ratios, not a test).

(a) Training epochs from the on-disk feature cache vs re-encoding the audio (or transcripts)
    every epoch, for a tiny random WavLM, eGeMAPS and the offline MiniLM text encoder, over the
    synthetic demo corpus (``ser_diag.models.corpus.make_corpus``; sine/noise clips in the same
    layout if that module is missing). The head is a small MLP regressing arousal.
(b) Length-bucketed extraction vs unsorted batches on clips of 0.5-12 s: time ratio (best of 3
    interleaved runs), the share of padded samples, and the ratio of samples pushed through the
    encoder (machine-independent).

    python bench/bench_features.py [--n 60] [--epochs 3] [--clips 48]

Timings are wall clock (per-epoch medians) on whatever machine runs it; the tiny encoder is a lower bound on the
saving (a real WavLM-large costs far more per clip than the head).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from ser_diag.models import encoders as enc
from ser_diag.models import features as feat

SR = 16_000


def synth_corpus(root: Path, seconds, seed: int = 0) -> Path:
    """Sine + noise clips of the given durations in MSP-Podcast layout (Audios/, Transcripts/)."""
    rng = np.random.default_rng(seed)
    (root / "Audios").mkdir(parents=True)
    (root / "Transcripts").mkdir()
    for i, s in enumerate(seconds):
        t = np.arange(int(s * SR)) / SR
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(90, 260) * t) + 0.03 * rng.standard_normal(len(t))
        name = f"MSP-PODCAST_9000_{i:04d}"
        sf.write(root / "Audios" / f"{name}.wav", wave.astype(np.float32), SR)
        (root / "Transcripts" / f"{name}.txt").write_text(f"synthetic clip number {i}\n")
    return root


def demo_corpus(root: Path, n: int) -> Path:
    try:
        from ser_diag.models.corpus import make_corpus
    except ImportError:
        rng = np.random.default_rng(0)
        return synth_corpus(root, rng.uniform(1.5, 5.0, n))
    return make_corpus(root, n=n, seed=0)


def targets(root: Path, names) -> np.ndarray:
    labels_file = root / "Labels" / "labels_consensus.csv"
    if labels_file.is_file():
        import pandas as pd

        labels = pd.read_csv(labels_file).set_index("FileName")
        return ((labels.loc[list(names), "EmoAct"].to_numpy(float) - 1) / 6).astype(np.float32)
    return np.random.default_rng(0).uniform(0, 1, len(names)).astype(np.float32)


def train_epoch(head, optimizer, x: np.ndarray, y: np.ndarray, batch: int = 16) -> None:
    x, y = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    for i in range(0, len(x), batch):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(head(x[i:i + batch]).squeeze(-1), y[i:i + batch])
        loss.backward()
        optimizer.step()


def encode_all(root: Path, encoder, names, batch_size: int = 8) -> np.ndarray:
    """What a pipeline without a cache does every epoch: read, normalise, encode."""
    if encoder.modality == "text":
        items = [feat.read_transcript(root, f) for f in names]
        return np.concatenate([encoder.encode(items[i:i + batch_size], "pooled")
                               for i in range(0, len(items), batch_size)])
    normalize = "clip" if encoder.normalize_audio else None
    waves = [feat.normalize_wave(feat.read_audio(root / "Audios" / f), normalize) for f in names]
    lengths = [len(w) for w in waves]
    out = np.empty((len(names), encoder.pooled_dim), dtype=np.float32)
    for batch in feat.plan_batches(lengths, batch_size):
        out[batch] = encoder.encode([waves[i] for i in batch], "pooled")
    return out


def bench_cache(root: Path, cache: Path, encoder, epochs: int) -> dict:
    names = feat.corpus_file_names(root)
    y = targets(root, names)

    def fresh_head():
        torch.manual_seed(0)
        head = torch.nn.Sequential(torch.nn.Linear(encoder.pooled_dim, 64), torch.nn.ReLU(),
                                   torch.nn.Linear(64, 1))
        return head, torch.optim.AdamW(head.parameters(), lr=1e-3)

    head, optimizer = fresh_head()
    reencode = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch(head, optimizer, encode_all(root, encoder, names), y)
        reencode.append(time.perf_counter() - start)

    start = time.perf_counter()
    store = feat.extract_features(root, encoder, cache, progress=False)
    extract = time.perf_counter() - start
    head, optimizer = fresh_head()
    cached = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch(head, optimizer, feat.FeatureStore(store.path).get(names), y)
        cached.append(time.perf_counter() - start)
    reencode, cached = float(np.median(reencode)), float(np.median(cached))
    return {"encoder": encoder.key, "files": len(names), "reencode_epoch_s": reencode,
            "extract_once_s": extract, "cached_epoch_s": cached, "ratio": reencode / cached}


def bench_bucketing(root: Path, cache: Path, encoder, batch_size: int = 8, repeats: int = 3) -> dict:
    """Best of ``repeats`` interleaved runs each (fresh cache every run)."""
    names = feat.corpus_file_names(root)
    lengths = [feat.audio_length(root / "Audios" / f) for f in names]
    times = {True: np.inf, False: np.inf}
    for r in range(repeats):
        for bucket in (True, False):
            start = time.perf_counter()
            feat.extract_features(root, encoder, cache / f"{bucket}-{r}", batch_size=batch_size,
                                  bucket_by_length=bucket, progress=False)
            times[bucket] = min(times[bucket], time.perf_counter() - start)
    padding = {b: feat.padding_fraction(lengths, feat.plan_batches(lengths, batch_size, b))
               for b in (True, False)}
    return {"encoder": encoder.key, "clips": len(names), "batch_size": batch_size,
            "bucketed_s": times[True], "unsorted_s": times[False],
            "ratio": times[False] / times[True],
            "padding_bucketed": padding[True], "padding_unsorted": padding[False],
            # samples pushed through the encoder, unsorted / bucketed (machine-independent)
            "work_ratio": (1 - padding[True]) / (1 - padding[False])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=60, help="demo corpus size for (a)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--clips", type=int, default=48, help="variable-length clips for (b)")
    parser.add_argument("--encoders", default="tiny-wavlm,egemaps,minilm")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        corpus = demo_corpus(tmp / "corpus", args.n)
        print(f"corpus: {args.n} files in {time.perf_counter() - start:.1f} s ({corpus})")
        print("\n(a) training epoch from the feature cache vs re-encoding every epoch")
        print(f"{'encoder':<24}{'files':>6}{'re-encode/epoch':>17}{'extract once':>14}"
              f"{'cached/epoch':>14}{'ratio':>9}")
        for name in args.encoders.split(","):
            r = bench_cache(corpus, tmp / "cache", enc.load_encoder(name), args.epochs)
            print(f"{r['encoder']:<24}{r['files']:>6}{r['reencode_epoch_s']:>16.3f}s"
                  f"{r['extract_once_s']:>13.3f}s{r['cached_epoch_s']:>13.4f}s{r['ratio']:>8.0f}x")

        print("\n(b) length-bucketed vs unsorted extraction (clips 0.5-12 s)")
        seconds = np.random.default_rng(1).uniform(0.5, 12.0, args.clips)
        clips = synth_corpus(tmp / "clips", seconds)
        r = bench_bucketing(clips, tmp / "bucket-cache", enc.tiny_speech_encoder("wavlm"))
        print(f"{r['encoder']}: {r['clips']} clips, batch {r['batch_size']}: bucketed "
              f"{r['bucketed_s']:.2f} s (padding {r['padding_bucketed']:.1%}), unsorted "
              f"{r['unsorted_s']:.2f} s (padding {r['padding_unsorted']:.1%}), "
              f"speed-up {r['ratio']:.2f}x; samples encoded unsorted/bucketed {r['work_ratio']:.2f}x")


if __name__ == "__main__":
    main()
