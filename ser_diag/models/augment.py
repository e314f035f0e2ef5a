"""Data augmentation used by challenge teams: waveform noise and reverberation (numpy), SAIL-style
two-clip mixing with averaged labels, annotator dropping for soft labels (SAIL), and manifold mixup
on features (NTUA; torch)."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import torch

from ser_diag.io import soft_labels
from ser_diag.schema import CLASS_CODES


def file_seed(seed: int, epoch: int, file_name: str) -> list[int]:
    """Seed words for one file's augmentation in one epoch (or view): independent of the batch,
    the shard and the number of processes."""
    return [int(seed), int(epoch), zlib.crc32(str(file_name).encode()), 0xA06]

_EPS = 1e-12


def signal_power(wave: np.ndarray) -> float:
    """Mean square :math:`P = \\frac1n \\sum_t x_t^2`."""
    return float(np.mean(np.square(np.asarray(wave, dtype=np.float64))))


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """:math:`10 \\log_{10}(P_\\text{clean} / P_\\text{noise})`.

    >>> round(snr_db(np.ones(4), 0.1 * np.ones(4)), 6)
    20.0
    """
    return float(10.0 * np.log10(signal_power(clean) / max(signal_power(noise), _EPS)))


def add_noise(wave: np.ndarray, snr: float, rng: np.random.Generator,
              noise: np.ndarray | None = None) -> np.ndarray:
    """Add ``noise`` (a recording, tiled/cut to the clip; default white Gaussian) scaled so that
    :func:`snr_db` of the clip against the added noise is exactly ``snr`` dB.
    A random offset into ``noise`` is drawn from ``rng``."""
    wave = np.asarray(wave, dtype=np.float32)
    n = len(wave)
    if noise is None:
        noise = rng.standard_normal(n)
    else:
        noise = np.asarray(noise, dtype=np.float64).reshape(-1)
        start = int(rng.integers(len(noise)))
        noise = np.resize(np.roll(noise, -start), n)
    gain = np.sqrt(signal_power(wave) / max(signal_power(noise), _EPS) / 10.0 ** (snr / 10.0))
    return (wave + gain * noise).astype(np.float32)


def synthetic_impulse_response(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Room impulse response: a unit direct path followed by Gaussian noise under an exponential
    envelope whose energy falls by 60 dB in ``rt60`` seconds,
    :math:`h(t) = n(t)\\, 10^{-3 t / T_{60}}`; length ``rt60`` seconds, unit energy."""
    n = max(int(round(rt60 * sr)), 1)
    t = np.arange(n) / sr
    ir = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir ** 2))


def add_reverb(wave: np.ndarray, sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with :func:`synthetic_impulse_response`; same length and RMS as the input."""
    from scipy.signal import fftconvolve

    wave = np.asarray(wave, dtype=np.float32)
    wet = fftconvolve(wave.astype(np.float64), synthetic_impulse_response(sr, rt60, rng))[: len(wave)]
    wet *= np.sqrt(signal_power(wave) / max(signal_power(wet), _EPS))
    return wet.astype(np.float32)


def mix_clips(a: np.ndarray, b: np.ndarray, sr: int, max_overlap_s: float = 2.0,
              rng: np.random.Generator | None = None, weighting: str = "equal"
              ) -> tuple[np.ndarray, np.ndarray]:
    """SAIL-style mixing: ``b`` starts before ``a`` ends, overlapping by ``U(0, max_overlap_s)``
    seconds (at most the shorter clip); overlapping samples are summed.

    Returns ``(mixed, weights)`` with ``weights = [w_a, w_b]`` summing to 1 for
    :func:`mix_labels`: ``"equal"`` (0.5, 0.5; label averaging as SAIL describes) or
    ``"duration"`` (each clip's share of the summed durations).
    """
    rng = np.random.default_rng() if rng is None else rng
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    max_overlap = min(int(round(max_overlap_s * sr)), len(a), len(b))
    overlap = int(rng.integers(0, max_overlap + 1))
    mixed = np.zeros(len(a) + len(b) - overlap, dtype=np.float32)
    mixed[: len(a)] += a
    mixed[len(a) - overlap:] += b
    if weighting == "equal":
        weights = np.array([0.5, 0.5])
    elif weighting == "duration":
        weights = np.array([len(a), len(b)], dtype=float) / (len(a) + len(b))
    else:
        raise ValueError(f"weighting must be 'equal' or 'duration', got {weighting!r}")
    return mixed, weights


def mix_labels(y_a, y_b, weights) -> np.ndarray:
    """Weighted average :math:`w_a y_a + w_b y_b` of two label vectors (soft class distributions,
    one-hot codes or A/V/D scores).

    >>> mix_labels([1.0, 0.0], [0.0, 1.0], [0.25, 0.75]).tolist()
    [0.25, 0.75]
    """
    w_a, w_b = np.asarray(weights, dtype=float)
    return w_a * np.asarray(y_a, dtype=float) + w_b * np.asarray(y_b, dtype=float)


def drop_annotators(detailed: pd.DataFrame, fraction: float = 0.2,
                    rng: np.random.Generator | None = None) -> pd.DataFrame:
    """SAIL label augmentation: per file drop ``fraction`` of its annotators at random
    (stochastic rounding of ``fraction * n``, so the expected share is ``fraction``) and recompute
    the soft labels with :func:`ser_diag.io.soft_labels`.

    At least one annotator with an 8-class vote is always kept, so every file that had a
    distribution keeps one. ``detailed``: :func:`ser_diag.io.read_detailed_labels` output.
    Returns index ``FileName``, columns ``A..N`` (rows sum to 1) and ``n_votes``.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    rng = np.random.default_rng() if rng is None else rng
    table = detailed[["FileName", "EmoClass"]].reset_index(drop=True)
    key = rng.random(len(table))
    # The class vote with the highest key in each file sorts last and so is never dropped.
    is_class = table["EmoClass"].isin(CLASS_CODES).to_numpy()
    class_key = pd.Series(np.where(is_class, key, -1.0))
    protected = is_class & (class_key.groupby(table["FileName"].to_numpy()).transform("max").to_numpy() == key)
    order = np.lexsort((key + protected, table["FileName"].to_numpy().astype(str)))
    table = table.iloc[order]
    files = table["FileName"].to_numpy()
    rank = table.groupby(files).cumcount().to_numpy()
    n = table.groupby(files)["FileName"].transform("size").to_numpy()
    per_file = pd.Series(rng.random(len(np.unique(files))), index=np.unique(files))
    n_drop = np.minimum(np.floor(fraction * n + per_file.reindex(files).to_numpy()), n - 1)
    return soft_labels(table.loc[rank >= n_drop])


def _beta_sample(alpha: float, generator: torch.Generator | None) -> float:
    """Beta(alpha, alpha) draw by inverse CDF of a uniform from ``generator``."""
    from scipy.special import betaincinv

    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    return float(betaincinv(alpha, alpha, u))


def draw_mixup(sizes, alpha: float = 0.2, p: float = 0.3,
               generator: torch.Generator | None = None) -> tuple[float, torch.Tensor | None]:
    """The random part of :func:`manifold_mixup`: with probability ``p`` a mixing weight
    :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)` and a partner permutation, else
    ``(1.0, None)``.

    ``sizes``: the batch size, or a list of shard sizes (one per process of a distributed run):
    then every row's partner is drawn from its own shard (a block-diagonal permutation of the
    whole batch), so each process can mix its own rows and the targets of the gathered batch
    are mixed the same way.

    >>> lam, perm = draw_mixup([2, 3], p=1.0, generator=torch.Generator().manual_seed(0))
    >>> sorted(perm[:2].tolist()), sorted(perm[2:].tolist())
    ([0, 1], [2, 3, 4])
    """
    if float(torch.rand((), generator=generator)) >= p:
        return 1.0, None
    lam = _beta_sample(alpha, generator)
    sizes = [int(sizes)] if np.ndim(sizes) == 0 else [int(n) for n in sizes]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    perm = torch.cat([int(o) + torch.randperm(n, generator=generator) for o, n in zip(offsets, sizes)])
    return lam, perm


def manifold_mixup(h: torch.Tensor, y, alpha: float = 0.2, p: float = 0.3,
                   generator: torch.Generator | None = None):
    """Manifold mixup before the head (Verma et al. 2019; NTUA: ``p=0.3``, Beta(0.2, 0.2)).

    With probability ``p``: draw :math:`\\lambda \\sim \\mathrm{Beta}(\\alpha, \\alpha)` and a batch
    permutation :math:`\\pi`, return :math:`\\lambda h + (1-\\lambda) h_\\pi` and the same mix of the
    targets ``y`` (a float tensor, e.g. soft labels or A/V/D, or a tuple/list of them).
    Otherwise return the inputs unchanged with :math:`\\lambda = 1`.
    Returns ``(h_mixed, y_mixed, lam)``. (Training wires it in through
    ``TrainConfig.augment["manifold_mixup"]``, see :mod:`ser_diag.models.train`.)
    """
    lam, perm = draw_mixup(h.shape[0], alpha, p, generator)
    if perm is None:
        return h, y, 1.0
    perm = perm.to(h.device)

    def mix(t: torch.Tensor) -> torch.Tensor:
        return mix_rows(t, lam, perm)

    y_mixed = type(y)(mix(t) for t in y) if isinstance(y, (tuple, list)) else mix(y)
    return mix(h), y_mixed, lam


def mix_rows(t: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """:math:`\\lambda t + (1-\\lambda) t_\\pi` along the first axis.

    >>> mix_rows(torch.tensor([0.0, 4.0]), 0.25, torch.tensor([1, 0])).tolist()
    [3.0, 1.0]
    """
    return lam * t + (1.0 - lam) * t[perm.to(t.device)]


# --------------------------------------------------------------------------- waveform augmentation in training

WAVEFORM_AUGMENTATIONS = ("noise", "reverb", "mix_clips")
_WAVEFORM_DEFAULTS = {"noise": {"p": 0.5, "snr_db": [5.0, 20.0]},
                      "reverb": {"p": 0.3, "rt60": [0.2, 0.8]},
                      "mix_clips": {"p": 0.3, "max_overlap_s": 2.0}}


def waveform_settings(augment: dict) -> dict:
    """The waveform part of a training ``augment`` config with defaults filled in:
    ``{"noise": {"p", "snr_db": [lo, hi]}, "reverb": {"p", "rt60": [lo, hi]},
    "mix_clips": {"p", "max_overlap_s"}, "views": k}`` (only the augmentations named; ``true``
    takes the defaults; ``views`` defaults to 2). ``{}`` when none is named.

    >>> waveform_settings({"noise": {"snr_db": [10, 10]}})
    {'noise': {'p': 0.5, 'snr_db': [10.0, 10.0]}, 'views': 2}
    """
    out = {}
    for name in WAVEFORM_AUGMENTATIONS:
        value = (augment or {}).get(name)
        if value is None or value is False:
            continue
        value = {} if value is True else dict(value)
        bad = sorted(set(value) - set(_WAVEFORM_DEFAULTS[name]))
        if bad:
            raise ValueError(f"augment {name} takes {sorted(_WAVEFORM_DEFAULTS[name])}, not {bad}")
        merged = {**_WAVEFORM_DEFAULTS[name], **value}
        out[name] = {k: [float(x) for x in v] if isinstance(v, (list, tuple)) else float(v) for k, v in merged.items()}
        if not 0.0 <= out[name]["p"] <= 1.0:
            raise ValueError(f"augment {name}: p must be in [0, 1], got {out[name]['p']}")
    if out:
        out["views"] = int((augment or {}).get("views", 2))
    return out


def plan_augmentation(settings: dict, rng: np.random.Generator, candidates=None, own=None) -> dict:
    """Draw which augmentations one clip gets: ``{"partner": file, "weight": 0.5,
    "overlap": u, "rt60": s, "snr_db": d}`` (keys only for those drawn, each with its ``p``).
    The partner is drawn from ``candidates`` (never ``own``); SAIL's label weights are equal."""
    plan = {}
    mix = settings.get("mix_clips")
    if mix and candidates is not None and len(candidates) > 1 and rng.random() < mix["p"]:
        import bisect
        j = int(rng.integers(len(candidates) - 1))  # candidates sorted; skip ``own``
        k = bisect.bisect_left(candidates, own) if own is not None else len(candidates)
        own_there = k < len(candidates) and candidates[k] == own
        partner = candidates[j + 1] if own_there and j >= k else candidates[j]
        plan.update(partner=partner, weight=0.5, overlap=float(rng.random()))
    if settings.get("reverb") and rng.random() < settings["reverb"]["p"]:
        plan["rt60"] = float(rng.uniform(*settings["reverb"]["rt60"]))
    if settings.get("noise") and rng.random() < settings["noise"]["p"]:
        plan["snr_db"] = float(rng.uniform(*settings["noise"]["snr_db"]))
    if mix:
        plan["max_overlap_s"] = mix["max_overlap_s"]
    return plan


def augment_waveform(wave: np.ndarray, sr: int, plan: dict, rng: np.random.Generator,
                     partner: np.ndarray | None = None) -> np.ndarray:
    """Apply a :func:`plan_augmentation` plan: clip mixing with ``partner`` (overlap
    ``overlap x min(max_overlap_s, shorter clip)``, :func:`mix_clips`), then reverberation
    (:func:`add_reverb`), then white noise at ``snr_db`` (:func:`add_noise`)."""
    wave = np.asarray(wave, dtype=np.float32)
    if partner is not None and "partner" in plan:
        partner = np.asarray(partner, dtype=np.float32)
        most = min(int(round(plan.get("max_overlap_s", 2.0) * sr)), len(wave), len(partner))
        overlap = int(round(plan.get("overlap", 0.0) * most))
        mixed = np.zeros(len(wave) + len(partner) - overlap, dtype=np.float32)
        mixed[: len(wave)] += wave
        mixed[len(wave) - overlap:] += partner
        wave = mixed
    if "rt60" in plan:
        wave = add_reverb(wave, sr, plan["rt60"], rng)
    if "snr_db" in plan:
        wave = add_noise(wave, plan["snr_db"], rng)
    return wave
