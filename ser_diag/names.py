"""Names and numbers as a person reads them: one place for every view, table header and axis.

Machine names (``ccc_EmoAct``, ``binned_EmoVal``, ``recall_F``) stay in CSV columns and JSON;
everything meant for people goes through :func:`human_name` and :func:`format_p`.
"""

from __future__ import annotations

import math
import re

from ser_diag.schema import ATTRIBUTE_NAMES, CLASS_NAMES

_METRICS = {
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "accuracy": "accuracy",
    "uar": "UAR",
    "ccc_mean": "mean CCC",
    "ccc": "CCC",
    "pearson": "Pearson r",
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "bias": "bias",
    "mae": "MAE",
    "rmse": "RMSE",
    "binned": "binned",
    "slope": "shrinkage slope",
    "sd_ratio": "SD ratio",
    "variance_ratio": "SD ratio (pred / true)",
    "rho": "Pearson r",
    "scale_v": "scale v",
    "location_u": "location u",
    "c_b": "bias correction C_b",
    "n": "n",
}
_PREFIXED = re.compile(r"^(?P<head>[a-z0-9_]+?)_(?P<tail>Emo(?:Act|Val|Dom)|[A-Z])$")


def human_name(name: str) -> str:
    """The reader's name of a metric, view or column; unknown names come back unchanged.

    >>> [human_name(n) for n in ("ccc_EmoAct", "binned_EmoVal", "recall_F", "macro_f1", "EmoDom")]
    ['CCC arousal', 'binned valence', 'recall Fear', 'macro-F1', 'dominance']
    >>> human_name("system")
    'system'
    """
    name = str(name)
    if name in _METRICS:
        return _METRICS[name]
    if name in ATTRIBUTE_NAMES:
        return ATTRIBUTE_NAMES[name]
    match = _PREFIXED.match(name)
    if match:
        head, tail = match["head"], match["tail"]
        tail_name = ATTRIBUTE_NAMES.get(tail) or CLASS_NAMES.get(tail)
        if tail_name is not None:
            return f"{_METRICS.get(head, head.replace('_', ' '))} {tail_name}"
    return name


def format_p(p, prefix: bool = False) -> str:
    """A p-value in the one format used everywhere people read it.

    Three decimals, and ``< 0.001`` below that (a permutation test with 999 or more
    permutations reaches its floor 1/(B+1) there); empty for a missing value.

    >>> [format_p(x) for x in (0.000999, 0.6057, 0.04, float("nan"))]
    ['< 0.001', '0.606', '0.040', '']
    >>> format_p(0.0004, prefix=True)
    'p < 0.001'
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    from ser_diag.precision import round_significant

    p = round_significant(float(p))  # the p-value of the tables, not the bits beneath it
    if math.isnan(p):
        return ""
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    if not prefix:
        return text
    return f"p {text}" if text.startswith("<") else f"p = {text}"
