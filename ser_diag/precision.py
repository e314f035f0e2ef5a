"""The precision of every number ser_diag writes, in one place.

Why: the same computation on another CPU, BLAS build or thread count adds floating-point
numbers in another order, and the last bits move (``0.6670106250017008`` on one machine,
``0.6670106250017007`` on another). Written with all 17 digits, that noise changed every
committed table on every other machine that ran ``ser-diag demo``. So every number that goes
into a CSV table, a JSON file or ``summary.md`` passes through this module first:

* **Statistics** (metrics, intervals, shares, p-values; tables and JSON results): rounded to
  :data:`STATISTIC_DIGITS` = 9 significant digits and to no digit below
  :data:`STATISTIC_DECIMALS` = 12 decimal places (``1e-12``). Measured between two machines
  (the committed demo tables vs a fresh run on another CPU: 68,764 numbers, 3,047 of them
  different), the noise is up to ~5e-14 on values of order 1 (sums of O(1) terms, moments
  with cancellation) and reaches the same *absolute* size on results near zero (a
  ``loss_location`` interval bound of 6e-7 moved by 3e-17, 5e-11 of itself): relative rounding
  alone would keep that noise, hence the absolute floor. Every statistic here is on a scale of
  order 1 (scores in [-1, 1], shares, the 1-7 attributes, durations, counts), so 1e-12 loses
  nothing anyone reads. Probabilities of rare events are the exception: columns and keys named
  ``p_*`` (``p_value``, ``p_holm``, ...) keep 9 significant digits at any size (their noise is
  relative, and 1e-26 is a real result). 9 digits: rounding moves a value by at most 5e-9 of
  itself (at most 5e-10 for a value below 1, as every score is: below the 1e-9 to which the
  tests compare written scores), far below the 3 decimals summaries show; 10 digits would keep
  8 times more of the noise. The expected number of values that still round differently
  between the two machines above is 0.008 over the whole simulated-challenge table set (10
  digits: 0.06; 17 digits: all 3,047). Negative zero is written as ``0.0``.
* **Predictions** a model writes (``attributes.csv`` on the 1-7 scale, class probabilities
  ``P_A..P_N``): :data:`PREDICTION_DIGITS` = 6 significant digits (``"%.6g"``). The challenge
  formats fix no precision (``FileName,EmoAct,EmoVal,EmoDom``, "values on the 1-7 scale"; the
  consensus labels are annotator means such as ``4.8``); 6 digits (1e-5 on the 1-7 scale) are
  what ser_diag's prediction writers have always used, at float32's own resolution (~7
  digits) and far finer than any metric can see.

What rounding cannot do: a value that lies right at a rounding boundary still rounds
differently on two machines (chance about noise / rounding step per value). Tables are
therefore the same bytes on almost every machine, not provably on all; the tests check
byte-identical outputs over thread counts and input row orders
(``tests/test_reproducible_outputs.py``). Float32 model training moves predictions by ~1e-7
between CPUs, often across a 6-digit boundary; the demo therefore diagnoses committed
reference predictions (README, "Reference models").

>>> round_significant(0.6670106250017008), round_significant(0.6670106250017007)
(0.667010625, 0.667010625)
>>> round_significant(6.135169973746877e-07), round_significant(6.135169974046928e-07)
(6.13517e-07, 6.13517e-07)
>>> round_significant(2.1303074868740117e-26), round_significant(2.1303074868740117e-26, decimals=None)
(0.0, 2.13030749e-26)
>>> round_significant(-0.0), round_significant(1234567.891234)
(0.0, 1234567.89)
"""

from __future__ import annotations

import json
import math
import numbers

import numpy as np
import pandas as pd

#: Significant digits of every statistic written (tables, JSON results, the numbers behind summaries).
STATISTIC_DIGITS = 9
#: No statistic is written with a digit below ``10 ** -STATISTIC_DECIMALS`` (except :func:`is_relative` names).
STATISTIC_DECIMALS = 12
#: Significant digits of model predictions (attribute values, class probabilities).
PREDICTION_DIGITS = 6
#: ``float_format`` for :meth:`pandas.DataFrame.to_csv` of prediction files (``"%.6g"``).
PREDICTION_FLOAT_FORMAT = f"%.{PREDICTION_DIGITS}g"


def is_relative(name) -> bool:
    """True for a column or key whose values keep their significant digits at any size:
    probabilities of rare events, named ``p_*`` (``p_value``, ``p_holm``, ``p_boot``, ``p_best``).

    >>> is_relative("p_value"), is_relative("ci_low"), is_relative("P_A")
    (True, False, False)
    """
    return isinstance(name, str) and name.startswith("p_")


def round_significant(value, digits: int = STATISTIC_DIGITS, decimals: int | None = STATISTIC_DECIMALS):
    """``value`` rounded to ``digits`` significant digits and to ``decimals`` decimal places
    (None: no decimal limit), as a float; ``-0.0`` becomes ``0.0``; NaN and infinities as they
    are. Integers, booleans and non-numbers are returned unchanged. Decimal rounding of the
    number's shortest representation, so the result is a function of the value alone.

    >>> round_significant(1 / 3), round_significant(1 / 3, 3), round_significant(True), round_significant("a")
    (0.333333333, 0.333, True, 'a')
    >>> round_significant(4e-13), round_significant(-4e-13), round_significant(6e-13)
    (0.0, 0.0, 1e-12)
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
        return value
    value = float(value)
    if not math.isfinite(value):
        return value
    value = float(f"{value:.{digits}g}")
    if decimals is not None and value != 0.0 and abs(value) < 10.0 ** (digits - decimals - 1):
        value = float(f"{value:.{decimals}f}")  # only small values can have digits below 10**-decimals
    return value + 0.0  # + 0.0: -0.0 -> 0.0


def round_array(values, digits: int = STATISTIC_DIGITS, decimals: int | None = STATISTIC_DECIMALS) -> np.ndarray:
    """A float array rounded element by element as :func:`round_significant`.

    >>> round_array([0.6670106250017008, -0.0, np.nan, 1e-26 / 3]).tolist()
    [0.667010625, 0.0, nan, 0.0]
    >>> round_array([1e-26 / 3], decimals=None).tolist()
    [3.33333333e-27]
    """
    array = np.asarray(values, dtype=float)
    flat = [round_significant(v, digits, decimals) for v in array.ravel().tolist()]
    return np.asarray(flat, dtype=float).reshape(array.shape)


def _decimals_for(name, decimals):
    return None if is_relative(name) else decimals


def rounded_frame(frame: pd.DataFrame, digits: int = STATISTIC_DIGITS,
                  decimals: int | None = STATISTIC_DECIMALS) -> pd.DataFrame:
    """A copy of ``frame`` whose float cells (float columns, and floats inside object columns)
    are rounded as :func:`round_significant` (``p_*`` columns without the decimal limit,
    :func:`is_relative`); other cells untouched.

    >>> frame = pd.DataFrame({"s": ["a"], "x": [0.1 + 0.2], "n": [3], "o": [0.7000000000000001],
    ...                       "gap": [3e-17], "p_value": [3e-17]})
    >>> rounded_frame(frame).to_dict("records")
    [{'s': 'a', 'x': 0.3, 'n': 3, 'o': 0.7, 'gap': 0.0, 'p_value': 3e-17}]
    """
    out = frame.copy()
    for column in out.columns:
        values, places = out[column], _decimals_for(column, decimals)
        if pd.api.types.is_float_dtype(values.dtype):
            out[column] = round_array(values.to_numpy(dtype=float), digits, places)
        elif values.dtype == object:
            out[column] = values.map(lambda v: round_significant(v, digits, places))
    return out


def csv_text(frame: pd.DataFrame, digits: int = STATISTIC_DIGITS, decimals: int | None = STATISTIC_DECIMALS) -> str:
    """``frame`` as CSV text (no index, ``\\n`` line ends) with every float rounded as
    :func:`rounded_frame`, written in its shortest form (``0.5``, ``1000.0``, ``2.13030749e-26``).

    >>> print(csv_text(pd.DataFrame({"m": ["ccc"], "estimate": [0.6670106250017008]})), end="")
    m,estimate
    ccc,0.667010625
    """
    return rounded_frame(frame, digits, decimals).to_csv(index=False, lineterminator="\n")


def rounded_json(value, digits: int = STATISTIC_DIGITS, decimals: int | None = STATISTIC_DECIMALS):
    """A JSON-ready copy of ``value`` (dicts, lists, tuples, numpy scalars and arrays) with
    every float rounded as :func:`round_significant` (under a ``p_*`` key: no decimal limit).

    >>> rounded_json({"ccc": {"EmoAct": np.float64(0.6670106250017008)}, "n": np.int64(3), "x": (1 / 3, 1e-13)})
    {'ccc': {'EmoAct': 0.667010625}, 'n': 3, 'x': [0.333333333, 0.0]}
    """
    if isinstance(value, dict):
        return {k: rounded_json(v, digits, _decimals_for(k, decimals)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded_json(v, digits, decimals) for v in value]
    if isinstance(value, np.ndarray):
        return rounded_json(value.tolist(), digits, decimals)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    return round_significant(value, digits, decimals)


def dumps_json(value, digits: int = STATISTIC_DIGITS, decimals: int | None = STATISTIC_DECIMALS, **kwargs) -> str:
    """:func:`json.dumps` of :func:`rounded_json` ``(value, digits, decimals)``; ``kwargs`` go
    to ``json.dumps``.

    >>> dumps_json({"estimate": 0.1 + 0.2})
    '{"estimate": 0.3}'
    """
    return json.dumps(rounded_json(value, digits, decimals), **kwargs)


def format_number(value, spec: str = "", digits: int = STATISTIC_DIGITS,
                  decimals: int | None = STATISTIC_DECIMALS) -> str:
    """``format(value, spec)`` of the value rounded as :func:`round_significant` first, so a
    number shown in Markdown (``spec=".3f"``) is a function of the number in the tables, not of
    the bits beneath it. Integers are formatted as they are.

    >>> format_number(0.6670106250017008, ".3f"), format_number(-1e-17, "+.3f"), format_number(0.5, ".0%")
    ('0.667', '+0.000', '50%')
    """
    return format(round_significant(value, digits, decimals), spec)


__all__ = ["PREDICTION_DIGITS", "PREDICTION_FLOAT_FORMAT", "STATISTIC_DECIMALS", "STATISTIC_DIGITS", "csv_text",
           "dumps_json", "format_number", "is_relative", "round_array", "round_significant", "rounded_frame",
           "rounded_json"]
