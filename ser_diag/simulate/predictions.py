"""Simulated systems' predictions (:func:`simulate_systems`): categorical logits and
probabilities, attributes with Lin's parameters and the hard side's kink, gender gap, errors
shared between systems and the corpus structure. Imports :mod:`~ser_diag.simulate.labels`,
:mod:`~ser_diag.simulate.specs` and :mod:`~ser_diag.simulate.structure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import ndtr, softmax

from ser_diag.schema import (
    ATTRIBUTE_MAX,
    ATTRIBUTE_MIN,
    ATTRIBUTES,
    CLASS_CODES,
    MINORITY_NEGATIVE,
    PROB_COLUMNS,
)
from ser_diag.simulate.labels import CLASS_PROFILES
from ser_diag.simulate.specs import (
    HARD_SIDE,
    SIMILARITY_SCALE,
    SystemSpec,
    _error_correlation,
    _resolve_specs,
)
from ser_diag.simulate.structure import plant_structure


def _standardised_signal(z: np.ndarray, compression: np.ndarray) -> np.ndarray:
    """``z`` (n, 3) with the hard side (:data:`HARD_SIDE`) scaled by ``1 - compression`` (3,),
    re-standardised per column (mean 0, sd 1; a constant column stays 0)."""
    hard = np.array([HARD_SIDE[a] for a in ATTRIBUTES])
    kinked = np.where(z * hard > 0, (1.0 - compression) * z, z)
    centred = kinked - kinked.mean(0)
    sd = centred.std(0)
    return centred / np.where(sd > 0, sd, 1.0)



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
