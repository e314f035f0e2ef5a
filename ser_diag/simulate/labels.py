"""Simulated labels of one split: class mix, speakers and file names, annotators' votes and
scores, consensus and per-annotator rows (:func:`simulate_labels`), in MSP-Podcast's layout.

The class profiles (:data:`CLASS_PROFILES`) are shared with :mod:`ser_diag.simulate.predictions`
(errors go to classes whose profiles are near). Imports nothing of :mod:`ser_diag.simulate`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ser_diag.errors import InputError
from ser_diag.schema import (
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTES,
    CLASS_CODES,
    CODE_TO_LONG_NAME,
    CONSENSUS_COLUMNS,
    SPLITS,
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

