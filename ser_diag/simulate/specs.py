"""What a simulated system is: :class:`SystemSpec` (its planted properties), the defaults that
spread systems from baseline-like to top-like quality (:data:`DEFAULT_RANGE`,
:func:`default_systems`, :func:`rho_for_ccc`) and the model constants every system shares
(:data:`SIMILARITY_SCALE`, :data:`DEFAULT_ERROR_CORRELATION`, :data:`HARD_SIDE`). The model
itself is described in the :mod:`ser_diag.simulate` docstring. Imports nothing of
:mod:`ser_diag.simulate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from ser_diag.errors import InputError
from ser_diag.schema import ATTRIBUTES

#: Scale of the class-profile distance in the class similarity ``exp(-dist / scale)``.
SIMILARITY_SCALE = 0.5
#: Default inter-system correlation of the errors per target (valence errors are the most
#: independent, so fusion helps valence and the classes most, as in the paper's Figure 4).
DEFAULT_ERROR_CORRELATION: dict[str, float] = {"EmoClass": 0.5, "EmoAct": 0.85, "EmoVal": 0.45, "EmoDom": 0.85}
#: Side of the mean whose extremes ``extreme_compression`` pulls further to the middle
#: (-1: low values, +1: high values): low arousal, high valence, low dominance (paper finding 2).
HARD_SIDE: dict[str, float] = {"EmoAct": -1.0, "EmoVal": 1.0, "EmoDom": -1.0}


def _per_attribute(value: float | Mapping[str, float], what: str) -> dict[str, float]:
    if isinstance(value, Mapping):
        missing = set(ATTRIBUTES) - set(value)
        if missing:
            raise ValueError(f"{what} lacks {sorted(missing)}")
        return {a: float(value[a]) for a in ATTRIBUTES}
    return dict.fromkeys(ATTRIBUTES, float(value))


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """The planted properties of one simulated system (see the :mod:`ser_diag.simulate` docstring for the model).

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
#: (the kink of ``extreme_compression`` costs a further ~0.5% of CCC, see the :mod:`ser_diag.simulate` docstring).
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
