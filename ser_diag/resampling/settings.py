"""How every interval and test resamples: :class:`Resampling`, and the chunk sizes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pandas as pd

from ser_diag.evaluation import column_at

#: Weight rows processed at a time (200 x 32k float32 = 25 MB).
CHUNK_ROWS = 200


#: Largest weight chunk handed to a statistic (bytes): 200 rows up to n = 40k (float64),
#: fewer beyond, so no ``n x B`` weight matrix is ever held.
WEIGHT_CHUNK_BYTES = 1 << 26


#: Largest block of a wide :class:`LinearStatistic`'s sums computed at a time (bytes): the
#: podcast gender gap at 400k files x 20 systems has 466k sums per resample.
SUMS_BLOCK_BYTES = 1 << 25


#: Rows drawn per call of the generator; chunks are multiples of it, so results do not
#: depend on the chunk size.
_DRAW_BLOCK = 8


#: Resampling units: ``"auto"`` resolves to ``"speaker"`` when the rows carry any known
#: ``SpkrID`` and to ``"utterance"`` otherwise.
UNITS = ("auto", "speaker", "utterance")


Statistic = Callable[[np.ndarray], dict]


@dataclasses.dataclass(frozen=True)
class Resampling:
    """How every interval and test resamples: one frozen settings object passed through
    :mod:`ser_diag.diagnostics`, the analyses, ``figures``, ``report`` and the explorer.

    ``n_boot`` resamples (0: no intervals), percentile intervals at ``level``, resampling
    ``unit``: ``"auto"`` (default) = speakers whenever the rows carry a known ``SpkrID``, else
    utterances; ``"speaker"`` (cluster bootstrap over ``SpkrID``) or ``"utterance"``. Speaker
    is the default because MSP-Podcast speakers contribute many utterances whose errors are
    correlated: resampling utterances then gives intervals that are too narrow (measured in
    ``bench/bench_calibration.py``). Rows whose speaker is unknown are each a cluster of
    their own. ``seed`` seeds the draws; ``ddof`` is the CCC variance denominator ``n - ddof``.
    The resolved unit is named in every output (column ``unit``).

    >>> Resampling(n_boot=200).unit_for(pd.Series([1, 1, None]))
    'speaker'
    >>> Resampling().unit_for(pd.Series([None, None], dtype="Int64"))
    'utterance'
    """

    n_boot: int = 1000
    level: float = 0.95
    unit: str = "auto"
    seed: int = 0
    ddof: int = 0

    def __post_init__(self):
        if isinstance(self.n_boot, bool) or int(self.n_boot) != self.n_boot or self.n_boot < 0:
            raise ValueError(f"n_boot must be a non-negative integer, not {self.n_boot!r}")
        object.__setattr__(self, "n_boot", int(self.n_boot))
        if not 0 < float(self.level) < 1:
            raise ValueError(f"level must be in (0, 1), not {self.level!r}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {UNITS}, not {self.unit!r}")
        if int(self.ddof) != self.ddof or self.ddof < 0:
            raise ValueError(f"ddof must be a non-negative integer, not {self.ddof!r}")

    def replace(self, **changes) -> "Resampling":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, resampling: "Resampling | None" = None, **legacy) -> "Resampling":
        """``resampling`` (default :class:`Resampling()`) with the older keyword arguments
        ``n_boot, level, seed, ddof, unit`` and ``by_speaker`` (True: "speaker", False:
        "utterance") applied on top when given (not None)."""
        unknown = set(legacy) - {"n_boot", "level", "seed", "ddof", "unit", "by_speaker"}
        if unknown:
            raise TypeError(f"unexpected keyword arguments {sorted(unknown)}")
        base = resampling if resampling is not None else cls()
        if not isinstance(base, Resampling):
            raise TypeError(f"resampling must be a Resampling, not {type(base).__name__}")
        changes = {k: v for k, v in legacy.items() if v is not None and k != "by_speaker"}
        if legacy.get("by_speaker") is not None:
            changes["unit"] = "speaker" if legacy["by_speaker"] else "utterance"
        return base.replace(**changes) if changes else base

    def unit_for(self, speakers) -> str:
        """The resolved unit for rows with these speaker IDs (None: no ``SpkrID`` column)."""
        if self.unit == "utterance":
            return "utterance"
        if speakers is None:
            if self.unit == "speaker":
                raise ValueError("unit='speaker' needs a SpkrID column")
            return "utterance"
        if self.unit == "speaker":
            return "speaker"
        return "speaker" if pd.Series(speakers).notna().any() else "utterance"

    def groups(self, frame: pd.DataFrame, rows=None):
        """``(groups, unit)`` for :func:`bootstrap`: the ``SpkrID`` of ``frame`` (rows ``rows``
        by position) when the resolved unit is speaker, else None."""
        speakers = column_at(frame, "SpkrID", rows) if "SpkrID" in frame.columns else None
        unit = self.unit_for(speakers)
        if unit == "utterance":
            return None, unit
        return speakers.reset_index(drop=True), unit

    def describe(self, unit: str | None = None) -> str:
        """One line for people: ``95% percentile bootstrap, 1000 resamples of speakers``."""
        return (f"{self.level:.0%} percentile bootstrap, {self.n_boot} resamples of "
                f"{unit or self.unit}s")

