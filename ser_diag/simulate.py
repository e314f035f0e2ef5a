"""A seeded synthetic challenge with planted, parameterised effects, in the official layouts.

Labels (:func:`simulate_labels`) follow MSP-Podcast: the Development class mix (or Test3's
400 per class), attributes on 1-7 averaged from 5-8 simulated annotators per file, per-file
vote distributions whose plurality is the consensus class (``X`` rows: a tie, no plurality),
speakers with Zipf-like utterance counts and a gender each.

Systems (:func:`simulate_systems`) are described by :class:`SystemSpec`; every effect the
diagnostics look for is a parameter, so an analysis can be checked against what was planted:

* categorical: logits ``z = skill * sim(y, .) + noise`` with noise sd 1 and
  ``sim(y, j) = exp(-dist(y, j) / SIMILARITY_SCALE)`` (``dist``: distance between the class
  attribute profiles; ``sim(y, y) = 1``), so errors go to similar classes. The predicted
  class is ``argmax z`` and ``P_* = softmax(z)``. With probability ``minority_to_anger`` a
  fear/disgust/contempt file has its anger logit swapped with its top logit (so it is
  predicted as anger).
* attributes (Lin's parameters): with ``m``, ``sd`` the mean and sd of the true attribute
  over the files and ``z = (true - m) / sd``,
  ``pred = m + bias + v * sd * (rho * z + sqrt(1 - rho^2) * z_err)``, clipped to [1, 7], where
  ``v`` is :attr:`SystemSpec.shrinkage`, ``rho`` :attr:`SystemSpec.rho` and ``z_err`` a
  standard normal error. Before clipping: Pearson correlation with the truth ``rho``, scale
  ``sd_pred / sd_true = v`` (< 1: regression to the mean), slope of E[pred | true]
  ``rho * v``, ``mean_pred - mean_true = bias`` and
  ``CCC = 2 rho v / (1 + v^2 + (bias / sd)^2)`` (Lin: ``C_b = 2 / (v + 1/v + u^2)`` with
  ``u = bias / (sd sqrt(v))``). :func:`rho_for_ccc` inverts the CCC for ``bias = 0``.
* extremes (paper finding 2: worst for low arousal, low dominance, high valence):
  ``extreme_compression = c`` replaces ``z`` on the hard side of the mean
  (:data:`HARD_SIDE`: below it for arousal and dominance, above it for valence) by
  ``(1 - c) z`` and re-standardises the result (mean 0, sd 1) before it enters the formula
  above, so mean, ``v`` and ``rho``'s error share keep their meaning. The slope of
  E[pred | true] is then ``rho v (1 - c) / sd_k`` on the hard side and ``rho v / sd_k`` on the
  other (``sd_k``: sd of the kinked ``z``, about 0.86 at ``c = 0.3`` for a bell-shaped truth),
  and the correlation with the truth drops by the factor ``corr(kinked z, z)`` (about 0.994
  at ``c = 0.3``). ``c = 0`` (the :class:`SystemSpec` default) is the plain model.
* ``gender_gap = g``: noise sd x ``(1 + g/2)`` for female and x ``(1 - g/2)`` for male
  speakers (logit noise and attribute ``z_err``); ``g > 0`` makes the system worse on
  female speech.
* inter-system error correlation ``error_correlation = r`` (per target): every noise term
  (logits, anger swap, ``z_err``) is ``sqrt(r) * common + sqrt(1 - r) * own``, the common part
  shared by all systems, so fusing systems removes only the own part.

* corpus structure shared by every system (:func:`plant_structure`, recorded in
  ``simulation_truth.json``): errors partly per speaker (``speaker_error_share``: a speaker
  bias per attribute and a per-speaker confusion tendency, variance kept), harder files where
  the annotators disagree (``agreement_effect``), one hard podcast (``hard_podcast_factor``)
  and a few female speakers who carry part of the gender gap (``gap_speakers``).
  Speakers have heavy-tailed (Zipf-like) file counts, a speaker-level gender, a label offset
  per speaker, and a share of ``Unknown`` speakers and genders. :func:`simulate_challenge`
  also plants a tie (two systems with the same spec) when it simulates 5 or more systems.

:func:`default_systems` spreads systems from baseline-like to top-like quality
(:data:`DEFAULT_RANGE`, calibrated to the published numbers: macro-F1 0.33 -> 0.43, mean CCC
0.58 -> 0.61 on a Development-like split; sd ratios 0.65 -> 0.85). Everything written is
marked synthetic (``SYNTHETIC_DEMO.txt``, :data:`SYNTHETIC_BANNER`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr, softmax

from ser_diag.errors import InputError
from ser_diag.io import (
    write_attribute_predictions,
    write_categorical_predictions,
    write_labels_consensus,
    write_labels_detailed,
)
from ser_diag.outputs import check_writable, staged_output
from ser_diag.schema import (
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTES,
    CLASS_CODES,
    CODE_TO_LONG_NAME,
    CONSENSUS_COLUMNS,
    MINORITY_NEGATIVE,
    PROB_COLUMNS,
    SPLITS,
    SYNTHETIC_BANNER,
)

#: Development split class counts of the challenge (8 codes).
DEVELOPMENT_COUNTS: dict[str, int] = {
    "N": 7423, "H": 6344, "A": 5836, "S": 2341, "C": 1459, "U": 987, "D": 542, "F": 326,
}
#: Default share of ``O`` (other) and ``X`` (no consensus) rows in a Development-like split.
EXTRA_SHARE: dict[str, float] = {"O": 0.03, "X": 0.07}
DEFAULT_N: dict[str, int] = {"Development": 6000, "Test3": 3200}

#: Mean (arousal, valence, dominance) of each class on the 1-7 scale.
CLASS_PROFILES: dict[str, tuple[float, float, float]] = {
    "A": (5.2, 3.0, 5.0),
    "S": (3.2, 3.0, 3.5),
    "H": (4.8, 5.1, 4.6),
    "U": (5.0, 4.5, 4.4),
    "F": (4.8, 3.1, 3.6),
    "D": (4.4, 3.0, 4.5),
    "C": (4.1, 3.3, 4.8),
    "N": (3.8, 4.1, 4.1),
    "O": (4.2, 3.8, 4.2),
}
#: Scale of the class-profile distance in the class similarity ``exp(-dist / scale)``.
SIMILARITY_SCALE = 0.5
#: Default inter-system correlation of the errors per target (valence errors are the most
#: independent, so fusion helps valence and the classes most, as in the paper's Figure 4).
DEFAULT_ERROR_CORRELATION: dict[str, float] = {"EmoClass": 0.5, "EmoAct": 0.85, "EmoVal": 0.45, "EmoDom": 0.85}
#: Side of the mean whose extremes ``extreme_compression`` pulls further to the middle
#: (-1: low values, +1: high values): low arousal, high valence, low dominance (paper finding 2).
HARD_SIDE: dict[str, float] = {"EmoAct": -1.0, "EmoVal": 1.0, "EmoDom": -1.0}

_VOTE_CODES = CLASS_CODES + ("O",)  # annotators vote one of these; X is a consensus outcome
_FILE_SD = np.array([0.6, 0.55, 0.55])  # within-class spread of the latent attributes
_FILE_CORR = np.array([[1.0, 0.1, 0.6], [0.1, 1.0, 0.2], [0.6, 0.2, 1.0]])
_SPEAKER_SD, _ANNOTATOR_SD, _WORKER_BIAS_SD = 0.35, 1.0, 0.3
#: Mean number of speakers per podcast in simulated file names.
SPEAKERS_PER_PODCAST = 3
_VOTE_AGREEMENT = 0.55  # probability that an annotator votes the file's consensus class
_WORKER_POOL = 997  # prime, so base + j * stride (mod pool) gives distinct workers per file
_ZIPF_EXPONENT = 0.7
_SECONDARY = {
    "A": ("Frustrated", "Annoyed", "Frustrated,Annoyed"),
    "S": ("Disappointed", "Dissapointed", "Depressed"),
    "H": ("Amused", "Excited", "Amused,Excited"),
    "U": ("Amazed", "Confused", "Excited"),
    "F": ("Concerned", "Anxious", "Concerned,Anxious"),
    "D": ("Disgusted", "Annoyed", "Frustrated"),
    "C": ("Annoyed", "Frustrated", "Disappointed"),
    "N": ("Concerned", "Confused", "Amused"),
    "O": ("Confused", "Concerned", "Annoyed"),
}
_OTHER_NAMES = np.array(["Other-Concerned", "Other-Confused", "Other-Frustrated", "Other-Bored"])


# --------------------------------------------------------------------------------------- labels
def _allocate(n: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``n`` into integer counts proportional to ``weights`` (largest remainder).

    >>> _allocate(10, {"a": 1, "b": 1, "c": 1})
    {'a': 4, 'b': 3, 'c': 3}
    """
    w = np.array(list(weights.values()), dtype=float)
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - counts.sum()]] += 1
    return dict(zip(weights, counts.tolist()))


def class_counts(n: int, class_mix: str = "development", extra_share: float | None = None) -> dict[str, int]:
    """Number of files per consensus code (8 classes + ``O``/``X``) for ``n`` files.

    ``class_mix="development"`` follows :data:`DEVELOPMENT_COUNTS`, ``"balanced"`` splits the
    8 classes evenly (Test3: 400 each of 3,200). ``extra_share`` (default 0.10 for the
    development mix, 0 for balanced) goes to ``O`` and ``X`` in the ratio of :data:`EXTRA_SHARE`.

    >>> class_counts(3200, "balanced")["A"]
    400
    """
    if class_mix not in ("development", "balanced"):
        raise ValueError(f"class_mix must be 'development' or 'balanced', not {class_mix!r}")
    if extra_share is None:
        extra_share = sum(EXTRA_SHARE.values()) if class_mix == "development" else 0.0
    if not 0.0 <= extra_share < 1.0:
        raise ValueError(f"extra_share must be in [0, 1), not {extra_share}")
    n_extra = int(round(n * extra_share))
    weights = DEVELOPMENT_COUNTS if class_mix == "development" else dict.fromkeys(DEVELOPMENT_COUNTS, 1)
    counts = _allocate(n - n_extra, weights)
    counts = {c: counts[c] for c in CLASS_CODES}
    counts.update(_allocate(n_extra, EXTRA_SHARE) if n_extra else dict.fromkeys(EXTRA_SHARE, 0))
    return counts


def _speakers(rng: np.random.Generator, n: int, utterances_per_speaker: float):
    """Speaker index per file (Zipf-like counts, each speaker >= 1 file), IDs and genders."""
    n_spk = int(min(n, max(1, round(n / utterances_per_speaker))))
    weights = 1.0 / np.arange(1, n_spk + 1) ** _ZIPF_EXPONENT
    per_spk = 1 + rng.multinomial(n - n_spk, weights / weights.sum())
    spk_of_file = np.repeat(np.arange(n_spk), per_spk)
    spkr_ids = np.sort(rng.choice(np.arange(1, max(5000, 3 * n_spk)), size=n_spk, replace=False))
    spkr_ids = rng.permutation(spkr_ids)  # the busiest speaker is not always the lowest ID
    female = rng.permutation(np.arange(n_spk) % 2 == 0)
    return spk_of_file, spkr_ids, female


def _file_names(rng: np.random.Generator, split: str, spk_of_file: np.ndarray) -> np.ndarray:
    """``MSP-PODCAST_<podcast>_<segment>.wav`` (about :data:`SPEAKERS_PER_PODCAST` speakers per
    podcast, segments numbered within each podcast; more than 4 digits only when a podcast
    needs them, at very large ``n``) or the Test3 names."""
    n = spk_of_file.size
    if split == "Test3":
        return np.char.add(np.char.add("MSP-PODCAST_test3_", np.char.zfill(np.arange(1, n + 1).astype(str), 4)), ".wav")
    n_spk = spk_of_file.max() + 1
    n_pod = max(1, int(round(n_spk / SPEAKERS_PER_PODCAST)))
    ids = rng.choice(np.arange(1, max(10000, 2 * n_pod)), size=n_pod, replace=False)
    podcast_of_speaker = np.where(np.arange(n_spk) < n_pod, np.arange(n_spk), rng.integers(0, n_pod, n_spk))
    podcast = ids[rng.permutation(podcast_of_speaker)[spk_of_file]]
    gaps = rng.integers(1, 6, size=n)
    segment = pd.Series(gaps).groupby(podcast).cumsum().to_numpy()   # within each podcast
    return np.char.add(np.char.add(np.char.add("MSP-PODCAST_", np.char.zfill(podcast.astype(str), 4)),
                                   np.char.add("_", np.char.zfill(segment.astype(str), 4))), ".wav")


def podcast_of(file_names) -> np.ndarray:
    """The podcast field of ``MSP-PODCAST_<podcast>_<segment>.wav`` names.

    >>> podcast_of(["MSP-PODCAST_0153_0012.wav"]).tolist()
    ['0153']
    """
    return np.array([str(f).split("_")[1] if str(f).count("_") >= 2 else "" for f in file_names], dtype=object)


def _votes(rng: np.random.Generator, codes: np.ndarray, n_annot: np.ndarray, k_max: int) -> np.ndarray:
    """Annotator votes (indices into ``CLASS_CODES + ("O",)``), shape (n, k_max).

    Non-X files: each annotator votes the consensus class with probability
    ``_VOTE_AGREEMENT``, otherwise a class near it in attribute space; then votes are turned to
    the consensus class until it is the strict plurality. X files: two classes tie for the top.
    """
    n = codes.size
    profiles = np.array([CLASS_PROFILES[c] for c in _VOTE_CODES])
    distractor = np.exp(-np.linalg.norm(profiles[:, None] - profiles[None], axis=-1) / 0.8)
    np.fill_diagonal(distractor, 0.0)
    distractor[:, CLASS_CODES.index("N")] *= 2.0  # disagreeing annotators often say neutral
    cdf = np.cumsum(distractor / distractor.sum(1, keepdims=True), axis=1)
    valid = np.arange(k_max)[None] < n_annot[:, None]

    is_x = codes == "X"
    true = np.maximum(pd.Index(_VOTE_CODES).get_indexer(codes), 0)  # X rows are rewritten below
    other = np.minimum((rng.random((n, k_max))[..., None] > cdf[true][:, None, :]).sum(-1), len(_VOTE_CODES) - 1)
    votes = np.where(rng.random((n, k_max)) < _VOTE_AGREEMENT, true[:, None], other)
    one_hot = np.eye(len(_VOTE_CODES), dtype=int)
    while True:  # at most k_max rounds, each over all files at once
        counts = (one_hot[votes] * valid[..., None]).sum(1)
        own = counts[np.arange(n), true]
        counts[np.arange(n), true] = -1
        needs = ~is_x & (counts.max(1) >= own)
        if not needs.any():
            break
        slot = np.argmax(valid & (votes != true[:, None]), axis=1)
        rows = np.flatnonzero(needs)
        votes[rows, slot[rows]] = true[rows]

    # X: classes a, b get k // 2 votes each, a third class c the odd vote.
    rows = np.flatnonzero(is_x)
    if rows.size:
        k8 = len(CLASS_CODES)
        a = rng.integers(0, k8, rows.size)
        b = (a + rng.integers(1, k8, rows.size)) % k8
        c = np.where((a + 1) % k8 == b, (a + 2) % k8, (a + 1) % k8)
        half = (n_annot[rows] // 2)[:, None]
        slot = np.arange(k_max)[None]
        votes[rows] = np.where(slot < half, a[:, None], np.where(slot < 2 * half, b[:, None], c[:, None]))
    return votes


def simulate_labels(
    n: int | None = None,
    split: str = "Development",
    seed: int = 0,
    class_mix: str | None = None,
    extra_share: float | None = None,
    utterances_per_speaker: float = 12.0,
    annotators: tuple[int, int] = (5, 8),
    unknown_speaker_share: float = 0.02,
    unknown_gender_share: float = 0.02,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate consensus and per-annotator labels of one split.

    Parameters
    ----------
    n : number of files (default 3,200 for Test3, else 6,000).
    split : ``Split_Set`` value; ``"Test3"`` also selects Test3 file names and, by default,
        the balanced class mix.
    class_mix : ``"development"`` (Development counts, plus 10% ``O``/``X``) or
        ``"balanced"`` (equal classes, no ``O``/``X``); see :func:`class_counts`.
    extra_share : share of ``O``/``X`` rows (default by ``class_mix``).
    utterances_per_speaker : mean files per speaker (speakers = n / this, Zipf-like counts).
    annotators : inclusive range of annotators per file.
    unknown_speaker_share : share of speakers written as ``Unknown`` (missing ID and gender).
    unknown_gender_share : share of the other (known) speakers whose gender is ``Unknown``.

    Returns
    -------
    labels : tidy consensus labels (:data:`~ser_diag.schema.CONSENSUS_COLUMNS`), sorted by FileName.
    detailed : one row per judgement, ``FileName, WorkerID, EmoClass_Major, EmoClass_Second,
        EmoAct, EmoVal, EmoDom`` (what :func:`ser_diag.io.write_labels_detailed` writes).
    """
    if split not in SPLITS:
        raise InputError("simulate", "split", f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    n = DEFAULT_N.get(split, DEFAULT_N["Development"]) if n is None else int(n)
    if n < 1:
        raise InputError("simulate", "n", f"number of files must be at least 1, not {n}")
    lo, hi = annotators
    if not 2 <= lo <= hi:  # an X file needs two annotators to tie
        raise ValueError(f"annotators must be a range 2 <= low <= high, not {annotators}")
    class_mix = class_mix or ("balanced" if split == "Test3" else "development")
    rng = np.random.default_rng([seed, 1])

    counts = class_counts(n, class_mix, extra_share)
    codes = rng.permutation(np.repeat(np.array(list(counts)), list(counts.values())))
    spk, spkr_ids, female = _speakers(rng, n, utterances_per_speaker)
    names = _file_names(rng, split, spk)

    # Latent attributes: class profile (X: mean of its two tied classes) + speaker + file.
    n_annot = rng.integers(lo, hi + 1, size=n)
    votes = _votes(rng, codes, n_annot, hi)
    profiles = np.array([CLASS_PROFILES[c] for c in _VOTE_CODES])
    base = profiles[np.maximum(pd.Index(_VOTE_CODES).get_indexer(codes), 0)]
    is_x = codes == "X"
    tied = votes[is_x, 0], votes[is_x, n_annot[is_x] // 2]
    base[is_x] = 0.5 * (profiles[tied[0]] + profiles[tied[1]])
    file_cov = _FILE_CORR * np.outer(_FILE_SD, _FILE_SD)
    latent = (base + rng.normal(0, _SPEAKER_SD, (spk.max() + 1, 3))[spk]
              + rng.multivariate_normal(np.zeros(3), file_cov, size=n))

    # Annotators: distinct workers per file, each with a leniency; integer scores on 1-7.
    stride = rng.integers(1, _WORKER_POOL, size=n)
    workers = (rng.integers(0, _WORKER_POOL, size=n)[:, None] + np.arange(hi)[None] * stride[:, None]) % _WORKER_POOL
    worker_bias = rng.normal(0, _WORKER_BIAS_SD, (_WORKER_POOL, 3))
    scores = latent[:, None, :] + worker_bias[workers] + rng.normal(0, _ANNOTATOR_SD, (n, hi, 3))
    scores = np.clip(np.rint(scores), ATTRIBUTE_MIN, ATTRIBUTE_MAX)
    valid = np.arange(hi)[None] < n_annot[:, None]
    consensus = (scores * valid[..., None]).sum(1) / n_annot[:, None]

    known = rng.random(spkr_ids.size) >= unknown_speaker_share
    labels = pd.DataFrame({
        "FileName": names,
        "EmoClass": codes,
        **{a: consensus[:, j] for j, a in enumerate(ATTRIBUTES)},
        "SpkrID": pd.array(spkr_ids[spk], dtype="Int64"),
        "Gender": np.where(female, "Female", "Male")[spk],
        "Split_Set": np.full(n, split),
    })
    gender_known = known & (rng.random(spkr_ids.size) >= unknown_gender_share)
    labels.loc[~known[spk], "SpkrID"] = pd.NA
    labels["Gender"] = labels["Gender"].where(gender_known[spk])

    # Per-annotator rows.
    file_idx, slot = np.nonzero(valid)
    v = votes[file_idx, slot]
    long_names = np.array([CODE_TO_LONG_NAME[c] for c in CLASS_CODES] + [""], dtype=object)
    major = long_names[v]
    is_other = v == len(CLASS_CODES)
    major[is_other] = _OTHER_NAMES[rng.integers(0, _OTHER_NAMES.size, is_other.sum())]
    secondary_options = np.array([_SECONDARY[c] for c in _VOTE_CODES], dtype=object)
    second = secondary_options[v, rng.integers(0, 3, v.size)]
    second[rng.random(v.size) < 0.5] = ""
    detailed = pd.DataFrame({
        "FileName": names[file_idx],
        "WorkerID": np.char.add("WORKER", np.char.zfill(workers[file_idx, slot].astype(str), 5)),
        "EmoClass_Major": major.astype(str),
        "EmoClass_Second": second.astype(str),
        **{a: scores[file_idx, slot, j] for j, a in enumerate(ATTRIBUTES)},
    })
    order = np.argsort(names, kind="stable")
    labels = labels.iloc[order].reset_index(drop=True)
    rank = np.argsort(order)  # position of each file once sorted by name
    detailed = detailed.iloc[np.argsort(rank[file_idx], kind="stable")].reset_index(drop=True)
    return labels.loc[:, list(CONSENSUS_COLUMNS)], detailed


# -------------------------------------------------------------------------------------- systems
def _per_attribute(value: float | Mapping[str, float], what: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        missing = set(ATTRIBUTES) - set(value)
        if missing:
            raise ValueError(f"{what} lacks {sorted(missing)}")
        return {a: float(value[a]) for a in ATTRIBUTES}
    return dict.fromkeys(ATTRIBUTES, float(value))


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """The planted properties of one simulated system (see the module docstring for the model).

    ``shrinkage``, ``rho``, ``bias`` and ``extreme_compression`` take one number for all
    attributes or a mapping ``{"EmoAct": .., "EmoVal": .., "EmoDom": ..}`` (stored as a dict).

    Attributes
    ----------
    name : folder name of the system's predictions.
    skill : logit of the true class (similar classes get a share of it; logit noise sd 1):
        0 = chance, larger = better.
    minority_to_anger : probability that a fear/disgust/contempt file is predicted as anger.
    shrinkage : Lin's scale ``v = sd_pred / sd_true``; 1 = no regression to the mean.
    rho : Pearson correlation of the attribute prediction with the truth, in [-1, 1].
    bias : location bias added to the attribute predictions (scale points).
    extreme_compression : ``c`` in [0, 1): the hard side's standardised truth is scaled by
        ``1 - c`` (:data:`HARD_SIDE`); 0 = symmetric regression to the mean.
    gender_gap : noise x (1 + g/2) for female, x (1 - g/2) for male speakers; 0 = no gap.
    """

    name: str
    skill: float = 1.8
    minority_to_anger: float = 0.25
    shrinkage: float | Mapping[str, float] = 0.75
    rho: float | Mapping[str, float] = 0.75
    bias: float | Mapping[str, float] = 0.0
    extreme_compression: float | Mapping[str, float] = 0.0
    gender_gap: float = 0.0

    def __post_init__(self):
        for field in ("shrinkage", "rho", "bias", "extreme_compression"):
            object.__setattr__(self, field, _per_attribute(getattr(self, field), field))
        if not 0.0 <= self.minority_to_anger <= 1.0:
            raise ValueError(f"minority_to_anger must be in [0, 1], not {self.minority_to_anger}")
        if not -2.0 < self.gender_gap < 2.0:
            raise ValueError(f"gender_gap must be in (-2, 2), not {self.gender_gap}")
        if min(self.shrinkage.values()) < 0:
            raise ValueError("shrinkage must be non-negative")
        if not all(-1.0 <= r <= 1.0 for r in self.rho.values()):
            raise ValueError(f"rho must be in [-1, 1], not {self.rho}")
        if not all(0.0 <= c < 1.0 for c in self.extreme_compression.values()):
            raise ValueError(f"extreme_compression must be in [0, 1), not {self.extreme_compression}")


def rho_for_ccc(ccc: float, shrinkage: float) -> float:
    """Correlation ``rho`` that gives concordance ``ccc`` at scale ``v = shrinkage`` (no bias):
    ``CCC = 2 rho v / (1 + v^2)``, so ``rho = CCC (1 + v^2) / (2 v)``.

    >>> round(rho_for_ccc(2 * 0.5 * 0.8 / (1 + 0.64), 0.8), 6)
    0.5
    """
    rho = ccc * (1.0 + shrinkage**2) / (2.0 * shrinkage) if shrinkage > 0 else np.inf
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"CCC {ccc} is out of reach with shrinkage {shrinkage}")
    return float(rho)


#: Defaults interpolate from the worst system (quality 0, the challenge baseline) to the best
#: (quality 1, the top of the leaderboard): (baseline, top) per parameter. CCC targets are the
#: published per-attribute scores; ``rho`` is solved from them with :func:`rho_for_ccc`
#: (the kink of ``extreme_compression`` costs a further ~0.5% of CCC, see the module docstring).
DEFAULT_RANGE: dict[str, tuple] = {
    "skill": (1.25, 1.58),
    "minority_to_anger": (0.35, 0.20),
    "shrinkage": ({"EmoAct": 0.72, "EmoVal": 0.65, "EmoDom": 0.65},
                  {"EmoAct": 0.85, "EmoVal": 0.80, "EmoDom": 0.75}),
    "ccc": ({"EmoAct": 0.623, "EmoVal": 0.638, "EmoDom": 0.477},
            {"EmoAct": 0.683, "EmoVal": 0.642, "EmoDom": 0.498}),
    "extreme_compression": (0.3, 0.2),
    "gender_gap": (0.15, 0.15),
}


def default_systems(n_systems: int = 8, **overrides) -> list[SystemSpec]:
    """``n_systems`` specs spread evenly from baseline-like (``sys01_baseline``) to top-like
    (``sysNN_top``) quality; ``overrides`` (any :class:`SystemSpec` field) apply to all."""
    if n_systems < 1:
        raise InputError("simulate", "n_systems", f"number of systems must be at least 1, not {n_systems}")
    unknown = set(overrides) - {f.name for f in dataclasses.fields(SystemSpec)} - {"name"}
    if unknown:
        raise TypeError(f"unknown system parameters {sorted(unknown)}")
    specs = []
    for i in range(n_systems):
        q = i / (n_systems - 1) if n_systems > 1 else 0.0
        lerp = lambda lo_hi: lo_hi[0] + q * (lo_hi[1] - lo_hi[0])  # noqa: E731
        r = DEFAULT_RANGE
        shrink = {a: lerp((r["shrinkage"][0][a], r["shrinkage"][1][a])) for a in ATTRIBUTES}
        ccc = {a: lerp((r["ccc"][0][a], r["ccc"][1][a])) for a in ATTRIBUTES}
        tag = "baseline" if i == 0 else "top" if i == n_systems - 1 else "mid"
        params = dict(
            name=f"sys{i + 1:02d}_{tag}",
            skill=round(lerp(r["skill"]), 4),
            minority_to_anger=round(lerp(r["minority_to_anger"]), 4),
            shrinkage={a: round(v, 4) for a, v in shrink.items()},
            rho={a: round(rho_for_ccc(ccc[a], shrink[a]), 4) for a in ATTRIBUTES},
            extreme_compression=round(lerp(r["extreme_compression"]), 4),
            gender_gap=round(lerp(r["gender_gap"]), 4),
        )
        params.update(overrides)
        specs.append(SystemSpec(**params))
    return specs


def _resolve_specs(n_systems: int, specs: Sequence[SystemSpec] | None, overrides: dict) -> list[SystemSpec]:
    if specs is None:
        specs = default_systems(n_systems, **overrides)
    else:
        specs = [dataclasses.replace(s, **overrides) for s in specs]
    names = [s.name for s in specs]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"system names must be unique and at least one: {names}")
    return specs


def _error_correlation(value: float | Mapping[str, float] | None) -> dict[str, float]:
    if value is None:
        return dict(DEFAULT_ERROR_CORRELATION)
    out = dict(value) if isinstance(value, Mapping) else dict.fromkeys(DEFAULT_ERROR_CORRELATION, float(value))
    out = {**DEFAULT_ERROR_CORRELATION, **out}
    if set(out) != set(DEFAULT_ERROR_CORRELATION) or not all(0.0 <= v <= 1.0 for v in out.values()):
        raise ValueError(f"error_correlation must be in [0, 1] for keys {sorted(DEFAULT_ERROR_CORRELATION)}, "
                         f"got {value}")
    return out


def _standardised_signal(z: np.ndarray, compression: np.ndarray) -> np.ndarray:
    """``z`` (n, 3) with the hard side (:data:`HARD_SIDE`) scaled by ``1 - compression`` (3,),
    re-standardised per column (mean 0, sd 1; a constant column stays 0)."""
    hard = np.array([HARD_SIDE[a] for a in ATTRIBUTES])
    kinked = np.where(z * hard > 0, (1.0 - compression) * z, z)
    centred = kinked - kinked.mean(0)
    sd = centred.std(0)
    return centred / np.where(sd > 0, sd, 1.0)


#: Defaults of the corpus structure every system's errors share (see :func:`plant_structure`).
STRUCTURE_DEFAULTS: dict[str, float] = {
    "speaker_error_share": 0.2,    # share of each error's variance that is per speaker
    "agreement_effect": 1.5,       # log noise multiplier per unit of annotator disagreement
    "hard_podcast_factor": 1.6,    # noise multiplier of every file of the hard podcast
    "gap_speakers": 3,             # female speakers who carry part of the gender gap
    "gap_speaker_factor": 1.6,     # their noise multiplier (systems with gender_gap != 0)
}


def vote_agreement(labels: pd.DataFrame, detailed: pd.DataFrame) -> np.ndarray:
    """Per file of ``labels``: the share of its annotators who voted the most voted primary
    class (``EmoClass_Major``; every ``Other-*`` counts as one class); nan without judgements.

    >>> lab = pd.DataFrame({"FileName": ["a", "b"]})
    >>> det = pd.DataFrame({"FileName": ["a", "a", "a", "b"], "EmoClass_Major": ["Sad", "Sad", "Happy", "Neutral"]})
    >>> vote_agreement(lab, det).round(3).tolist()
    [0.667, 1.0]
    """
    major = detailed["EmoClass_Major"].astype(str).str.replace(r"^Other-.*", "Other", regex=True)
    counts = pd.crosstab(detailed["FileName"], major)
    share = counts.max(axis=1) / counts.sum(axis=1)
    return share.reindex(labels["FileName"]).to_numpy(np.float64)


def plant_structure(labels: pd.DataFrame, seed: int = 0, agreement=None, **params) -> dict:
    """The corpus structure every simulated system's errors share, drawn once from ``labels``:

    * ``speaker_error_share`` ``s``: every error term (logit noise, attribute ``z_err``) is
      ``sqrt(1 - s) * per file + sqrt(s) * per speaker`` (unit variance either way, so
      accuracies and CCCs keep their calibration; errors are correlated within a speaker:
      a speaker bias per attribute and a per-speaker confusion tendency). Unknown speakers
      are speakers of their own.
    * ``agreement_effect`` ``a``: noise x ``exp(a (d - mean d)) / norm`` with ``d = 1 -``
      :func:`vote_agreement` (files the annotators disagree on are harder; ``norm`` keeps the
      mean error variance).
    * ``hard_podcast_factor``: noise x this on every file of one podcast (the one whose file
      count is closest to 5% of the files, at least 20 files), all scales then divided by
      their root mean square so the mean error variance (and the calibration) is kept.
    * ``gap_speakers`` female speakers (among those with >= 20 files) get noise x
      ``gap_speaker_factor`` in systems with ``gender_gap != 0``: part of the gap is carried
      by a few speakers.

    Returns the arrays (per file ``noise_scale_structure``, ``speaker_index``, ``gap_rows``) and
    a JSON-ready ``truth`` of the planted values.
    """
    p = dict(STRUCTURE_DEFAULTS, **{k: v for k, v in params.items() if v is not None})
    unknown = set(p) - set(STRUCTURE_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown structure parameters {sorted(unknown)}")
    if not 0.0 <= p["speaker_error_share"] < 1.0:
        raise ValueError(f"speaker_error_share must be in [0, 1), not {p['speaker_error_share']}")
    rng = np.random.default_rng([seed, 3])
    n = len(labels)
    speaker_index = pd.Series(
        pd.factorize(labels["SpkrID"], use_na_sentinel=True)[0] if "SpkrID" in labels else np.full(n, -1))
    n_known = int(speaker_index.max()) + 1 if n else 0
    speaker_index = np.where(speaker_index >= 0, speaker_index, n_known + np.arange(n))
    scale = np.ones(n)
    truth: dict = {"speaker_error_share": p["speaker_error_share"]}
    if agreement is not None and p["agreement_effect"]:
        d = 1.0 - np.nan_to_num(np.asarray(agreement, np.float64), nan=1.0)
        m = np.exp(p["agreement_effect"] * (d - d.mean()))
        scale *= m / np.sqrt(np.mean(m * m))
        truth["agreement_effect"] = {"effect": p["agreement_effect"], "measure": "1 - plurality vote share",
                                     "noise_multiplier": "exp(effect * (d - mean d)) / sqrt(mean of its square)",
                                     "mean_disagreement": float(d.mean())}
    podcasts = podcast_of(labels["FileName"])
    sizes = pd.Series(podcasts).value_counts()
    sizes = sizes[(sizes >= 20) & (sizes.index != "")]
    if len(sizes) > 1 and p["hard_podcast_factor"] != 1.0:
        hard = str((sizes - 0.05 * n).abs().sort_values(kind="stable").index[0])
        scale = np.where(podcasts == hard, scale * p["hard_podcast_factor"], scale)
        scale = scale / np.sqrt(np.mean(scale * scale))   # the mean error variance is kept
        truth["hard_podcast"] = {"podcast": hard, "n_files": int(sizes[hard]),
                                 "noise_factor": p["hard_podcast_factor"]}
    gap_rows = np.zeros(n, bool)
    if p["gap_speakers"] and "Gender" in labels and "SpkrID" in labels:
        per = labels[labels["Gender"] == "Female"].groupby("SpkrID").size()
        candidates = np.sort(per[per >= 20].index.to_numpy())
        k = min(int(p["gap_speakers"]), candidates.size)
        chosen = rng.choice(candidates, size=k, replace=False) if k else np.array([], dtype=int)
        gap_rows = labels["SpkrID"].isin(chosen).fillna(False).to_numpy(bool)
        truth["gap_speakers"] = {"SpkrID": sorted(int(c) for c in chosen),
                                 "noise_factor": p["gap_speaker_factor"],
                                 "n_files": int(gap_rows.sum()),
                                 "applies_to": "systems with gender_gap != 0"}
    return {"noise_scale_structure": scale, "speaker_index": speaker_index, "n_units": int(speaker_index.max()) + 1 if n else 0,
            "gap_rows": gap_rows, "gap_factor": p["gap_speaker_factor"], "params": p, "truth": truth}


def simulate_systems(
    labels: pd.DataFrame,
    n_systems: int = 8,
    seed: int = 0,
    specs: Sequence[SystemSpec] | None = None,
    error_correlation: float | Mapping[str, float] | None = None,
    structure: dict | None = None,
    **overrides,
) -> pd.DataFrame:
    """Predictions of simulated systems for every file of ``labels``.

    Parameters
    ----------
    labels : tidy consensus labels (e.g. from :func:`simulate_labels`); O/X files get
        predictions too (a system does not know the consensus).
    n_systems : number of :func:`default_systems` (ignored when ``specs`` is given).
    specs : explicit :class:`SystemSpec` list.
    error_correlation : inter-system error correlation, one number or per target
        (``EmoClass``, ``EmoAct``, ``EmoVal``, ``EmoDom``; default :data:`DEFAULT_ERROR_CORRELATION`).
    structure : :func:`plant_structure` output (default: drawn from ``labels`` with
        :data:`STRUCTURE_DEFAULTS`, without the agreement effect, which needs the votes).
    overrides : :class:`SystemSpec` fields applied to every default system.

    Returns
    -------
    Tidy predictions: ``system, FileName, EmoClass, P_A..P_N, EmoAct, EmoVal, EmoDom``,
    one block of rows per system in the order of ``labels``.
    """
    specs = _resolve_specs(n_systems, specs, overrides)
    error_correlation = _error_correlation(error_correlation)
    structure = structure if structure is not None else plant_structure(labels, seed)
    n, k = len(labels), len(CLASS_CODES)
    code = labels["EmoClass"].astype(str).to_numpy()
    true = labels.loc[:, list(ATTRIBUTES)].to_numpy(dtype=float)
    center, scale = true.mean(0), true.std(0)
    z = (true - center) / np.where(scale > 0, scale, 1.0)

    # Signal class: the consensus class; O/X files: the class whose profile is nearest.
    profiles = np.array([CLASS_PROFILES[c] for c in CLASS_CODES])
    signal = pd.Index(CLASS_CODES).get_indexer(code)
    nearest = np.linalg.norm(true[:, None] - profiles[None], axis=-1).argmin(1)
    signal = np.where(signal < 0, nearest, signal)
    similarity = np.exp(-np.linalg.norm(profiles[:, None] - profiles[None], axis=-1) / SIMILARITY_SCALE)
    minority = np.isin(code, MINORITY_NEGATIVE)
    anger = CLASS_CODES.index("A")
    gender = labels["Gender"].astype(str).to_numpy()
    female, male = gender == "Female", gender == "Male"
    spk, n_units = structure["speaker_index"], structure["n_units"]
    share = structure["params"]["speaker_error_share"]
    base_scale = structure["noise_scale_structure"]

    def clustered(gen, shape):
        """``sqrt(1 - share) * per file + sqrt(share) * per speaker`` standard normals."""
        own = gen.standard_normal((n,) + shape)
        if share == 0:
            return own
        per_speaker = gen.standard_normal((n_units,) + shape)[spk]
        return np.sqrt(1 - share) * own + np.sqrt(share) * per_speaker

    common = np.random.default_rng([seed, 2, 0])
    common_logit = clustered(common, (k,))
    common_swap = common.standard_normal(n)
    common_attr = clustered(common, (len(ATTRIBUTES),))
    r_cls = error_correlation["EmoClass"]
    r_attr = np.array([error_correlation[a] for a in ATTRIBUTES])

    blocks = []
    for i, spec in enumerate(specs):
        rng = np.random.default_rng([seed, 2, i + 1])
        g = spec.gender_gap
        noise_scale = np.where(female, 1 + g / 2, np.where(male, 1 - g / 2, 1.0)) * base_scale
        if g != 0:
            noise_scale = np.where(structure["gap_rows"], noise_scale * structure["gap_factor"], noise_scale)
        noise_scale = noise_scale[:, None]

        eps = np.sqrt(r_cls) * common_logit + np.sqrt(1 - r_cls) * clustered(rng, (k,))
        logits = spec.skill * similarity[signal] + noise_scale * eps
        u = ndtr(np.sqrt(r_cls) * common_swap + np.sqrt(1 - r_cls) * rng.standard_normal(n))
        swap = np.flatnonzero(minority & (u < spec.minority_to_anger))
        top = logits[swap].argmax(1)
        logits[swap, top], logits[swap, anger] = logits[swap, anger], logits[swap, top]
        pred_idx = logits.argmax(1)

        e = np.sqrt(r_attr) * common_attr + np.sqrt(1 - r_attr) * clustered(rng, (len(ATTRIBUTES),))
        v, r, b, c = (np.array([getattr(spec, f)[a] for a in ATTRIBUTES])
                      for f in ("shrinkage", "rho", "bias", "extreme_compression"))
        z_signal = _standardised_signal(z, c)
        attr = center + b + v * scale * (r * z_signal + np.sqrt(1 - r**2) * noise_scale * e)
        attr = np.clip(attr, ATTRIBUTE_MIN, ATTRIBUTE_MAX)

        block = pd.DataFrame({"system": np.full(n, spec.name), "FileName": labels["FileName"].to_numpy(),
                              "EmoClass": np.array(CLASS_CODES)[pred_idx]})
        block[list(PROB_COLUMNS)] = softmax(logits, axis=1)
        block[list(ATTRIBUTES)] = attr
        blocks.append(block)
    out = pd.concat(blocks, ignore_index=True)
    out.attrs["synthetic"] = True
    return out


# ------------------------------------------------------------------------------------ challenge
def _split_params(params: dict) -> tuple[dict, dict]:
    """Route ``simulate_challenge`` keyword arguments to the label or the system simulator."""
    label_keys = set(inspect.signature(simulate_labels).parameters) - {"n", "split", "seed"}
    system_keys = ({"specs", "error_correlation", "tie"} | set(STRUCTURE_DEFAULTS)
                   | {f.name for f in dataclasses.fields(SystemSpec)} - {"name"})
    unknown = set(params) - label_keys - system_keys
    if unknown:
        raise TypeError(f"unknown simulation parameters {sorted(unknown)}")
    return ({k: v for k, v in params.items() if k in label_keys},
            {k: v for k, v in params.items() if k in system_keys})


def _speaker_summary(labels: pd.DataFrame) -> dict:
    per = labels.groupby("SpkrID").size()
    gender = labels.groupby("SpkrID")["Gender"].first()
    return {"n_speakers": int(per.size), "files_per_speaker_median": float(per.median()),
            "files_per_speaker_max": int(per.max()), "speakers_with_100_or_more_files": int((per >= 100).sum()),
            "share_files_unknown_speaker": float(labels["SpkrID"].isna().mean()),
            "share_files_unknown_gender": float(labels["Gender"].isna().mean()),
            "n_speakers_unknown_gender": int(gender.isna().sum()),
            "n_podcasts": int(len(set(podcast_of(labels["FileName"]))))}


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def simulate_challenge(
    out: str | os.PathLike,
    seed: int = 0,
    n_systems: int = 8,
    split: str = "Development",
    n: int | None = None,
    **params,
) -> Path:
    """Write a synthetic challenge in the official layouts and return ``out``.

    Files (all-or-nothing, through :func:`ser_diag.outputs.staged_output`)::

        out/Labels/labels_consensus.csv      official header
        out/Labels/labels_detailed.csv       release 1.x FileName,EmoDetail layout
        out/predictions/<system>/categorical.csv   FileName,EmoClass,P_A..P_N
        out/predictions/<system>/attributes.csv    FileName,EmoAct,EmoVal,EmoDom
        out/SYNTHETIC_DEMO.txt               banner, seed and parameters
        out/simulation_truth.json            the planted parameters of every system

    ``params`` go to :func:`simulate_labels` (``class_mix``, ``extra_share``, ...) or to
    :func:`simulate_systems` (``specs``, ``error_correlation`` or any :class:`SystemSpec` field).
    """
    check_writable(out)  # before computing: one line, not a traceback after it
    label_params, system_params = _split_params(params)
    labels, detailed = simulate_labels(n, split=split, seed=seed, **label_params)
    error_correlation = _error_correlation(system_params.pop("error_correlation", None))
    structure_params = {k: system_params.pop(k) for k in list(system_params) if k in STRUCTURE_DEFAULTS}
    tie = system_params.pop("tie", True)
    given_specs = system_params.pop("specs", None)
    specs = _resolve_specs(n_systems, given_specs, system_params)
    tied = None
    if tie and given_specs is None and len(specs) >= 5:
        # two mid systems with the same planted quality and independent errors: a tie
        a, b = specs[-3], specs[-2]
        specs[-3] = dataclasses.replace(b, name=a.name)
        tied = {"systems": [a.name, b.name], "difference": 0.0,
                "planted": "the same SystemSpec apart from the name; independent errors "
                           "(shared only through error_correlation), so every metric differs by 0 "
                           "in expectation"}
    agreement = vote_agreement(labels, detailed)
    structure = plant_structure(labels, seed, agreement=agreement, **structure_params)
    predictions = simulate_systems(labels, seed=seed, specs=specs, error_correlation=error_correlation,
                                   structure=structure)

    counts = labels["EmoClass"].value_counts()
    truth = {
        "synthetic": True,
        "seed": seed,
        "split": split,
        "n": len(labels),
        "labels": {**label_params, "class_counts": {c: int(counts.get(c, 0)) for c in CLASS_CODES + ("O", "X")}},
        "error_correlation": error_correlation,
        "model": "see ser_diag.simulate module docstring and plant_structure",
        "systems": [dataclasses.asdict(s) for s in specs],
        "speakers": _speaker_summary(labels),
        "structure": structure["truth"],
        "tie": tied,
        "gender_gap": {"per_system": {s.name: s.gender_gap for s in specs},
                       "model": "noise x (1 + g/2) female, x (1 - g/2) male; the gap_speakers "
                                "(structure) carry an extra share"},
    }
    truth = _jsonable(truth)
    with staged_output(out) as stage:
        write_labels_consensus(labels, stage / "Labels" / "labels_consensus.csv")
        write_labels_detailed(detailed, stage / "Labels" / "labels_detailed.csv", layout="1.x")
        n_files = len(labels)
        for i, spec in enumerate(specs):
            block = predictions.iloc[i * n_files:(i + 1) * n_files]
            folder = stage / "predictions" / spec.name
            write_categorical_predictions(block, folder / "categorical.csv")
            write_attribute_predictions(block, folder / "attributes.csv")
        (stage / "simulation_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
        (stage / "SYNTHETIC_DEMO.txt").write_text(
            f"{SYNTHETIC_BANNER}\n\nWritten by ser_diag.simulate.simulate_challenge.\n"
            f"seed: {seed}\nsplit: {split}\nn: {len(labels)}\nn_systems: {len(specs)}\n"
            f"parameters:\n{json.dumps(truth, indent=2)}\n",
            encoding="utf-8")
    return Path(out)


# ------------------------------------------------------------------------- calibration data
def speaker_null_frames(seed: int = 0, n_speakers: int = 100, speaker_size_log_mean: float = 1.5,
                        speaker_size_log_sd: float = 0.6, skill: float = 0.0, skill_sd: float = 1.0,
                        label_sd: float = 0.5, bias_sd: float = 0.5, noise_sd: float = 0.8,
                        shrinkage: float = 0.6, unknown_gender_rows: int = 1) -> dict:
    r"""Merged frames (one system ``sys``) of a speaker-clustered world with **no** gender gap,
    for calibration checks of intervals and tests (``tests/test_calibration.py``,
    ``bench/bench_calibration.py``).

    Speakers: ``n_speakers``, gender alternating (half female), ``2 + floor(LogNormal)`` files
    each. Categorical: true class uniform over the 8 codes; the prediction is right with the
    speaker's probability ``expit(skill + skill_sd * z_s)``, else a uniform other class.
    Attributes (each of the three, independently): ``true = 4 + u_s + e`` with
    ``u_s ~ N(0, label_sd^2)``, ``e ~ N(0, 1)``;
    ``pred = 4 + shrinkage (true - 4) + w_s + eps`` with speaker bias ``w_s ~ N(0, bias_sd^2)``
    and ``eps ~ N(0, noise_sd^2)``. Effects do not depend on gender or speaker size, so every
    gender gap is 0 in the population. ``unknown_gender_rows`` utterances of known speakers get
    an unknown gender.

    Returns ``{"categorical": merged, "attributes": merged, "truth": {...}}`` with the
    population values ``macro_f1`` and ``ccc`` (per attribute, closed form:
    :math:`2 v \sigma_t^2 / (\sigma_t^2 + v^2\sigma_t^2 + \sigma_w^2 + \sigma_\epsilon^2)`,
    :math:`\sigma_t^2 = \sigma_u^2 + 1`) and ``gap = 0``.
    """
    rng = np.random.default_rng([seed, 9])
    sizes = 2 + np.floor(rng.lognormal(speaker_size_log_mean, speaker_size_log_sd, n_speakers)).astype(int)
    spk = np.repeat(np.arange(n_speakers), sizes)
    n = spk.size
    gender = np.where(np.arange(n_speakers) % 2 == 0, "Female", "Male")[spk].astype(object)
    codes = np.array(CLASS_CODES)
    k = codes.size
    true_idx = rng.integers(0, k, n)
    p_right = 1.0 / (1.0 + np.exp(-(skill + skill_sd * rng.standard_normal(n_speakers))))[spk]
    wrong = (true_idx + rng.integers(1, k, n)) % k
    pred_idx = np.where(rng.random(n) < p_right, true_idx, wrong)
    files = np.char.add(np.char.add("MSP-PODCAST_", np.char.zfill(spk.astype(str), 4)),
                        np.char.add(np.char.add("_", np.char.zfill(np.arange(n).astype(str), 5)), ".wav"))
    base = pd.DataFrame({"system": "sys", "FileName": files, "SpkrID": pd.array(spk + 1, dtype="Int64"),
                         "Gender": gender, "Split_Set": "Development"})
    if unknown_gender_rows:
        big = np.flatnonzero(sizes >= 3)
        rows = [int(np.flatnonzero(spk == s)[1]) for s in rng.choice(big, unknown_gender_rows, replace=False)]
        base.loc[rows, "Gender"] = None
    cat = base.assign(EmoClass_true=codes[true_idx], EmoClass_pred=codes[pred_idx])
    att = base.copy()
    a = len(ATTRIBUTES)
    true = 4.0 + rng.normal(0, label_sd, (n_speakers, a))[spk] + rng.standard_normal((n, a))
    pred = (4.0 + shrinkage * (true - 4.0) + rng.normal(0, bias_sd, (n_speakers, a))[spk]
            + rng.normal(0, noise_sd, (n, a)))
    for j, attr in enumerate(ATTRIBUTES):
        att[f"{attr}_true"], att[f"{attr}_pred"] = true[:, j], pred[:, j]
    cat.attrs.update(task="categorical", synthetic=True)
    att.attrs.update(task="attributes", synthetic=True)
    # population values
    z = np.linspace(-8, 8, 4001)
    weight = np.exp(-z * z / 2)
    q = float(np.sum(weight / (1 + np.exp(-(skill + skill_sd * z)))) / np.sum(weight))  # E[p_right]
    cm = np.full((k, k), (1 - q) / (k - 1) / k)
    np.fill_diagonal(cm, q / k)
    from ser_diag.metrics import macro_f1_from_confusion  # local: simulate stays free of metrics at import
    var_t = label_sd ** 2 + 1.0
    ccc_value = 2 * shrinkage * var_t / (var_t + shrinkage ** 2 * var_t + bias_sd ** 2 + noise_sd ** 2)
    truth = {"macro_f1": float(macro_f1_from_confusion(cm)), "accuracy": q,
             **{f"ccc_{attr}": ccc_value for attr in ATTRIBUTES}, "ccc_mean": ccc_value, "gap": 0.0}
    return {"categorical": cat, "attributes": att, "truth": truth}
