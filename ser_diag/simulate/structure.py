"""The corpus structure every simulated system's errors share, drawn once per challenge
(:func:`plant_structure`: speaker effects, agreement-dependent errors, a hard podcast, a few
gap speakers) from the labels and the annotators' agreement (:func:`vote_agreement`).
Imports :mod:`~ser_diag.simulate.labels` (podcast names).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.simulate.labels import podcast_of


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
