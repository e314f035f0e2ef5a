"""A world with no effects for calibration checks (:func:`speaker_null_frames`): merged frames
of a speaker-clustered system whose population values are known in closed form. Imports
nothing of :mod:`ser_diag.simulate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ser_diag.schema import ATTRIBUTES, CLASS_CODES

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
